/* nn_impl.h: the body of the network, written once over `real`. nn.c
 * includes it twice: real = float with IC_GEMM = cblas_sgemm, IC_GEMV =
 * cblas_sgemv (the production path) and real = double with cblas_dgemm,
 * cblas_dgemv (for the gradient checks). Math functions come from
 * <tgmath.h>, so exp() is expf() for float. No include guard on purpose.
 * See nn.h for the dimension letters. */

/* ---- linear, ReLU ---------------------------------------------------------- */

void IC_T(ic__linear_forward)(real *out, const real *inp, const real *w, const real *bias,
                              int B, int C, int OC)
{
    real beta = 0;
    if (bias) {
        /* The bias is fused into the GEMM: rows start as the bias, beta = 1. */
        for (int b = 0; b < B; b++) memcpy(out + (size_t)b * OC, bias, OC * sizeof(real));
        beta = 1;
    }
    IC_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C, 1, inp, C, w, C, beta, out, OC);
}


static void IC_T(colsum_add)(real *restrict acc, const real *restrict x, int B, int n);

/* ic__linear_backward with dinp = dinp_beta * dinp + the input's gradient:
 * beta 0 overwrites dinp (no need to zero it first), beta 1 adds. */
static void IC_T(linear_backward_b)(real *dinp, real *dw, real *dbias, const real *dout,
                                    const real *inp, const real *w, int B, int C, int OC,
                                    real dinp_beta)
{
    if (dinp) /* (B,OC) x (OC,C) */
        IC_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1, dout, OC, w, C, dinp_beta,
                dinp, C);
    /* (OC,B) x (B,C) */
    IC_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1, dout, OC, inp, C, 1, dw, C);
    if (dbias) IC_T(colsum_add)(dbias, dout, B, OC);
}

void IC_T(ic__linear_backward)(real *dinp, real *dw, real *dbias, const real *dout,
                               const real *inp, const real *w, int B, int C, int OC)
{
    IC_T(linear_backward_b)(dinp, dw, dbias, dout, inp, w, B, C, OC, 1);
}

/* The elementwise loops below run in blocks of IC__VB with a fixed-count
 * inner loop: GCC 12 at -O2 (its "very cheap" vectorizer cost model)
 * leaves a plain loop of unknown length scalar, but vectorizes these. */
#ifndef IC__VB
#define IC__VB 16
#endif

/* acc (n) += the column sums of x (B, n). Columns in blocks of IC__VB
 * (vectorized); each column still sums its rows in order b = 0 .. B-1,
 * so the result is the plain loop's, bit for bit. */
static void IC_T(colsum_add)(real *restrict acc, const real *restrict x, int B, int n)
{
    int i = 0;
    /* 4 blocks at once: 4 independent chains of vector adds. */
    for (; i + 4 * IC__VB <= n; i += 4 * IC__VB) {
        real s[4 * IC__VB];
        for (int j = 0; j < 4 * IC__VB; j++) s[j] = acc[i + j];
        for (int b = 0; b < B; b++) {
            const real *row = x + (size_t)b * n + i;
            for (int j = 0; j < 4 * IC__VB; j++) s[j] += row[j];
        }
        for (int j = 0; j < 4 * IC__VB; j++) acc[i + j] = s[j];
    }
    for (; i + IC__VB <= n; i += IC__VB) {
        real s[IC__VB];
        for (int j = 0; j < IC__VB; j++) s[j] = acc[i + j];
        for (int b = 0; b < B; b++) {
            const real *row = x + (size_t)b * n + i;
            for (int j = 0; j < IC__VB; j++) s[j] += row[j];
        }
        for (int j = 0; j < IC__VB; j++) acc[i + j] = s[j];
    }
    for (; i < n; i++) {
        real s = acc[i];
        for (int b = 0; b < B; b++) s += x[(size_t)b * n + i];
        acc[i] = s;
    }
}

void IC_T(ic__relu_forward)(real *x, size_t n)
{
    size_t i = 0;
    for (; i + IC__VB <= n; i += IC__VB)
        for (int j = 0; j < IC__VB; j++) x[i + j] = x[i + j] > 0 ? x[i + j] : 0;
    for (; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

void IC_T(ic__relu_backward)(real *restrict d, const real *restrict out, size_t n)
{
    size_t i = 0;
    for (; i + IC__VB <= n; i += IC__VB)
        for (int j = 0; j < IC__VB; j++) d[i + j] = out[i + j] > 0 ? d[i + j] : 0;
    for (; i < n; i++) d[i] = out[i] > 0 ? d[i] : 0;
}

/* ---- cross layer ------------------------------------------------------------ */

/* xn (n) = x0 * z + x, the cross layer's elementwise part (xn is a
 * separate array). */
static void IC_T(cross_mix)(real *restrict xn, const real *z, const real *x0, const real *x,
                            size_t n)
{
    size_t i = 0;
    for (; i + IC__VB <= n; i += IC__VB)
        for (int j = 0; j < IC__VB; j++) xn[i + j] = x0[i + j] * z[i + j] + x[i + j];
    for (; i < n; i++) xn[i] = x0[i] * z[i] + x[i];
}

void IC_T(ic__cross_forward)(real *xn, real *z, real *h, const real *x0, const real *x,
                             const real *w, const real *u, const real *v, const real *b,
                             int B, int D, int r)
{
    if (r == 0) {
        IC_T(ic__linear_forward)(z, x, w, b, B, D, D);
    } else {
        IC_T(ic__linear_forward)(h, x, v, NULL, B, D, r);
        IC_T(ic__linear_forward)(z, h, u, b, B, r, D);
    }
    IC_T(cross_mix)(xn, z, x0, x, (size_t)B * D);
}

/* dz (n) = dx * x0 and dx0 (n) += dx * z: the cross layer's elementwise
 * backward, in blocks of IC__VB. */
static void IC_T(cross_split)(real *restrict dz, real *restrict dx0, const real *restrict dx,
                              const real *restrict x0, const real *restrict z, size_t n)
{
    size_t i = 0;
    for (; i + IC__VB <= n; i += IC__VB)
        for (int j = 0; j < IC__VB; j++) {
            dz[i + j] = dx[i + j] * x0[i + j];
            dx0[i + j] += dx[i + j] * z[i + j];
        }
    for (; i < n; i++) {
        dz[i] = dx[i] * x0[i];
        dx0[i] += dx[i] * z[i];
    }
}

/* a (n) += b (n), in blocks of IC__VB. */
static void IC_T(vec_add)(real *restrict a, const real *restrict b, size_t n)
{
    size_t i = 0;
    for (; i + IC__VB <= n; i += IC__VB)
        for (int j = 0; j < IC__VB; j++) a[i + j] += b[i + j];
    for (; i < n; i++) a[i] += b[i];
}

void IC_T(ic__cross_backward)(real *dx, real *dx0, real *dz, real *dh, real *dw, real *du,
                              real *dv, real *db, const real *x0, const real *x, const real *z,
                              const real *h, const real *w, const real *u, const real *v,
                              int B, int D, int r)
{
    IC_T(cross_split)(dz, dx0, dx, x0, z, (size_t)B * D);
    /* dx keeps dL/dxn, which is also the residual's share of dL/dx; the
     * GEMMs below add the share through z. */
    if (r == 0) {
        IC_T(ic__linear_backward)(dx, dw, db, dz, x, w, B, D, D);
    } else {
        memset(dh, 0, (size_t)B * r * sizeof(real));
        IC_T(ic__linear_backward)(dh, du, db, dz, h, u, B, r, D);
        IC_T(ic__linear_backward)(dx, dv, NULL, dh, x, v, B, D, r);
    }
}

/* ---- heads and loss ---------------------------------------------------------- */

void IC_T(ic__head_forward)(real *logits, const real *x1, int C1, const real *x2, int C2,
                            const real *w, const real *b, int B, int T)
{
    int S = C1 + C2;
    for (int i = 0; i < B; i++) memcpy(logits + (size_t)i * T, b, T * sizeof(real));
    /* The two halves of the shared output are never concatenated: each is
     * multiplied by its own column block of w (leading dimension S). */
    IC_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, T, C1, 1, x1, C1, w, S, 1, logits, T);
    if (x2)
        IC_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, T, C2, 1, x2, C2, w + C1, S, 1, logits,
                T);
}

/* ic__head_backward with dx1, dx2 = dx_beta * themselves + the gradients:
 * beta 0 overwrites them (no need to zero them first), beta 1 adds. */
static void IC_T(head_backward_b)(real *dx1, real *dx2, real *dw, real *db, const real *dlogits,
                                  const real *x1, int C1, const real *x2, int C2, const real *w,
                                  int B, int T, real dx_beta)
{
    int S = C1 + C2;
    IC_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C1, T, 1, dlogits, T, w, S, dx_beta, dx1,
            C1);
    IC_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, T, C1, B, 1, dlogits, T, x1, C1, 1, dw, S);
    if (x2) {
        IC_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C2, T, 1, dlogits, T, w + C1, S,
                dx_beta, dx2, C2);
        IC_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, T, C2, B, 1, dlogits, T, x2, C2, 1,
                dw + C1, S);
    }
    IC_T(colsum_add)(db, dlogits, B, T);
}

void IC_T(ic__head_backward)(real *dx1, real *dx2, real *dw, real *db, const real *dlogits,
                             const real *x1, int C1, const real *x2, int C2, const real *w,
                             int B, int T)
{
    IC_T(head_backward_b)(dx1, dx2, dw, db, dlogits, x1, C1, x2, C2, w, B, T, 1);
}

static real IC_T(sigmoid)(real z)
{
    if (z >= 0) return 1 / (1 + exp(-z));
    real e = exp(z);
    return e / (1 + e);
}

real IC_T(ic__bce_forward)(real *probs, const real *logits, const float *y, const float *w,
                           int B, int T, int Bn)
{
    real loss = 0;
    for (int t = 0; t < T; t++) {
        real sum = 0;
        for (int b = 0; b < B; b++) {
            real z = logits[b * T + t];
            probs[b * T + t] = IC_T(sigmoid)(z);
            if (y) /* -log sigmoid(z) * y - log(1 - sigmoid(z)) * (1 - y) */
                sum += (z > 0 ? z : 0) - z * (real)y[b * T + t] + log1p(exp(-fabs(z)));
        }
        loss += (real)w[t] * sum / Bn;
    }
    return y ? loss : 0;
}

void IC_T(ic__bce_backward)(real *dlogits, const real *logits, const float *y, const float *w,
                            int B, int T, int Bn)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            dlogits[b * T + t] =
                (real)w[t] * (IC_T(sigmoid)(logits[b * T + t]) - (real)y[b * T + t]) / Bn;
}

/* ---- the clock ---------------------------------------------------------------- */

void IC_T(ic__clock_weights_forward)(real *c, ic_clock_kind kind, int h, double hf,
                                     int continuous, const real *A, const real *s, double sigma)
{
    if (kind == IC_CLOCK_NAIVE) {
        for (int t = 0; t < IC_HOURS; t++) c[t] = t == h;
    } else if (kind == IC_CLOCK_ADAPTIVE) {
        const real *a = A + h * IC_HOURS;
        real mx = a[0], sum = 0;
        for (int t = 1; t < IC_HOURS; t++) mx = a[t] > mx ? a[t] : mx;
        for (int t = 0; t < IC_HOURS; t++) sum += c[t] = exp(a[t] - mx);
        for (int t = 0; t < IC_HOURS; t++) c[t] /= sum;
    } else if (kind == IC_CLOCK_GAUSSIAN) {
        real sg = s ? exp(s[0]) : (real)sigma;
        real norm = 1 / (sqrt((real)(2 * 3.14159265358979323846)) * sg);
        for (int t = 0; t < IC_HOURS; t++) {
            real dl = (real)ic__clock_delta(t, h, hf, continuous);
            c[t] = norm * exp(-dl * dl / (2 * sg * sg));
        }
    } else {
        memset(c, 0, IC_HOURS * sizeof(real));
    }
}

void IC_T(ic__clock_weights_backward)(real *dA, real *ds, const real *dc, const real *c,
                                      ic_clock_kind kind, int h, double hf, int continuous,
                                      const real *s)
{
    if (kind == IC_CLOCK_ADAPTIVE && dA) {
        /* softmax: dA_t = c_t (dc_t - sum_u c_u dc_u) */
        real dot = 0;
        for (int t = 0; t < IC_HOURS; t++) dot += c[t] * dc[t];
        for (int t = 0; t < IC_HOURS; t++) dA[h * IC_HOURS + t] += c[t] * (dc[t] - dot);
    } else if (kind == IC_CLOCK_GAUSSIAN && ds && s) {
        /* sigma = exp(s): dc_t/ds = c_t (delta_t^2 / sigma^2 - 1) */
        real sg = exp(s[0]), acc = 0;
        for (int t = 0; t < IC_HOURS; t++) {
            real dl = (real)ic__clock_delta(t, h, hf, continuous);
            acc += dc[t] * c[t] * (dl * dl / (sg * sg) - 1);
        }
        ds[0] += acc;
    }
}

/* ---- embedding pooling --------------------------------------------------------- */

void IC_T(ic__pool_forward)(real *out, const real *R, const int32_t *ent_u, const real *ew,
                            int e0, int e1, int d)
{
    if (d == IC__VB) { /* the default width: a fixed-count loop GCC vectorizes */
        real acc[IC__VB] = {0};
        for (int e = e0; e < e1; e++) {
            const real *row = R + (size_t)ent_u[e] * IC__VB;
            real w = ew[e];
            for (int j = 0; j < IC__VB; j++) acc[j] += w * row[j];
        }
        memcpy(out, acc, sizeof acc);
        return;
    }
    memset(out, 0, d * sizeof(real));
    for (int e = e0; e < e1; e++) {
        const real *row = R + (size_t)ent_u[e] * d;
        real w = ew[e];
        for (int j = 0; j < d; j++) out[j] += w * row[j];
    }
}

void IC_T(ic__pool_backward)(real *dR, real *dew, const real *dout, const real *R,
                             const int32_t *ent_u, const real *ew, int e0, int e1, int d)
{
    for (int e = e0; e < e1; e++) {
        real *drow = dR + (size_t)ent_u[e] * d;
        real w = ew[e];
        if (d == IC__VB) /* the default width: a fixed-count loop GCC vectorizes */
            for (int j = 0; j < IC__VB; j++) drow[j] += w * dout[j];
        else
            for (int j = 0; j < d; j++) drow[j] += w * dout[j];
        if (dew) {
            const real *row = R + (size_t)ent_u[e] * d;
            real dot = 0;
            for (int j = 0; j < d; j++) dot += dout[j] * row[j];
            dew[e] = dot;
        }
    }
}

void IC_T(ic__clock_entry_weights)(real *ew, const ic__plan *pl, int NQ, int NS, int F, int b,
                                   int q, const real *cw)
{
    int s = b * NS + 2 + F + q;
    for (int e = pl->seg_off[s]; e < pl->seg_off[s + 1]; e++) ew[e] = 0;
    for (int o = pl->occ_off[b * NQ + q]; o < pl->occ_off[b * NQ + q + 1]; o++)
        ew[pl->occ_e[o]] += cw[pl->occ_t[o]] * (real)pl->occ_p[o];
}

void IC_T(ic__history_entry_weights)(real *ew, const ic__plan *pl, int NQ, int NS, int F, int b,
                                     int q)
{
    real w[IC_HOURS];
    for (int t = 0; t < IC_HOURS; t++) w[t] = (real)1 / IC_HOURS;
    IC_T(ic__clock_entry_weights)(ew, pl, NQ, NS, F, b, q, w);
}

void IC_T(ic__clock_entry_weights_backward)(real *dcw, const real *dew, const ic__plan *pl,
                                            int NQ, int b, int q)
{
    for (int o = pl->occ_off[b * NQ + q]; o < pl->occ_off[b * NQ + q + 1]; o++)
        dcw[pl->occ_t[o]] += dew[pl->occ_e[o]] * (real)pl->occ_p[o];
}

void IC_T(ic__clock_pool_ref)(real *out, const real *R, const ic__plan *pl, int NQ, int b,
                              int q, const real *cw, int d)
{
    memset(out, 0, d * sizeof(real));
    for (int t = 0; t < IC_HOURS; t++) {
        real v[256] = {0}; /* v_t, the slot's pooled value; d <= 256 checked at create */
        for (int o = pl->occ_off[b * NQ + q]; o < pl->occ_off[b * NQ + q + 1]; o++) {
            if (pl->occ_t[o] != t) continue;
            const real *row = R + (size_t)pl->ent_u[pl->occ_e[o]] * d;
            for (int j = 0; j < d; j++) v[j] += (real)pl->occ_p[o] * row[j];
        }
        for (int j = 0; j < d; j++) out[j] += cw[t] * v[j];
    }
}

/* ---- the network ----------------------------------------------------------------- */

static void IC_T(point_params)(IC_T(ic__params) *p, real *mem, const ic__shape *sh)
{
    memset(p, 0, sizeof *p);
    p->hour = mem + sh->o_hour;
    p->dow = mem + sh->o_dow;
    if (sh->clock == IC_CLOCK_ADAPTIVE) p->A = mem + sh->o_A;
    if (sh->clock == IC_CLOCK_GAUSSIAN && sh->sigma_learn) p->s = mem + sh->o_s;
    for (int l = 0; l < sh->L; l++) {
        if (sh->r == 0) {
            p->cw[l] = mem + sh->o_cw[l];
        } else {
            p->cv[l] = mem + sh->o_cv[l];
            p->cu[l] = mem + sh->o_cu[l];
        }
        p->cb[l] = mem + sh->o_cb[l];
    }
    for (int i = 0; i < sh->n_mlp; i++) {
        p->mw[i] = mem + sh->o_mw[i];
        p->mb[i] = mem + sh->o_mb[i];
    }
    p->hw = mem + sh->o_hw;
    p->hb = mem + sh->o_hb;
}

/* Lays the workspace out in one allocation (sizes from Bcap, Ecap). */
static void IC_T(alloc_acts)(IC_T(ic__net) *n)
{
    const ic__shape *sh = n->sh;
    size_t B = n->Bcap, E = n->Ecap, D = sh->D, maxH = 1;
    for (int i = 0; i < sh->n_mlp; i++) maxH = (size_t)sh->mlp[i] > maxH ? (size_t)sh->mlp[i] : maxH;
    size_t L = sh->L, r = sh->r, Hsum = 0;
    for (int i = 0; i < sh->n_mlp; i++) Hsum += sh->mlp[i];
    size_t need = 2 * E * sh->d + 2 * E + 2 * B * IC_HOURS + 2 * B * D + 2 * L * B * D +
                  L * B * r + 2 * B * D + B * r + B * Hsum + 2 * B * maxH + 3 * B * sh->T;
    free(n->amem);
    real *m = n->amem = ic__xalloc_aligned(need * sizeof(real));
#define TAKE(ptr, cnt) (ptr = m, m += (cnt))
    TAKE(n->R, E * sh->d);
    TAKE(n->dR, E * sh->d);
    TAKE(n->ew, E);
    TAKE(n->dew, E);
    TAKE(n->cw, B * IC_HOURS);
    TAKE(n->dcw, B * IC_HOURS);
    TAKE(n->x0, B * D);
    TAKE(n->dx0, B * D);
    TAKE(n->xs, L * B * D);
    TAKE(n->z, L * B * D);
    TAKE(n->h, L * B * r);
    TAKE(n->dx, B * D);
    TAKE(n->dz, B * D);
    TAKE(n->dh, B * r);
    for (int i = 0; i < sh->n_mlp; i++) TAKE(n->a[i], B * sh->mlp[i]);
    TAKE(n->da, B * maxH);
    TAKE(n->da2, B * maxH);
    TAKE(n->logits, B * sh->T);
    TAKE(n->probs, B * sh->T);
    TAKE(n->dlogits, B * sh->T);
#undef TAKE
    IC_ASSERT((size_t)(m - n->amem) == need);
}

void IC_T(ic__net_init)(IC_T(ic__net) *n, const ic__shape *sh, int Bcap, int Ecap)
{
    memset(n, 0, sizeof *n);
    n->sh = sh;
    n->pmem = ic__xalloc_aligned(sh->n_params * sizeof(real));
    n->gmem = ic__xalloc_aligned(sh->n_params * sizeof(real));
    IC_T(point_params)(&n->p, n->pmem, sh);
    IC_T(point_params)(&n->g, n->gmem, sh);
    n->Bcap = Bcap > 1 ? Bcap : 1;
    n->Ecap = Ecap > 1 ? Ecap : 1;
    IC_T(alloc_acts)(n);
}

void IC_T(ic__net_reserve)(IC_T(ic__net) *n, int B, int E)
{
    if (B <= n->Bcap && E <= n->Ecap) return;
    if (B > n->Bcap) n->Bcap = B;
    if (E > n->Ecap) n->Ecap = E + E / 2;
    IC_T(alloc_acts)(n);
}

void IC_T(ic__net_free)(IC_T(ic__net) *n)
{
    if (!n) return;
    free(n->pmem);
    free(n->gmem);
    free(n->amem);
    memset(n, 0, sizeof *n);
}

void IC_T(ic__net_zero_grad)(IC_T(ic__net) *n)
{
    memset(n->gmem, 0, n->sh->n_params * sizeof(real));
}

void IC_T(ic__net_bind)(IC_T(ic__net) *n, real *pmem, real *R)
{
    IC_T(point_params)(&n->p, pmem, n->sh);
    n->R = R;
}

/* Row x (D) of x0: sample b's segments pooled from the rows (entry weights
 * into n->ew, clock weights into n->cw row b), and its time encoding. */
static void IC_T(embed_one)(IC_T(ic__net) *n, const ic__plan *pl, int b, real *x)
{
    const ic__shape *sh = n->sh;
    int d = sh->d, NS = sh->NS, NF = 2 + sh->F;
    for (int e = pl->seg_off[b * NS]; e < pl->seg_off[b * NS + NF]; e++)
        n->ew[e] = (real)pl->ent_w[e];
    if (sh->NC) {
        real *cw = n->cw + b * IC_HOURS;
        IC_T(ic__clock_weights_forward)(cw, sh->clock, pl->hour[b], pl->hfrac[b], sh->continuous,
                                        n->p.A, n->p.s, sh->sigma);
        for (int c = 0; c < sh->NC; c++)
            IC_T(ic__clock_entry_weights)(n->ew, pl, sh->NQ, NS, sh->F, b, c, cw);
    }
    for (int q = sh->NC; q < sh->NQ; q++)
        IC_T(ic__history_entry_weights)(n->ew, pl, sh->NQ, NS, sh->F, b, q);
    for (int s = 0; s < NS; s++)
        IC_T(ic__pool_forward)(x + sh->seg_x[s], n->R, pl->ent_u, n->ew, pl->seg_off[b * NS + s],
                               pl->seg_off[b * NS + s + 1], d);
    memcpy(x + sh->x_hour, n->p.hour + pl->hour[b] * d, d * sizeof(real));
    memcpy(x + sh->x_dow, n->p.dow + pl->dow[b] * d, d * sizeof(real));
}

/* x0 (B, D) from the rows, the time tables and the clock. */
static void IC_T(embed_forward)(IC_T(ic__net) *n, const ic__plan *pl)
{
    for (int b = 0; b < pl->B; b++) IC_T(embed_one)(n, pl, b, n->x0 + (size_t)b * n->sh->D);
}

static void IC_T(embed_backward)(IC_T(ic__net) *n, const ic__plan *pl)
{
    const ic__shape *sh = n->sh;
    int d = sh->d, NS = sh->NS, NF = 2 + sh->F, learn = ic__shape_clock_learns(sh);
    memset(n->dR, 0, (size_t)pl->U * d * sizeof(real));
    for (int b = 0; b < pl->B; b++) {
        const real *dx = n->dx0 + (size_t)b * sh->D;
        for (int s = 0; s < NS; s++) /* weight gradients of the clock segments only */
            IC_T(ic__pool_backward)(n->dR, s >= NF && s < NF + sh->NC && learn ? n->dew : NULL,
                                    dx + sh->seg_x[s], n->R, pl->ent_u, n->ew,
                                    pl->seg_off[b * NS + s], pl->seg_off[b * NS + s + 1], d);
        real *gh = n->g.hour + pl->hour[b] * d, *gd = n->g.dow + pl->dow[b] * d;
        for (int j = 0; j < d; j++) {
            gh[j] += dx[sh->x_hour + j];
            gd[j] += dx[sh->x_dow + j];
        }
        if (!learn) continue;
        real *dcw = n->dcw + b * IC_HOURS;
        memset(dcw, 0, IC_HOURS * sizeof(real));
        for (int c = 0; c < sh->NC; c++)
            IC_T(ic__clock_entry_weights_backward)(dcw, n->dew, pl, sh->NQ, b, c);
        IC_T(ic__clock_weights_backward)(n->g.A, n->g.s, dcw, n->cw + b * IC_HOURS, sh->clock,
                                         pl->hour[b], pl->hfrac[b], sh->continuous, n->p.s);
    }
}

static const real *IC_T(cross_out)(const IC_T(ic__net) *n, int B)
{
    return n->sh->L ? n->xs + (size_t)(n->sh->L - 1) * B * n->sh->D : n->x0;
}

/* ---- samples sharing part of x0 ---------------------------------------------------- */

/* pre (OC) = bias (or 0) + w[:, shared] x[shared]: the product of the
 * columns outside sc's runs, once (GEMVs over the gaps between runs).
 * w (OC, C), x (C). */
static void IC_T(shared_part)(real *pre, const real *x, const real *w, const real *bias, int C,
                              int OC, const ic__share_cols *sc)
{
    if (bias)
        memcpy(pre, bias, OC * sizeof(real));
    else
        memset(pre, 0, OC * sizeof(real));
    int c = 0;
    for (int i = 0; i <= sc->n_run; i++) {
        int c1 = i < sc->n_run ? sc->run[2 * i] : C;
        if (c1 > c)
            IC_GEMV(CblasRowMajor, CblasNoTrans, OC, c1 - c, 1, w + c, C, x + c, 1, 1, pre, 1);
        if (i < sc->n_run) c = sc->run[2 * i + 1];
    }
}

/* out (B,OC) = pre + inp[:, runs] w[:, runs]^T: each row starts from the
 * shared part pre (OC), and only the runs' columns are multiplied per
 * row. inp (B,C), w (OC,C). */
static void IC_T(linear_runs)(real *out, const real *inp, const real *w, const real *pre, int B,
                              int C, int OC, const ic__share_cols *sc)
{
    for (int b = 0; b < B; b++) memcpy(out + (size_t)b * OC, pre, OC * sizeof(real));
    for (int i = 0; i < sc->n_run; i++) {
        int c0 = sc->run[2 * i], k = sc->run[2 * i + 1] - c0;
        IC_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, k, 1, inp + c0, C, w + c0, C, 1,
                out, OC);
    }
}

/* The width of ic__share's c0: D (full rank) or r (low rank). */
static size_t IC_T(share_c0)(const ic__shape *sh)
{
    return (size_t)(sh->r > sh->D ? sh->r : sh->D);
}

size_t IC_T(ic__share_size)(const ic__shape *sh)
{
    return sh->D + IC_T(share_c0)(sh) + (sh->n_mlp ? sh->mlp[0] : 0);
}

void IC_T(ic__share_init)(IC_T(ic__share) *s, real *mem, const ic__shape *sh,
                          const ic__share_cols *cols)
{
    s->cols = cols;
    s->x0 = mem;
    s->c0 = mem + sh->D;
    s->m0 = mem + sh->D + IC_T(share_c0)(sh);
}

void IC_T(ic__net_share_prepare)(IC_T(ic__net) *n, const ic__plan *pl, IC_T(ic__share) *s)
{
    const ic__shape *sh = n->sh;
    IC_ASSERT(pl->B >= 1 && pl->E <= n->Ecap);
    IC_T(embed_one)(n, pl, 0, s->x0);
    if (sh->L && sh->r == 0)
        IC_T(shared_part)(s->c0, s->x0, n->p.cw[0], n->p.cb[0], sh->D, sh->D, s->cols);
    else if (sh->L)
        IC_T(shared_part)(s->c0, s->x0, n->p.cv[0], NULL, sh->D, sh->r, s->cols);
    if (sh->n_mlp && sh->parallel)
        IC_T(shared_part)(s->m0, s->x0, n->p.mw[0], n->p.mb[0], sh->D, sh->mlp[0], s->cols);
}

/* x0 (B, D): every row starts as s->x0; the segments that differ are
 * pooled per sample (only user, item and field segments can). */
static void IC_T(embed_shared)(IC_T(ic__net) *n, const ic__plan *pl, const IC_T(ic__share) *s)
{
    const ic__shape *sh = n->sh;
    int d = sh->d, NS = sh->NS, NF = 2 + sh->F;
    for (int b = 0; b < pl->B; b++) {
        real *x = n->x0 + (size_t)b * sh->D;
        memcpy(x, s->x0, sh->D * sizeof(real));
        for (int g = 0; g < NF; g++) {
            if (s->cols->seg[g]) continue;
            int e0 = pl->seg_off[b * NS + g], e1 = pl->seg_off[b * NS + g + 1];
            for (int e = e0; e < e1; e++) n->ew[e] = (real)pl->ent_w[e];
            IC_T(ic__pool_forward)(x + sh->seg_x[g], n->R, pl->ent_u, n->ew, e0, e1, d);
        }
    }
}

/* The network from x0 on (cross layers, MLP, heads, loss). With s, the
 * first cross layer and (parallel) the first MLP layer start from s's
 * shared parts and multiply only the differing columns. */
static real IC_T(forward_from_x0)(IC_T(ic__net) *n, const ic__plan *pl, const IC_T(ic__share) *s)
{
    const ic__shape *sh = n->sh;
    int B = pl->B, D = sh->D;
    const real *x = n->x0;
    for (int l = 0; l < sh->L; l++) {
        size_t off = (size_t)l * B * D;
        real *z = n->z + off, *h = n->h + (size_t)l * B * sh->r;
        if (l || !s) {
            IC_T(ic__cross_forward)(n->xs + off, z, h, n->x0, x, n->p.cw[l], n->p.cu[l],
                                    n->p.cv[l], n->p.cb[l], B, D, sh->r);
        } else if (sh->r == 0) { /* x_0 = x0 */
            IC_T(linear_runs)(z, n->x0, n->p.cw[0], s->c0, B, D, D, s->cols);
            IC_T(cross_mix)(n->xs, z, n->x0, n->x0, (size_t)B * D);
        } else {
            IC_T(linear_runs)(h, n->x0, n->p.cv[0], s->c0, B, D, sh->r, s->cols);
            IC_T(ic__linear_forward)(z, h, n->p.cu[0], n->p.cb[0], B, sh->r, D);
            IC_T(cross_mix)(n->xs, z, n->x0, n->x0, (size_t)B * D);
        }
        x = n->xs + off;
    }
    const real *in = sh->parallel ? n->x0 : x;
    int C = D;
    for (int i = 0; i < sh->n_mlp; i++) {
        if (i == 0 && s && sh->parallel)
            IC_T(linear_runs)(n->a[0], n->x0, n->p.mw[0], s->m0, B, D, sh->mlp[0], s->cols);
        else
            IC_T(ic__linear_forward)(n->a[i], in, n->p.mw[i], n->p.mb[i], B, C, sh->mlp[i]);
        IC_T(ic__relu_forward)(n->a[i], (size_t)B * sh->mlp[i]);
        in = n->a[i];
        C = sh->mlp[i];
    }
    const real *deep = sh->n_mlp ? n->a[sh->n_mlp - 1] : NULL;
    if (sh->parallel)
        IC_T(ic__head_forward)(n->logits, x, D, deep, sh->H, n->p.hw, n->p.hb, B, sh->T);
    else
        IC_T(ic__head_forward)(n->logits, deep ? deep : x, deep ? sh->H : D, NULL, 0, n->p.hw,
                               n->p.hb, B, sh->T);
    return IC_T(ic__bce_forward)(n->probs, n->logits, pl->label, sh->task_w, B, sh->T,
                                 pl->Bn ? pl->Bn : B);
}

real IC_T(ic__net_forward)(IC_T(ic__net) *n, const ic__plan *pl)
{
    IC_ASSERT(pl->B <= n->Bcap && pl->E <= n->Ecap);
    IC_T(embed_forward)(n, pl);
    return IC_T(forward_from_x0)(n, pl, NULL);
}

real IC_T(ic__net_forward_shared)(IC_T(ic__net) *n, const ic__plan *pl, const IC_T(ic__share) *s)
{
    IC_ASSERT(pl->B <= n->Bcap && pl->E <= n->Ecap);
    IC_T(embed_shared)(n, pl, s);
    return IC_T(forward_from_x0)(n, pl, s);
}

/* The MLP backward: from da (B, H_last), the gradient of its output, down
 * to din (B, D) = the gradient of its input in (overwritten, not added). */
static void IC_T(mlp_backward)(IC_T(ic__net) *n, real *din, const real *in, int B)
{
    const ic__shape *sh = n->sh;
    real *da = n->da, *da_prev = n->da2;
    for (int i = sh->n_mlp - 1; i >= 0; i--) {
        int H = sh->mlp[i], C = i ? sh->mlp[i - 1] : sh->D;
        const real *inp = i ? n->a[i - 1] : in;
        IC_T(ic__relu_backward)(da, n->a[i], (size_t)B * H);
        real *dinp = i ? da_prev : din;
        IC_T(linear_backward_b)(dinp, n->g.mw[i], n->g.mb[i], da, inp, n->p.mw[i], B, C, H, 0);
        real *tmp = da;
        da = da_prev;
        da_prev = tmp;
    }
}

void IC_T(ic__net_backward)(IC_T(ic__net) *n, const ic__plan *pl)
{
    const ic__shape *sh = n->sh;
    int B = pl->B, D = sh->D, T = sh->T;
    size_t BD = (size_t)B * D;
    IC_ASSERT(pl->label);
    IC_T(ic__bce_backward)(n->dlogits, n->logits, pl->label, sh->task_w, B, T,
                           pl->Bn ? pl->Bn : B);
    const real *xL = IC_T(cross_out)(n, B);
    const real *deep = sh->n_mlp ? n->a[sh->n_mlp - 1] : NULL;
    /* Zero only what no GEMM overwrites (beta 0) first: the heads write dx
     * and da (parallel), or da or dx (stacked); the MLP writes dx0
     * (parallel) or dx (stacked, the heads wrote da). So dx0 needs zeros
     * unless the parallel MLP writes it. */
    if (!(deep && sh->parallel)) memset(n->dx0, 0, BD * sizeof(real));
    if (sh->parallel)
        IC_T(head_backward_b)(n->dx, n->da, n->g.hw, n->g.hb, n->dlogits, xL, D, deep, sh->H,
                              n->p.hw, B, T, 0);
    else
        IC_T(head_backward_b)(deep ? n->da : n->dx, NULL, n->g.hw, n->g.hb, n->dlogits,
                              deep ? deep : xL, deep ? sh->H : D, NULL, 0, n->p.hw, B, T, 0);
    /* Parallel: the MLP reads x0, its gradient goes to dx0. Stacked: it
     * reads x_L, its gradient goes to dx before the cross layers. */
    if (deep) IC_T(mlp_backward)(n, sh->parallel ? n->dx0 : n->dx, sh->parallel ? n->x0 : xL, B);
    for (int l = sh->L - 1; l >= 0; l--) {
        size_t off = (size_t)l * BD;
        const real *x = l ? n->xs + off - BD : n->x0;
        IC_T(ic__cross_backward)(n->dx, n->dx0, n->dz, n->dh, n->g.cw[l], n->g.cu[l], n->g.cv[l],
                                 n->g.cb[l], n->x0, x, n->z + off, n->h + (size_t)l * B * sh->r,
                                 n->p.cw[l], n->p.cu[l], n->p.cv[l], B, D, sh->r);
    }
    IC_T(vec_add)(n->dx0, n->dx, BD); /* x_0 is x0 */
    IC_T(embed_backward)(n, pl);
}
