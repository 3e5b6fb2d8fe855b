/* cmd_plot.c: `iclock plot`, pictures of a log drawn by the library's SVG
 * writer (src/plot.c). One kind so far:
 *   hourly  the share of each value of a categorical field by local hour
 *           (the paper's mood-by-hour analysis), its top N values and the
 *           rest, with each hour's volume beneath.
 * A user's clock dial is `iclock clock --svg`. The log is read once through
 * the library's reader, so every row is validated as for training.
 * Deliberately not here: raster output, other chart kinds. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: iclock plot hourly --data FILE [--config CFG] --field NAME [--top N]\n"
    "                          [--positives] [--title T] -o OUT.svg [--bad-rows fail|skip]\n"
    "\n"
    "hourly: the share of each value of field NAME by local hour (each event's own\n"
    "UTC offset), as 24 stacked columns, with the hour's count beneath. Every value\n"
    "an event lists counts once; events without a value are left out (and counted\n"
    "in the note). The N most frequent values are drawn, the others together as\n"
    "'other'.\n"
    "  --data FILE     event log (.csv or .csv.gz), sorted by time\n"
    "  --config CFG    configuration naming the log's columns (default: built-in)\n"
    "  --field NAME    a categorical field of the config ([fields])\n"
    "  --top N         values drawn, 1..19 (default 10)\n"
    "  --positives     count only events whose main task label is positive\n"
    "                  (e.g. the check-ins of a log with sampled negatives)\n"
    "  --title T       the chart's title (default: the field and the file)\n"
    "  -o, --output F  the SVG file to write\n"
    "  --bad-rows P    fail (default) or skip malformed rows\n"
    "exit status: 0 ok, 1 runtime error (I/O), 2 bad usage or bad input\n";

typedef struct {
    const char *data, *config, *field, *title, *output;
    int top, positives;
    ic_bad_rows bad;
} plot_opts;

static int parse_opts(int argc, char **argv, plot_opts *o)
{
    enum { O_TOP = 256, O_POS, O_TITLE, O_BAD };
    static const struct option longs[] = {
        {"data", required_argument, 0, 'd'},  {"config", required_argument, 0, 'c'},
        {"field", required_argument, 0, 'f'}, {"top", required_argument, 0, O_TOP},
        {"positives", no_argument, 0, O_POS}, {"title", required_argument, 0, O_TITLE},
        {"output", required_argument, 0, 'o'}, {"bad-rows", required_argument, 0, O_BAD},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->top = 10;
    optind = 1;
    char *end;
    for (int c; (c = getopt_long(argc, argv, "o:h", longs, NULL)) != -1;) {
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'c': o->config = optarg; break;
        case 'f': o->field = optarg; break;
        case O_TOP:
            o->top = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || o->top < 1 || o->top > IC_PLOT_MAX_SERIES - 1)
                return cli_usage_error("plot", "--top: '%s' is not in 1..%d", optarg,
                                       IC_PLOT_MAX_SERIES - 1);
            break;
        case O_POS: o->positives = 1; break;
        case O_TITLE: o->title = optarg; break;
        case 'o': o->output = optarg; break;
        case O_BAD:
            if (cli_parse_bad_rows(optarg, &o->bad))
                return cli_usage_error("plot", "--bad-rows: '%s' is not fail or skip", optarg);
            break;
        case 'h': fputs(USAGE, stdout); return -1;
        default: return cli_usage_error("plot", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("plot", "unexpected argument '%s'", argv[optind]);
    if (!o->data) return cli_usage_error("plot", "--data FILE is required");
    if (!o->field) return cli_usage_error("plot", "--field NAME is required");
    if (!o->output) return cli_usage_error("plot", "-o OUT.svg is required");
    return 0;
}

/* ---- counts of a field's values by local hour ---- */

typedef struct {
    uint64_t *key;                 /* (cap) value ids, 0 = empty slot */
    uint32_t *row;                 /* (cap) row of count for the key */
    size_t cap, n;
    uint64_t *id;                  /* (n) the id of each row */
    uint64_t (*count)[IC_HOURS];   /* (n, 24) */
    size_t rows_cap;
    uint64_t events, no_value, skipped; /* counted, without a value, not positive */
} hour_counts;

static void counts_init(hour_counts *c)
{
    memset(c, 0, sizeof *c);
    c->cap = 256;
    c->key = calloc(c->cap, sizeof *c->key);
    c->row = calloc(c->cap, sizeof *c->row);
    if (!c->key || !c->row) abort(); /* out of memory: the tool aborts */
}

static void counts_free(hour_counts *c)
{
    free(c->key);
    free(c->row);
    free(c->id);
    free(c->count);
}

static size_t counts_slot(const hour_counts *c, uint64_t k)
{
    size_t mask = c->cap - 1, i = (size_t)(k ^ (k >> 31)) & mask;
    while (c->key[i] && c->key[i] != k) i = (i + 1) & mask;
    return i;
}

/* Doubles the table (keeps load under one half). */
static void counts_grow(hour_counts *c)
{
    uint64_t *ok = c->key;
    uint32_t *orow = c->row;
    size_t ocap = c->cap;
    c->cap *= 2;
    c->key = calloc(c->cap, sizeof *c->key);
    c->row = calloc(c->cap, sizeof *c->row);
    if (!c->key || !c->row) abort();
    for (size_t j = 0; j < ocap; j++)
        if (ok[j]) {
            size_t s = counts_slot(c, ok[j]);
            c->key[s] = ok[j];
            c->row[s] = orow[j];
        }
    free(ok);
    free(orow);
}

static void counts_add(hour_counts *c, uint64_t v, int hour)
{
    size_t i = counts_slot(c, v);
    if (!c->key[i]) {
        if (2 * (c->n + 1) > c->cap) {
            counts_grow(c);
            i = counts_slot(c, v);
        }
        if (c->n == c->rows_cap) {
            c->rows_cap = c->rows_cap ? 2 * c->rows_cap : 64;
            c->id = realloc(c->id, c->rows_cap * sizeof *c->id);
            c->count = realloc(c->count, c->rows_cap * sizeof *c->count);
            if (!c->id || !c->count) abort();
        }
        c->key[i] = v;
        c->row[i] = (uint32_t)c->n;
        c->id[c->n] = v;
        memset(c->count[c->n], 0, sizeof c->count[c->n]);
        c->n++;
    }
    c->count[c->row[i]][hour]++;
}

/* Reads the log and counts field fi's values by the event's local hour. */
static ic_status count_log(const plot_opts *o, const ic_config *cfg, int fi, ic_names *names,
                           hour_counts *c, ic_error *err)
{
    ic_reader *r;
    ic_status st = ic_reader_open(&r, o->data, cfg, o->bad, names, err);
    if (st != IC_OK) return st;
    ic_event ev;
    int got;
    while ((got = ic_reader_next(r, &ev, err)) == 1) {
        if (o->positives && !(ev.label[0] > 0)) {
            c->skipped++;
            continue;
        }
        c->events++;
        int h = ic_local_hour(ev.ts, ev.tz_min);
        if (ev.voff[fi] == ev.voff[fi + 1]) c->no_value++;
        for (int j = ev.voff[fi]; j < ev.voff[fi + 1]; j++) counts_add(c, ev.val[j], h);
    }
    ic_reader_close(r);
    return got < 0 ? (ic_status)got : IC_OK;
}

/* ---- the chart ---- */

static uint64_t row_total(const hour_counts *c, size_t i)
{
    uint64_t t = 0;
    for (int h = 0; h < IC_HOURS; h++) t += c->count[i][h];
    return t;
}

typedef struct {
    const hour_counts *c;
    const ic_names *names;
} sort_ctx;

/* Most frequent first; ties by name, so the order does not depend on ids
 * (qsort_r comparator; ctx is a sort_ctx). */
static int by_total_desc(const void *a, const void *b, void *ctx)
{
    const sort_ctx *x = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    uint64_t ti = row_total(x->c, i), tj = row_total(x->c, j);
    if (ti != tj) return ti > tj ? -1 : 1;
    const char *si = ic_names_get(x->names, x->c->id[i]);
    const char *sj = ic_names_get(x->names, x->c->id[j]);
    return strcmp(si ? si : "", sj ? sj : "");
}

/* Picks the top values (and the rest) and writes the SVG. */
static int draw(const plot_opts *o, const char *field, const hour_counts *c, const ic_names *names)
{
    size_t *order = malloc((c->n ? c->n : 1) * sizeof *order);
    if (!order) abort();
    for (size_t i = 0; i < c->n; i++) order[i] = i;
    sort_ctx ctx = {c, names};
    qsort_r(order, c->n, sizeof *order, by_total_desc, &ctx);
    int shown = c->n < (size_t)o->top ? (int)c->n : o->top, rest = c->n > (size_t)o->top;
    uint64_t count[IC_PLOT_MAX_SERIES][IC_HOURS] = {{0}}; /* (series, 24) */
    const char *label[IC_PLOT_MAX_SERIES];
    char rest_label[64], idbuf[IC_PLOT_MAX_SERIES][20];
    for (size_t k = 0; k < c->n; k++) {
        int s = k < (size_t)shown ? (int)k : shown;
        for (int h = 0; h < IC_HOURS; h++) count[s][h] += c->count[order[k]][h];
        if (s < shown) {
            label[s] = ic_names_get(names, c->id[order[k]]);
            if (!label[s]) {
                snprintf(idbuf[s], sizeof idbuf[s], "%016llx", (unsigned long long)c->id[order[k]]);
                label[s] = idbuf[s];
            }
        }
    }
    snprintf(rest_label, sizeof rest_label, "other (%zu values)", c->n - (size_t)shown);
    label[shown] = rest_label;
    free(order);

    char title[256], note[256];
    const char *base = strrchr(o->data, '/');
    snprintf(title, sizeof title, "%s by local hour (%s)", field, base ? base + 1 : o->data);
    int k = snprintf(note, sizeof note, "%llu events%s, %zu distinct values",
                     (unsigned long long)c->events, o->positives ? " (positives)" : "", c->n);
    if (c->no_value)
        k += snprintf(note + k, sizeof note - (size_t)k, ", %llu without a value left out",
                      (unsigned long long)c->no_value);
    snprintf(note + k, sizeof note - (size_t)k, "; column = share of the hour's value counts");
    ic_plot_hourly p = {.n = shown + rest, .label = label, .count = (const uint64_t(*)[IC_HOURS])count,
                        .rest = rest, .title = o->title ? o->title : title, .note = note};
    FILE *f = fopen(o->output, "w");
    if (!f) {
        fprintf(stderr, "iclock plot: %s: cannot create\n", o->output);
        return EXIT_RUNTIME;
    }
    ic_error err = {{0}};
    ic_status st = ic_plot_hourly_svg(f, &p, &err);
    if (fclose(f) != 0 && st == IC_OK) {
        snprintf(err.msg, sizeof err.msg, "%s: write failed", o->output);
        st = IC_ERR_IO;
    }
    if (st != IC_OK) return cli_fail("plot", st, &err);
    fprintf(stderr, "iclock plot: %llu events, %zu values of '%s' (%d drawn%s) -> %s\n",
            (unsigned long long)c->events, c->n, field, shown, rest ? " + other" : "", o->output);
    return EXIT_OK;
}

static int hourly(int argc, char **argv)
{
    plot_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    ic_config cfg;
    if ((rc = cli_load_config("plot", o.config, &cfg))) return rc;
    int fi = ic_config_field_index(&cfg, o.field);
    if (fi < 0) {
        fprintf(stderr, "iclock plot: unknown field '%s'; the config's fields are:", o.field);
        for (int i = 0; i < cfg.n_fields; i++) fprintf(stderr, " %s", cfg.field[i]);
        fputc('\n', stderr);
        return EXIT_BADINPUT;
    }
    ic_names *names = ic_names_create();
    hour_counts c;
    counts_init(&c);
    ic_error err = {{0}};
    ic_status st = count_log(&o, &cfg, fi, names, &c, &err);
    if (st != IC_OK) rc = cli_fail("plot", st, &err);
    else if (c.n == 0) rc = (fprintf(stderr, "iclock plot: no event of %s has a value of '%s'\n",
                                     o.data, o.field), EXIT_BADINPUT);
    else rc = draw(&o, o.field, &c, names);
    counts_free(&c);
    ic_names_free(names);
    return rc;
}

int cmd_plot(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_BADINPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(USAGE, stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "hourly")) return hourly(argc - 1, argv + 1);
    fprintf(stderr, "iclock plot: unknown kind '%s' (kinds: hourly)\n(see iclock plot --help)\n",
            argv[1]);
    return EXIT_BADINPUT;
}
