/* bench_clock.c: the Interest Clock store's apply + query throughput, as the
 * engine uses it (query the user's clock at the event's time, then apply
 * the event), on a generated log; and the brute-force reference on a
 * smaller log. First checks the fast path against the reference on a
 * sample of queries in both refresh modes; exits 1 on any difference.
 * Prints one JSON object per line.
 *
 * The main log ("zipf") is made here: Zipf-ish user activity
 * (s = 1.1 over the users), a daily rhythm in each user's local time (six
 * time zones), three fields of 20/8/5 values with per-user, per-daypart
 * favourites, and like/finish/skip/dislike counts. Events are kept compact
 * and expanded, a chunk of 512 at a time as the engine holds them, into
 * reused ic_events (included in the timing). The timed loop runs with and
 * without the ic_clock_prefetch hint (the engine gives it). Each timed
 * line also gives the rate of its steady state: the events from W + 2 days
 * after the log's start on, when every window is full.
 * Then the same on the simulator's log (synth.c: 8,000 users, 60 days,
 * ~2.6M events), realtime with the hint: music users who play every day
 * hold far larger clocks than the Zipf log's light majority.
 * Usage: bench_clock [events (default 2000000)]
 *   BENCH_CLOCK_ONLY=r0|r1|d0|d1|s1 times only that run (Zipf log,
 *   realtime/daily, hint off/on; s1 the simulator's log); s0 makes the
 *   simulator's log and times nothing; any other value times nothing.
 *   BENCH_CLOCK_CHECK=0 skips the check and the reference (for counting
 *   runs under valgrind, scripts/clock_counts.sh).
 *   BENCH_CLOCK_WARM=MB first maps, writes and unmaps MB MiB, so that the
 *   store then grows into memory the host has already backed (as in a
 *   long-running server): this VM's host backs a page at its first touch
 *   in a process's life, at up to ~4 ms per 2 MiB (docs/PERFORMANCE.md).
 *   Each timed line gives the loop's user and system seconds and minor
 *   faults apart, so the host's share is visible in either mode.
 *   BENCH_CLOCK_VIEWS=chunk has each query write its own view of an array
 *   of 512 (a chunk's), as the engine does, which keeps them for the
 *   model; by default every query writes the same view, which stays in
 *   cache (a caller that reads each clock at once, as a ranking request).
 *   BENCH_CLOCK_CLASSES=1 also times every event with the TSC (x86-64;
 *   ~2% overhead) and prints, per kind of user at the event (new, light,
 *   with a block and under ~128 records (213 ring words), under ~2048
 *   (3413 words), heavier), its share of events and of time, its ticks
 *   per event (the hint, query and apply calls
 *   apart) and the share of its time in events above 30,000 ticks (page
 *   faults of fresh memory, interrupts). */
#include "clock_internal.h"

#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#define HAVE_TSC 1
#else
#define HAVE_TSC 0
#endif

#define DAY 86400

typedef struct {
    int64_t ts;
    uint32_t user;
    int16_t tz;
    uint8_t g, m, l, act; /* value indices; act bits: like finish skip dislike */
    int8_t g2;            /* a second genre, or -1 */
} cevent;

static const int16_t TZS[6] = {480, 0, -300, 330, -600, 690};
static const int NVALS[3] = {20, 8, 5};

/* CPU time of this thread: the machine is shared, so wall time would
 * count other processes' turns; wall time is printed beside it. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Activity by local hour: low at night, peaks in the evening. */
static double hour_activity(int h) { return 0.15 + 0.85 * (0.5 - 0.5 * cos((h - 3) * 6.2832 / 24)); }

/* n events over `days` days for n_users users. Times are evenly spread (so
 * several events share some seconds); each event's user is drawn by Zipf
 * and kept with the probability of its local hour's activity. */
static cevent *make_log(size_t n, uint32_t n_users, int days, uint64_t seed)
{
    ic_rng r;
    ic__rng_seed(&r, seed);
    double *cdf = ic__xmalloc(n_users * sizeof *cdf), z = 0;
    for (uint32_t u = 0; u < n_users; u++) cdf[u] = (z += pow(u + 1.0, -1.1));
    cevent *L = ic__xmalloc(n * sizeof *L);
    const int64_t t0 = 1693526400;
    for (size_t i = 0; i < n; i++) {
        int64_t ts = t0 + (int64_t)((double)i * days * DAY / (double)n);
        uint32_t u;
        int16_t tz;
        do {
            double x = ic__rng_uniform(&r) * z;
            uint32_t lo = 0, hi = n_users - 1;
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (cdf[mid] < x) lo = mid + 1; else hi = mid;
            }
            u = lo;
            tz = TZS[u % 6];
        } while (ic__rng_uniform(&r) > hour_activity(ic_local_hour(ts, tz)));
        int part = ic_local_hour(ts, tz) / 6;
        uint8_t v[3];
        for (int f = 0; f < 3; f++) {
            uint64_t fav = (u * 2654435761u + (uint64_t)part * 97 + (uint64_t)f * 13) % (uint64_t)NVALS[f];
            v[f] = (uint8_t)(ic__rng_uniform(&r) < 0.6 ? fav : ic__rng_u64(&r) % (uint64_t)NVALS[f]);
        }
        uint8_t act = (uint8_t)((ic__rng_uniform(&r) < 0.10) | (ic__rng_uniform(&r) < 0.50) << 1 |
                                (ic__rng_uniform(&r) < 0.30) << 2 | (ic__rng_uniform(&r) < 0.02) << 3);
        L[i] = (cevent){ts, u, tz, v[0], v[1], v[2], act, -1};
    }
    free(cdf);
    return L;
}

/* Value ids: field f, index i -> a nonzero 64-bit id. */
static uint64_t value_id(int f, int i) { return 0x9E3779B97F4A7C15ull * (uint64_t)(f * 64 + i + 1); }

static void expand(const cevent *c, ic_event *e)
{
    e->ts = c->ts;
    e->tz_min = c->tz;
    e->user = 0x100000000ull + c->user;
    e->item = 1;
    int n = 0;
    e->val[n++] = value_id(0, c->g);
    if (c->g2 >= 0) e->val[n++] = value_id(0, c->g2);
    e->voff[1] = (uint8_t)n;
    e->val[n++] = value_id(1, c->m);
    e->voff[2] = (uint8_t)n;
    e->val[n++] = value_id(2, c->l);
    for (int f = 3; f <= IC_MAX_FIELDS; f++) e->voff[f] = (uint8_t)n;
    for (int a = 0; a < 4; a++) e->action[a] = (float)((c->act >> a) & 1);
}

/* The project's simulator (synth.c) as a compact log: every active user
 * plays sessions every day, so each holds a large clock (most of the 24 x
 * 33 hour-value pairs), unlike the Zipf log's light majority. */
typedef struct {
    cevent *L;
    size_t n, cap;
} synth_acc;

static int synth_take(void *ctx, const ic_synth_event *e)
{
    synth_acc *a = ctx;
    if (a->n == a->cap) a->L = ic__xrealloc(a->L, (a->cap = a->cap ? 2 * a->cap : 1 << 20) * sizeof *a->L);
    uint8_t act = (uint8_t)(e->like | e->finish << 1 | e->skip << 2 | e->dislike << 3);
    a->L[a->n++] = (cevent){e->ts, e->user, (int16_t)e->tz_min, (uint8_t)e->genre[0], (uint8_t)e->mood,
                            (uint8_t)e->lang, act, e->genre[1]};
    return 0;
}

static cevent *synth_log(int n_users, int days, size_t *n)
{
    ic_synth_opts o;
    ic_synth_opts_default(&o);
    o.n_users = n_users, o.n_days = days;
    synth_acc a = {0};
    ic_error err;
    if (ic_synth_run(&o, synth_take, &a, NULL, &err) != IC_OK) {
        fprintf(stderr, "bench_clock: %s\n", err.msg);
        exit(1);
    }
    *n = a.n;
    return a.L;
}

static void event_init(ic_event *e)
{
    memset(e, 0, sizeof *e);
    for (int f = 0; f <= IC_MAX_FIELDS; f++) e->voff[f] = (uint8_t)(f < 3 ? f : 3);
}

/* Per-event timing by kind of user (BENCH_CLOCK_CLASSES=1). */
enum { N_KINDS = 5 };
static const char *const KIND_NAME[N_KINDS] = {"new", "light", "block_lt128", "block_lt2048", "heavy"};
typedef struct {
    double events, ticks, hint, query, apply, long_ticks;
} kind_time;

/* The kind of event ev's user before the event. The ring holds words, 5
 * for an event of the Zipf log's 3 records, so its records are ~3/5 of
 * its words: the thresholds of 128 and 2048 records are 213 and 3413
 * words. */
static int user_kind(const ic_clock_store *s, uint64_t user)
{
    const ic__clk_user *u = ic__clock_user_find(s, user);
    if (!u) return 0;
    uint32_t words = u->end - u->start;
    return !u->blk ? 1 : words < 213 ? 2 : words < 3413 ? 3 : 4;
}

static uint64_t ticks(void)
{
#if HAVE_TSC
    return __rdtsc();
#else
    return 0;
#endif
}

static void print_kinds(const char *log, const kind_time *k, size_t n)
{
    double total = 0;
    for (int c = 0; c < N_KINDS; c++) total += k[c].ticks;
    for (int c = 0; c < N_KINDS; c++) {
        double e = k[c].events > 0 ? k[c].events : 1;
        printf("{\"bench\":\"clock_kinds\",\"log\":\"%s\",\"kind\":\"%s\",\"events_share\":%.4f,\"time_share\":%.4f,"
               "\"ticks_per_event\":%.0f,\"hint\":%.0f,\"query\":%.0f,\"apply\":%.0f,\"long_event_time_share\":%.4f}\n",
               log, KIND_NAME[c], k[c].events / (double)n, k[c].ticks / (total > 0 ? total : 1), k[c].ticks / e,
               k[c].hint / e, k[c].query / e, k[c].apply / e, k[c].long_ticks / (k[c].ticks > 0 ? k[c].ticks : 1));
    }
}

/* Replays n events through a store (with the prefetch hint, as the timed
 * loop), checking every `every`-th query against the reference. Returns
 * the number of checked queries, or -1. */
static long check(const ic_config *cfg, const cevent *L, size_t n, size_t every)
{
    ic_event *ev = ic__xmalloc(n * sizeof *ev);
    for (size_t i = 0; i < n; i++) event_init(&ev[i]), expand(&L[i], &ev[i]);
    ic_clock_store *s;
    ic_error err;
    if (ic_clock_create(&s, cfg, &err) != IC_OK) return -1;
    long checked = 0;
    ic_clock_view got, want;
    for (size_t i = 0; i < n; i++) {
        ic_clock_prefetch(s, ev, n, i);
        int rg = ic_clock_query(s, ev[i].user, ev[i].ts, ev[i].tz_min, &got);
        if (i % every == 0) {
            int rw = ic__clock_query_ref(cfg, ev, i, ev[i].user, ev[i].ts, ev[i].tz_min, &want);
            if (rg != rw || !ic_clock_view_equal(&got, &want)) {
                fprintf(stderr, "bench_clock: fast path differs from the reference at event %zu\n", i);
                checked = -1;
                break;
            }
            checked++;
        }
        if (ic_clock_apply(s, &ev[i], &err) != IC_OK) return -1;
    }
    ic_clock_free(s);
    free(ev);
    return checked;
}

/* As the engine does it: events in chunks of CHUNK (expanded from the
 * compact log, included in the timing), and per event the prefetch hint
 * (when on), the query at the event's time, then the apply. */
#define CHUNK 512

/* Seconds of user and system time of this thread so far, and its minor
 * page faults. */
static void thread_usage(double *user, double *sys, long *minflt)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    *user = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec;
    *sys = (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    *minflt = ru.ru_minflt;
}

/* BENCH_CLOCK_WARM: writes mb MiB of fresh memory (huge pages asked for,
 * as the store's pool does) and gives it back, so that the pages the
 * store touches next are ones the host has backed already. */
static void warm_memory(size_t mb)
{
    size_t bytes = mb << 20;
    char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "bench_clock: BENCH_CLOCK_WARM: cannot map %zu MiB\n", mb);
        exit(1);
    }
#ifdef MADV_HUGEPAGE
    madvise(m, bytes, MADV_HUGEPAGE);
#endif
    memset(m, 1, bytes);
    munmap(m, bytes);
}

static void bench_fast(const ic_config *cfg, const char *log, const cevent *L, size_t n, int prefetch)
{
    /* Runs after the first in this process find their pages already backed
     * (an earlier store freed them): a fresh process pays the first touch
     * of every page the store grows into (bench_memory). */
    static int run_in_process = 0;
    run_in_process++;
    const char *warm = getenv("BENCH_CLOCK_WARM");
    const size_t warm_mb = warm ? strtoull(warm, NULL, 10) : 0;
    if (warm_mb) warm_memory(warm_mb);
    ic_clock_store *s;
    ic_error err;
    if (ic_clock_create(&s, cfg, &err) != IC_OK) exit(1);
    ic_event *ev = ic__xmalloc(CHUNK * sizeof *ev);
    for (int i = 0; i < CHUNK; i++) event_init(&ev[i]);
    const char *vw = getenv("BENCH_CLOCK_VIEWS");
    const int chunk_views = vw && !strcmp(vw, "chunk");
    /* 64-byte aligned, as the type asks (malloc gave 16: no change in speed). */
    ic_clock_view *v = ic__xalloc_aligned((chunk_views ? CHUNK : 1) * sizeof *v);
    long filled = 0;
    const char *bk = getenv("BENCH_CLOCK_CLASSES");
    const int by_kind = HAVE_TSC && bk && strcmp(bk, "0");
    kind_time kinds[N_KINDS] = {{0}};
    /* Steady state: the events from W + 2 days after the log's start on,
     * when every window is full and old records leave as new ones arrive
     * (before it, windows are still filling and queries cost less). */
    const int64_t steady_from = L[0].ts + ((int64_t)cfg->window_days + 2) * DAY;
    size_t steady_off = n;
    double t_steady = 0;
    double u0, s0, u1, s1;
    long f0, f1;
    thread_usage(&u0, &s0, &f0);
    double w0 = now(), t0 = cpu_now();
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        if (steady_off == n && L[off].ts >= steady_from) steady_off = off, t_steady = cpu_now();
        for (size_t i = 0; i < m; i++) expand(&L[off + i], &ev[i]);
        for (size_t i = 0; i < m; i++) {
            ic_clock_view *dst = chunk_views ? &v[i] : v;
            if (by_kind) { /* the same calls, timed apart */
                kind_time *k = &kinds[user_kind(s, ev[i].user)];
                uint64_t ta = ticks();
                if (prefetch) ic_clock_prefetch(s, ev, m, i);
                uint64_t tb = ticks();
                filled += ic_clock_query(s, ev[i].user, ev[i].ts, ev[i].tz_min, dst);
                uint64_t tc = ticks();
                if (ic_clock_apply(s, &ev[i], &err) != IC_OK) exit(1);
                uint64_t te = ticks();
                k->events++, k->ticks += (double)(te - ta);
                k->hint += (double)(tb - ta), k->query += (double)(tc - tb), k->apply += (double)(te - tc);
                if (te - ta > 30000) k->long_ticks += (double)(te - ta);
                continue;
            }
            if (prefetch) ic_clock_prefetch(s, ev, m, i);
            filled += ic_clock_query(s, ev[i].user, ev[i].ts, ev[i].tz_min, dst);
            if (ic_clock_apply(s, &ev[i], &err) != IC_OK) exit(1);
        }
    }
    double t1 = cpu_now(), dt = t1 - t0, wall = now() - w0;
    thread_usage(&u1, &s1, &f1);
    double steady_rate = steady_off < n ? (double)(n - steady_off) / (t1 - t_steady) : 0;
    size_t bytes = ic_clock_bytes(s), users = ic_clock_n_users(s);
    printf("{\"bench\":\"clock_apply_query\",\"log\":\"%s\",\"mode\":\"%s\",\"prefetch\":%s,\"events\":%zu,\"cpu_seconds\":%.3f,"
           "\"wall_seconds\":%.3f,\"events_per_s\":%.0f,\"ns_per_event\":%.1f,\"nonempty_queries\":%ld,\"users\":%zu,"
           "\"bytes\":%zu,\"bytes_per_user\":%.0f,\"k\":%d,\"fields\":%d,\"window_days\":%d,"
           "\"steady_events\":%zu,\"steady_events_per_s\":%.0f,\"run_in_process\":%d,\"warm_mb\":%zu,\"views\":\"%s\","
           "\"user_seconds\":%.3f,\"sys_seconds\":%.3f,\"minor_faults\":%ld}\n",
           log, cfg->refresh == IC_REFRESH_DAILY ? "daily" : "realtime", prefetch ? "true" : "false", n, dt, wall,
           n / dt, 1e9 * dt / n, filled, users, bytes, (double)bytes / (double)(users ? users : 1),
           cfg->top_k, cfg->n_clock, cfg->window_days, n - steady_off, steady_rate, run_in_process, warm_mb, chunk_views ? "chunk" : "one", u1 - u0,
           s1 - s0, f1 - f0);
    if (by_kind) print_kinds(log, kinds, n);
    free(v);
    free(ev);
    ic_clock_free(s);
}

/* The brute-force reference as a store: every query recomputes from the
 * raw events applied so far. */
static void bench_ref(const ic_config *cfg, const cevent *L, size_t n)
{
    ic_event *ev = ic__xmalloc(n * sizeof *ev);
    for (size_t i = 0; i < n; i++) event_init(&ev[i]), expand(&L[i], &ev[i]);
    ic_clock_view *v = ic__xmalloc(sizeof *v);
    double t0 = cpu_now();
    long filled = 0;
    for (size_t i = 0; i < n; i++)
        filled += ic__clock_query_ref(cfg, ev, i, ev[i].user, ev[i].ts, ev[i].tz_min, v);
    double dt = cpu_now() - t0;
    printf("{\"bench\":\"clock_apply_query_ref\",\"mode\":\"%s\",\"events\":%zu,\"cpu_seconds\":%.3f,"
           "\"events_per_s\":%.0f,\"nonempty_queries\":%ld}\n",
           cfg->refresh == IC_REFRESH_DAILY ? "daily" : "realtime", n, dt, n / dt, filled);
    free(v);
    free(ev);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    if (n < 1000) n = 1000;
    ic_config cfg;
    ic_config_default(&cfg); /* k = 3, three fields, 30 days */

    /* 1. Check: 40k events of 400 users over 60 days, every 5th query.
     * BENCH_CLOCK_CHECK=0 skips it and step 2, for counting runs under
     * valgrind only (scripts/clock_counts.sh): a figure of speed always
     * comes from a run that checked. */
    const char *chk = getenv("BENCH_CLOCK_CHECK");
    const int checking = !chk || strcmp(chk, "0");
    const size_t n_check = 40000;
    cevent *small = make_log(n_check, 400, 60, 7);
    for (int mode = 0; mode < 2 && checking; mode++) {
        cfg.refresh = mode ? IC_REFRESH_DAILY : IC_REFRESH_REALTIME;
        long c = check(&cfg, small, n_check, 5);
        printf("{\"bench\":\"clock_check\",\"mode\":\"%s\",\"events\":%zu,\"queries_checked\":%ld,"
               "\"ok\":%s}\n", mode ? "daily" : "realtime", n_check, c, c > 0 ? "true" : "false");
        if (c <= 0) return 1;
    }
    fflush(stdout);

    /* 2. The reference on the first 5k events of the small log. */
    cfg.refresh = IC_REFRESH_REALTIME;
    if (checking) bench_ref(&cfg, small, 5000);
    free(small);

    /* 3. The store on n events of 50k users over 60 days. */
    const char *nu = getenv("BENCH_CLOCK_USERS"); /* for experiments */
    /* One timed run per process (the heap's state carries over from run to
     * run and favours later ones): "r0" realtime without the prefetch
     * hint, "r1" with it, "d0", "d1" daily. */
    const char *only = getenv("BENCH_CLOCK_ONLY");
    cevent *big = make_log(n, nu ? (uint32_t)atoi(nu) : 50000, 60, 11);
    for (int mode = 0; mode < 2; mode++)
        for (int prefetch = 0; prefetch < 2; prefetch++) {
            if (only && (only[0] != "rd"[mode] || only[1] != "01"[prefetch])) continue;
            cfg.refresh = mode ? IC_REFRESH_DAILY : IC_REFRESH_REALTIME;
            bench_fast(&cfg, "zipf", big, n, prefetch);
            fflush(stdout);
        }
    free(big);

    /* 4. The store on the simulator's log: 8,000 users over 60 days
     * (about 2.6M events), realtime with the hint ("s1"; "s0" makes the
     * log and times nothing: the baseline of a counting run). */
    if (!only || !strcmp(only, "s1") || !strcmp(only, "s0")) {
        size_t ns;
        cevent *sim = synth_log(8000, 60, &ns);
        cfg.refresh = IC_REFRESH_REALTIME;
        if (!only || !strcmp(only, "s1")) bench_fast(&cfg, "synth", sim, ns, 1);
        free(sim);
    }
    return 0;
}
