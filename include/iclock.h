/* iclock.h: the public API of iclock, a time-aware streaming ranking engine.
 *
 * iclock implements the Interest Clock (Zhu et al., SIGIR 2024): for every
 * user and local hour it keeps the last W days of feedback on item attribute
 * values, scores them, and keeps the top k per hour (the user's clock). A
 * multi-task DCN-V2 network consumes the clock, blended around the current
 * hour, together with the other features and an hour/day time encoding.
 *
 * Conventions (see docs/ARCHITECTURE.md):
 * - Public names are ic_<module>_<verb>; internal non-static ones ic__.
 * - Functions a user's input can make fail return an ic_status (0 ok,
 *   negative error) and, when given a non-NULL ic_error, write a message
 *   that says where and what ("events.csv:1042:1: column 'ts': ...").
 * - Objects come in create/free pairs; *_free(NULL) is a no-op.
 * - The library never calls exit(); it aborts only on a bug (assertion)
 *   or when memory runs out.
 */
#ifndef ICLOCK_H
#define ICLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IC_VERSION "0.1.0"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

typedef enum {
    IC_OK = 0,
    IC_ERR_NOMEM = -1,    /* allocation failed */
    IC_ERR_IO = -2,       /* open/read/write/fsync/rename failed */
    IC_ERR_PARSE = -3,    /* a malformed row or value in an input file */
    IC_ERR_CONFIG = -4,   /* a bad configuration file or option */
    IC_ERR_CORRUPT = -5,  /* a truncated or corrupt binary file */
    IC_ERR_ORDER = -6,    /* events out of time order */
    IC_ERR_ARG = -7,      /* a bad argument to an API call */
    IC_ERR_NOTFOUND = -8, /* an unknown user, item or file */
    IC_ERR_MISMATCH = -9, /* a file made with another configuration */
} ic_status;

/* A static English name for a status ("corrupt file"). Never NULL. */
const char *ic_strerror(ic_status s);

/* The message that goes with a failed call. Callers own it (usually on the
 * stack); the library writes msg when it returns a negative status. */
typedef struct {
    char msg[1024];
} ic_error;

/* ------------------------------------------------------------------ */
/* Limits and time                                                     */
/* ------------------------------------------------------------------ */

#define IC_HOURS 24
#define IC_NAME_MAX 64          /* column, field, action and task names */
#define IC_MAX_FIELDS 16        /* categorical fields besides user and item */
#define IC_MAX_CLOCK_FIELDS 4   /* fields the Interest Clock tracks */
#define IC_MAX_TOPK 8           /* k of the clock's top-k */
#define IC_MAX_ACTIONS 8        /* action columns (clock score inputs) */
#define IC_MAX_TASKS 4          /* label columns (model tasks) */
#define IC_MAX_VALUES 32        /* categorical values per event, all fields */
#define IC_MAX_MLP 8            /* hidden layers of the deep network */

/* Local time of an event: Unix seconds (UTC) plus the user's UTC offset in
 * minutes. Hours are 0..23, days count from 1970-01-01 (local), the day of
 * the week is 0 = Monday .. 6 = Sunday. Correct for negative times. */
int64_t ic_local_seconds(int64_t ts, int32_t tz_min);
int ic_local_hour(int64_t ts, int32_t tz_min);
int64_t ic_local_day(int64_t ts, int32_t tz_min);
int ic_local_dow(int64_t ts, int32_t tz_min);
/* Fractional local hour in [0, 24), for the continuous clock. */
double ic_local_hour_frac(int64_t ts, int32_t tz_min);

/* Parses Unix seconds ("1693526400", may be negative) or ISO-8601 with an
 * offset ("2023-09-01T08:00:00+08:00", "...Z"; a time without an offset, or a date
 * alone, is taken as UTC) from text[0..len). Returns 0 and sets *out, or -1. */
int ic_time_parse(const char *text, size_t len, int64_t *out);

/* The 64-bit id of a string (XXH3-64). Ids of users, items and categorical
 * values are their strings' hashes; 0 never names a value. */
uint64_t ic_hash(const char *s, size_t n);

/* ------------------------------------------------------------------ */
/* Configuration (config.c)                                            */
/* ------------------------------------------------------------------ */

typedef enum { IC_CLOCK_NONE, IC_CLOCK_NAIVE, IC_CLOCK_ADAPTIVE, IC_CLOCK_GAUSSIAN } ic_clock_kind;
typedef enum { IC_REFRESH_REALTIME, IC_REFRESH_DAILY } ic_refresh;
typedef enum { IC_POOL_MEAN, IC_POOL_SCORE } ic_pool;
typedef enum { IC_STRUCT_PARALLEL, IC_STRUCT_STACKED } ic_structure;
typedef enum { IC_OPT_ADAGRAD, IC_OPT_ADAM } ic_optim_kind;

typedef struct {
    char name[IC_NAME_MAX]; /* the column's name in the log */
    float weight;           /* clock score weight (actions) or loss weight (tasks) */
} ic_named_weight;

/* Everything iclock is told: the log's schema, the clock, the model and
 * training. A plain value type: copy it freely. ic_config_default() gives
 * the built-in configuration (the same as configs/music.ini). */
typedef struct {
    char path[256];                 /* file it was read from, "" for built in */

    /* [data] the log's columns */
    char time_col[IC_NAME_MAX];     /* Unix seconds or ISO-8601 with offset */
    char user_col[IC_NAME_MAX];
    char item_col[IC_NAME_MAX];
    char tz_col[IC_NAME_MAX];       /* UTC offset in minutes; "" = none */
    int32_t tz_default_min;         /* used when tz_col is "" or empty */
    char delimiter;                 /* ',' by default */
    char multi_sep;                 /* '|' separates values of one field */

    /* [fields] categorical fields; column = name. "genre = item" marks an
     * attribute of the item, "weather = context" one of the moment (a
     * sampled negative copies the item's attributes but the context's). */
    int n_fields;
    char field[IC_MAX_FIELDS][IC_NAME_MAX];
    uint8_t field_is_context[IC_MAX_FIELDS];

    /* [clock] */
    int n_clock;
    int clock_field[IC_MAX_CLOCK_FIELDS]; /* indices into field[] */
    int window_days;                /* W, default 30 */
    int top_k;                      /* k, default 3 */
    ic_refresh refresh;             /* realtime (default) or daily */

    /* [actions] column = clock score weight, in file order */
    int n_actions;
    ic_named_weight action[IC_MAX_ACTIONS];

    /* [tasks] column = loss weight, in file order; task 0 is the main task */
    int n_tasks;
    ic_named_weight task[IC_MAX_TASKS];

    /* [model] */
    ic_clock_kind clock;
    float clock_sigma;              /* Gaussian sigma, default 1 */
    int clock_sigma_learn;          /* 1: sigma is learned */
    int clock_continuous;           /* 1: delta from the fractional hour */
    ic_pool clock_pool;             /* mean (default) or score-weighted */
    int dim;                        /* embedding dimension d, default 16 */
    int cross_layers;               /* L, default 3 */
    int cross_rank;                 /* 0 = full rank, else r of W = U V^T */
    int n_mlp;
    int mlp[IC_MAX_MLP];            /* default 256,128,64 */
    ic_structure structure;         /* parallel (default) or stacked */

    /* [train] */
    int batch;                      /* default 512 */
    float lr;                       /* Adam on dense parameters */
    float emb_lr;                   /* embedding rows */
    ic_optim_kind emb_optim;        /* adagrad (default) or adam */
    float l2_emb;                   /* L2 on embedding rows touched */
    float init_std;                 /* embedding init N(0, init_std) */
    float adam_beta1, adam_beta2, adam_eps;
    uint64_t seed;
    /* time split of the log's span: train, then validation, then test */
    double split_train;             /* default 0.75 */
    double split_valid;             /* default 0.125 */
} ic_config;

/* Fills cfg with the built-in defaults (configs/music.ini). */
void ic_config_default(ic_config *cfg);

/* Reads an INI file over the defaults. A section present in the file
 * replaces that section's lists ([fields], [actions], [tasks]); scalar keys
 * override one by one. Unknown sections or keys, bad numbers and
 * inconsistent settings give IC_ERR_CONFIG with "file:line: key: what". */
ic_status ic_config_load(ic_config *cfg, const char *path, ic_error *err);

/* Sets one option, as if "key = value" stood in [section]; for command-line
 * overrides such as --clock. Same errors as ic_config_load. */
ic_status ic_config_set(ic_config *cfg, const char *section, const char *key,
                        const char *value, ic_error *err);

/* Checks cross-field consistency (clock fields exist, k <= IC_MAX_TOPK...). */
ic_status ic_config_validate(const ic_config *cfg, ic_error *err);

/* Writes cfg as an INI file that ic_config_load reads back to the same value. */
void ic_config_write(const ic_config *cfg, FILE *out);

/* Index of field name in cfg->field, or -1. */
int ic_config_field_index(const ic_config *cfg, const char *name);

/* Names for enum values ("gaussian", "daily", ...) and back; parse returns -1
 * for an unknown name. */
const char *ic_clock_kind_name(ic_clock_kind k);
int ic_clock_kind_parse(const char *s);

/* ------------------------------------------------------------------ */
/* Events (event.c) and the log reader (csv.c)                         */
/* ------------------------------------------------------------------ */

/* One interaction, as read from a log. Categorical values of field f (index
 * into cfg->field) are val[voff[f] .. voff[f+1]); a field may hold zero,
 * one or several values. action[] and label[] follow cfg->action/task. */
typedef struct {
    int64_t ts;        /* Unix seconds, UTC */
    int32_t tz_min;    /* the user's UTC offset, minutes */
    uint64_t user;     /* ic_hash of the user string */
    uint64_t item;     /* ic_hash of the item string */
    uint8_t voff[IC_MAX_FIELDS + 1];
    uint64_t val[IC_MAX_VALUES];
    float action[IC_MAX_ACTIONS];
    float label[IC_MAX_TASKS];
} ic_event;

/* A map from ids back to their strings (categorical values, users, items),
 * for printing. Strings are copied in; the map owns them. */
typedef struct ic_names ic_names;
ic_names *ic_names_create(void);
void ic_names_free(ic_names *n);
/* Remembers id -> s (first string wins). Aborts on out of memory. */
void ic_names_put(ic_names *n, uint64_t id, const char *s, size_t len);
/* The string for id, or NULL if never seen. Valid until ic_names_free. */
const char *ic_names_get(const ic_names *n, uint64_t id);

typedef enum { IC_BAD_ROWS_FAIL, IC_BAD_ROWS_SKIP } ic_bad_rows;

#define IC_READER_KEEP_BAD 5 /* messages kept of skipped rows */

typedef struct {
    uint64_t rows;      /* data rows read (not counting the header) */
    uint64_t events;    /* rows returned as events */
    uint64_t bad;       /* rows skipped under IC_BAD_ROWS_SKIP */
    char first_bad[IC_READER_KEEP_BAD][256];
    int n_first_bad;
} ic_reader_stats;

typedef struct ic_reader ic_reader;

/* Opens a CSV log (or .csv.gz) and checks its header against cfg. names may
 * be NULL; otherwise the reader records the strings of the users, items and
 * values it reads into it (the caller owns names). cfg must outlive the
 * reader. Errors: IC_ERR_IO (cannot open), IC_ERR_CONFIG (a configured
 * column is missing from the header: names the config file, line and key),
 * IC_ERR_PARSE (a bad header). */
ic_status ic_reader_open(ic_reader **out, const char *path, const ic_config *cfg,
                         ic_bad_rows policy, ic_names *names, ic_error *err);

/* Reads the next event: returns 1 and fills ev, 0 at the end, or a negative
 * status with err = "file:line:col: what (text)". Rows must be sorted by
 * time: the first row earlier than its predecessor is IC_ERR_ORDER. Under
 * IC_BAD_ROWS_SKIP, malformed rows are counted in stats and skipped. */
int ic_reader_next(ic_reader *r, ic_event *ev, ic_error *err);

const ic_reader_stats *ic_reader_stats_get(const ic_reader *r);
/* The line number of the row last returned (1 = header). */
uint64_t ic_reader_line(const ic_reader *r);
void ic_reader_close(ic_reader *r);

/* ------------------------------------------------------------------ */
/* The Interest Clock store (clock.c)                                  */
/* ------------------------------------------------------------------ */

/* A user's clock as of one time: for each local hour h and clock field f
 * (index into cfg->clock_field), the top-k values by score in rank order.
 * n[h][f] <= k places are filled; only positive scores enter. */
typedef struct {
    int n_fields;                                       /* cfg->n_clock */
    int k;                                              /* cfg->top_k */
    uint8_t n[IC_HOURS][IC_MAX_CLOCK_FIELDS];
    uint64_t value[IC_HOURS][IC_MAX_CLOCK_FIELDS][IC_MAX_TOPK];
    float score[IC_HOURS][IC_MAX_CLOCK_FIELDS][IC_MAX_TOPK];
} ic_clock_view;

typedef struct ic_clock_store ic_clock_store;

/* Creates an empty store for cfg (clock fields, window, k, actions,
 * refresh mode). The store copies what it needs from cfg. */
ic_status ic_clock_create(ic_clock_store **out, const ic_config *cfg, ic_error *err);
void ic_clock_free(ic_clock_store *s);

/* Applies one event. Events must come in non-decreasing time order
 * (IC_ERR_ORDER otherwise; the store is unchanged). */
ic_status ic_clock_apply(ic_clock_store *s, const ic_event *ev, ic_error *err);

/* The clock of user at time t (tz_min = the user's UTC offset now):
 * realtime mode sees exactly the user's events with t - W <= ts < t; daily
 * mode sees the W days before the start of t's local day. Fills out and
 * returns 1, or returns 0 and an empty view for a user with no events. t
 * may not be earlier than a time already queried or applied minus one day
 * (a streaming store). */
int ic_clock_query(ic_clock_store *s, uint64_t user, int64_t t, int32_t tz_min,
                   ic_clock_view *out);

/* ------------------------------------------------------------------ */
/* The ranking model (model.c, nn.c, embed.c, optim.c)                 */
/* ------------------------------------------------------------------ */

/* One example for the model: the event (ids, categorical values, local
 * time, labels) and the user's clock as it stood before the event (NULL
 * when cfg->clock is IC_CLOCK_NONE). Neither is owned. */
typedef struct {
    const ic_event *ev;
    const ic_clock_view *clock;
} ic_sample;

typedef struct ic_model ic_model;

/* Builds the network for cfg with weights drawn from cfg->seed. The model
 * copies cfg. Errors: IC_ERR_CONFIG for an impossible shape. */
ic_status ic_model_create(ic_model **out, const ic_config *cfg, ic_error *err);
void ic_model_free(ic_model *m);

/* Predicted probabilities for B samples, probs (B, cfg->n_tasks), row-major.
 * Does not change the model; ids never seen embed as zero (a cold start).
 * Uses the model's own workspace, so one caller at a time. */
void ic_model_predict(ic_model *m, const ic_sample *s, int B, float *probs);

/* One training step on B samples: forward, loss, backward, and the
 * optimizer updates (Adam on dense parameters, cfg->emb_optim on the
 * embedding rows the batch touched). probs (B, T) receives the predictions
 * made before the update (may be NULL). Returns the batch's mean loss:
 * sum over tasks of weight * binary cross-entropy. */
float ic_model_train_step(ic_model *m, const ic_sample *s, int B, float *probs);

/* Saves everything needed to continue training bit-identically: config
 * fingerprint, dense parameters, optimizer moments and step, embedding rows
 * with their optimizer state. Atomic (temporary file, fsync, rename). */
ic_status ic_model_save(const ic_model *m, const char *path, ic_error *err);

/* Loads a saved model. cfg must describe the same network: otherwise
 * IC_ERR_MISMATCH naming the first setting that differs. A truncated or
 * corrupt file is IC_ERR_CORRUPT. */
ic_status ic_model_load(ic_model **out, const char *path, const ic_config *cfg, ic_error *err);

/* Dense parameter count, and embedding rows held (all tables). */
size_t ic_model_n_dense(const ic_model *m);
size_t ic_model_n_rows(const ic_model *m);

/* ------------------------------------------------------------------ */
/* Metrics (metrics.c)                                                 */
/* ------------------------------------------------------------------ */

/* Ranking and calibration metrics of one task over n samples. */
typedef struct {
    uint64_t n;          /* samples */
    double pos_rate;     /* mean label */
    double auc;          /* exact, ties count one half; NaN with one class */
    double uauc;         /* mean of per-user AUCs over users with both classes */
    double gauc;         /* the same weighted by each user's sample count */
    uint64_t auc_users;  /* users counted in uauc/gauc */
    double logloss;      /* mean binary cross-entropy, p clipped to [1e-7, 1-1e-7] */
    double calibration;  /* mean prediction / mean label */
} ic_metrics;

/* AUC of pred against 0/1 labels, O(n log n). NaN if a class is missing. */
double ic_auc(const float *pred, const float *label, size_t n);

/* All metrics. user may be NULL (uauc and gauc are then NaN). The arrays are
 * read only. Errors: IC_ERR_ARG for n == 0 or a label outside [0, 1]. */
ic_status ic_metrics_compute(const float *pred, const float *label, const uint64_t *user,
                             size_t n, ic_metrics *out, ic_error *err);

/* ------------------------------------------------------------------ */
/* The listening simulator (synth.c)                                   */
/* ------------------------------------------------------------------ */

#ifdef __cplusplus
}
#endif
#endif /* ICLOCK_H */
