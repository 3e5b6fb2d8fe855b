/* bench_score.c: scoring latency of one ranking request, one thread: a
 * user, a time, and 100 or 1000 candidate items; the user's clock is read
 * once (ic_sample_build), every candidate shares it, and the trained model
 * predicts the candidates in one ic_model_predict call. Prints p50 and p99
 * of wall and thread-CPU time per request, one JSON object per line
 * (docs/PERFORMANCE.md, "Scoring"; target: 1000 candidates under 5 ms).
 *
 * First it trains a model through the engine on a small simulated log
 * (one pass, APPLY | TRAIN), then checks the fast path: the request's
 * predictions must equal the engine's predictions for the same samples
 * (ic_engine_step with IC_STEP_PREDICT, which builds a sample per event
 * and predicts in batch-sized chunks), and those of the model's plain
 * reference path (ic__model_set_reference: no sharing between the
 * candidates); exits 1 if either differs by more than 1e-6, or if the
 * request did not take the shared path of a ranking request (model.c).
 *
 * Deliberately not here: HTTP and JSON (the server's own benchmark,
 * bench/bench_serve.sh), candidate retrieval (candidates are items of the
 * log with their attributes, prepared once).
 * Usage: bench_score [--users N] [--days N] [--requests N] */
#include "model.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

static double clk(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}


static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of v[n] (sorts v): nearest rank. */
static double quantile(double *v, int n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    int i = (int)ceil(q * n) - 1;
    return v[i < 0 ? 0 : i];
}

/* A trained engine and what requests need: candidate items (one event of
 * each, with its attributes), users with their time zones, a request time
 * after the log. */
typedef struct {
    ic_config cfg;
    ic_engine *e;
    ic_event *cand;        /* (n_cand) templates: item, fields */
    int n_cand;
    uint64_t *user;        /* (n_user) */
    int32_t *tz;           /* (n_user) */
    int n_user;
    int64_t t;             /* request time */
} world;

/* Distinct items (first event of each) and users (last tz) of the log. */
static void collect(world *w, const ic_log *log, int max_cand)
{
    w->cand = ic__xmalloc(max_cand * sizeof *w->cand);
    w->user = ic__xmalloc(log->n * sizeof *w->user);
    w->tz = ic__xmalloc(log->n * sizeof *w->tz);
    for (size_t i = 0; i < log->n; i++) {
        const ic_event *ev = &log->ev[i];
        int seen = 0;
        for (int k = 0; k < w->n_cand && !seen; k++) seen = w->cand[k].item == ev->item;
        if (!seen && w->n_cand < max_cand) w->cand[w->n_cand++] = *ev;
        int u = 0;
        while (u < w->n_user && w->user[u] != ev->user) u++;
        if (u == w->n_user) w->user[w->n_user++] = ev->user;
        w->tz[u] = ev->tz_min;
    }
    w->t = log->ev[log->n - 1].ts + 60;
}

static void setup(world *w, int users, int days, int max_cand)
{
    ic_error err;
    memset(w, 0, sizeof *w);
    ic_config_default(&w->cfg);
    ic_synth_opts so;
    ic_synth_opts_default(&so);
    so.n_users = users;
    so.n_days = days;
    char path[] = "/tmp/bench_score_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    IC_ASSERT(f && ic_synth_write_csv(&so, f, NULL, &err) == IC_OK && fclose(f) == 0);
    ic_log log;
    IC_ASSERT(ic_log_load(&log, path, &w->cfg, IC_BAD_ROWS_FAIL, &err) == IC_OK);
    unlink(path);
    IC_ASSERT(ic_engine_create(&w->e, &w->cfg, NULL, NULL, &err) == IC_OK);
    double t0 = clk(CLOCK_MONOTONIC), loss;
    IC_ASSERT(ic_engine_step(w->e, log.ev, log.n, IC_STEP_APPLY | IC_STEP_TRAIN, NULL, &loss,
                             &err) == IC_OK);
    collect(w, &log, max_cand);
    printf("{\"bench\":\"score_setup\",\"log_events\":%zu,\"users\":%d,\"items\":%d,"
           "\"train_seconds\":%.2f,\"train_loss\":%.4f,\"embedding_rows\":%zu}\n",
           log.n, w->n_user, w->n_cand, clk(CLOCK_MONOTONIC) - t0, loss,
           ic_model_n_rows(ic_engine_model(w->e)));
    ic_log_free(&log);
}

/* One request: n candidates for user u at w->t. The per-request work is
 * timed by the caller: stamping user and time on the candidates, one clock
 * read, the samples, one predict. */
static void request(world *w, int u, int n, ic_event *ev, ic_sample *s, ic_clock_view *view,
                    float *probs)
{
    for (int i = 0; i < n; i++) {
        ev[i].user = w->user[u];
        ev[i].ts = w->t;
        ev[i].tz_min = w->tz[u];
    }
    ic_sample first;
    ic_sample_build(ic_engine_clock(w->e), &w->cfg, &ev[0], view, &first);
    for (int i = 0; i < n; i++) s[i] = (ic_sample){&ev[i], first.clock};
    ic_model_predict(ic_engine_model(w->e), s, n, probs);
}

/* The engine's own predictions for the same candidates must match, and
 * so must the plain path's (the model's reference: every candidate
 * computed in full); the request must take the shared path. */
static int check(world *w, int n, ic_event *ev, ic_sample *s, ic_clock_view *view, float *probs)
{
    ic_error err;
    int T = w->cfg.n_tasks, shared = 1;
    ic_model *m = ic_engine_model(w->e);
    float *ref = ic__xmalloc((size_t)n * T * sizeof *ref);
    double worst = 0, worst_plain = 0;
    for (int u = 0; u < w->n_user && u < 20; u++) {
        request(w, u, n, ev, s, view, probs);
        shared &= ic__model_last_shared(m);
        IC_ASSERT(ic_engine_step(w->e, ev, n, IC_STEP_PREDICT, ref, NULL, &err) == IC_OK);
        for (int i = 0; i < n * T; i++) worst = fmax(worst, fabs((double)probs[i] - ref[i]));
        ic__model_set_reference(m, 1);
        ic_model_predict(m, s, n, ref);
        ic__model_set_reference(m, 0);
        for (int i = 0; i < n * T; i++)
            worst_plain = fmax(worst_plain, fabs((double)probs[i] - ref[i]));
    }
    free(ref);
    printf("{\"bench\":\"score_check\",\"candidates\":%d,\"users\":%d,"
           "\"max_abs_diff_vs_engine\":%.3g,\"max_abs_diff_vs_plain\":%.3g,\"shared_path\":%d}\n",
           n, w->n_user < 20 ? w->n_user : 20, worst, worst_plain, shared);
    if (worst > 1e-6) fprintf(stderr, "bench_score: predictions differ from the engine's\n");
    if (worst_plain > 1e-6)
        fprintf(stderr, "bench_score: predictions differ from the plain path's\n");
    if (!shared) fprintf(stderr, "bench_score: a request did not take the shared path\n");
    return worst <= 1e-6 && worst_plain <= 1e-6 && shared;
}

static void timed(world *w, int n, int reqs, ic_event *ev, ic_sample *s, ic_clock_view *view,
                  float *probs)
{
    double *wall = ic__xmalloc(reqs * sizeof *wall), *cpu = ic__xmalloc(reqs * sizeof *cpu);
    for (int i = 0; i < n; i++) ev[i] = w->cand[i];
    for (int r = 0; r < 20; r++) request(w, r % w->n_user, n, ev, s, view, probs); /* warm up */
    double l = load1(), sum = 0;
    for (int r = 0; r < reqs; r++) {
        double w0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
        request(w, (r * 7919) % w->n_user, n, ev, s, view, probs);
        cpu[r] = clk(CLOCK_THREAD_CPUTIME_ID) - c0;
        wall[r] = clk(CLOCK_MONOTONIC) - w0;
        sum += cpu[r];
    }
    double cp50 = quantile(cpu, reqs, 0.5), cp99 = quantile(cpu, reqs, 0.99);
    printf("{\"bench\":\"score_latency\",\"threads\":1,\"candidates\":%d,\"requests\":%d,"
           "\"wall_ms_p50\":%.3f,\"wall_ms_p99\":%.3f,\"cpu_ms_p50\":%.3f,\"cpu_ms_p99\":%.3f,"
           "\"cpu_ms_mean\":%.3f,\"candidates_per_s_cpu\":%.0f,\"load1\":%.2f}\n",
           n, reqs, 1e3 * quantile(wall, reqs, 0.5), 1e3 * quantile(wall, reqs, 0.99), 1e3 * cp50,
           1e3 * cp99, 1e3 * sum / reqs, n * reqs / sum, l);
    free(wall);
    free(cpu);
}

int main(int argc, char **argv)
{
    int users = 300, days = 21, reqs = 1000;
    static const struct option o[] = {{"users", 1, 0, 'u'}, {"days", 1, 0, 'd'},
                                      {"requests", 1, 0, 'r'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'u') users = atoi(optarg);
        else if (c == 'd') days = atoi(optarg);
        else if (c == 'r') reqs = atoi(optarg);
        else {
            fprintf(stderr, "usage: bench_score [--users N] [--days N] [--requests N]\n");
            return 2;
        }
    }
    if (users < 1 || days < 2 || reqs < 10) {
        fprintf(stderr, "bench_score: --users >= 1, --days >= 2, --requests >= 10\n");
        return 2;
    }
    openblas_set_num_threads(1);
    enum { MAXC = 1000 };
    world w;
    setup(&w, users, days, MAXC);
    if (w.n_cand < MAXC) {
        fprintf(stderr, "bench_score: the log has only %d items; need %d\n", w.n_cand, MAXC);
        return 1;
    }
    ic_event *ev = ic__xmalloc(MAXC * sizeof *ev);
    ic_sample *s = ic__xmalloc(MAXC * sizeof *s);
    ic_clock_view *view = ic__xalloc_aligned(sizeof *view);
    float *probs = ic__xmalloc((size_t)MAXC * w.cfg.n_tasks * sizeof *probs);
    int ok = 1;
    for (int n = 100; n <= MAXC; n *= 10) {
        for (int i = 0; i < n; i++) ev[i] = w.cand[i];
        ok &= check(&w, n, ev, s, view, probs);
    }
    if (!ok) return 1;
    timed(&w, 100, reqs * 4, ev, s, view, probs);
    timed(&w, MAXC, reqs, ev, s, view, probs);
    free(ev), free(s), free(view), free(probs);
    free(w.cand), free(w.user), free(w.tz);
    ic_engine_free(w.e);
    return 0;
}
