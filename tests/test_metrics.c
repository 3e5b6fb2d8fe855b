/* test_metrics.c: AUC, UAUC, GAUC, logloss and calibration against hand
 * computed cases, an O(n^2) pair-counting reference, a rank-sum reference on
 * a large input, and the sklearn fixture written by
 * tools/reference/metrics_reference.py; plus the streaming accumulator and
 * the argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <math.h>
#include <stdio.h>

#define FIXTURE "tests/data/metrics_fixture.txt"
#define TOL 1e-9

/* Asserts |got - want| <= tol, or both NaN; prints both on failure. */
#define assert_close(got, want, tol, what)                                     \
    do {                                                                       \
        double g_ = (got), w_ = (want);                                        \
        if (isnan(w_) ? !isnan(g_) : !(fabs(g_ - w_) <= (tol))) {              \
            fail_msg("%s: got %.17g, want %.17g", (what), g_, w_);             \
        }                                                                      \
    } while (0)

/* ---- References ---------------------------------------------------------- */

/* AUC by counting every (positive, negative) pair: O(n^2), obviously right.
 * Only samples with mask[i] == key count (mask NULL: all). */
static double brute_auc(const float *p, const float *y, const uint64_t *mask, uint64_t key,
                        size_t n)
{
    double wins = 0;
    uint64_t np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i] != key) continue;
        if (y[i] >= 0.5f) np++; else nn++;
        if (y[i] < 0.5f) continue;
        for (size_t j = 0; j < n; j++) {
            if ((mask && mask[j] != key) || y[j] >= 0.5f) continue;
            wins += p[i] > p[j] ? 1.0 : (p[i] == p[j] ? 0.5 : 0.0);
        }
    }
    return np && nn ? wins / ((double)np * (double)nn) : NAN;
}

/* UAUC, GAUC and the user count by brute force, over the distinct users. */
static void brute_user(const float *p, const float *y, const uint64_t *u, size_t n,
                       double *uauc, double *gauc, uint64_t *users)
{
    double s = 0, ws = 0, w = 0;
    *users = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = u[j] == u[i];
        if (seen) continue;
        double a = brute_auc(p, y, u, u[i], n);
        if (isnan(a)) continue;
        size_t c = 0;
        for (size_t j = 0; j < n; j++) c += u[j] == u[i];
        s += a;
        ws += (double)c * a;
        w += (double)c;
        (*users)++;
    }
    *uauc = *users ? s / (double)*users : NAN;
    *gauc = *users ? ws / w : NAN;
}

/* ---- Hand-computable cases ----------------------------------------------- */

static void test_auc_hand(void **state)
{
    (void)state;
    float p[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    float up[] = {0, 0, 0, 1, 1, 1};
    float down[] = {1, 1, 1, 0, 0, 0};
    float one[] = {1, 1, 1, 1, 1, 1};
    float tied[] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
    assert_close(ic_auc(p, up, 6), 1.0, 0, "perfect ranking");
    assert_close(ic_auc(p, down, 6), 0.0, 0, "reversed ranking");
    assert_close(ic_auc(tied, up, 6), 0.5, 0, "all tied");
    assert_true(isnan(ic_auc(p, one, 6)));
    assert_true(isnan(ic_auc(p, up, 0)));
    /* Pairs (pos, neg): (.4,.1)=1 (.4,.4)=.5 (.8,.1)=1 (.8,.4)=1 -> 3.5/4. */
    float q[] = {0.1f, 0.4f, 0.4f, 0.8f};
    float ql[] = {0, 1, 0, 1};
    assert_close(ic_auc(q, ql, 4), 0.875, 0, "ties count one half");
    /* Soft labels binarise at 0.5; -0.0 and +0.0 tie. */
    float z[] = {-0.0f, 0.0f, 1.0f};
    float zl[] = {0.5f, 0.49f, 0.2f};
    assert_close(ic_auc(z, zl, 3), 0.25, 0, "signed zeros tie");
    /* A NaN anywhere makes ic_auc NaN (it has no error channel). */
    float pn[] = {0.1f, NAN, 0.3f};
    assert_true(isnan(ic_auc(pn, ql, 3)));
}

static void test_metrics_hand(void **state)
{
    (void)state;
    /* Users 7 and 9: user 7 ranks perfectly (3 samples), user 9 reversed
     * (2 samples), user 5 has one class only and is left out. */
    float p[] = {0.9f, 0.2f, 0.1f, 0.3f, 0.8f, 0.5f};
    float y[] = {1, 0, 0, 1, 0, 1};
    uint64_t u[] = {7, 7, 7, 9, 9, 5};
    ic_metrics m;
    ic_error err;
    assert_int_equal(ic_metrics_compute(p, y, u, 6, &m, &err), IC_OK);
    assert_int_equal(m.n, 6);
    assert_int_equal(m.auc_users, 2);
    assert_close(m.uauc, 0.5, 1e-15, "uauc = (1 + 0) / 2");
    assert_close(m.gauc, 3.0 / 5.0, 1e-15, "gauc = (3*1 + 2*0) / 5");
    assert_close(m.pos_rate, 0.5, 1e-15, "pos_rate");
    assert_close(m.calibration, (2.8 / 6) / 0.5, 1e-7, "calibration");
    double ll = -(log(0.9) + log(0.8) + log(0.9) + log(0.3) + log(0.2) + log(0.5)) / 6;
    assert_close(m.logloss, ll, 1e-7, "logloss");
    /* Global pairs: positives .9 .3 .5, negatives .2 .1 .8: 3+2+2 wins of 9. */
    assert_close(m.auc, 7.0 / 9.0, 1e-15, "auc");

    /* Clipping: p = 0 with label 1 costs -log(1e-7), not infinity. */
    float p0[] = {0.0f, 1.0f};
    float y0[] = {1, 1};
    assert_int_equal(ic_metrics_compute(p0, y0, NULL, 2, &m, &err), IC_OK);
    assert_close(m.logloss, (-log(1e-7) - log1p(-1e-7)) / 2, 1e-12, "clipped logloss");
    assert_true(isnan(m.auc) && isnan(m.uauc) && isnan(m.gauc));
    assert_int_equal(m.auc_users, 0);

    /* Mean label 0: calibration NaN. */
    float yz[] = {0, 0};
    assert_int_equal(ic_metrics_compute(p0, yz, NULL, 2, &m, &err), IC_OK);
    assert_true(isnan(m.calibration));
}

static void test_errors(void **state)
{
    (void)state;
    float p[] = {0.1f, 0.2f, 0.3f};
    float y[] = {0, 1, 0};
    ic_metrics m;
    ic_error err = {""};
    assert_int_equal(ic_metrics_compute(p, y, NULL, 0, &m, &err), IC_ERR_ARG);
    assert_non_null(strstr(err.msg, "n == 0"));
    float pn[] = {0.1f, 0.2f, NAN};
    assert_int_equal(ic_metrics_compute(pn, y, NULL, 3, &m, &err), IC_ERR_ARG);
    assert_non_null(strstr(err.msg, "pred[2] is NaN"));
    float bad[][3] = {{0, 1.5f, 0}, {0, -0.1f, 0}, {0, NAN, 0}};
    for (int k = 0; k < 3; k++) {
        err.msg[0] = 0;
        assert_int_equal(ic_metrics_compute(p, bad[k], NULL, 3, &m, &err), IC_ERR_ARG);
        assert_non_null(strstr(err.msg, "label[1]"));
    }
    /* NULL err is allowed. */
    assert_int_equal(ic_metrics_compute(pn, y, NULL, 3, &m, NULL), IC_ERR_ARG);
}

/* ---- Random data against the references ---------------------------------- */

/* n samples: predictions from `levels` distinct values (0: continuous),
 * labels correlated with them, users from a pool of n_users 64-bit hashes. */
static void make_random(ic_rng *r, size_t n, int levels, size_t n_users, float *p, float *y,
                        uint64_t *u)
{
    for (size_t i = 0; i < n; i++) {
        double x = ic__rng_uniform(r);
        y[i] = ic__rng_uniform(r) < 0.2 + 0.5 * x ? 1.0f : 0.0f;
        p[i] = levels ? (float)((int)(x * levels) - levels / 2) / (float)levels : (float)x;
        u[i] = ic_hash((const char *)&(uint64_t){ic__rng_u64(r) % n_users}, 8);
    }
}

static void test_bruteforce_random(void **state)
{
    (void)state;
    ic_rng r;
    ic__rng_seed(&r, 12345);
    const size_t sizes[] = {1, 2, 7, 100, 1500};
    const int levels[] = {0, 2, 5, 40};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        for (size_t li = 0; li < sizeof levels / sizeof *levels; li++) {
            size_t n = sizes[si];
            float *p = malloc(n * sizeof *p), *y = malloc(n * sizeof *y);
            uint64_t *u = malloc(n * sizeof *u);
            make_random(&r, n, levels[li], 1 + n / 20, p, y, u);
            ic_metrics m;
            ic_error err;
            assert_int_equal(ic_metrics_compute(p, y, u, n, &m, &err), IC_OK);
            double uauc, gauc;
            uint64_t users;
            brute_user(p, y, u, n, &uauc, &gauc, &users);
            assert_close(m.auc, brute_auc(p, y, NULL, 0, n), 1e-12, "auc vs pairs");
            assert_close(ic_auc(p, y, n), m.auc, 0, "ic_auc == metrics auc");
            assert_close(m.uauc, uauc, 1e-12, "uauc vs pairs");
            assert_close(m.gauc, gauc, 1e-12, "gauc vs pairs");
            assert_int_equal(m.auc_users, users);
            /* Users that differ in one byte only (1..3 << 8b): every byte of
             * the user sort must be done for their samples to group. */
            for (size_t i = 0; i < n; i++) {
                uint64_t k = ic__rng_u64(&r) % 24;
                u[i] = (k % 3 + 1) << (8 * (k / 3));
            }
            assert_int_equal(ic_metrics_compute(p, y, u, n, &m, &err), IC_OK);
            brute_user(p, y, u, n, &uauc, &gauc, &users);
            assert_close(m.uauc, uauc, 1e-12, "uauc vs pairs, one-byte users");
            assert_close(m.gauc, gauc, 1e-12, "gauc vs pairs, one-byte users");
            assert_int_equal(m.auc_users, users);
            free(p);
            free(y);
            free(u);
        }
    }
}

/* Rank-sum reference for a large n: qsort by (user, pred), average ranks of
 * tie groups, U = R_pos - npos(npos+1)/2. Another algorithm than metrics.c's
 * pair counting over a radix sort. */
typedef struct {
    uint64_t u;
    float p;
    int pos;
} srec;

static int cmp_srec(const void *a, const void *b)
{
    const srec *x = a, *y = b;
    if (x->u != y->u) return x->u < y->u ? -1 : 1;
    return x->p < y->p ? -1 : (x->p > y->p);
}

static double ranksum_auc(const srec *s, size_t n)
{
    double rpos = 0;
    uint64_t np = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j].p == s[i].p) j++;
        double avg = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++)
            if (s[k].pos) rpos += avg, np++;
        i = j;
    }
    uint64_t nn = n - np;
    if (!np || !nn) return NAN;
    return (rpos - (double)np * (double)(np + 1) / 2.0) / ((double)np * (double)nn);
}

static void test_large_ranksum(void **state)
{
    (void)state;
    const size_t n = 1000000;
    ic_rng r;
    ic__rng_seed(&r, 777);
    float *p = malloc(n * sizeof *p), *y = malloc(n * sizeof *y);
    uint64_t *u = malloc(n * sizeof *u);
    make_random(&r, n, 1000, 20000, p, y, u);
    srec *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++) s[i] = (srec){0, p[i], y[i] >= 0.5f};
    qsort(s, n, sizeof *s, cmp_srec);
    double auc = ranksum_auc(s, n);
    for (size_t i = 0; i < n; i++) s[i] = (srec){u[i], p[i], y[i] >= 0.5f};
    qsort(s, n, sizeof *s, cmp_srec);
    double us = 0, ws = 0, w = 0;
    uint64_t users = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j].u == s[i].u) j++;
        double a = ranksum_auc(s + i, j - i);
        if (!isnan(a)) us += a, ws += (double)(j - i) * a, w += (double)(j - i), users++;
        i = j;
    }
    ic_metrics m;
    ic_error err;
    assert_int_equal(ic_metrics_compute(p, y, u, n, &m, &err), IC_OK);
    assert_true(users > 1000);
    assert_int_equal(m.auc_users, users);
    assert_close(m.auc, auc, 1e-9, "large auc vs rank sum");
    assert_close(m.uauc, us / (double)users, 1e-9, "large uauc vs rank sum");
    assert_close(m.gauc, ws / w, 1e-9, "large gauc vs rank sum");
    free(s);
    free(p);
    free(y);
    free(u);
}

/* ---- The sklearn fixture ------------------------------------------------- */

typedef struct {
    char name[64];
    size_t n;
    double want[7]; /* auc uauc gauc auc_users logloss calibration pos_rate */
    float *p, *y;
    uint64_t *u;
} fcase;

/* Reads the next case from f into c (arrays malloc'd). Returns 1, or 0 at
 * the end of the file; fails the test on a malformed file. */
static int read_case(FILE *f, fcase *c)
{
    char line[512];
    do {
        if (!fgets(line, sizeof line, f)) return 0;
    } while (line[0] == '#');
    assert_int_equal(sscanf(line, "case %63s %zu", c->name, &c->n), 2);
    assert_non_null(fgets(line, sizeof line, f));
    char *s = line + strlen("expect");
    assert_true(strncmp(line, "expect", 6) == 0);
    for (int k = 0; k < 7; k++) c->want[k] = strtod(s, &s);
    c->p = malloc(c->n * sizeof *c->p);
    c->y = malloc(c->n * sizeof *c->y);
    c->u = malloc(c->n * sizeof *c->u);
    for (size_t i = 0; i < c->n; i++) {
        assert_non_null(fgets(line, sizeof line, f));
        char *e;
        c->p[i] = strtof(line, &e);
        c->y[i] = strtof(e, &e);
        c->u[i] = strtoull(e, &e, 10);
        assert_true(*e == '\n');
    }
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "end\n");
    return 1;
}

static void test_sklearn_fixture(void **state)
{
    (void)state;
    FILE *f = fopen(FIXTURE, "r");
    if (!f) fail_msg("cannot open %s (run from the project root)", FIXTURE);
    fcase c;
    int cases = 0;
    while (read_case(f, &c)) {
        ic_metrics m;
        ic_error err;
        if (ic_metrics_compute(c.p, c.y, c.u, c.n, &m, &err) != IC_OK)
            fail_msg("%s: %s", c.name, err.msg);
        char what[128];
        const char *names[] = {"auc", "uauc", "gauc", "auc_users", "logloss",
                               "calibration", "pos_rate"};
        double got[] = {m.auc, m.uauc, m.gauc, (double)m.auc_users, m.logloss,
                        m.calibration, m.pos_rate};
        for (int k = 0; k < 7; k++) {
            snprintf(what, sizeof what, "%s: %s", c.name, names[k]);
            assert_close(got[k], c.want[k], k == 3 ? 0 : TOL, what);
        }
        assert_int_equal(m.n, c.n);
        snprintf(what, sizeof what, "%s: ic_auc", c.name);
        assert_close(ic_auc(c.p, c.y, c.n), c.want[0], TOL, what);
        free(c.p);
        free(c.y);
        free(c.u);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 10);
}

/* ---- The streaming accumulator ------------------------------------------- */

static void test_accumulator(void **state)
{
    (void)state;
    ic_metrics_acc *a;
    ic_error err;
    assert_int_equal(ic_metrics_acc_create(&a, 0, &err), IC_ERR_ARG);
    assert_null(a);
    assert_int_equal(ic_metrics_acc_create(&a, IC_MAX_TASKS + 1, &err), IC_ERR_ARG);
    ic_metrics_acc_free(NULL);
    assert_int_equal(ic_metrics_acc_create(&a, 2, &err), IC_OK);

    ic_metrics m, want;
    assert_int_equal(ic_metrics_acc_compute(a, 0, &m, &err), IC_ERR_ARG); /* empty */
    assert_int_equal(ic_metrics_acc_compute(a, 2, &m, &err), IC_ERR_ARG); /* bad task */

    /* Two periods, the first crossing several growth steps. */
    ic_rng r;
    ic__rng_seed(&r, 99);
    for (int period = 0; period < 2; period++) {
        size_t n = period == 0 ? 5000 : 300;
        float *p = malloc(2 * n * sizeof *p), *y = malloc(2 * n * sizeof *y); /* (T, n) */
        uint64_t *u = malloc(n * sizeof *u);
        make_random(&r, n, 0, 37, p, y, u);
        make_random(&r, n, 8, 37, p + n, y + n, u); /* task 1 shares the users */
        for (size_t i = 0; i < n; i++) {
            float pi[2] = {p[i], p[n + i]}, yi[2] = {y[i], y[n + i]};
            ic_metrics_acc_add(a, u[i], pi, yi);
        }
        assert_int_equal(ic_metrics_acc_count(a), n);
        for (int t = 0; t < 2; t++) {
            assert_int_equal(ic_metrics_acc_compute(a, t, &m, &err), IC_OK);
            assert_int_equal(ic_metrics_compute(p + t * n, y + t * n, u, n, &want, &err), IC_OK);
            assert_int_equal(m.n, n);
            assert_close(m.auc, want.auc, 0, "acc auc");
            assert_close(m.uauc, want.uauc, 0, "acc uauc");
            assert_close(m.gauc, want.gauc, 0, "acc gauc");
            assert_close(m.logloss, want.logloss, 0, "acc logloss");
            assert_int_equal(m.auc_users, want.auc_users);
        }
        ic_metrics_acc_reset(a);
        assert_int_equal(ic_metrics_acc_count(a), 0);
        free(p);
        free(y);
        free(u);
    }
    ic_metrics_acc_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_hand),
        cmocka_unit_test(test_metrics_hand),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bruteforce_random),
        cmocka_unit_test(test_large_ranksum),
        cmocka_unit_test(test_sklearn_fixture),
        cmocka_unit_test(test_accumulator),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
