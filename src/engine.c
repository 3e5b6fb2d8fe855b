/* engine.c: one clock store and one model fed events in time order. This is
 * the only place samples are built, for offline replay and for the server
 * alike: for each event the user's clock is read as it stands before the
 * event, then the event is applied, then the model predicts or trains on
 * the batch. It does not split logs or compute metrics (replay.c does). */
#include "internal.h"

struct ic_engine {
    ic_config cfg;
    ic_clock_store *clock;
    ic_model *model;
    int threads;           /* ic_engine_set_threads: applied to adopted models too */
    size_t cap;            /* samples per chunk = cfg.batch */
    ic_clock_view *views;  /* (cap) */
    ic_sample *samples;    /* (cap) */
};

ic_status ic_engine_create(ic_engine **out, const ic_config *cfg, ic_model *model,
                           ic_clock_store *clock, ic_error *err)
{
    *out = NULL;
    ic_status s = ic_config_validate(cfg, err);
    if (s != IC_OK) goto fail;
    if (!clock && (s = ic_clock_create(&clock, cfg, err)) != IC_OK) goto fail;
    if (!model && (s = ic_model_create(&model, cfg, err)) != IC_OK) goto fail;
    ic_engine *e = ic__xcalloc(1, sizeof *e);
    e->cfg = *cfg;
    e->clock = clock;
    e->model = model;
    e->cap = cfg->batch > 0 ? (size_t)cfg->batch : 512;
    e->views = ic__xalloc_aligned(e->cap * sizeof *e->views);
    e->samples = ic__xcalloc(e->cap, sizeof *e->samples);
    *out = e;
    return IC_OK;
fail:
    ic_clock_free(clock);
    ic_model_free(model);
    return s;
}

void ic_engine_free(ic_engine *e)
{
    if (!e) return;
    ic_clock_free(e->clock);
    ic_model_free(e->model);
    free(e->views);
    free(e->samples);
    free(e);
}

void ic_sample_build(ic_clock_store *clock, const ic_config *cfg, const ic_event *ev,
                     ic_clock_view *view, ic_sample *out)
{
    out->ev = ev;
    out->clock = NULL;
    if (cfg->clock == IC_CLOCK_NONE && !cfg->history) return;
    ic_clock_query(clock, ev->user, ev->ts, ev->tz_min, view);
    out->clock = view;
}

/* For each event: its sample as the clock stands before it, then (APPLY)
 * the event itself, so samples are exact even inside a chunk. n <= cap. */
static ic_status build_chunk(ic_engine *e, const ic_event *ev, size_t n, int kind, ic_error *err)
{
    int want = kind & (IC_STEP_PREDICT | IC_STEP_TRAIN);
    for (size_t i = 0; i < n; i++) {
        /* bench_clock on a quiet machine: +23% events/s with this hint */
        ic_clock_prefetch(e->clock, ev, n, i);
        if (want) ic_sample_build(e->clock, &e->cfg, &ev[i], &e->views[i], &e->samples[i]);
        if (kind & IC_STEP_APPLY) {
            ic_status s = ic_clock_apply(e->clock, &ev[i], err);
            if (s != IC_OK) return s;
        }
    }
    return IC_OK;
}

ic_status ic_engine_step(ic_engine *e, const ic_event *ev, size_t n, int kind,
                         float *probs, double *loss, ic_error *err)
{
    int T = e->cfg.n_tasks;
    double loss_sum = 0;
    for (size_t off = 0; off < n; off += e->cap) {
        size_t m = n - off < e->cap ? n - off : e->cap;
        ic_status s = build_chunk(e, ev + off, m, kind, err);
        if (s != IC_OK) return s;
        float *p = probs ? probs + off * (size_t)T : NULL;
        if (kind & IC_STEP_TRAIN) {
            loss_sum += (double)ic_model_train_step(e->model, e->samples, (int)m, p) * (double)m;
        } else if (kind & IC_STEP_PREDICT) {
            IC_ASSERT(p != NULL);
            ic_model_predict(e->model, e->samples, (int)m, p);
        }
    }
    if (loss) *loss = n ? loss_sum / (double)n : 0.0;
    return IC_OK;
}

void ic_engine_adopt(ic_engine *e, ic_model *model, ic_clock_store *clock)
{
    if (model) {
        ic_model_free(e->model);
        e->model = model;
        if (e->threads > 1) ic_model_set_threads(model, e->threads);
    }
    if (clock) {
        ic_clock_free(e->clock);
        e->clock = clock;
    }
}

int ic_engine_set_threads(ic_engine *e, int n)
{
    e->threads = ic_model_set_threads(e->model, n);
    return e->threads;
}

ic_status ic_engine_reset_clock(ic_engine *e, ic_error *err)
{
    ic_clock_store *fresh;
    ic_status s = ic_clock_create(&fresh, &e->cfg, err);
    if (s != IC_OK) return s;
    ic_clock_free(e->clock);
    e->clock = fresh;
    return IC_OK;
}

ic_model *ic_engine_model(ic_engine *e) { return e->model; }
ic_clock_store *ic_engine_clock(ic_engine *e) { return e->clock; }
const ic_config *ic_engine_config(const ic_engine *e) { return &e->cfg; }
