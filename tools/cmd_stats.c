/* cmd_stats.c: `iclock stats`, a summary of a log: events, distinct users
 * and items, the time span, label and action rates, the mean UTC offset,
 * and for each clock field the share of its top values by local hour, so a
 * daily rhythm shows. Reads the log once through the library's reader, so
 * it also validates it (every row, the ordering contract).
 *
 * Deliberately not here: pictures (iclock plot), per-user statistics.
 * Exact distinct counts use in-memory hash sets (16 bytes per slot). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOP 8 /* values shown per clock field */

/* ---- A uint64 -> index hash map (ids are hashes; 0 is never an id) ---- */

typedef struct {
    uint64_t *key; /* (cap) 0 = empty */
    uint32_t *idx; /* (cap) insertion index */
    size_t cap, n;
} u64map;

static void map_init(u64map *m)
{
    m->cap = 1024;
    m->n = 0;
    m->key = calloc(m->cap, sizeof *m->key);
    m->idx = calloc(m->cap, sizeof *m->idx);
    if (!m->key || !m->idx) abort();
}

static void map_free(u64map *m)
{
    free(m->key);
    free(m->idx);
}

static size_t map_slot(const u64map *m, uint64_t k)
{
    size_t mask = m->cap - 1, i = (size_t)(k ^ (k >> 29)) & mask;
    while (m->key[i] && m->key[i] != k) i = (i + 1) & mask;
    return i;
}

/* The index of k, inserting it (with the next index) if new. */
static uint32_t map_put(u64map *m, uint64_t k)
{
    size_t i = map_slot(m, k);
    if (m->key[i]) return m->idx[i];
    if (2 * (m->n + 1) > m->cap) {
        u64map old = *m;
        m->cap *= 2;
        m->key = calloc(m->cap, sizeof *m->key);
        m->idx = calloc(m->cap, sizeof *m->idx);
        if (!m->key || !m->idx) abort(); /* out of memory: the tool aborts */
        for (size_t j = 0; j < old.cap; j++)
            if (old.key[j]) {
                size_t s = map_slot(m, old.key[j]);
                m->key[s] = old.key[j];
                m->idx[s] = old.idx[j];
            }
        map_free(&old);
        i = map_slot(m, k);
    }
    m->key[i] = k;
    m->idx[i] = (uint32_t)m->n;
    return (uint32_t)m->n++;
}

/* ---- What is counted ---- */

typedef struct {
    u64map values;     /* value id -> row of count */
    uint64_t *vid;     /* (values.n) the id of each row */
    uint64_t (*count)[IC_HOURS]; /* (values.n, 24) occurrences by local hour */
    size_t cap;
    uint64_t hour_total[IC_HOURS]; /* occurrences of any value, by hour */
    int top[TOP], n_top;
} field_stats;

typedef struct {
    uint64_t events;
    u64map users, items;
    int64_t first, last;
    double label_sum[IC_MAX_TASKS], action_sum[IC_MAX_ACTIONS], tz_sum;
    uint64_t hour_events[IC_HOURS];
    field_stats f[IC_MAX_CLOCK_FIELDS];
} stats;

static void field_add(field_stats *fs, uint64_t v, int hour)
{
    size_t before = fs->values.n;
    uint32_t i = map_put(&fs->values, v);
    if (i >= fs->cap) {
        fs->cap = fs->cap ? 2 * fs->cap : 64;
        fs->vid = realloc(fs->vid, fs->cap * sizeof *fs->vid);
        fs->count = realloc(fs->count, fs->cap * sizeof *fs->count);
        if (!fs->vid || !fs->count) abort();
    }
    if (fs->values.n > before) { /* a new value: a new row */
        fs->vid[i] = v;
        memset(fs->count[i], 0, sizeof fs->count[i]);
    }
    fs->count[i][hour]++;
    fs->hour_total[hour]++;
}

static void add_event(stats *st, const ic_config *cfg, const ic_event *ev)
{
    if (st->events++ == 0) st->first = ev->ts;
    st->last = ev->ts;
    map_put(&st->users, ev->user);
    map_put(&st->items, ev->item);
    for (int t = 0; t < cfg->n_tasks; t++) st->label_sum[t] += ev->label[t];
    for (int a = 0; a < cfg->n_actions; a++) st->action_sum[a] += ev->action[a];
    st->tz_sum += ev->tz_min;
    int h = ic_local_hour(ev->ts, ev->tz_min);
    st->hour_events[h]++;
    for (int k = 0; k < cfg->n_clock; k++) {
        int f = cfg->clock_field[k];
        for (int j = ev->voff[f]; j < ev->voff[f + 1]; j++) field_add(&st->f[k], ev->val[j], h);
    }
}

static uint64_t value_total(const field_stats *fs, int i)
{
    uint64_t s = 0;
    for (int h = 0; h < IC_HOURS; h++) s += fs->count[i][h];
    return s;
}

/* The TOP values by total occurrences (ties: first seen first). */
static void pick_top(field_stats *fs)
{
    fs->n_top = 0;
    for (int i = 0; i < (int)fs->values.n; i++) {
        uint64_t t = value_total(fs, i);
        int pos = fs->n_top;
        while (pos > 0 && value_total(fs, fs->top[pos - 1]) < t) pos--;
        if (pos >= TOP) continue;
        int last = fs->n_top < TOP ? fs->n_top++ : TOP - 1;
        memmove(fs->top + pos + 1, fs->top + pos, (size_t)(last - pos) * sizeof fs->top[0]);
        fs->top[pos] = i;
    }
}

/* ---- Output ---- */

static const char *iso(int64_t ts, char *buf, size_t cap)
{
    time_t t = (time_t)ts;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return "?";
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static double share(uint64_t part, uint64_t whole) { return whole ? (double)part / (double)whole : 0; }

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static const char *value_name(const ic_names *nm, uint64_t id, char *buf, size_t cap)
{
    const char *s = ic_names_get(nm, id);
    if (s) return s;
    snprintf(buf, cap, "#%016llx", (unsigned long long)id);
    return buf;
}

static void print_text(const char *path, const stats *st, const ic_config *cfg,
                       const ic_reader_stats *rs, const ic_names *nm)
{
    char a[40], b[40], vb[40];
    printf("file        %s\n", path);
    printf("events      %llu (rows %llu", (unsigned long long)st->events, (unsigned long long)rs->rows);
    if (rs->bad) printf(", skipped %llu", (unsigned long long)rs->bad);
    printf(")\nusers       %zu\nitems       %zu\n", st->users.n, st->items.n);
    if (st->events)
        printf("time span   %s .. %s (%.2f days)\n", iso(st->first, a, sizeof a),
               iso(st->last, b, sizeof b), (double)(st->last - st->first) / 86400.0);
    double n = st->events ? (double)st->events : 1;
    printf("mean tz     %+.1f min\nlabels     ", st->tz_sum / n);
    for (int t = 0; t < cfg->n_tasks; t++) printf("  %s %.4f", cfg->task[t].name, st->label_sum[t] / n);
    printf("   (mean label)\nactions    ");
    for (int i = 0; i < cfg->n_actions; i++)
        printf("  %s %.4f", cfg->action[i].name, st->action_sum[i] / n);
    printf("   (mean per event)\n");
    if (rs->bad) {
        printf("skipped     %llu rows: %llu malformed shape (columns, quoting), %llu out of time "
               "order, %llu bad values; the first:\n",
               (unsigned long long)rs->bad, (unsigned long long)rs->bad_shape,
               (unsigned long long)rs->bad_order,
               (unsigned long long)(rs->bad - rs->bad_shape - rs->bad_order));
        for (int i = 0; i < rs->n_first_bad; i++) printf("  %s\n", rs->first_bad[i]);
    }
    for (int k = 0; k < cfg->n_clock; k++) {
        const field_stats *fs = &st->f[k];
        printf("\n%s: share of its top %d values (of %zu) by local hour\nhour  events", cfg->field[cfg->clock_field[k]],
               fs->n_top, fs->values.n);
        for (int j = 0; j < fs->n_top; j++)
            printf(" %9.9s", value_name(nm, fs->vid[fs->top[j]], vb, sizeof vb));
        printf("     other\n");
        for (int h = 0; h < IC_HOURS; h++) {
            printf("%4d %7llu", h, (unsigned long long)st->hour_events[h]);
            uint64_t rest = fs->hour_total[h];
            for (int j = 0; j < fs->n_top; j++) {
                printf(" %9.3f", share(fs->count[fs->top[j]][h], fs->hour_total[h]));
                rest -= fs->count[fs->top[j]][h];
            }
            printf(" %9.3f\n", share(rest, fs->hour_total[h]));
        }
    }
}

static void print_json(const char *path, const stats *st, const ic_config *cfg,
                       const ic_reader_stats *rs, const ic_names *nm)
{
    char a[40], b[40], vb[40];
    double n = st->events ? (double)st->events : 1;
    printf("{\n  \"file\": ");
    json_str(path);
    printf(",\n  \"events\": %llu,\n  \"rows\": %llu,\n  \"skipped\": %llu,\n",
           (unsigned long long)st->events, (unsigned long long)rs->rows, (unsigned long long)rs->bad);
    printf("  \"skipped_shape\": %llu,\n  \"skipped_order\": %llu,\n  \"first_skipped\": [",
           (unsigned long long)rs->bad_shape, (unsigned long long)rs->bad_order);
    for (int i = 0; i < rs->n_first_bad; i++) {
        printf(i ? ", " : "");
        json_str(rs->first_bad[i]);
    }
    printf("],\n  \"users\": %zu,\n  \"items\": %zu,\n", st->users.n, st->items.n);
    printf("  \"first\": \"%s\",\n  \"last\": \"%s\",\n  \"days\": %.6f,\n",
           st->events ? iso(st->first, a, sizeof a) : "", st->events ? iso(st->last, b, sizeof b) : "",
           (double)(st->last - st->first) / 86400.0);
    printf("  \"mean_tz_min\": %.4f,\n  \"labels\": {", st->tz_sum / n);
    for (int t = 0; t < cfg->n_tasks; t++)
        printf("%s\"%s\": %.6g", t ? ", " : "", cfg->task[t].name, st->label_sum[t] / n);
    printf("},\n  \"actions\": {");
    for (int i = 0; i < cfg->n_actions; i++)
        printf("%s\"%s\": %.6g", i ? ", " : "", cfg->action[i].name, st->action_sum[i] / n);
    printf("},\n  \"hour_events\": [");
    for (int h = 0; h < IC_HOURS; h++) printf("%s%llu", h ? ", " : "", (unsigned long long)st->hour_events[h]);
    printf("],\n  \"clock_fields\": {");
    for (int k = 0; k < cfg->n_clock; k++) {
        const field_stats *fs = &st->f[k];
        printf("%s\n    \"%s\": {\"values\": %zu, \"top\": [", k ? "," : "",
               cfg->field[cfg->clock_field[k]], fs->values.n);
        for (int j = 0; j < fs->n_top; j++) {
            printf("%s\n      {\"value\": ", j ? "," : "");
            json_str(value_name(nm, fs->vid[fs->top[j]], vb, sizeof vb));
            printf(", \"count\": %llu, \"share_by_hour\": [",
                   (unsigned long long)value_total(fs, fs->top[j]));
            for (int h = 0; h < IC_HOURS; h++)
                printf("%s%.4f", h ? ", " : "", share(fs->count[fs->top[j]][h], fs->hour_total[h]));
            printf("]}");
        }
        printf("]}");
    }
    printf("\n  }\n}\n");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iclock stats FILE [--config CFG] [--bad-rows=fail|skip] [--json]\n"
            "\n"
            "Summarises an event log (CSV or .csv.gz): events, distinct users and items,\n"
            "the time span, label and action rates, the mean UTC offset, and for each\n"
            "clock field the share of its top %d values by local hour. Reads every row,\n"
            "so it also checks the log (format, values, time order).\n"
            "\n"
            "  -c, --config CFG      the log's schema (default: built in, configs/music.ini)\n"
            "  -b, --bad-rows=POLICY fail (default): stop at the first bad row;\n"
            "                        skip: skip bad rows, report how many and why\n"
            "  -j, --json            one JSON object instead of text\n"
            "  -h, --help            this text\n"
            "\nexit status: 0 ok, 1 cannot read the file, 2 bad usage or bad input\n",
            TOP);
}

static int run_stats(const char *path, const ic_config *cfg, ic_bad_rows policy, int json)
{
    ic_error err = {{0}};
    ic_names *nm = ic_names_create();
    ic_reader *r;
    ic_status s = ic_reader_open(&r, path, cfg, policy, nm, &err);
    if (s) {
        ic_names_free(nm);
        return cli_fail("stats", s, &err);
    }
    stats *st = calloc(1, sizeof *st);
    if (!st) abort();
    map_init(&st->users);
    map_init(&st->items);
    for (int k = 0; k < cfg->n_clock; k++) map_init(&st->f[k].values);
    ic_event ev;
    int k;
    while ((k = ic_reader_next(r, &ev, &err)) == 1) add_event(st, cfg, &ev);
    int rc = k < 0 ? cli_fail("stats", k, &err) : EXIT_OK;
    if (!rc) {
        for (int i = 0; i < cfg->n_clock; i++) pick_top(&st->f[i]);
        (json ? print_json : print_text)(path, st, cfg, ic_reader_stats_get(r), nm);
    }
    ic_reader_close(r);
    map_free(&st->users);
    map_free(&st->items);
    for (int i = 0; i < cfg->n_clock; i++) {
        map_free(&st->f[i].values);
        free(st->f[i].vid);
        free(st->f[i].count);
    }
    free(st);
    ic_names_free(nm);
    return rc;
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"bad-rows", required_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cfg_path = NULL;
    ic_bad_rows policy = IC_BAD_ROWS_FAIL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:b:jh", opts, NULL)) != -1) {
        if (c == 'c') cfg_path = optarg;
        else if (c == 'j') json = 1;
        else if (c == 'h') return usage(stdout), EXIT_OK;
        else if (c == 'b' && !strcmp(optarg, "fail")) policy = IC_BAD_ROWS_FAIL;
        else if (c == 'b' && !strcmp(optarg, "skip")) policy = IC_BAD_ROWS_SKIP;
        else if (c == 'b') return cli_usage_error("stats", "--bad-rows is fail or skip, not '%s'", optarg);
        else return cli_usage_error("stats", "bad option");
    }
    if (argc - optind != 1) return cli_usage_error("stats", "expected one log file");
    ic_config cfg;
    int rc = cli_load_config("stats", cfg_path, &cfg);
    return rc ? rc : run_stats(argv[optind], &cfg, policy, json);
}
