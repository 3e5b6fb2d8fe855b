/* cmd_synth.c: `iclock synth`, the listening simulator on the command line.
 * Parses and checks the options, writes the CSV log (stdout or -o FILE) and
 * a one-line summary to stderr. The model itself is in src/synth.c. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *CMD = "synth";

static void synth_help(FILE *out)
{
    ic_synth_opts d;
    ic_synth_opts_default(&d);
    fprintf(out,
            "usage: iclock synth [options]\n"
            "\n"
            "Simulates a music-listening log with a daily rhythm (docs/SIMULATOR.md) and\n"
            "writes it as CSV sorted by time, header:\n  %s\n"
            "The same options always give the same bytes.\n"
            "\noptions (defaults in brackets):\n"
            "  --users N            users, 1..1000000 [%d]\n"
            "  --items M            items, 1..10000000 [%d]\n"
            "  --days D             days simulated, 1..3660 [%d]\n"
            "  --seed S             random seed, 0..2^64-1 [%" PRIu64 "]\n"
            "  --rhythm R           how much the local hour shapes taste, 0..1;\n"
            "                       0: the hour does not matter at all [%g]\n"
            "  --start T            first second: Unix seconds or ISO date/time\n"
            "                       [2023-08-01T00:00:00Z = %" PRId64 "]\n"
            "  --events-per-day E   mean plays per active user-day, 2..1000 [%g]\n"
            "  --oracle             append the simulator's true finish probability and\n"
            "                       two oracles' (p_finish,p_static,p_global; see the doc)\n"
            "  -o, --output FILE    write here instead of stdout\n"
            "  -q, --quiet          no summary line on stderr\n"
            "  -h, --help           this text\n"
            "\nexit status: 0 ok, 1 cannot write, 2 bad option\n",
            IC_SYNTH_HEADER, d.n_users, d.n_items, d.n_days, d.seed, d.rhythm, d.start,
            d.events_per_day);
}

/* Whole-string integer in [lo, hi]; 0 or -1. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || v != v) return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno) return -1;
    *out = v;
    return 0;
}

enum { OPT_USERS = 256, OPT_ITEMS, OPT_DAYS, OPT_SEED, OPT_RHYTHM, OPT_START, OPT_EPD,
       OPT_ORACLE };

/* Applies one option to o; returns 0 or an exit status after the message. */
static int apply_option(int c, const char *arg, ic_synth_opts *o)
{
    int bad = 0;
    switch (c) {
    case OPT_USERS: bad = parse_int(arg, 1, 1000000, &o->n_users); break;
    case OPT_ITEMS: bad = parse_int(arg, 1, 10000000, &o->n_items); break;
    case OPT_DAYS: bad = parse_int(arg, 1, 3660, &o->n_days); break;
    case OPT_SEED: bad = parse_u64(arg, &o->seed); break;
    case OPT_RHYTHM: bad = parse_double(arg, &o->rhythm) || o->rhythm < 0 || o->rhythm > 1; break;
    case OPT_START: bad = cli_parse_time(arg, &o->start); break;
    case OPT_EPD:
        bad = parse_double(arg, &o->events_per_day) || o->events_per_day < 2 ||
              o->events_per_day > 1000;
        break;
    }
    if (!bad) return 0;
    static const char *const what[] = {
        "--users: expected an integer in 1..1000000",
        "--items: expected an integer in 1..10000000",
        "--days: expected an integer in 1..3660",
        "--seed: expected an unsigned 64-bit integer",
        "--rhythm: expected a number in [0, 1]",
        "--start: expected Unix seconds or an ISO-8601 date such as 2023-08-01T00:00:00Z",
        "--events-per-day: expected a number in [2, 1000]"};
    return cli_usage_error(CMD, "%s, got \"%s\"", what[c - OPT_USERS], arg);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Generates into path (NULL = stdout). Returns an exit status. */
static int generate(const ic_synth_opts *o, const char *path, int oracle, int quiet)
{
    FILE *out = path ? fopen(path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "iclock synth: %s: cannot create: %s\n", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    static char buf[1 << 20];
    setvbuf(out, buf, _IOFBF, sizeof buf);
    ic_error err = {{0}};
    ic_synth_stats st;
    double t0 = now_seconds();
    ic_status s = oracle ? ic_synth_write_csv_oracle(o, out, &st, &err)
                         : ic_synth_write_csv(o, out, &st, &err);
    if (path && fclose(out) != 0 && s == IC_OK) {
        snprintf(err.msg, sizeof err.msg, "%s: cannot write: %s", path, strerror(errno));
        s = IC_ERR_IO;
    }
    if (!path) fflush(stdout);
    if (s != IC_OK) {
        if (path) unlink(path);
        return cli_fail(CMD, s, &err);
    }
    if (!quiet)
        fprintf(stderr,
                "iclock synth: %" PRIu64 " events, %u users, %u items, %d days, "
                "finish %.3f like %.3f skip %.3f dislike %.3f, %.2f s\n",
                st.events, st.users_active, st.items_seen, o->n_days,
                st.events ? (double)st.finish / st.events : 0.0,
                st.events ? (double)st.like / st.events : 0.0,
                st.events ? (double)st.skip / st.events : 0.0,
                st.events ? (double)st.dislike / st.events : 0.0, now_seconds() - t0);
    return EXIT_OK;
}

int cmd_synth(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"users", required_argument, 0, OPT_USERS},
        {"items", required_argument, 0, OPT_ITEMS},
        {"days", required_argument, 0, OPT_DAYS},
        {"seed", required_argument, 0, OPT_SEED},
        {"rhythm", required_argument, 0, OPT_RHYTHM},
        {"start", required_argument, 0, OPT_START},
        {"events-per-day", required_argument, 0, OPT_EPD},
        {"oracle", no_argument, 0, OPT_ORACLE},
        {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    ic_synth_opts o;
    ic_synth_opts_default(&o);
    const char *path = NULL;
    int quiet = 0, oracle = 0, c;
    optind = 0; /* glibc: a full reset, since the demo calls us in-process */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:qh", longopts, NULL)) != -1) {
        if (c == 'h') {
            synth_help(stdout);
            return EXIT_OK;
        } else if (c == 'o') {
            path = strcmp(optarg, "-") ? optarg : NULL;
        } else if (c == 'q') {
            quiet = 1;
        } else if (c == OPT_ORACLE) {
            oracle = 1;
        } else if (c == ':') {
            return cli_usage_error(CMD, "%s needs a value", argv[optind - 1]);
        } else if (c == '?') {
            return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        } else {
            int rc = apply_option(c, optarg, &o);
            if (rc) return rc;
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    return generate(&o, path, oracle, quiet);
}
