/* optim.c: the update rules: Adam on the dense parameter block, and
 * Adagrad or Adam on single embedding rows (sparse updates). The formulas
 * follow PyTorch 1.13's torch.optim.Adam and torch.optim.Adagrad so that
 * the fixture from tools/reference/dcnv2_reference.py can check them.
 *
 * Deliberately not here: which rows to update or how gradients are
 * aggregated (model.c), learning-rate schedules (none). */
#include "model.h"

#include <math.h>

#ifdef __AVX__
#include <immintrin.h>
#endif

/* PyTorch's Adam step for p[i0..n) one element at a time: the reference
 * for the vector loop below and its tail. */
static void adam_scalar(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, size_t i0, size_t n, float step, float bc2s, float b1,
                        float b2, float eps)
{
    float ib1 = 1 - b1, ib2 = 1 - b2;
    for (size_t i = i0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] = b1 * m[i] + ib1 * gi;
        float vi = v[i] = b2 * v[i] + ib2 * gi * gi;
        p[i] -= step * mi / (sqrtf(vi) / bc2s + eps);
    }
}

/* The same, 8 lanes at a time. GCC does not vectorise the scalar loop
 * (sqrtf may set errno). Same operations in the same order; where the
 * compiler fuses a multiply-add in one and not the other, results differ
 * by float rounding. Returns the first index left for the tail. */
static size_t adam_vector(float *restrict p, const float *restrict g, float *restrict m,
                          float *restrict v, size_t n, float step, float bc2s, float b1, float b2,
                          float eps)
{
    size_t i = 0;
#ifdef __AVX__
    __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vib1 = _mm256_set1_ps(1 - b1),
           vib2 = _mm256_set1_ps(1 - b2), vstep = _mm256_set1_ps(step),
           vbc = _mm256_set1_ps(bc2s), veps = _mm256_set1_ps(eps);
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 mi =
            _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(vib1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(vib2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc), veps);
        __m256 upd = _mm256_div_ps(_mm256_mul_ps(vstep, mi), den);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), upd));
    }
#else
    (void)p, (void)g, (void)m, (void)v, (void)n, (void)step, (void)bc2s, (void)b1, (void)b2;
    (void)eps;
#endif
    return i;
}

void ic__adam_update(float *restrict p, const float *restrict g, float *restrict m,
                     float *restrict v, size_t n, float lr, float b1, float b2, float eps, long t)
{
    float bc1 = (float)(1.0 - pow(b1, (double)t));
    float bc2s = (float)sqrt(1.0 - pow(b2, (double)t));
    float step = lr / bc1;
    size_t i0 = adam_vector(p, g, m, v, n, step, bc2s, b1, b2, eps);
    adam_scalar(p, g, m, v, i0, n, step, bc2s, b1, b2, eps);
}

void ic__adam_update_ref(float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, size_t n, float lr, float b1, float b2, float eps,
                         long t)
{
    float bc1 = (float)(1.0 - pow(b1, (double)t));
    float bc2s = (float)sqrt(1.0 - pow(b2, (double)t));
    adam_scalar(p, g, m, v, 0, n, lr / bc1, bc2s, b1, b2, eps);
}

void ic__adagrad_row(float *p, const float *g, float *sum, int d, float lr, float l2)
{
    for (int j = 0; j < d; j++) {
        float gj = g[j] + l2 * p[j];
        sum[j] += gj * gj;
        p[j] -= lr * gj / (sqrtf(sum[j]) + 1e-10f);
    }
}

void ic__adam_row(float *p, const float *g, float *m, float *v, uint32_t *step, int d, float lr,
                  float b1, float b2, float eps, float l2)
{
    /* Each row counts its own updates, so a row seen rarely gets the bias
     * correction of a young row rather than of the model's global step. */
    long t = ++*step;
    float bc1 = (float)(1.0 - pow(b1, (double)t));
    float bc2s = (float)sqrt(1.0 - pow(b2, (double)t));
    for (int j = 0; j < d; j++) {
        float gj = g[j] + l2 * p[j];
        m[j] = b1 * m[j] + (1 - b1) * gj;
        v[j] = b2 * v[j] + (1 - b2) * gj * gj;
        p[j] -= lr / bc1 * m[j] / (sqrtf(v[j]) / bc2s + eps);
    }
}
