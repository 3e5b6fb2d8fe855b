/* config.c: the configuration: built-in defaults (the same as
 * configs/music.ini), INI loading through inih, per-key and cross-key
 * validation, command-line overrides (ic_config_set) and writing a config
 * back out (ic_config_write).
 *
 * Scalar keys live in one table (keys[] below: section, key, type, offset,
 * range), so adding a key is one line there. The three list sections
 * ([fields], [actions], [tasks]) are handled by list_set(). inih in Debian
 * 12 is built without INI_HANDLER_LINENO, so line numbers come from our own
 * fgets-style reader (cfg_read_line), which also sees section headers: a
 * list section present in a file replaces the list, even when it is empty.
 *
 * Deliberately not here: reading logs (csv.c), or any meaning of the model
 * and training keys beyond their ranges. */
#include "internal.h"

#include <errno.h>
#include <ini.h>
#include <locale.h>
#include <math.h>

static void add_named(ic_named_weight *arr, int *n, const char *name, float w)
{
    ic__strlcpy(arr[*n].name, name, IC_NAME_MAX);
    arr[*n].weight = w;
    (*n)++;
}

void ic_config_default(ic_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ic__strlcpy(cfg->time_col, "ts", IC_NAME_MAX);
    ic__strlcpy(cfg->user_col, "user", IC_NAME_MAX);
    ic__strlcpy(cfg->item_col, "item", IC_NAME_MAX);
    ic__strlcpy(cfg->tz_col, "tz", IC_NAME_MAX);
    cfg->tz_default_min = 0;
    cfg->delimiter = ',';
    cfg->multi_sep = '|';

    const char *fields[] = {"genre", "mood", "lang"};
    for (int i = 0; i < 3; i++) ic__strlcpy(cfg->field[i], fields[i], IC_NAME_MAX);
    cfg->n_fields = 3;

    cfg->n_clock = 3;
    for (int i = 0; i < 3; i++) cfg->clock_field[i] = i;
    cfg->window_days = 30;
    cfg->top_k = 3;
    cfg->refresh = IC_REFRESH_REALTIME;

    /* The paper's alpha, beta, gamma, omega. */
    add_named(cfg->action, &cfg->n_actions, "like", 1.0f);
    add_named(cfg->action, &cfg->n_actions, "finish", 1.0f);
    add_named(cfg->action, &cfg->n_actions, "skip", -1.0f);
    add_named(cfg->action, &cfg->n_actions, "dislike", -1.0f);

    add_named(cfg->task, &cfg->n_tasks, "finish", 1.0f);
    add_named(cfg->task, &cfg->n_tasks, "like", 1.0f);

    cfg->clock = IC_CLOCK_GAUSSIAN;
    cfg->clock_sigma = 1.0f;
    cfg->clock_pool = IC_POOL_MEAN;
    cfg->history = 1; /* see docs/EXPERIMENTS.md: the baseline sees the time-blind history too */
    cfg->dim = 16;
    cfg->cross_layers = 3;
    cfg->cross_rank = 0;
    cfg->n_mlp = 3;
    cfg->mlp[0] = 256;
    cfg->mlp[1] = 128;
    cfg->mlp[2] = 64;
    cfg->structure = IC_STRUCT_PARALLEL;

    cfg->batch = 512;
    cfg->lr = 1e-3f;
    cfg->emb_lr = 0.05f;
    cfg->emb_optim = IC_OPT_ADAGRAD;
    cfg->l2_emb = 1e-6f;
    cfg->init_std = 0.01f;
    cfg->adam_beta1 = 0.9f;
    cfg->adam_beta2 = 0.999f;
    cfg->adam_eps = 1e-8f;
    cfg->seed = 1;
    cfg->split_train = 0.75;
    cfg->split_valid = 0.125;
}

int ic_config_field_index(const ic_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_fields; i++)
        if (!strcmp(cfg->field[i], name)) return i;
    return -1;
}

/* ---- Enum names ------------------------------------------------------------ */

static const char *const clock_names[] = {"none", "naive", "adaptive", "gaussian", NULL};
static const char *const refresh_names[] = {"realtime", "daily", NULL};
static const char *const pool_names[] = {"mean", "score", NULL};
static const char *const structure_names[] = {"parallel", "stacked", NULL};
static const char *const optim_names[] = {"adagrad", "adam", NULL};

static int enum_count(const char *const *names)
{
    int n = 0;
    while (names[n]) n++;
    return n;
}

static const char *enum_name(const char *const *names, int v)
{
    return v >= 0 && v < enum_count(names) ? names[v] : "?";
}

static int enum_parse(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

const char *ic_clock_kind_name(ic_clock_kind k) { return enum_name(clock_names, (int)k); }
int ic_clock_kind_parse(const char *s) { return enum_parse(clock_names, s); }
const char *ic_refresh_name(ic_refresh r) { return enum_name(refresh_names, (int)r); }
const char *ic_pool_name(ic_pool p) { return enum_name(pool_names, (int)p); }
const char *ic_structure_name(ic_structure s) { return enum_name(structure_names, (int)s); }
const char *ic_optim_name(ic_optim_kind o) { return enum_name(optim_names, (int)o); }

/* ---- Numbers in the C locale ------------------------------------------------
 * A config means the same whatever LC_NUMERIC the host program set, so
 * numbers are read with ic__strtod_c and written under uselocale("C"). */

/* Strict: the whole of s is one finite number. Returns 0 or -1. */
static int parse_double(const char *s, double *out)
{
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = ic__strtod_c(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Strict decimal integer (optional sign). Returns 0 or -1. */
static int parse_ll(const char *s, long long *out)
{
    if (!*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

/* ---- The key table ------------------------------------------------------------ */

typedef enum {
    K_COL,         /* a column name (char[IC_NAME_MAX]) with a source line */
    K_INT,         /* int */
    K_FLOAT,       /* float */
    K_DOUBLE,      /* double */
    K_U64,         /* uint64_t */
    K_CHAR,        /* one character; a few words accepted ("tab") */
    K_ENUM,        /* an enum stored as int, by name */
    K_INTLIST,     /* int[] with its count at aux */
    K_CLOCKFIELDS, /* [clock] fields: names resolved to field indices */
} key_type;

enum { LO_OPEN = 1, HI_OPEN = 2, OPTIONAL = 4 };

typedef struct {
    const char *section, *key;
    key_type type;
    size_t off;               /* of the value in ic_config */
    double lo, hi;            /* numeric range, inclusive unless LO_OPEN/HI_OPEN */
    int flags;
    const char *const *names; /* K_ENUM */
    size_t aux;               /* K_COL: offset of its line; K_INTLIST: of its count */
} key_def;

_Static_assert(sizeof(ic_clock_kind) == sizeof(int) && sizeof(ic_refresh) == sizeof(int) &&
                   sizeof(ic_pool) == sizeof(int) && sizeof(ic_structure) == sizeof(int) &&
                   sizeof(ic_optim_kind) == sizeof(int),
               "enums are stored through int pointers");

#define OFF(f) offsetof(ic_config, f)
#define COL(s, k, f, ln, fl) {s, k, K_COL, OFF(f), 0, 0, fl, NULL, OFF(ln)}
#define NUM(s, k, t, f, lo, hi, fl) {s, k, t, OFF(f), lo, hi, fl, NULL, 0}
#define ENUM(s, k, f, names) {s, k, K_ENUM, OFF(f), 0, 0, 0, names, 0}

/* Every scalar key, in the order ic_config_write writes them. */
static const key_def keys[] = {
    COL("data", "time", time_col, line.time, 0),
    COL("data", "user", user_col, line.user, 0),
    COL("data", "item", item_col, line.item, 0),
    COL("data", "tz", tz_col, line.tz, OPTIONAL),
    NUM("data", "tz_default", K_INT, tz_default_min, -1080, 1080, 0),
    NUM("data", "delimiter", K_CHAR, delimiter, 0, 0, 0),
    NUM("data", "multi_separator", K_CHAR, multi_sep, 0, 0, 0),
    {"clock", "fields", K_CLOCKFIELDS, OFF(clock_field), 0, 0, 0, NULL, OFF(n_clock)},
    NUM("clock", "window_days", K_INT, window_days, 1, 3650, 0),
    NUM("clock", "top_k", K_INT, top_k, 1, IC_MAX_TOPK, 0),
    ENUM("clock", "refresh", refresh, refresh_names),
    ENUM("model", "clock", clock, clock_names),
    NUM("model", "clock_sigma", K_FLOAT, clock_sigma, 0, 24, LO_OPEN),
    NUM("model", "clock_sigma_learn", K_INT, clock_sigma_learn, 0, 1, 0),
    NUM("model", "clock_continuous", K_INT, clock_continuous, 0, 1, 0),
    NUM("model", "history", K_INT, history, 0, 1, 0),
    ENUM("model", "clock_pool", clock_pool, pool_names),
    NUM("model", "dim", K_INT, dim, 1, 1024, 0),
    NUM("model", "cross_layers", K_INT, cross_layers, 0, 16, 0),
    NUM("model", "cross_rank", K_INT, cross_rank, 0, 1024, 0),
    {"model", "mlp", K_INTLIST, OFF(mlp), 1, 65536, 0, NULL, OFF(n_mlp)},
    ENUM("model", "structure", structure, structure_names),
    NUM("train", "batch", K_INT, batch, 1, 1 << 20, 0),
    NUM("train", "lr", K_FLOAT, lr, 0, 10, LO_OPEN),
    NUM("train", "emb_lr", K_FLOAT, emb_lr, 0, 100, LO_OPEN),
    ENUM("train", "emb_optim", emb_optim, optim_names),
    NUM("train", "l2_emb", K_FLOAT, l2_emb, 0, 1, 0),
    NUM("train", "init_std", K_FLOAT, init_std, 0, 10, 0),
    NUM("train", "adam_beta1", K_FLOAT, adam_beta1, 0, 1, HI_OPEN),
    NUM("train", "adam_beta2", K_FLOAT, adam_beta2, 0, 1, HI_OPEN),
    NUM("train", "adam_eps", K_FLOAT, adam_eps, 0, 1, LO_OPEN),
    NUM("train", "seed", K_U64, seed, 0, 0, 0),
    NUM("train", "split_train", K_DOUBLE, split_train, 0, 1, LO_OPEN | HI_OPEN),
    NUM("train", "split_valid", K_DOUBLE, split_valid, 0, 1, LO_OPEN | HI_OPEN),
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* The list sections, and the order sections are written in. */
enum { L_FIELDS, L_ACTIONS, L_TASKS, N_LISTS };
static const char *const list_sections[N_LISTS] = {"fields", "actions", "tasks"};
static const char *const section_order[] = {"data", "fields", "clock", "actions",
                                            "tasks", "model", "train"};
#define N_SECTIONS ((int)(sizeof section_order / sizeof section_order[0]))

static int list_index(const char *section)
{
    for (int i = 0; i < N_LISTS; i++)
        if (!strcmp(section, list_sections[i])) return i;
    return -1;
}

static int section_known(const char *section)
{
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(section, section_order[i])) return 1;
    return 0;
}

static int key_index(const char *section, const char *key)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key)) return i;
    return -1;
}

static void *at(ic_config *cfg, size_t off) { return (char *)cfg + off; }
static const void *cat(const ic_config *cfg, size_t off) { return (const char *)cfg + off; }

/* ---- Parsing context and messages ------------------------------------------- */

typedef enum { MODE_FILE, MODE_OPTION, MODE_VALIDATE } parse_mode;

typedef struct {
    ic_config *cfg;      /* a working copy, committed on success */
    parse_mode mode;
    const char *path;    /* MODE_FILE: the file; MODE_VALIDATE: cfg->path or "" */
    FILE *f;
    int line;            /* current line of path */
    int prev_nl;         /* the last chunk read ended a line */
    int failed;
    ic_error *err;
    int key_line[N_KEYS];          /* line each scalar key was set on; 0 = not */
    int list_line[N_LISTS];        /* line of the list section's header; 0 = absent */
    char clock_name[IC_MAX_CLOCK_FIELDS][IC_NAME_MAX];
    int n_clock_name;
} pctx;

/* "where: what" into c->err, first failure only. Returns 0 (inih's "error"). */
static int pfail_at(pctx *c, const char *sec, const char *key, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int pfail_at(pctx *c, const char *sec, const char *key, int line, const char *fmt, ...)
{
    if (c->failed) return 0;
    c->failed = 1;
    if (!c->err) return 0;
    char where[300], what[600];
    char sk[100] = ""; /* "[section] key", "[section]", "key" or "" */
    if (*sec && *key) snprintf(sk, sizeof sk, "[%s] %s", sec, key);
    else if (*sec) snprintf(sk, sizeof sk, "[%s]", sec);
    else if (*key) snprintf(sk, sizeof sk, "%s", key);
    if (c->mode == MODE_OPTION) snprintf(where, sizeof where, "option");
    else if (line > 0) snprintf(where, sizeof where, "%s:%d:", c->path, line);
    else snprintf(where, sizeof where, "%s:", *c->path ? c->path : "config");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t wl = strlen(where);
    if (!*sk && wl && where[wl - 1] == ':') where[wl - 1] = '\0';
    /* "file:3: [data] time: what", "option [data] time: what", "file:3: what" */
    snprintf(c->err->msg, sizeof c->err->msg, "%s%s%s: %s", where, *sk ? " " : "", sk, what);
    return 0;
}

/* The line a scalar key was given on in this file (0 if not). */
static int kline(const pctx *c, const char *sec, const char *key)
{
    int i = key_index(sec, key);
    return i >= 0 ? c->key_line[i] : 0;
}

const char *ic_config_where(const ic_config *cfg, const char *section, const char *key,
                            int idx, char *buf, size_t cap)
{
    int line = 0;
    if (!strcmp(section, "data")) {
        if (!strcmp(key, "time")) line = cfg->line.time;
        else if (!strcmp(key, "user")) line = cfg->line.user;
        else if (!strcmp(key, "item")) line = cfg->line.item;
        else if (!strcmp(key, "tz")) line = cfg->line.tz;
    } else if (idx >= 0) {
        if (!strcmp(section, "fields") && idx < IC_MAX_FIELDS) line = cfg->line.field[idx];
        if (!strcmp(section, "actions") && idx < IC_MAX_ACTIONS) line = cfg->line.action[idx];
        if (!strcmp(section, "tasks") && idx < IC_MAX_TASKS) line = cfg->line.task[idx];
    }
    if (line > 0 && cfg->path[0]) snprintf(buf, cap, "%s:%d: [%s] %s", cfg->path, line, section, key);
    else if (line < 0) snprintf(buf, cap, "option [%s] %s", section, key);
    else snprintf(buf, cap, "built-in default [%s] %s", section, key);
    return buf;
}

/* ---- Setting one key ------------------------------------------------------------ */

static int in_range(const key_def *k, double v)
{
    if ((k->flags & LO_OPEN) ? v <= k->lo : v < k->lo) return 0;
    if ((k->flags & HI_OPEN) ? v >= k->hi : v > k->hi) return 0;
    return 1;
}

static const char *range_text(const key_def *k, char *buf, size_t cap)
{
    snprintf(buf, cap, "%c%.10g, %.10g%c", (k->flags & LO_OPEN) ? '(' : '[', k->lo, k->hi,
             (k->flags & HI_OPEN) ? ')' : ']');
    return buf;
}

/* A column or field name: non-empty (unless optional), shorter than IC_NAME_MAX. */
static int set_name(pctx *c, const char *sec, const char *key, int line, char *dst,
                    const char *value, int optional)
{
    size_t n = strlen(value);
    if (n == 0 && !optional) return pfail_at(c, sec, key, line, "a column name is needed");
    if (n >= IC_NAME_MAX)
        return pfail_at(c, sec, key, line, "name \"%s\" is longer than %d bytes", value,
                        IC_NAME_MAX - 1);
    memcpy(dst, value, n + 1);
    return 1;
}

static int set_char(pctx *c, const key_def *k, int line, const char *value)
{
    static const struct { const char *word; char ch; } words[] = {
        {"tab", '\t'}, {"semicolon", ';'}, {"comma", ','}, {"space", ' '}, {"pipe", '|'}};
    char ch = 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(value, words[i].word)) ch = words[i].ch;
    if (!ch && strlen(value) == 1) ch = value[0];
    if (!ch || ch == '"' || ch == '\r' || ch == '\n' || (unsigned char)ch >= 0x80)
        return pfail_at(c, k->section, k->key, line,
                        "\"%s\" is not one character (or tab, semicolon, comma, space, pipe; "
                        "not a quote)", value);
    *(char *)at(c->cfg, k->off) = ch;
    return 1;
}

static int set_number(pctx *c, const key_def *k, int line, const char *value)
{
    char rb[64];
    if (k->type == K_U64) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (!*value || *end || errno || value[0] == '-' || value[0] == '+')
            return pfail_at(c, k->section, k->key, line, "\"%s\" is not a non-negative integer",
                            value);
        *(uint64_t *)at(c->cfg, k->off) = v;
        return 1;
    }
    double v;
    if (k->type == K_INT) {
        long long iv;
        if (parse_ll(value, &iv))
            return pfail_at(c, k->section, k->key, line, "\"%s\" is not an integer", value);
        v = (double)iv;
    } else if (parse_double(value, &v)) {
        return pfail_at(c, k->section, k->key, line, "\"%s\" is not a number", value);
    }
    if (!in_range(k, v))
        return pfail_at(c, k->section, k->key, line, "%s is out of range %s", value,
                        range_text(k, rb, sizeof rb));
    if (k->type == K_INT) *(int *)at(c->cfg, k->off) = (int)v;
    else if (k->type == K_FLOAT) *(float *)at(c->cfg, k->off) = (float)v;
    else *(double *)at(c->cfg, k->off) = v;
    return 1;
}

static int set_enum(pctx *c, const key_def *k, int line, const char *value)
{
    int v = enum_parse(k->names, value);
    if (v < 0) {
        char opts[128] = "";
        for (int i = 0; k->names[i]; i++) {
            strncat(opts, i ? ", " : "", sizeof opts - strlen(opts) - 1);
            strncat(opts, k->names[i], sizeof opts - strlen(opts) - 1);
        }
        return pfail_at(c, k->section, k->key, line, "unknown value \"%s\" (one of: %s)", value,
                        opts);
    }
    *(int *)at(c->cfg, k->off) = v;
    return 1;
}

/* Splits a comma-separated value into trimmed items in place; returns the
 * count (0 for an empty value), or -1 if more than cap or an item is empty. */
static int split_list(char *s, char **item, int cap)
{
    int n = 0;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return 0;
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        while (*p == ' ' || *p == '\t') p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
        if (!*p || n == cap) return -1;
        item[n++] = p;
        if (!comma) return n;
        p = comma + 1;
    }
}

static int set_intlist(pctx *c, const key_def *k, int line, const char *value)
{
    char buf[512], *item[IC_MAX_MLP + 1], rb[64];
    ic__strlcpy(buf, value, sizeof buf);
    int n = split_list(buf, item, IC_MAX_MLP + 1);
    if (n < 1 || n > IC_MAX_MLP)
        return pfail_at(c, k->section, k->key, line,
                        "\"%s\" is not a list of 1 to %d comma-separated sizes", value, IC_MAX_MLP);
    int *dst = at(c->cfg, k->off);
    for (int i = 0; i < n; i++) {
        long long v;
        if (parse_ll(item[i], &v))
            return pfail_at(c, k->section, k->key, line, "\"%s\" is not an integer", item[i]);
        if (!in_range(k, (double)v))
            return pfail_at(c, k->section, k->key, line, "%s is out of range %s", item[i],
                            range_text(k, rb, sizeof rb));
        dst[i] = (int)v;
    }
    *(int *)at(c->cfg, k->aux) = n;
    return 1;
}

/* Resolves c->clock_name[] to indices into cfg->field. */
static int resolve_clock(pctx *c, int line)
{
    ic_config *cfg = c->cfg;
    for (int i = 0; i < c->n_clock_name; i++) {
        int f = ic_config_field_index(cfg, c->clock_name[i]);
        if (f < 0) {
            if (line == 0 && c->list_line[L_FIELDS] > 0)
                return pfail_at(c, "fields", "", c->list_line[L_FIELDS],
                                "clock field '%s' is no longer a field (this section replaces "
                                "the list; set [clock] fields too)", c->clock_name[i]);
            return pfail_at(c, "clock", "fields", line, "clock field '%s' is not in [fields]",
                            c->clock_name[i]);
        }
        cfg->clock_field[i] = f;
    }
    cfg->n_clock = c->n_clock_name;
    return 1;
}

static int set_clockfields(pctx *c, const key_def *k, int line, const char *value)
{
    char buf[512], *item[IC_MAX_CLOCK_FIELDS + 1];
    ic__strlcpy(buf, value, sizeof buf);
    int n = split_list(buf, item, IC_MAX_CLOCK_FIELDS + 1);
    if (n < 0 || n > IC_MAX_CLOCK_FIELDS)
        return pfail_at(c, k->section, k->key, line,
                        "\"%s\" is not a list of at most %d comma-separated fields", value,
                        IC_MAX_CLOCK_FIELDS);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++)
            if (!strcmp(item[i], item[j]))
                return pfail_at(c, k->section, k->key, line, "field '%s' is listed twice",
                                item[i]);
        if (strlen(item[i]) >= IC_NAME_MAX)
            return pfail_at(c, k->section, k->key, line, "name \"%s\" is too long", item[i]);
        ic__strlcpy(c->clock_name[i], item[i], IC_NAME_MAX);
    }
    c->n_clock_name = n;
    /* In a file, [fields] may come later and replace the list: resolve at
     * the end. An option applies to the fields as they are. */
    return c->mode == MODE_OPTION ? resolve_clock(c, line) : 1;
}

static int set_key(pctx *c, const key_def *k, int line, const char *value)
{
    switch (k->type) {
    case K_COL:
        if (!set_name(c, k->section, k->key, line, at(c->cfg, k->off), value,
                      k->flags & OPTIONAL))
            return 0;
        *(int *)at(c->cfg, k->aux) = line;
        return 1;
    case K_INT:
    case K_FLOAT:
    case K_DOUBLE:
    case K_U64: return set_number(c, k, line, value);
    case K_CHAR: return set_char(c, k, line, value);
    case K_ENUM: return set_enum(c, k, line, value);
    case K_INTLIST: return set_intlist(c, k, line, value);
    case K_CLOCKFIELDS: return set_clockfields(c, k, line, value);
    }
    return 0;
}

/* ---- List sections ------------------------------------------------------------ */

static void list_clear(ic_config *cfg, int li)
{
    if (li == L_FIELDS) cfg->n_fields = 0;
    if (li == L_ACTIONS) cfg->n_actions = 0;
    if (li == L_TASKS) cfg->n_tasks = 0;
}

/* Finds name in list li, or appends it (-1 when full). *added says which. */
static int list_slot(ic_config *cfg, int li, const char *name, int *added)
{
    static const int cap[N_LISTS] = {IC_MAX_FIELDS, IC_MAX_ACTIONS, IC_MAX_TASKS};
    int *n = li == L_FIELDS ? &cfg->n_fields : li == L_ACTIONS ? &cfg->n_actions : &cfg->n_tasks;
    for (int i = 0; i < *n; i++) {
        const char *s = li == L_FIELDS    ? cfg->field[i]
                        : li == L_ACTIONS ? cfg->action[i].name
                                          : cfg->task[i].name;
        if (!strcmp(s, name)) {
            *added = 0;
            return i;
        }
    }
    *added = 1;
    return *n < cap[li] ? (*n)++ : -1;
}

static int list_set(pctx *c, int li, const char *name, const char *value, int line)
{
    static const char *const what[N_LISTS] = {"fields", "actions", "tasks"};
    static const int cap[N_LISTS] = {IC_MAX_FIELDS, IC_MAX_ACTIONS, IC_MAX_TASKS};
    ic_config *cfg = c->cfg;
    const char *sec = list_sections[li];
    if (c->mode == MODE_FILE && !c->list_line[li]) { /* defensive: the reader saw no header */
        c->list_line[li] = line;
        list_clear(cfg, li);
    }
    char nm[IC_NAME_MAX];
    if (!set_name(c, sec, name, line, nm, name, 0)) return 0;
    int isfield = li == L_FIELDS, context = 0;
    double w = 0;
    if (isfield) {
        if (strcmp(value, "item") && strcmp(value, "context"))
            return pfail_at(c, sec, name, line, "\"%s\" is not item or context", value);
        context = !strcmp(value, "context");
    } else if (parse_double(value, &w)) {
        return pfail_at(c, sec, name, line, "\"%s\" is not a number", value);
    } else if (li == L_TASKS && w < 0) {
        return pfail_at(c, sec, name, line, "a loss weight must be >= 0, not %s", value);
    }
    int added, i = list_slot(cfg, li, nm, &added);
    if (i < 0) return pfail_at(c, sec, name, line, "too many %s (at most %d)", what[li], cap[li]);
    if (!added && c->mode == MODE_FILE) return pfail_at(c, sec, name, line, "duplicate key");
    if (isfield) {
        memcpy(cfg->field[i], nm, sizeof nm);
        cfg->field_is_context[i] = (uint8_t)context;
        cfg->line.field[i] = line;
    } else {
        ic_named_weight *e = li == L_ACTIONS ? &cfg->action[i] : &cfg->task[i];
        memcpy(e->name, nm, sizeof nm);
        e->weight = (float)w;
        (li == L_ACTIONS ? cfg->line.action : cfg->line.task)[i] = line;
    }
    return 1;
}

/* One "key = value" in [section], from a file (line > 0) or an option. */
static int apply(pctx *c, const char *section, const char *name, const char *value, int line)
{
    if (c->failed) return 0;
    int li = list_index(section);
    if (li >= 0) return list_set(c, li, name, value, line);
    if (!section_known(section)) {
        if (!*section) return pfail_at(c, "", name, line, "key outside any [section]");
        return pfail_at(c, section, "", line, "unknown section");
    }
    int ki = key_index(section, name);
    if (ki < 0) {
        char known[512] = "";
        for (int i = 0; i < N_KEYS; i++)
            if (!strcmp(keys[i].section, section)) {
                strncat(known, *known ? ", " : "", sizeof known - strlen(known) - 1);
                strncat(known, keys[i].key, sizeof known - strlen(known) - 1);
            }
        return pfail_at(c, section, name, line, "unknown key (known: %s)", known);
    }
    if (c->mode == MODE_FILE && c->key_line[ki])
        return pfail_at(c, section, name, line, "duplicate key (first on line %d)",
                        c->key_line[ki]);
    c->key_line[ki] = line;
    return set_key(c, &keys[ki], line, value);
}

/* ---- Validation ------------------------------------------------------------------ */

/* Per-key ranges, for a config built in code (a file's keys were checked as
 * they were read). */
static int check_keys(pctx *c)
{
    const ic_config *cfg = c->cfg;
    char rb[64];
    for (int i = 0; i < N_KEYS && !c->failed; i++) {
        const key_def *k = &keys[i];
        int line = c->key_line[i];
        double v = 0;
        switch (k->type) {
        case K_COL: {
            const char *s = cat(cfg, k->off);
            if (!memchr(s, '\0', IC_NAME_MAX))
                return pfail_at(c, k->section, k->key, line, "name is not terminated");
            if (!*s && !(k->flags & OPTIONAL))
                return pfail_at(c, k->section, k->key, line, "a column name is needed");
            continue;
        }
        case K_INT: v = *(const int *)cat(cfg, k->off); break;
        case K_FLOAT: v = *(const float *)cat(cfg, k->off); break;
        case K_DOUBLE: v = *(const double *)cat(cfg, k->off); break;
        case K_ENUM: {
            int e = *(const int *)cat(cfg, k->off);
            if (e < 0 || e >= enum_count(k->names))
                return pfail_at(c, k->section, k->key, line, "bad value %d", e);
            continue;
        }
        case K_INTLIST: {
            int n = *(const int *)cat(cfg, k->aux);
            const int *a = cat(cfg, k->off);
            if (n < 1 || n > IC_MAX_MLP)
                return pfail_at(c, k->section, k->key, line, "%d layers (1 to %d allowed)", n,
                                IC_MAX_MLP);
            for (int j = 0; j < n; j++)
                if (!in_range(k, a[j]))
                    return pfail_at(c, k->section, k->key, line, "%d is out of range %s", a[j],
                                    range_text(k, rb, sizeof rb));
            continue;
        }
        default: continue; /* K_U64 (any), K_CHAR and clock fields: check_cross */
        }
        if (!isfinite(v) || !in_range(k, v))
            return pfail_at(c, k->section, k->key, line, "%.10g is out of range %s", v,
                            range_text(k, rb, sizeof rb));
    }
    return !c->failed;
}

static int bad_sep(char ch) { return !ch || ch == '"' || ch == '\r' || ch == '\n'; }

/* The list sections: counts, names unique, weights finite. */
static int check_lists(pctx *c)
{
    const ic_config *cfg = c->cfg;
    if (cfg->n_fields < 0 || cfg->n_fields > IC_MAX_FIELDS)
        return pfail_at(c, "fields", "", c->list_line[L_FIELDS], "%d fields (at most %d)",
                        cfg->n_fields, IC_MAX_FIELDS);
    if (cfg->n_actions < 0 || cfg->n_actions > IC_MAX_ACTIONS)
        return pfail_at(c, "actions", "", c->list_line[L_ACTIONS], "%d actions (at most %d)",
                        cfg->n_actions, IC_MAX_ACTIONS);
    if (cfg->n_tasks < 1 || cfg->n_tasks > IC_MAX_TASKS)
        return pfail_at(c, "tasks", "", c->list_line[L_TASKS],
                        "%d tasks (at least 1, at most %d)", cfg->n_tasks, IC_MAX_TASKS);
    for (int i = 0; i < cfg->n_fields; i++) {
        if (!cfg->field[i][0] || !memchr(cfg->field[i], '\0', IC_NAME_MAX))
            return pfail_at(c, "fields", "", c->list_line[L_FIELDS], "field %d has no name", i);
        for (int j = 0; j < i; j++)
            if (!strcmp(cfg->field[i], cfg->field[j]))
                return pfail_at(c, "fields", cfg->field[i], cfg->line.field[i], "duplicate field");
    }
    for (int t = 0; t < 2; t++) {
        const ic_named_weight *a = t ? cfg->task : cfg->action;
        int n = t ? cfg->n_tasks : cfg->n_actions;
        const int *ln = t ? cfg->line.task : cfg->line.action;
        const char *sec = t ? "tasks" : "actions";
        for (int i = 0; i < n; i++) {
            if (!a[i].name[0] || !memchr(a[i].name, '\0', IC_NAME_MAX))
                return pfail_at(c, sec, "", c->list_line[t + 1], "entry %d has no name", i);
            if (!isfinite(a[i].weight) || (t && a[i].weight < 0))
                return pfail_at(c, sec, a[i].name, ln[i], "bad weight %g", a[i].weight);
            for (int j = 0; j < i; j++)
                if (!strcmp(a[i].name, a[j].name))
                    return pfail_at(c, sec, a[i].name, ln[i], "duplicate key");
        }
    }
    return 1;
}

/* Column roles: time, user, item, tz and the fields name distinct columns;
 * actions and tasks may share a column with each other (finish is both)
 * but not with those. */
static int check_columns(pctx *c)
{
    const ic_config *cfg = c->cfg;
    const char *name[4 + IC_MAX_FIELDS], *sec[4 + IC_MAX_FIELDS], *key[4 + IC_MAX_FIELDS];
    int line[4 + IC_MAX_FIELDS], n = 0;
    const char *dkeys[4] = {"time", "user", "item", "tz"};
    const char *dcols[4] = {cfg->time_col, cfg->user_col, cfg->item_col, cfg->tz_col};
    const int dlines[4] = {cfg->line.time, cfg->line.user, cfg->line.item, cfg->line.tz};
    for (int i = 0; i < 4; i++)
        if (dcols[i][0]) {
            name[n] = dcols[i], sec[n] = "data", key[n] = dkeys[i], line[n] = dlines[i];
            n++;
        }
    for (int i = 0; i < cfg->n_fields; i++) {
        name[n] = cfg->field[i], sec[n] = "fields", key[n] = cfg->field[i];
        line[n++] = cfg->line.field[i];
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(name[i], name[j]))
                return pfail_at(c, sec[i], key[i], line[i] > 0 ? line[i] : line[j],
                                "column '%s' already has another role ([%s] %s)", name[i],
                                sec[j], key[j]);
    for (int t = 0; t < 2; t++) {
        const ic_named_weight *a = t ? cfg->task : cfg->action;
        int na = t ? cfg->n_tasks : cfg->n_actions;
        for (int i = 0; i < na; i++)
            for (int j = 0; j < n; j++)
                if (!strcmp(a[i].name, name[j]))
                    return pfail_at(c, t ? "tasks" : "actions", a[i].name,
                                    (t ? cfg->line.task : cfg->line.action)[i],
                                    "column '%s' already has another role ([%s] %s)",
                                    a[i].name, sec[j], key[j]);
    }
    return 1;
}

static int check_cross(pctx *c)
{
    const ic_config *cfg = c->cfg;
    if (!check_lists(c) || !check_columns(c)) return 0;
    int cl = kline(c, "clock", "fields");
    if (cfg->n_clock < 0 || cfg->n_clock > IC_MAX_CLOCK_FIELDS)
        return pfail_at(c, "clock", "fields", cl, "%d clock fields (at most %d)", cfg->n_clock,
                        IC_MAX_CLOCK_FIELDS);
    for (int i = 0; i < cfg->n_clock; i++) {
        int f = cfg->clock_field[i];
        if (f < 0 || f >= cfg->n_fields)
            return pfail_at(c, "clock", "fields", cl, "clock field %d is not in [fields]", f);
        for (int j = 0; j < i; j++)
            if (cfg->clock_field[j] == f)
                return pfail_at(c, "clock", "fields", cl, "field '%s' is listed twice",
                                cfg->field[f]);
    }
    if (bad_sep(cfg->delimiter))
        return pfail_at(c, "data", "delimiter", kline(c, "data", "delimiter"), "bad delimiter");
    if (bad_sep(cfg->multi_sep) || cfg->multi_sep == cfg->delimiter)
        return pfail_at(c, "data", "multi_separator", kline(c, "data", "multi_separator"),
                        "must be one character other than the delimiter and the quote");
    if (cfg->split_train + cfg->split_valid >= 1.0) {
        int ln = kline(c, "train", "split_valid");
        if (!ln) ln = kline(c, "train", "split_train");
        return pfail_at(c, "train", "split_valid", ln,
                        "split_train + split_valid = %.10g leaves no test period (must be < 1)",
                        cfg->split_train + cfg->split_valid);
    }
    return 1;
}

ic_status ic_config_validate(const ic_config *cfg, ic_error *err)
{
    ic_config copy = *cfg;
    pctx c = {.cfg = &copy, .mode = MODE_VALIDATE, .err = err};
    c.path = memchr(cfg->path, '\0', sizeof cfg->path) ? cfg->path : "";
    if (!check_keys(&c) || !check_cross(&c)) return IC_ERR_CONFIG;
    return IC_OK;
}

/* ---- Loading a file ----------------------------------------------------------------- */

/* Sees each section header before inih does: an unknown section is an
 * error even when empty, and a list section replaces its list the first
 * time it appears, even when it has no keys (so an empty list round-trips). */
static void see_section(pctx *c, const char *s)
{
    if (c->line == 1 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3;
    while (*s == ' ' || *s == '\t') s++;
    if (*s != '[') return;
    const char *end = strchr(s, ']');
    if (!end) return; /* inih reports the syntax error */
    char name[IC_NAME_MAX];
    size_t n = (size_t)(end - s - 1);
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, s + 1, n);
    name[n] = '\0';
    if (!section_known(name)) {
        pfail_at(c, name, "", c->line, "unknown section");
        return;
    }
    int li = list_index(name);
    if (li >= 0 && !c->list_line[li]) {
        c->list_line[li] = c->line;
        list_clear(c->cfg, li);
    }
}

/* inih's fgets-style reader: counts lines (inih in Debian 12 does not pass
 * them to the handler) and watches for section headers. */
static char *cfg_read_line(char *str, int num, void *stream)
{
    pctx *c = stream;
    char *s = fgets(str, num, c->f);
    if (!s) return NULL;
    if (c->prev_nl) c->line++;
    size_t n = strlen(s);
    c->prev_nl = n > 0 && s[n - 1] == '\n';
    if (!c->prev_nl && !feof(c->f)) {
        pfail_at(c, "", "", c->line, "line longer than %d bytes", num - 3);
        return s;
    }
    if (!c->failed) see_section(c, s);
    return s;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    pctx *c = user;
    return apply(c, section, name, value ? value : "", c->line);
}

ic_status ic_config_load(ic_config *cfg, const char *path, ic_error *err)
{
    ic_config work = *cfg;
    pctx c = {.cfg = &work, .mode = MODE_FILE, .path = path, .prev_nl = 1, .err = err};
    /* The clock's fields by name, so that a [fields] section may replace
     * the list and keep the clock pointing at the same names. */
    for (int i = 0; i < cfg->n_clock && i < IC_MAX_CLOCK_FIELDS; i++)
        if (cfg->clock_field[i] >= 0 && cfg->clock_field[i] < cfg->n_fields)
            ic__strlcpy(c.clock_name[c.n_clock_name++], cfg->field[cfg->clock_field[i]],
                        IC_NAME_MAX);
    c.f = fopen(path, "r");
    if (!c.f) return ic__fail(err, IC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int rc = ini_parse_stream(cfg_read_line, &c, on_key, &c);
    int rd_err = ferror(c.f);
    fclose(c.f);
    if (rd_err) return ic__fail(err, IC_ERR_IO, "%s: read error", path);
    if (!c.failed && rc > 0)
        pfail_at(&c, "", "", rc, "syntax error (expected [section] or key = value)");
    if (c.failed) return IC_ERR_CONFIG;
    if (!resolve_clock(&c, kline(&c, "clock", "fields")) || !check_keys(&c) || !check_cross(&c))
        return IC_ERR_CONFIG;
    ic__strlcpy(work.path, path, sizeof work.path);
    *cfg = work;
    return IC_OK;
}

ic_status ic_config_set(ic_config *cfg, const char *section, const char *key,
                        const char *value, ic_error *err)
{
    ic_config work = *cfg;
    pctx c = {.cfg = &work, .mode = MODE_OPTION, .path = "", .err = err};
    if (!apply(&c, section, key, value, -1) || !check_keys(&c) || !check_cross(&c))
        return IC_ERR_CONFIG;
    *cfg = work;
    return IC_OK;
}

/* ---- Writing ------------------------------------------------------------------------ */

static void write_char(FILE *out, char ch)
{
    if (ch == '\t') fputs("tab", out);
    else if (ch == ';') fputs("semicolon", out);
    else if (ch == ' ') fputs("space", out);
    else fputc(ch, out);
}

static void write_key(const ic_config *cfg, const key_def *k, FILE *out)
{
    fprintf(out, "%s = ", k->key);
    switch (k->type) {
    case K_COL: fputs((const char *)cat(cfg, k->off), out); break;
    case K_INT: fprintf(out, "%d", *(const int *)cat(cfg, k->off)); break;
    case K_FLOAT: fprintf(out, "%.9g", (double)*(const float *)cat(cfg, k->off)); break;
    case K_DOUBLE: fprintf(out, "%.17g", *(const double *)cat(cfg, k->off)); break;
    case K_U64:
        fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)cat(cfg, k->off));
        break;
    case K_CHAR: write_char(out, *(const char *)cat(cfg, k->off)); break;
    case K_ENUM: fputs(enum_name(k->names, *(const int *)cat(cfg, k->off)), out); break;
    case K_INTLIST: {
        const int *a = cat(cfg, k->off);
        for (int i = 0; i < *(const int *)cat(cfg, k->aux); i++)
            fprintf(out, "%s%d", i ? "," : "", a[i]);
        break;
    }
    case K_CLOCKFIELDS:
        for (int i = 0; i < cfg->n_clock; i++)
            fprintf(out, "%s%s", i ? "," : "", cfg->field[cfg->clock_field[i]]);
        break;
    }
    fputc('\n', out);
}

static void write_list(const ic_config *cfg, int li, FILE *out)
{
    if (li == L_FIELDS)
        for (int i = 0; i < cfg->n_fields; i++)
            fprintf(out, "%s = %s\n", cfg->field[i], cfg->field_is_context[i] ? "context" : "item");
    for (int i = 0; li == L_ACTIONS && i < cfg->n_actions; i++)
        fprintf(out, "%s = %.9g\n", cfg->action[i].name, (double)cfg->action[i].weight);
    for (int i = 0; li == L_TASKS && i < cfg->n_tasks; i++)
        fprintf(out, "%s = %.9g\n", cfg->task[i].name, (double)cfg->task[i].weight);
}

void ic_config_write(const ic_config *cfg, FILE *out)
{
    locale_t loc = ic__c_locale(), old = loc ? uselocale(loc) : (locale_t)0;
    fprintf(out, "# iclock %s configuration (docs/FORMAT.md describes every key)\n", IC_VERSION);
    for (int s = 0; s < N_SECTIONS; s++) {
        fprintf(out, "%s[%s]\n", s ? "\n" : "", section_order[s]);
        int li = list_index(section_order[s]);
        if (li >= 0) write_list(cfg, li, out);
        for (int i = 0; i < N_KEYS; i++)
            if (!strcmp(keys[i].section, section_order[s])) write_key(cfg, &keys[i], out);
    }
    if (loc) uselocale(old);
}
