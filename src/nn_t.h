/* nn_t.h: declarations of the network for one number type. Included by
 * nn.h twice, with `real` defined as float and as double and IC_T(name)
 * adding the suffix _f or _d. No include guard on purpose. */

/* Named pointers into one parameter (or gradient) block. NULL for a
 * tensor this configuration does not have. */
typedef struct {
    real *hour;                    /* (24, d) hour-of-day embedding */
    real *dow;                     /* (7, d) day-of-week embedding */
    real *A;                       /* (24, 24) adaptive clock logits, row = current hour */
    real *s;                       /* (1) log sigma of the learned Gaussian clock */
    real *cw[IC__MAX_CROSS];       /* (D, D) full-rank cross weight, out x in */
    real *cv[IC__MAX_CROSS];       /* (r, D) low rank: V^T, D -> r */
    real *cu[IC__MAX_CROSS];       /* (D, r) low rank: U, r -> D */
    real *cb[IC__MAX_CROSS];       /* (D) cross bias */
    real *mw[IC_MAX_MLP];          /* (H_i, H_{i-1}) MLP weight, out x in */
    real *mb[IC_MAX_MLP];          /* (H_i) */
    real *hw;                      /* (T, S) task heads, one row per task */
    real *hb;                      /* (T) */
} IC_T(ic__params);

/* The network: parameters, their gradients, and the activations of one
 * batch (workspace sized for Bcap samples and Ecap plan entries). */
typedef struct {
    const ic__shape *sh;
    real *pmem, *gmem;              /* (n_params) each */
    IC_T(ic__params) p, g;
    int Bcap, Ecap;
    real *amem;                     /* one allocation for everything below */
    real *R, *dR;                   /* (Ecap, d) the batch's rows and their gradients */
    real *ew, *dew;                 /* (Ecap) entry weights */
    real *cw, *dcw;                 /* (B, 24) clock weights over the hour slots */
    real *x0, *dx0;                 /* (B, D) */
    real *xs;                       /* (L, B, D) cross outputs x_1..x_L */
    real *z;                        /* (L, B, D) W x_l + b */
    real *h;                        /* (L, B, r) V^T x_l (low rank) */
    real *dx, *dz, *dh;             /* (B, D), (B, D), (B, r) */
    real *a[IC_MAX_MLP];            /* (B, H_i) MLP outputs after ReLU */
    real *da, *da2;                 /* (B, maxH) */
    real *logits, *probs, *dlogits; /* (B, T) */
} IC_T(ic__net);

/* ---- layer kernels: forward/backward pairs. Backward functions
 * accumulate (+=) into parameter gradients and into input gradients, as
 * llm.c does; callers zero them. ---- */

/* out (B,OC) = inp (B,C) w^T + bias; w (OC,C); bias (OC) may be NULL. */
void IC_T(ic__linear_forward)(real *out, const real *inp, const real *w, const real *bias,
                              int B, int C, int OC);
/* dinp (B,C) += dout w; dw (OC,C) += dout^T inp; dbias (OC) += column sums.
 * dinp and dbias may be NULL. */
void IC_T(ic__linear_backward)(real *dinp, real *dw, real *dbias, const real *dout,
                               const real *inp, const real *w, int B, int C, int OC);
/* out = max(out, 0) in place, n elements. */
void IC_T(ic__relu_forward)(real *x, size_t n);
/* d *= (out > 0): turns the gradient of the ReLU's output into that of its input. */
void IC_T(ic__relu_backward)(real *d, const real *out, size_t n);

/* One DCN-V2 cross layer: z = W x + b (or U (V^T x) + b with h = V^T x
 * when r > 0), xn = x0 * z + x. All (B,D) except h (B,r). */
void IC_T(ic__cross_forward)(real *xn, real *z, real *h, const real *x0, const real *x,
                             const real *w, const real *u, const real *v, const real *b,
                             int B, int D, int r);
/* On entry dx (B,D) holds dL/dxn; on return dL/dx (in place). dx0 +=
 * its part; dz (B,D) and dh (B,r) are scratch. dw, du, dv, db +=. */
void IC_T(ic__cross_backward)(real *dx, real *dx0, real *dz, real *dh, real *dw, real *du,
                              real *dv, real *db, const real *x0, const real *x, const real *z,
                              const real *h, const real *w, const real *u, const real *v,
                              int B, int D, int r);

/* Task heads on the shared output [x1 (B,C1) | x2 (B,C2)] (x2 may be NULL,
 * C2 = 0): logits (B,T) = [x1|x2] w^T + b, w (T, C1+C2). */
void IC_T(ic__head_forward)(real *logits, const real *x1, int C1, const real *x2, int C2,
                            const real *w, const real *b, int B, int T);
void IC_T(ic__head_backward)(real *dx1, real *dx2, real *dw, real *db, const real *dlogits,
                             const real *x1, int C1, const real *x2, int C2, const real *w,
                             int B, int T);

/* probs (B,T) = sigmoid(logits); returns sum_t w[t] * (sum_b BCE) / Bn
 * (stable log-sigmoid form): the mean when Bn = B, a part's share of the
 * mean of a batch of Bn. y (B,T) labels in [0,1]; w (T) task weights. */
real IC_T(ic__bce_forward)(real *probs, const real *logits, const float *y, const float *w,
                           int B, int T, int Bn);
/* dlogits (B,T) = w[t] (sigmoid(logit) - y) / Bn (assigned: the loss is the root). */
void IC_T(ic__bce_backward)(real *dlogits, const real *logits, const float *y, const float *w,
                            int B, int T, int Bn);

/* The clock's weights c (24) over hour slots at local hour h (fractional
 * hf): one-hot (naive), softmax(A[h]) (adaptive), the Gaussian density of
 * the circular distance with sigma = exp(*s) if s else sigma (gaussian). */
void IC_T(ic__clock_weights_forward)(real *c, ic_clock_kind kind, int h, double hf,
                                     int continuous, const real *A, const real *s, double sigma);
/* dA (24,24) += and ds (1) += from dc (24); either may be NULL when the
 * mode has no such parameter. */
void IC_T(ic__clock_weights_backward)(real *dA, real *ds, const real *dc, const real *c,
                                      ic_clock_kind kind, int h, double hf, int continuous,
                                      const real *s);

/* out (d) = sum over entries e in [e0,e1) of ew[e] * R[ent_u[e]]. */
void IC_T(ic__pool_forward)(real *out, const real *R, const int32_t *ent_u, const real *ew,
                            int e0, int e1, int d);
/* dR[ent_u[e]] += ew[e] * dout; dew[e] = <dout, R[ent_u[e]]> (if dew). */
void IC_T(ic__pool_backward)(real *dR, real *dew, const real *dout, const real *R,
                             const int32_t *ent_u, const real *ew, int e0, int e1, int d);

/* The fast clock pooling's first half: the weights of the entries of
 * slot-pooled segment (b, q) from the slot weights cw (24) (the segment's
 * distinct values, each weighted by the sum over the slots it fills). NQ
 * is the plan's slot-pooled segments per sample (nn.h). */
void IC_T(ic__clock_entry_weights)(real *ew, const ic__plan *pl, int NQ, int NS, int F, int b,
                                   int q, const real *cw);
/* The history block's entry weights: the same with cw = 1/24 everywhere
 * (v_hist = the mean of the 24 slots' pooled values; a fixed weighting,
 * so it has no backward of its own besides the rows'). */
void IC_T(ic__history_entry_weights)(real *ew, const ic__plan *pl, int NQ, int NS, int F, int b,
                                     int q);
/* dcw (24) += from dew (the entries' weight gradients). */
void IC_T(ic__clock_entry_weights_backward)(real *dcw, const real *dew, const ic__plan *pl,
                                            int NQ, int b, int q);
/* The plain reference of the slot pooling: per slot t the pooled value
 * v_t = sum_k p_k R[row of value k], then out (d) = sum_t cw[t] v_t. */
void IC_T(ic__clock_pool_ref)(real *out, const real *R, const ic__plan *pl, int NQ, int b,
                              int q, const real *cw, int d);

/* ---- the whole network ---- */

/* Allocates parameters (zero), gradients and a workspace for Bcap samples
 * and Ecap entries. sh must outlive the network. Aborts on out of memory. */
void IC_T(ic__net_init)(IC_T(ic__net) *n, const ic__shape *sh, int Bcap, int Ecap);
/* Grows the workspace (never shrinks); contents are not kept. */
void IC_T(ic__net_reserve)(IC_T(ic__net) *n, int B, int E);
void IC_T(ic__net_free)(IC_T(ic__net) *n);
void IC_T(ic__net_zero_grad)(IC_T(ic__net) *n);
/* Makes n read its parameters from pmem and its rows from R, both owned by
 * another network of the same shape (a helper thread running part of that
 * network's batch); n keeps its own activations and gradients. Call after
 * every ic__net_reserve of either network (they move the workspace). */
void IC_T(ic__net_bind)(IC_T(ic__net) *n, real *pmem, real *R);
/* The forward pass of the batch pl over the rows in n->R (pl->U, d).
 * Fills probs (B,T) and returns the loss (0 when pl->label is NULL). */
real IC_T(ic__net_forward)(IC_T(ic__net) *n, const ic__plan *pl);
/* The backward pass after ic__net_forward: gradients += into n->g, and
 * n->dR (U, d) assigned (the rows' gradients of this batch, no L2). */
void IC_T(ic__net_backward)(IC_T(ic__net) *n, const ic__plan *pl);

/* ---- ranking requests: samples that share part of x0 ---- */

/* What a batch's samples share (ic__share_cols), computed once for the
 * batch by ic__net_share_prepare. The vectors are the caller's,
 * ic__share_size reals; a helper thread running part of the batch reads
 * the same one. */
typedef struct {
    const ic__share_cols *cols;
    real *x0;  /* (D) sample 0's x0 row: every sample's shared columns */
    real *c0;  /* the first cross layer's shared part: full rank (D) b_0 + W_0[:, shared]
                * x0[shared]; low rank (r) V_0^T[:, shared] x0[shared] */
    real *m0;  /* (H_0) parallel: the first MLP layer's b + W[:, shared] x0[shared] */
} IC_T(ic__share);

/* Reals of the vectors of an ic__share for this shape. */
size_t IC_T(ic__share_size)(const ic__shape *sh);
/* Points s at mem (ic__share_size reals) and at cols. */
void IC_T(ic__share_init)(IC_T(ic__share) *s, real *mem, const ic__shape *sh,
                          const ic__share_cols *cols);
/* Fills s from sample 0 of pl, which must be planned in full (the other
 * samples need only their columns that differ). Uses n's parameters and
 * its workspace for sample 0's entry and clock weights. */
void IC_T(ic__net_share_prepare)(IC_T(ic__net) *n, const ic__plan *pl, IC_T(ic__share) *s);
/* ic__net_forward for a batch whose samples all have s->x0's values in the
 * shared columns (pl need not list their shared segments' entries): x0's
 * differing segments are pooled per sample, and the first cross layer
 * (and, parallel, the first MLP layer) multiply only the differing
 * columns per sample, starting from s's once-computed shared parts.
 * Equal to ic__net_forward to float rounding (summation order). */
real IC_T(ic__net_forward_shared)(IC_T(ic__net) *n, const ic__plan *pl, const IC_T(ic__share) *s);
