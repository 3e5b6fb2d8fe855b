/* bench.h: what the benchmarks share (header-only: each bench is one
 * program linked with the library). */
#ifndef IC_BENCH_H
#define IC_BENCH_H

#include <stdio.h>

/* The 1-minute load average at the time of a measurement, or -1. */
static inline double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

#endif
