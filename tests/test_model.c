/* test_model.c: the whole ranking model.
 *
 * - A central-difference gradient check, in double, of the whole network
 *   (x0 assembly with multi-valued fields and every clock mode, cross full
 *   and low rank, MLP, heads, loss) on batches the model itself plans,
 *   over every dense parameter and every embedding row the batch reads.
 *   Criterion: |analytic - numeric| <= 1e-6 * max(|a|, |n|) + 1e-8, and
 *   each tensor's largest gradient entry above 1e-5 (no all-zero passes).
 * - The fixture of tools/reference/dcnv2_reference.py (an independent
 *   PyTorch implementation, float64): the same weights loaded into the C
 *   model must give the same probabilities, loss, gradients of every dense
 *   tensor and row, and the same losses and weights over 5 training steps.
 *   Tolerances are stated at FIX_* below; any mismatch fails.
 * - The fast clock pooling against its plain reference on real plans.
 * - Prediction: unseen ids embed as zero and are not inserted.
 * - Ranking requests (one user, time and clock; many items): the shared
 *   prediction path against the plain one, in every clock mode, with and
 *   without history, stacked/parallel, low rank, two threads; batches
 *   that are not a request must take the plain path; and the column split
 *   in double to 1e-12.
 * - Save/load: resuming is bit-identical; truncated or corrupt files and
 *   other configurations give IC_ERR_CORRUPT / IC_ERR_MISMATCH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

/* Fixture tolerances: |c - ref| <= tol * max(|ref| over the tensor). The
 * C float path against float64 PyTorch: float rounding in sums of up to a
 * few hundred terms. The C double path: only summation order differs. */
#ifndef FIX_FLOAT_TOL
#define FIX_FLOAT_TOL 1e-5
#endif
#ifndef FIX_DOUBLE_TOL
#define FIX_DOUBLE_TOL 1e-11
#endif
#ifndef FIX_STEP_TOL
#define FIX_STEP_TOL 1e-4 /* losses and weights after 5 Adam/Adagrad steps, float */
#endif

#define MAXB 16

static ic_rng rng;

static double unif(void) { return ic__rng_uniform(&rng); }

/* ---- synthetic batches ---------------------------------------------------------- */

typedef struct {
    ic_event ev[MAXB];
    ic_clock_view cv[MAXB];
    ic_sample s[MAXB];
} batch;

static void small_config(ic_config *cfg)
{
    ic_config_default(cfg);
    cfg->dim = 4;
    cfg->n_clock = 2;
    cfg->clock_field[0] = 0;
    cfg->clock_field[1] = 1;
    cfg->cross_layers = 2;
    cfg->n_mlp = 2;
    cfg->mlp[0] = 12;
    cfg->mlp[1] = 6;
    cfg->batch = 8;
    cfg->seed = 7;
    cfg->history = 0; /* on by default; the tests that cover it turn it on */
}

/* B samples: users 1..5, items 100.., field f values 1000(f+1)+i, field 1
 * multi-valued (0..3 values), clocks with 8 filled slots drawn from the
 * same values (sample 2 has none), both label classes. */
static void make_batch(batch *bt, const ic_config *cfg, int B, int vocab)
{
    memset(bt, 0, sizeof *bt);
    for (int b = 0; b < B; b++) {
        ic_event *ev = &bt->ev[b];
        ev->ts = 1693526400 + (int64_t)(unif() * 14 * 86400);
        int tz[] = {-300, 0, 60, 480, 330};
        ev->tz_min = tz[b % 5];
        ev->user = 1 + (uint64_t)(unif() * 5);
        ev->item = 100 + (uint64_t)(unif() * vocab);
        int k = 0;
        for (int f = 0; f < cfg->n_fields; f++) {
            ev->voff[f] = (uint8_t)k;
            int n = f == 1 ? b % 4 : 1, start = (int)(unif() * vocab);
            for (int i = 0; i < n; i++) ev->val[k++] = 1000 * (f + 1) + (start + i) % vocab;
        }
        ev->voff[cfg->n_fields] = (uint8_t)k;
        for (int t = 0; t < cfg->n_tasks; t++) ev->label[t] = (float)((b + t) % 2);
        ic_clock_view *cv = &bt->cv[b];
        ic_clock_view_init(cv, cfg->n_clock, cfg->top_k);
        for (int j = 0; j < 8; j++) {
            int t = j == 0 ? ic_local_hour(ev->ts, ev->tz_min) : (int)(unif() * 24);
            for (int c = 0; c < cfg->n_clock; c++) {
                int n = (int)(unif() * (cfg->top_k + 1)), start = (int)(unif() * vocab);
                uint64_t val[IC_MAX_TOPK];
                float sc[IC_MAX_TOPK];
                for (int i = 0; i < n; i++) {
                    val[i] = 1000 * (cfg->clock_field[c] + 1) + (start + i) % vocab;
                    sc[i] = (float)(0.5 + 3 * unif());
                }
                ic_clock_view_set(cv, t, c, n, val, sc);
            }
        }
        bt->s[b].ev = ev;
        bt->s[b].clock = b == 2 ? NULL : cv;
    }
}

/* ---- whole-model gradient check ---------------------------------------------------- */

typedef struct {
    ic__net_d *n;
    const ic__plan *pl;
} net_ctx;

static double net_loss(void *p)
{
    net_ctx *c = p;
    return ic__net_forward_d(c->n, c->pl);
}

static void gradcheck(const char *name, double *x, const double *g, size_t n, net_ctx *ctx)
{
    const double h = 1e-6, rel = 1e-6, abs_floor = 1e-8;
    double gmax = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double fp = net_loss(ctx);
        x[i] = keep - h;
        double fm = net_loss(ctx);
        x[i] = keep;
        double num = (fp - fm) / (2 * h);
        if (fabs(num - g[i]) > rel * fmax(fabs(num), fabs(g[i])) + abs_floor)
            fail_msg("%s[%zu]: analytic %.12g, numeric %.12g", name, i, g[i], num);
        gmax = fmax(gmax, fabs(g[i]));
    }
    if (gmax <= 1e-5) fail_msg("%s: gradient is (nearly) all zero (max %g)", name, gmax);
}

static void model_gradcheck(const ic_config *cfg)
{
    ic_model *m;
    ic_error err;
    /* Each check draws its batch and weights from the same seed, so adding
     * a check does not change the others' draws. */
    ic__rng_seed(&rng, 2024);
    assert_int_equal(ic_model_create(&m, cfg, &err), IC_OK);
    batch bt;
    int B = 6;
    make_batch(&bt, cfg, B, 6);
    ic__model_plan_begin(m, bt.s, B, 1, 1);
    const ic__plan *pl = ic__model_plan(m);
    const ic__shape *sh = ic__model_shape(m);
    ic__net_d nd;
    ic__net_init_d(&nd, sh, B, pl->E);
    ic__net_to_double(&nd, ic__model_net(m), pl->U);
    /* Weights and rows of O(1) so every path carries gradient; A non-zero. */
    for (size_t i = 0; i < sh->n_params; i++) nd.pmem[i] = unif() - 0.5;
    if (nd.p.s) nd.p.s[0] = log(1.3);
    size_t nR = (size_t)pl->U * sh->d;
    for (size_t i = 0; i < nR; i++) nd.R[i] = unif() - 0.5;
    ic__net_zero_grad_d(&nd);
    ic__net_forward_d(&nd, pl);
    ic__net_backward_d(&nd, pl);
    double *g = ic__xmalloc(sh->n_params * sizeof *g), *dR = ic__xmalloc(nR * sizeof *dR + 8);
    memcpy(g, nd.gmem, sh->n_params * sizeof *g);
    memcpy(dR, nd.dR, nR * sizeof *dR);
    net_ctx ctx = {&nd, pl};
    char name[32];
    size_t off, n;
    int checked = 0;
    for (int i = 0; ic__shape_tensor(sh, i, name, &off, &n); i++, checked++)
        gradcheck(name, nd.pmem + off, g + off, n, &ctx);
    gradcheck("rows", nd.R, dR, nR, &ctx);
    assert_true(checked >= 6);
    free(g);
    free(dR);
    ic__net_free_d(&nd);
    ic__model_plan_end(m);
    ic_model_free(m);
}

static void test_gradcheck_modes(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_kind kinds[] = {IC_CLOCK_NONE, IC_CLOCK_NAIVE, IC_CLOCK_ADAPTIVE, IC_CLOCK_GAUSSIAN};
    for (int history = 0; history <= 1; history++)
        for (int k = 0; k < 4; k++) {
            small_config(&cfg);
            cfg.clock = kinds[k];
            cfg.history = history;
            model_gradcheck(&cfg);
        }
}

static void test_gradcheck_variants(void **state)
{
    (void)state;
    ic_config cfg;
    /* learned sigma, continuous time, score pooling, low rank, stacked */
    small_config(&cfg);
    cfg.clock_sigma_learn = 1;
    cfg.clock_continuous = 1;
    cfg.clock_pool = IC_POOL_SCORE;
    cfg.cross_rank = 3;
    cfg.structure = IC_STRUCT_STACKED;
    model_gradcheck(&cfg);
    /* adaptive + score pooling, low rank, parallel, one task, 3 clock fields */
    small_config(&cfg);
    cfg.clock = IC_CLOCK_ADAPTIVE;
    cfg.clock_pool = IC_POOL_SCORE;
    cfg.cross_rank = 2;
    cfg.n_tasks = 1;
    cfg.n_clock = 3;
    cfg.clock_field[2] = 2;
    model_gradcheck(&cfg);
    /* history with the adaptive clock, score pooling, low rank, stacked */
    small_config(&cfg);
    cfg.history = 1;
    cfg.clock = IC_CLOCK_ADAPTIVE;
    cfg.clock_pool = IC_POOL_SCORE;
    cfg.cross_rank = 3;
    cfg.structure = IC_STRUCT_STACKED;
    model_gradcheck(&cfg);
    /* edges: no cross layer (parallel); no MLP (stacked) */
    small_config(&cfg);
    cfg.cross_layers = 0;
    model_gradcheck(&cfg);
    small_config(&cfg);
    cfg.n_mlp = 0;
    cfg.structure = IC_STRUCT_STACKED;
    cfg.clock_continuous = 1;
    model_gradcheck(&cfg);
}

/* ---- fast clock pooling against the reference, on real plans --------------------- */

static void test_clock_pool_fast_vs_ref(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    cfg.dim = 16;
    cfg.top_k = 3;
    for (int pool = 0; pool < 2; pool++) {
        cfg.clock_pool = pool ? IC_POOL_SCORE : IC_POOL_MEAN;
        cfg.clock_continuous = pool;
        ic_model *m;
        assert_int_equal(ic_model_create(&m, &cfg, NULL), IC_OK);
        batch bt;
        make_batch(&bt, &cfg, 12, 5);
        ic__model_plan_begin(m, bt.s, 12, 1, 1);
        ic__net_f *n = ic__model_net(m);
        const ic__plan *pl = ic__model_plan(m);
        const ic__shape *sh = ic__model_shape(m);
        ic__net_forward_f(n, pl);
        int nonzero = 0;
        for (int b = 0; b < 12; b++)
            for (int c = 0; c < sh->NC; c++) {
                float ref[16];
                ic__clock_pool_ref_f(ref, n->R, pl, sh->NC, b, c, n->cw + b * IC_HOURS, sh->d);
                const float *fast = n->x0 + (size_t)b * sh->D + sh->seg_x[2 + sh->F + c];
                for (int j = 0; j < sh->d; j++) {
                    assert_true(fabsf(fast[j] - ref[j]) <= 1e-6f * (fabsf(ref[j]) + 1e-3f));
                    nonzero += ref[j] != 0;
                }
            }
        assert_true(nonzero > 100);
        ic__model_plan_end(m);
        ic_model_free(m);
    }
}

/* Changes slot (t, c) of v: its first value by dval, its first score by
 * dscore, its count by dn (the places keep their order). */
static void slot_edit(ic_clock_view *v, int t, int c, uint64_t dval, float dscore, int dn)
{
    uint64_t val[IC_MAX_TOPK];
    float sc[IC_MAX_TOPK];
    int n = ic_clock_view_n(v, t, c);
    assert_true(n > 0);
    memcpy(val, ic_clock_view_values(v, t, c), (size_t)n * sizeof *val);
    memcpy(sc, ic_clock_view_scores(v, t, c), (size_t)n * sizeof *sc);
    val[0] += dval, sc[0] += dscore;
    ic_clock_view_set(v, t, c, n + dn, val, sc);
}

/* ---- the history block ---------------------------------------------------------------- */

/* v_hist of clock field c for a sample, computed the plain way from the
 * view and the tables: (1/24) sum over slots of the slot's mean (or
 * score-weighted) pool of its values' rows. */
static void history_by_hand(ic_model *m, const ic_config *cfg, const ic_clock_view *v, int c,
                            double *out)
{
    int d = cfg->dim;
    for (int j = 0; j < d; j++) out[j] = 0;
    for (int t = 0; v && t < IC_HOURS; t++) {
        int n = ic_clock_view_n(v, t, c);
        double total = 0;
        for (int k = 0; k < n; k++) total += ic_clock_view_scores(v, t, c)[k];
        for (int k = 0; k < n; k++) {
            const float *row = ic__model_row(m, 2 + cfg->clock_field[c], ic_clock_view_values(v, t, c)[k]);
            assert_non_null(row); /* training plans insert every value */
            double p = cfg->clock_pool == IC_POOL_SCORE ? ic_clock_view_scores(v, t, c)[k] / total : 1.0 / n;
            for (int j = 0; j < d; j++) out[j] += p * row[j] / IC_HOURS;
        }
    }
}

/* x0 = [user | item | fields | hour | day | clock 0..NC-1 | history
 * 0..C-1]: the history block is where docs/MODEL.md says, equals the
 * plain mean of the slots in every clock mode (the clock none too), and
 * leaves everything before it as it was without history. */
static void test_history_block(void **state)
{
    (void)state;
    ic_clock_kind kinds[] = {IC_CLOCK_NONE, IC_CLOCK_NAIVE, IC_CLOCK_GAUSSIAN};
    for (int k = 0; k < 3; k++)
        for (int pool = 0; pool < 2; pool++) {
            ic_config cfg, plain;
            small_config(&cfg);
            cfg.clock = kinds[k];
            cfg.clock_pool = pool ? IC_POOL_SCORE : IC_POOL_MEAN;
            cfg.history = 1;
            plain = cfg;
            plain.history = 0;
            ic_model *m, *p;
            assert_int_equal(ic_model_create(&m, &cfg, NULL), IC_OK);
            assert_int_equal(ic_model_create(&p, &plain, NULL), IC_OK);
            batch bt;
            int B = 10, d = cfg.dim, NC = kinds[k] == IC_CLOCK_NONE ? 0 : cfg.n_clock;
            make_batch(&bt, &cfg, B, 6);
            int D = (4 + cfg.n_fields + NC + cfg.n_clock) * d, Dp = D - cfg.n_clock * d;
            assert_int_equal(ic__model_shape(m)->D, D);
            assert_int_equal(ic__model_shape(p)->D, Dp);
            ic__model_plan_begin(m, bt.s, B, 1, 1);
            ic__net_f *n = ic__model_net(m);
            ic__net_forward_f(n, ic__model_plan(m));
            int nonzero = 0;
            for (int b = 0; b < B; b++)
                for (int c = 0; c < cfg.n_clock; c++) {
                    double want[16];
                    history_by_hand(m, &cfg, bt.s[b].clock, c, want);
                    const float *got = n->x0 + (size_t)b * D + Dp + c * d;
                    for (int j = 0; j < d; j++) {
                        if (!(fabs(got[j] - want[j]) <= 1e-6 * (fabs(want[j]) + 1e-2)))
                            fail_msg("history %d/%d b %d c %d [%d]: %.8g, by hand %.8g", k, pool,
                                     b, c, j, got[j], want[j]);
                        nonzero += want[j] != 0;
                        if (!bt.s[b].clock) assert_true(got[j] == 0);
                    }
                }
            assert_true(nonzero > B * cfg.n_clock * d / 2);
            /* The naive clock reads slot h alone without history, so its
             * plan touches fewer rows; otherwise the same rows in the same
             * order and the same time tables: x0 without history is the
             * prefix of x0 with it. */
            if (kinds[k] != IC_CLOCK_NAIVE) {
                /* the same rows (the two draw them from different rng
                 * states: their dense blocks differ in size) */
                for (int t = 0; t < 2 + cfg.n_fields; t++) {
                    ic__emb *e = ic__model_table(m, t);
                    for (size_t i = 0; i < e->n; i++)
                        ic__model_set_row(p, t, e->ids[i], e->rows + i * d);
                }
                ic__model_plan_begin(p, bt.s, B, 1, 1);
                ic__net_f *np = ic__model_net(p);
                ic__net_forward_f(np, ic__model_plan(p));
                for (int b = 0; b < B; b++)
                    assert_memory_equal(np->x0 + (size_t)b * Dp, n->x0 + (size_t)b * D,
                                        Dp * sizeof(float));
                ic__model_plan_end(p);
            }
            ic__model_plan_end(m);
            ic_model_free(m);
            ic_model_free(p);
        }
}

/* ---- the PyTorch fixture ------------------------------------------------------------ */

typedef struct {
    char name[64];
    ic_config cfg;
    int B;
    batch bt;
    char *text; /* the case's lines, NUL-separated copy */
} fx_case;

/* Reads the next case from *p (the file's text); returns 0 at the end. */
static int next_case(char **p, fx_case *fc)
{
    char *s = strstr(*p, "case ");
    if (!s) return 0;
    char *end = strstr(s, "\nend\n");
    assert_non_null(end);
    end[1] = '\0';
    fc->text = s;
    *p = end + 5;
    return 1;
}

/* The values of the line starting with key (and, if given, sub), or NULL. */
static char *find_line(char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, prefix, n) && (l[n] == ' ' || l[n] == '\n')) return l + n;
    return NULL;
}

static void parse_config(fx_case *fc)
{
    ic_config *c = &fc->cfg;
    ic_config_default(c);
    c->seed = 99;
    char *t = fc->text;
    sscanf(t, "case %63s", fc->name);
    char v[128];
#define GET(key) (assert_non_null(find_line(t, "cfg " key)), sscanf(find_line(t, "cfg " key), " %127[^\n]", v), v)
    c->dim = atoi(GET("dim"));
    c->n_fields = atoi(GET("fields"));
    for (int f = 0; f < c->n_fields; f++) snprintf(c->field[f], IC_NAME_MAX, "f%d", f);
    const char *ck = GET("clock");
    c->clock = !strcmp(ck, "none") ? IC_CLOCK_NONE : !strcmp(ck, "naive") ? IC_CLOCK_NAIVE
             : !strcmp(ck, "adaptive") ? IC_CLOCK_ADAPTIVE : IC_CLOCK_GAUSSIAN;
    c->n_clock = sscanf(GET("clock_fields"), "%d %d %d %d", &c->clock_field[0], &c->clock_field[1],
                        &c->clock_field[2], &c->clock_field[3]);
    c->top_k = atoi(GET("top_k"));
    c->clock_sigma = (float)atof(GET("clock_sigma"));
    c->clock_sigma_learn = atoi(GET("clock_sigma_learn"));
    c->clock_continuous = atoi(GET("clock_continuous"));
    c->clock_pool = !strcmp(GET("clock_pool"), "score") ? IC_POOL_SCORE : IC_POOL_MEAN;
    c->cross_layers = atoi(GET("cross_layers"));
    c->cross_rank = atoi(GET("cross_rank"));
    c->n_mlp = sscanf(GET("mlp"), "%d %d %d %d", &c->mlp[0], &c->mlp[1], &c->mlp[2], &c->mlp[3]);
    c->structure = !strcmp(GET("structure"), "stacked") ? IC_STRUCT_STACKED : IC_STRUCT_PARALLEL;
    float w[4];
    c->n_tasks = sscanf(GET("tasks"), "%f %f %f %f", &w[0], &w[1], &w[2], &w[3]);
    for (int i = 0; i < c->n_tasks; i++) {
        snprintf(c->task[i].name, IC_NAME_MAX, "t%d", i);
        c->task[i].weight = w[i];
    }
    c->emb_optim = !strcmp(GET("emb_optim"), "adam") ? IC_OPT_ADAM : IC_OPT_ADAGRAD;
    /* written only by cases that turn it on */
    c->history = find_line(t, "cfg history") ? atoi(GET("history")) : 0;
    fc->B = c->batch = atoi(GET("batch"));
    c->lr = (float)atof(GET("lr"));
    c->emb_lr = (float)atof(GET("emb_lr"));
    c->l2_emb = (float)atof(GET("l2_emb"));
    c->adam_beta1 = (float)atof(GET("beta1"));
    c->adam_beta2 = (float)atof(GET("beta2"));
    c->adam_eps = (float)atof(GET("eps"));
#undef GET
    assert_true(fc->B > 0 && fc->B <= MAXB);
}

static void parse_inputs(fx_case *fc)
{
    batch *bt = &fc->bt;
    memset(bt, 0, sizeof *bt);
    for (int b = 0; b < fc->B; b++) {
        bt->s[b].ev = &bt->ev[b];
        bt->s[b].clock = &bt->cv[b];
        ic_clock_view_init(&bt->cv[b], fc->cfg.n_clock, fc->cfg.top_k);
    }
    for (char *l = fc->text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        int b, f, t, c, n, off;
        if (sscanf(l, "event %d", &b) == 1) {
            ic_event *ev = &bt->ev[b];
            long long ts;
            int tz;
            unsigned long long u, it;
            assert_int_equal(sscanf(l, "event %d %lld %d %llu %llu %f %f", &b, &ts, &tz, &u, &it,
                                    &ev->label[0], &ev->label[1]), 5 + fc->cfg.n_tasks);
            ev->ts = ts, ev->tz_min = tz, ev->user = u, ev->item = it;
        } else if (sscanf(l, "values %d %d %d%n", &b, &f, &n, &off) == 3) {
            ic_event *ev = &bt->ev[b];
            /* fields come in order: each starts where the previous ended */
            int k = ev->voff[f];
            char *q = l + off;
            for (int i = 0; i < n; i++) {
                unsigned long long v;
                int used;
                assert_int_equal(sscanf(q, "%llu%n", &v, &used), 1);
                q += used;
                ev->val[k++] = v;
            }
            ev->voff[f + 1] = (uint8_t)k;
        } else if (sscanf(l, "noclock %d", &b) == 1) {
            bt->s[b].clock = NULL;
        } else if (sscanf(l, "slot %d %d %d %d%n", &b, &t, &c, &n, &off) == 4) {
            ic_clock_view *cv = &bt->cv[b];
            char *q = l + off;
            uint64_t val[IC_MAX_TOPK];
            float sc[IC_MAX_TOPK];
            assert_true(n <= fc->cfg.top_k);
            for (int i = 0; i < n; i++) {
                unsigned long long v;
                int used;
                assert_int_equal(sscanf(q, "%llu %f%n", &v, &sc[i], &used), 2);
                val[i] = v;
                q += used;
            }
            ic_clock_view_set(cv, t, c, n, val, sc);
        }
    }
}

/* Reads n doubles after "<key> <name> <n>" (name may be NULL). */
static double *read_values(char *text, const char *key, const char *name, size_t *n)
{
    char prefix[96];
    if (name)
        snprintf(prefix, sizeof prefix, "%s %s", key, name);
    else
        snprintf(prefix, sizeof prefix, "%s", key);
    char *q = find_line(text, prefix);
    if (!q) fail_msg("fixture: no line '%s'", prefix);
    char *end;
    long cnt = strcmp(key, "loss") ? strtol(q, &end, 10) : 1;
    if (!strcmp(key, "loss")) end = q;
    double *v = ic__xmalloc((cnt + 1) * sizeof *v);
    for (long i = 0; i < cnt; i++) v[i] = strtod(end, &end);
    *n = (size_t)cnt;
    return v;
}

/* max |got - want| <= tol * max |want| */
static void close_enough(const char *what, const char *name, const float *gotf, const double *gotd,
                         const double *want, size_t n, double tol)
{
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double got = gotf ? gotf[i] : gotd[i];
        worst = fmax(worst, fabs(got - want[i]));
        if (!(fabs(got - want[i]) <= tol * scale))
            fail_msg("fixture %s %s[%zu]: C %.10g, PyTorch %.10g (tolerance %g x %g)", what, name,
                     i, got, want[i], tol, scale);
    }
}

typedef void (*row_fn)(ic_model *m, int tab, uint64_t id, double *v, void *ctx);

/* Calls fn for every "<key> tab id v..." line. */
static int for_rows(char *text, const char *key, ic_model *m, int d, row_fn fn, void *ctx)
{
    size_t kl = strlen(key);
    int count = 0;
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, kl) || l[kl] != ' ') continue;
        char *q = l + kl;
        int tab = (int)strtol(q, &q, 10);
        uint64_t id = strtoull(q, &q, 10);
        double v[64];
        for (int j = 0; j < d; j++) v[j] = strtod(q, &q);
        fn(m, tab, id, v, ctx);
        count++;
    }
    return count;
}

static void set_row(ic_model *m, int tab, uint64_t id, double *v, void *ctx)
{
    (void)ctx;
    float f[64];
    for (int j = 0; j < ic__model_shape(m)->d; j++) f[j] = (float)v[j];
    ic__model_set_row(m, tab, id, f);
}

typedef struct {
    const ic__net_d *nd; /* NULL: check the float net */
    double tol;
} rowgrad_ctx;

static void check_rowgrad(ic_model *m, int tab, uint64_t id, double *want, void *p)
{
    rowgrad_ctx *c = p;
    ic__emb *t = ic__model_table(m, tab);
    int64_t row = ic__emb_find(t, id);
    assert_true(row >= 0);
    int u = t->mark[row];
    if (u < 0) fail_msg("fixture: row %d/%llu is not in the C plan", tab, (unsigned long long)id);
    int d = ic__model_shape(m)->d;
    char name[48];
    snprintf(name, sizeof name, "row %d/%llu", tab, (unsigned long long)id);
    /* each row is judged against its own largest entry, with a floor of
     * 1e-2 so a near-zero row is judged on absolute error */
    double mx = 0;
    for (int j = 0; j < d; j++) mx = fmax(mx, fabs(want[j]));
    double got[64];
    for (int j = 0; j < d; j++)
        got[j] = c->nd ? c->nd->dR[(size_t)u * d + j] : ic__model_net(m)->dR[(size_t)u * d + j];
    for (int j = 0; j < d; j++) {
        double scale = fmax(mx, 1e-2);
        if (!(fabs(got[j] - want[j]) <= c->tol * scale))
            fail_msg("fixture rowgrad %s[%d]: C %.10g, PyTorch %.10g", name, j, got[j], want[j]);
    }
}

static void check_final_row(ic_model *m, int tab, uint64_t id, double *want, void *ctx)
{
    (void)ctx;
    const float *got = ic__model_row(m, tab, id);
    assert_non_null(got);
    for (int j = 0; j < ic__model_shape(m)->d; j++)
        if (!(fabs(got[j] - want[j]) <= FIX_STEP_TOL * fmax(fabs(want[j]), 0.1)))
            fail_msg("fixture final row %d/%llu[%d]: C %.8g, PyTorch %.8g", tab,
                     (unsigned long long)id, j, got[j], want[j]);
}

static void run_fixture_case(fx_case *fc)
{
    parse_config(fc);
    parse_inputs(fc);
    ic_model *m;
    ic_error err;
    if (ic_model_create(&m, &fc->cfg, &err)) fail_msg("%s: %s", fc->name, err.msg);
    const ic__shape *sh = ic__model_shape(m);
    char name[32];
    size_t off, n, nw;
    /* the fixture has exactly this model's tensors */
    for (int i = 0; ic__shape_tensor(sh, i, name, &off, &n); i++) {
        double *w = read_values(fc->text, "param", name, &nw);
        assert_int_equal(nw, n);
        float *p = ic__model_tensor(m, name, 0, &n);
        for (size_t j = 0; j < n; j++) p[j] = (float)w[j];
        free(w);
    }
    int nrows = for_rows(fc->text, "row", m, sh->d, set_row, NULL);
    assert_int_equal(ic_model_n_rows(m), nrows);
    int B = fc->B, T = sh->T;

    /* forward and backward, float, without an update */
    ic__model_plan_begin(m, fc->bt.s, B, 1, 1);
    assert_int_equal(ic_model_n_rows(m), nrows); /* every id had a row */
    const ic__plan *pl = ic__model_plan(m);
    ic__net_f *nf = ic__model_net(m);
    ic__net_zero_grad_f(nf);
    float loss = ic__net_forward_f(nf, pl);
    ic__net_backward_f(nf, pl);
    double *want = read_values(fc->text, "probs", NULL, &n);
    assert_int_equal(n, B * T);
    close_enough(fc->name, "probs", nf->probs, NULL, want, n, FIX_FLOAT_TOL);
    free(want);
    want = read_values(fc->text, "loss", NULL, &n);
    close_enough(fc->name, "loss", &loss, NULL, want, 1, FIX_FLOAT_TOL);
    double want_loss = want[0];
    free(want);
    for (int i = 0; ic__shape_tensor(sh, i, name, &off, &n); i++) {
        want = read_values(fc->text, "grad", name, &nw);
        close_enough(fc->name, name, nf->gmem + off, NULL, want, n, FIX_FLOAT_TOL);
        free(want);
    }
    rowgrad_ctx rc = {NULL, FIX_FLOAT_TOL};
    int ngrad = for_rows(fc->text, "rowgrad", m, sh->d, check_rowgrad, &rc);
    assert_int_equal(ngrad, pl->U); /* the same rows are touched */

    /* the double path, much tighter */
    ic__net_d nd;
    ic__net_init_d(&nd, sh, B, pl->E);
    ic__net_to_double(&nd, nf, pl->U);
    ic__net_zero_grad_d(&nd);
    double lossd = ic__net_forward_d(&nd, pl);
    ic__net_backward_d(&nd, pl);
    close_enough(fc->name, "loss(double)", NULL, &lossd, &want_loss, 1, FIX_DOUBLE_TOL);
    for (int i = 0; ic__shape_tensor(sh, i, name, &off, &n); i++) {
        want = read_values(fc->text, "grad", name, &nw);
        close_enough(fc->name, name, NULL, nd.gmem + off, want, n, FIX_DOUBLE_TOL);
        free(want);
    }
    rc.nd = &nd;
    rc.tol = FIX_DOUBLE_TOL;
    for_rows(fc->text, "rowgrad", m, sh->d, check_rowgrad, &rc);
    ic__net_free_d(&nd);
    ic__model_plan_end(m);

    /* 5 training steps on the same batch */
    double *steps = read_values(fc->text, "steploss", NULL, &n);
    for (size_t k = 0; k < n; k++) {
        float l = ic_model_train_step(m, fc->bt.s, B, NULL);
        if (!(fabs(l - steps[k]) <= FIX_STEP_TOL * fabs(steps[k])))
            fail_msg("fixture %s: loss of step %zu: C %.8g, PyTorch %.8g", fc->name, k + 1, l,
                     steps[k]);
    }
    assert_true(steps[n - 1] < steps[0]); /* the fixture itself learns */
    free(steps);
    /* Final weights. Adam normalises each step (about lr * sign(g) at
     * first), so where the gradient is rounding noise (|g| < 1e-4 of the
     * tensor's largest) float and float64 may step in opposite directions:
     * those entries are judged through the tensor's update norm, |dC -
     * dRef| <= 1e-2 |dRef|; all others one by one at FIX_STEP_TOL. */
    for (int i = 0; ic__shape_tensor(sh, i, name, &off, &n); i++) {
        want = read_values(fc->text, "final", name, &nw);
        double *w0 = read_values(fc->text, "param", name, &nw);
        double *g0 = read_values(fc->text, "grad", name, &nw);
        float *p = ic__model_tensor(m, name, 0, &n);
        double gmax = 0, dd = 0, dr = 0;
        for (size_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(g0[j]));
        for (size_t j = 0; j < n; j++) {
            dd += (p[j] - want[j]) * (p[j] - want[j]);
            dr += (want[j] - w0[j]) * (want[j] - w0[j]);
            if (fabs(g0[j]) < 1e-4 * gmax) continue;
            if (!(fabs(p[j] - want[j]) <= FIX_STEP_TOL * fmax(fabs(want[j]), 0.1)))
                fail_msg("fixture %s: %s[%zu] after 5 steps: C %.8g, PyTorch %.8g", fc->name,
                         name, j, p[j], want[j]);
        }
        if (!(sqrt(dd) <= 1e-2 * sqrt(dr)))
            fail_msg("fixture %s: %s after 5 steps: update differs by %g of its norm %g", fc->name,
                     name, sqrt(dd / dr), sqrt(dr));
        free(want), free(w0), free(g0);
    }
    for_rows(fc->text, "finalrow", m, sh->d, check_final_row, NULL);
    ic_model_free(m);
}

static void test_pytorch_fixture(void **state)
{
    (void)state;
    FILE *f = fopen("tests/data/model_fixture.txt", "rb");
    if (!f) fail_msg("tests/data/model_fixture.txt: cannot open (run from the project root)");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = ic__xmalloc(len + 1);
    assert_int_equal(fread(text, 1, len, f), len);
    text[len] = '\0';
    fclose(f);
    char *p = text;
    fx_case fc;
    int cases = 0;
    const char *want[] = {"gaussian",         "gaussian_learn", "adaptive",     "naive",
                          "none",             "gaussian_history", "none_history",
                          "naive_history"};
    int n_want = (int)(sizeof want / sizeof want[0]);
    while (next_case(&p, &fc)) {
        assert_true(cases < n_want);
        run_fixture_case(&fc);
        assert_string_equal(fc.name, want[cases]);
        cases++;
    }
    assert_int_equal(cases, n_want);
    free(text);
}

/* ---- fast paths against their references --------------------------------------------- */

/* The plans of the same batch by the gathered (fast) and the single-pass
 * (reference) planner are the same, entry for entry. */
static void assert_same_plan(const ic__plan *a, const ic__plan *b, const ic__shape *sh)
{
    assert_int_equal(a->B, b->B);
    assert_int_equal(a->E, b->E);
    assert_int_equal(a->U, b->U);
    assert_int_equal(a->O, b->O);
    assert_memory_equal(a->seg_off, b->seg_off, ((size_t)a->B * sh->NS + 1) * sizeof(int32_t));
    assert_memory_equal(a->ent_u, b->ent_u, a->E * sizeof(int32_t));
    assert_memory_equal(a->ent_w, b->ent_w, a->E * sizeof(float));
    assert_memory_equal(a->occ_off, b->occ_off, ((size_t)a->B * sh->NQ + 1) * sizeof(int32_t));
    assert_memory_equal(a->occ_e, b->occ_e, a->O * sizeof(int32_t));
    assert_memory_equal(a->occ_t, b->occ_t, a->O);
    assert_memory_equal(a->occ_p, b->occ_p, a->O * sizeof(float));
    assert_memory_equal(a->u_tab, b->u_tab, a->U * sizeof(int32_t));
    assert_memory_equal(a->u_row, b->u_row, a->U * sizeof(int64_t));
}

static void check_fast_vs_ref(const ic_config *cfg)
{
    ic_model *f, *r;
    assert_int_equal(ic_model_create(&f, cfg, NULL), IC_OK);
    assert_int_equal(ic_model_create(&r, cfg, NULL), IC_OK);
    ic__model_set_reference(r, 1);
    batch bt;
    int B = 12;
    make_batch(&bt, cfg, B, 7);
    for (int step = 0; step < 4; step++) {
        for (int train = 0; train <= 1; train++) {
            ic__model_plan_begin(f, bt.s, B, train, train);
            ic__model_plan_begin(r, bt.s, B, train, train);
            assert_same_plan(ic__model_plan(f), ic__model_plan(r), ic__model_shape(f));
            ic__model_plan_end(f);
            ic__model_plan_end(r);
        }
        float pf[2 * MAXB], pr[2 * MAXB];
        float lf = ic_model_train_step(f, bt.s, B, pf);
        float lr = ic_model_train_step(r, bt.s, B, pr);
        if (!(fabsf(lf - lr) <= 1e-5f * fabsf(lr)))
            fail_msg("step %d: loss fast %.8g, reference %.8g", step, lf, lr);
        for (int i = 0; i < B * cfg->n_tasks; i++) assert_true(fabsf(pf[i] - pr[i]) <= 1e-5f);
    }
    /* after the steps the weights still agree to float rounding */
    const ic__net_f *nf = ic__model_net(f), *nr = ic__model_net(r);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < ic_model_n_dense(f); i++) {
        diff = fmax(diff, fabs(nf->pmem[i] - nr->pmem[i]));
        norm = fmax(norm, fabs(nr->pmem[i]));
    }
    assert_true(diff <= 1e-5 * norm);
    assert_int_equal(ic_model_n_rows(f), ic_model_n_rows(r));
    ic_model_free(f);
    ic_model_free(r);
}

/* The clock kinds x history off/on (pooling alternating), at dimension d:
 * variant v of N_CLOCK_VARIANTS. */
#define N_CLOCK_VARIANTS 8
static void clock_variant(ic_config *cfg, int d, int v)
{
    static const ic_clock_kind kinds[] = {IC_CLOCK_NONE, IC_CLOCK_NAIVE, IC_CLOCK_ADAPTIVE,
                                          IC_CLOCK_GAUSSIAN};
    int k = v % 4;
    small_config(cfg);
    cfg->dim = d;
    cfg->clock = kinds[k];
    cfg->history = v / 4;
    cfg->clock_pool = k % 2 ? IC_POOL_SCORE : IC_POOL_MEAN;
}

static void test_fast_vs_reference(void **state)
{
    (void)state;
    ic_config cfg;
    for (int v = 0; v < N_CLOCK_VARIANTS; v++) {
        clock_variant(&cfg, 16, v);
        check_fast_vs_ref(&cfg);
    }
}

/* Two threads (data-parallel halves): deterministic, and equal to one
 * thread to float rounding, in training and prediction; odd batches too. */
static void test_two_threads(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    cfg.dim = 8;
    cfg.history = 1;
    cfg.clock_sigma_learn = 1; /* the clock's own gradient is reduced too */
    ic_model *one, *two, *again;
    assert_int_equal(ic_model_create(&one, &cfg, NULL), IC_OK);
    assert_int_equal(ic_model_create(&two, &cfg, NULL), IC_OK);
    assert_int_equal(ic_model_create(&again, &cfg, NULL), IC_OK);
    assert_int_equal(ic_model_set_threads(two, 2), 2);
    assert_int_equal(ic_model_set_threads(again, 5), 2);
    batch bt;
    make_batch(&bt, &cfg, MAXB, 7);
    int sizes[] = {12, 11, 1, 16, 12};
    for (int step = 0; step < 5; step++) {
        int B = sizes[step];
        float p1[2 * MAXB], p2[2 * MAXB], p3[2 * MAXB];
        float l1 = ic_model_train_step(one, bt.s, B, p1);
        float l2 = ic_model_train_step(two, bt.s, B, p2);
        float l3 = ic_model_train_step(again, bt.s, B, p3);
        assert_memory_equal(&l2, &l3, sizeof l2);
        assert_memory_equal(p2, p3, (size_t)B * cfg.n_tasks * sizeof(float));
        if (!(fabsf(l1 - l2) <= 1e-5f * fabsf(l1)))
            fail_msg("step %d: loss 1 thread %.8g, 2 threads %.8g", step, l1, l2);
        for (int i = 0; i < B * cfg.n_tasks; i++) assert_true(fabsf(p1[i] - p2[i]) <= 1e-5f);
    }
    const ic__net_f *n1 = ic__model_net(one), *n2 = ic__model_net(two), *n3 = ic__model_net(again);
    assert_memory_equal(n2->pmem, n3->pmem, ic_model_n_dense(two) * sizeof(float));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < ic_model_n_dense(one); i++) {
        diff = fmax(diff, fabs(n1->pmem[i] - n2->pmem[i]));
        norm = fmax(norm, fabs(n1->pmem[i]));
    }
    assert_true(diff <= 1e-5 * norm);
    ic__emb *t1 = ic__model_table(one, IC__TAB_USER), *t2 = ic__model_table(two, IC__TAB_USER);
    assert_int_equal(t1->n, t2->n);
    for (size_t i = 0; i < t1->n * cfg.dim; i++)
        assert_true(fabsf(t1->rows[i] - t2->rows[i]) <= 1e-5f);
    float q1[2 * MAXB], q2[2 * MAXB];
    ic_model_predict(one, bt.s, 13, q1);
    ic_model_predict(two, bt.s, 13, q2);
    for (int i = 0; i < 13 * cfg.n_tasks; i++) assert_true(fabsf(q1[i] - q2[i]) <= 1e-5f);
    /* back to one thread: the same as the other one-thread path from here */
    assert_int_equal(ic_model_set_threads(two, 1), 1);
    ic_model_predict(two, bt.s, 13, q1);
    for (int i = 0; i < 13 * cfg.n_tasks; i++) assert_true(fabsf(q1[i] - q2[i]) <= 1e-6f);
    ic_model_free(one);
    ic_model_free(two);
    ic_model_free(again);
}

/* The vector Adam against the scalar one, over a length with a tail. */
static void test_adam_vector(void **state)
{
    (void)state;
    size_t n = 1003;
    float *p[2], *g, *m[2], *v[2];
    g = ic__xmalloc(n * sizeof *g);
    for (int k = 0; k < 2; k++) {
        p[k] = ic__xmalloc(n * sizeof(float));
        m[k] = ic__xcalloc(n, sizeof(float));
        v[k] = ic__xcalloc(n, sizeof(float));
    }
    for (size_t i = 0; i < n; i++) p[0][i] = p[1][i] = (float)(unif() - 0.5);
    for (long t = 1; t <= 5; t++) {
        for (size_t i = 0; i < n; i++) g[i] = (float)((unif() - 0.5) * (i % 7 ? 1 : 1e-6));
        ic__adam_update(p[0], g, m[0], v[0], n, 1e-2f, 0.9f, 0.999f, 1e-8f, t);
        ic__adam_update_ref(p[1], g, m[1], v[1], n, 1e-2f, 0.9f, 0.999f, 1e-8f, t);
    }
    int moved = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(fabsf(p[0][i] - p[1][i]) <= 1e-6f * (fabsf(p[1][i]) + 1e-2f));
        assert_true(fabsf(m[0][i] - m[1][i]) <= 1e-6f * fabsf(m[1][i]) + 1e-12f);
        assert_true(fabsf(v[0][i] - v[1][i]) <= 1e-6f * fabsf(v[1][i]) + 1e-15f);
        moved += m[1][i] != 0;
    }
    assert_true(moved == (int)n);
    free(g);
    for (int k = 0; k < 2; k++) free(p[k]), free(m[k]), free(v[k]);
}

/* ---- ranking requests: the shared path against the plain one ----------------------- */

/* A ranking request of B candidates: make_batch's samples (items and item
 * fields differ) with one user, one time and one clock view (sample 0's,
 * by pointer) in all; the last field, when it is single-valued, acts as a
 * context field: one value in every sample. */
static void make_request(batch *bt, const ic_config *cfg, int B)
{
    make_batch(bt, cfg, B, 9);
    int lf = cfg->n_fields - 1;
    for (int b = 0; b < B; b++) {
        ic_event *ev = &bt->ev[b];
        ev->user = 3;
        ev->ts = bt->ev[0].ts;
        ev->tz_min = bt->ev[0].tz_min;
        if (lf >= 0 && lf != 1) ev->val[ev->voff[lf]] = 1000 * (lf + 1) + 2;
        bt->s[b].clock = &bt->cv[0];
    }
}

/* A model with rows for make_batch's ids (vocabulary 7 of the request's
 * 9: some candidates are cold) and O(1) rows, time tables and adaptive
 * logits, so that candidates' predictions differ clearly. */
static ic_model *request_model(const ic_config *cfg)
{
    ic_model *m;
    assert_int_equal(ic_model_create(&m, cfg, NULL), IC_OK);
    batch bt;
    make_batch(&bt, cfg, MAXB, 7);
    for (int i = 0; i < 2; i++) ic_model_train_step(m, bt.s, MAXB, NULL);
    for (int t = 0; t < 2 + cfg->n_fields; t++) {
        ic__emb *tab = ic__model_table(m, t);
        for (size_t i = 0; i < tab->n * cfg->dim; i++) tab->rows[i] = (float)(2 * unif() - 1);
    }
    const char *names[] = {"hour", "dow", "clock.A"};
    for (int k = 0; k < 3; k++) {
        size_t n;
        float *p = ic__model_tensor(m, names[k], 0, &n);
        for (size_t i = 0; p && i < n; i++) p[i] = (float)(2 * unif() - 1);
    }
    return m;
}

/* Predicts s[0..B) on the shared path and on the plain reference: the
 * path taken must be `want_shared`; probabilities agree to float rounding
 * (the shared path sums in another order); on the plain path the fast
 * model computes exactly what the reference does. */
static void check_request(ic_model *m, const ic_sample *s, int B, int T, int want_shared)
{
    float pf[2 * MAXB], pr[2 * MAXB];
    ic_model_predict(m, s, B, pf);
    assert_int_equal(ic__model_last_shared(m), want_shared);
    ic__model_set_reference(m, 1);
    ic_model_predict(m, s, B, pr);
    assert_int_equal(ic__model_last_shared(m), 0);
    ic__model_set_reference(m, 0);
    for (int i = 0; i < B * T; i++)
        if (!(fabsf(pf[i] - pr[i]) <= 2e-6f)) /* observed <= 1.5e-7 */
            fail_msg("sample %d task %d: shared %.9g, plain %.9g", i / T, i % T, pf[i], pr[i]);
    if (!want_shared) assert_memory_equal(pf, pr, (size_t)B * T * sizeof(float));
}

/* The request's predictions must differ between candidates (else a path
 * that ignored the item would pass) and the shared path must be taken. */
static void check_shared_config(const ic_config *cfg)
{
    ic_model *m = request_model(cfg);
    batch bt;
    int B = MAXB, T = cfg->n_tasks;
    make_request(&bt, cfg, B);
    float p[2 * MAXB], lo = 1, hi = 0;
    ic_model_predict(m, bt.s, B, p);
    for (int b = 0; b < B; b++) {
        lo = fminf(lo, p[b * T]);
        hi = fmaxf(hi, p[b * T]);
    }
    if (!(hi - lo > 0.02f)) fail_msg("candidates barely differ: %.6g .. %.6g", lo, hi);
    check_request(m, bt.s, B, T, 1);
    check_request(m, bt.s, 1, T, 0); /* one sample: nothing to share */
    check_request(m, bt.s, 7, T, 1); /* odd, and a part of the request */
    /* equal content under another pointer is the same clock */
    bt.cv[1] = bt.cv[0];
    bt.s[4].clock = &bt.cv[1];
    check_request(m, bt.s, B, T, 1);
    ic_model_free(m);
}

static void test_shared_vs_plain(void **state)
{
    (void)state;
    ic_config cfg;
    for (int v = 0; v < N_CLOCK_VARIANTS; v++) {
        clock_variant(&cfg, 8, v);
        check_shared_config(&cfg);
    }
    /* low rank, stacked; learned sigma, continuous time, score pooling */
    small_config(&cfg);
    cfg.cross_rank = 3;
    cfg.structure = IC_STRUCT_STACKED;
    cfg.clock_sigma_learn = 1;
    cfg.clock_continuous = 1;
    cfg.clock_pool = IC_POOL_SCORE;
    check_shared_config(&cfg);
    /* low rank, parallel, history, one task, 3 clock fields */
    small_config(&cfg);
    cfg.cross_rank = 2;
    cfg.history = 1;
    cfg.n_tasks = 1;
    cfg.n_clock = 3;
    cfg.clock_field[2] = 2;
    check_shared_config(&cfg);
    /* a "low" rank above D (36): the shared part is r wide */
    small_config(&cfg);
    cfg.cross_rank = 40;
    check_shared_config(&cfg);
    /* full rank, stacked, adaptive */
    small_config(&cfg);
    cfg.structure = IC_STRUCT_STACKED;
    cfg.clock = IC_CLOCK_ADAPTIVE;
    check_shared_config(&cfg);
    /* edges: no cross layer (parallel); no MLP (stacked) */
    small_config(&cfg);
    cfg.cross_layers = 0;
    check_shared_config(&cfg);
    small_config(&cfg);
    cfg.n_mlp = 0;
    cfg.structure = IC_STRUCT_STACKED;
    check_shared_config(&cfg);
}

/* The start of sample 0's local hour, plus sec. */
static int64_t hour_start_plus(const ic_event *ev, int sec)
{
    int64_t local = ev->ts + 60 * (int64_t)ev->tz_min;
    return ev->ts - (local % 3600 + 3600) % 3600 + sec;
}

/* Batches that are not a request fall back to the plain path; batches
 * that share less than usual (a "context" field that differs, fields that
 * happen to agree, identical candidates) still share, correctly. */
static void test_shared_fallback(void **state)
{
    (void)state;
    ic_config cfg;
    for (int continuous = 0; continuous <= 1; continuous++) {
        small_config(&cfg);
        cfg.dim = 8;
        cfg.history = 1;
        cfg.clock_continuous = continuous;
        cfg.clock_pool = IC_POOL_SCORE;
        ic_model *m = request_model(&cfg);
        int B = MAXB, T = cfg.n_tasks, last = B - 1, c = 0, t = 0;
        batch bt, base;
        make_request(&base, &cfg, B);
        for (t = 0; t < IC_HOURS && !ic_clock_view_n(&base.cv[0], t, c); t++) {}
        assert_true(t < IC_HOURS); /* a filled slot to change */
#define VARIANT(want, ...)                                                      \
    do {                                                                        \
        bt = base;                                                              \
        for (int b = 0; b < B; b++) {                                           \
            bt.s[b].ev = &bt.ev[b];                                             \
            bt.s[b].clock = &bt.cv[0];                                          \
        }                                                                       \
        __VA_ARGS__;                                                            \
        check_request(m, bt.s, B, T, want);                                     \
    } while (0)
        VARIANT(1, (void)0);
        VARIANT(0, bt.ev[last].user = 4);
        VARIANT(0, bt.ev[last].ts += 3600);                     /* another hour */
        VARIANT(0, bt.ev[last].ts += 7 * 86400 + 86400);        /* another day */
        VARIANT(0, bt.ev[last].tz_min += 60);
        /* the same hour at another minute: only the continuous clock reads it */
        VARIANT(!continuous, bt.ev[last].ts = hour_start_plus(&bt.ev[0], bt.ev[0].ts ==
                                               hour_start_plus(&bt.ev[0], 100) ? 200 : 100));
        VARIANT(0, bt.s[last].clock = NULL);
        VARIANT(0, bt.cv[1] = bt.cv[0]; slot_edit(&bt.cv[1], t, c, 1, 0, 0); bt.s[last].clock = &bt.cv[1]);
        VARIANT(0, bt.cv[1] = bt.cv[0]; slot_edit(&bt.cv[1], t, c, 0, 1, 0); bt.s[last].clock = &bt.cv[1]);
        VARIANT(0, bt.cv[1] = bt.cv[0]; slot_edit(&bt.cv[1], t, c, 0, 0, -1); bt.s[last].clock = &bt.cv[1]);
        /* the "context" field differs in one sample: it becomes per sample */
        VARIANT(1, bt.ev[last].val[bt.ev[last].voff[2]] += 1);
        /* field 0 equal everywhere: the differing columns split in two runs */
        VARIANT(1, for (int b = 0; b < B; b++) bt.ev[b].val[bt.ev[b].voff[0]] = 1003);
        /* identical candidates: nothing differs */
        VARIANT(1, for (int b = 1; b < B; b++) bt.ev[b] = bt.ev[0]);
        /* the same item everywhere, other fields differ */
        VARIANT(1, for (int b = 1; b < B; b++) bt.ev[b].item = bt.ev[0].item);
#undef VARIANT
        /* two threads: the helper reads the same shared part */
        assert_int_equal(ic_model_set_threads(m, 2), 2);
        bt = base;
        for (int b = 0; b < B; b++) bt.s[b] = (ic_sample){&bt.ev[b], &bt.cv[0]};
        check_request(m, bt.s, B, T, 1);
        check_request(m, bt.s, 5, T, 1);
        ic_model_free(m);
    }
}

/* The split itself in double, where rounding is ~1e-16: the shared
 * forward equals the plain forward of the same plan to 1e-12 of the
 * logits' scale, for hand-made column sets (one run, two runs, none
 * shared but the time, everything). A wrong column split would be off by
 * O(1). */
static void test_shared_forward_double(void **state)
{
    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        ic_config cfg;
        small_config(&cfg);
        cfg.history = 1;
        cfg.cross_rank = variant == 1 ? 3 : 0;
        cfg.structure = variant == 2 ? IC_STRUCT_STACKED : IC_STRUCT_PARALLEL;
        ic_model *m = request_model(&cfg);
        batch bt;
        int B = 12;
        make_request(&bt, &cfg, B);
        for (int b = 0; b < B; b++) bt.ev[b].val[bt.ev[b].voff[0]] = 1003; /* field 0 too */
        ic__model_plan_begin(m, bt.s, B, 0, 0);
        const ic__plan *pl = ic__model_plan(m);
        const ic__shape *sh = ic__model_shape(m);
        ic__net_d nd;
        ic__net_init_d(&nd, sh, B, pl->E);
        ic__net_to_double(&nd, ic__model_net(m), pl->U);
        for (size_t i = 0; i < sh->n_params; i++) nd.pmem[i] = unif() - 0.5;
        ic__net_forward_d(&nd, pl);
        double want[2 * MAXB], scale = 0;
        memcpy(want, nd.logits, (size_t)B * sh->T * sizeof(double));
        for (int i = 0; i < B * sh->T; i++) scale = fmax(scale, fabs(want[i]));
        assert_true(scale > 0.1);
        double *mem = ic__xmalloc(ic__share_size_d(sh) * sizeof(double));
        /* column sets (x0 = [user | item | field 0 | field 1 | field 2 |
         * ...]): [item | field 0 | field 1] (field 0 pooled per sample
         * although equal: no harm); [item], [field 1] (two runs around the
         * shared field 0); everything per sample but the time and clock */
        int d = sh->d;
        ic__share_cols cols[3] = {{.n_run = 1, .run = {d, 4 * d}},
                                  {.n_run = 2, .run = {d, 2 * d, 3 * d, 4 * d}},
                                  {.n_run = 1, .run = {0, 5 * d}}};
        for (int k = 0; k < 3; k++) {
            memset(cols[k].seg, 1, sizeof cols[k].seg);
            cols[k].seg[1] = cols[k].seg[3] = 0;
            cols[k].seg[2] = k == 1;
            if (k == 2) cols[k].seg[0] = cols[k].seg[4] = 0;
            ic__share_d sv;
            ic__share_init_d(&sv, mem, sh, &cols[k]);
            ic__net_share_prepare_d(&nd, pl, &sv);
            ic__net_forward_shared_d(&nd, pl, &sv);
            for (int i = 0; i < B * sh->T; i++)
                if (!(fabs(nd.logits[i] - want[i]) <= 1e-12 * scale))
                    fail_msg("variant %d, columns %d, logit %d: %.17g vs %.17g", variant, k, i,
                             nd.logits[i], want[i]);
        }
        free(mem);
        ic__net_free_d(&nd);
        ic__model_plan_end(m);
        ic_model_free(m);
    }
}

/* ---- prediction ------------------------------------------------------------------------ */

static void test_predict_cold_start(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    ic_model *m;
    assert_int_equal(ic_model_create(&m, &cfg, NULL), IC_OK);
    batch bt;
    make_batch(&bt, &cfg, 8, 6);
    float l0 = ic_model_train_step(m, bt.s, 8, NULL);
    for (int i = 0; i < 40; i++) ic_model_train_step(m, bt.s, 8, NULL);
    float l1 = ic_model_train_step(m, bt.s, 8, NULL);
    assert_true(l1 < 0.8f * l0); /* a fixed batch is learned */
    size_t rows = ic_model_n_rows(m);
    assert_true(rows > 10);
    /* an unseen user (and unseen clock values) embed as zero ... */
    ic_event ev = bt.ev[0];
    ev.user = 987654321;
    ic_clock_view cv = bt.cv[0];
    if (!ic_clock_view_n(&cv, 5, 0)) ic_clock_view_set(&cv, 5, 0, 1, (uint64_t[]){55555}, (float[]){0});
    else slot_edit(&cv, 5, 0, 55555 - ic_clock_view_values(&cv, 5, 0)[0], 0, 0);
    ic_sample s1 = {&ev, &cv};
    float p1[4], p2[4], p3[4];
    ic_model_predict(m, &s1, 1, p1);
    assert_int_equal(ic_model_n_rows(m), rows); /* ... and are not inserted */
    ic_event ev0 = ev;
    ev0.user = 0; /* no user at all */
    ic_sample s2 = {&ev0, &cv};
    ic_model_predict(m, &s2, 1, p2);
    assert_true(p1[0] == p2[0] && p1[1] == p2[1]);
    /* the known user changes the prediction */
    ic_sample s3 = {&bt.ev[0], &cv};
    ic_model_predict(m, &s3, 1, p3);
    assert_true(p3[0] != p1[0]);
    /* predictions in a batch equal those made one by one */
    float pb[16], pone[2];
    ic_model_predict(m, bt.s, 8, pb);
    for (int b = 0; b < 8; b++) {
        ic_model_predict(m, &bt.s[b], 1, pone);
        assert_true(fabsf(pone[0] - pb[2 * b]) < 1e-6f && fabsf(pone[1] - pb[2 * b + 1]) < 1e-6f);
    }
    ic_model_free(m);
}

static void test_determinism_and_big_batch(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    cfg.batch = 4; /* the workspace grows once for a batch of 12 */
    ic_model *a, *b;
    assert_int_equal(ic_model_create(&a, &cfg, NULL), IC_OK);
    assert_int_equal(ic_model_create(&b, &cfg, NULL), IC_OK);
    assert_int_equal(ic_model_n_dense(a), ic_model_n_dense(b));
    batch bt;
    make_batch(&bt, &cfg, 12, 6);
    for (int i = 0; i < 3; i++) {
        float la = ic_model_train_step(a, bt.s, 12, NULL);
        float lb = ic_model_train_step(b, bt.s, 12, NULL);
        assert_true(la == lb && isfinite(la));
    }
    ic_model_free(a);
    ic_model_free(b);
}

static void test_bad_config(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    cfg.dim = 0;
    ic_model *m = (ic_model *)&cfg;
    ic_error err;
    assert_int_equal(ic_model_create(&m, &cfg, &err), IC_ERR_CONFIG);
    assert_null(m);
    assert_non_null(strstr(err.msg, "dim"));
    small_config(&cfg);
    cfg.clock_field[1] = 9;
    assert_int_equal(ic_model_create(&m, &cfg, &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "clock"));
    small_config(&cfg); /* a history block needs clock fields, even without a clock */
    cfg.clock = IC_CLOCK_NONE;
    cfg.history = 1;
    cfg.n_clock = 0;
    assert_int_equal(ic_model_create(&m, &cfg, &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "clock fields"));
    cfg.history = 0;
    assert_int_equal(ic_model_create(&m, &cfg, &err), IC_OK);
    ic_model_free(m);
    ic_model_free(NULL);
}

/* ---- save and load ------------------------------------------------------------------------ */

static void tmp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/iclock_test_model_%d_%s.bin", (int)getpid(), tag);
}

/* Fills a stack frame with byte c, so that whatever ic_model_save puts on
 * the stack next starts from c, not from zeros. */
static void __attribute__((noinline)) dirty_stack(unsigned char c)
{
    volatile unsigned char junk[32768];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = c;
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb, ca, cb;
    while (eq && ((ca = fgetc(fa)) != EOF) | ((cb = fgetc(fb)) != EOF)) eq = ca == cb;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

/* Two saves of one model are the same bytes, whatever the stack held
 * before (the files once carried uninitialised stack bytes). */
static void test_save_is_deterministic(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    ic_model *a;
    ic_error err;
    assert_int_equal(ic_model_create(&a, &cfg, NULL), IC_OK);
    char p1[128], p2[128];
    tmp_path(p1, sizeof p1, "det1");
    tmp_path(p2, sizeof p2, "det2");
    dirty_stack(0xAA);
    assert_int_equal(ic_model_save(a, p1, &err), IC_OK);
    dirty_stack(0x55);
    assert_int_equal(ic_model_save(a, p2, &err), IC_OK);
    assert_true(files_equal(p1, p2));
    unlink(p1);
    unlink(p2);
    ic_model_free(a);
}

static void test_save_load_resume(void **state)
{
    (void)state;
    ic_config cfg;
    for (int variant = 0; variant < 2; variant++) {
        small_config(&cfg);
        if (variant) { /* every optional state: Adam rows, learned sigma; history */
            cfg.emb_optim = IC_OPT_ADAM;
            cfg.clock_sigma_learn = 1;
            cfg.history = 1;
        }
        ic_model *a, *b;
        ic_error err;
        assert_int_equal(ic_model_create(&a, &cfg, NULL), IC_OK);
        batch b1, b2;
        make_batch(&b1, &cfg, 8, 6);
        make_batch(&b2, &cfg, 8, 9); /* with ids not seen in b1: rows drawn after loading */
        for (int i = 0; i < 3; i++) ic_model_train_step(a, b1.s, 8, NULL);
        char path[128];
        tmp_path(path, sizeof path, "resume");
        assert_int_equal(ic_model_save(a, path, &err), IC_OK);
        ic_config other = cfg;
        other.history = !cfg.history; /* both directions name the setting */
        assert_int_equal(ic_model_load(&b, path, &other, &err), IC_ERR_MISMATCH);
        assert_non_null(strstr(err.msg, "history"));
        assert_int_equal(ic_model_load(&b, path, &cfg, &err), IC_OK);
        assert_int_equal(ic_model_n_rows(a), ic_model_n_rows(b));
        for (int i = 0; i < 3; i++) {
            float pa[16], pb[16];
            float la = ic_model_train_step(a, b2.s, 8, pa);
            float lb = ic_model_train_step(b, b2.s, 8, pb);
            assert_memory_equal(&la, &lb, sizeof la);
            assert_memory_equal(pa, pb, sizeof pa);
        }
        assert_int_equal(ic_model_n_rows(a), ic_model_n_rows(b));
        const ic__net_f *na = ic__model_net(a), *nb = ic__model_net(b);
        assert_memory_equal(na->pmem, nb->pmem, ic_model_n_dense(a) * sizeof(float));
        for (int t = 0; t < 2 + cfg.n_fields; t++) {
            ic__emb *ta = ic__model_table(a, t), *tb = ic__model_table(b, t);
            assert_int_equal(ta->n, tb->n);
            assert_memory_equal(ta->ids, tb->ids, ta->n * sizeof *ta->ids);
            assert_memory_equal(ta->rows, tb->rows, ta->n * cfg.dim * sizeof(float));
            assert_memory_equal(ta->s1, tb->s1, ta->n * cfg.dim * sizeof(float));
        }
        unlink(path);
        ic_model_free(a);
        ic_model_free(b);
    }
}

static void test_load_errors(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    ic_model *a, *b = NULL;
    ic_error err;
    assert_int_equal(ic_model_create(&a, &cfg, NULL), IC_OK);
    batch bt;
    make_batch(&bt, &cfg, 8, 6);
    ic_model_train_step(a, bt.s, 8, NULL);
    char path[128], bad[128];
    tmp_path(path, sizeof path, "good");
    tmp_path(bad, sizeof bad, "bad");
    assert_int_equal(ic_model_save(a, path, &err), IC_OK);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len);
    assert_int_equal(fread(buf, 1, len, f), len);
    fclose(f);
    /* truncated */
    f = fopen(bad, "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    assert_int_equal(ic_model_load(&b, bad, &cfg, &err), IC_ERR_CORRUPT);
    assert_null(b);
    /* one flipped byte in the middle */
    buf[len / 2] ^= 0x40;
    f = fopen(bad, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    assert_int_equal(ic_model_load(&b, bad, &cfg, &err), IC_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "checksum"));
    /* another configuration: names the setting */
    ic_config other = cfg;
    other.cross_layers = 3;
    assert_int_equal(ic_model_load(&b, path, &other, &err), IC_ERR_MISMATCH);
    assert_non_null(strstr(err.msg, "cross_layers"));
    other = cfg;
    other.clock = IC_CLOCK_ADAPTIVE;
    assert_int_equal(ic_model_load(&b, path, &other, &err), IC_ERR_MISMATCH);
    assert_non_null(strstr(err.msg, "'clock'"));
    other = cfg;
    other.history = 1; /* a file without history, a configuration with it */
    assert_int_equal(ic_model_load(&b, path, &other, &err), IC_ERR_MISMATCH);
    assert_non_null(strstr(err.msg, "history"));
    other = cfg;
    other.mlp[1] = 7;
    assert_int_equal(ic_model_load(&b, path, &other, &err), IC_ERR_MISMATCH);
    assert_non_null(strstr(err.msg, "mlp"));
    /* a missing file */
    assert_int_equal(ic_model_load(&b, "/nonexistent/iclock.bin", &cfg, &err), IC_ERR_IO);
    /* and the good file still loads */
    assert_int_equal(ic_model_load(&b, path, &cfg, &err), IC_OK);
    ic_model_free(b);
    unlink(path);
    unlink(bad);
    free(buf);
    ic_model_free(a);
}

int main(void)
{
    openblas_set_num_threads(1);
    ic__rng_seed(&rng, 2024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_modes),
        cmocka_unit_test(test_gradcheck_variants),
        cmocka_unit_test(test_clock_pool_fast_vs_ref),
        cmocka_unit_test(test_history_block),
        cmocka_unit_test(test_fast_vs_reference),
        cmocka_unit_test(test_adam_vector),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_pytorch_fixture),
        cmocka_unit_test(test_predict_cold_start),
        cmocka_unit_test(test_shared_vs_plain),
        cmocka_unit_test(test_shared_fallback),
        cmocka_unit_test(test_shared_forward_double),
        cmocka_unit_test(test_determinism_and_big_batch),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_save_load_resume),
        cmocka_unit_test(test_save_is_deterministic),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
