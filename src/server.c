/* server.c: the engine behind HTTP (libmicrohttpd). Ranks candidates for a
 * user at a time, takes events (journal, clock store, training queue),
 * trains on them in a background thread, shows clocks, health and metrics,
 * and checkpoints. Turning JSON into events is event_json.c's job; the
 * bytes on disk are journal.c's.
 *
 * Locks, always taken in this order (none is held while waiting for I/O
 * other than the checkpoint's own writes):
 *   ckpt_mu   one checkpoint at a time
 *   ingest_mu one writer of the journal and the clock store: event batches
 *             are accepted, journaled and applied in one order
 *   model_mu  the model: ic_model_predict and the training step share the
 *             model's workspace, so predictions are serialised with each
 *             other and with training (the rank path has no workspace of its
 *             own: the API gives none, and one predict of 100 candidates is
 *             far shorter than a training step)
 *   clock_mu  the clock store (a query moves a user's window, so readers
 *             write too) and last_ts
 *   queue_mu  the training queue; names_mu the value names (leaves)
 * The trainer holds model_mu, then clock_mu for its whole step (it reads
 * clocks while it trains), so a rank waits for at most one training step.
 *
 * Time rules the clock store needs (iclock.h): events are applied in time
 * order (older ones are rejected), and no clock is read more than a day
 * before the latest applied event. Ranking requests that old are refused;
 * the trainer is kept within a day of ingestion by back-pressure: an event
 * a day newer than the oldest untrained one waits for the trainer. */
#include "server_internal.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY 86400
#define QUEUE_CAP 65536      /* events waiting for training (~23 MB) */
#define AUC_WINDOW 10000     /* online AUC over the last this many predictions */

/* ---- Metrics ---------------------------------------------------------------- */

enum { EP_RANK, EP_EVENTS, EP_CLOCK, EP_HEALTHZ, EP_METRICS, EP_OTHER, N_EP };
static const char *const EP_NAME[N_EP] = {"rank", "events", "clock", "healthz", "metrics", "other"};
#define N_BUCKETS 12
static const double BUCKET_LE[N_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                            0.05,   0.1,   0.2,   0.5,   1,    5};
enum { CODE_2XX, CODE_4XX, CODE_5XX, N_CODE };
static const char *const CODE_NAME[N_CODE] = {"2xx", "4xx", "5xx"};

typedef struct {
    _Atomic uint64_t code[N_CODE];
    _Atomic uint64_t bucket[N_BUCKETS + 1]; /* not cumulative; last = +Inf */
    _Atomic uint64_t sum_ns;
} ep_stats;

/* The trainer's predictions before each update (test-then-train). */
typedef struct {
    float pred[IC_MAX_TASKS][AUC_WINDOW];
    float label[IC_MAX_TASKS][AUC_WINDOW];
    size_t pos, n;
    double loss_ewma;        /* of batch mean losses, 0.1 per batch */
    double loss_last;
    uint64_t batches;
} online_stats;

/* ---- The server ---------------------------------------------------------------- */

struct ic_server {
    ic_config cfg;
    ic_server_opts opt;
    char dir[512], bind[64], model_path[512];
    ic_engine *engine;           /* owns the model and the clock store */
    ic_model *model;
    ic_clock_store *clock;
    ic__journal *journal;
    struct MHD_Daemon *mhd;
    int port;
    double t_start;

    pthread_mutex_t ckpt_mu, ingest_mu, model_mu, clock_mu, queue_mu, names_mu, stats_mu;

    int64_t last_ts;             /* clock_mu (written under ingest_mu too) */

    ic_names *names;             /* names_mu: value strings seen */
    size_t n_values, cap_values;
    uint64_t *value_id;
    char **value_str;

    ic_event *q;                 /* queue_mu: ring of QUEUE_CAP untrained events */
    size_t q_head, q_len;
    size_t inflight;             /* events the trainer holds */
    int64_t inflight_min;
    int stop;
    pthread_cond_t q_nonempty, q_progress;
    pthread_t trainer;
    int trainer_started;
    ic_event *t_ev;              /* (batch) trainer's buffers */
    float *t_probs;              /* (batch, T) */

    ep_stats ep[N_EP];
    _Atomic uint64_t events_applied, events_rejected, train_samples, train_skipped;
    _Atomic uint64_t checkpoints, checkpoint_failures, ingest_waits;
    _Atomic int64_t last_checkpoint;
    online_stats online;         /* stats_mu */
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void ic_server_opts_default(ic_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1";
    o->max_body = 1 << 20;
    o->max_candidates = 1000;
    o->threads = 4;
}

int ic_server_port(const ic_server *s) { return s->port; }

/* ---- Value names ---------------------------------------------------------------- */

/* Remembers a value string (ic__value_fn); kept in a list for checkpoints. */
static void note_value(void *ctx, uint64_t id, const char *s, size_t n)
{
    ic_server *S = ctx;
    pthread_mutex_lock(&S->names_mu);
    if (!ic_names_get(S->names, id)) {
        ic_names_put(S->names, id, s, n);
        if (S->n_values == S->cap_values) {
            S->cap_values = S->cap_values ? 2 * S->cap_values : 64;
            S->value_id = ic__xrealloc(S->value_id, S->cap_values * sizeof *S->value_id);
            S->value_str = ic__xrealloc(S->value_str, S->cap_values * sizeof *S->value_str);
        }
        char *copy = ic__xmalloc(n + 1);
        memcpy(copy, s, n);
        copy[n] = '\0';
        S->value_id[S->n_values] = id;
        S->value_str[S->n_values++] = copy;
    }
    pthread_mutex_unlock(&S->names_mu);
}

/* ---- Ingestion ------------------------------------------------------------------ */

/* The oldest event not yet trained on, or INT64_MAX. queue_mu held. */
static int64_t untrained_min(const ic_server *S)
{
    if (S->inflight) return S->inflight_min;
    return S->q_len ? S->q[S->q_head].ts : INT64_MAX;
}

/* Applies one accepted event to the clock store and queues it for
 * training, waiting while the queue is full or the trainer is more than a
 * day (of event time) behind. ingest_mu held; ev->ts >= last_ts. */
static void ingest_one(ic_server *S, const ic_event *ev)
{
    pthread_mutex_lock(&S->queue_mu);
    int waited = 0;
    while (!S->stop && (S->q_len == QUEUE_CAP || (untrained_min(S) != INT64_MAX &&
                                                  ev->ts - DAY > untrained_min(S)))) {
        waited = 1;
        pthread_cond_wait(&S->q_progress, &S->queue_mu);
    }
    pthread_mutex_unlock(&S->queue_mu);
    if (waited) S->ingest_waits++;

    pthread_mutex_lock(&S->clock_mu);
    ic_error err;
    ic_status s = ic_clock_apply(S->clock, ev, &err);
    S->last_ts = ev->ts; /* the store's time moves even when it adds nothing */
    pthread_mutex_unlock(&S->clock_mu);
    if (s != IC_OK) {
        /* The caller checked the order; what remains is a user past the
         * store's limit of (hour, field, value) pairs (iclock.h): the
         * event is dropped, not trained on, and the server goes on. */
        fprintf(stderr, "iclock serve: event dropped: %s\n", err.msg);
        S->events_rejected++;
        return;
    }
    S->events_applied++;

    pthread_mutex_lock(&S->queue_mu);
    if (S->q_len < QUEUE_CAP) { /* full only when stopping: then the event is not trained */
        S->q[(S->q_head + S->q_len++) % QUEUE_CAP] = *ev;
        pthread_cond_signal(&S->q_nonempty);
    }
    pthread_mutex_unlock(&S->queue_mu);
}

/* ---- The trainer ---------------------------------------------------------------- */

static void online_add(ic_server *S, const ic_event *ev, const float *probs, size_t n, double loss)
{
    int T = S->cfg.n_tasks;
    online_stats *o = &S->online;
    pthread_mutex_lock(&S->stats_mu);
    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < T; t++) {
            o->pred[t][o->pos] = probs[i * (size_t)T + (size_t)t];
            o->label[t][o->pos] = ev[i].label[t];
        }
        o->pos = (o->pos + 1) % AUC_WINDOW;
        if (o->n < AUC_WINDOW) o->n++;
    }
    o->loss_last = loss;
    o->loss_ewma = o->batches ? 0.9 * o->loss_ewma + 0.1 * loss : loss;
    o->batches++;
    pthread_mutex_unlock(&S->stats_mu);
}

/* Pops up to a batch into t_ev (model_mu held, so a checkpoint never sees
 * events out of both the queue and the model). Returns the count. */
static size_t trainer_pop(ic_server *S)
{
    size_t cap = (size_t)S->cfg.batch, n = 0;
    pthread_mutex_lock(&S->queue_mu);
    while (n < cap && S->q_len > 0) {
        S->t_ev[n++] = S->q[S->q_head];
        S->q_head = (S->q_head + 1) % QUEUE_CAP;
        S->q_len--;
    }
    S->inflight = n;
    S->inflight_min = n ? S->t_ev[0].ts : INT64_MAX;
    pthread_mutex_unlock(&S->queue_mu);
    return n;
}

/* Trains on t_ev[0..n) with TRAIN alone: the events are in the store
 * already, and its time filter (ts < t) keeps the samples exact. */
static void trainer_step(ic_server *S, size_t n)
{
    double loss = 0;
    ic_error err;
    pthread_mutex_lock(&S->clock_mu);
    /* Back-pressure keeps this from happening; guard the store's contract
     * anyway rather than trip its assertion. */
    size_t skip = 0;
    while (skip < n && S->t_ev[skip].ts < S->last_ts - DAY) skip++;
    ic_status s = IC_OK;
    if (n > skip)
        s = ic_engine_step(S->engine, S->t_ev + skip, n - skip, IC_STEP_TRAIN, S->t_probs, &loss, &err);
    pthread_mutex_unlock(&S->clock_mu);
    IC_ASSERT(s == IC_OK); /* TRAIN alone applies nothing, so cannot fail */
    S->train_skipped += skip;
    if (n > skip) {
        S->train_samples += n - skip;
        online_add(S, S->t_ev + skip, S->t_probs, n - skip, loss);
    }
}

static void *trainer_main(void *arg)
{
    ic_server *S = arg;
    for (;;) {
        pthread_mutex_lock(&S->queue_mu);
        while (!S->stop && S->q_len == 0) pthread_cond_wait(&S->q_nonempty, &S->queue_mu);
        int stop = S->stop;
        pthread_mutex_unlock(&S->queue_mu);
        if (stop) break; /* what is queued goes into the final checkpoint */
        pthread_mutex_lock(&S->model_mu);
        size_t n = trainer_pop(S);
        if (n) trainer_step(S, n);
        pthread_mutex_lock(&S->queue_mu);
        S->inflight = 0;
        S->inflight_min = INT64_MAX;
        pthread_cond_broadcast(&S->q_progress);
        pthread_mutex_unlock(&S->queue_mu);
        pthread_mutex_unlock(&S->model_mu);
    }
    return NULL;
}

/* ---- Replies ------------------------------------------------------------------ */

typedef struct {
    int ep;
    double t0;
    char *body;
    size_t len, cap;
    int too_large, replied;
} req_ctx;

static void record(ic_server *S, req_ctx *r, unsigned code)
{
    ep_stats *e = &S->ep[r->ep];
    e->code[code < 300 ? CODE_2XX : code < 500 ? CODE_4XX : CODE_5XX]++;
    double dt = now_s() - r->t0;
    int b = 0;
    while (b < N_BUCKETS && dt > BUCKET_LE[b]) b++;
    e->bucket[b]++;
    e->sum_ns += (uint64_t)(dt * 1e9);
}

/* Sends b (taking its memory) with code and content type. */
static enum MHD_Result reply(ic_server *S, struct MHD_Connection *c, req_ctx *r, unsigned code,
                             const char *type, ic__sbuf *b)
{
    if (!b->p) ic__sb_puts(b, "");
    struct MHD_Response *resp = MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
    b->p = NULL;
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (code == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->ep == EP_RANK || r->ep == EP_EVENTS ? "POST" : "GET");
    enum MHD_Result ret = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    record(S, r, code);
    return ret;
}

static enum MHD_Result reply_error(ic_server *S, struct MHD_Connection *c, req_ctx *r,
                                   unsigned code, const char *msg)
{
    ic__sbuf b = {0};
    ic__sb_puts(&b, "{\"error\": ");
    ic__sb_json_str(&b, msg, strlen(msg));
    ic__sb_puts(&b, "}\n");
    return reply(S, c, r, code, "application/json", &b);
}

/* Parses the body as JSON; on failure writes "malformed JSON at line L,
 * column C" into err and returns NULL. */
static cJSON *parse_body(const req_ctx *r, ic_error *err)
{
    const char *end = NULL;
    if (!r->body || r->len == 0) {
        ic__fail(err, IC_ERR_PARSE, "empty body: expected JSON");
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLengthOpts(r->body, r->len, &end, 0);
    if (!j) {
        char where[64];
        size_t off = end && end >= r->body ? (size_t)(end - r->body) : 0;
        ic__json_where(r->body, r->len, off, where, sizeof where);
        ic__fail(err, IC_ERR_PARSE, "malformed JSON at %s", where);
        return NULL;
    }
    /* Nothing but white space may follow the value. */
    while (end && (size_t)(end - r->body) < r->len && strchr(" \t\r\n", *end)) end++;
    if (end && (size_t)(end - r->body) < r->len) {
        char where[64];
        ic__json_where(r->body, r->len, (size_t)(end - r->body), where, sizeof where);
        ic__fail(err, IC_ERR_PARSE, "malformed JSON: unexpected text after the value at %s", where);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- POST /v1/rank ------------------------------------------------------------ */

typedef struct {
    int i;
    float p;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->i - y->i; /* stable: request order */
}

static void rank_reply(const ic_server *S, const cJSON *items, int n, const float *probs,
                       ic__sbuf *b)
{
    int T = S->cfg.n_tasks;
    ranked *ord = ic__xmalloc((size_t)(n ? n : 1) * sizeof *ord);
    const char **id = ic__xmalloc((size_t)(n ? n : 1) * sizeof *id);
    int i = 0;
    for (const cJSON *x = items->child; x; x = x->next, i++)
        id[i] = cJSON_GetObjectItemCaseSensitive(x, "item")->valuestring;
    ic__sb_puts(b, "{\"scores\": [");
    for (i = 0; i < n; i++) {
        ic__sb_puts(b, i ? ", {\"item\": " : "{\"item\": ");
        ic__sb_json_str(b, id[i], strlen(id[i]));
        for (int t = 0; t < T; t++) {
            ic__sb_printf(b, ", \"%s\": ", S->cfg.task[t].name);
            ic__sb_json_num(b, probs[(size_t)i * T + t]);
        }
        ic__sb_puts(b, "}");
        ord[i] = (ranked){i, probs[(size_t)i * T]};
    }
    qsort(ord, (size_t)n, sizeof *ord, ranked_cmp);
    ic__sb_puts(b, "], \"order\": [");
    for (i = 0; i < n; i++) {
        if (i) ic__sb_puts(b, ", ");
        ic__sb_json_str(b, id[ord[i].i], strlen(id[ord[i].i]));
    }
    ic__sb_puts(b, "]}\n");
    free(ord);
    free(id);
}

/* Scores n candidates: one clock query for the user at the request time,
 * the view shared by every candidate (they share user and time). */
static ic_status rank_score(ic_server *S, ic_event *ev, int n, float *probs, ic_error *err)
{
    ic_clock_view view;
    ic_sample *smp = ic__xmalloc((size_t)n * sizeof *smp);
    pthread_mutex_lock(&S->clock_mu);
    int64_t last = S->last_ts;
    int ok = last == INT64_MIN || ev[0].ts >= last - DAY;
    if (ok) ic_sample_build(S->clock, &S->cfg, &ev[0], &view, &smp[0]);
    pthread_mutex_unlock(&S->clock_mu);
    if (!ok) {
        free(smp);
        return ic__fail(err, IC_ERR_ARG,
                        "time: %lld is more than a day before the latest event (%lld); the "
                        "store keeps no older state",
                        (long long)ev[0].ts, (long long)last);
    }
    for (int i = 1; i < n; i++) smp[i] = (ic_sample){&ev[i], smp[0].clock};
    int B = S->cfg.batch;
    pthread_mutex_lock(&S->model_mu);
    for (int off = 0; off < n; off += B)
        ic_model_predict(S->model, smp + off, n - off < B ? n - off : B,
                         probs + (size_t)off * S->cfg.n_tasks);
    pthread_mutex_unlock(&S->model_mu);
    free(smp);
    return IC_OK;
}

static enum MHD_Result do_rank(ic_server *S, struct MHD_Connection *c, req_ctx *r)
{
    ic_error err = {{0}};
    cJSON *req = parse_body(r, &err);
    if (!req) return reply_error(S, c, r, 400, err.msg);
    ic_event base;
    const cJSON *items;
    ic_status s = ic__rank_request_from_json(req, &S->cfg, (int64_t)time(NULL), &base, &items, &err);
    int n = s ? 0 : cJSON_GetArraySize(items);
    if (!s && n > S->opt.max_candidates)
        s = ic__fail(&err, IC_ERR_ARG, "items: %d candidates, more than the limit of %d", n,
                     S->opt.max_candidates);
    ic_event *ev = ic__xmalloc((size_t)(n ? n : 1) * sizeof *ev);
    float *probs = ic__xmalloc((size_t)(n ? n : 1) * S->cfg.n_tasks * sizeof *probs);
    int i = 0;
    for (const cJSON *x = s ? NULL : items->child; x && !s; x = x->next, i++)
        s = ic__candidate_from_json(req, x, i, &S->cfg, &base, &ev[i], &err);
    if (!s && n > 0) s = rank_score(S, ev, n, probs, &err);
    enum MHD_Result ret;
    if (s) {
        ret = reply_error(S, c, r, 400, err.msg);
    } else {
        ic__sbuf b = {0};
        rank_reply(S, items, n, probs, &b);
        ret = reply(S, c, r, 200, "application/json", &b);
    }
    free(ev);
    free(probs);
    cJSON_Delete(req);
    return ret;
}

/* ---- POST /v1/events ----------------------------------------------------------- */

typedef struct {
    int n;
    ic_event *ev;    /* (n) */
    char **text;     /* (n) compact JSON of each, the journal records */
    size_t *len;
    int *reject;     /* (n) 0, or why it was rejected */
    int64_t *seen;   /* (n) the latest time, or the server's clock, then */
} batch;

enum { REJECT_OLD = 1, REJECT_FUTURE = 2 };

static void batch_free(batch *b)
{
    for (int i = 0; i < b->n; i++) cJSON_free(b->text[i]);
    free(b->ev), free(b->text), free(b->len), free(b->reject), free(b->seen);
}

/* Parses every event; a malformed one fails the whole batch (nothing is
 * applied, so the client can fix it and send it again). */
static ic_status batch_parse(ic_server *S, const cJSON *arr, batch *b, ic_error *err)
{
    if (!cJSON_IsArray(arr))
        return ic__fail(err, IC_ERR_PARSE, "expected a JSON array of events");
    int n = cJSON_GetArraySize(arr);
    b->ev = ic__xmalloc((size_t)(n ? n : 1) * sizeof *b->ev);
    b->text = ic__xcalloc((size_t)(n ? n : 1), sizeof *b->text);
    b->len = ic__xcalloc((size_t)(n ? n : 1), sizeof *b->len);
    b->reject = ic__xcalloc((size_t)(n ? n : 1), sizeof *b->reject);
    b->seen = ic__xcalloc((size_t)(n ? n : 1), sizeof *b->seen);
    int i = 0;
    for (const cJSON *x = arr->child; x; x = x->next, i++) {
        char where[32];
        snprintf(where, sizeof where, "events[%d]", i);
        ic_status s = ic__event_from_json(x, &S->cfg, where, note_value, S, &b->ev[i], err);
        if (s) return s;
        b->text[i] = cJSON_PrintUnformatted(x);
        if (!b->text[i]) ic__assert_fail("cJSON_PrintUnformatted: out of memory", __FILE__, __LINE__);
        b->len[i] = strlen(b->text[i]);
        b->n = i + 1;
    }
    return IC_OK;
}

/* Marks the events older than the latest applied one (running through the
 * batch) and those more than a day ahead of the server's clock (one such
 * event would make every later real one "too old"), journals the others,
 * applies and queues them. ingest_mu held. Returns the count accepted;
 * *lsn = the journal position to sync. */
static ic_status batch_apply(ic_server *S, batch *b, int *accepted, uint64_t *lsn, ic_error *err)
{
    int64_t t = S->last_ts, horizon = (int64_t)time(NULL) + DAY;
    const char **rec = ic__xmalloc((size_t)(b->n ? b->n : 1) * sizeof *rec);
    size_t *len = ic__xmalloc((size_t)(b->n ? b->n : 1) * sizeof *len);
    int k = 0;
    for (int i = 0; i < b->n; i++) {
        b->reject[i] = b->ev[i].ts < t ? REJECT_OLD : b->ev[i].ts > horizon ? REJECT_FUTURE : 0;
        b->seen[i] = b->reject[i] == REJECT_OLD ? t : horizon - DAY;
        if (b->reject[i]) continue;
        t = b->ev[i].ts;
        rec[k] = b->text[i], len[k++] = b->len[i];
    }
    ic_status s = k ? ic__journal_append(S->journal, rec, len, (size_t)k, lsn, err) : IC_OK;
    free(rec), free(len);
    if (s) return s;
    for (int i = 0; i < b->n; i++)
        if (!b->reject[i]) ingest_one(S, &b->ev[i]);
    *accepted = k;
    return IC_OK;
}

static void events_reply(const batch *b, int accepted, ic__sbuf *o)
{
    ic__sb_printf(o, "{\"accepted\": %d, \"rejected\": [", accepted);
    int first = 1;
    for (int i = 0; i < b->n; i++) {
        if (!b->reject[i]) continue;
        char msg[200];
        if (b->reject[i] == REJECT_OLD)
            snprintf(msg, sizeof msg,
                     "time %lld is earlier than the latest applied event (%lld): events must "
                     "come in time order",
                     (long long)b->ev[i].ts, (long long)b->seen[i]);
        else
            snprintf(msg, sizeof msg,
                     "time %lld is more than a day ahead of the server's clock (%lld)",
                     (long long)b->ev[i].ts, (long long)b->seen[i]);
        ic__sb_printf(o, "%s{\"index\": %d, \"error\": ", first ? "" : ", ", i);
        ic__sb_json_str(o, msg, strlen(msg));
        ic__sb_puts(o, "}");
        first = 0;
    }
    ic__sb_puts(o, "]}\n");
}

static enum MHD_Result do_events(ic_server *S, struct MHD_Connection *c, req_ctx *r)
{
    ic_error err = {{0}};
    cJSON *arr = parse_body(r, &err);
    if (!arr) return reply_error(S, c, r, 400, err.msg);
    batch b = {0};
    ic_status s = batch_parse(S, arr, &b, &err);
    cJSON_Delete(arr);
    if (s) {
        batch_free(&b);
        return reply_error(S, c, r, 400, err.msg);
    }
    int accepted = 0;
    uint64_t lsn = 0;
    pthread_mutex_lock(&S->ingest_mu);
    s = batch_apply(S, &b, &accepted, &lsn, &err);
    pthread_mutex_unlock(&S->ingest_mu);
    /* Durable before the reply; other batches share this fdatasync. */
    if (!s && accepted) s = ic__journal_sync(S->journal, lsn, &err);
    enum MHD_Result ret;
    if (s) {
        ret = reply_error(S, c, r, 500, err.msg);
    } else {
        S->events_rejected += (uint64_t)(b.n - accepted);
        ic__sbuf o = {0};
        events_reply(&b, accepted, &o);
        ret = reply(S, c, r, 200, "application/json", &o);
    }
    batch_free(&b);
    return ret;
}

/* ---- GET /v1/users/{id}/clock ------------------------------------------------ */

static void value_name(const ic_server *S, uint64_t id, char *buf, size_t cap, const char **out)
{
    const char *s = ic_names_get(S->names, id);
    if (s) {
        *out = s;
        return;
    }
    snprintf(buf, cap, "%016llx", (unsigned long long)id);
    *out = buf;
}

static void clock_json(ic_server *S, const char *user, int64_t at, const ic_clock_view *v,
                       ic__sbuf *b)
{
    ic__sb_puts(b, "{\"user\": ");
    ic__sb_json_str(b, user, strlen(user));
    ic__sb_printf(b, ", \"at\": %lld, \"mode\": \"%s\", \"hours\": [", (long long)at,
                  ic_refresh_name(S->cfg.refresh));
    pthread_mutex_lock(&S->names_mu);
    for (int h = 0; h < IC_HOURS; h++) {
        ic__sb_puts(b, h ? ", {" : "{");
        for (int f = 0; f < S->cfg.n_clock; f++) {
            ic__sb_printf(b, "%s\"%s\": [", f ? ", " : "", S->cfg.field[S->cfg.clock_field[f]]);
            const uint64_t *val = ic_clock_view_values(v, h, f);
            const float *sc = ic_clock_view_scores(v, h, f);
            for (int i = 0; i < ic_clock_view_n(v, h, f); i++) {
                char hex[24];
                const char *name;
                value_name(S, val[i], hex, sizeof hex, &name);
                ic__sb_puts(b, i ? ", {\"value\": " : "{\"value\": ");
                ic__sb_json_str(b, name, strlen(name));
                ic__sb_puts(b, ", \"score\": ");
                ic__sb_json_num(b, sc[i]);
                ic__sb_puts(b, "}");
            }
            ic__sb_puts(b, "]");
        }
        ic__sb_puts(b, "}");
    }
    pthread_mutex_unlock(&S->names_mu);
    ic__sb_puts(b, "]}\n");
}

static ic_status clock_svg(ic_server *S, const char *user, const ic_clock_view *v, ic__sbuf *b,
                           ic_error *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return ic__fail(err, IC_ERR_NOMEM, "cannot open a memory stream");
    char title[200]; /* as `iclock clock --svg` titles it */
    snprintf(title, sizeof title, "Interest Clock of %.100s (%s, %d days, top %d)", user,
             ic_refresh_name(S->cfg.refresh), S->cfg.window_days, S->cfg.top_k);
    pthread_mutex_lock(&S->names_mu);
    ic_status s = ic_plot_clock_svg(f, v, &S->cfg, S->names, title, err);
    pthread_mutex_unlock(&S->names_mu);
    fclose(f);
    if (!s) ic__sb_add(b, text, len);
    free(text);
    return s;
}

/* Query parameters at (time, default now), tz (minutes) and format. */
static ic_status clock_args(ic_server *S, struct MHD_Connection *c, int64_t *at, int32_t *tz,
                            int *svg, ic_error *err)
{
    const char *a = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "at");
    const char *z = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tz");
    const char *f = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    *at = (int64_t)time(NULL);
    *tz = S->cfg.tz_default_min;
    *svg = 0;
    if (a && ic_time_parse(a, strlen(a), at) != 0)
        return ic__fail(err, IC_ERR_PARSE, "at: \"%.60s\" is not a time (Unix seconds or ISO-8601)", a);
    if (z) {
        char *end;
        long v = strtol(z, &end, 10);
        if (*z == '\0' || *end || v < -1440 || v > 1440)
            return ic__fail(err, IC_ERR_PARSE, "tz: \"%.60s\" is not a UTC offset in minutes", z);
        *tz = (int32_t)v;
    }
    if (f && strcmp(f, "json") && strcmp(f, "svg"))
        return ic__fail(err, IC_ERR_PARSE, "format: \"%.60s\" is not json or svg", f);
    *svg = f && !strcmp(f, "svg");
    return IC_OK;
}

static enum MHD_Result do_clock(ic_server *S, struct MHD_Connection *c, req_ctx *r,
                                const char *user)
{
    ic_error err = {{0}};
    int64_t at;
    int32_t tz;
    int svg;
    ic_status s = clock_args(S, c, &at, &tz, &svg, &err);
    if (s) return reply_error(S, c, r, 400, err.msg);
    ic_clock_view v;
    pthread_mutex_lock(&S->clock_mu);
    int64_t last = S->last_ts;
    int ok = last == INT64_MIN || at >= last - DAY;
    if (ok) ic_clock_query(S->clock, ic_hash(user, strlen(user)), at, tz, &v);
    pthread_mutex_unlock(&S->clock_mu);
    if (!ok) {
        snprintf(err.msg, sizeof err.msg,
                 "at: %lld is more than a day before the latest event (%lld); the store keeps "
                 "no older state", (long long)at, (long long)last);
        return reply_error(S, c, r, 400, err.msg);
    }
    ic__sbuf b = {0};
    if (!svg) {
        clock_json(S, user, at, &v, &b);
        return reply(S, c, r, 200, "application/json", &b);
    }
    if ((s = clock_svg(S, user, &v, &b, &err))) {
        free(b.p);
        return reply_error(S, c, r, 500, err.msg);
    }
    return reply(S, c, r, 200, "image/svg+xml", &b);
}

/* ---- GET /healthz, /metrics ---------------------------------------------------- */

static size_t queue_depth(ic_server *S)
{
    pthread_mutex_lock(&S->queue_mu);
    size_t n = S->q_len + S->inflight;
    pthread_mutex_unlock(&S->queue_mu);
    return n;
}

static enum MHD_Result do_healthz(ic_server *S, struct MHD_Connection *c, req_ctx *r)
{
    pthread_mutex_lock(&S->clock_mu);
    int64_t last = S->last_ts;
    size_t users = ic_clock_n_users(S->clock);
    pthread_mutex_unlock(&S->clock_mu);
    ic__sbuf b = {0};
    ic__sb_printf(&b,
                  "{\"status\": \"ok\", \"uptime_seconds\": %.1f, \"events_applied\": %llu, "
                  "\"users\": %zu, \"train_queue\": %zu, \"latest_event_time\": ",
                  now_s() - S->t_start, (unsigned long long)S->events_applied, users, queue_depth(S));
    if (last == INT64_MIN) ic__sb_puts(&b, "null}\n");
    else ic__sb_printf(&b, "%lld}\n", (long long)last);
    return reply(S, c, r, 200, "application/json", &b);
}

static void metric(ic__sbuf *b, const char *name, const char *type, const char *help, double v)
{
    ic__sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
    if (isfinite(v)) ic__sb_printf(b, "%.17g\n", v);
    else ic__sb_puts(b, "NaN\n");
}

static void metrics_http(ic_server *S, ic__sbuf *b)
{
    ic__sb_puts(b, "# HELP iclock_http_requests_total HTTP requests by endpoint and status class.\n"
                   "# TYPE iclock_http_requests_total counter\n");
    for (int e = 0; e < N_EP; e++)
        for (int k = 0; k < N_CODE; k++)
            ic__sb_printf(b, "iclock_http_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
                          EP_NAME[e], CODE_NAME[k], (unsigned long long)S->ep[e].code[k]);
    ic__sb_puts(b, "# HELP iclock_http_request_duration_seconds Time from the request's headers "
                   "to its reply.\n# TYPE iclock_http_request_duration_seconds histogram\n");
    for (int e = 0; e < N_EP; e++) {
        uint64_t cum = 0;
        for (int k = 0; k <= N_BUCKETS; k++) {
            cum += S->ep[e].bucket[k];
            if (k < N_BUCKETS)
                ic__sb_printf(b, "iclock_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                              EP_NAME[e], BUCKET_LE[k], (unsigned long long)cum);
            else
                ic__sb_printf(b, "iclock_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
                              EP_NAME[e], (unsigned long long)cum);
        }
        ic__sb_printf(b, "iclock_http_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n"
                         "iclock_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                      EP_NAME[e], (double)S->ep[e].sum_ns * 1e-9, EP_NAME[e], (unsigned long long)cum);
    }
}

/* Online AUC per task over the window, and the recent loss. */
static void metrics_online(ic_server *S, ic__sbuf *b)
{
    online_stats *o = &S->online;
    float *p = ic__xmalloc(AUC_WINDOW * sizeof *p), *l = ic__xmalloc(AUC_WINDOW * sizeof *l);
    ic__sb_printf(b, "# HELP iclock_online_auc AUC of the trainer's predictions made before each "
                     "update (test-then-train), over the last %d training samples.\n"
                     "# TYPE iclock_online_auc gauge\n", AUC_WINDOW);
    double loss_ewma = NAN, loss_last = NAN;
    for (int t = 0; t < S->cfg.n_tasks; t++) {
        pthread_mutex_lock(&S->stats_mu);
        size_t n = o->n;
        memcpy(p, o->pred[t], n * sizeof *p);
        memcpy(l, o->label[t], n * sizeof *l);
        loss_ewma = o->loss_ewma, loss_last = o->loss_last;
        pthread_mutex_unlock(&S->stats_mu);
        double auc = ic_auc(p, l, n);
        ic__sb_printf(b, "iclock_online_auc{task=\"%s\"} ", S->cfg.task[t].name);
        if (isfinite(auc)) ic__sb_printf(b, "%.6f\n", auc);
        else ic__sb_puts(b, "NaN\n");
    }
    free(p), free(l);
    metric(b, "iclock_train_loss_recent", "gauge",
           "Exponential moving average (0.1 per batch) of the training batches' mean loss.", loss_ewma);
    metric(b, "iclock_train_loss_last", "gauge", "Mean loss of the last training batch.", loss_last);
}

static enum MHD_Result do_metrics(ic_server *S, struct MHD_Connection *c, req_ctx *r)
{
    ic__sbuf b = {0};
    metrics_http(S, &b);
    metric(&b, "iclock_events_applied_total", "counter", "Events applied to the clock store.",
           (double)S->events_applied);
    metric(&b, "iclock_events_rejected_total", "counter",
           "Events rejected: out of time order, or (rare) past the clock store's limit for a user.",
           (double)S->events_rejected);
    metric(&b, "iclock_ingest_waits_total", "counter",
           "Events whose apply waited for the trainer (back-pressure).", (double)S->ingest_waits);
    metric(&b, "iclock_training_samples_total", "counter", "Samples the model trained on.",
           (double)S->train_samples);
    metric(&b, "iclock_training_skipped_total", "counter",
           "Queued events not trained on (too old for the clock store).", (double)S->train_skipped);
    metric(&b, "iclock_train_queue_depth", "gauge", "Events applied but not trained on yet.",
           (double)queue_depth(S));
    metrics_online(S, &b);
    pthread_mutex_lock(&S->clock_mu);
    double users = (double)ic_clock_n_users(S->clock), bytes = (double)ic_clock_bytes(S->clock);
    pthread_mutex_unlock(&S->clock_mu);
    metric(&b, "iclock_clock_users", "gauge", "Users held by the clock store.", users);
    metric(&b, "iclock_clock_bytes", "gauge", "Memory held by the clock store.", bytes);
    metric(&b, "iclock_journal_bytes_total", "counter", "Journal bytes written since start.",
           (double)ic__journal_bytes(S->journal));
    metric(&b, "iclock_checkpoints_total", "counter", "Checkpoints written since start.",
           (double)S->checkpoints);
    metric(&b, "iclock_checkpoint_failures_total", "counter", "Checkpoints that failed.",
           (double)S->checkpoint_failures);
    metric(&b, "iclock_last_checkpoint_timestamp_seconds", "gauge",
           "Unix time of the last checkpoint.", (double)S->last_checkpoint);
    return reply(S, c, r, 200, "text/plain; version=0.0.4", &b);
}

/* ---- Routing ----------------------------------------------------------------------- */

#define USERS_PREFIX "/v1/users/"
#define CLOCK_SUFFIX "/clock"

static int route(const char *url)
{
    if (!strcmp(url, "/v1/rank")) return EP_RANK;
    if (!strcmp(url, "/v1/events")) return EP_EVENTS;
    if (!strcmp(url, "/healthz")) return EP_HEALTHZ;
    if (!strcmp(url, "/metrics")) return EP_METRICS;
    size_t n = strlen(url), p = strlen(USERS_PREFIX), s = strlen(CLOCK_SUFFIX);
    if (n > p + s && !strncmp(url, USERS_PREFIX, p) && !strcmp(url + n - s, CLOCK_SUFFIX))
        return EP_CLOCK;
    return EP_OTHER;
}

static enum MHD_Result dispatch(ic_server *S, struct MHD_Connection *c, req_ctx *r,
                                const char *url, const char *method)
{
    int post = !strcmp(method, "POST");
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (r->ep == EP_OTHER) {
        char msg[300];
        snprintf(msg, sizeof msg, "no such endpoint: %.200s (see docs/SERVING.md)", url);
        return reply_error(S, c, r, 404, msg);
    }
    int want_post = r->ep == EP_RANK || r->ep == EP_EVENTS;
    if (want_post ? !post : !get) {
        char msg[200];
        snprintf(msg, sizeof msg, "method %.20s not allowed on %.100s (use %s)", method, url,
                 want_post ? "POST" : "GET");
        return reply_error(S, c, r, 405, msg);
    }
    if (r->too_large) {
        char msg[120];
        snprintf(msg, sizeof msg, "request body larger than the limit of %zu bytes (--max-body)",
                 S->opt.max_body);
        return reply_error(S, c, r, 413, msg);
    }
    switch (r->ep) {
    case EP_RANK: return do_rank(S, c, r);
    case EP_EVENTS: return do_events(S, c, r);
    case EP_HEALTHZ: return do_healthz(S, c, r);
    case EP_METRICS: return do_metrics(S, c, r);
    default: {
        size_t p = strlen(USERS_PREFIX), n = strlen(url) - p - strlen(CLOCK_SUFFIX);
        char *user = ic__xmalloc(n + 1);
        memcpy(user, url + p, n);
        user[n] = '\0';
        enum MHD_Result ret = do_clock(S, c, r, user);
        free(user);
        return ret;
    }
    }
}

/* Collects the body over calls and replies on the last one, when
 * *upload_size is 0 (replying earlier makes libmicrohttpd close the
 * connection); a body over the limit is dropped and answered with 413. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    ic_server *S = cls;
    req_ctx *r = *con_cls;
    if (!r) {
        r = ic__xcalloc(1, sizeof *r);
        r->t0 = now_s();
        r->ep = route(url);
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > S->opt.max_body) r->too_large = 1;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->len + n > S->opt.max_body) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            r->cap = r->cap ? r->cap : 4096;
            while (r->cap < r->len + n) r->cap *= 2;
            r->body = ic__xrealloc(r->body, r->cap);
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->replied) return MHD_YES;
    return dispatch(S, c, r, url, method);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    req_ctx *r = *con_cls;
    if (!r) return;
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static ic_status http_start(ic_server *S, ic_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | (S->opt.quiet ? 0 : MHD_USE_ERROR_LOG);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, S->bind, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)S->opt.port);
    } else if (inet_pton(AF_INET6, S->bind, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)S->opt.port);
        flags |= MHD_USE_IPv6;
    } else {
        return ic__fail(err, IC_ERR_ARG, "--bind: '%s' is not an IPv4 or IPv6 address", S->bind);
    }
    S->mhd = MHD_start_daemon(flags, (uint16_t)S->opt.port, NULL, NULL, handler, S,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_THREAD_POOL_SIZE, (unsigned)S->opt.threads,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, S,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                              MHD_OPTION_END);
    if (!S->mhd)
        return ic__fail(err, IC_ERR_IO, "cannot listen on %s port %d (in use, or not an address "
                        "of this machine?)", S->bind, S->opt.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(S->mhd, MHD_DAEMON_INFO_BIND_PORT);
    S->port = info ? info->port : S->opt.port;
    return IC_OK;
}

/* ---- Checkpoints --------------------------------------------------------------------- */

/* Copies what state.bin holds; the value strings are borrowed. Under the
 * locks that freeze them (ingest, model, clock). */
static void state_snapshot(ic_server *S, ic__serve_state *st)
{
    memset(st, 0, sizeof *st);
    st->last_ts = S->last_ts;
    st->events_applied = S->events_applied;
    st->train_samples = S->train_samples;
    pthread_mutex_lock(&S->names_mu);
    st->n_values = S->n_values;
    st->value_id = ic__xmalloc((S->n_values ? S->n_values : 1) * sizeof *st->value_id);
    st->value_str = ic__xmalloc((S->n_values ? S->n_values : 1) * sizeof *st->value_str);
    if (S->n_values) {
        memcpy(st->value_id, S->value_id, S->n_values * sizeof *st->value_id);
        memcpy(st->value_str, S->value_str, S->n_values * sizeof *st->value_str);
    }
    pthread_mutex_unlock(&S->names_mu);
    pthread_mutex_lock(&S->queue_mu);
    IC_ASSERT(S->inflight == 0); /* model_mu is held: the trainer is between batches */
    st->n_pending = S->q_len;
    st->pending = ic__xmalloc((S->q_len ? S->q_len : 1) * sizeof *st->pending);
    for (size_t i = 0; i < S->q_len; i++) st->pending[i] = S->q[(S->q_head + i) % QUEUE_CAP];
    pthread_mutex_unlock(&S->queue_mu);
}

static ic_status write_config(const ic_server *S, const char *path, ic_error *err)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return ic__fail(err, IC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    ic_config_write(&S->cfg, f);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0)
        return ic__fail(err, IC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return IC_OK;
}

/* Writes the files of a checkpoint into cdir: the clock store under
 * ingest+clock, the journal rotated to seg; then, with ingestion running
 * again, the model (still under model_mu) and the rest. */
static ic_status checkpoint_write(ic_server *S, const char *cdir, uint64_t seg, ic_error *err)
{
    char path[700];
    ic__serve_state st;
    pthread_mutex_lock(&S->ingest_mu);
    pthread_mutex_lock(&S->model_mu);
    pthread_mutex_lock(&S->clock_mu);
    snprintf(path, sizeof path, "%s/clock.bin", cdir);
    ic_status s = ic_clock_save(S->clock, path, err);
    state_snapshot(S, &st);
    pthread_mutex_unlock(&S->clock_mu);
    if (!s) s = ic__journal_rotate(S->journal, seg, err);
    pthread_mutex_unlock(&S->ingest_mu);
    if (!s) {
        snprintf(path, sizeof path, "%s/model.bin", cdir);
        s = ic_model_save(S->model, path, err);
    }
    pthread_mutex_unlock(&S->model_mu);
    if (!s) {
        snprintf(path, sizeof path, "%s/state.bin", cdir);
        s = ic__serve_state_save(&st, path, err);
    }
    free(st.value_id), free(st.value_str), free(st.pending);
    if (!s) {
        snprintf(path, sizeof path, "%s/config.ini", cdir);
        s = write_config(S, path, err);
    }
    return s;
}

ic_status ic_server_checkpoint(ic_server *S, ic_error *err)
{
    pthread_mutex_lock(&S->ckpt_mu);
    uint64_t seg = ic__journal_segment(S->journal) + 1;
    char cdir[600], top[600];
    ic_status s = ic__ckpt_dir(S->dir, seg, 1, cdir, sizeof cdir, err);
    if (!s) s = checkpoint_write(S, cdir, seg, err);
    /* Published only once complete: a crash before this keeps the old one,
     * whose journal segments (this one's included) are all still there. */
    if (!s) s = ic__ckpt_publish(S->dir, seg, err);
    if (!s) ic__journal_drop_before(S->dir, seg);
    snprintf(top, sizeof top, "%s/config.ini", S->dir);
    if (!s) s = write_config(S, top, err);
    pthread_mutex_unlock(&S->ckpt_mu);
    if (s) {
        S->checkpoint_failures++;
    } else {
        S->checkpoints++;
        S->last_checkpoint = (int64_t)time(NULL);
    }
    return s;
}

/* ---- Start and stop ----------------------------------------------------------------- */

static void server_free(ic_server *S)
{
    ic_engine_free(S->engine);
    ic__journal_close(S->journal);
    ic_names_free(S->names);
    for (size_t i = 0; i < S->n_values; i++) free(S->value_str[i]);
    free(S->value_id), free(S->value_str);
    free(S->q), free(S->t_ev), free(S->t_probs);
    pthread_mutex_t *mu[] = {&S->ckpt_mu, &S->ingest_mu, &S->model_mu, &S->clock_mu,
                             &S->queue_mu, &S->names_mu, &S->stats_mu};
    for (size_t i = 0; i < sizeof mu / sizeof mu[0]; i++) pthread_mutex_destroy(mu[i]);
    pthread_cond_destroy(&S->q_nonempty);
    pthread_cond_destroy(&S->q_progress);
    free(S);
}

static ic_server *server_alloc(const ic_config *cfg, const ic_server_opts *o)
{
    ic_server *S = ic__xcalloc(1, sizeof *S);
    S->cfg = *cfg;
    S->opt = *o;
    ic__strlcpy(S->dir, o->data_dir, sizeof S->dir);
    ic__strlcpy(S->bind, o->bind ? o->bind : "127.0.0.1", sizeof S->bind);
    S->opt.data_dir = S->dir;
    S->opt.bind = S->bind;
    if (o->model) ic__strlcpy(S->model_path, o->model, sizeof S->model_path);
    S->opt.model = o->model ? S->model_path : NULL;
    pthread_mutex_t *mu[] = {&S->ckpt_mu, &S->ingest_mu, &S->model_mu, &S->clock_mu,
                             &S->queue_mu, &S->names_mu, &S->stats_mu};
    for (size_t i = 0; i < sizeof mu / sizeof mu[0]; i++) pthread_mutex_init(mu[i], NULL);
    pthread_cond_init(&S->q_nonempty, NULL);
    pthread_cond_init(&S->q_progress, NULL);
    S->names = ic_names_create();
    S->q = ic__xmalloc(QUEUE_CAP * sizeof *S->q);
    S->t_ev = ic__xmalloc((size_t)cfg->batch * sizeof *S->t_ev);
    S->t_probs = ic__xmalloc((size_t)cfg->batch * cfg->n_tasks * sizeof *S->t_probs);
    S->last_ts = INT64_MIN;
    S->inflight_min = INT64_MAX;
    S->t_start = now_s();
    return S;
}

/* Loads checkpoint gen (model, clock, state) and builds the engine; with
 * no checkpoint, a model from opt.model or a fresh one. */
static ic_status load_checkpoint(ic_server *S, uint64_t gen, ic__serve_state *st, ic_error *err)
{
    ic_model *m = NULL;
    ic_clock_store *clk = NULL;
    char cdir[600], path[700];
    ic_status s = IC_OK;
    memset(st, 0, sizeof *st);
    st->last_ts = INT64_MIN;
    if (gen) {
        ic__ckpt_dir(S->dir, gen, 0, cdir, sizeof cdir, NULL);
        snprintf(path, sizeof path, "%s/model.bin", cdir);
        s = ic_model_load(&m, path, &S->cfg, err);
        snprintf(path, sizeof path, "%s/clock.bin", cdir);
        if (!s) s = ic_clock_load(&clk, path, &S->cfg, err);
        snprintf(path, sizeof path, "%s/state.bin", cdir);
        if (!s) s = ic__serve_state_load(st, path, err);
    } else if (S->opt.model) {
        s = ic_model_load(&m, S->opt.model, &S->cfg, err);
    }
    if (s) {
        ic_model_free(m);
        ic_clock_free(clk);
        return s;
    }
    if ((s = ic_engine_create(&S->engine, &S->cfg, m, clk, err))) return s;
    S->model = ic_engine_model(S->engine);
    S->clock = ic_engine_clock(S->engine);
    return IC_OK;
}

/* Puts the checkpoint's state in place: names, counters, the events it
 * had not trained on yet (first in the queue). */
static void adopt_state(ic_server *S, ic__serve_state *st)
{
    for (size_t i = 0; i < st->n_values; i++)
        note_value(S, st->value_id[i], st->value_str[i], strlen(st->value_str[i]));
    S->last_ts = st->last_ts;
    S->events_applied = st->events_applied;
    S->train_samples = st->train_samples;
    size_t n = st->n_pending < QUEUE_CAP ? st->n_pending : QUEUE_CAP;
    if (n) memcpy(S->q, st->pending, n * sizeof *S->q);
    S->q_len = n;
    S->train_skipped += st->n_pending - n;
}

/* One journal record on recovery: the same path as a live event. */
static ic_status replay_record(void *ctx, const char *text, size_t len, ic_error *err)
{
    ic_server *S = ctx;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) return ic__fail(err, IC_ERR_CORRUPT, "journal record is not JSON");
    ic_event ev;
    ic_status s = ic__event_from_json(j, &S->cfg, "event", note_value, S, &ev, err);
    cJSON_Delete(j);
    if (s) return s;
    if (ev.ts < S->last_ts)
        return ic__fail(err, IC_ERR_CORRUPT, "journal event at %lld is older than %lld",
                        (long long)ev.ts, (long long)S->last_ts);
    pthread_mutex_lock(&S->ingest_mu);
    ingest_one(S, &ev);
    pthread_mutex_unlock(&S->ingest_mu);
    return IC_OK;
}

static ic_status recover(ic_server *S, ic_error *err)
{
    uint64_t gen;
    ic__serve_state st;
    ic_status s = ic__ckpt_current(S->dir, &gen, err);
    if (!s) s = load_checkpoint(S, gen, &st, err);
    if (s) return s;
    adopt_state(S, &st);
    ic__serve_state_free(&st);
    if (pthread_create(&S->trainer, NULL, trainer_main, S) != 0)
        return ic__fail(err, IC_ERR_IO, "cannot start the trainer thread");
    S->trainer_started = 1;
    uint64_t before = S->events_applied, last, torn;
    if ((s = ic__journal_replay(S->dir, gen, replay_record, S, &last, &torn, err))) return s;
    if ((s = ic__journal_open(&S->journal, S->dir, last ? last : 1, err))) return s;
    if (gen && S->opt.model && !S->opt.quiet)
        fprintf(stderr, "iclock serve: %s holds a checkpoint: --model %s is not used\n", S->dir,
                S->opt.model);
    if (!S->opt.quiet) {
        char what[600];
        if (gen) snprintf(what, sizeof what, "loaded checkpoint %llu", (unsigned long long)gen);
        else snprintf(what, sizeof what, "no checkpoint in %s", S->dir);
        fprintf(stderr, "iclock serve: %s, replayed %llu journal events%s\n", what,
                (unsigned long long)(S->events_applied - before),
                torn ? " (cut the torn tail of a write the crash interrupted)" : "");
    }
    /* A fresh directory gets its checkpoint now, so it holds everything a
     * restart needs (the --model it started from, the config). */
    return gen ? IC_OK : ic_server_checkpoint(S, err);
}

static ic_status check_opts(const ic_config *cfg, const ic_server_opts *o, ic_error *err)
{
    if (!o->data_dir || !o->data_dir[0]) return ic__fail(err, IC_ERR_ARG, "a data directory is required");
    if (strlen(o->data_dir) > 400) return ic__fail(err, IC_ERR_ARG, "data directory path too long");
    if (o->port < 0 || o->port > 65535) return ic__fail(err, IC_ERR_ARG, "port %d is not in 0..65535", o->port);
    if (o->threads < 1 || o->threads > 256) return ic__fail(err, IC_ERR_ARG, "threads %d is not in 1..256", o->threads);
    if (o->max_candidates < 1) return ic__fail(err, IC_ERR_ARG, "max_candidates must be positive");
    if (o->max_body < 64) return ic__fail(err, IC_ERR_ARG, "max_body must be at least 64 bytes");
    if (cfg->batch < 1) return ic__fail(err, IC_ERR_CONFIG, "[train] batch must be positive");
    if (mkdir(o->data_dir, 0755) != 0 && errno != EEXIST)
        return ic__fail(err, IC_ERR_IO, "%s: cannot create: %s", o->data_dir, strerror(errno));
    return ic_config_validate(cfg, err);
}

ic_status ic_server_start(ic_server **out, const ic_config *cfg, const ic_server_opts *o,
                          ic_error *err)
{
    *out = NULL;
    ic_status s = check_opts(cfg, o, err);
    if (s) return s;
    ic_server *S = server_alloc(cfg, o);
    if (!(s = recover(S, err)) && !(s = http_start(S, err))) {
        *out = S;
        return IC_OK;
    }
    ic_server_stop(S, NULL); /* no final checkpoint: nothing was served */
    return s;
}

static void trainer_stop(ic_server *S)
{
    if (!S->trainer_started) return;
    pthread_mutex_lock(&S->queue_mu);
    S->stop = 1;
    pthread_cond_broadcast(&S->q_nonempty);
    pthread_cond_broadcast(&S->q_progress);
    pthread_mutex_unlock(&S->queue_mu);
    pthread_join(S->trainer, NULL);
    S->trainer_started = 0;
}

ic_status ic_server_stop(ic_server *S, ic_error *err)
{
    if (!S) return IC_OK;
    ic_status s = IC_OK;
    int served = S->mhd != NULL;
    if (S->mhd) MHD_stop_daemon(S->mhd); /* waits for the requests in flight */
    S->mhd = NULL;
    trainer_stop(S);
    if (served && S->journal) s = ic_server_checkpoint(S, err);
    server_free(S);
    return s;
}
