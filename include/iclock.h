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
    int history;                    /* 1: x0 also gets the time-blind mean of
                                     * the 24 slots (all variants, baseline
                                     * too), so a clock's gain is time only */
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

    /* Where each column was named, so the reader can say which line of the
     * config names a column the log lacks: the line in path (> 0), 0 for
     * the built-in default, -1 for ic_config_set (a command-line option).
     * Not part of the configuration's value: compare configs without it. */
    struct {
        int time, user, item, tz;
        int field[IC_MAX_FIELDS];
        int action[IC_MAX_ACTIONS];
        int task[IC_MAX_TASKS];
    } line;
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
const char *ic_refresh_name(ic_refresh r);
const char *ic_pool_name(ic_pool p);
const char *ic_structure_name(ic_structure s);
const char *ic_optim_name(ic_optim_kind o);

/* "file:line: [section] key", "built-in default [section] key" or "option
 * [section] key" for a column-naming key, by cfg->line; writes into buf[cap]
 * and returns buf. section is "data", "fields", "actions" or "tasks"; idx is
 * the entry's index for list sections (ignored for [data]). */
const char *ic_config_where(const ic_config *cfg, const char *section, const char *key,
                            int idx, char *buf, size_t cap);

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
/* Ids held. */
size_t ic_names_count(const ic_names *n);

typedef enum { IC_BAD_ROWS_FAIL, IC_BAD_ROWS_SKIP } ic_bad_rows;

#define IC_READER_KEEP_BAD 5 /* messages kept of skipped rows */

typedef struct {
    uint64_t rows;      /* data rows read (not counting the header) */
    uint64_t events;    /* rows returned as events */
    uint64_t bad;       /* rows skipped under IC_BAD_ROWS_SKIP */
    char first_bad[IC_READER_KEEP_BAD][256];
    int n_first_bad;
    uint64_t bad_shape; /* of bad: wrong column count, quoting, over-long */
    uint64_t bad_order; /* of bad: earlier than a row before them */
} ic_reader_stats;

typedef struct ic_reader ic_reader;

/* Opens a CSV log (or .csv.gz) and checks its header against cfg. names may
 * be NULL; otherwise the reader records the strings of the users, items and
 * values it reads into it (the caller owns names). cfg must outlive the
 * reader. Errors: IC_ERR_IO (cannot open), IC_ERR_CONFIG (cfg fails
 * ic_config_validate, or a configured column is missing from the header:
 * names the config file, line and key), IC_ERR_PARSE (a bad header: empty
 * file, a configured column twice). Plain files and .gz are both read
 * through zlib; a UTF-8 BOM, CRLF line ends and blank lines are accepted.
 * Memory is constant (about 4 MiB of buffers), whatever the file's size. */
ic_status ic_reader_open(ic_reader **out, const char *path, const ic_config *cfg,
                         ic_bad_rows policy, ic_names *names, ic_error *err);

/* Reads the next event: returns 1 and fills ev, 0 at the end, or a negative
 * status with err = "file:line:col: column 'name': what (text)". Rows must
 * be sorted by time: the first row earlier than its predecessor is
 * IC_ERR_ORDER. Under IC_BAD_ROWS_SKIP, malformed and out-of-order rows are
 * counted in stats and skipped. A failure is sticky (returned again); an
 * I/O error (IC_ERR_IO, e.g. a truncated .gz) is never skipped. line is the
 * row's first line (a quoted field may span several). */
int ic_reader_next(ic_reader *r, ic_event *ev, ic_error *err);

const ic_reader_stats *ic_reader_stats_get(const ic_reader *r);
/* The line number of the row last returned (1 = header). */
uint64_t ic_reader_line(const ic_reader *r);
void ic_reader_close(ic_reader *r);
/* The header's column count (valid after a successful open). */
int ic_reader_columns(const ic_reader *r);

/* Limits of a log row: a field longer than IC_CSV_MAX_FIELD bytes or a row
 * with more than IC_CSV_MAX_COLS columns is malformed. */
#define IC_CSV_MAX_COLS 256
#define IC_CSV_MAX_FIELD 4096
#define IC_CSV_SCRATCH (IC_CSV_MAX_COLS * (IC_CSV_MAX_FIELD + 1))

typedef enum {
    IC_CSV_OK,
    IC_CSV_UNTERMINATED,   /* a quoted field runs to the end of the input */
    IC_CSV_AFTER_QUOTE,    /* text between a closing quote and the delimiter */
    IC_CSV_LONG_FIELD,     /* a field over IC_CSV_MAX_FIELD bytes */
    IC_CSV_TOO_MANY_COLS,  /* more than IC_CSV_MAX_COLS fields */
    IC_CSV_LONG_ROW,       /* (reader) a row longer than its buffer */
} ic_csv_problem;

/* One CSV record split into fields (RFC 4180: quoted fields may hold the
 * delimiter, newlines and doubled quotes). Unquoted fields point into the
 * input, quoted ones (unescaped) into scratch, which the caller provides
 * with IC_CSV_SCRATCH bytes. A trailing CR of the line end is dropped. */
typedef struct {
    int n;                               /* fields (at most IC_CSV_MAX_COLS kept) */
    const char *ptr[IC_CSV_MAX_COLS];
    uint32_t len[IC_CSV_MAX_COLS];
    int lines;                           /* newlines consumed, the line end included */
    int blank;                           /* an empty line (skipped by the reader) */
    ic_csv_problem problem;              /* the first problem, or IC_CSV_OK */
    int problem_col;                     /* its column, 0-based */
    char *scratch;                       /* caller's, IC_CSV_SCRATCH bytes */
} ic_csv_record;

/* Scans the record at p[0..n). Returns the bytes it spans (line end
 * included), or 0 when p[0..n) holds no complete record and more input may
 * follow (at_eof == 0); with at_eof, the record may end at n. Returns 0 for
 * n == 0. Problems do not stop the scan: the record is consumed to its end,
 * so a caller can skip it. Used by the reader and by iclock sort. */
size_t ic_csv_scan(const char *p, size_t n, int at_eof, char delim, ic_csv_record *rec);

/* A short English description of a problem ("unterminated quote"). */
const char *ic_csv_problem_text(ic_csv_problem p);

/* Quotes text[0..len) for a message: "..." with control bytes, quotes,
 * backslashes and invalid UTF-8 escaped, cut at about 60 bytes. Writes into
 * buf[cap] and returns it. */
const char *ic_csv_quote(const char *text, size_t len, char *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* The Interest Clock store (clock.c)                                  */
/* ------------------------------------------------------------------ */

/* A user's clock as of one time: for each local hour h and clock field f
 * (index into cfg->clock_field), the top-k values by score in rank order.
 * ic_clock_view_n(v, h, f) <= k places are filled. Values rank by the
 * score the view shows (the float below): only positive ones enter, higher
 * first, equal ones by value id ascending.
 * score(h, f, v) = (float) of the sum over the window's events at local
 * hour h (the event's own tz_min) whose field f holds v (each listed value
 * counts) of the event's delta = (float)(sum_a weight_a * action_a); the
 * sum runs in double (exact, hence order-independent, for dyadic weights
 * such as 1, -1, 0.5).
 *
 * Layout: compact, so that a query copies one contiguous block (the
 * store keeps its lists in this same form). list[h * n_fields + f] is 0
 * when (h, f) has no list, else 1 + the list's index; list i starts at
 * lists + i * list_bytes: a byte n (places filled), three bytes of
 * padding, k float scores, then at val_off (8-byte aligned) k uint64 values.
 * Only lists that had entries are present, so a clock of 20 lists copies
 * 20 x 40 bytes (k = 3), not 24 x 4 x 8 places. Read it through
 * ic_clock_view_n / _values / _scores; write one (the reference, tests,
 * hand-made clocks) through ic_clock_view_init and ic_clock_view_set.
 * Places beyond n hold unspecified values. A view is a plain value:
 * copying the struct copies the clock. */
#define IC_CLOCK_LIST_MAX 104 /* list_bytes at k = IC_MAX_TOPK */
typedef struct {
    int n_fields;                /* cfg->n_clock */
    int k;                       /* cfg->top_k */
    uint16_t list_bytes;         /* a list's stride, for k */
    uint16_t val_off;            /* where a list's values start, for k */
    uint16_t n_lists;            /* lists present */
    _Alignas(64) uint8_t list[IC_HOURS * IC_MAX_CLOCK_FIELDS];
    unsigned char lists[IC_HOURS * IC_MAX_CLOCK_FIELDS * IC_CLOCK_LIST_MAX]; /* (n_lists, list_bytes) */
} ic_clock_view;

/* The list of (h, f), or NULL if it has none. */
static inline const unsigned char *ic__clock_view_list(const ic_clock_view *v, int h, int f)
{
    unsigned i = v->list[h * v->n_fields + f];
    return i ? v->lists + (i - 1) * (size_t)v->list_bytes : (const unsigned char *)0;
}
/* Places filled at hour h, field f (0..k). */
static inline int ic_clock_view_n(const ic_clock_view *v, int h, int f)
{
    const unsigned char *l = ic__clock_view_list(v, h, f);
    return l ? l[0] : 0;
}
/* The values of (h, f) in rank order: ic_clock_view_n of them (NULL when
 * there are none). */
static inline const uint64_t *ic_clock_view_values(const ic_clock_view *v, int h, int f)
{
    const unsigned char *l = ic__clock_view_list(v, h, f);
    return l ? (const uint64_t *)(const void *)(l + v->val_off) : (const uint64_t *)0;
}
/* Their scores, the same count (NULL when there are none). */
static inline const float *ic_clock_view_scores(const ic_clock_view *v, int h, int f)
{
    const unsigned char *l = ic__clock_view_list(v, h, f);
    return l ? (const float *)(const void *)(l + 4) : (const float *)0;
}
/* An empty view for n_fields clock fields (1..IC_MAX_CLOCK_FIELDS) and
 * top-k k (1..IC_MAX_TOPK). */
void ic_clock_view_init(ic_clock_view *v, int n_fields, int k);
/* Sets the places of (h, f) to values[0..n) and scores[0..n) (n <= k; the
 * caller keeps them in rank order), adding the list if it has none. */
void ic_clock_view_set(ic_clock_view *v, int h, int f, int n, const uint64_t *values, const float *scores);
/* 1 when a and b have the same fields and k and, at every (hour, field),
 * the same places: count, values and scores (bit for bit); else 0. Which
 * lists are present does not matter, only what they hold. */
int ic_clock_view_equal(const ic_clock_view *a, const ic_clock_view *b);

typedef struct ic_clock_store ic_clock_store;

/* Creates an empty store for cfg (clock fields, window, k, actions,
 * refresh mode). The store copies what it needs from cfg. */
ic_status ic_clock_create(ic_clock_store **out, const ic_config *cfg, ic_error *err);
void ic_clock_free(ic_clock_store *s);

/* Applies one event. Events must come in non-decreasing time order
 * (IC_ERR_ORDER otherwise; the store is unchanged); a time beyond
 * +-IC_CLOCK_MAX_TS is IC_ERR_ARG (the store is unchanged). A user holds
 * at most 2^24 - 2 distinct (hour, field, value) pairs in its window: an
 * event that would take it past is IC_ERR_ARG and adds nothing, but the
 * store's time moves to it (as for an applied event: later events must
 * not be earlier). */
#define IC_CLOCK_MAX_TS ((int64_t)1 << 62)
ic_status ic_clock_apply(ic_clock_store *s, const ic_event *ev, ic_error *err);

/* The clock of user at time t (tz_min = the user's UTC offset now):
 * realtime mode sees exactly the user's events with t - W <= ts < t (events
 * at t itself, even if already applied, are not seen); daily mode sees the
 * user's events with D - W <= ts < D, D = the start of t's local day in
 * tz_min (a nightly job in the user's own time zone), so the clock changes
 * once a day. W = cfg->window_days days. Returns 1 if at least one of the
 * user's events lies in the window (the view may still be empty when no
 * value scores positive), else 0 with an empty view (unknown user too).
 * A time beyond +-IC_CLOCK_MAX_TS sees nothing (returns 0).
 * The result is a copy: later applies never change it. Queries may go
 * back and forth in time, but t may not be earlier than the latest applied
 * event minus one day (a streaming store: older records may be gone;
 * assertion). Not const: a query moves the user's window (lazy, exact
 * expiry) and caches its top-k. */
int ic_clock_query(ic_clock_store *s, uint64_t user, int64_t t, int32_t tz_min,
                   ic_clock_view *out);

/* A hint, for speed only: the caller is about to query and/or apply
 * ev[i] of the time-ordered events ev[0..n), in order. Asks the memory
 * system for the store state that the events a few places ahead will need
 * (the store picks the distances), so that their cache misses overlap the
 * work on ev[i]; call it once per event, before that event's query. Never
 * changes the store or any result. Reads the store: the same threading
 * rules as ic_clock_query. */
void ic_clock_prefetch(const ic_clock_store *s, const ic_event *ev, size_t n, size_t i);

/* Users held (those with a record in the last W + 2 days, roughly: users
 * whose records are all older are forgotten by a sweep as events arrive). */
size_t ic_clock_n_users(const ic_clock_store *s);

/* Iterates the users: start with *cursor = 0; returns 1 and sets *user, or
 * 0 at the end. Applying events during an iteration invalidates it. */
int ic_clock_next_user(const ic_clock_store *s, size_t *cursor, uint64_t *user);

/* Bytes the store's data occupies: its tables, each user's block (entries,
 * cached top-k) and record ring, each at its pool class size (all come
 * from the store's block pool). The pool may hold more
 * memory than this: what freed blocks leave for reuse, up to the store's
 * peak (it is returned only by ic_clock_free). */
size_t ic_clock_bytes(const ic_clock_store *s);

/* Saves the store (its events of the last W + 2 days and the clock
 * configuration) in the checksummed binary format, atomically. Errors:
 * IC_ERR_IO. The file is host-endian. */
ic_status ic_clock_save(const ic_clock_store *s, const char *path, ic_error *err);

/* Loads a saved store for cfg into *out (NULL on error; the caller frees).
 * Errors: IC_ERR_IO (cannot read), IC_ERR_CORRUPT (truncated, damaged or
 * inconsistent file), IC_ERR_MISMATCH (saved with other clock fields,
 * window, k or actions and weights: names the first difference). The
 * refresh mode is cfg's: the saved events serve either mode. */
ic_status ic_clock_load(ic_clock_store **out, const char *path, const ic_config *cfg,
                        ic_error *err);

/* Draws a clock as an SVG 24-hour dial (plot.c): one ring per clock field
 * (innermost = field 0), each hour's sector coloured by its top value and
 * labelled with it, a legend per field. names maps value ids to strings
 * (NULL, or an id it lacks: the id in hex). title may be NULL. Errors:
 * IC_ERR_IO when writing fails. */
ic_status ic_plot_clock_svg(FILE *out, const ic_clock_view *v, const ic_config *cfg,
                            const ic_names *names, const char *title, ic_error *err);

#define IC_PLOT_MAX_SERIES 20 /* values one hourly chart can draw */

/* What ic_plot_hourly_svg draws: n series (values of a field), each with a
 * count per local hour. Nothing is owned; all of it is the caller's. */
typedef struct {
    int n;                              /* series, 1..IC_PLOT_MAX_SERIES */
    const char *const *label;           /* (n) names, escaped when drawn */
    const uint64_t (*count)[IC_HOURS];  /* (n, 24) counts by local hour */
    int rest;                           /* 1: series n-1 is "all other values" (grey) */
    const char *title, *note;           /* a title and a line under it; may be NULL */
} ic_plot_hourly;

/* Draws the share of each series by local hour as an SVG chart (plot.c):
 * one column per hour, split into count[i][h] / sum_i count[i][h] (series
 * 0 at the top; an hour without counts is an empty column), the hour's
 * total beneath as a bar, and a legend with each series' share of all
 * counts. Every segment carries data-hour, data-series and a <title> with
 * its count. Errors: IC_ERR_ARG (n out of range), IC_ERR_IO (writing). */
ic_status ic_plot_hourly_svg(FILE *out, const ic_plot_hourly *p, ic_error *err);

/* ------------------------------------------------------------------ */
/* The ranking model (model.c, nn.c, embed.c, optim.c)                 */
/* ------------------------------------------------------------------ */

/* One example for the model: the event (ids, categorical values, local
 * time, labels) and the user's clock as it stood before the event (NULL
 * when cfg->clock is IC_CLOCK_NONE and cfg->history is 0: the history
 * block reads the same view). Neither is owned. */
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

/* Runs each later training step and prediction of m on n threads: 1 (the
 * default) or 2 (n > 2 counts as 2): data-parallel halves of the batch,
 * one on a helper thread the model owns, their gradients summed in a fixed
 * order. Results are deterministic for a given n and agree across n to
 * float rounding. Planning the batch and the optimizer stay on the
 * caller's thread. Use this or BLAS threads (openblas_set_num_threads),
 * not both. Returns the threads now in use (1 if a thread could not be
 * started). */
int ic_model_set_threads(ic_model *m, int n);

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

/* AUC of pred against labels in [0, 1] (label >= 0.5 counts as positive),
 * exact with ties counting one half (Mann-Whitney U), O(n) radix sort.
 * NaN if a class is missing, n == 0, or any pred or label is NaN. */
double ic_auc(const float *pred, const float *label, size_t n);

/* All metrics. user may be NULL (uauc and gauc are then NaN, auc_users 0).
 * AUCs binarise labels at 0.5; pos_rate, logloss and calibration use the
 * labels as given (soft labels allowed). uauc/gauc are NaN when no user has
 * both classes; calibration is NaN when the mean label is 0. The arrays are
 * read only; a temporary of 32n bytes is allocated (aborts if out of memory).
 * Errors: IC_ERR_ARG for n == 0, a NaN pred, or a label outside [0, 1]
 * (message names the index). */
ic_status ic_metrics_compute(const float *pred, const float *label, const uint64_t *user,
                             size_t n, ic_metrics *out, ic_error *err);

/* A streaming accumulator of (user, pred[T], label[T]) for T tasks over an
 * evaluation period: columnar arrays growing by doubling (no allocation per
 * sample in steady state). Not thread safe. */
typedef struct ic_metrics_acc ic_metrics_acc;

/* An empty accumulator for n_tasks in 1..IC_MAX_TASKS (IC_ERR_ARG else). */
ic_status ic_metrics_acc_create(ic_metrics_acc **out, int n_tasks, ic_error *err);
void ic_metrics_acc_free(ic_metrics_acc *a);
/* Appends one sample: pred (T), label (T), both copied. */
void ic_metrics_acc_add(ic_metrics_acc *a, uint64_t user, const float *pred, const float *label);
/* Samples held. */
size_t ic_metrics_acc_count(const ic_metrics_acc *a);
/* ic_metrics_compute over the samples held, for task t (IC_ERR_ARG for a bad
 * t, an empty accumulator, or a bad value, as ic_metrics_compute). */
ic_status ic_metrics_acc_compute(const ic_metrics_acc *a, int t, ic_metrics *out, ic_error *err);
/* Forgets the samples; keeps the memory for the next period. */
void ic_metrics_acc_reset(ic_metrics_acc *a);

/* ------------------------------------------------------------------ */
/* Logs in memory (log.c), the engine (engine.c), replay (replay.c)    */
/* ------------------------------------------------------------------ */

/* A whole log held in memory, in time order, for replaying it several
 * times (epochs, experiment variants). About 360 bytes per event. */
typedef struct {
    ic_event *ev;      /* (n) */
    size_t n, cap;
    ic_names *names;   /* strings of users, items and values; owned */
    ic_reader_stats stats;
} ic_log;

/* Reads path with cfg's schema into log (which it initialises). On error
 * the log is left empty and freed. */
ic_status ic_log_load(ic_log *log, const char *path, const ic_config *cfg,
                      ic_bad_rows policy, ic_error *err);
void ic_log_free(ic_log *log);

/* The engine: one clock store and one model, fed events in time order.
 * The same code path builds samples offline (replay) and online (server),
 * so a sample never sees its own event or a later one. */
typedef struct ic_engine ic_engine;

/* Creates an engine for cfg. model may be NULL (a fresh model from
 * cfg->seed) or one the engine takes ownership of (also when creation
 * fails); likewise clock. */
ic_status ic_engine_create(ic_engine **out, const ic_config *cfg, ic_model *model,
                           ic_clock_store *clock, ic_error *err);
void ic_engine_free(ic_engine *e);

/* What ic_engine_step does with a batch; flags, combined with |. */
typedef enum {
    IC_STEP_APPLY = 1,   /* apply the events to the clock store */
    IC_STEP_PREDICT = 2, /* predict each event before any update */
    IC_STEP_TRAIN = 4,   /* train on the batch (implies a prediction) */
} ic_step_kind;

/* Processes n time-ordered events, in cfg->batch chunks. For each event, in
 * order: the user's clock is read as it stands before the event (only
 * events with ts < the event's ts count), then, with IC_STEP_APPLY, the
 * event is applied. Then the model predicts (probs (n, T), the prediction
 * before any update; may be NULL without PREDICT) and, with IC_STEP_TRAIN,
 * trains on the chunk; *loss (may be NULL) gets the mean training loss.
 * The server applies events as they arrive and trains later with
 * IC_STEP_TRAIN alone: the time filter keeps those samples exact too.
 * Errors: IC_ERR_ORDER from the store, with the events before the bad one
 * applied. */
ic_status ic_engine_step(ic_engine *e, const ic_event *ev, size_t n, int kind,
                         float *probs, double *loss, ic_error *err);

/* Builds the model's sample for ev: reads ev->user's clock at ev->ts into
 * view (unless cfg->clock is none and cfg->history is off) and points out
 * at ev and view. This is
 * the one way samples are made, offline and online. */
void ic_sample_build(ic_clock_store *clock, const ic_config *cfg, const ic_event *ev,
                     ic_clock_view *view, ic_sample *out);

/* Replaces the engine's model and clock store with these (taking
 * ownership; either may be NULL to keep the current one), e.g. after
 * loading a checkpoint. The old ones are freed. */
void ic_engine_adopt(ic_engine *e, ic_model *model, ic_clock_store *clock);

/* Replaces the clock store with an empty one (a new epoch over a log). */
ic_status ic_engine_reset_clock(ic_engine *e, ic_error *err);

/* Trains and predicts on n threads (1 or 2; see ic_model_set_threads),
 * also with a model adopted later (a checkpoint). Returns the threads now
 * in use. Call it with BLAS on one thread. */
int ic_engine_set_threads(ic_engine *e, int n);

ic_model *ic_engine_model(ic_engine *e);
ic_clock_store *ic_engine_clock(ic_engine *e);
const ic_config *ic_engine_config(const ic_engine *e);

/* Replay: the offline driver. Splits the log's time span into train,
 * validation and test (cfg->split_*, or explicit times), trains on the
 * train period in one streaming pass (or epochs), keeps the clock store
 * updating through validation and test with the model frozen, and
 * measures each period. */
typedef enum { IC_PHASE_TRAIN, IC_PHASE_VALID, IC_PHASE_TEST, IC_N_PHASES } ic_phase;

typedef struct {
    int64_t t_valid;        /* start of validation; 0 = from cfg->split_train */
    int64_t t_test;         /* start of test; 0 = from cfg->split_valid */
    int epochs;             /* passes over the train period, default 1 */
    int online_eval;        /* 1: test-then-train over the whole log */
    int train;              /* 0: frozen model (eval of a saved model) */
    int progress;           /* 1: progress lines on stderr */
    const char *label;      /* prefix of progress lines, may be NULL */
    uint64_t checkpoint_every; /* events; 0 = never */
    const char *checkpoint; /* checkpoint path prefix */
    const char *resume;     /* checkpoint path prefix to resume from */
    FILE *predictions;      /* test-period predictions as CSV, may be NULL */
    uint64_t stop_after;    /* stop after this many events (0 = all); tests */
} ic_replay_opts;

/* Defaults: epochs 1, train 1, everything else off. */
void ic_replay_opts_default(ic_replay_opts *o);

typedef struct {
    uint64_t n[IC_N_PHASES];                      /* events per period */
    int64_t t_valid, t_test;                      /* the boundaries used */
    ic_metrics m[IC_N_PHASES][IC_MAX_TASKS];      /* per period and task */
    double train_loss;                            /* mean over the last epoch */
    double seconds;                               /* wall time */
} ic_replay_result;

/* Replays log through e. Train-period metrics are progressive (each batch
 * predicted before it is trained on). Errors: IC_ERR_ARG for a log without
 * a validation or test period, I/O errors of checkpoints. */
ic_status ic_replay(ic_engine *e, const ic_log *log, const ic_replay_opts *o,
                    ic_replay_result *res, ic_error *err);

/* The time boundaries that cfg's split fractions give for log. */
void ic_replay_split(const ic_config *cfg, const ic_log *log, int64_t *t_valid, int64_t *t_test);

/* ------------------------------------------------------------------ */
/* The server (server.c, journal.c, event_json.c)                      */
/* ------------------------------------------------------------------ */

/* The engine behind HTTP (docs/SERVING.md): POST /v1/rank, POST
 * /v1/events (applied to the clock store at once, trained on by a
 * background thread), GET /v1/users/{id}/clock, /healthz, /metrics. Every
 * acknowledged event is in an fsync'd journal under data_dir before the
 * reply; checkpoints (model, clock store, server state) bound the replay. */
typedef struct {
    const char *data_dir;   /* required; created if missing */
    const char *model;      /* initial model when data_dir has no checkpoint; NULL = fresh */
    const char *bind;       /* IPv4 or IPv6 address; default "127.0.0.1" */
    int port;               /* 0 = any free port (ic_server_port tells) */
    size_t max_body;        /* request body limit, bytes (413 beyond); default 1 MiB */
    int max_candidates;     /* items per rank request; default 1000 */
    int threads;            /* HTTP worker threads; default 4 */
    int quiet;              /* 1: no notes on stderr */
} ic_server_opts;

/* Fills o with the defaults above (data_dir NULL). */
void ic_server_opts_default(ic_server_opts *o);

typedef struct ic_server ic_server;

/* Recovers the state under o->data_dir (the latest checkpoint, then the
 * journal after it, cutting a torn tail), starts the trainer thread and
 * then the HTTP daemon. A fresh data_dir gets a first checkpoint at once.
 * cfg must be the configuration the checkpoint was made with. Errors:
 * IC_ERR_ARG (options), IC_ERR_IO (data_dir, bind, port in use),
 * IC_ERR_CORRUPT and IC_ERR_MISMATCH (checkpoint, journal). */
ic_status ic_server_start(ic_server **out, const ic_config *cfg, const ic_server_opts *o,
                          ic_error *err);

/* The TCP port the server listens on. */
int ic_server_port(const ic_server *s);

/* Writes a checkpoint (clock store, model, pending training events) and
 * drops the journal segments it covers. Thread safe; ingestion pauses while
 * the clock store is saved, ranking while the model is. Errors: IC_ERR_IO
 * (the previous checkpoint stays valid). */
ic_status ic_server_checkpoint(ic_server *s, ic_error *err);

/* Stops HTTP (waiting for requests in flight) and the trainer, writes a
 * final checkpoint and frees everything; s may be NULL. The status is the
 * checkpoint's. */
ic_status ic_server_stop(ic_server *s, ic_error *err);

/* ------------------------------------------------------------------ */
/* The offline comparison (experiment.c)                               */
/* ------------------------------------------------------------------ */

#define IC_MAX_VARIANTS 16

/* One model variant of the comparison: a name and its configuration. */
typedef struct {
    char name[32];
    ic_config cfg;
} ic_variant;

/* Fills out[] with the paper's variants on top of base: baseline (clock =
 * none), naive, adaptive, gaussian; with extras, also the beyond-the-paper
 * options (learned sigma, continuous time, score pooling). Returns the
 * count. */
int ic_experiment_variants(const ic_config *base, int extras, ic_variant *out, int cap);

/* The test-period figures of one variant over its seeds (main task). */
typedef struct {
    char name[32];
    int seeds;
    double auc, auc_std, uauc, uauc_std, gauc, gauc_std, logloss, logloss_std;
    double seconds;                  /* summed over seeds */
    double auc_seed[64], uauc_seed[64]; /* per seed, seeds <= 64 */
} ic_variant_result;

/* Runs every variant with seeds cfg.seed, cfg.seed+1, ... on the same log
 * and order, jobs at a time in threads (each job one BLAS thread), and
 * fills out[nv]. progress: one line per finished run on stderr. */
ic_status ic_experiment_run(const ic_log *log, const ic_variant *v, int nv, int seeds, int jobs,
                            int progress, ic_variant_result *out, ic_error *err);

/* ------------------------------------------------------------------ */
/* Importers and negative sampling (import.c, negatives.c)             */
/* ------------------------------------------------------------------ */

/* Importers turn a public check-in log into the event format (a sorted CSV
 * with a header, docs/DATA.md): one row per check-in, label "checkin" = 1.
 * Inputs may be plain or .gz; separators (',' ';' tab) are detected from
 * the header, which must hold exactly the source's columns (any order). */
typedef enum {
    IC_IMPORT_CONTEXTTRAILS,   /* Context Trails: check-ins (';') + venues (',') */
    IC_IMPORT_FOURSQUARE_TSMC, /* Foursquare TSMC 2014 weekly trajectories (no dates) */
} ic_import_format;

/* "contexttrails", "foursquare-tsmc" and back; parse returns -1 if unknown. */
const char *ic_import_format_name(ic_import_format f);
int ic_import_format_parse(const char *s);

typedef struct {
    ic_import_format format;
    const char *const *input;  /* check-in files, n_input >= 1 (read in order) */
    int n_input;
    const char *pois;          /* contexttrails: the venues file (required) */
    int tz_given;              /* 1: tz_min is the UTC offset of every event */
    int32_t tz_min;
    /* contexttrails: 0 (default) reads a timestamp's clock digits as UTC and
     * ignores its written offset (the +08:00 caveat, docs/DATA.md); tz is
     * then tz_min, or else the most common written offset in the file.
     * 1 takes timestamps as written, tz = each row's written offset. */
    int trust_offsets;
    /* foursquare-tsmc: the timeline's first Monday 00:00 (Unix seconds of
     * the local clock); 1 to keep the gaps between trajectory ids as empty
     * weeks instead of laying a user's weeks end to end; 1 to start every
     * user in the first week instead of ending every user in the last one
     * (the default, so a time split finds most users on both sides). */
    int64_t origin;
    int keep_tid_gaps;
    int align_start;
    int min_active_days;       /* keep users with >= N distinct local days; 0 = all */
    int strict;                /* 1: the first bad row fails the import */
} ic_import_opts;

/* Defaults: no inputs, tz from the data, origin 2012-04-02 (a Monday, the
 * start of the TSMC collection), no filter, bad rows skipped and counted. */
void ic_import_opts_default(ic_import_opts *o, ic_import_format f);

#define IC_IMPORT_KEEP_BAD 5   /* detailed messages kept of rejected rows */
#define IC_IMPORT_REASONS 12   /* distinct rejection reasons counted */

typedef struct {
    uint64_t rows;             /* check-in rows read, all inputs, headers excluded */
    uint64_t poi_rows;         /* venue rows read (contexttrails) */
    uint64_t rejected;         /* check-in and venue rows rejected */
    struct {
        char what[96];         /* "unknown venue", "bad hour" ... */
        uint64_t n;
    } reason[IC_IMPORT_REASONS];
    int n_reason;
    char first_bad[IC_IMPORT_KEEP_BAD][256]; /* "file:line: what" */
    int n_first_bad;
    uint64_t uncategorised;    /* events whose venue has no category */
    uint64_t offset_differs;   /* contexttrails: written offset != tz used */
    int32_t tz_min;            /* the offset written (the last row's) */
    uint64_t inactive_users;   /* users dropped by min_active_days */
    uint64_t inactive_events;
    uint64_t events;           /* events written */
    uint64_t users, items;     /* distinct in the output */
    int64_t first_ts, last_ts; /* time span of the output */
} ic_import_stats;

/* Reads o's inputs and writes the sorted event log to out_path ("-" is
 * stdout) atomically (a temporary file renamed over it). The rows are held
 * in memory (about the output's size plus 56 bytes per row) to sort them.
 * st may be NULL. Errors: IC_ERR_ARG (bad options), IC_ERR_IO (cannot read
 * or write; a corrupt .gz), IC_ERR_PARSE ("file:line: missing column
 * 'venue_id' ..." for a header, or the first bad row under strict). */
ic_status ic_import_run(const ic_import_opts *o, const char *out_path, ic_import_stats *st,
                        ic_error *err);

/* Negative sampling for a positives-only log. For each positive (task 0's
 * label > 0) it writes the positive and then up to K negatives at the same
 * time, each an item drawn in proportion to its count of positives strictly
 * before that time, never an item the user has an event with at that same
 * time, never twice for one positive. A negative takes the drawn item's
 * item-side fields as last seen and the positive's user, time, tz and
 * context fields; its actions and labels are 0. Other rows pass through. */
typedef struct {
    int per_positive;          /* K >= 1 */
    uint64_t seed;
} ic_negatives_opts;

typedef struct {
    uint64_t rows_in;          /* events read */
    uint64_t positives;
    uint64_t negatives;        /* written */
    uint64_t short_positives;  /* positives with fewer than K negatives (too few past items) */
    uint64_t passed;           /* non-positive rows copied */
    uint64_t items;            /* distinct items seen */
} ic_negatives_stats;

/* Reads in_path with cfg (ic_reader_open, bad rows fail) and writes out_path
 * atomically: header time, tz (if cfg has a tz column), user, item, the
 * fields, then the action and task columns (each name once), times as Unix
 * seconds; columns cfg does not name are dropped. Deterministic in
 * (input, cfg, opts). Popularity draws cost O(log items) (a Fenwick tree).
 * st may be NULL. Errors: those of the reader, IC_ERR_ARG (K < 1), IC_ERR_IO. */
ic_status ic_negatives_run(const ic_config *cfg, const char *in_path, const char *out_path,
                           const ic_negatives_opts *o, ic_negatives_stats *st, ic_error *err);

/* ------------------------------------------------------------------ */
/* The listening simulator (synth.c)                                   */
/* ------------------------------------------------------------------ */

/* A seeded music-listening log with a known daily rhythm (docs/SIMULATOR.md).
 * Same options -> same events, byte for byte, on any IEEE-754 machine. */

#define IC_SYNTH_GENRES 20
#define IC_SYNTH_MOODS 8
#define IC_SYNTH_LANGS 5
#define IC_SYNTH_HEADER "ts,user,item,tz,genre,mood,lang,finish,like,skip,dislike"
#define IC_SYNTH_ORACLE_COLS ",p_finish,p_static,p_global"

typedef struct {
    int n_users;           /* default 2000 */
    int n_items;           /* default 10000 */
    int n_days;            /* default 56 (8 weeks) */
    uint64_t seed;         /* default 1 */
    double rhythm;         /* 0..1: how much the local hour matters; default 1 */
    int64_t start;         /* Unix seconds; default 2023-08-01T00:00:00Z */
    double events_per_day; /* mean plays per active user-day; default 10 */
} ic_synth_opts;

/* Fills o with the defaults above. */
void ic_synth_opts_default(ic_synth_opts *o);

/* Checks ranges (users 1..1e6, items 1..1e7, days 1..3660, rhythm in
 * [0, 1], events_per_day in [2, 1000], |start| <= 2^50). IC_ERR_ARG with
 * "option: what". */
ic_status ic_synth_check(const ic_synth_opts *o, ic_error *err);

/* One simulated impression. Values are indices: names come from
 * ic_synth_genre_name() etc.; genre[1] is -1 unless the item has a second
 * genre. p_finish is the simulator's true finish probability. Two oracles
 * for comparison: p_static replaces the hour-dependent taste by the user's
 * daily average (what a time-blind model could know at best); p_global
 * adds back only the hour effect shared by all users (what user taste plus
 * a global hour feature could know). At rhythm 0 all three are equal. */
typedef struct {
    int64_t ts;            /* Unix seconds, UTC */
    int32_t tz_min;        /* the user's UTC offset */
    uint32_t user;         /* 0..n_users-1, written "u<user>" */
    uint32_t item;         /* 0..n_items-1, written "i<item>" */
    int8_t genre[2];
    int8_t mood, lang;
    uint8_t finish, like, skip, dislike; /* 0/1; finish and skip exclusive */
    float p_finish, p_static, p_global;
} ic_synth_event;

typedef struct {
    uint64_t events;
    uint64_t finish, like, skip, dislike;
    uint32_t users_active; /* users with at least one event */
    uint32_t items_seen;   /* items with at least one event */
} ic_synth_stats;

/* Called once per event in time order (ts, then user, then the user's own
 * order). Return 0 to go on; a negative ic_status stops the run, which
 * returns it; a positive value stops the run, which returns IC_OK. */
typedef int (*ic_synth_fn)(void *ctx, const ic_synth_event *ev);

/* Generates the log and hands every event to fn. stats (may be NULL)
 * receives counts of the events handed out. Memory is bounded by about two
 * days of events. Errors: IC_ERR_ARG from ic_synth_check, or fn's status. */
ic_status ic_synth_run(const ic_synth_opts *o, ic_synth_fn fn, void *ctx,
                       ic_synth_stats *stats, ic_error *err);

/* Writes the header line and one CSV row per event to out (not closed).
 * IC_ERR_IO if a write fails. */
ic_status ic_synth_write_csv(const ic_synth_opts *o, FILE *out, ic_synth_stats *stats,
                             ic_error *err);
/* The same with the columns IC_SYNTH_ORACLE_COLS appended (the event's
 * three probabilities, 6 decimals). */
ic_status ic_synth_write_csv_oracle(const ic_synth_opts *o, FILE *out, ic_synth_stats *stats,
                                    ic_error *err);

/* Names of value indices ("pop", "calm", "en"); NULL when out of range. */
const char *ic_synth_genre_name(int g);
const char *ic_synth_mood_name(int m);
const char *ic_synth_lang_name(int l);

#ifdef __cplusplus
}
#endif
#endif /* ICLOCK_H */
