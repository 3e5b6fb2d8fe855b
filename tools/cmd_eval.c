/* cmd_eval.c: `iclock eval`: a saved model on the test period of a log.
 * The clock store is rebuilt from the log as its events pass; the model
 * stays frozen throughout. */
#include "cli.h"

#include <string.h>
#include <unistd.h>

static void help(FILE *out)
{
    fputs("usage: iclock eval --data FILE --model M [options]\n"
          "\n"
          "Replays the log in time order with the model frozen: the clock store is\n"
          "rebuilt from the events as they pass, and every test-period event (the\n"
          "last 12.5% of the time span by default) is scored before it is applied.\n"
          "Prints the test metrics per task.\n"
          "\n"
          "  --data FILE           event log (.csv or .csv.gz), sorted by time\n"
          "  --model M             a model saved by iclock train\n"
          "  --config CFG          its configuration (default: M.ini if present, else built-in)\n"
          "  --valid-start TIME    start of validation (Unix seconds or ISO-8601)\n"
          "  --test-start TIME     start of test\n"
          "  --predictions OUT     write user,item,ts,<task>_label,<task>_pred per test event\n"
          "  --bad-rows fail|skip  malformed rows stop the run (default) or are skipped\n"
          "  --json                print the metrics as JSON on stdout\n"
          "  --quiet               no progress on stderr\n",
          out);
}

typedef struct {
    const char *data, *model, *config, *predictions;
    int json, quiet;
    ic_bad_rows bad;
    ic_replay_opts ro;
} eval_args;

static int parse(int argc, char **argv, eval_args *a)
{
    enum { O_VALID = 256, O_TEST, O_PRED, O_BAD, O_JSON, O_QUIET };
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},     {"model", required_argument, 0, 'm'},
        {"config", required_argument, 0, 'c'},   {"valid-start", required_argument, 0, O_VALID},
        {"test-start", required_argument, 0, O_TEST}, {"predictions", required_argument, 0, O_PRED},
        {"bad-rows", required_argument, 0, O_BAD}, {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    ic_replay_opts_default(&a->ro);
    int c;
    while ((c = getopt_long(argc, argv, "d:m:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data = optarg; break;
        case 'm': a->model = optarg; break;
        case 'c': a->config = optarg; break;
        case O_VALID:
            if (cli_parse_time(optarg, &a->ro.t_valid))
                return cli_usage_error("eval", "--valid-start: '%s' is not a time", optarg);
            break;
        case O_TEST:
            if (cli_parse_time(optarg, &a->ro.t_test))
                return cli_usage_error("eval", "--test-start: '%s' is not a time", optarg);
            break;
        case O_PRED: a->predictions = optarg; break;
        case O_BAD:
            if (cli_parse_bad_rows(optarg, &a->bad))
                return cli_usage_error("eval", "--bad-rows: '%s' is not fail or skip", optarg);
            break;
        case O_JSON: a->json = 1; break;
        case O_QUIET: a->quiet = 1; break;
        case 'h': help(stdout); return -1;
        default: return cli_usage_error("eval", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (!a->data) return cli_usage_error("eval", "--data FILE is required");
    if (!a->model) return cli_usage_error("eval", "--model M is required");
    return 0;
}

static FILE *open_predictions(const char *path, const ic_config *cfg)
{
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs("user,item,ts", f);
    for (int t = 0; t < cfg->n_tasks; t++)
        fprintf(f, ",%s_label,%s_pred", cfg->task[t].name, cfg->task[t].name);
    fputc('\n', f);
    return f;
}

int cmd_eval(int argc, char **argv)
{
    eval_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    char ini[1024];
    snprintf(ini, sizeof ini, "%s.ini", a.model);
    const char *cfg_path = a.config ? a.config : access(ini, R_OK) == 0 ? ini : NULL;
    ic_config cfg;
    if ((rc = cli_load_config("eval", cfg_path, &cfg))) return rc;
    openblas_set_num_threads(1);

    ic_error err = {{0}};
    ic_model *m = NULL;
    ic_status s = ic_model_load(&m, a.model, &cfg, &err);
    if (s != IC_OK) return cli_fail("eval", s, &err);
    ic_log log;
    if ((rc = cli_load_log("eval", a.data, &cfg, a.bad, a.quiet, &log))) {
        ic_model_free(m);
        return rc;
    }
    if (a.predictions && !(a.ro.predictions = open_predictions(a.predictions, &cfg))) {
        fprintf(stderr, "iclock eval: cannot write %s\n", a.predictions);
        ic_model_free(m);
        ic_log_free(&log);
        return EXIT_RUNTIME;
    }
    a.ro.train = 0;
    a.ro.progress = !a.quiet && cli_stderr_is_tty();
    a.ro.label = "eval";
    ic_engine *e = NULL;
    ic_replay_result res;
    s = ic_engine_create(&e, &cfg, m, NULL, &err);
    if (s == IC_OK) s = ic_replay(e, &log, &a.ro, &res, &err);
    if (a.ro.predictions && fclose(a.ro.predictions) != 0 && s == IC_OK)
        s = IC_ERR_IO, snprintf(err.msg, sizeof err.msg, "%s: write failed", a.predictions);
    if (s != IC_OK) {
        rc = cli_fail("eval", s, &err);
    } else if (a.json) {
        cli_metrics_json(stdout, &cfg, res.n[IC_PHASE_TEST], res.m[IC_PHASE_TEST]);
        putchar('\n');
    } else {
        cli_print_metrics(stdout, &cfg, "test", res.n[IC_PHASE_TEST], res.m[IC_PHASE_TEST]);
    }
    ic_engine_free(e);
    ic_log_free(&log);
    return rc;
}
