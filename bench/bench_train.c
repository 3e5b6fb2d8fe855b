/* bench_train.c: training throughput of the ranking model at the reference
 * configuration (the built-in music config: d = 16, 3 full-rank cross
 * layers, MLP 256-128-64, two tasks, Gaussian clock, batch 512) on a
 * simulated log, and the model FLOPs utilisation against the sgemm rate
 * this same run measures at the model's own GEMM shapes. Prints one JSON
 * object per line (docs/PERFORMANCE.md, "Training").
 *
 * What it measures, in order:
 *  1. features: the clock store as the engine uses it (ic_sample_build,
 *     then ic_clock_apply) over the whole log: events/s.
 *  2. check: the model step on prebuilt samples against the engine on the
 *     same events (losses of the first batches must be bit-equal), and a
 *     2-thread run against the 1-thread one (tolerance). Exits 1 on failure.
 *  3. model step alone: ic_model_train_step on prebuilt samples (clock
 *     views computed beforehand, stored compactly and expanded into a
 *     batch of views outside the timed region), 1 and 2 BLAS threads.
 *  4. engine step: ic_engine_step(APPLY | TRAIN) on the same events (clock
 *     query + apply + train), 1 and 2 BLAS threads; then model and engine
 *     step on 2 data-parallel model threads (ic_model_set_threads, BLAS on
 *     one: what `iclock train --threads 2` runs).
 *  5. where a step's time goes: plan, forward, backward, optimizer (the
 *     model's internal hooks, model.h).
 *  6. the sgemm rate at the model's GEMM shapes, and the MFU.
 * With --dump DIR it also writes the exact samples (and the log, and a
 * trained model's weights with its predictions) as .npy files for
 * tools/reference/torch_bench.py and clock_pandas.py.
 *
 * Deliberately not here: the Python side (scripts/bench_all.sh), the clock
 * store alone (bench_clock.c), scoring (bench_score.c). Timing is wall time
 * beside thread and process CPU time, since the machine is shared.
 *
 * Usage: bench_train [--users N] [--days N] [--samples N] [--reps N]
 *                    [--log FILE] [--dump DIR] [--model-only]
 * --model-only: after building the samples, only the 1-thread model step,
 * reps times (for perf record). */
#include "model.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

/* ---- timers ------------------------------------------------------------- */

typedef struct {
    double wall, thread, proc;
} tick;

static double clk(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static tick tick_now(void)
{
    return (tick){clk(CLOCK_MONOTONIC), clk(CLOCK_THREAD_CPUTIME_ID), clk(CLOCK_PROCESS_CPUTIME_ID)};
}

/* acc += now - t0 */
static void tick_add(tick *acc, tick t0)
{
    tick t1 = tick_now();
    acc->wall += t1.wall - t0.wall;
    acc->thread += t1.thread - t0.thread;
    acc->proc += t1.proc - t0.proc;
}


/* ---- the log and the prebuilt samples -------------------------------------- */

/* Compact clock views of a slice of the log: per sample the counts n[t][c]
 * (24 * NC bytes) and the filled places in (t, c, k) order. A full view is
 * ~9 KB; this keeps ~1-2 KB per sample so tens of thousands fit. */
typedef struct {
    size_t s0, n;        /* samples are log events s0 .. s0+n-1 */
    int NC, k;
    uint8_t *cnt;        /* (n, 24, NC) */
    size_t *off;         /* (n + 1) into val/score */
    uint64_t *val;       /* (places) */
    float *score;        /* (places) */
    size_t cap;
} compact;

static void compact_push(compact *c, size_t i, const ic_clock_view *v)
{
    size_t o = c->off[i];
    for (int t = 0; t < IC_HOURS; t++)
        for (int f = 0; f < c->NC; f++) {
            int n = ic_clock_view_n(v, t, f);
            c->cnt[(i * IC_HOURS + t) * c->NC + f] = (uint8_t)n;
            if (o + n > c->cap) {
                c->cap = 2 * c->cap + 64;
                c->val = ic__xrealloc(c->val, c->cap * sizeof *c->val);
                c->score = ic__xrealloc(c->score, c->cap * sizeof *c->score);
            }
            if (n) memcpy(c->val + o, ic_clock_view_values(v, t, f), n * sizeof *c->val);
            if (n) memcpy(c->score + o, ic_clock_view_scores(v, t, f), n * sizeof *c->score);
            o += n;
        }
    c->off[i + 1] = o;
}

/* Expands sample i's view into v (only the places the model reads). */
static void compact_expand(const compact *c, size_t i, ic_clock_view *v)
{
    ic_clock_view_init(v, c->NC, c->k);
    size_t o = c->off[i];
    for (int t = 0; t < IC_HOURS; t++)
        for (int f = 0; f < c->NC; f++) {
            int n = c->cnt[(i * IC_HOURS + t) * c->NC + f];
            if (n) ic_clock_view_set(v, t, f, n, c->val + o, c->score + o);
            o += n;
        }
}

/* Batch b of the slice as samples over views[] (B entries). Returns B. */
static int batch_samples(const compact *c, const ic_log *log, const ic_config *cfg, size_t b,
                         ic_clock_view *views, ic_sample *s)
{
    size_t B = (size_t)cfg->batch, i0 = b * B;
    int n = (int)(c->n - i0 < B ? c->n - i0 : B);
    for (int i = 0; i < n; i++) {
        s[i].ev = &log->ev[c->s0 + i0 + i];
        s[i].clock = NULL;
        if (cfg->clock == IC_CLOCK_NONE) continue;
        compact_expand(c, i0 + i, &views[i]);
        s[i].clock = &views[i];
    }
    return n;
}

/* Pass 1 (timed): every event's sample then its apply, as the engine's
 * build_chunk does. Pass 2 (untimed): the same, keeping the slice's views. */
static void features(const ic_log *log, const ic_config *cfg, compact *c)
{
    ic_error err;
    ic_clock_view *v = ic__xalloc_aligned(sizeof *v);
    ic_sample s;
    for (int pass = 0; pass < 2; pass++) {
        ic_clock_store *st;
        IC_ASSERT(ic_clock_create(&st, cfg, &err) == IC_OK);
        tick acc = {0}, t0 = tick_now();
        double l = load1();
        for (size_t i = 0; i < log->n; i++) {
            ic_sample_build(st, cfg, &log->ev[i], v, &s);
            if (pass && i >= c->s0 && i < c->s0 + c->n) compact_push(c, i - c->s0, v);
            if (ic_clock_apply(st, &log->ev[i], &err) != IC_OK) {
                fprintf(stderr, "bench_train: %s\n", err.msg);
                exit(1);
            }
        }
        tick_add(&acc, t0);
        if (!pass)
            printf("{\"bench\":\"features_c\",\"what\":\"ic_sample_build + ic_clock_apply per event\","
                   "\"events\":%zu,\"wall_seconds\":%.3f,\"cpu_seconds\":%.3f,"
                   "\"events_per_s_wall\":%.0f,\"events_per_s_cpu\":%.0f,\"users_held\":%zu,"
                   "\"store_bytes\":%zu,\"load1\":%.2f}\n",
                   log->n, acc.wall, acc.thread, log->n / acc.wall, log->n / acc.thread,
                   ic_clock_n_users(st), ic_clock_bytes(st), l);
        ic_clock_free(st);
    }
    free(v);
}

/* ---- runs ------------------------------------------------------------------ */

typedef struct {
    const ic_log *log;
    const ic_config *cfg;
    const compact *c;
    ic_clock_view *views; /* (batch) */
    ic_sample *s;         /* (batch) */
    size_t n_batches;
} bench;

typedef struct {
    tick t;
    double loss; /* mean over the pass */
    size_t samples;
} run_result;

/* One fresh model trained over the slice; only train steps are timed.
 * losses (n_batches) may be NULL; returns the model if keep, else frees it. */
static ic_model *run_model(const bench *bn, run_result *r, float *losses, size_t max_batches,
                           int keep, int model_threads)
{
    ic_error err;
    ic_model *m;
    IC_ASSERT(ic_model_create(&m, bn->cfg, &err) == IC_OK);
    IC_ASSERT(ic_model_set_threads(m, model_threads) == model_threads);
    memset(r, 0, sizeof *r);
    double lsum = 0;
    size_t nb = max_batches < bn->n_batches ? max_batches : bn->n_batches;
    for (size_t b = 0; b < nb; b++) {
        int n = batch_samples(bn->c, bn->log, bn->cfg, b, bn->views, bn->s);
        tick t0 = tick_now();
        float l = ic_model_train_step(m, bn->s, n, NULL);
        tick_add(&r->t, t0);
        if (losses) losses[b] = l;
        lsum += (double)l * n;
        r->samples += n;
    }
    r->loss = lsum / (double)r->samples;
    if (keep) return m;
    ic_model_free(m);
    return NULL;
}

/* A fresh engine: clock applied up to the slice (untimed), then APPLY |
 * TRAIN over the slice's events one batch per call (timed). */
static void run_engine(const bench *bn, run_result *r, float *losses, size_t max_batches,
                       int model_threads)
{
    ic_error err;
    ic_engine *e;
    IC_ASSERT(ic_engine_create(&e, bn->cfg, NULL, NULL, &err) == IC_OK);
    IC_ASSERT(ic_engine_set_threads(e, model_threads) == model_threads);
    const ic_event *ev = bn->log->ev;
    IC_ASSERT(ic_engine_step(e, ev, bn->c->s0, IC_STEP_APPLY, NULL, NULL, &err) == IC_OK);
    memset(r, 0, sizeof *r);
    size_t B = (size_t)bn->cfg->batch, nb = max_batches < bn->n_batches ? max_batches : bn->n_batches;
    double lsum = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = bn->c->s0 + b * B, n = bn->c->n - b * B < B ? bn->c->n - b * B : B;
        double loss;
        tick t0 = tick_now();
        IC_ASSERT(ic_engine_step(e, ev + i0, n, IC_STEP_APPLY | IC_STEP_TRAIN, NULL, &loss, &err) ==
                  IC_OK);
        tick_add(&r->t, t0);
        if (losses) losses[b] = (float)loss;
        lsum += loss * (double)n;
        r->samples += n;
    }
    r->loss = lsum / (double)r->samples;
    ic_engine_free(e);
}

static void print_run(const char *name, int threads, int rep, const run_result *r, double l)
{
    printf("{\"bench\":\"%s\",\"threads\":%d,\"rep\":%d,\"samples\":%zu,\"wall_seconds\":%.3f,"
           "\"thread_cpu_seconds\":%.3f,\"process_cpu_seconds\":%.3f,\"samples_per_s_wall\":%.0f,"
           "\"samples_per_s_thread_cpu\":%.0f,\"mean_loss\":%.5f,\"load1\":%.2f}\n",
           name, threads, rep, r->samples, r->t.wall, r->t.thread, r->t.proc,
           r->samples / r->t.wall, r->samples / r->t.thread, r->loss, l);
    fflush(stdout);
}

/* The check: prebuilt samples reproduce the engine's training bit for bit;
 * 2 BLAS threads, and 2 data-parallel model threads, agree with 1 within a
 * tolerance (sums split differently). */
static int check(const bench *bn, size_t nb)
{
    float *le = ic__xmalloc(nb * sizeof *le), *lm = ic__xmalloc(nb * sizeof *lm);
    float *l2 = ic__xmalloc(nb * sizeof *l2), *ld = ic__xmalloc(nb * sizeof *ld);
    run_result r;
    openblas_set_num_threads(1);
    run_engine(bn, &r, le, nb, 1);
    run_model(bn, &r, lm, nb, 0, 1);
    openblas_set_num_threads(2);
    run_model(bn, &r, l2, nb, 0, 1);
    openblas_set_num_threads(1);
    run_model(bn, &r, ld, nb, 0, 2);
    int equal = 1;
    double d2 = 0;
    for (size_t b = 0; b < nb; b++) {
        equal &= le[b] == lm[b];
        d2 = fmax(d2, fabs((double)l2[b] - lm[b]) / fabs((double)lm[b]));
        d2 = fmax(d2, fabs((double)ld[b] - lm[b]) / fabs((double)lm[b]));
    }
    printf("{\"bench\":\"train_check\",\"batches\":%zu,\"engine_vs_prebuilt\":\"%s\","
           "\"loss_first\":%.6f,\"loss_last\":%.6f,\"max_rel_diff_2_threads\":%.2e}\n",
           nb, equal ? "bit-equal" : "DIFFERENT", lm[0], lm[nb - 1], d2);
    int ok = equal && d2 < 1e-4 && lm[nb - 1] < lm[0];
    if (!ok)
        fprintf(stderr, "bench_train: check failed (engine vs prebuilt %s, 2-thread rel diff %.2e, "
                "loss %.5f -> %.5f)\n", equal ? "equal" : "differ", d2, lm[0], lm[nb - 1]);
    free(le);
    free(lm);
    free(l2);
    free(ld);
    return ok;
}

/* ---- where the time goes ---------------------------------------------------- */

/* Per batch: plan, forward, backward through the hooks (then the plan is
 * dropped), and a full train step on the same batch; the optimizer and
 * the rest are the step minus the three. One BLAS thread. */
static void breakdown(const bench *bn, tick ph[4])
{
    ic_error err;
    ic_model *m;
    IC_ASSERT(ic_model_create(&m, bn->cfg, &err) == IC_OK);
    ic__net_f *net = ic__model_net(m);
    memset(ph, 0, 4 * sizeof *ph);
    for (size_t b = 0; b < bn->n_batches; b++) {
        int n = batch_samples(bn->c, bn->log, bn->cfg, b, bn->views, bn->s);
        tick t0 = tick_now();
        ic__model_plan_begin(m, bn->s, n, 1, 1);
        tick_add(&ph[0], t0);
        t0 = tick_now();
        ic__net_zero_grad_f(net);
        ic__net_forward_f(net, ic__model_plan(m));
        tick_add(&ph[1], t0);
        t0 = tick_now();
        ic__net_backward_f(net, ic__model_plan(m));
        tick_add(&ph[2], t0);
        ic__model_plan_end(m);
        t0 = tick_now();
        ic_model_train_step(m, bn->s, n, NULL);
        tick_add(&ph[3], t0);
    }
    ic_model_free(m);
}

/* ---- GEMMs ---------------------------------------------------------------- */

typedef struct {
    const char *what;
    int ta, tb, M, N, K; /* CblasTrans if ta/tb */
} gemm;

#define MAX_GEMM 128

static void add_gemm(gemm *g, int *n, const char *what, int ta, int tb, int M, int N, int K)
{
    IC_ASSERT(*n < MAX_GEMM);
    g[(*n)++] = (gemm){what, ta, tb, M, N, K};
}

/* The GEMMs of one training step at batch B, as src/nn_impl.h issues
 * them: a linear layer's forward (B,in)x(in,out)^T, backward dX (B,out)x
 * (out,in) and dW (out,B)x(B,in). Returns their count. */
static int step_gemms(const ic__shape *sh, int B, gemm *g)
{
    int n = 0, D = sh->D;
#define LINEAR(nm, in, out, dx)                                        \
    do {                                                               \
        add_gemm(g, &n, nm " fwd", 0, 1, B, out, in);                  \
        if (dx) add_gemm(g, &n, nm " dX", 0, 0, B, in, out);           \
        add_gemm(g, &n, nm " dW", 1, 0, out, in, B);                   \
    } while (0)
    for (int l = 0; l < sh->L; l++) {
        if (sh->r == 0) {
            LINEAR("cross W", D, D, 1);
        } else {
            LINEAR("cross V", D, sh->r, 1);
            LINEAR("cross U", sh->r, D, 1);
        }
    }
    int C = D;
    for (int i = 0; i < sh->n_mlp; i++) {
        LINEAR("mlp", C, sh->mlp[i], 1);
        C = sh->mlp[i];
    }
    if (sh->parallel) {
        LINEAR("head x_L", D, sh->T, 1);
        if (sh->H) LINEAR("head deep", sh->H, sh->T, 1);
    } else {
        LINEAR("head", sh->S, sh->T, 1);
    }
#undef LINEAR
    return n;
}

static double gemm_flops(const gemm *g) { return 2.0 * g->M * g->N * g->K; }

/* Times the GEMM list (all of them in order, as one step issues them)
 * for at least min_s seconds (wall); per[i] gets each GEMM's own thread
 * CPU time (meaningful with one BLAS thread). */
static tick time_gemms(const gemm *g, int n, double min_s, double *per, long *iters)
{
    size_t big = 0;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)g[i].M * g[i].K, b = (size_t)g[i].K * g[i].N, c = (size_t)g[i].M * g[i].N;
        size_t m = a > b ? a : b;
        big = m > c ? (m > big ? m : big) : (c > big ? c : big);
    }
    float *A = ic__xalloc_aligned(big * 4), *Bm = ic__xalloc_aligned(big * 4),
          *Cm = ic__xalloc_aligned(big * 4);
    ic_rng r;
    ic__rng_seed(&r, 7);
    for (size_t i = 0; i < big; i++) {
        A[i] = (float)(ic__rng_uniform(&r) - 0.5);
        Bm[i] = (float)(ic__rng_uniform(&r) - 0.5);
    }
    for (int i = 0; i < n; i++) per[i] = 0;
    tick acc = {0};
    long it = 0;
    while (acc.wall < min_s) {
        for (int i = 0; i < n; i++) {
            const gemm *q = &g[i];
            int lda = q->ta ? q->M : q->K, ldb = q->tb ? q->K : q->N;
            tick t0 = tick_now();
            cblas_sgemm(CblasRowMajor, q->ta ? CblasTrans : CblasNoTrans,
                        q->tb ? CblasTrans : CblasNoTrans, q->M, q->N, q->K, 1.0f, A, lda, Bm, ldb,
                        1.0f, Cm, q->N);
            tick t1 = tick_now();
            per[i] += t1.thread - t0.thread;
            acc.wall += t1.wall - t0.wall;
            acc.thread += t1.thread - t0.thread;
            acc.proc += t1.proc - t0.proc;
        }
        it++;
    }
    *iters = it;
    free(A);
    free(Bm);
    free(Cm);
    return acc;
}

/* ---- the dump (.npy files) ---------------------------------------------------- */

/* Writes a little-endian .npy (format 1.0) of shape (d0) or (d0, d1). */
static void npy(const char *dir, const char *name, const char *descr, const void *data,
                size_t esize, size_t d0, size_t d1)
{
    char path[1024], hdr[256];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "bench_train: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    int h = d1 ? snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }",
                          descr, d0, d1)
               : snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }",
                          descr, d0);
    int total = 10 + h + 1, pad = (64 - total % 64) % 64;
    uint16_t hl = (uint16_t)(h + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, h, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    size_t n = d0 * (d1 ? d1 : 1);
    if (n && fwrite(data, esize, n, f) != n) exit(1);
    if (fclose(f)) exit(1);
}

/* Dense tensors of m under prefix ("param" or "init"), named as nn.h's
 * ic__shape_tensor ("cross.0.w" -> param_cross.0.w.npy). */
static void dump_params(ic_model *m, const char *dir, const char *prefix)
{
    char nm[32], file[64];
    size_t off, cnt, n;
    const ic__shape *sh = ic__model_shape(m);
    for (int i = 0; ic__shape_tensor(sh, i, nm, &off, &cnt); i++) {
        snprintf(file, sizeof file, "%s_%s", prefix, nm);
        npy(dir, file, "<f4", ic__model_tensor(m, nm, 0, &n), 4, cnt, 0);
    }
}

/* Value ids of the fields in the log with their strings (names.tsv), so
 * the Python side can match its clock to ours (ties rank by id). */
static void dump_names(const ic_log *log, const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/names.tsv", dir);
    FILE *f = fopen(path, "w");
    IC_ASSERT(f);
    size_t cap = 1024, n = 0;
    uint64_t *seen = ic__xcalloc(cap, sizeof *seen); /* open addressing, 0 = empty */
    for (size_t i = 0; i < log->n; i++) {
        const ic_event *ev = &log->ev[i];
        for (int k = 0; k < ev->voff[IC_MAX_FIELDS] && k < IC_MAX_VALUES; k++) {
            uint64_t id = ev->val[k];
            if (!id) continue;
            size_t h = id & (cap - 1);
            while (seen[h] && seen[h] != id) h = (h + 1) & (cap - 1);
            if (seen[h]) continue;
            seen[h] = id;
            IC_ASSERT(++n < cap / 2); /* a few hundred values at most */
            const char *s = ic_names_get(log->names, id);
            fprintf(f, "%llu\t%s\n", (unsigned long long)id, s ? s : "");
        }
    }
    free(seen);
    IC_ASSERT(fclose(f) == 0);
}

/* Every table's ids and rows under prefix ("init" or "trained"). */
static void dump_rows(ic_model *m, const char *dir, const char *prefix, int n_tab)
{
    char nm[64];
    for (int t = 0; t < n_tab; t++) {
        ic__emb *e = ic__model_table(m, t);
        snprintf(nm, sizeof nm, "%s_ids_%d", prefix, t);
        npy(dir, nm, "<u8", e->ids, 8, e->n, 0);
        snprintf(nm, sizeof nm, "%s_rows_%d", prefix, t);
        npy(dir, nm, "<f4", e->rows, 4, e->n, (size_t)e->d);
    }
}

static void dump_meta(const bench *bn, const char *dir, int check_batches)
{
    const ic_config *c = bn->cfg;
    char path[1024];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    IC_ASSERT(f);
    fprintf(f, "{\"s0\": %zu, \"n\": %zu, \"batch\": %d, \"dim\": %d, \"n_fields\": %d, "
            "\"clock\": \"%s\", \"clock_sigma\": %.9g, \"window_days\": %d, \"top_k\": %d, "
            "\"cross_layers\": %d, \"cross_rank\": %d, \"structure\": \"%s\", \"lr\": %.9g, "
            "\"emb_lr\": %.9g, \"l2_emb\": %.9g, \"init_std\": %.9g, \"adam_beta1\": %.9g, "
            "\"adam_beta2\": %.9g, \"adam_eps\": %.9g, \"emb_optim\": \"%s\", "
            "\"check_batches\": %d, \"events\": %zu",
            bn->c->s0, bn->c->n, c->batch, c->dim, c->n_fields, ic_clock_kind_name(c->clock),
            c->clock_sigma, c->window_days, c->top_k, c->cross_layers, c->cross_rank,
            ic_structure_name(c->structure), c->lr, c->emb_lr, c->l2_emb, c->init_std,
            c->adam_beta1, c->adam_beta2, c->adam_eps, ic_optim_name(c->emb_optim), check_batches,
            bn->log->n);
    fprintf(f, ", \"fields\": [");
    for (int i = 0; i < c->n_fields; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", c->field[i]);
    fprintf(f, "], \"clock_fields\": [");
    for (int i = 0; i < c->n_clock; i++) fprintf(f, "%s%d", i ? ", " : "", c->clock_field[i]);
    fprintf(f, "], \"mlp\": [");
    for (int i = 0; i < c->n_mlp; i++) fprintf(f, "%s%d", i ? ", " : "", c->mlp[i]);
    fprintf(f, "], \"task_weights\": [");
    for (int i = 0; i < c->n_tasks; i++) fprintf(f, "%s%.9g", i ? ", " : "", c->task[i].weight);
    fprintf(f, "], \"actions\": {");
    for (int i = 0; i < c->n_actions; i++)
        fprintf(f, "%s\"%s\": %.9g", i ? ", " : "", c->action[i].name, c->action[i].weight);
    fprintf(f, "}}\n");
    IC_ASSERT(fclose(f) == 0);
}

/* The slice's samples (events, field values, the compact clock); the
 * model's initial state (dense block, and the rows training will draw,
 * made by planning every batch in order: the rows are drawn when planned);
 * a model trained on the first check_batches batches with its losses,
 * weights, rows and predictions on batch 0. */
static void dump(const bench *bn, const char *dir, int check_batches)
{
    const compact *c = bn->c;
    const ic_config *cfg = bn->cfg;
    size_t n = c->n, F = (size_t)cfg->n_fields, T = (size_t)cfg->n_tasks;
    int64_t *ts = ic__xmalloc(n * 8), *foff = ic__xmalloc((n * F + 1) * 8), *coff = ic__xmalloc((n + 1) * 8);
    int32_t *tz = ic__xmalloc(n * 4), *hour = ic__xmalloc(n * 4), *dow = ic__xmalloc(n * 4);
    uint64_t *user = ic__xmalloc(n * 8), *item = ic__xmalloc(n * 8), *fval = ic__xmalloc(n * IC_MAX_VALUES * 8);
    float *label = ic__xmalloc(n * T * 4);
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        const ic_event *ev = &bn->log->ev[c->s0 + i];
        ts[i] = ev->ts;
        tz[i] = ev->tz_min;
        hour[i] = ic_local_hour(ev->ts, ev->tz_min);
        dow[i] = ic_local_dow(ev->ts, ev->tz_min);
        user[i] = ev->user;
        item[i] = ev->item;
        for (size_t t = 0; t < T; t++) label[i * T + t] = ev->label[t];
        for (size_t f = 0; f < F; f++) {
            foff[i * F + f] = (int64_t)nv;
            for (int k = ev->voff[f]; k < ev->voff[f + 1]; k++) fval[nv++] = ev->val[k];
        }
        coff[i] = (int64_t)c->off[i];
    }
    foff[n * F] = (int64_t)nv;
    coff[n] = (int64_t)c->off[n];
    npy(dir, "ts", "<i8", ts, 8, n, 0);
    npy(dir, "tz", "<i4", tz, 4, n, 0);
    npy(dir, "hour", "<i4", hour, 4, n, 0);
    npy(dir, "dow", "<i4", dow, 4, n, 0);
    npy(dir, "user", "<u8", user, 8, n, 0);
    npy(dir, "item", "<u8", item, 8, n, 0);
    npy(dir, "label", "<f4", label, 4, n, T);
    npy(dir, "fval_off", "<i8", foff, 8, n * F + 1, 0);
    npy(dir, "fval", "<u8", fval, 8, nv, 0);
    npy(dir, "clock_cnt", "|u1", c->cnt, 1, n, (size_t)IC_HOURS * c->NC);
    npy(dir, "clock_off", "<i8", coff, 8, n + 1, 0);
    npy(dir, "clock_val", "<u8", c->val, 8, c->off[n], 0);
    npy(dir, "clock_score", "<f4", c->score, 4, c->off[n], 0);
    free(ts), free(foff), free(coff), free(tz), free(hour), free(dow), free(user), free(item);
    free(fval), free(label);

    ic_error err;
    ic_model *m;
    IC_ASSERT(ic_model_create(&m, cfg, &err) == IC_OK);
    int n_tab = 2 + cfg->n_fields;
    dump_params(m, dir, "init");
    for (size_t b = 0; b < bn->n_batches; b++) {
        int nb = batch_samples(c, bn->log, cfg, b, bn->views, bn->s);
        ic__model_plan_begin(m, bn->s, nb, 1, 1);
        ic__model_plan_end(m);
    }
    dump_rows(m, dir, "init", n_tab);
    ic_model_free(m);

    run_result r;
    float *loss = ic__xmalloc(check_batches * sizeof *loss);
    m = run_model(bn, &r, loss, (size_t)check_batches, 1, 1);
    npy(dir, "check_losses", "<f4", loss, 4, (size_t)check_batches, 0);
    dump_params(m, dir, "trained");
    dump_rows(m, dir, "trained", n_tab);
    int nb = batch_samples(c, bn->log, cfg, 0, bn->views, bn->s);
    float *probs = ic__xmalloc((size_t)nb * T * 4);
    ic_model_predict(m, bn->s, nb, probs);
    npy(dir, "check_probs", "<f4", probs, 4, (size_t)nb, T);
    free(probs);
    free(loss);
    ic_model_free(m);
    dump_names(bn->log, dir);
    dump_meta(bn, dir, check_batches);
}

/* ---- main ---------------------------------------------------------------------- */

static void machine_line(void)
{
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("{\"bench\":\"machine\",\"cpus_online\":%ld,\"openblas_config\":\"%s\","
           "\"openblas_core\":\"%s\",\"OPENBLAS_CORETYPE\":\"%s\",\"load1\":%.2f}\n",
           sysconf(_SC_NPROCESSORS_ONLN), openblas_get_config(), openblas_get_corename(),
           ct ? ct : "(unset)", load1());
}

/* The simulated log: written to path (the dump's log.csv, or a temporary
 * file removed after loading), then read back as the tool would. */
static void make_log(ic_log *log, const ic_config *cfg, const ic_synth_opts *so, const char *path)
{
    ic_error err;
    char tmp[] = "/tmp/bench_train_XXXXXX";
    FILE *f;
    if (path) {
        f = fopen(path, "w");
    } else {
        int fd = mkstemp(tmp);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
        path = tmp;
    }
    IC_ASSERT(f);
    if (ic_synth_write_csv(so, f, NULL, &err) != IC_OK || fclose(f)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        exit(1);
    }
    if (ic_log_load(log, path, cfg, IC_BAD_ROWS_FAIL, &err) != IC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        exit(1);
    }
    if (path == tmp) unlink(tmp);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    int users, days, reps, check_batches, model_only;
    size_t samples;
    const char *log, *dump;
} args;

static void parse(int argc, char **argv, args *a)
{
    static const struct option o[] = {{"users", 1, 0, 'u'}, {"days", 1, 0, 'd'},
                                      {"samples", 1, 0, 'n'}, {"reps", 1, 0, 'r'},
                                      {"log", 1, 0, 'l'},     {"dump", 1, 0, 'D'},
                                      {"model-only", 0, 0, 'm'}, {"help", 0, 0, 'h'},
                                      {0, 0, 0, 0}};
    *a = (args){2000, 56, 3, 8, 0, 65536, NULL, NULL};
    int c;
    while ((c = getopt_long(argc, argv, "h", o, NULL)) != -1) {
        switch (c) {
        case 'u': a->users = atoi(optarg); break;
        case 'd': a->days = atoi(optarg); break;
        case 'n': a->samples = (size_t)atol(optarg); break;
        case 'r': a->reps = atoi(optarg); break;
        case 'l': a->log = optarg; break;
        case 'D': a->dump = optarg; break;
        case 'm': a->model_only = 1; break;
        default:
            fprintf(stderr, "usage: bench_train [--users N] [--days N] [--samples N] [--reps N] "
                            "[--log FILE] [--dump DIR] [--model-only]\n");
            exit(c == 'h' ? 0 : 2);
        }
    }
    if (a->reps < 1 || a->reps > 16 || a->samples < 1024) {
        fprintf(stderr, "bench_train: --reps 1..16, --samples >= 1024\n");
        exit(2);
    }
}

/* Model step (and engine step) over the slice, 1 and 2 BLAS threads; the
 * medians go to med[threads-1] (samples/s: wall, thread CPU). Then 2
 * data-parallel model threads with BLAS on one (what `iclock train
 * --threads 2` runs): medians (wall) in med_dp[0] (model), [1] (engine). */
static void throughput(const bench *bn, int reps, double med_model[2][2], double med_engine[2],
                       double med_dp[2])
{
    double w[16], c[16];
    run_result r;
    for (int th = 1; th <= 2; th++) {
        openblas_set_num_threads(th);
        for (int k = 0; k < reps; k++) {
            double l = load1();
            run_model(bn, &r, NULL, (size_t)-1, 0, 1);
            print_run("train_model_step", th, k, &r, l);
            w[k] = r.samples / r.t.wall;
            c[k] = r.samples / r.t.thread;
        }
        med_model[th - 1][0] = median(w, reps);
        med_model[th - 1][1] = median(c, reps);
    }
    for (int th = 1; th <= 2; th++) {
        openblas_set_num_threads(th);
        int ne = reps < 2 ? reps : 2;
        for (int k = 0; k < ne; k++) {
            double l = load1();
            run_engine(bn, &r, NULL, (size_t)-1, 1);
            print_run("train_engine_step", th, k, &r, l);
            w[k] = r.samples / r.t.wall;
        }
        med_engine[th - 1] = median(w, ne);
    }
    openblas_set_num_threads(1);
    for (int k = 0; k < reps; k++) {
        double l = load1();
        run_model(bn, &r, NULL, (size_t)-1, 0, 2);
        print_run("train_model_step_data_parallel", 2, k, &r, l);
        w[k] = r.samples / r.t.wall;
    }
    med_dp[0] = median(w, reps);
    int ne = reps < 2 ? reps : 2;
    for (int k = 0; k < ne; k++) {
        double l = load1();
        run_engine(bn, &r, NULL, (size_t)-1, 2);
        print_run("train_engine_step_data_parallel", 2, k, &r, l);
        w[k] = r.samples / r.t.wall;
    }
    med_dp[1] = median(w, ne);
}

/* sgemm at the model's shapes, and the utilisation figures. */
static void gemm_report(const bench *bn, double med_model[2][2], const tick ph[4])
{
    ic_error err;
    ic_model *m;
    IC_ASSERT(ic_model_create(&m, bn->cfg, &err) == IC_OK);
    gemm g[MAX_GEMM];
    int B = bn->cfg->batch, ng = step_gemms(ic__model_shape(m), B, g);
    double per[MAX_GEMM], fl = 0;
    for (int i = 0; i < ng; i++) fl += gemm_flops(&g[i]);
    double fps = fl / B; /* FLOPs per sample, forward + backward */
    for (int th = 1; th <= 2; th++) {
        openblas_set_num_threads(th);
        long it;
        double l = load1();
        tick t = time_gemms(g, ng, 2.0, per, &it);
        double rate_w = fl * it / t.wall / 1e9, rate_c = fl * it / t.thread / 1e9;
        if (th == 1)
            for (int i = 0; i < ng; i++)
                printf("{\"bench\":\"sgemm_shape\",\"threads\":1,\"what\":\"%s\",\"trans_a\":%d,"
                       "\"trans_b\":%d,\"M\":%d,\"N\":%d,\"K\":%d,\"gflops_thread_cpu\":%.1f,"
                       "\"share_of_gemm_time\":%.3f}\n",
                       g[i].what, g[i].ta, g[i].tb, g[i].M, g[i].N, g[i].K,
                       gemm_flops(&g[i]) * it / per[i] / 1e9, per[i] / t.thread);
        printf("{\"bench\":\"sgemm_model_shapes\",\"threads\":%d,\"gemms_per_step\":%d,"
               "\"flops_per_step\":%.0f,\"flops_per_sample\":%.0f,\"steps_timed\":%ld,"
               "\"wall_seconds\":%.3f,\"gflops_wall\":%.1f,\"gflops_thread_cpu\":%.1f,"
               "\"gemm_only_samples_per_s_wall\":%.0f,\"load1\":%.2f}\n",
               th, ng, fl, fps, it, t.wall, rate_w, rate_c, (double)B * it / t.wall, l);
        /* MFU: the model's GEMM FLOPs at the step's rate over the sgemm
         * rate; 1 thread on thread CPU time, 2 threads on wall time. */
        double rate = th == 1 ? rate_c : rate_w, sps = med_model[th - 1][th == 1 ? 1 : 0];
        printf("{\"bench\":\"mfu\",\"threads\":%d,\"basis\":\"%s\",\"model_step_samples_per_s\":%.0f,"
               "\"model_gflops\":%.2f,\"sgemm_gflops\":%.1f,\"mfu_train_step\":%.3f",
               th, th == 1 ? "thread_cpu" : "wall", sps, fps * sps / 1e9, rate, fps * sps / 1e9 / rate);
        if (th == 1) {
            double dense_s = ph[1].thread + ph[2].thread, n = (double)bn->c->n;
            printf(",\"net_fwd_bwd_samples_per_s\":%.0f,\"mfu_net_fwd_bwd\":%.3f",
                   n / dense_s, fps * n / dense_s / 1e9 / rate);
        }
        printf(",\"load1\":%.2f}\n", l);
    }
    openblas_set_num_threads(1);
    ic_model_free(m);
}

int main(int argc, char **argv)
{
    args a;
    parse(argc, argv, &a);
    ic_config cfg;
    ic_config_default(&cfg);
    /* The performance issue's reference configuration: the defaults without
     * the history block (tools/reference/torch_bench.py mirrors exactly this). */
    cfg.history = 0;
    openblas_set_num_threads(1);
    machine_line();
    char logpath[1024];
    if (a.dump) {
        mkdir(a.dump, 0777);
        snprintf(logpath, sizeof logpath, "%s/log.csv", a.dump);
    }
    ic_synth_opts so;
    ic_synth_opts_default(&so);
    so.n_users = a.users;
    so.n_days = a.days;
    ic_log log;
    if (a.log) {
        ic_error err;
        if (ic_log_load(&log, a.log, &cfg, IC_BAD_ROWS_FAIL, &err) != IC_OK) {
            fprintf(stderr, "bench_train: %s\n", err.msg);
            return 1;
        }
    } else {
        make_log(&log, &cfg, &so, a.dump ? logpath : NULL);
    }
    /* The slice starts half way through the log, where clocks are full
     * (a 30-day window in a 56-day log). */
    compact c = {0};
    c.s0 = log.n / 2;
    c.n = log.n - c.s0 < a.samples ? log.n - c.s0 : a.samples;
    c.NC = cfg.clock == IC_CLOCK_NONE ? 0 : cfg.n_clock;
    c.k = cfg.top_k;
    c.cnt = ic__xcalloc(c.n * IC_HOURS * (c.NC ? c.NC : 1), 1);
    c.off = ic__xcalloc(c.n + 1, sizeof *c.off);
    printf("{\"bench\":\"train_setup\",\"log_events\":%zu,\"users\":%d,\"days\":%d,"
           "\"slice_start\":%zu,\"samples\":%zu,\"batch\":%d,\"dim\":%d,\"cross_layers\":%d,"
           "\"mlp\":\"%d-%d-%d\",\"clock\":\"%s\",\"tasks\":%d}\n",
           log.n, a.log ? -1 : a.users, a.log ? -1 : a.days, c.s0, c.n, cfg.batch, cfg.dim,
           cfg.cross_layers, cfg.mlp[0], cfg.mlp[1], cfg.mlp[2], ic_clock_kind_name(cfg.clock),
           cfg.n_tasks);
    features(&log, &cfg, &c);
    printf("{\"bench\":\"train_samples\",\"clock_places_per_sample\":%.1f}\n",
           (double)c.off[c.n] / (double)c.n);
    bench bn = {&log, &cfg, &c, ic__xalloc_aligned(cfg.batch * sizeof(ic_clock_view)),
                ic__xcalloc(cfg.batch, sizeof(ic_sample)), (c.n + cfg.batch - 1) / cfg.batch};
    if (a.model_only) { /* for a profiler: the model step alone, 1 thread */
        run_result r;
        for (int k = 0; k < a.reps; k++) {
            double l = load1();
            run_model(&bn, &r, NULL, (size_t)-1, 0, 1);
            print_run("train_model_step", 1, k, &r, l);
        }
        return 0;
    }
    if (!check(&bn, (size_t)a.check_batches)) return 1;
    double med_model[2][2], med_engine[2], med_dp[2];
    throughput(&bn, a.reps, med_model, med_engine, med_dp);
    tick ph[4];
    breakdown(&bn, ph);
    double tot = ph[3].thread, n = (double)c.n;
    printf("{\"bench\":\"train_breakdown\",\"threads\":1,\"basis\":\"thread_cpu\",\"samples\":%zu,"
           "\"train_step_us_per_sample\":%.3f,\"plan_us\":%.3f,\"forward_us\":%.3f,"
           "\"backward_us\":%.3f,\"optimizer_and_rest_us\":%.3f}\n",
           c.n, 1e6 * tot / n, 1e6 * ph[0].thread / n, 1e6 * ph[1].thread / n,
           1e6 * ph[2].thread / n, 1e6 * (tot - ph[0].thread - ph[1].thread - ph[2].thread) / n);
    gemm_report(&bn, med_model, ph);
    printf("{\"bench\":\"train_summary\",\"model_step_1t_samples_per_s_cpu\":%.0f,"
           "\"model_step_1t_samples_per_s_wall\":%.0f,\"model_step_2t_samples_per_s_wall\":%.0f,"
           "\"engine_step_1t_samples_per_s_wall\":%.0f,\"engine_step_2t_samples_per_s_wall\":%.0f,"
           "\"model_step_2t_data_parallel_samples_per_s_wall\":%.0f,"
           "\"engine_step_2t_data_parallel_samples_per_s_wall\":%.0f}\n",
           med_model[0][1], med_model[0][0], med_model[1][0], med_engine[0], med_engine[1], med_dp[0],
           med_dp[1]);
    if (a.dump) dump(&bn, a.dump, a.check_batches);
    free(bn.views);
    free(bn.s);
    free(c.cnt), free(c.off), free(c.val), free(c.score);
    ic_log_free(&log);
    return 0;
}
