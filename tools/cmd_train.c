/* cmd_train.c: `iclock train`: one streaming pass over a log's training
 * period, then the validation metrics; saves the model (and its config
 * beside it as MODEL.ini, which `iclock eval` reads). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void help(FILE *out)
{
    fputs("usage: iclock train --data FILE --model OUT [options]\n"
          "\n"
          "Replays the log in time order: trains on the training period (the first\n"
          "split_train of its time span, 75% by default) in one streaming pass, each\n"
          "sample built from the clock store as it stood before the event; then keeps\n"
          "the clock updating through the validation period with the model frozen\n"
          "and prints validation metrics. Saves the model to OUT and the config to\n"
          "OUT.ini.\n"
          "\n"
          "  --data FILE           event log (.csv or .csv.gz), sorted by time\n"
          "  --model OUT           where to save the model\n"
          "  --config CFG          configuration (default: built-in, = configs/music.ini)\n"
          "  --clock KIND          none | naive | adaptive | gaussian (overrides config)\n"
          "  --seed S              model seed (overrides [train] seed)\n"
          "  --set SEC.KEY=VAL     any config option, e.g. --set train.emb_lr=0.1 (repeatable)\n"
          "  --epochs N            passes over the training period (default 1)\n"
          "  --online-eval         test-then-train over the whole log instead of splits\n"
          "  --valid-start TIME    start of validation (Unix seconds or ISO-8601)\n"
          "  --test-start TIME     start of test\n"
          "  --checkpoint PREFIX   checkpoint files PREFIX, PREFIX.<n>.model, PREFIX.<n>.clock\n"
          "  --checkpoint-every N  write a checkpoint every N training events\n"
          "  --resume PREFIX       continue from a checkpoint (same log and config)\n"
          "  --threads 1|2         threads for training: 2 runs data-parallel halves of each\n"
          "                        batch (faster than BLAS threads here; default 1)\n"
          "  --bad-rows fail|skip  malformed rows stop the run (default) or are skipped\n"
          "  --json                print the metrics as JSON on stdout\n"
          "  --quiet               no progress on stderr\n",
          out);
}

typedef struct {
    const char *data, *model, *config, *clock, *checkpoint, *resume;
    const char *sets[32];
    int n_sets, json, quiet, threads;
    long long seed;
    ic_bad_rows bad;
    ic_replay_opts ro;
} train_args;

static int parse(int argc, char **argv, train_args *a)
{
    enum { O_CLOCK = 256, O_SEED, O_SET, O_EPOCHS, O_ONLINE, O_VALID, O_TEST, O_CKPT, O_CKPT_EVERY,
           O_RESUME, O_THREADS, O_BAD, O_JSON, O_QUIET };
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},   {"model", required_argument, 0, 'm'},
        {"config", required_argument, 0, 'c'}, {"clock", required_argument, 0, O_CLOCK},
        {"seed", required_argument, 0, O_SEED}, {"set", required_argument, 0, O_SET},
        {"epochs", required_argument, 0, O_EPOCHS}, {"online-eval", no_argument, 0, O_ONLINE},
        {"valid-start", required_argument, 0, O_VALID}, {"test-start", required_argument, 0, O_TEST},
        {"checkpoint", required_argument, 0, O_CKPT},
        {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"resume", required_argument, 0, O_RESUME}, {"threads", required_argument, 0, O_THREADS},
        {"bad-rows", required_argument, 0, O_BAD}, {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    ic_replay_opts_default(&a->ro);
    a->seed = -1;
    a->threads = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "d:m:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data = optarg; break;
        case 'm': a->model = optarg; break;
        case 'c': a->config = optarg; break;
        case O_CLOCK: a->clock = optarg; break;
        case O_SEED:
            a->seed = strtoll(optarg, &end, 10);
            if (*end || a->seed < 0) return cli_usage_error("train", "--seed: '%s' is not a seed", optarg);
            break;
        case O_SET:
            if (a->n_sets == 32) return cli_usage_error("train", "too many --set options");
            a->sets[a->n_sets++] = optarg;
            break;
        case O_EPOCHS:
            a->ro.epochs = (int)strtol(optarg, &end, 10);
            if (*end || a->ro.epochs < 1 || a->ro.epochs > 1000)
                return cli_usage_error("train", "--epochs: '%s' is not in 1..1000", optarg);
            break;
        case O_ONLINE: a->ro.online_eval = 1; break;
        case O_VALID:
            if (cli_parse_time(optarg, &a->ro.t_valid))
                return cli_usage_error("train", "--valid-start: '%s' is not a time", optarg);
            break;
        case O_TEST:
            if (cli_parse_time(optarg, &a->ro.t_test))
                return cli_usage_error("train", "--test-start: '%s' is not a time", optarg);
            break;
        case O_CKPT: a->checkpoint = optarg; break;
        case O_CKPT_EVERY:
            a->ro.checkpoint_every = strtoull(optarg, &end, 10);
            if (*end || a->ro.checkpoint_every == 0)
                return cli_usage_error("train", "--checkpoint-every: '%s' is not a positive count", optarg);
            break;
        case O_RESUME: a->resume = optarg; break;
        case O_THREADS:
            a->threads = (int)strtol(optarg, &end, 10);
            if (*end || a->threads < 1 || a->threads > 2)
                return cli_usage_error("train", "--threads: '%s' is not 1 or 2", optarg);
            break;
        case O_BAD:
            if (cli_parse_bad_rows(optarg, &a->bad))
                return cli_usage_error("train", "--bad-rows: '%s' is not fail or skip", optarg);
            break;
        case O_JSON: a->json = 1; break;
        case O_QUIET: a->quiet = 1; break;
        case 'h': help(stdout); return -1;
        default: return cli_usage_error("train", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!a->data) return cli_usage_error("train", "--data FILE is required");
    if (!a->model) return cli_usage_error("train", "--model OUT is required");
    if (a->ro.checkpoint_every && !a->checkpoint)
        return cli_usage_error("train", "--checkpoint-every needs --checkpoint PREFIX");
    return 0;
}

static int save_model(const train_args *a, ic_engine *e, const ic_config *cfg)
{
    ic_error err = {{0}};
    ic_status s = ic_model_save(ic_engine_model(e), a->model, &err);
    if (s != IC_OK) return cli_fail("train", s, &err);
    char ini[1024];
    snprintf(ini, sizeof ini, "%s.ini", a->model);
    FILE *f = fopen(ini, "w");
    if (!f) {
        fprintf(stderr, "iclock train: cannot write %s\n", ini);
        return EXIT_RUNTIME;
    }
    ic_config_write(cfg, f);
    if (fclose(f) != 0) {
        fprintf(stderr, "iclock train: cannot write %s\n", ini);
        return EXIT_RUNTIME;
    }
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    ic_config cfg;
    if ((rc = cli_load_config("train", a.config, &cfg))) return rc;
    if ((rc = cli_config_overrides("train", &cfg, a.clock, a.seed, a.sets, a.n_sets))) return rc;
    openblas_set_num_threads(1); /* the parallelism is the model's own (ic_engine_set_threads) */
    ic_log log;
    if ((rc = cli_load_log("train", a.data, &cfg, a.bad, a.quiet, &log))) return rc;

    a.ro.checkpoint = a.checkpoint;
    a.ro.resume = a.resume;
    a.ro.progress = !a.quiet && cli_stderr_is_tty();
    a.ro.label = "train";
    /* Stop at the test period: train never looks at it. */
    int64_t tv, tt;
    ic_replay_split(&cfg, &log, &tv, &tt);
    if (a.ro.t_test) tt = a.ro.t_test;
    if (!a.ro.online_eval) {
        size_t stop = 0;
        while (stop < log.n && log.ev[stop].ts < tt) stop++;
        a.ro.stop_after = stop;
    }
    ic_error err = {{0}};
    ic_engine *e = NULL;
    ic_replay_result res;
    ic_status s = ic_engine_create(&e, &cfg, NULL, NULL, &err);
    if (s == IC_OK && ic_engine_set_threads(e, a.threads) != a.threads && !a.quiet)
        fprintf(stderr, "iclock train: could not start a second thread; training on one\n");
    if (s == IC_OK) s = ic_replay(e, &log, &a.ro, &res, &err);
    if (s != IC_OK) {
        rc = cli_fail("train", s, &err);
    } else if (!(rc = save_model(&a, e, &cfg))) {
        ic_phase ph = a.ro.online_eval ? IC_PHASE_TRAIN : IC_PHASE_VALID;
        if (a.json) {
            printf("{\"clock\": \"%s\", \"seed\": %llu, \"train_events\": %llu, \"train_loss\": ",
                   ic_clock_kind_name(cfg.clock), (unsigned long long)cfg.seed,
                   (unsigned long long)res.n[IC_PHASE_TRAIN]);
            cli_json_num(stdout, res.train_loss);
            printf(", \"seconds\": %.3f, \"%s\": ", res.seconds, a.ro.online_eval ? "online" : "valid");
            cli_metrics_json(stdout, &cfg, res.n[ph], res.m[ph]);
            printf("}\n");
        } else {
            printf("trained %s clock on %llu events in %.1f s (mean loss %.4f); model saved to %s\n",
                   ic_clock_kind_name(cfg.clock), (unsigned long long)res.n[IC_PHASE_TRAIN],
                   res.seconds, res.train_loss, a.model);
            cli_print_metrics(stdout, &cfg, a.ro.online_eval ? "online (test-then-train)" : "validation",
                              res.n[ph], res.m[ph]);
        }
    }
    ic_engine_free(e);
    ic_log_free(&log);
    return rc;
}
