/* replay.c: the offline driver. Replays an in-memory log through an engine
 * in time order: train period (one streaming pass by default), then
 * validation and test with the model frozen while the clock store keeps
 * updating; gathers predictions per period and computes the metrics;
 * writes and resumes checkpoints; prints progress. It does not build
 * samples itself: the engine does, the same way the server does. */
#include "internal.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define CKPT_MAGIC "ICCKPT01"
#define CKPT_VERSION 2u /* 2: generation-named model and clock files; 1 is still read */
#define RECENT 20000 /* predictions behind the progress line's running AUC */

void ic_replay_opts_default(ic_replay_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 1;
    o->train = 1;
}

void ic_replay_split(const ic_config *cfg, const ic_log *log, int64_t *t_valid, int64_t *t_test)
{
    if (log->n == 0) {
        *t_valid = *t_test = 0;
        return;
    }
    int64_t t0 = log->ev[0].ts, t1 = log->ev[log->n - 1].ts;
    double span = (double)(t1 - t0) + 1.0;
    *t_valid = t0 + (int64_t)floor(span * cfg->split_train);
    *t_test = t0 + (int64_t)floor(span * (cfg->split_train + cfg->split_valid));
}

static ic_phase phase_of(int64_t ts, int64_t t_valid, int64_t t_test)
{
    return ts < t_valid ? IC_PHASE_TRAIN : ts < t_test ? IC_PHASE_VALID : IC_PHASE_TEST;
}

/* Predictions of one period: pred/label (T, cap) task-major, user (cap). */
typedef struct {
    size_t n, cap;
    float *pred[IC_MAX_TASKS];
    float *label[IC_MAX_TASKS];
    uint64_t *user;
} period_buf;

static void buf_init(period_buf *b, int T, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
    for (int t = 0; t < T; t++) {
        b->pred[t] = ic__xmalloc((cap ? cap : 1) * sizeof(float));
        b->label[t] = ic__xmalloc((cap ? cap : 1) * sizeof(float));
    }
    b->user = ic__xmalloc((cap ? cap : 1) * sizeof(uint64_t));
}

static void buf_free(period_buf *b)
{
    for (int t = 0; t < IC_MAX_TASKS; t++) {
        free(b->pred[t]);
        free(b->label[t]);
    }
    free(b->user);
}

static void buf_add(period_buf *b, int T, const ic_event *ev, const float *probs, size_t n)
{
    IC_ASSERT(b->n + n <= b->cap);
    for (size_t i = 0; i < n; i++, b->n++) {
        for (int t = 0; t < T; t++) {
            b->pred[t][b->n] = probs[i * (size_t)T + (size_t)t];
            b->label[t][b->n] = ev[i].label[t];
        }
        b->user[b->n] = ev[i].user;
    }
}

/* ---- progress ------------------------------------------------------------- */

typedef struct {
    int on;
    const char *label;
    double t_start, t_last;
    uint64_t done, total;
    double loss_sum;
    uint64_t loss_n;
} progress;


static void progress_tick(progress *p, const period_buf *train, ic_phase ph, int final)
{
    if (!p->on) return;
    double t = ic__now_s();
    if (!final && t - p->t_last < 1.0) return;
    p->t_last = t;
    double el = t - p->t_start, rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    double auc = NAN;
    if (train && train->n > 100) {
        size_t k = train->n < RECENT ? train->n : RECENT, o = train->n - k;
        auc = ic_auc(train->pred[0] + o, train->label[0] + o, k);
    }
    static const char *names[] = {"train", "valid", "test"};
    fprintf(stderr, "\r%s%s%-5s %5.1f%%  %8.0f ev/s  loss %.4f  auc(recent) %.4f  ETA %4.0fs ",
            p->label ? p->label : "", p->label ? " " : "", names[ph],
            100.0 * (double)p->done / (double)(p->total ? p->total : 1), rate,
            p->loss_n ? p->loss_sum / (double)p->loss_n : NAN, auc, eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

/* ---- checkpoints -------------------------------------------------------------
 * A checkpoint is <prefix>, the replay state, and the model and clock store
 * of the generation g it names: <prefix>.<g>.model (ic_model_save) and
 * <prefix>.<g>.clock (ic_clock_save). A save writes generation g + 1's two
 * files, then the state naming g + 1, and only then removes generation g's
 * files; every file is written atomically (temporary file, fsync, rename).
 * So a crash at any point leaves <prefix> naming a complete, matching
 * generation. A crash between the state and the removal leaves one stale
 * generation behind, which the next save removes. Version 1 checkpoints
 * (<prefix>.model, <prefix>.clock, no generation) are still read. */

typedef struct {
    uint64_t pos;        /* events consumed in the current epoch */
    int32_t epoch;
    int64_t t_valid, t_test;
    double loss_sum;
    uint64_t loss_n;
    uint64_t gen;        /* the generation of the model and clock files (0: version 1 names) */
} ckpt_state;

/* The state as version 1 wrote it (ckpt_state without gen). */
#define CKPT_V1_STATE_BYTES offsetof(ckpt_state, gen)

static void ckpt_paths(const char *prefix, uint64_t gen, char *model, char *clock, size_t cap)
{
    if (gen == 0) {
        snprintf(model, cap, "%s.model", prefix);
        snprintf(clock, cap, "%s.clock", prefix);
    } else {
        snprintf(model, cap, "%s.%llu.model", prefix, (unsigned long long)gen);
        snprintf(clock, cap, "%s.%llu.clock", prefix, (unsigned long long)gen);
    }
}

/* Removes generation gen's files, if any (gen 0: nothing). */
static void ckpt_remove(const char *prefix, uint64_t gen)
{
    if (gen == 0) return;
    char mp[600], cp[600];
    ckpt_paths(prefix, gen, mp, cp, sizeof mp);
    remove(mp);
    remove(cp);
}

/* The generation the checkpoint at prefix names, or 0 if there is none
 * (or it cannot be read: a save then starts at 1). */
static uint64_t ckpt_peek_gen(const char *prefix)
{
    ic_breader r;
    ckpt_state st = {0};
    if (ic__br_open(&r, prefix, CKPT_MAGIC, CKPT_VERSION, NULL) != IC_OK) return 0;
    if (r.version < 2 || ic__br_read(&r, &st, sizeof st, NULL) != IC_OK) st.gen = 0;
    ic__br_close(&r);
    return st.gen;
}

/* Saves a checkpoint whose files are generation *gen + 1 and, once the
 * state names them, removes generations *gen and *gen - 1; sets *gen to
 * the new generation. On error *gen and the checkpoint on disk stay as
 * they were (a half-written new generation may remain; the next save
 * overwrites it). */
static ic_status ckpt_save(ic_engine *e, const char *prefix, const ckpt_state *st0, uint64_t *gen,
                           const period_buf *train, int T, ic_error *err)
{
    ckpt_state st = *st0;
    st.gen = *gen + 1;
    char mp[600], cp[600];
    ckpt_paths(prefix, st.gen, mp, cp, sizeof mp);
    ic_status s = ic_model_save(ic_engine_model(e), mp, err);
    if (s == IC_OK) s = ic_clock_save(ic_engine_clock(e), cp, err);
    if (s != IC_OK) return s;
    ic_bwriter w;
    if ((s = ic__bw_open(&w, prefix, CKPT_MAGIC, CKPT_VERSION, err)) != IC_OK) return s;
    ic__bw_write(&w, &st, sizeof st);
    uint64_t n = train->n;
    ic__bw_write(&w, &n, sizeof n);
    for (int t = 0; t < T; t++) {
        ic__bw_write(&w, train->pred[t], n * sizeof(float));
        ic__bw_write(&w, train->label[t], n * sizeof(float));
    }
    ic__bw_write(&w, train->user, n * sizeof(uint64_t));
    if ((s = ic__bw_commit(&w, err)) != IC_OK) return s;
    ckpt_remove(prefix, *gen);
    if (*gen > 1) ckpt_remove(prefix, *gen - 1);
    *gen = st.gen;
    return IC_OK;
}

static ic_status ckpt_load(ic_engine *e, const ic_config *cfg, const char *prefix,
                           ckpt_state *st, period_buf *train, int T, ic_error *err)
{
    ic_breader r;
    ic_status s = ic__br_open(&r, prefix, CKPT_MAGIC, CKPT_VERSION, err);
    if (s != IC_OK) return s;
    uint64_t n = 0;
    memset(st, 0, sizeof *st);
    s = ic__br_read(&r, st, r.version == 1 ? CKPT_V1_STATE_BYTES : sizeof *st, err);
    if (s == IC_OK) s = ic__br_read(&r, &n, sizeof n, err);
    if (s == IC_OK && n > train->cap)
        s = ic__fail(err, IC_ERR_MISMATCH, "%s: checkpoint holds %llu training predictions, "
                     "this log's train period has %zu (another log?)", prefix,
                     (unsigned long long)n, train->cap);
    for (int t = 0; s == IC_OK && t < T; t++) {
        s = ic__br_read(&r, train->pred[t], n * sizeof(float), err);
        if (s == IC_OK) s = ic__br_read(&r, train->label[t], n * sizeof(float), err);
    }
    if (s == IC_OK) s = ic__br_read(&r, train->user, n * sizeof(uint64_t), err);
    ic__br_close(&r);
    if (s != IC_OK) return s;
    train->n = n;
    char mp[600], cp[600];
    ckpt_paths(prefix, st->gen, mp, cp, sizeof mp);
    ic_model *m = NULL;
    ic_clock_store *c = NULL;
    if ((s = ic_model_load(&m, mp, cfg, err)) != IC_OK) return s;
    if ((s = ic_clock_load(&c, cp, cfg, err)) != IC_OK) {
        ic_model_free(m);
        return s;
    }
    ic_engine_adopt(e, m, c);
    return IC_OK;
}

/* ---- the replay loop ------------------------------------------------------------ */

typedef struct {
    ic_engine *e;
    const ic_log *log;
    const ic_replay_opts *o;
    int T;
    int64_t t_valid, t_test;
    period_buf buf[IC_N_PHASES];
    float *probs;        /* (batch, T) */
    progress prog;
    ckpt_state st;
    uint64_t since_ckpt;
    uint64_t ckpt_gen;   /* the generation on disk at o->checkpoint (0: none) */
} replay_ctx;

static void write_predictions(replay_ctx *c, const ic_event *ev, const float *probs, size_t n)
{
    FILE *f = c->o->predictions;
    const ic_config *cfg = ic_engine_config(c->e);
    for (size_t i = 0; i < n; i++) {
        const char *u = ic_names_get(c->log->names, ev[i].user);
        const char *it = ic_names_get(c->log->names, ev[i].item);
        fprintf(f, "%s,%s,%lld", u ? u : "?", it ? it : "?", (long long)ev[i].ts);
        for (int t = 0; t < cfg->n_tasks; t++)
            fprintf(f, ",%g,%.6f", ev[i].label[t], probs[i * (size_t)c->T + (size_t)t]);
        fputc('\n', f);
    }
}

/* The step kind for a chunk of one period. */
static int kind_for(const ic_replay_opts *o, ic_phase ph)
{
    int learn = o->train && (o->online_eval || ph == IC_PHASE_TRAIN);
    int predict = o->online_eval || ph != IC_PHASE_TRAIN || o->train;
    return IC_STEP_APPLY | (learn ? IC_STEP_TRAIN : predict ? IC_STEP_PREDICT : 0);
}

/* One epoch from event index start. Chunks never straddle a period. */
static ic_status run_epoch(replay_ctx *c, size_t start, int last_epoch, ic_error *err)
{
    const ic_log *log = c->log;
    size_t B = (size_t)ic_engine_config(c->e)->batch;
    for (size_t i = start; i < log->n;) {
        ic_phase ph = phase_of(log->ev[i].ts, c->t_valid, c->t_test);
        if (!last_epoch && ph != IC_PHASE_TRAIN) break;
        size_t m = 1;
        while (m < B && i + m < log->n && phase_of(log->ev[i + m].ts, c->t_valid, c->t_test) == ph)
            m++;
        if (c->o->stop_after && i + m > c->o->stop_after) m = c->o->stop_after - i;
        if (m == 0) break;
        int kind = kind_for(c->o, ph);
        double loss = 0;
        ic_status s = ic_engine_step(c->e, &log->ev[i], m, kind,
                                     kind == IC_STEP_APPLY ? NULL : c->probs, &loss, err);
        if (s != IC_OK) return s;
        if (kind & IC_STEP_TRAIN) {
            c->st.loss_sum += loss * (double)m;
            c->st.loss_n += m;
            c->prog.loss_sum = c->st.loss_sum;
            c->prog.loss_n = c->st.loss_n;
        }
        if (kind != IC_STEP_APPLY && last_epoch) {
            buf_add(&c->buf[ph], c->T, &log->ev[i], c->probs, m);
            if (ph == IC_PHASE_TEST && c->o->predictions)
                write_predictions(c, &log->ev[i], c->probs, m);
        }
        i += m;
        c->st.pos = i;
        c->prog.done += m;
        progress_tick(&c->prog, &c->buf[IC_PHASE_TRAIN], ph, 0);
        c->since_ckpt += m;
        if (c->o->checkpoint && c->o->checkpoint_every && c->since_ckpt >= c->o->checkpoint_every &&
            ph == IC_PHASE_TRAIN && c->o->train) {
            c->since_ckpt = 0;
            s = ckpt_save(c->e, c->o->checkpoint, &c->st, &c->ckpt_gen, &c->buf[IC_PHASE_TRAIN], c->T, err);
            if (s != IC_OK) return s;
        }
        if (c->o->stop_after && i >= c->o->stop_after) break;
    }
    return IC_OK;
}

static ic_status check_periods(const replay_ctx *c, ic_error *err)
{
    const ic_log *log = c->log;
    if (log->n == 0) return ic__fail(err, IC_ERR_ARG, "the log holds no events");
    if (c->o->online_eval) return IC_OK;
    int64_t last = log->ev[log->n - 1].ts;
    if (c->t_valid >= c->t_test)
        return ic__fail(err, IC_ERR_ARG, "the validation period is empty (valid starts at %lld, "
                        "test at %lld)", (long long)c->t_valid, (long long)c->t_test);
    if (last < c->t_test)
        return ic__fail(err, IC_ERR_ARG, "the log has no test period: its last event (%lld) is "
                        "before the test start (%lld)", (long long)last, (long long)c->t_test);
    if (log->ev[0].ts >= c->t_valid && c->o->train)
        return ic__fail(err, IC_ERR_ARG, "the log has no training period: its first event (%lld) "
                        "is not before the validation start (%lld)",
                        (long long)log->ev[0].ts, (long long)c->t_valid);
    return IC_OK;
}

static void size_buffers(replay_ctx *c)
{
    size_t count[IC_N_PHASES] = {0};
    for (size_t i = 0; i < c->log->n; i++) count[phase_of(c->log->ev[i].ts, c->t_valid, c->t_test)]++;
    for (int p = 0; p < IC_N_PHASES; p++) buf_init(&c->buf[p], c->T, count[p]);
}

static ic_status finish(replay_ctx *c, ic_replay_result *res, ic_error *err)
{
    for (int p = 0; p < IC_N_PHASES; p++) {
        res->n[p] = c->buf[p].n;
        for (int t = 0; t < c->T; t++) {
            ic_metrics *m = &res->m[p][t];
            memset(m, 0, sizeof *m);
            m->auc = m->uauc = m->gauc = m->logloss = m->calibration = NAN;
            if (c->buf[p].n == 0) continue;
            ic_status s = ic_metrics_compute(c->buf[p].pred[t], c->buf[p].label[t], c->buf[p].user,
                                             c->buf[p].n, m, err);
            if (s != IC_OK) return s;
        }
    }
    res->train_loss = c->st.loss_n ? c->st.loss_sum / (double)c->st.loss_n : NAN;
    res->t_valid = c->t_valid;
    res->t_test = c->t_test;
    return IC_OK;
}

ic_status ic_replay(ic_engine *e, const ic_log *log, const ic_replay_opts *o,
                    ic_replay_result *res, ic_error *err)
{
    memset(res, 0, sizeof *res);
    replay_ctx c = {.e = e, .log = log, .o = o, .T = ic_engine_config(e)->n_tasks};
    ic_config cfg = *ic_engine_config(e);
    ic_replay_split(&cfg, log, &c.t_valid, &c.t_test);
    if (o->t_valid) c.t_valid = o->t_valid;
    if (o->t_test) c.t_test = o->t_test;
    if (o->online_eval) c.t_valid = c.t_test = INT64_MAX; /* all one period */
    ic_status s = check_periods(&c, err);
    if (s != IC_OK) return s;
    size_buffers(&c);
    c.probs = ic__xmalloc((size_t)cfg.batch * (size_t)c.T * sizeof(float));
    int epochs = o->epochs > 0 ? o->epochs : 1;
    c.prog = (progress){.on = o->progress, .label = o->label, .t_start = ic__now_s()};
    c.prog.total = (uint64_t)log->n + (uint64_t)(epochs - 1) * c.buf[IC_PHASE_TRAIN].cap;
    size_t start = 0;
    int epoch0 = 0;
    if (o->checkpoint) c.ckpt_gen = ckpt_peek_gen(o->checkpoint);
    if (o->resume) {
        s = ckpt_load(e, &cfg, o->resume, &c.st, &c.buf[IC_PHASE_TRAIN], c.T, err);
        if (s != IC_OK) goto out;
        if (c.st.t_valid != c.t_valid || c.st.t_test != c.t_test) {
            s = ic__fail(err, IC_ERR_MISMATCH, "%s: checkpoint was made with periods starting at "
                         "%lld/%lld, this run has %lld/%lld", o->resume, (long long)c.st.t_valid,
                         (long long)c.st.t_test, (long long)c.t_valid, (long long)c.t_test);
            goto out;
        }
        start = (size_t)c.st.pos;
        epoch0 = c.st.epoch;
        c.prog.done = start;
    }
    c.st.t_valid = c.t_valid;
    c.st.t_test = c.t_test;
    double t0 = ic__now_s();
    for (int ep = epoch0; ep < epochs; ep++) {
        c.st.epoch = ep;
        if (ep > epoch0) { /* a new pass starts from an empty clock */
            if ((s = ic_engine_reset_clock(e, err)) != IC_OK) goto out;
            start = 0;
        }
        if (start == 0) { /* train_loss is the last epoch's mean */
            c.st.loss_sum = 0;
            c.st.loss_n = 0;
        }
        if ((s = run_epoch(&c, start, ep == epochs - 1, err)) != IC_OK) goto out;
    }
    progress_tick(&c.prog, &c.buf[IC_PHASE_TRAIN], IC_PHASE_TEST, 1);
    res->seconds = ic__now_s() - t0;
    s = finish(&c, res, err);
out:
    for (int p = 0; p < IC_N_PHASES; p++) buf_free(&c.buf[p]);
    free(c.probs);
    return s;
}
