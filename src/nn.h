/* nn.h: the ranking network's internal interface: its shape, the batch
 * "plan" (which embedding rows each sample reads, and with what weights),
 * the layer kernels (forward/backward pairs, llm.c style) and the whole
 * dense network (x0 -> DCN-V2 -> heads -> loss).
 *
 * Every kernel and the network exist twice, for float (suffix _f, the
 * production path, used by model.c) and for double (suffix _d, used by the
 * gradient checks in tests/test_nn.c and tests/test_model.c). Both come from
 * one source, nn_impl.h, so the checks test the code that runs. The
 * declarations come from nn_t.h, included below once per type.
 *
 * Dimension letters used in shape comments:
 *   B batch, d embedding dim, D the width of x0, r cross rank, H an MLP
 *   width, T tasks, E plan entries (embedding rows read, with repeats
 *   across samples), U distinct rows touched by the batch, O clock
 *   occurrences (slot values), S the width of the shared output.
 *
 * Deliberately not here: embedding tables (embed.c), optimizers (optim.c),
 * turning events into plans, save/load (model.c). */
#ifndef IC_NN_H
#define IC_NN_H

#include "internal.h"

#define IC__MAX_CROSS 16 /* cross layers */

/* The network's shape and where each named tensor sits in the one
 * contiguous parameter block. Type-independent; the float and the double
 * network of one model share it. */
typedef struct {
    int d;          /* embedding dimension */
    int F;          /* categorical fields besides user and item */
    int NC;         /* clock fields embedded (0 when clock is none) */
    int NH;         /* history blocks (cfg->history: one per clock field, else 0) */
    int NQ;         /* slot-pooled segments per sample: NC clock, then NH history */
    int NS;         /* embedding segments per sample: user, item, F fields, NC clock,
                     * NH history */
    int T;          /* tasks */
    int D;          /* width of x0 */
    int L, r;       /* cross layers; rank (0 = full) */
    int n_mlp, mlp[IC_MAX_MLP];
    int H;          /* width of the deep output (0 without an MLP) */
    int S;          /* width of the shared output the heads read */
    int parallel;   /* 1 parallel, 0 stacked */
    ic_clock_kind clock;
    int sigma_learn, continuous;
    double sigma;   /* the fixed Gaussian sigma (and the learned one's start) */
    float task_w[IC_MAX_TASKS];
    int seg_x[2 + IC_MAX_FIELDS + 2 * IC_MAX_CLOCK_FIELDS]; /* x0 offset of segment s */
    int x_hour, x_dow;                                  /* x0 offsets of the time encoding */
    /* parameter block offsets (in elements); a tensor absent in this
     * configuration has size 0 */
    size_t o_hour, o_dow, o_A, o_s;
    size_t o_cw[IC__MAX_CROSS], o_cu[IC__MAX_CROSS], o_cv[IC__MAX_CROSS], o_cb[IC__MAX_CROSS];
    size_t o_mw[IC_MAX_MLP], o_mb[IC_MAX_MLP];
    size_t o_hw, o_hb;
    size_t n_params;
} ic__shape;

/* Fills sh from cfg. Returns IC_ERR_CONFIG (naming the setting) for a shape
 * the network cannot take. */
ic_status ic__shape_init(ic__shape *sh, const ic_config *cfg, ic_error *err);

/* Enumerates the named dense tensors: fills name and the tensor's offset
 * and size in the parameter block for i = 0, 1, ...; returns 0 past the
 * end. Names: hour, dow, clock.A, clock.log_sigma, cross.L.w|u|v|b,
 * mlp.I.w|b, head.w, head.b (weights are out x in, as in PyTorch). */
int ic__shape_tensor(const ic__shape *sh, int i, char name[32], size_t *off, size_t *n);

/* 1 when the clock weights have parameters (adaptive, learned sigma). */
int ic__shape_clock_learns(const ic__shape *sh);

/* A batch, as the network sees it. Built by model.c from ic_samples (or by
 * a test by hand); plain arrays, type-independent. Entries of segment s of
 * sample b are [seg_off[b*NS+s], seg_off[b*NS+s+1]); entry e reads row
 * ent_u[e] of the batch's row block R with the fixed weight ent_w[e] (1/n
 * for a mean over n values). For a slot-pooled segment q (q < NC: clock
 * field q; NC <= q < NQ: the history block of clock field q - NC) the
 * weight is not fixed: it is computed from the segment's occurrences
 * [occ_off[b*NQ+q], occ_off[b*NQ+q+1]): occurrence o adds
 * w[occ_t[o]] * occ_p[o] to the weight of entry occ_e[o], with w the
 * clock weights (clock) or 1/24 everywhere (history). The same value may
 * fill several hour slots; it is one entry, read once. */
typedef struct {
    int B, E, U, O;
    int Bn;             /* samples the loss averages over: 0 means B; a part
                         * of a batch (ic__plan_part) averages over the whole */
    int cap_B, cap_E, cap_O;
    int32_t *seg_off;   /* (B*NS + 1) */
    int32_t *ent_u;     /* (E) */
    float *ent_w;       /* (E) */
    int32_t *occ_off;   /* (B*NQ + 1) */
    int32_t *occ_e;     /* (O) */
    uint8_t *occ_t;     /* (O) */
    float *occ_p;       /* (O) */
    int32_t *hour;      /* (B) local hour 0..23 */
    int32_t *dow;       /* (B) local day of week 0..6 */
    double *hfrac;      /* (B) fractional local hour [0, 24) */
    float *label;       /* (B, T), or NULL: no loss */
    int32_t *u_tab;     /* (U) table of touched row u (model.c's numbering) */
    int64_t *u_row;     /* (U) row in that table */
} ic__plan;

/* A batch whose samples share part of x0 (a ranking request: one user, one
 * time, one clock view, many candidate items), for ic__net_forward_shared.
 * seg[s] = 1 marks embedding segment s (nn.h's numbering: user, item,
 * fields, then the slot-pooled ones) as equal in every sample; the time
 * encoding (hour, day) is always shared. The columns of x0 that differ
 * between samples are the runs [run[2i], run[2i+1]), i < n_run, ascending
 * and not adjacent (merged). Built by model.c. */
#define IC__MAX_SEGS (2 + IC_MAX_FIELDS + 2 * IC_MAX_CLOCK_FIELDS)
typedef struct {
    uint8_t seg[IC__MAX_SEGS];
    int n_run;
    int run[2 * (2 + IC_MAX_FIELDS)]; /* only user, item and field segments can differ */
} ic__share_cols;

/* Makes room for B samples, E entries, O occurrences (U <= E). Keeps
 * nothing: call before filling. Allocates only when a capacity grows. */
void ic__plan_reserve(ic__plan *p, const ic__shape *sh, int B, int E, int O);
void ic__plan_free(ic__plan *p);
/* dst = a view of samples [b0, b1) of pl (pointers into pl's arrays; entry
 * and row numbers stay pl's), averaging the loss over all of pl's samples.
 * Never reserve or free a view; it is valid while pl is unchanged. */
void ic__plan_part(ic__plan *dst, const ic__plan *pl, const ic__shape *sh, int b0, int b1);

/* Circular distance in hours between slot t and the current time: from
 * the hour h, or (continuous) from the fractional hour hf to t's centre. */
double ic__clock_delta(int t, int h, double hf, int continuous);

#define real float
#define IC_T(name) name##_f
#include "nn_t.h"
#undef real
#undef IC_T

#define real double
#define IC_T(name) name##_d
#include "nn_t.h"
#undef real
#undef IC_T

/* Copies the float network's parameters into the double one (same shape);
 * also copies the first U rows of R. For the gradient checks. */
void ic__net_to_double(ic__net_d *dst, const ic__net_f *src, int U);

#endif
