/* helpers.h: what several test programs share (tests/helpers.c, linked into
 * every test by the Makefile). */
#ifndef IC_TEST_HELPERS_H
#define IC_TEST_HELPERS_H

#include <stdint.h>

/* Runs "$ICLOCK_BIN <args>" with stdout to out and stderr to err (file
 * paths, e.g. "/dev/null"). Returns its exit status, or -1 if it did not
 * exit normally. */
int ic_test_run_tool(const char *args, const char *out, const char *err);

/* Writes a simulated log (the simulator's defaults but these sizes) to
 * path. Returns 0, or -1 on failure. */
int ic_test_write_synth(const char *path, int users, int items, int days, uint64_t seed);

#endif
