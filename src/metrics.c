/* metrics.c: ranking and calibration metrics of one task over a period:
 * AUC, UAUC and GAUC (per-user AUCs), logloss, calibration, positive rate;
 * and ic_metrics_acc, the columnar buffer the engine fills sample by sample.
 *
 * How: every sample becomes a 16-byte record (user, order-preserving key of
 * the prediction, positive flag). One LSD radix sort orders the records by
 * key (3 passes of 11 bits); the global AUC is read off that order by walking the
 * groups of tied predictions (Mann-Whitney U, ties count one half, counted in
 * integers). The same sort then continues, stably, over the user's 64 bits, so
 * the records end up sorted by (user, pred) and each user's AUC is one more
 * walk over its segment: O(n) overall, no per-user allocation. Passes whose
 * digit is the same for every record (small user ids, ic_auc's absent users)
 * are skipped.
 *
 * Deliberately not here: weighted samples, confidence intervals, PR-AUC, and
 * missing labels (a task without a label for a sample cannot be expressed;
 * the caller must leave such samples out). */
#include "internal.h"

#include <math.h>
#include <sys/mman.h>

/* One sample, as sorted. */
typedef struct {
    uint64_t user;
    uint32_t key; /* order-preserving image of the float prediction */
    uint32_t pos; /* 1 if label >= 0.5 */
} rec;

/* LSD radix sort with 11-bit digits: 3 over the key (bits 0, 11, 22), then
 * 6 over the user (bits 0, 11, ..., 55): 9 passes where bytes take 12. At
 * 10M samples the two measured the same within this machine's noise, so the
 * one with fewer passes. */
#define RADIX_BITS 11
#define RADIX (1 << RADIX_BITS)
#define KEY_DIGITS 3
#define N_DIGITS 9

/* Maps a float to a uint32 whose unsigned order is the float order. -0.0
 * becomes +0.0 so that the two equal zeros fall in one tie group. */
static uint32_t float_key(float f)
{
    if (f == 0.0f) f = 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static unsigned digit(const rec *r, int d)
{
    uint64_t v = d < KEY_DIGITS ? r->key : r->user;
    int shift = RADIX_BITS * (d < KEY_DIGITS ? d : d - KEY_DIGITS);
    return (unsigned)(v >> shift) & (RADIX - 1);
}

/* hist (N_DIGITS, RADIX): counts of every digit value at every digit
 * position, in one read. Only the key digits when with_user is 0. */
static void histogram(const rec *a, size_t n, int with_user, size_t hist[N_DIGITS][RADIX])
{
    memset(hist, 0, sizeof(size_t) * N_DIGITS * RADIX);
    int nd = with_user ? N_DIGITS : KEY_DIGITS;
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < nd; d++) hist[d][digit(&a[i], d)]++;
}

/* Stable LSD radix passes over digits [d0, d1) from *src via *tmp; swaps the
 * two pointers so that *src holds the result. n > 0. */
static void radix_passes(rec **src, rec **tmp, size_t n, size_t hist[N_DIGITS][RADIX], int d0,
                         int d1)
{
    for (int d = d0; d < d1; d++) {
        if (hist[d][digit(&(*src)[0], d)] == n) continue; /* one value: order unchanged */
        size_t off[RADIX], sum = 0;
        for (int v = 0; v < RADIX; v++) {
            off[v] = sum;
            sum += hist[d][v];
        }
        const rec *a = *src;
        rec *b = *tmp;
        for (size_t i = 0; i < n; i++) b[off[digit(&a[i], d)]++] = a[i];
        *tmp = *src;
        *src = b;
    }
}

/* Two record buffers of n each, in one block (free() the first). Large
 * blocks are 2 MiB aligned and advised as huge pages: at 10M samples,
 * first-touch page faults on 4 KiB pages took about half the time here. */
static rec *alloc_records(size_t n, rec **second)
{
    size_t bytes = 2 * n * sizeof(rec);
    rec *a;
    if (bytes >= ((size_t)4 << 20)) {
        size_t huge = (size_t)2 << 20;
        a = aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
        if (!a) a = ic__xmalloc(bytes);
#ifdef MADV_HUGEPAGE
        else madvise(a, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    } else {
        a = ic__xmalloc(bytes);
    }
    *second = a + n;
    return a;
}

/* 2U (twice the Mann-Whitney count of (positive, negative) pairs in which
 * the positive scores higher, ties one half) over records sorted by key;
 * also the class counts. Integer arithmetic, so exact. */
static uint64_t twice_u(const rec *r, size_t n, uint64_t *npos, uint64_t *nneg)
{
    uint64_t two_u = 0, neg_below = 0, pos_all = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        uint64_t p = 0;
        while (j < n && r[j].key == r[i].key) p += r[j++].pos;
        uint64_t q = (j - i) - p;
        two_u += 2 * p * neg_below + p * q;
        neg_below += q;
        pos_all += p;
        i = j;
    }
    *npos = pos_all;
    *nneg = neg_below;
    return two_u;
}

/* AUC of records sorted by key; NaN with one class. */
static double auc_sorted(const rec *r, size_t n)
{
    uint64_t npos, nneg;
    uint64_t two_u = twice_u(r, n, &npos, &nneg);
    if (npos == 0 || nneg == 0) return NAN;
    return (double)two_u / (double)(2 * npos * nneg);
}

/* Per-user AUCs over records sorted by (user, key): the plain mean (uauc)
 * and the mean weighted by the user's sample count (gauc), over users with
 * both classes. */
static void user_aucs(const rec *r, size_t n, ic_metrics *out)
{
    double sum = 0, wsum = 0, w = 0;
    uint64_t users = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && r[j].user == r[i].user) j++;
        double a = auc_sorted(r + i, j - i);
        if (!isnan(a)) {
            sum += a;
            wsum += (double)(j - i) * a;
            w += (double)(j - i);
            users++;
        }
        i = j;
    }
    out->auc_users = users;
    out->uauc = users ? sum / (double)users : NAN;
    out->gauc = users ? wsum / w : NAN;
}

/* pos_rate, logloss, calibration: one pass in double over the raw labels. */
static void pointwise(const float *pred, const float *label, size_t n, ic_metrics *out)
{
    const double lo = 1e-7, hi = 1.0 - 1e-7;
    double sp = 0, sy = 0, sl = 0;
    for (size_t i = 0; i < n; i++) {
        double p = pred[i], y = label[i];
        double c = p < lo ? lo : (p > hi ? hi : p);
        sl -= y * log(c) + (1.0 - y) * log1p(-c);
        sp += p;
        sy += y;
    }
    out->pos_rate = sy / (double)n;
    out->logloss = sl / (double)n;
    out->calibration = sy > 0 ? sp / sy : NAN;
}

static void fill_records(rec *r, const float *pred, const float *label, const uint64_t *user,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r[i].user = user ? user[i] : 0;
        r[i].key = float_key(pred[i]);
        r[i].pos = label[i] >= 0.5f;
    }
}

double ic_auc(const float *pred, const float *label, size_t n)
{
    if (n == 0) return NAN;
    for (size_t i = 0; i < n; i++)
        if (isnan(pred[i]) || isnan(label[i])) return NAN;
    rec *b, *a = alloc_records(n, &b), *block = a;
    fill_records(a, pred, label, NULL, n);
    size_t(*hist)[RADIX] = ic__xmalloc(sizeof(size_t) * N_DIGITS * RADIX);
    histogram(a, n, 0, hist);
    radix_passes(&a, &b, n, hist, 0, KEY_DIGITS);
    double auc = auc_sorted(a, n);
    free(hist);
    free(block);
    return auc;
}

/* IC_ERR_ARG naming the first bad input, or IC_OK. */
static ic_status check_inputs(const float *pred, const float *label, size_t n, ic_error *err)
{
    if (n == 0) return ic__fail(err, IC_ERR_ARG, "metrics: no samples (n == 0)");
    for (size_t i = 0; i < n; i++) {
        if (isnan(pred[i]))
            return ic__fail(err, IC_ERR_ARG, "metrics: pred[%zu] is NaN (of n = %zu)", i, n);
        if (!(label[i] >= 0.0f && label[i] <= 1.0f))
            return ic__fail(err, IC_ERR_ARG, "metrics: label[%zu] = %g is not in [0, 1]", i,
                            (double)label[i]);
    }
    return IC_OK;
}

ic_status ic_metrics_compute(const float *pred, const float *label, const uint64_t *user,
                             size_t n, ic_metrics *out, ic_error *err)
{
    ic_status s = check_inputs(pred, label, n, err);
    if (s != IC_OK) return s;
    memset(out, 0, sizeof *out);
    out->n = n;
    pointwise(pred, label, n, out);

    rec *b, *a = alloc_records(n, &b), *block = a;
    fill_records(a, pred, label, user, n);
    size_t(*hist)[RADIX] = ic__xmalloc(sizeof(size_t) * N_DIGITS * RADIX);
    histogram(a, n, user != NULL, hist);
    radix_passes(&a, &b, n, hist, 0, KEY_DIGITS); /* by pred */
    out->auc = auc_sorted(a, n);
    if (user) {
        radix_passes(&a, &b, n, hist, KEY_DIGITS, N_DIGITS); /* by (user, pred): stable */
        user_aucs(a, n, out);
    } else {
        out->uauc = out->gauc = NAN;
        out->auc_users = 0;
    }
    free(hist);
    free(block);
    return IC_OK;
}

/* ---- The streaming accumulator ------------------------------------------ */

struct ic_metrics_acc {
    int T;                        /* tasks */
    size_t n, cap;                /* samples held, capacity */
    uint64_t *user;               /* (cap) */
    float *pred[IC_MAX_TASKS];    /* T arrays (cap) */
    float *label[IC_MAX_TASKS];   /* T arrays (cap) */
};

ic_status ic_metrics_acc_create(ic_metrics_acc **out, int n_tasks, ic_error *err)
{
    *out = NULL;
    if (n_tasks < 1 || n_tasks > IC_MAX_TASKS)
        return ic__fail(err, IC_ERR_ARG, "metrics: n_tasks = %d is not in 1..%d", n_tasks,
                        IC_MAX_TASKS);
    ic_metrics_acc *a = ic__xcalloc(1, sizeof *a);
    a->T = n_tasks;
    *out = a;
    return IC_OK;
}

void ic_metrics_acc_free(ic_metrics_acc *a)
{
    if (!a) return;
    free(a->user);
    for (int t = 0; t < a->T; t++) {
        free(a->pred[t]);
        free(a->label[t]);
    }
    free(a);
}

/* Doubles the capacity (at least 1024 samples). */
static void acc_grow(ic_metrics_acc *a)
{
    size_t cap = a->cap ? 2 * a->cap : 1024;
    a->user = ic__xrealloc(a->user, cap * sizeof *a->user);
    for (int t = 0; t < a->T; t++) {
        a->pred[t] = ic__xrealloc(a->pred[t], cap * sizeof(float));
        a->label[t] = ic__xrealloc(a->label[t], cap * sizeof(float));
    }
    a->cap = cap;
}

void ic_metrics_acc_add(ic_metrics_acc *a, uint64_t user, const float *pred, const float *label)
{
    if (a->n == a->cap) acc_grow(a);
    a->user[a->n] = user;
    for (int t = 0; t < a->T; t++) {
        a->pred[t][a->n] = pred[t];
        a->label[t][a->n] = label[t];
    }
    a->n++;
}

size_t ic_metrics_acc_count(const ic_metrics_acc *a)
{
    return a->n;
}

ic_status ic_metrics_acc_compute(const ic_metrics_acc *a, int t, ic_metrics *out, ic_error *err)
{
    if (t < 0 || t >= a->T)
        return ic__fail(err, IC_ERR_ARG, "metrics: task %d is not in 0..%d", t, a->T - 1);
    return ic_metrics_compute(a->pred[t], a->label[t], a->user, a->n, out, err);
}

void ic_metrics_acc_reset(ic_metrics_acc *a)
{
    a->n = 0;
}
