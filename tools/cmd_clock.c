/* cmd_clock.c: `iclock clock`, a user's Interest Clock at a time: replays
 * the log's events before TIME into a clock store and prints the user's
 * clock as text, JSON, or an SVG dial. Only the user's own events are
 * applied (a clock depends on nothing else), so a large log costs one
 * read. The query's time zone is that of the user's last event. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: iclock clock --data FILE [--config CFG] --user U [--at TIME]\n"
    "                    [--mode realtime|daily] [--json] [--svg FILE] [--bad-rows fail|skip]\n"
    "\n"
    "Replays FILE's events before TIME and prints user U's Interest Clock at TIME:\n"
    "per local hour and clock field, the top-k values with their scores.\n"
    "  --at TIME     Unix seconds or ISO-8601 (default: just after the last event)\n"
    "  --mode M      realtime (events of the W days before TIME) or daily (the W\n"
    "                days before the start of TIME's local day); default: the config's\n"
    "  --json        one JSON object instead of text\n"
    "  --svg FILE    also draw the clock as an SVG dial\n"
    "  --bad-rows P  fail (default) or skip malformed rows\n"
    "exit status: 0 ok, 1 unknown user or runtime error, 2 bad usage or input\n";

typedef struct {
    const char *data, *config, *user, *at, *mode, *svg;
    int json;
    ic_bad_rows bad;
} clock_opts;

static int parse_opts(int argc, char **argv, clock_opts *o)
{
    static const struct option longs[] = {
        {"data", required_argument, 0, 'd'}, {"config", required_argument, 0, 'c'},
        {"user", required_argument, 0, 'u'}, {"at", required_argument, 0, 'a'},
        {"mode", required_argument, 0, 'm'}, {"json", no_argument, 0, 'j'},
        {"svg", required_argument, 0, 's'},  {"bad-rows", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'c': o->config = optarg; break;
        case 'u': o->user = optarg; break;
        case 'a': o->at = optarg; break;
        case 'm': o->mode = optarg; break;
        case 'j': o->json = 1; break;
        case 's': o->svg = optarg; break;
        case 'b':
            if (!strcmp(optarg, "fail")) o->bad = IC_BAD_ROWS_FAIL;
            else if (!strcmp(optarg, "skip")) o->bad = IC_BAD_ROWS_SKIP;
            else return cli_usage_error("clock", "--bad-rows must be fail or skip, not '%s'", optarg);
            break;
        case 'h': fputs(USAGE, stdout); return -1;
        default: return cli_usage_error("clock", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("clock", "unexpected argument '%s'", argv[optind]);
    if (!o->data) return cli_usage_error("clock", "--data FILE is required");
    if (!o->user) return cli_usage_error("clock", "--user U is required");
    if (o->mode && strcmp(o->mode, "realtime") && strcmp(o->mode, "daily"))
        return cli_usage_error("clock", "--mode must be realtime or daily, not '%s'", o->mode);
    return 0;
}

/* What the replay learned about the user. */
typedef struct {
    int seen;          /* the user has an event before the query time */
    int32_t tz;        /* the tz of the user's last such event */
    int64_t last_ts;   /* the log's last event before the query time */
    int any;           /* the log has such an event */
} replay_info;

/* Applies the user's events with ts < at (all events when !has_at). */
static ic_status replay(ic_reader *r, ic_clock_store *s, uint64_t uid, int has_at, int64_t at,
                        replay_info *info, ic_error *err)
{
    ic_event ev;
    int got;
    memset(info, 0, sizeof *info);
    while ((got = ic_reader_next(r, &ev, err)) == 1) {
        if (has_at && ev.ts >= at) break;
        info->any = 1;
        info->last_ts = ev.ts;
        if (ev.user != uid) continue;
        info->seen = 1;
        info->tz = ev.tz_min;
        ic_status st = ic_clock_apply(s, &ev, err);
        if (st != IC_OK) return st;
    }
    return got < 0 ? (ic_status)got : IC_OK;
}

static const char *value_str(const ic_names *names, uint64_t id, char buf[20])
{
    const char *s = ic_names_get(names, id);
    if (s) return s;
    snprintf(buf, 20, "%016llx", (unsigned long long)id);
    return buf;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void print_json(const ic_clock_view *v, const ic_config *cfg, const ic_names *names,
                       const char *user, int64_t at, const char *mode)
{
    char buf[20];
    fputs("{\"user\": ", stdout);
    json_string(stdout, user);
    printf(", \"at\": %lld, \"mode\": \"%s\", \"hours\": [", (long long)at, mode);
    for (int h = 0; h < IC_HOURS; h++) {
        fputs(h ? ", {" : "{", stdout);
        for (int f = 0; f < v->n_fields; f++) {
            if (f) fputs(", ", stdout);
            json_string(stdout, cfg->field[cfg->clock_field[f]]);
            fputs(": [", stdout);
            const uint64_t *val = ic_clock_view_values(v, h, f);
            const float *sc = ic_clock_view_scores(v, h, f);
            for (int i = 0; i < ic_clock_view_n(v, h, f); i++) {
                fputs(i ? ", {\"value\": " : "{\"value\": ", stdout);
                json_string(stdout, value_str(names, val[i], buf));
                printf(", \"score\": %.9g}", (double)sc[i]);
            }
            fputc(']', stdout);
        }
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

static void print_text(const ic_clock_view *v, const ic_config *cfg, const ic_names *names,
                       const char *user, int64_t at, int32_t tz, const char *mode)
{
    char buf[20];
    printf("user %s at %lld (tz %+d min), %s, window %d days, top %d\n", user, (long long)at, (int)tz,
           mode, cfg->window_days, cfg->top_k);
    int empty = 1;
    for (int h = 0; h < IC_HOURS; h++) {
        int any = 0;
        for (int f = 0; f < v->n_fields; f++) any |= ic_clock_view_n(v, h, f) > 0;
        if (!any) continue;
        empty = 0;
        printf("%02d:00", h);
        for (int f = 0; f < v->n_fields; f++) {
            printf("%s %s:", f ? " |" : "", cfg->field[cfg->clock_field[f]]);
            int n = ic_clock_view_n(v, h, f);
            const uint64_t *val = ic_clock_view_values(v, h, f);
            const float *sc = ic_clock_view_scores(v, h, f);
            for (int i = 0; i < n; i++)
                printf("%s %s %g", i ? "," : "", value_str(names, val[i], buf), (double)sc[i]);
            if (!n) fputs(" -", stdout);
        }
        putchar('\n');
    }
    if (empty) puts("(no value with a positive score in the window)");
}

static int write_svg(const char *path, const ic_clock_view *v, const ic_config *cfg,
                     const ic_names *names, const char *user, const char *mode)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "iclock clock: %s: cannot create\n", path);
        return EXIT_RUNTIME;
    }
    char title[160];
    snprintf(title, sizeof title, "Interest Clock of %s (%s, %d days, top %d)", user, mode,
             cfg->window_days, cfg->top_k);
    ic_error err = {{0}};
    ic_status st = ic_plot_clock_svg(f, v, cfg, names, title, &err);
    if (fclose(f) != 0 && st == IC_OK) {
        snprintf(err.msg, sizeof err.msg, "%s: write failed", path);
        st = IC_ERR_IO;
    }
    return st == IC_OK ? EXIT_OK : cli_fail("clock", st, &err);
}

/* Opens the log, replays it and queries the user's clock; prints it. */
static int run(const clock_opts *o, ic_config *cfg, ic_names *names)
{
    int64_t at = 0;
    if (o->at && cli_parse_time(o->at, &at) != 0)
        return cli_usage_error("clock", "--at: '%s' is not a time (Unix seconds or ISO-8601)", o->at);
    ic_error err = {{0}};
    ic_reader *r;
    ic_status st = ic_reader_open(&r, o->data, cfg, o->bad, names, &err);
    if (st != IC_OK) return cli_fail("clock", st, &err);
    ic_clock_store *s;
    st = ic_clock_create(&s, cfg, &err);
    if (st != IC_OK) {
        ic_reader_close(r);
        return cli_fail("clock", st, &err);
    }
    uint64_t uid = ic_hash(o->user, strlen(o->user));
    replay_info info;
    st = replay(r, s, uid, o->at != NULL, at, &info, &err);
    ic_reader_close(r);
    int rc = EXIT_OK;
    if (st != IC_OK) {
        rc = cli_fail("clock", st, &err);
    } else if (!info.seen) {
        fprintf(stderr, "iclock clock: unknown user '%s': no event of it in %s%s%s\n", o->user,
                o->data, o->at ? " before " : "", o->at ? o->at : "");
        rc = EXIT_RUNTIME;
    } else {
        if (!o->at) at = info.last_ts + 1;
        const char *mode = cfg->refresh == IC_REFRESH_DAILY ? "daily" : "realtime";
        ic_clock_view v;
        ic_clock_query(s, uid, at, info.tz, &v);
        if (o->json) print_json(&v, cfg, names, o->user, at, mode);
        else print_text(&v, cfg, names, o->user, at, info.tz, mode);
        if (o->svg) rc = write_svg(o->svg, &v, cfg, names, o->user, mode);
    }
    ic_clock_free(s);
    return rc;
}

int cmd_clock(int argc, char **argv)
{
    clock_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    ic_config cfg;
    if ((rc = cli_load_config("clock", o.config, &cfg)) != 0) return rc;
    if (o.mode) cfg.refresh = strcmp(o.mode, "daily") ? IC_REFRESH_REALTIME : IC_REFRESH_DAILY;
    ic_names *names = ic_names_create();
    rc = run(&o, &cfg, names);
    ic_names_free(names);
    return rc;
}
