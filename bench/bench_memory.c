/* bench_memory.c: what this machine's memory system costs, the numbers
 * behind the clock store's design and limits (docs/PERFORMANCE.md). Prints
 * one JSON object per line:
 *   - random reads in a 512 MiB region: dependent (each address from the
 *     last read: the latency of a miss) and independent (the core overlaps
 *     them: what prefetching can reach per line);
 *   - the first touch of fresh pages, 4 KiB pages and with huge pages
 *     asked for (MADV_HUGEPAGE): what a store pays when it grows;
 *   - the clock store's access pattern with nothing else: per event, a
 *     Zipf(1.1) user of 50k (as bench_clock), `seq` sequential and `rnd`
 *     random lines of the user's 6 KiB block, prefetched `ahead` events
 *     ahead; the floor that memory alone puts under apply + query;
 *   - the clock query's copy of a large user's rows, glibc's memcpy
 *     against ic__copy_lines, from sources in L2, L3 and memory.
 * Checks first that the dependent chain visits every line it is timed on
 * (a cycle through a random permutation); exits 1 otherwise.
 * Usage: bench_memory (no arguments; about 20 s).
 *   BENCH_MEMORY_ONLY=touch runs only the first touch, in a fresh process:
 *   run twice in a row after a pause, the first shows what the host adds
 *   for memory the guest had reported free (docs/PERFORMANCE.md, "Eighth
 *   session"), the second the guest's own cost. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"

#define MIB ((size_t)1 << 20)
#define LINE 64

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char *map(size_t bytes, int huge)
{
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("bench_memory: mmap");
        exit(1);
    }
    if (huge) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

/* Reads through n_lines lines of a region: dependent (a random cyclic
 * permutation stored in the lines themselves) and independent (random
 * addresses from a precomputed list). */
static int random_reads(void)
{
    const size_t bytes = 512 * MIB, lines = bytes / LINE, steps = 4000000;
    char *p = map(bytes, 0);
    uint32_t *perm = ic__xmalloc(lines * sizeof *perm);
    ic_rng r;
    ic__rng_seed(&r, 3);
    for (size_t i = 0; i < lines; i++) perm[i] = (uint32_t)i;
    for (size_t i = lines - 1; i > 0; i--) { /* Sattolo: one cycle through all lines */
        size_t j = ic__rng_u64(&r) % i;
        uint32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (size_t i = 0; i < lines; i++) *(uint64_t *)(p + (size_t)i * LINE) = perm[i];
    /* Check: following the chain from 0 returns to 0 after exactly `lines` steps. */
    size_t at = 0, n = 0;
    do at = *(uint64_t *)(p + at * LINE), n++;
    while (at != 0 && n <= lines);
    if (n != lines) {
        fprintf(stderr, "bench_memory: the chain has %zu lines, not %zu\n", n, lines);
        return 1;
    }
    double t0 = cpu_now();
    at = 0;
    for (size_t i = 0; i < steps; i++) at = *(volatile uint64_t *)(p + at * LINE);
    double dep = cpu_now() - t0;
    uint64_t sum = at;
    t0 = cpu_now();
    for (size_t i = 0; i < steps; i++) sum += *(volatile uint64_t *)(p + (size_t)perm[i] * LINE);
    double ind = cpu_now() - t0;
    printf("{\"bench\":\"memory_random_read\",\"region_mib\":%zu,\"reads\":%zu,\"dependent_ns\":%.1f,"
           "\"independent_ns\":%.1f,\"load1\":%.2f}\n",
           bytes / MIB, steps, 1e9 * dep / steps, 1e9 * ind / steps, load1());
    (void)sum;
    munmap(p, bytes);
    free(perm);
    return 0;
}

/* The first write to each 4 KiB page of fresh mappings. */
static void first_touch(void)
{
    const size_t bytes = 256 * MIB;
    for (int huge = 0; huge < 2; huge++) {
        char *p = map(bytes, huge);
        double t0 = cpu_now();
        for (size_t o = 0; o < bytes; o += 4096) p[o] = 1;
        double dt = cpu_now() - t0;
        printf("{\"bench\":\"memory_first_touch\",\"huge_pages_asked\":%s,\"mib\":%zu,\"us_per_4k_page\":%.2f,"
               "\"ms_per_mib\":%.2f,\"load1\":%.2f}\n",
               huge ? "true" : "false", bytes / MIB, 1e6 * dt / (double)(bytes / 4096), 1e3 * dt / (double)(bytes / MIB),
               load1());
        munmap(p, bytes);
    }
}

/* The clock store's pattern alone: see the file's header. */
static void store_pattern(int seq, int rnd, int ahead)
{
    const int n_users = 50000, blk = 6144;
    const size_t n = 2000000;
    char *mem = map((size_t)n_users * blk, 1);
    memset(mem, 1, (size_t)n_users * blk); /* touched before timing */
    ic_rng r;
    ic__rng_seed(&r, 5);
    uint32_t *perm = ic__xmalloc(n_users * sizeof *perm); /* users' blocks in no order */
    for (int i = 0; i < n_users; i++) perm[i] = (uint32_t)i;
    for (int i = n_users - 1; i > 0; i--) {
        int j = (int)(ic__rng_u64(&r) % (uint64_t)(i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    double *cdf = ic__xmalloc(n_users * sizeof *cdf), z = 0;
    for (int u = 0; u < n_users; u++) cdf[u] = (z += pow(u + 1.0, -1.1));
    uint32_t *ev = ic__xmalloc(n * sizeof *ev);
    uint16_t *off = ic__xmalloc(n * (size_t)(rnd ? rnd : 1) * sizeof *off);
    for (size_t i = 0; i < n; i++) {
        double x = ic__rng_uniform(&r) * z;
        int lo = 0, hi = n_users - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < x) lo = mid + 1; else hi = mid;
        }
        ev[i] = perm[lo];
        for (int k = 0; k < rnd; k++) off[i * (size_t)rnd + k] = (uint16_t)(ic__rng_u64(&r) % (blk / LINE));
    }
    uint64_t acc = 0;
    double t0 = cpu_now();
    for (size_t i = 0; i < n; i++) {
        if (i + (size_t)ahead < n) {
            const char *b = mem + (size_t)ev[i + ahead] * blk;
            for (int l = 0; l < seq; l++) __builtin_prefetch(b + l * LINE);
            for (int k = 0; k < rnd; k++) __builtin_prefetch(b + off[(i + ahead) * rnd + k] * LINE);
        }
        const char *b = mem + (size_t)ev[i] * blk;
        for (int l = 0; l < seq; l++) acc += *(volatile const char *)(b + l * LINE);
        for (int k = 0; k < rnd; k++) acc += *(volatile const char *)(b + off[i * rnd + k] * LINE);
    }
    double dt = cpu_now() - t0;
    printf("{\"bench\":\"memory_store_pattern\",\"events\":%zu,\"users\":%d,\"seq_lines\":%d,\"random_lines\":%d,"
           "\"ahead\":%d,\"ns_per_event\":%.1f,\"events_per_s\":%.0f,\"load1\":%.2f}\n",
           n, n_users, seq, rnd, ahead, 1e9 * dt / n, n / dt, load1());
    (void)acc;
    munmap(mem, (size_t)n_users * blk);
    free(perm), free(cdf), free(ev), free(off);
}

/* The clock query's copy of a user's rows (2,952 bytes: a user with all 72
 * lists at k = 3) from one of `kib` KiB of sources, picked at random, into
 * one view: glibc's memcpy against ic__copy_lines (internal.h). */
static void view_copy(size_t kib)
{
    const size_t bytes = 2952, stride = 4096, n_src = (kib << 10) / stride, n = 2000000;
    unsigned char *src = (unsigned char *)map(n_src * stride, 1), *dst = ic__xalloc_aligned(4096);
    memset(src, 1, n_src * stride);
    uint32_t *pick = ic__xmalloc(n * sizeof *pick);
    ic_rng r;
    ic__rng_seed(&r, 9);
    for (size_t i = 0; i < n; i++) pick[i] = (uint32_t)(ic__rng_u64(&r) % n_src);
    double ns[2];
    uint64_t acc = 0;
    for (int way = 0; way < 2; way++) {
        double t0 = cpu_now();
        for (size_t i = 0; i < n; i++) {
            const unsigned char *q = src + (size_t)pick[i] * stride + 72; /* a block's rows start past its index */
            if (way == 0) memcpy(dst, q, bytes);
            else ic__copy_lines(dst, q, bytes);
            acc += dst[i % bytes];
        }
        ns[way] = 1e9 * (cpu_now() - t0) / (double)n;
    }
    printf("{\"bench\":\"memory_view_copy\",\"bytes\":%zu,\"sources_kib\":%zu,\"memcpy_ns\":%.1f,"
           "\"copy_lines_ns\":%.1f,\"load1\":%.2f}\n", bytes, kib, ns[0], ns[1], load1());
    (void)acc;
    munmap(src, n_src * stride);
    free(dst), free(pick);
}

int main(void)
{
    const char *only = getenv("BENCH_MEMORY_ONLY");
    if (only && strcmp(only, "touch") == 0) {
        first_touch();
        return 0;
    }
    if (random_reads()) return 1;
    fflush(stdout);
    first_touch();
    fflush(stdout);
    store_pattern(16, 16, 4); /* about the lines an event of the store touches */
    store_pattern(46, 16, 4); /* every row of a large user */
    fflush(stdout);
    view_copy(256);   /* in L2 */
    view_copy(4096);  /* in L3 */
    view_copy(65536); /* from memory */
    return 0;
}
