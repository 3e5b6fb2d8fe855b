/* test_nn.c: central-difference gradient checks, in double, of every layer
 * kernel of the network (the _d instantiation of the same source as the
 * float path): linear, ReLU, cross (full and low rank), heads, the BCE
 * loss, the clock weights in every mode, embedding pooling (multi-valued),
 * the clock pooling and the history pooling (fixed weights 1/24); plus the
 * fast clock and history pooling against the plain per-slot reference, and
 * the float kernels against the double ones.
 *
 * Criterion, for every gradient entry: |analytic - numeric| <= 1e-6 *
 * max(|analytic|, |numeric|) + 1e-9 (the absolute floor is the central
 * difference's own rounding error with h = 1e-5 on O(1) losses). Each
 * checked tensor must also have a gradient entry larger than 1e-3, so an
 * all-zero gradient cannot pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>

#define REL_TOL 1e-6
#define ABS_TOL 1e-9
#define STEP 1e-5

static ic_rng rng;

static void fill(double *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (2 * ic__rng_uniform(&rng) - 1) * scale;
}

static double *vec(size_t n, double scale)
{
    double *x = ic__xcalloc(n, sizeof *x);
    fill(x, n, scale);
    return x;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Checks g (analytic) against central differences of f over x[0..n). */
static void gradcheck(const char *name, double *x, const double *g, size_t n, loss_fn f, void *ctx)
{
    double worst = 0, gmax = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + STEP;
        double fp = f(ctx);
        x[i] = keep - STEP;
        double fm = f(ctx);
        x[i] = keep;
        double num = (fp - fm) / (2 * STEP);
        double excess = fabs(num - g[i]) - (REL_TOL * fmax(fabs(num), fabs(g[i])) + ABS_TOL);
        if (excess > worst) {
            worst = excess;
            worst_i = i;
        }
        gmax = fmax(gmax, fabs(g[i]));
        if (excess > 0)
            fail_msg("%s[%zu]: analytic %.12g, numeric %.12g", name, i, g[i], num);
    }
    (void)worst_i;
    if (gmax <= 1e-3) fail_msg("%s: gradient is (nearly) all zero (max %g)", name, gmax);
}

/* ---- linear + relu -------------------------------------------------------- */

typedef struct {
    int B, C, OC, relu;
    double *inp, *w, *b, *out, *G;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    ic__linear_forward_d(c->out, c->inp, c->w, c->b, c->B, c->C, c->OC);
    if (c->relu) ic__relu_forward_d(c->out, (size_t)c->B * c->OC);
    return dot(c->out, c->G, (size_t)c->B * c->OC);
}

static void check_linear(int relu)
{
    lin_ctx c = {.B = 5, .C = 7, .OC = 6, .relu = relu};
    c.inp = vec(c.B * c.C, 1);
    c.w = vec(c.OC * c.C, 1);
    c.b = vec(c.OC, 1);
    c.out = vec(c.B * c.OC, 0);
    c.G = vec(c.B * c.OC, 1);
    double *dinp = vec(c.B * c.C, 0), *dw = vec(c.OC * c.C, 0), *db = vec(c.OC, 0);
    double *dout = vec(c.B * c.OC, 0);
    lin_loss(&c);
    memcpy(dout, c.G, sizeof(double) * c.B * c.OC);
    if (relu) ic__relu_backward_d(dout, c.out, (size_t)c.B * c.OC);
    ic__linear_backward_d(dinp, dw, db, dout, c.inp, c.w, c.B, c.C, c.OC);
    gradcheck("linear.inp", c.inp, dinp, c.B * c.C, lin_loss, &c);
    gradcheck("linear.w", c.w, dw, c.OC * c.C, lin_loss, &c);
    gradcheck("linear.b", c.b, db, c.OC, lin_loss, &c);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.G);
    free(dinp), free(dw), free(db), free(dout);
}

static void test_linear(void **state)
{
    (void)state;
    check_linear(0);
}

static void test_linear_relu(void **state)
{
    (void)state;
    check_linear(1);
}

/* ---- cross layer ---------------------------------------------------------- */

typedef struct {
    int B, D, r;
    double *x0, *x, *w, *u, *v, *b, *xn, *z, *h, *G;
} cross_ctx;

static double cross_loss(void *p)
{
    cross_ctx *c = p;
    ic__cross_forward_d(c->xn, c->z, c->h, c->x0, c->x, c->w, c->u, c->v, c->b, c->B, c->D, c->r);
    return dot(c->xn, c->G, (size_t)c->B * c->D);
}

static void check_cross(int r)
{
    cross_ctx c = {.B = 4, .D = 6, .r = r};
    size_t BD = c.B * c.D;
    c.x0 = vec(BD, 1), c.x = vec(BD, 1), c.b = vec(c.D, 1), c.G = vec(BD, 1);
    c.w = r ? NULL : vec(c.D * c.D, 1);
    c.u = r ? vec(c.D * r, 1) : NULL;
    c.v = r ? vec(r * c.D, 1) : NULL;
    c.xn = vec(BD, 0), c.z = vec(BD, 0), c.h = vec(c.B * (r ? r : 1), 0);
    double *dx = vec(BD, 0), *dx0 = vec(BD, 0), *dz = vec(BD, 0), *dh = vec(c.B * (r ? r : 1), 0);
    double *dw = vec(c.D * c.D, 0), *du = vec(c.D * (r ? r : 1), 0), *dv = vec(c.D * (r ? r : 1), 0);
    double *db = vec(c.D, 0);
    cross_loss(&c);
    memcpy(dx, c.G, BD * sizeof(double));
    ic__cross_backward_d(dx, dx0, dz, dh, dw, du, dv, db, c.x0, c.x, c.z, c.h, c.w, c.u, c.v, c.B,
                         c.D, r);
    gradcheck("cross.x", c.x, dx, BD, cross_loss, &c);
    gradcheck("cross.x0", c.x0, dx0, BD, cross_loss, &c);
    gradcheck("cross.b", c.b, db, c.D, cross_loss, &c);
    if (r) {
        gradcheck("cross.u", c.u, du, c.D * r, cross_loss, &c);
        gradcheck("cross.v", c.v, dv, r * c.D, cross_loss, &c);
    } else {
        gradcheck("cross.w", c.w, dw, c.D * c.D, cross_loss, &c);
    }
    free(c.x0), free(c.x), free(c.b), free(c.G), free(c.w), free(c.u), free(c.v);
    free(c.xn), free(c.z), free(c.h), free(dx), free(dx0), free(dz), free(dh);
    free(dw), free(du), free(dv), free(db);
}

static void test_cross_full(void **state)
{
    (void)state;
    check_cross(0);
}

static void test_cross_low_rank(void **state)
{
    (void)state;
    check_cross(2);
}

/* ---- heads and loss -------------------------------------------------------- */

typedef struct {
    int B, C1, C2, T;
    double *x1, *x2, *w, *b, *logits, *probs;
    float y[64], tw[4];
} head_ctx;

static double head_loss(void *p)
{
    head_ctx *c = p;
    ic__head_forward_d(c->logits, c->x1, c->C1, c->x2, c->C2, c->w, c->b, c->B, c->T);
    return ic__bce_forward_d(c->probs, c->logits, c->y, c->tw, c->B, c->T, c->B);
}

static void test_heads_and_bce(void **state)
{
    (void)state;
    head_ctx c = {.B = 6, .C1 = 5, .C2 = 3, .T = 2, .tw = {1.0f, 0.5f}};
    int S = c.C1 + c.C2;
    c.x1 = vec(c.B * c.C1, 1), c.x2 = vec(c.B * c.C2, 1), c.w = vec(c.T * S, 1.5);
    c.b = vec(c.T, 1), c.logits = vec(c.B * c.T, 0), c.probs = vec(c.B * c.T, 0);
    for (int i = 0; i < c.B * c.T; i++) c.y[i] = i % 3 == 0 ? 1.0f : (i % 3 == 1 ? 0.0f : 0.25f);
    double *dl = vec(c.B * c.T, 0), *dx1 = vec(c.B * c.C1, 0), *dx2 = vec(c.B * c.C2, 0);
    double *dw = vec(c.T * S, 0), *db = vec(c.T, 0);
    double loss = head_loss(&c);
    /* The loss by the plain formula, with probabilities. */
    double ref = 0;
    for (int t = 0; t < c.T; t++)
        for (int b = 0; b < c.B; b++) {
            double p = 1 / (1 + exp(-c.logits[b * c.T + t])), y = c.y[b * c.T + t];
            ref += c.tw[t] * -(y * log(p) + (1 - y) * log(1 - p)) / c.B;
            assert_true(fabs(c.probs[b * c.T + t] - p) < 1e-15);
        }
    assert_true(fabs(loss - ref) < 1e-12 * fabs(ref));
    ic__bce_backward_d(dl, c.logits, c.y, c.tw, c.B, c.T, c.B);
    ic__head_backward_d(dx1, dx2, dw, db, dl, c.x1, c.C1, c.x2, c.C2, c.w, c.B, c.T);
    gradcheck("head.x1", c.x1, dx1, c.B * c.C1, head_loss, &c);
    gradcheck("head.x2", c.x2, dx2, c.B * c.C2, head_loss, &c);
    gradcheck("head.w", c.w, dw, c.T * S, head_loss, &c);
    gradcheck("head.b", c.b, db, c.T, head_loss, &c);
    free(c.x1), free(c.x2), free(c.w), free(c.b), free(c.logits), free(c.probs);
    free(dl), free(dx1), free(dx2), free(dw), free(db);
}

static void test_bce_extreme_logits(void **state)
{
    (void)state;
    /* The stable form stays finite where log(sigmoid) would not. */
    float y[2] = {0.0f, 1.0f}, w[1] = {1.0f};
    double logits[2] = {800.0, -800.0}, probs[2];
    double loss = ic__bce_forward_d(probs, logits, y, w, 2, 1, 2);
    assert_true(isfinite(loss));
    assert_true(fabs(loss - 800.0) < 1e-9);
    float lf[2] = {90.0f, -90.0f}, pf[2];
    float lossf = ic__bce_forward_f(pf, lf, y, w, 2, 1, 2);
    assert_true(isfinite(lossf) && fabsf(lossf - 90.0f) < 1e-3f);
}

/* ---- clock weights ----------------------------------------------------------- */

typedef struct {
    ic_clock_kind kind;
    int h, continuous;
    double hf, *A, *s, sigma, c[24], G[24];
} cw_ctx;

static double cw_loss(void *p)
{
    cw_ctx *c = p;
    ic__clock_weights_forward_d(c->c, c->kind, c->h, c->hf, c->continuous, c->A, c->s, c->sigma);
    return dot(c->c, c->G, 24);
}

static void test_clock_delta(void **state)
{
    (void)state;
    assert_true(ic__clock_delta(23, 0, 0.0, 0) == 1);
    assert_true(ic__clock_delta(0, 23, 23.0, 0) == 1);
    assert_true(ic__clock_delta(12, 0, 0.0, 0) == 12);
    assert_true(ic__clock_delta(5, 8, 8.0, 0) == 3);
    /* continuous: from 00:12 to the centre of slot 23 (23:30) is 0.7 h */
    assert_true(fabs(ic__clock_delta(23, 0, 0.2, 1) - 0.7) < 1e-12);
    assert_true(fabs(ic__clock_delta(0, 0, 0.2, 1) - 0.3) < 1e-12);
    assert_true(fabs(ic__clock_delta(12, 0, 0.5, 1) - 12.0) < 1e-12);
}

static void test_clock_weights_values(void **state)
{
    (void)state;
    double c[24];
    ic__clock_weights_forward_d(c, IC_CLOCK_NAIVE, 7, 7.5, 0, NULL, NULL, 1);
    for (int t = 0; t < 24; t++) assert_true(c[t] == (t == 7));
    /* Gaussian at sigma 2: the paper's density of the circular distance. */
    ic__clock_weights_forward_d(c, IC_CLOCK_GAUSSIAN, 1, 1.0, 0, NULL, NULL, 2.0);
    double g0 = 1 / (sqrt(2 * M_PI) * 2.0);
    assert_true(fabs(c[1] - g0) < 1e-15);
    assert_true(fabs(c[23] - g0 * exp(-4.0 / 8.0)) < 1e-15); /* delta 2 */
    assert_true(fabs(c[0] - c[2]) < 1e-15);
    /* Adaptive with A = 0: uniform. */
    double A[24 * 24] = {0};
    ic__clock_weights_forward_d(c, IC_CLOCK_ADAPTIVE, 3, 3.0, 0, A, NULL, 1);
    for (int t = 0; t < 24; t++) assert_true(fabs(c[t] - 1.0 / 24) < 1e-15);
}

static void check_clock_weights(ic_clock_kind kind, int continuous)
{
    cw_ctx c = {.kind = kind, .h = 22, .continuous = continuous, .hf = 22.8, .sigma = 1};
    fill(c.G, 24, 1);
    double dc[24], dA[24 * 24] = {0}, ds[1] = {0};
    c.A = vec(24 * 24, 2);
    c.s = vec(1, 0);
    c.s[0] = log(1.7);
    cw_loss(&c);
    memcpy(dc, c.G, sizeof dc);
    ic__clock_weights_backward_d(dA, ds, dc, c.c, kind, c.h, c.hf, continuous, c.s);
    if (kind == IC_CLOCK_ADAPTIVE) {
        /* only row h moves */
        for (int i = 0; i < 24 * 24; i++)
            if (i / 24 != c.h) assert_true(dA[i] == 0);
        gradcheck("clock.A", c.A, dA, 24 * 24, cw_loss, &c);
    } else {
        gradcheck(continuous ? "clock.log_sigma(continuous)" : "clock.log_sigma", c.s, ds, 1,
                  cw_loss, &c);
    }
    free(c.A);
    free(c.s);
}

static void test_clock_weights_grad(void **state)
{
    (void)state;
    check_clock_weights(IC_CLOCK_ADAPTIVE, 0);
    check_clock_weights(IC_CLOCK_GAUSSIAN, 0);
    check_clock_weights(IC_CLOCK_GAUSSIAN, 1);
}

/* ---- embedding pooling --------------------------------------------------------- */

typedef struct {
    int d, nseg, seg[4];
    int32_t ent_u[8];
    double *R, *ew, *out, *G;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    double L = 0;
    for (int s = 0; s < c->nseg; s++) {
        ic__pool_forward_d(c->out, c->R, c->ent_u, c->ew, c->seg[s], c->seg[s + 1], c->d);
        L += dot(c->out, c->G + s * c->d, c->d);
    }
    return L;
}

static void test_pool(void **state)
{
    (void)state;
    /* Segment 0: one value; segment 1: three values, mean-pooled, one of
     * them the same row as segment 0's (its gradient must add up);
     * segment 2: empty (a zero vector). */
    pool_ctx c = {.d = 5, .nseg = 3, .seg = {0, 1, 4, 4}, .ent_u = {2, 0, 1, 2}};
    int U = 3;
    c.R = vec(U * c.d, 1), c.ew = vec(4, 0), c.out = vec(c.d, 0), c.G = vec(3 * c.d, 1);
    c.ew[0] = 1;
    for (int e = 1; e < 4; e++) c.ew[e] = 1.0 / 3;
    ic__pool_forward_d(c.out, c.R, c.ent_u, c.ew, 1, 4, c.d);
    for (int j = 0; j < c.d; j++)
        assert_true(fabs(c.out[j] - (c.R[j] + c.R[c.d + j] + c.R[2 * c.d + j]) / 3) < 1e-15);
    ic__pool_forward_d(c.out, c.R, c.ent_u, c.ew, 4, 4, c.d);
    for (int j = 0; j < c.d; j++) assert_true(c.out[j] == 0);
    double *dR = vec(U * c.d, 0), dew[4];
    for (int s = 0; s < c.nseg; s++)
        ic__pool_backward_d(dR, dew, c.G + s * c.d, c.R, c.ent_u, c.ew, c.seg[s], c.seg[s + 1], c.d);
    gradcheck("pool.R", c.R, dR, U * c.d, pool_loss, &c);
    gradcheck("pool.ew", c.ew, dew, 4, pool_loss, &c);
    free(c.R), free(c.ew), free(c.out), free(c.G), free(dR);
}

/* ---- clock pooling: fast (distinct values) against the plain reference ---------- */

/* A one-sample plan with F = 0 and NC = 2 clock fields over U = 4 rows:
 * value u at slot t with pooling weight p, repeats across slots. */
typedef struct {
    ic__plan pl;
    int32_t seg_off[5], occ_off[3], ent_u[8], occ_e[16];
    uint8_t occ_t[16];
    float ent_w[8], occ_p[16];
    int d;
    double *R, *cw, *ew, *out, *G;
} cp_ctx;

static void cp_build(cp_ctx *c)
{
    memset(&c->pl, 0, sizeof c->pl);
    /* segments: user, item (empty), clock 0 = entries 0..2, clock 1 = 3..4 */
    int32_t seg[5] = {0, 0, 0, 3, 5}, ent[5] = {0, 1, 2, 1, 3};
    memcpy(c->seg_off, seg, sizeof seg);
    memcpy(c->ent_u, ent, sizeof ent);
    struct { int e, t; float p; } occ[] = {
        {0, 22, 0.5f}, {1, 22, 0.5f}, {0, 23, 1.0f}, {2, 0, 0.2f}, {0, 0, 0.8f}, {1, 5, 1.0f},
        {3, 22, 1.0f}, {4, 23, 0.25f}, {3, 23, 0.75f}, {4, 10, 1.0f},
    };
    int n0 = 6, n = sizeof occ / sizeof occ[0];
    for (int o = 0; o < n; o++) {
        c->occ_e[o] = occ[o].e;
        c->occ_t[o] = (uint8_t)occ[o].t;
        c->occ_p[o] = occ[o].p;
    }
    c->occ_off[0] = 0, c->occ_off[1] = n0, c->occ_off[2] = n;
    c->pl.B = 1, c->pl.E = 5, c->pl.U = 4, c->pl.O = n;
    c->pl.seg_off = c->seg_off, c->pl.ent_u = c->ent_u, c->pl.ent_w = c->ent_w;
    c->pl.occ_off = c->occ_off, c->pl.occ_e = c->occ_e, c->pl.occ_t = c->occ_t;
    c->pl.occ_p = c->occ_p;
}

static double cp_loss(void *p)
{
    cp_ctx *c = p;
    double L = 0;
    for (int k = 0; k < 2; k++) {
        ic__clock_entry_weights_d(c->ew, &c->pl, 2, 4, 0, 0, k, c->cw);
        ic__pool_forward_d(c->out, c->R, c->ent_u, c->ew, c->seg_off[2 + k], c->seg_off[3 + k],
                           c->d);
        L += dot(c->out, c->G + k * c->d, c->d);
    }
    return L;
}

static void test_clock_pool(void **state)
{
    (void)state;
    cp_ctx c;
    cp_build(&c);
    c.d = 6;
    c.R = vec(4 * c.d, 1), c.cw = vec(24, 1), c.ew = vec(8, 0), c.out = vec(c.d, 0);
    c.G = vec(2 * c.d, 1);
    double ref[6];
    for (int k = 0; k < 2; k++) {
        ic__clock_entry_weights_d(c.ew, &c.pl, 2, 4, 0, 0, k, c.cw);
        ic__pool_forward_d(c.out, c.R, c.ent_u, c.ew, c.seg_off[2 + k], c.seg_off[3 + k], c.d);
        ic__clock_pool_ref_d(ref, c.R, &c.pl, 2, 0, k, c.cw, c.d);
        for (int j = 0; j < c.d; j++) assert_true(fabs(c.out[j] - ref[j]) < 1e-14);
    }
    /* the fast path's gradients: rows and clock weights */
    double *dR = vec(4 * c.d, 0), dew[8] = {0}, dcw[24] = {0};
    cp_loss(&c); /* leaves ew of both segments */
    for (int k = 0; k < 2; k++) {
        ic__pool_backward_d(dR, dew, c.G + k * c.d, c.R, c.ent_u, c.ew, c.seg_off[2 + k],
                            c.seg_off[3 + k], c.d);
        ic__clock_entry_weights_backward_d(dcw, dew, &c.pl, 2, 0, k);
    }
    gradcheck("clockpool.R", c.R, dR, 4 * c.d, cp_loss, &c);
    gradcheck("clockpool.cw", c.cw, dcw, 24, cp_loss, &c);
    /* slots no value fills get no gradient */
    assert_true(dcw[1] == 0 && dcw[12] == 0);
    free(c.R), free(c.cw), free(c.ew), free(c.out), free(c.G), free(dR);
}

/* ---- history pooling: the slot pooling with fixed weights 1/24 ------------------- */

static double hist_loss(void *p)
{
    cp_ctx *c = p;
    double L = 0;
    for (int k = 0; k < 2; k++) {
        ic__history_entry_weights_d(c->ew, &c->pl, 2, 4, 0, 0, k);
        ic__pool_forward_d(c->out, c->R, c->ent_u, c->ew, c->seg_off[2 + k], c->seg_off[3 + k],
                           c->d);
        L += dot(c->out, c->G + k * c->d, c->d);
    }
    return L;
}

static void test_history_pool(void **state)
{
    (void)state;
    cp_ctx c;
    cp_build(&c);
    c.d = 6;
    c.R = vec(4 * c.d, 1), c.cw = vec(24, 0), c.ew = vec(8, 0), c.out = vec(c.d, 0);
    c.G = vec(2 * c.d, 1);
    for (int t = 0; t < 24; t++) c.cw[t] = 1.0 / 24;
    /* entry 0 fills slots 22, 23 and 0 with p = 0.5, 1, 0.8: weight 2.3/24 */
    ic__history_entry_weights_d(c.ew, &c.pl, 2, 4, 0, 0, 0);
    assert_true(fabs(c.ew[0] - 2.3 / 24) < 1e-9); /* p are floats */
    assert_true(fabs(c.ew[2] - 0.2 / 24) < 1e-9);
    double ref[6];
    for (int k = 0; k < 2; k++) {
        ic__history_entry_weights_d(c.ew, &c.pl, 2, 4, 0, 0, k);
        ic__pool_forward_d(c.out, c.R, c.ent_u, c.ew, c.seg_off[2 + k], c.seg_off[3 + k], c.d);
        ic__clock_pool_ref_d(ref, c.R, &c.pl, 2, 0, k, c.cw, c.d); /* (1/24) sum_t v_t */
        for (int j = 0; j < c.d; j++) assert_true(fabs(c.out[j] - ref[j]) < 1e-15);
    }
    /* the rows' gradient through the fixed weights */
    double *dR = vec(4 * c.d, 0);
    for (int k = 0; k < 2; k++) {
        ic__history_entry_weights_d(c.ew, &c.pl, 2, 4, 0, 0, k);
        ic__pool_backward_d(dR, NULL, c.G + k * c.d, c.R, c.ent_u, c.ew, c.seg_off[2 + k],
                            c.seg_off[3 + k], c.d);
    }
    /* gradients are small (weights ~1/24): scale the loss so the
     * all-zero guard of gradcheck (1e-3) still means something */
    for (int i = 0; i < 2 * c.d; i++) c.G[i] *= 24;
    for (size_t i = 0; i < (size_t)4 * c.d; i++) dR[i] *= 24;
    gradcheck("history.R", c.R, dR, 4 * c.d, hist_loss, &c);
    free(c.R), free(c.cw), free(c.ew), free(c.out), free(c.G), free(dR);
}

/* ---- float against double ------------------------------------------------------ */

static void test_float_matches_double(void **state)
{
    (void)state;
    /* The float cross layer (full and low rank) forward and backward agree
     * with the double one to float precision (relative 1e-5 of the
     * tensor's largest entry). */
    for (int r = 0; r <= 3; r += 3) {
        int B = 16, D = 24;
        size_t BD = B * D, W = r ? (size_t)D * r : (size_t)D * D;
        double *xd[6];
        float *xf[6];
        size_t sz[6] = {BD, BD, W, W, W, D}; /* x0, x, w, u, v, b */
        for (int i = 0; i < 6; i++) {
            xd[i] = vec(sz[i], 1);
            xf[i] = ic__xmalloc(sz[i] * sizeof(float));
            for (size_t j = 0; j < sz[i]; j++) xf[i][j] = (float)xd[i][j];
            for (size_t j = 0; j < sz[i]; j++) xd[i][j] = xf[i][j];
        }
        double *outd = vec(BD, 0), *zd = vec(BD, 0), *hd = vec(B * 4, 0);
        float *outf = calloc(BD, 4), *zf = calloc(BD, 4), *hf = calloc(B * 4, 4);
        ic__cross_forward_d(outd, zd, hd, xd[0], xd[1], r ? NULL : xd[2], xd[3], xd[4], xd[5], B,
                            D, r);
        ic__cross_forward_f(outf, zf, hf, xf[0], xf[1], r ? NULL : xf[2], xf[3], xf[4], xf[5], B,
                            D, r);
        double mx = 0;
        for (size_t i = 0; i < BD; i++) mx = fmax(mx, fabs(outd[i]));
        for (size_t i = 0; i < BD; i++) assert_true(fabs(outf[i] - outd[i]) <= 1e-5 * mx);
        /* backward */
        double *dxd = vec(BD, 1), *dx0d = vec(BD, 0), *dzd = vec(BD, 0), *dhd = vec(B * 4, 0);
        double *gd[4] = {vec(W, 0), vec(W, 0), vec(W, 0), vec(D, 0)};
        float *dxf = malloc(BD * 4), *dx0f = calloc(BD, 4), *dzf = calloc(BD, 4),
              *dhf = calloc(B * 4, 4);
        float *gf[4] = {calloc(W, 4), calloc(W, 4), calloc(W, 4), calloc(D, 4)};
        for (size_t i = 0; i < BD; i++) dxd[i] = dxf[i] = (float)dxd[i];
        ic__cross_backward_d(dxd, dx0d, dzd, dhd, gd[0], gd[1], gd[2], gd[3], xd[0], xd[1], zd, hd,
                             r ? NULL : xd[2], xd[3], xd[4], B, D, r);
        ic__cross_backward_f(dxf, dx0f, dzf, dhf, gf[0], gf[1], gf[2], gf[3], xf[0], xf[1], zf, hf,
                             r ? NULL : xf[2], xf[3], xf[4], B, D, r);
        double mdx = 0;
        for (size_t i = 0; i < BD; i++) mdx = fmax(mdx, fabs(dxd[i]));
        for (size_t i = 0; i < BD; i++) assert_true(fabs(dxf[i] - dxd[i]) <= 1e-5 * mdx);
        for (int k = 0; k < 4; k++) {
            size_t n = k == 3 ? (size_t)D : W;
            double mg = 0;
            for (size_t i = 0; i < n; i++) mg = fmax(mg, fabs(gd[k][i]));
            for (size_t i = 0; i < n; i++) assert_true(fabs(gf[k][i] - gd[k][i]) <= 1e-5 * mg);
        }
        for (int i = 0; i < 6; i++) free(xd[i]), free(xf[i]);
        for (int k = 0; k < 4; k++) free(gd[k]), free(gf[k]);
        free(outd), free(zd), free(hd), free(outf), free(zf), free(hf);
        free(dxd), free(dx0d), free(dzd), free(dhd), free(dxf), free(dx0f), free(dzf), free(dhf);
    }
}

int main(void)
{
    openblas_set_num_threads(1);
    ic__rng_seed(&rng, 42);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_relu),
        cmocka_unit_test(test_cross_full),
        cmocka_unit_test(test_cross_low_rank),
        cmocka_unit_test(test_heads_and_bce),
        cmocka_unit_test(test_bce_extreme_logits),
        cmocka_unit_test(test_clock_delta),
        cmocka_unit_test(test_clock_weights_values),
        cmocka_unit_test(test_clock_weights_grad),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_clock_pool),
        cmocka_unit_test(test_history_pool),
        cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests_name("nn", tests, NULL, NULL);
}
