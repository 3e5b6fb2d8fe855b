/* nn.c: the dense network: its shape and parameter layout, batch plans,
 * and the layer kernels and whole-network forward/backward, compiled from
 * nn_impl.h once for float (the production path) and once for double (the
 * gradient checks). Dense math goes through CBLAS, row-major, batch on the
 * rows.
 *
 * Deliberately not here: where rows come from (embed.c, model.c), how
 * parameters are initialised or updated (model.c, optim.c). */
#include "nn.h"

#include <cblas.h>
#include <tgmath.h>

static size_t take(size_t *n, size_t cnt)
{
    size_t o = *n;
    *n += cnt;
    return o;
}

ic_status ic__shape_init(ic__shape *sh, const ic_config *cfg, ic_error *err)
{
    memset(sh, 0, sizeof *sh);
#define NEED(cond, key)                                                                  \
    do {                                                                                 \
        if (!(cond)) return ic__fail(err, IC_ERR_CONFIG, "model: %s: %s", key, #cond);   \
    } while (0)
    NEED(cfg->dim >= 1 && cfg->dim <= 256, "dim");
    NEED(cfg->n_fields >= 0 && cfg->n_fields <= IC_MAX_FIELDS, "fields");
    NEED(cfg->n_tasks >= 1 && cfg->n_tasks <= IC_MAX_TASKS, "tasks");
    NEED(cfg->cross_layers >= 0 && cfg->cross_layers <= IC__MAX_CROSS, "cross_layers");
    NEED(cfg->cross_rank >= 0, "cross_rank");
    NEED(cfg->n_mlp >= 0 && cfg->n_mlp <= IC_MAX_MLP, "mlp");
    for (int i = 0; i < cfg->n_mlp; i++) NEED(cfg->mlp[i] >= 1, "mlp");
    NEED(cfg->clock >= IC_CLOCK_NONE && cfg->clock <= IC_CLOCK_GAUSSIAN, "clock");
    NEED(cfg->history == 0 || cfg->history == 1, "history");
    if (cfg->clock != IC_CLOCK_NONE || cfg->history) {
        NEED(cfg->n_clock >= 1 && cfg->n_clock <= IC_MAX_CLOCK_FIELDS, "clock fields");
        for (int c = 0; c < cfg->n_clock; c++)
            NEED(cfg->clock_field[c] >= 0 && cfg->clock_field[c] < cfg->n_fields, "clock fields");
        NEED(cfg->top_k >= 1 && cfg->top_k <= IC_MAX_TOPK, "top_k");
    }
    if (cfg->clock == IC_CLOCK_GAUSSIAN) NEED(cfg->clock_sigma > 0, "clock_sigma");
#undef NEED
    int d = sh->d = cfg->dim;
    sh->F = cfg->n_fields;
    sh->NC = cfg->clock == IC_CLOCK_NONE ? 0 : cfg->n_clock;
    sh->NH = cfg->history ? cfg->n_clock : 0;
    sh->NQ = sh->NC + sh->NH;
    sh->NS = 2 + sh->F + sh->NQ;
    sh->T = cfg->n_tasks;
    sh->L = cfg->cross_layers;
    sh->r = cfg->cross_rank;
    sh->n_mlp = cfg->n_mlp;
    for (int i = 0; i < cfg->n_mlp; i++) sh->mlp[i] = cfg->mlp[i];
    sh->H = cfg->n_mlp ? cfg->mlp[cfg->n_mlp - 1] : 0;
    sh->parallel = cfg->structure == IC_STRUCT_PARALLEL;
    sh->clock = cfg->clock;
    sh->sigma_learn = cfg->clock == IC_CLOCK_GAUSSIAN && cfg->clock_sigma_learn;
    sh->continuous = cfg->clock_continuous;
    sh->sigma = cfg->clock_sigma;
    for (int t = 0; t < sh->T; t++) sh->task_w[t] = cfg->task[t].weight;

    /* x0 = [user | item | field 0..F-1 | hour | day | clock 0..NC-1 |
     * history 0..NH-1], d each: the slot-pooled segments q = 0..NQ-1 sit
     * after the time encoding in segment order. */
    for (int s = 0; s < 2 + sh->F; s++) sh->seg_x[s] = s * d;
    sh->x_hour = (2 + sh->F) * d;
    sh->x_dow = (3 + sh->F) * d;
    for (int q = 0; q < sh->NQ; q++) sh->seg_x[2 + sh->F + q] = (4 + sh->F + q) * d;
    int D = sh->D = (4 + sh->F + sh->NQ) * d;
    if (sh->parallel)
        sh->S = D + sh->H;
    else
        sh->S = sh->H ? sh->H : D;

    size_t n = 0;
    sh->o_hour = take(&n, IC_HOURS * d);
    sh->o_dow = take(&n, 7 * d);
    sh->o_A = take(&n, sh->clock == IC_CLOCK_ADAPTIVE ? IC_HOURS * IC_HOURS : 0);
    sh->o_s = take(&n, sh->sigma_learn ? 1 : 0);
    for (int l = 0; l < sh->L; l++) {
        sh->o_cw[l] = take(&n, sh->r ? 0 : (size_t)D * D);
        sh->o_cv[l] = take(&n, (size_t)sh->r * D);
        sh->o_cu[l] = take(&n, (size_t)D * sh->r);
        sh->o_cb[l] = take(&n, D);
    }
    int C = D; /* the MLP reads x0 (parallel) or x_L (stacked), both D wide */
    for (int i = 0; i < sh->n_mlp; i++) {
        sh->o_mw[i] = take(&n, (size_t)sh->mlp[i] * C);
        sh->o_mb[i] = take(&n, sh->mlp[i]);
        C = sh->mlp[i];
    }
    sh->o_hw = take(&n, (size_t)sh->T * sh->S);
    sh->o_hb = take(&n, sh->T);
    sh->n_params = n;
    return IC_OK;
}

int ic__shape_clock_learns(const ic__shape *sh)
{
    return sh->clock == IC_CLOCK_ADAPTIVE || (sh->clock == IC_CLOCK_GAUSSIAN && sh->sigma_learn);
}

void ic__plan_reserve(ic__plan *p, const ic__shape *sh, int B, int E, int O)
{
    if (B > p->cap_B) {
        p->cap_B = B;
        p->seg_off = ic__xrealloc(p->seg_off, ((size_t)B * sh->NS + 1) * sizeof *p->seg_off);
        p->occ_off = ic__xrealloc(p->occ_off, ((size_t)B * sh->NQ + 1) * sizeof *p->occ_off);
        p->hour = ic__xrealloc(p->hour, B * sizeof *p->hour);
        p->dow = ic__xrealloc(p->dow, B * sizeof *p->dow);
        p->hfrac = ic__xrealloc(p->hfrac, B * sizeof *p->hfrac);
        p->label = ic__xrealloc(p->label, (size_t)B * sh->T * sizeof *p->label);
    }
    if (E > p->cap_E) {
        p->cap_E = E + E / 2;
        p->ent_u = ic__xrealloc(p->ent_u, p->cap_E * sizeof *p->ent_u);
        p->ent_w = ic__xrealloc(p->ent_w, p->cap_E * sizeof *p->ent_w);
        p->u_tab = ic__xrealloc(p->u_tab, p->cap_E * sizeof *p->u_tab);
        p->u_row = ic__xrealloc(p->u_row, p->cap_E * sizeof *p->u_row);
    }
    if (O > p->cap_O) {
        p->cap_O = O + O / 2;
        p->occ_e = ic__xrealloc(p->occ_e, p->cap_O * sizeof *p->occ_e);
        p->occ_t = ic__xrealloc(p->occ_t, p->cap_O * sizeof *p->occ_t);
        p->occ_p = ic__xrealloc(p->occ_p, p->cap_O * sizeof *p->occ_p);
    }
}

void ic__plan_part(ic__plan *dst, const ic__plan *pl, const ic__shape *sh, int b0, int b1)
{
    IC_ASSERT(0 <= b0 && b0 <= b1 && b1 <= pl->B);
    *dst = *pl;
    dst->B = b1 - b0;
    dst->Bn = pl->Bn ? pl->Bn : pl->B;
    dst->seg_off = pl->seg_off + (size_t)b0 * sh->NS;
    dst->occ_off = pl->occ_off + (size_t)b0 * sh->NQ;
    dst->hour = pl->hour + b0;
    dst->dow = pl->dow + b0;
    dst->hfrac = pl->hfrac + b0;
    if (pl->label) dst->label = pl->label + (size_t)b0 * sh->T;
    dst->cap_B = dst->cap_E = dst->cap_O = 0; /* a view owns nothing */
}

void ic__plan_free(ic__plan *p)
{
    if (!p) return;
    free(p->seg_off);
    free(p->occ_off);
    free(p->hour);
    free(p->dow);
    free(p->hfrac);
    free(p->label);
    free(p->ent_u);
    free(p->ent_w);
    free(p->u_tab);
    free(p->u_row);
    free(p->occ_e);
    free(p->occ_t);
    free(p->occ_p);
    memset(p, 0, sizeof *p);
}

double ic__clock_delta(int t, int h, double hf, int continuous)
{
    if (!continuous) {
        int a = (t - h + IC_HOURS) % IC_HOURS, b = (h - t + IC_HOURS) % IC_HOURS;
        return a < b ? a : b;
    }
    double x = fmod(fabs(hf - (t + 0.5)), (double)IC_HOURS);
    return x < IC_HOURS - x ? x : IC_HOURS - x;
}

#define real float
#define IC_T(name) name##_f
#define IC_GEMM cblas_sgemm
#define IC_GEMV cblas_sgemv
#include "nn_impl.h"
#undef real
#undef IC_T
#undef IC_GEMM
#undef IC_GEMV

#define real double
#define IC_T(name) name##_d
#define IC_GEMM cblas_dgemm
#define IC_GEMV cblas_dgemv
#include "nn_impl.h"
#undef real
#undef IC_T
#undef IC_GEMM
#undef IC_GEMV

void ic__net_to_double(ic__net_d *dst, const ic__net_f *src, int U)
{
    IC_ASSERT(dst->sh->n_params == src->sh->n_params && U <= dst->Ecap);
    for (size_t i = 0; i < src->sh->n_params; i++) dst->pmem[i] = src->pmem[i];
    for (size_t i = 0; i < (size_t)U * src->sh->d; i++) dst->R[i] = src->R[i];
}

int ic__shape_tensor(const ic__shape *sh, int i, char name[32], size_t *off, size_t *n)
{
    /* The block's tensors in order; empty ones are skipped. */
    struct { char name[32]; size_t off, n; } all[4 + 4 * IC__MAX_CROSS + 2 * IC_MAX_MLP + 2];
    int k = 0;
#define ADD(nm, o, cnt)                                                \
    do {                                                               \
        if ((cnt) > 0) {                                               \
            snprintf(all[k].name, 32, "%s", nm);                       \
            all[k].off = (o);                                          \
            all[k++].n = (cnt);                                        \
        }                                                              \
    } while (0)
    char buf[32];
    ADD("hour", sh->o_hour, (size_t)IC_HOURS * sh->d);
    ADD("dow", sh->o_dow, (size_t)7 * sh->d);
    ADD("clock.A", sh->o_A, sh->clock == IC_CLOCK_ADAPTIVE ? (size_t)IC_HOURS * IC_HOURS : 0);
    ADD("clock.log_sigma", sh->o_s, (size_t)(sh->sigma_learn ? 1 : 0));
    for (int l = 0; l < sh->L; l++) {
        size_t D = sh->D, r = sh->r;
        snprintf(buf, sizeof buf, "cross.%d.w", l);
        ADD(buf, sh->o_cw[l], r ? 0 : D * D);
        snprintf(buf, sizeof buf, "cross.%d.v", l);
        ADD(buf, sh->o_cv[l], r * D);
        snprintf(buf, sizeof buf, "cross.%d.u", l);
        ADD(buf, sh->o_cu[l], D * r);
        snprintf(buf, sizeof buf, "cross.%d.b", l);
        ADD(buf, sh->o_cb[l], D);
    }
    for (int l = 0; l < sh->n_mlp; l++) {
        size_t in = l ? sh->mlp[l - 1] : sh->D;
        snprintf(buf, sizeof buf, "mlp.%d.w", l);
        ADD(buf, sh->o_mw[l], in * sh->mlp[l]);
        snprintf(buf, sizeof buf, "mlp.%d.b", l);
        ADD(buf, sh->o_mb[l], (size_t)sh->mlp[l]);
    }
    ADD("head.w", sh->o_hw, (size_t)sh->T * sh->S);
    ADD("head.b", sh->o_hb, (size_t)sh->T);
#undef ADD
    if (i < 0 || i >= k) return 0;
    memcpy(name, all[i].name, 32);
    *off = all[i].off;
    *n = all[i].n;
    return 1;
}
