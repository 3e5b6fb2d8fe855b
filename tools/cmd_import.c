/* cmd_import.c: `iclock import <format>`: converts a public check-in log
 * into the event format (src/import.c, docs/DATA.md) and reports what it
 * read, rejected and wrote on stderr. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iclock import contexttrails --checkins FILE [--checkins FILE ...] --pois FILE -o OUT.csv\n"
            "       iclock import foursquare-tsmc --input FILE [--input FILE ...] -o OUT.csv\n"
            "\n"
            "Converts a check-in log (plain or .gz) into iclock's event format, sorted by\n"
            "time, one row per check-in with checkin = 1 (docs/DATA.md).\n"
            "\n"
            "options:\n"
            "  --checkins, --input FILE  a check-in file (repeatable; read in order)\n"
            "  --pois FILE          contexttrails: the venue file (categories, price)\n"
            "  -o, --output FILE    the event log to write ('-' for stdout)\n"
            "  --tz-minutes N       the UTC offset of every event, in minutes\n"
            "                       (contexttrails default: the most common written offset;\n"
            "                       foursquare-tsmc default: 0, the timeline is local time)\n"
            "  --trust-offsets      contexttrails: take timestamps as written (default: their\n"
            "                       clock digits are UTC, the written offset is ignored)\n"
            "  --origin DATE        foursquare-tsmc: the Monday the timeline starts\n"
            "                       (default 2012-04-02)\n"
            "  --align-start        foursquare-tsmc: every user starts in the first week\n"
            "                       (default: every user ends in the last week)\n"
            "  --keep-tid-gaps      foursquare-tsmc: leave tid - first tid weeks between a\n"
            "                       user's trajectories (default: weeks end to end)\n"
            "  --min-active-days N  keep only users active on at least N distinct local days\n"
            "  --strict             fail on the first bad row (default: skip and count)\n"
            "  -h, --help\n");
}

static void report(const ic_import_opts *o, const ic_import_stats *st, const char *out)
{
    fprintf(stderr, "iclock import %s: read %llu check-in rows", ic_import_format_name(o->format),
            (unsigned long long)st->rows);
    if (o->format == IC_IMPORT_CONTEXTTRAILS)
        fprintf(stderr, " and %llu venue rows", (unsigned long long)st->poi_rows);
    fprintf(stderr, "; rejected %llu rows\n", (unsigned long long)st->rejected);
    for (int i = 0; i < st->n_reason; i++)
        fprintf(stderr, "  rejected %llu: %s\n", (unsigned long long)st->reason[i].n, st->reason[i].what);
    for (int i = 0; i < st->n_first_bad; i++) fprintf(stderr, "  e.g. %s\n", st->first_bad[i]);
    if (o->format == IC_IMPORT_CONTEXTTRAILS)
        fprintf(stderr, "  %llu events at venues without a level-1 category; %llu rows written with an offset other than tz\n",
                (unsigned long long)st->uncategorised, (unsigned long long)st->offset_differs);
    if (o->min_active_days > 0)
        fprintf(stderr, "  --min-active-days %d dropped %llu users (%llu events)\n", o->min_active_days,
                (unsigned long long)st->inactive_users, (unsigned long long)st->inactive_events);
    fprintf(stderr, "  wrote %llu events, %llu users, %llu items, tz %d min, ts %lld..%lld to %s\n",
            (unsigned long long)st->events, (unsigned long long)st->users,
            (unsigned long long)st->items, (int)st->tz_min, (long long)st->first_ts,
            (long long)st->last_ts, out);
}

int cmd_import(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"checkins", required_argument, 0, 'i'}, {"input", required_argument, 0, 'i'},
        {"pois", required_argument, 0, 'p'},     {"output", required_argument, 0, 'o'},
        {"tz-minutes", required_argument, 0, 'z'}, {"trust-offsets", no_argument, 0, 't'},
        {"origin", required_argument, 0, 'g'},   {"keep-tid-gaps", no_argument, 0, 'k'},
        {"min-active-days", required_argument, 0, 'm'}, {"strict", no_argument, 0, 's'},
        {"align-start", no_argument, 0, 'a'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    ic_import_opts o;
    ic_import_opts_default(&o, IC_IMPORT_CONTEXTTRAILS);
    const char *inputs[MAX_INPUTS], *out = NULL;
    int n_in = 0, origin_given = 0;
    int64_t origin = o.origin;
    char *end;
    optind = 0; /* GNU getopt: restart, so the command can run twice in one process */
    for (int c; (c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1;) {
        switch (c) {
        case 'i':
            if (n_in == MAX_INPUTS) return cli_usage_error("import", "at most %d input files", MAX_INPUTS);
            inputs[n_in++] = optarg;
            break;
        case 'p': o.pois = optarg; break;
        case 'o': out = optarg; break;
        case 'z':
            o.tz_min = (int32_t)strtol(optarg, &end, 10);
            if (!*optarg || *end) return cli_usage_error("import", "--tz-minutes: '%s' is not a number", optarg);
            o.tz_given = 1;
            break;
        case 't': o.trust_offsets = 1; break;
        case 'g':
            if (cli_parse_time(optarg, &origin)) return cli_usage_error("import", "--origin: '%s' is not a date", optarg);
            origin_given = 1;
            break;
        case 'k': o.keep_tid_gaps = 1; break;
        case 'a': o.align_start = 1; break;
        case 'm':
            o.min_active_days = (int)strtol(optarg, &end, 10);
            if (!*optarg || *end || o.min_active_days < 0)
                return cli_usage_error("import", "--min-active-days: '%s' is not a count", optarg);
            break;
        case 's': o.strict = 1; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_usage_error("import", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("import", "give one format: contexttrails or foursquare-tsmc");
    int f = ic_import_format_parse(argv[optind]);
    if (f < 0) return cli_usage_error("import", "unknown format '%s' (contexttrails, foursquare-tsmc)", argv[optind]);
    if (!n_in) return cli_usage_error("import", "no input file (--checkins/--input)");
    if (!out) return cli_usage_error("import", "no output file (-o)");
    o.format = (ic_import_format)f;
    if (origin_given) o.origin = origin;
    o.input = inputs;
    o.n_input = n_in;
    ic_import_stats st;
    ic_error err = {{0}};
    ic_status s = ic_import_run(&o, out, &st, &err);
    if (s != IC_OK) return cli_fail("import", s, &err);
    report(&o, &st, out);
    return EXIT_OK;
}
