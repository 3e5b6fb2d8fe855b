/* cmd_experiment.c: `iclock experiment`: the paper's Table 2 on a log.
 * Baseline, Naive, Adaptive and Gaussian clocks (and the extras) on the same
 * data, order and seeds; test AUC and UAUC of the main task, mean +- std
 * over seeds, and the difference to Baseline. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void help(FILE *out)
{
    fputs("usage: iclock experiment --data FILE [options]\n"
          "\n"
          "Trains and evaluates each variant (baseline = no clock, naive, adaptive,\n"
          "gaussian; with --extras also gaussian_learned_sigma, gaussian_continuous,\n"
          "gaussian_score_pool) with K seeds on the same log, in the same order, as\n"
          "`iclock train` does, and prints the test AUC and UAUC of the main task:\n"
          "mean +- sample std over seeds, and the difference to baseline.\n"
          "\n"
          "  --data FILE           event log (.csv or .csv.gz), sorted by time\n"
          "  --config CFG          configuration (default: built-in)\n"
          "  --seeds K             seeds per variant (default 3): seed, seed+1, ...\n"
          "  --extras              add the beyond-the-paper variants\n"
          "  --variants A,B,...    run only these variants (names as above)\n"
          "  --jobs N              runs in parallel, one BLAS thread each (default 2)\n"
          "  --set SEC.KEY=VAL     any config option (repeatable)\n"
          "  --json OUT            also write the results as JSON to OUT\n"
          "  --bad-rows fail|skip  malformed rows stop the run (default) or are skipped\n"
          "  --quiet               no progress on stderr\n",
          out);
}

typedef struct {
    const char *data, *config, *json, *variants;
    const char *sets[32];
    int n_sets, seeds, extras, jobs, quiet;
    ic_bad_rows bad;
} exp_args;

static int parse(int argc, char **argv, exp_args *a)
{
    enum { O_SEEDS = 256, O_EXTRAS, O_VARIANTS, O_JOBS, O_SET, O_JSON, O_BAD, O_QUIET };
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},   {"config", required_argument, 0, 'c'},
        {"seeds", required_argument, 0, O_SEEDS}, {"extras", no_argument, 0, O_EXTRAS},
        {"variants", required_argument, 0, O_VARIANTS}, {"jobs", required_argument, 0, O_JOBS},
        {"set", required_argument, 0, O_SET},  {"json", required_argument, 0, O_JSON},
        {"bad-rows", required_argument, 0, O_BAD}, {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    a->seeds = 3;
    a->jobs = 2;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "d:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data = optarg; break;
        case 'c': a->config = optarg; break;
        case O_SEEDS:
            a->seeds = (int)strtol(optarg, &end, 10);
            if (*end || a->seeds < 1 || a->seeds > 64)
                return cli_usage_error("experiment", "--seeds: '%s' is not in 1..64", optarg);
            break;
        case O_EXTRAS: a->extras = 1; break;
        case O_VARIANTS: a->variants = optarg; break;
        case O_JOBS:
            a->jobs = (int)strtol(optarg, &end, 10);
            if (*end || a->jobs < 1 || a->jobs > 16)
                return cli_usage_error("experiment", "--jobs: '%s' is not in 1..16", optarg);
            break;
        case O_SET:
            if (a->n_sets == 32) return cli_usage_error("experiment", "too many --set options");
            a->sets[a->n_sets++] = optarg;
            break;
        case O_JSON: a->json = optarg; break;
        case O_BAD:
            if (cli_parse_bad_rows(optarg, &a->bad))
                return cli_usage_error("experiment", "--bad-rows: '%s' is not fail or skip", optarg);
            break;
        case O_QUIET: a->quiet = 1; break;
        case 'h': help(stdout); return -1;
        default: return cli_usage_error("experiment", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("experiment", "unexpected argument '%s'", argv[optind]);
    if (!a->data) return cli_usage_error("experiment", "--data FILE is required");
    return 0;
}

/* Keeps the variants named in list (comma-separated), in the list's order. */
static int select_variants(const char *list, ic_variant *v, int n)
{
    ic_variant all[IC_MAX_VARIANTS];
    memcpy(all, v, (size_t)n * sizeof *v);
    int k = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int found = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(all[i].name, tok)) found = i;
        if (found < 0) return -cli_usage_error("experiment", "unknown variant '%s'", tok);
        v[k++] = all[found];
    }
    return k;
}

/* A signed difference in an 8-wide column, or blanks. */
static void print_diff(FILE *out, int show, double d)
{
    if (show) fprintf(out, "%+8.4f", d);
    else fprintf(out, "%8s", "");
}

static void print_table(FILE *out, const ic_config *cfg, const ic_variant_result *r, int n,
                        uint64_t n_test)
{
    int base = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].name, "baseline")) base = i;
    fprintf(out, "\nTest period, task '%s' (%llu samples); mean +- std over %d seed(s); "
            "d = difference to baseline\n\n", cfg->task[0].name, (unsigned long long)n_test, r[0].seeds);
    fprintf(out, "%-24s %-16s %8s  %-16s %8s %8s %8s %8s\n", "variant", "AUC", "dAUC", "UAUC",
            "dUAUC", "GAUC", "logloss", "time(s)");
    for (int i = 0; i < n; i++) {
        int vs = base >= 0 && i != base; /* a difference to show */
        fprintf(out, "%-24s %.4f +- %.4f ", r[i].name, r[i].auc, r[i].auc_std);
        print_diff(out, vs, r[i].auc - (base >= 0 ? r[base].auc : 0));
        fputs("  ", out);
        fprintf(out, "%.4f +- %.4f ", r[i].uauc, r[i].uauc_std);
        print_diff(out, vs, r[i].uauc - (base >= 0 ? r[base].uauc : 0));
        fprintf(out, " %8.4f %8.4f %8.1f\n", r[i].gauc, r[i].logloss, r[i].seconds);
    }
}

static int write_json(const char *path, const ic_variant_result *r, int n, double wall)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"variants\": [");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\n  {\"name\": \"%s\", \"seeds\": %d", i ? "," : "", r[i].name, r[i].seeds);
        cli_json_kv(f, "auc", r[i].auc);
        cli_json_kv(f, "auc_std", r[i].auc_std);
        cli_json_kv(f, "uauc", r[i].uauc);
        cli_json_kv(f, "uauc_std", r[i].uauc_std);
        cli_json_kv(f, "gauc", r[i].gauc);
        cli_json_kv(f, "logloss", r[i].logloss);
        cli_json_kv(f, "seconds", r[i].seconds);
        cli_json_list(f, "auc_per_seed", r[i].auc_seed, r[i].seeds);
        cli_json_list(f, "uauc_per_seed", r[i].uauc_seed, r[i].seeds);
        fputc('}', f);
    }
    fprintf(f, "\n], \"wall_seconds\": %.2f}\n", wall);
    return fclose(f) == 0 ? 0 : -1;
}

int cmd_experiment(int argc, char **argv)
{
    exp_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    ic_config cfg;
    if ((rc = cli_load_config("experiment", a.config, &cfg))) return rc;
    if ((rc = cli_config_overrides("experiment", &cfg, NULL, -1, a.sets, a.n_sets))) return rc;
    ic_variant v[IC_MAX_VARIANTS];
    int nv = ic_experiment_variants(&cfg, 1, v, IC_MAX_VARIANTS);
    if (a.variants) {
        nv = select_variants(a.variants, v, nv);
        if (nv < 0) return -nv;
    } else if (!a.extras) {
        nv = ic_experiment_variants(&cfg, 0, v, IC_MAX_VARIANTS);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ic_log log;
    if ((rc = cli_load_log("experiment", a.data, &cfg, a.bad, a.quiet, &log))) return rc;
    if (!a.quiet)
        fprintf(stderr, "iclock experiment: %d variants x %d seeds, %d at a time\n", nv, a.seeds, a.jobs);
    ic_variant_result *res = calloc((size_t)nv, sizeof *res);
    ic_error err = {{0}};
    ic_status s = ic_experiment_run(&log, v, nv, a.seeds, a.jobs, !a.quiet, res, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (s != IC_OK) {
        rc = cli_fail("experiment", s, &err);
    } else {
        int64_t tv, tt;
        ic_replay_split(&cfg, &log, &tv, &tt);
        uint64_t n_test = 0;
        for (size_t i = 0; i < log.n; i++) n_test += log.ev[i].ts >= tt;
        print_table(stdout, &cfg, res, nv, n_test);
        printf("\nwall time %.1f s (%zu events, %d runs)\n", wall, log.n, nv * a.seeds);
        if (a.json && write_json(a.json, res, nv, wall) != 0) {
            fprintf(stderr, "iclock experiment: cannot write %s\n", a.json);
            rc = EXIT_RUNTIME;
        }
    }
    free(res);
    ic_log_free(&log);
    return rc;
}
