/* optim.c: the update rules: Adam on the dense parameter block, and
 * Adagrad or Adam on single embedding rows (sparse updates). The formulas
 * follow PyTorch 1.13's torch.optim.Adam and torch.optim.Adagrad so that
 * the fixture from tools/reference/dcnv2_reference.py can check them.
 *
 * Deliberately not here: which rows to update or how gradients are
 * aggregated (model.c), learning-rate schedules (none). */
#include "model.h"

#include <math.h>

void ic__adam_update(float *restrict p, const float *restrict g, float *restrict m,
                     float *restrict v, size_t n, float lr, float b1, float b2, float eps, long t)
{
    float bc1 = (float)(1.0 - pow(b1, (double)t));
    float bc2s = (float)sqrt(1.0 - pow(b2, (double)t));
    float step = lr / bc1, ib2 = 1 - b2, ib1 = 1 - b1;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] = b1 * m[i] + ib1 * gi;
        float vi = v[i] = b2 * v[i] + ib2 * gi * gi;
        p[i] -= step * mi / (sqrtf(vi) / bc2s + eps);
    }
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
