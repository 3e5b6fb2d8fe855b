/* cmd_negatives.c: `iclock negatives`: adds popularity-sampled negative
 * impressions to a positives-only log (src/negatives.c, docs/DATA.md). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iclock negatives --data IN.csv [--config CFG] --per-positive K [--seed S] -o OUT.csv\n"
            "\n"
            "For each positive (main task label > 0), writes K negatives at the same time:\n"
            "items drawn by their count of positives strictly before that time, never one\n"
            "the user has an event with at that time. A negative copies the item's own\n"
            "fields as last seen and the positive's context fields; actions and labels 0.\n"
            "\n"
            "options:\n"
            "  --data FILE          the log (sorted by time; plain or .gz)\n"
            "  --config FILE        its configuration (default: the built-in one)\n"
            "  --per-positive K     negatives per positive (K >= 1)\n"
            "  --seed S             the sampling seed (default 1)\n"
            "  -o, --output FILE    the log to write ('-' for stdout)\n"
            "  -h, --help\n");
}

int cmd_negatives(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, 0, 'd'},   {"config", required_argument, 0, 'c'},
        {"per-positive", required_argument, 0, 'k'}, {"seed", required_argument, 0, 's'},
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *data = NULL, *config = NULL, *out = NULL;
    ic_negatives_opts o = {.per_positive = 0, .seed = 1};
    char *end;
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1;) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'c': config = optarg; break;
        case 'o': out = optarg; break;
        case 'k':
            o.per_positive = (int)strtol(optarg, &end, 10);
            if (!*optarg || *end || o.per_positive < 1)
                return cli_usage_error("negatives", "--per-positive: '%s' is not a count >= 1", optarg);
            break;
        case 's':
            o.seed = strtoull(optarg, &end, 10);
            if (!*optarg || *end) return cli_usage_error("negatives", "--seed: '%s' is not a number", optarg);
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_usage_error("negatives", "unknown option");
        }
    }
    if (optind != argc) return cli_usage_error("negatives", "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage_error("negatives", "no input log (--data)");
    if (!out) return cli_usage_error("negatives", "no output file (-o)");
    if (!o.per_positive) return cli_usage_error("negatives", "--per-positive K is required");
    ic_config cfg;
    int rc = cli_load_config("negatives", config, &cfg);
    if (rc) return rc;
    ic_negatives_stats st;
    ic_error err = {{0}};
    ic_status s = ic_negatives_run(&cfg, data, out, &o, &st, &err);
    if (s != IC_OK) return cli_fail("negatives", s, &err);
    fprintf(stderr,
            "iclock negatives: read %llu events: %llu positives, %llu other rows passed through\n"
            "  wrote %llu negatives (K = %d, seed %llu); %llu positives got fewer than K "
            "(too few items with past positives); %llu items\n",
            (unsigned long long)st.rows_in, (unsigned long long)st.positives,
            (unsigned long long)st.passed, (unsigned long long)st.negatives, o.per_positive,
            (unsigned long long)o.seed, (unsigned long long)st.short_positives,
            (unsigned long long)st.items);
    return EXIT_OK;
}
