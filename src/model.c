/* model.c: the ranking model: turns samples (event + clock) into a batch
 * plan over the embedding tables, runs the DCN-V2 network (nn.c) on one
 * thread or on two (data-parallel halves), applies the optimizers (Adam on
 * the dense block, Adagrad or Adam on the rows the batch touched), and
 * saves/loads everything needed to resume training bit-identically. A
 * prediction whose samples share user, time and clock (a ranking request)
 * plans and computes the shared part of the network once. The fast
 * planner, the shared prediction and Adam keep plain reference paths for
 * the tests (ic__model_set_reference).
 *
 * Deliberately not here: the layers' math (nn_impl.h), building clocks
 * (clock.c), the training loop over a log (engine.c). See docs/MODEL.md. */
#include "model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>

#define IC__MAX_TABLES (2 + IC_MAX_FIELDS)

/* A helper thread for ic_model_set_threads(m, 2): it runs the forward (and
 * backward) of the second part of each batch on its own network, whose
 * parameters and rows are bound to the model's, while the caller runs the
 * first part; the caller then adds its gradients to the model's. */
enum { JOB_NONE, JOB_PREDICT, JOB_TRAIN, JOB_QUIT };
typedef struct {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job, done;   /* under mu */
    ic__plan part;   /* a view of the model's plan */
    const ic__share_f *share; /* ranking request: what the samples share, or NULL */
    ic__net_f net;
    float loss;
} helper;

/* One clock slot value as the plan reads it: slot, batch row, pooling weight. */
typedef struct {
    int32_t u;
    uint8_t t;
    float p;
} slot_rec;

/* A per-batch memo of clock value lookups: (table, id) -> batch row u.
 * Direct-mapped; id 0 (never a row) marks an empty entry. */
enum { ROW_MEMO = 1024 };
typedef struct {
    uint64_t id;
    int32_t tab, u;
} row_memo;

struct ic_model {
    ic_config cfg;
    ic__shape sh;
    ic__net_f net;
    float *opt_mem;          /* (2, n_params): Adam m then v */
    float *adam_m, *adam_v;  /* named pointers into opt_mem */
    int64_t step;            /* dense Adam steps taken */
    int n_tab;
    ic__emb tab[IC__MAX_TABLES]; /* user, item, field 0..F-1 */
    ic__plan plan;
    int32_t *u_seg, *u_ent;  /* (cap_u) clock dedupe: segment and entry of row u */
    int cap_u;
    slot_rec rec[IC_MAX_CLOCK_FIELDS * IC_HOURS * IC_MAX_TOPK]; /* one sample's slot values */
    /* The batch's clock slot values, gathered from the views before any
     * lookup (see gather_clock): (b, c) holds [g_off[b*nc+c], ...+1). */
    uint64_t *g_val;         /* (cap_g) value id */
    float *g_p;              /* (cap_g) pooling weight in its slot */
    uint8_t *g_t;            /* (cap_g) slot */
    int32_t *g_off;          /* (cap_goff) */
    size_t cap_g, cap_goff;
    row_memo memo[ROW_MEMO]; /* valid within one plan; cleared by plan_start */
    /* A ranking request (ic_model_predict): what its samples share. */
    ic__share_cols sc;
    ic__share_f share;       /* vectors in share_mem */
    float *share_mem;        /* (ic__share_size_f) */
    int last_shared;         /* the last prediction took the shared path */
    int ref;                 /* 1: the plain reference paths (tests) */
    helper *hp;              /* NULL: one thread */
    ic_rng rng;
};

/* ---- creation ---------------------------------------------------------------- */

/* Glorot uniform for a (fan_out, fan_in) weight, from the model's rng. */
static void xavier(float *w, size_t fan_out, size_t fan_in, ic_rng *rng)
{
    double a = sqrt(6.0 / (double)(fan_in + fan_out));
    for (size_t i = 0; i < fan_out * fan_in; i++) w[i] = (float)((2 * ic__rng_uniform(rng) - 1) * a);
}

static void normal_fill(float *x, size_t n, double std, ic_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(ic__rng_normal(rng) * std);
}

/* Draws the dense parameters in block order: the time tables N(0,
 * init_std), weights Glorot uniform, biases and the adaptive clock's A
 * zero, log sigma = log(clock_sigma). */
static void init_params(ic_model *m)
{
    const ic__shape *sh = &m->sh;
    ic__params_f *p = &m->net.p;
    normal_fill(p->hour, (size_t)IC_HOURS * sh->d, m->cfg.init_std, &m->rng);
    normal_fill(p->dow, (size_t)7 * sh->d, m->cfg.init_std, &m->rng);
    if (p->s) p->s[0] = (float)log(sh->sigma);
    for (int l = 0; l < sh->L; l++) {
        if (sh->r == 0) {
            xavier(p->cw[l], sh->D, sh->D, &m->rng);
        } else {
            xavier(p->cv[l], sh->r, sh->D, &m->rng);
            xavier(p->cu[l], sh->D, sh->r, &m->rng);
        }
    }
    for (int i = 0; i < sh->n_mlp; i++)
        xavier(p->mw[i], sh->mlp[i], i ? sh->mlp[i - 1] : sh->D, &m->rng);
    xavier(p->hw, sh->T, sh->S, &m->rng);
}

ic_status ic_model_create(ic_model **out, const ic_config *cfg, ic_error *err)
{
    *out = NULL;
    ic__shape sh;
    ic_status st = ic__shape_init(&sh, cfg, err);
    if (st) return st;
    if (cfg->batch < 1) return ic__fail(err, IC_ERR_CONFIG, "model: batch: must be at least 1");
    ic_model *m = ic__xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->sh = sh;
    ic__rng_seed(&m->rng, cfg->seed);
    /* A first guess of the entries per sample; the workspace grows once if
     * a batch needs more. */
    int per = 2 + sh.F + sh.NQ * 8;
    ic__net_init_f(&m->net, &m->sh, cfg->batch, cfg->batch * per);
    m->opt_mem = ic__xalloc_aligned(2 * sh.n_params * sizeof(float));
    m->adam_m = m->opt_mem;
    m->adam_v = m->opt_mem + sh.n_params;
    m->n_tab = 2 + sh.F;
    for (int t = 0; t < m->n_tab; t++) ic__emb_init(&m->tab[t], sh.d, cfg->emb_optim);
    m->share_mem = ic__xalloc_aligned(ic__share_size_f(&m->sh) * sizeof(float));
    ic__share_init_f(&m->share, m->share_mem, &m->sh, &m->sc);
    init_params(m);
    *out = m;
    return IC_OK;
}

static void helper_stop(ic_model *m);

void ic_model_free(ic_model *m)
{
    if (!m) return;
    helper_stop(m);
    ic__net_free_f(&m->net);
    free(m->opt_mem);
    free(m->share_mem);
    for (int t = 0; t < m->n_tab; t++) ic__emb_free(&m->tab[t]);
    ic__plan_free(&m->plan);
    free(m->u_seg);
    free(m->u_ent);
    free(m->g_val);
    free(m->g_p);
    free(m->g_t);
    free(m->g_off);
    free(m);
}

size_t ic_model_n_dense(const ic_model *m) { return m->sh.n_params; }

size_t ic_model_n_rows(const ic_model *m)
{
    size_t n = 0;
    for (int t = 0; t < m->n_tab; t++) n += m->tab[t].n;
    return n;
}

/* ---- batch plans -------------------------------------------------------------- */

/* Upper bounds of the entries and slot occurrences of a batch: every
 * filled slot value once for the clock and once for the history block. */
static void plan_bounds(const ic_model *m, const ic_sample *s, int B, int *E, int *O)
{
    long e = 0, o = 0;
    int nc = m->sh.NC ? m->sh.NC : m->sh.NH, per = (m->sh.NC > 0) + (m->sh.NH > 0);
    for (int b = 0; b < B; b++) {
        e += 2 + s[b].ev->voff[m->sh.F];
        if (!m->sh.NQ || !s[b].clock) continue;
        for (int t = 0; t < IC_HOURS; t++)
            for (int c = 0; c < nc; c++) o += ic_clock_view_n(s[b].clock, t, c);
    }
    o *= per;
    IC_ASSERT(e + o < INT32_MAX / 2);
    *E = (int)(e + o);
    *O = (int)o;
}

/* The batch index u of id's row in table tab (adding the row in training,
 * drawn N(0, init_std)), or -1: id 0, or unseen at prediction time. */
static int plan_row(ic_model *m, int tab, uint64_t id, int train)
{
    if (id == 0) return -1;
    ic__emb *t = &m->tab[tab];
    int64_t row;
    int d = m->sh.d;
    if (train) {
        int added;
        row = ic__emb_add(t, id, &added);
        if (added) normal_fill(t->rows + (size_t)row * d, d, m->cfg.init_std, &m->rng);
    } else {
        row = ic__emb_find(t, id);
        if (row < 0) return -1;
    }
    if (t->mark[row] >= 0) return t->mark[row];
    ic__plan *pl = &m->plan;
    int u = pl->U++;
    t->mark[row] = u;
    pl->u_tab[u] = tab;
    pl->u_row[u] = row;
    m->u_seg[u] = -1;
    memcpy(m->net.R + (size_t)u * d, t->rows + (size_t)row * d, d * sizeof(float));
    return u;
}

static void add_entry(ic__plan *pl, int u, float w)
{
    pl->ent_u[pl->E] = u;
    pl->ent_w[pl->E] = w;
    pl->E++;
}

/* Reads the slots of clock field c that the model uses (all 24 when it has
 * a history block; else the clock's: slot h alone for the naive clock),
 * looking each value's row up once. Writes one record (slot, row u, pooling
 * weight p) per value with a row; returns their count (<= 24 k). */
static int read_slots(ic_model *m, const ic_clock_view *v, int b, int c, int train, slot_rec *rec)
{
    int tab = 2 + m->cfg.clock_field[c], t0 = 0, t1 = IC_HOURS, nr = 0;
    if (!m->sh.NH && m->sh.clock == IC_CLOCK_NAIVE) t1 = (t0 = m->plan.hour[b]) + 1;
    for (int t = t0; v && t < t1; t++) {
        int n = ic_clock_view_n(v, t, c);
        if (!n) continue;
        const uint64_t *val = ic_clock_view_values(v, t, c);
        const float *sc = ic_clock_view_scores(v, t, c);
        float total = 0;
        if (m->cfg.clock_pool == IC_POOL_SCORE) /* mean pooling never reads the scores */
            for (int k = 0; k < n; k++) total += sc[k];
        int by_score = total > 0;
        for (int k = 0; k < n; k++) {
            int u = plan_row(m, tab, val[k], train);
            if (u < 0) continue; /* unseen: a zero vector in the slot's mean */
            rec[nr].u = u;
            rec[nr].t = (uint8_t)t;
            rec[nr].p = by_score ? sc[k] / total : 1.0f / n;
            nr++;
        }
    }
    return nr;
}

/* plan_row through the batch's memo: a clock's values repeat across its
 * slots and samples, and a (table, id) keeps its u for the whole plan
 * (marks are cleared only by ic__model_plan_end), so a hit returns what
 * plan_row would. Misses (-1: unseen in prediction) are not remembered. */
static int plan_row_memo(ic_model *m, int tab, uint64_t id, int train)
{
    if (id == 0) return -1;
    uint64_t k = (id ^ ((uint64_t)tab << 56)) * 0x9E3779B97F4A7C15ull;
    row_memo *e = &m->memo[k >> (64 - 10)];
    _Static_assert(ROW_MEMO == 1 << 10, "memo index bits");
    if (e->id == id && e->tab == tab) return e->u;
    int u = plan_row(m, tab, id, train);
    if (u >= 0) *e = (row_memo){id, tab, u};
    return u;
}

/* The same records from the gathered slot values of (b, c). */
static int read_gathered(ic_model *m, int b, int c, int train, slot_rec *rec)
{
    int tab = 2 + m->cfg.clock_field[c], nr = 0, nc = m->cfg.n_clock;
    for (int i = m->g_off[b * nc + c]; i < m->g_off[b * nc + c + 1]; i++) {
        int u = plan_row_memo(m, tab, m->g_val[i], train);
        if (u < 0) continue; /* unseen: a zero vector in the slot's mean */
        rec[nr].u = u;
        rec[nr].t = m->g_t[i];
        rec[nr].p = m->g_p[i];
        nr++;
    }
    return nr;
}

/* Slot-pooled segment q of sample b from the records of its clock field
 * whose slot is in [t0, t1): each distinct row once as an entry, and one
 * occurrence (slot, entry, p) per record. */
static void plan_slot_segment(ic_model *m, int b, int q, const slot_rec *rec, int nr, int t0,
                              int t1)
{
    ic__plan *pl = &m->plan;
    int seg = b * m->sh.NS + 2 + m->sh.F + q;
    pl->seg_off[seg] = pl->E;
    pl->occ_off[b * m->sh.NQ + q] = pl->O;
    for (int i = 0; i < nr; i++) {
        int u = rec[i].u;
        if (rec[i].t < t0 || rec[i].t >= t1) continue;
        if (m->u_seg[u] != seg) {
            m->u_seg[u] = seg;
            m->u_ent[u] = pl->E;
            add_entry(pl, u, 0);
        }
        pl->occ_e[pl->O] = m->u_ent[u];
        pl->occ_t[pl->O] = rec[i].t;
        pl->occ_p[pl->O] = rec[i].p;
        pl->O++;
    }
}

/* The clock segments (the naive clock: slot h only), then the history
 * blocks (all 24 slots), of sample b, from one read of its clock view. */
static void plan_slots(ic_model *m, const ic_sample *s, int b, int train)
{
    const ic__shape *sh = &m->sh;
    int nc = m->cfg.n_clock, off[IC_MAX_CLOCK_FIELDS + 1] = {0};
    for (int c = 0; c < nc; c++)
        off[c + 1] = off[c] + (m->ref ? read_slots(m, s->clock, b, c, train, m->rec + off[c])
                                           : read_gathered(m, b, c, train, m->rec + off[c]));
    int t0 = 0, t1 = IC_HOURS;
    if (sh->clock == IC_CLOCK_NAIVE) t1 = (t0 = m->plan.hour[b]) + 1; /* other slots weigh 0 */
    for (int c = 0; c < sh->NC; c++)
        plan_slot_segment(m, b, c, m->rec + off[c], off[c + 1] - off[c], t0, t1);
    for (int c = 0; c < sh->NH; c++)
        plan_slot_segment(m, b, sh->NC + c, m->rec + off[c], off[c + 1] - off[c], 0, IC_HOURS);
}

/* The entries of event segment g of sample b: g = 0 the user, 1 the item,
 * 2 + f field f (the mean of its values; tables are numbered the same). */
static void plan_event_segment(ic_model *m, const ic_event *ev, int b, int g, int train)
{
    ic__plan *pl = &m->plan;
    int u;
    pl->seg_off[b * m->sh.NS + g] = pl->E;
    if (g < 2) {
        if ((u = plan_row(m, g, g == IC__TAB_USER ? ev->user : ev->item, train)) >= 0)
            add_entry(pl, u, 1);
        return;
    }
    int f = g - 2, n = 0;
    for (int i = ev->voff[f]; i < ev->voff[f + 1]; i++) n += ev->val[i] != 0;
    for (int i = ev->voff[f]; i < ev->voff[f + 1]; i++)
        if ((u = plan_row(m, g, ev->val[i], train)) >= 0) add_entry(pl, u, 1.0f / n);
}

static void plan_sample(ic_model *m, const ic_sample *s, int b, int train, int labels)
{
    ic__plan *pl = &m->plan;
    const ic_event *ev = s->ev;
    const ic__shape *sh = &m->sh;
    pl->hour[b] = ic_local_hour(ev->ts, ev->tz_min);
    pl->dow[b] = ic_local_dow(ev->ts, ev->tz_min);
    pl->hfrac[b] = ic_local_hour_frac(ev->ts, ev->tz_min);
    if (labels)
        for (int t = 0; t < sh->T; t++) pl->label[b * sh->T + t] = ev->label[t];
    for (int g = 0; g < 2 + sh->F; g++) plan_event_segment(m, ev, b, g, train);
    if (sh->NQ) plan_slots(m, s, b, train);
}

/* Asks for the cache lines of a clock view's lists ahead of use (they
 * are one contiguous run). */
static void prefetch_clock(const ic_clock_view *v)
{
    if (!v) return;
    const char *p = (const char *)v->lists, *e = p + (size_t)v->n_lists * v->list_bytes;
    for (; p < e; p += 64) __builtin_prefetch(p);
}

/* The same for its header and list index (which say where the lists are). */
static void prefetch_counts(const ic_clock_view *v)
{
    if (!v) return;
    for (const char *p = (const char *)v; p < (const char *)v->lists; p += 64) __builtin_prefetch(p);
}

/* Appends the values of clock field c of view v in slots [t0, t1) to the
 * gathered arrays at *n, with their pooling weights (mean: 1/n of the
 * slot's values, seen or not; score: score / the slot's positive total). */
static void gather_field(ic_model *m, const ic_clock_view *v, int c, int t0, int t1, size_t *n)
{
    int by_score_pool = m->cfg.clock_pool == IC_POOL_SCORE;
    size_t g = *n;
    for (int t = t0; t < t1; t++) {
        int cnt = ic_clock_view_n(v, t, c);
        if (!cnt) continue;
        const uint64_t *val = ic_clock_view_values(v, t, c);
        const float *sc = ic_clock_view_scores(v, t, c);
        float total = 0;
        if (by_score_pool)
            for (int k = 0; k < cnt; k++) total += sc[k];
        int by_score = total > 0;
        for (int k = 0; k < cnt; k++, g++) {
            m->g_val[g] = val[k];
            m->g_t[g] = (uint8_t)t;
            m->g_p[g] = by_score ? sc[k] / total : 1.0f / cnt;
        }
    }
    *n = g;
}

/* Pass 1 of the fast plan: copies the slot values the model reads out of
 * every sample's clock view into compact arrays, before any row lookup.
 * A view's lists (one contiguous run) come from memory.
 * Kept apart from the lookups, the loads are independent and many are in
 * flight at once (and prefetched a few views ahead); interleaved with
 * hash lookups they arrived one miss at a time. Returns the count. */
static size_t gather_clock(ic_model *m, const ic_sample *s, int B)
{
    int nc = m->cfg.n_clock;
    int naive_only = !m->sh.NH && m->sh.clock == IC_CLOCK_NAIVE;
    enum { COUNTS_AHEAD = 8, LINES_AHEAD = 4 };
    if ((size_t)B * nc + 1 > m->cap_goff) {
        m->cap_goff = (size_t)B * nc + 1;
        m->g_off = ic__xrealloc(m->g_off, m->cap_goff * sizeof *m->g_off);
    }
    for (int b = 0; b < B && b < COUNTS_AHEAD; b++) prefetch_counts(s[b].clock);
    size_t n = 0, per = (size_t)nc * IC_HOURS * IC_MAX_TOPK;
    for (int b = 0; b < B; b++) {
        if (b + COUNTS_AHEAD < B) prefetch_counts(s[b + COUNTS_AHEAD].clock);
        if (b + LINES_AHEAD < B) prefetch_clock(s[b + LINES_AHEAD].clock);
        if (n + per > m->cap_g) {
            m->cap_g = 2 * (n + per);
            m->g_val = ic__xrealloc(m->g_val, m->cap_g * sizeof *m->g_val);
            m->g_p = ic__xrealloc(m->g_p, m->cap_g * sizeof *m->g_p);
            m->g_t = ic__xrealloc(m->g_t, m->cap_g * sizeof *m->g_t);
        }
        const ic_clock_view *v = s[b].clock;
        int t0 = 0, t1 = IC_HOURS;
        if (naive_only) t1 = (t0 = ic_local_hour(s[b].ev->ts, s[b].ev->tz_min)) + 1;
        for (int c = 0; c < nc; c++) {
            m->g_off[b * nc + c] = (int32_t)n;
            if (v) gather_field(m, v, c, t0, t1, &n);
        }
        IC_ASSERT(n < INT32_MAX / 4);
    }
    m->g_off[B * nc] = (int32_t)n;
    return n;
}

/* Exact entry and occurrence bounds from the gathered values: every value
 * once for the clock and once for the history block. */
static void gathered_bounds(const ic_model *m, const ic_sample *s, int B, size_t G, int *E,
                            int *O)
{
    long e = 0, o = (long)G * ((m->sh.NC > 0) + (m->sh.NH > 0));
    for (int b = 0; b < B; b++) e += 2 + s[b].ev->voff[m->sh.F];
    IC_ASSERT(e + o < INT32_MAX / 2);
    *E = (int)(e + o);
    *O = (int)o;
}

/* Room for a plan of B samples, E entries, O occurrences, and an empty
 * plan of B samples. */
static void plan_start(ic_model *m, int B, int E, int O)
{
    ic__plan *pl = &m->plan;
    ic__plan_reserve(pl, &m->sh, B, E, O);
    ic__net_reserve_f(&m->net, B, E);
    if (E > m->cap_u) {
        m->cap_u = E + E / 2;
        m->u_seg = ic__xrealloc(m->u_seg, m->cap_u * sizeof *m->u_seg);
        m->u_ent = ic__xrealloc(m->u_ent, m->cap_u * sizeof *m->u_ent);
    }
    pl->B = B;
    pl->E = pl->U = pl->O = 0;
    memset(m->memo, 0, sizeof m->memo);
}

void ic__model_plan_begin(ic_model *m, const ic_sample *s, int B, int train, int labels)
{
    int E, O;
    if (m->ref || !m->sh.NQ)
        plan_bounds(m, s, B, &E, &O);
    else
        gathered_bounds(m, s, B, gather_clock(m, s, B), &E, &O);
    plan_start(m, B, E, O);
    ic__plan *pl = &m->plan;
    enum { AHEAD = 16 };
    for (int b = 0; b < B; b++) {
        if (m->ref && b + AHEAD < B && m->sh.NQ) {
            prefetch_counts(s[b + AHEAD].clock);
            prefetch_clock(s[b + AHEAD].clock);
        }
        plan_sample(m, &s[b], b, train, labels);
    }
    pl->seg_off[B * m->sh.NS] = pl->E;
    pl->occ_off[B * m->sh.NQ] = pl->O;
    IC_ASSERT(pl->E <= E && pl->O <= O);
}

/* ---- ranking requests: samples that share user, time and clock ------------------ */

/* 1 when views a and b hold the same values in every slot the model reads
 * (all 24, or slot `hour` alone for a naive clock without history), and
 * the same scores where score pooling reads them. Compares only filled
 * places (the rest hold unspecified values). */
static int same_view(const ic_model *m, const ic_clock_view *a, const ic_clock_view *b, int hour)
{
    if (a == b) return 1;
    if (!a || !b) return 0;
    int nc = m->cfg.n_clock, scores = m->cfg.clock_pool == IC_POOL_SCORE, t0 = 0, t1 = IC_HOURS;
    if (!m->sh.NH && m->sh.clock == IC_CLOCK_NAIVE) t1 = (t0 = hour) + 1;
    for (int t = t0; t < t1; t++)
        for (int c = 0; c < nc; c++) {
            int n = ic_clock_view_n(a, t, c);
            if (n != ic_clock_view_n(b, t, c)) return 0;
            if (!n) continue;
            if (memcmp(ic_clock_view_values(a, t, c), ic_clock_view_values(b, t, c), (size_t)n * sizeof(uint64_t)))
                return 0;
            if (scores && memcmp(ic_clock_view_scores(a, t, c), ic_clock_view_scores(b, t, c), (size_t)n * sizeof(float)))
                return 0;
        }
    return 1;
}

/* 1 when event segment g (0 user, 1 item, 2 + f field f) of a and b holds
 * the same values in the same order (so it pools to the same vector). */
static int same_segment(const ic_event *a, const ic_event *b, int g)
{
    if (g < 2) return g == IC__TAB_USER ? a->user == b->user : a->item == b->item;
    int f = g - 2, n = a->voff[f + 1] - a->voff[f];
    return n == b->voff[f + 1] - b->voff[f] &&
           !memcmp(a->val + a->voff[f], b->val + b->voff[f], n * sizeof a->val[0]);
}

/* Whether s[0..B) is a ranking request: one user, one local time (hour,
 * day, and the fractional hour where a continuous Gaussian clock reads
 * it) and one clock (the same view, or equal content) in every sample.
 * Then fills sc: the time encoding and the slot-pooled segments are
 * shared; so is every item or field segment equal in all samples (a
 * context field usually is; it is checked, not assumed from its role);
 * the rest are the runs of x0 columns that differ. Returns 0 otherwise
 * (sc unspecified). Cost: a few compares per sample. */
static int find_shared(const ic_model *m, const ic_sample *s, int B, ic__share_cols *sc)
{
    const ic__shape *sh = &m->sh;
    const ic_event *e0 = s[0].ev;
    int NF = 2 + sh->F, h0 = ic_local_hour(e0->ts, e0->tz_min);
    int dow0 = ic_local_dow(e0->ts, e0->tz_min);
    int hf_read = sh->NC && sh->clock == IC_CLOCK_GAUSSIAN && sh->continuous;
    double hf0 = ic_local_hour_frac(e0->ts, e0->tz_min);
    for (int g = 0; g < sh->NS; g++) sc->seg[g] = 1;
    for (int b = 1; b < B; b++) {
        const ic_event *e = s[b].ev;
        if (e->user != e0->user) return 0;
        if (e->ts != e0->ts || e->tz_min != e0->tz_min) {
            if (ic_local_hour(e->ts, e->tz_min) != h0 || ic_local_dow(e->ts, e->tz_min) != dow0)
                return 0;
            if (hf_read && ic_local_hour_frac(e->ts, e->tz_min) != hf0) return 0;
        }
        if (sh->NQ && !same_view(m, s[0].clock, s[b].clock, h0)) return 0;
        for (int g = 1; g < NF; g++)
            if (sc->seg[g] && !same_segment(e0, e, g)) sc->seg[g] = 0;
    }
    sc->n_run = 0;
    for (int g = 1; g < NF; g++) {
        if (sc->seg[g]) continue;
        int c0 = sh->seg_x[g], *r = sc->run + 2 * sc->n_run;
        if (sc->n_run && r[-1] == c0) {
            r[-1] = c0 + sh->d; /* adjacent: extend the last run */
        } else {
            r[0] = c0;
            r[1] = c0 + sh->d;
            sc->n_run++;
        }
    }
    return 1;
}

/* The plan of a ranking request (find_shared, m->sc): sample 0 in full,
 * the others only in their segments that differ; their shared segments
 * and clock occurrences stay empty (ic__net_forward_shared takes those
 * columns from sample 0), so the clock is read and looked up once.
 * Prediction only (unseen ids are not added). */
static void plan_shared(ic_model *m, const ic_sample *s, int B)
{
    const ic__shape *sh = &m->sh;
    int E, O, NS = sh->NS, NF = 2 + sh->F;
    gathered_bounds(m, s, B, sh->NQ ? gather_clock(m, s, 1) : 0, &E, &O);
    plan_start(m, B, E, O);
    ic__plan *pl = &m->plan;
    plan_sample(m, &s[0], 0, 0, 0);
    for (int b = 1; b < B; b++) {
        pl->hour[b] = pl->hour[0];
        pl->dow[b] = pl->dow[0];
        pl->hfrac[b] = pl->hfrac[0];
        for (int g = 0; g < NF; g++) {
            if (m->sc.seg[g])
                pl->seg_off[b * NS + g] = pl->E;
            else
                plan_event_segment(m, s[b].ev, b, g, 0);
        }
        for (int q = 0; q < sh->NQ; q++) {
            pl->seg_off[b * NS + NF + q] = pl->E;
            pl->occ_off[b * sh->NQ + q] = pl->O;
        }
    }
    pl->seg_off[B * NS] = pl->E;
    pl->occ_off[B * sh->NQ] = pl->O;
    IC_ASSERT(pl->E <= E && pl->O <= O);
}

void ic__model_set_reference(ic_model *m, int on) { m->ref = on; }

int ic__model_last_shared(const ic_model *m) { return m->last_shared; }

void ic__model_plan_end(ic_model *m)
{
    ic__plan *pl = &m->plan;
    for (int u = 0; u < pl->U; u++) m->tab[pl->u_tab[u]].mark[pl->u_row[u]] = -1;
    pl->U = 0;
}

/* ---- predict and train ----------------------------------------------------------- */

/* ---- one or two threads ----------------------------------------------------------- */

/* Forward (and, in training, zeroed gradients and the backward) of plan pl
 * on net n; returns the loss (a part's share when pl is a part). */
static float run_part(ic__net_f *n, const ic__plan *pl, int train, const ic__share_f *share)
{
    if (share) return ic__net_forward_shared_f(n, pl, share);
    if (!train) return ic__net_forward_f(n, pl);
    ic__net_zero_grad_f(n);
    float loss = ic__net_forward_f(n, pl);
    ic__net_backward_f(n, pl);
    return loss;
}

static void *helper_main(void *arg)
{
    helper *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->job == JOB_NONE) pthread_cond_wait(&h->cv, &h->mu);
        if (h->job == JOB_QUIT) break;
        int train = h->job == JOB_TRAIN;
        pthread_mutex_unlock(&h->mu);
        h->loss = run_part(&h->net, &h->part, train, h->share);
        pthread_mutex_lock(&h->mu);
        h->job = JOB_NONE;
        h->done = 1;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void helper_stop(ic_model *m)
{
    helper *h = m->hp;
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->job = JOB_QUIT;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    ic__net_free_f(&h->net);
    free(h);
    m->hp = NULL;
}

int ic_model_set_threads(ic_model *m, int n)
{
    if (n <= 1 || m->hp) {
        if (n <= 1) helper_stop(m);
        return m->hp ? 2 : 1;
    }
    helper *h = ic__xcalloc(1, sizeof *h);
    ic__net_init_f(&h->net, &m->sh, m->net.Bcap / 2 + 1, m->net.Ecap);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->th, NULL, helper_main, h)) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        ic__net_free_f(&h->net);
        free(h);
        return 1;
    }
    m->hp = h;
    return 2;
}

/* dst[0..n) += src[0..n) */
static void add_to(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* Runs the planned batch: forward, and in training the backward with the
 * gradients in m->net (gmem, and dR for the batch's rows); probs in
 * m->net.probs. share (prediction only): the batch's shared parts, already
 * prepared. With a helper, samples [0, b0) run here and [b0, B) on the
 * helper, then its gradients are added to these: always the same split
 * and the same order of sums, so the result is deterministic. */
static float run_batch(ic_model *m, int train, const ic__share_f *share)
{
    ic__plan *pl = &m->plan;
    helper *h = m->hp;
    int B = pl->B, b0 = (B + 1) / 2, T = m->sh.T;
    IC_ASSERT(!train || !share);
    if (!h || B < 2) return run_part(&m->net, pl, train, share);
    ic__net_reserve_f(&h->net, B - b0, pl->E);
    ic__net_bind_f(&h->net, m->net.pmem, m->net.R);
    ic__plan first;
    ic__plan_part(&first, pl, &m->sh, 0, b0);
    ic__plan_part(&h->part, pl, &m->sh, b0, B);
    pthread_mutex_lock(&h->mu);
    h->done = 0;
    h->share = share;
    h->job = train ? JOB_TRAIN : JOB_PREDICT;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    float loss = run_part(&m->net, &first, train, share);
    pthread_mutex_lock(&h->mu);
    while (!h->done) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    memcpy(m->net.probs + (size_t)b0 * T, h->net.probs, (size_t)(B - b0) * T * sizeof(float));
    if (train) {
        add_to(m->net.gmem, h->net.gmem, m->sh.n_params);
        add_to(m->net.dR, h->net.dR, (size_t)pl->U * m->sh.d);
    }
    return loss + h->loss;
}

void ic_model_predict(ic_model *m, const ic_sample *s, int B, float *probs)
{
    if (B <= 0) return;
    /* A ranking request (one user, time and clock; many items) computes
     * what its samples share once; anything else takes the plain path,
     * which is also the reference of the shared one. */
    int shared = !m->ref && B >= 2 && find_shared(m, s, B, &m->sc);
    if (shared)
        plan_shared(m, s, B);
    else
        ic__model_plan_begin(m, s, B, 0, 0);
    float *label = m->plan.label;
    m->plan.label = NULL; /* no loss */
    if (shared) ic__net_share_prepare_f(&m->net, &m->plan, &m->share);
    run_batch(m, 0, shared ? &m->share : NULL);
    m->last_shared = shared;
    m->plan.label = label;
    memcpy(probs, m->net.probs, (size_t)B * m->sh.T * sizeof(float));
    ic__model_plan_end(m);
}

/* The sparse update of every row the batch touched. The gradient of a row
 * is already aggregated over the batch (the plan gives each row one u). */
static void update_rows(ic_model *m)
{
    const ic__plan *pl = &m->plan;
    const ic_config *c = &m->cfg;
    int d = m->sh.d;
    for (int u = 0; u < pl->U; u++) {
        ic__emb *t = &m->tab[pl->u_tab[u]];
        size_t o = (size_t)pl->u_row[u] * d;
        const float *g = m->net.dR + (size_t)u * d;
        if (c->emb_optim == IC_OPT_ADAM)
            ic__adam_row(t->rows + o, g, t->s1 + o, t->s2 + o, &t->steps[pl->u_row[u]], d,
                         c->emb_lr, c->adam_beta1, c->adam_beta2, c->adam_eps, c->l2_emb);
        else
            ic__adagrad_row(t->rows + o, g, t->s1 + o, d, c->emb_lr, c->l2_emb);
    }
}

float ic_model_train_step(ic_model *m, const ic_sample *s, int B, float *probs)
{
    if (B <= 0) return 0;
    ic__model_plan_begin(m, s, B, 1, 1);
    float loss = run_batch(m, 1, NULL);
    if (probs) memcpy(probs, m->net.probs, (size_t)B * m->sh.T * sizeof(float));
    const ic_config *c = &m->cfg;
    m->step++;
    (m->ref ? ic__adam_update_ref : ic__adam_update)(m->net.pmem, m->net.gmem, m->adam_m,
                                                          m->adam_v, m->sh.n_params, c->lr,
                                                          c->adam_beta1, c->adam_beta2,
                                                          c->adam_eps, (long)m->step);
    update_rows(m);
    ic__model_plan_end(m);
    return loss;
}

/* ---- hooks for tests ----------------------------------------------------------------- */

ic__net_f *ic__model_net(ic_model *m) { return &m->net; }
const ic__shape *ic__model_shape(const ic_model *m) { return &m->sh; }
const ic__plan *ic__model_plan(const ic_model *m) { return &m->plan; }
ic__emb *ic__model_table(ic_model *m, int tab)
{
    return tab >= 0 && tab < m->n_tab ? &m->tab[tab] : NULL;
}

float *ic__model_tensor(ic_model *m, const char *name, int grad, size_t *n)
{
    char nm[32];
    size_t off, cnt;
    for (int i = 0; ic__shape_tensor(&m->sh, i, nm, &off, &cnt); i++) {
        if (strcmp(nm, name)) continue;
        *n = cnt;
        return (grad ? m->net.gmem : m->net.pmem) + off;
    }
    *n = 0;
    return NULL;
}

void ic__model_set_row(ic_model *m, int tab, uint64_t id, const float *v)
{
    IC_ASSERT(tab >= 0 && tab < m->n_tab);
    int64_t r = ic__emb_add(&m->tab[tab], id, NULL);
    memcpy(m->tab[tab].rows + (size_t)r * m->sh.d, v, m->sh.d * sizeof(float));
}

const float *ic__model_row(ic_model *m, int tab, uint64_t id)
{
    if (tab < 0 || tab >= m->n_tab) return NULL;
    int64_t r = ic__emb_find(&m->tab[tab], id);
    return r < 0 ? NULL : m->tab[tab].rows + (size_t)r * m->sh.d;
}

/* ---- save and load ------------------------------------------------------------------ */

static const char MAGIC[8] = {'I', 'C', 'M', 'O', 'D', 'E', 'L', '1'};
#define FORMAT_VERSION 1u

/* One model-shaping setting, as text, so a mismatch can name it and both
 * values. */
typedef struct {
    char name[32];
    char value[64];
} fp_entry;

#define FP_MAX (16 + IC_MAX_FIELDS + IC_MAX_CLOCK_FIELDS + IC_MAX_TASKS)

/* Fills fp[0..n) and returns n. The entries are zeroed first: they are
 * written whole, and stack bytes after the strings would make two saves of
 * the same model differ (and leak memory contents into the file). */
static int fingerprint(const ic_config *c, fp_entry *fp)
{
    int n = 0;
    memset(fp, 0, FP_MAX * sizeof *fp);
#define FP(nm, ...)                                                          \
    do {                                                                     \
        snprintf(fp[n].name, sizeof fp[n].name, "%s", nm);                   \
        snprintf(fp[n].value, sizeof fp[n].value, __VA_ARGS__);              \
        n++;                                                                 \
    } while (0)
    char key[32];
    FP("dim", "%d", c->dim);
    FP("fields", "%d", c->n_fields);
    for (int f = 0; f < c->n_fields; f++) {
        snprintf(key, sizeof key, "field %d", f + 1);
        FP(key, "%s", c->field[f]);
    }
    FP("tasks", "%d", c->n_tasks);
    for (int t = 0; t < c->n_tasks; t++) {
        snprintf(key, sizeof key, "task %d", t + 1);
        FP(key, "%s", c->task[t].name);
    }
    FP("clock", "%s", ic_clock_kind_name(c->clock));
    /* Only when on, so that files from before the setting existed load. */
    if (c->history) FP("history", "%d", c->history);
    if (c->clock != IC_CLOCK_NONE || c->history) {
        FP("clock fields", "%d", c->n_clock);
        for (int k = 0; k < c->n_clock; k++) {
            snprintf(key, sizeof key, "clock field %d", k + 1);
            FP(key, "%d", c->clock_field[k]);
        }
        FP("clock_continuous", "%d", c->clock_continuous);
        FP("clock_pool", "%s", c->clock_pool == IC_POOL_SCORE ? "score" : "mean");
    }
    if (c->clock == IC_CLOCK_GAUSSIAN) {
        FP("clock_sigma_learn", "%d", c->clock_sigma_learn);
        if (!c->clock_sigma_learn) FP("clock_sigma", "%.9g", c->clock_sigma);
    }
    FP("cross_layers", "%d", c->cross_layers);
    FP("cross_rank", "%d", c->cross_rank);
    char mlp[64] = "";
    for (int i = 0; i < c->n_mlp; i++)
        snprintf(mlp + strlen(mlp), sizeof mlp - strlen(mlp), "%s%d", i ? "," : "", c->mlp[i]);
    FP("mlp", "%s", mlp);
    FP("structure", "%s", c->structure == IC_STRUCT_STACKED ? "stacked" : "parallel");
    FP("emb_optim", "%s", c->emb_optim == IC_OPT_ADAM ? "adam" : "adagrad");
#undef FP
    IC_ASSERT(n <= FP_MAX);
    return n;
}

static void save_table(ic_bwriter *w, const ic__emb *t)
{
    uint64_t n = t->n;
    size_t d = t->d;
    ic__bw_write(w, &n, sizeof n);
    ic__bw_write(w, t->ids, n * sizeof *t->ids);
    ic__bw_write(w, t->rows, n * d * sizeof(float));
    ic__bw_write(w, t->s1, n * d * sizeof(float));
    if (t->opt == IC_OPT_ADAM) {
        ic__bw_write(w, t->s2, n * d * sizeof(float));
        ic__bw_write(w, t->steps, n * sizeof *t->steps);
    }
}

ic_status ic_model_save(const ic_model *m, const char *path, ic_error *err)
{
    ic_bwriter w;
    ic_status st = ic__bw_open(&w, path, MAGIC, FORMAT_VERSION, err);
    if (st) return st;
    fp_entry fp[FP_MAX];
    uint32_t nfp = (uint32_t)fingerprint(&m->cfg, fp);
    ic__bw_write(&w, &nfp, sizeof nfp);
    ic__bw_write(&w, fp, nfp * sizeof *fp);
    uint64_t np = m->sh.n_params;
    ic__bw_write(&w, &np, sizeof np);
    ic__bw_write(&w, m->net.pmem, np * sizeof(float));
    ic__bw_write(&w, m->opt_mem, 2 * np * sizeof(float));
    ic__bw_write(&w, &m->step, sizeof m->step);
    ic__bw_write(&w, &m->rng.s, sizeof m->rng.s);
    uint32_t nt = (uint32_t)m->n_tab;
    ic__bw_write(&w, &nt, sizeof nt);
    for (int t = 0; t < m->n_tab; t++) save_table(&w, &m->tab[t]);
    return ic__bw_commit(&w, err);
}

/* Compares the file's fingerprint with cfg's: IC_ERR_MISMATCH naming the
 * first setting that differs. */
static ic_status check_fingerprint(ic_breader *r, const ic_config *cfg, ic_error *err)
{
    fp_entry want[FP_MAX], got;
    int n = fingerprint(cfg, want);
    uint32_t nfp;
    ic_status st = ic__br_read(r, &nfp, sizeof nfp, err);
    if (st) return st;
    if (nfp > 4 * FP_MAX) return ic__fail(err, IC_ERR_CORRUPT, "%s: bad settings count", r->path);
    for (uint32_t i = 0; i < nfp || (int)i < n; i++) {
        if (i >= nfp)
            return ic__fail(err, IC_ERR_MISMATCH, "%s: setting '%s' (%s) is not in the file",
                            r->path, want[i].name, want[i].value);
        if ((st = ic__br_read(r, &got, sizeof got, err))) return st;
        got.name[31] = got.value[63] = '\0';
        if ((int)i >= n)
            return ic__fail(err, IC_ERR_MISMATCH,
                            "%s: setting '%s' is %s in the file and absent in the configuration",
                            r->path, got.name, got.value);
        if (!strcmp(got.name, want[i].name) && strcmp(got.value, want[i].value))
            return ic__fail(err, IC_ERR_MISMATCH,
                            "%s: setting '%s' is %s in the file but %s in the configuration",
                            r->path, got.name, got.value, want[i].value);
        if (strcmp(got.name, want[i].name))
            return ic__fail(err, IC_ERR_MISMATCH,
                            "%s: setting '%s' is %s in the file but '%s' is %s in the "
                            "configuration",
                            r->path, got.name, got.value, want[i].name, want[i].value);
    }
    return IC_OK;
}

static ic_status load_table(ic_breader *r, ic__emb *t, int tab, ic_error *err)
{
    uint64_t n;
    ic_status st = ic__br_read(r, &n, sizeof n, err);
    if (st) return st;
    size_t d = t->d, per = 8 + 4 * d * (t->opt == IC_OPT_ADAM ? 3 : 2) + (t->opt == IC_OPT_ADAM ? 4 : 0);
    if (n > ic__br_left(r) / per)
        return ic__fail(err, IC_ERR_CORRUPT, "%s: table %d claims %llu rows, more than the file holds",
                        r->path, tab, (unsigned long long)n);
    ic__emb_reserve(t, n);
    uint64_t *ids = ic__xmalloc(n * sizeof *ids + 1);
    st = ic__br_read(r, ids, n * sizeof *ids, err);
    for (uint64_t i = 0; !st && i < n; i++) {
        int added = 0;
        if (ids[i] != 0) ic__emb_add(t, ids[i], &added);
        if (!added)
            st = ic__fail(err, IC_ERR_CORRUPT, "%s: table %d: id %llu is zero or repeated", r->path,
                          tab, (unsigned long long)ids[i]);
    }
    free(ids);
    if (!st) st = ic__br_read(r, t->rows, n * d * sizeof(float), err);
    if (!st) st = ic__br_read(r, t->s1, n * d * sizeof(float), err);
    if (!st && t->opt == IC_OPT_ADAM) st = ic__br_read(r, t->s2, n * d * sizeof(float), err);
    if (!st && t->opt == IC_OPT_ADAM) st = ic__br_read(r, t->steps, n * sizeof *t->steps, err);
    return st;
}

static ic_status load_body(ic_breader *r, ic_model *m, ic_error *err)
{
    uint64_t np;
    uint32_t nt;
    ic_status st = ic__br_read(r, &np, sizeof np, err);
    if (st) return st;
    if (np != m->sh.n_params)
        return ic__fail(err, IC_ERR_CORRUPT, "%s: %llu dense parameters, the configuration makes %zu",
                        r->path, (unsigned long long)np, m->sh.n_params);
    if ((st = ic__br_read(r, m->net.pmem, np * sizeof(float), err))) return st;
    if ((st = ic__br_read(r, m->opt_mem, 2 * np * sizeof(float), err))) return st;
    if ((st = ic__br_read(r, &m->step, sizeof m->step, err))) return st;
    if ((st = ic__br_read(r, &m->rng.s, sizeof m->rng.s, err))) return st;
    if ((st = ic__br_read(r, &nt, sizeof nt, err))) return st;
    if (nt != (uint32_t)m->n_tab)
        return ic__fail(err, IC_ERR_CORRUPT, "%s: %u tables, expected %d", r->path, nt, m->n_tab);
    for (int t = 0; t < m->n_tab; t++)
        if ((st = load_table(r, &m->tab[t], t, err))) return st;
    if (ic__br_left(r) != 0)
        return ic__fail(err, IC_ERR_CORRUPT, "%s: %zu bytes left over after the model", r->path,
                        ic__br_left(r));
    return IC_OK;
}

ic_status ic_model_load(ic_model **out, const char *path, const ic_config *cfg, ic_error *err)
{
    *out = NULL;
    ic_breader r;
    ic_status st = ic__br_open(&r, path, MAGIC, FORMAT_VERSION, err);
    if (st) return st;
    ic_model *m = NULL;
    st = check_fingerprint(&r, cfg, err);
    if (!st) st = ic_model_create(&m, cfg, err);
    if (!st) st = load_body(&r, m, err);
    ic__br_close(&r);
    if (st) {
        ic_model_free(m);
        return st;
    }
    *out = m;
    return IC_OK;
}
