/* cli.h: what the iclock subcommands share: exit codes, config loading
 * with command-line overrides, error printing. Each subcommand lives in its
 * own tools/cmd_<name>.c and exports int cmd_<name>(int argc, char **argv). */
#ifndef IC_CLI_H
#define IC_CLI_H

#include "iclock.h"

#include <getopt.h>
#include <stdio.h>

/* Exit statuses of every subcommand. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_BADINPUT = 2 };

/* The exit status for a failed library call: bad input or usage -> 2,
 * everything else (I/O, unknown user, out of memory) -> 1. */
int cli_exit_for(ic_status s);

/* Prints "iclock <cmd>: <msg>" to stderr and returns cli_exit_for(s). */
int cli_fail(const char *cmd, ic_status s, const ic_error *err);

/* Prints "iclock <cmd>: <printf text>" and a hint to use --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads the built-in config, then path (if non-NULL). Returns 0 or an exit
 * status after printing the error. */
int cli_load_config(const char *cmd, const char *path, ic_config *cfg);

/* Parses a time given on the command line: Unix seconds or ISO-8601 with an
 * offset ("2023-09-01T08:00:00+08:00", "Z" allowed). Returns 0 or -1. */
int cli_parse_time(const char *s, int64_t *out);

/* True when stderr is a terminal (progress lines go there). */
int cli_stderr_is_tty(void);

/* ---- shared by train, eval and experiment (tools/report.c) ---- */

/* Prints one line per task: AUC, UAUC, GAUC, logloss, calibration. */
void cli_print_metrics(FILE *out, const ic_config *cfg, const char *period, uint64_t n,
                       const ic_metrics *m);
/* Writes {"n":..,"tasks":{"finish":{"auc":..,...},...}} (no newline). */
void cli_metrics_json(FILE *out, const ic_config *cfg, uint64_t n, const ic_metrics *m);
/* A JSON number, or null for NaN/inf. */
void cli_json_num(FILE *out, double x);
/* ', "key": number' and ', "key": [numbers]' inside an open JSON object. */
void cli_json_kv(FILE *out, const char *key, double x);
void cli_json_list(FILE *out, const char *key, const double *x, int n);
/* Loads a log with a one-line note on stderr (unless quiet). */
int cli_load_log(const char *cmd, const char *path, const ic_config *cfg, ic_bad_rows bad,
                 int quiet, ic_log *log);
/* Parses --bad-rows=fail|skip. Returns 0 or -1. */
int cli_parse_bad_rows(const char *s, ic_bad_rows *out);

/* Applies "--set section.key=value" to cfg. Returns 0 or an exit status
 * after printing the error. */
int cli_apply_set(const char *cmd, ic_config *cfg, const char *assignment);

/* Applies --clock, --seed (-1 = keep) and --set options, then validates.
 * Returns 0 or an exit status after printing the error. */
int cli_config_overrides(const char *cmd, ic_config *cfg, const char *clock, long long seed,
                         const char *const *sets, int n_sets);

/* Sets the number of BLAS threads (OpenBLAS). */
void openblas_set_num_threads(int n);

/* Subcommands. Declared weak so the tool builds while some are still being
 * written; the dispatcher lists only those that are linked in. */
#define IC_CMD(name) int cmd_##name(int argc, char **argv) __attribute__((weak))
IC_CMD(synth);
IC_CMD(stats);
IC_CMD(sort);
IC_CMD(clock);
IC_CMD(train);
IC_CMD(eval);
IC_CMD(experiment);
IC_CMD(import);
IC_CMD(negatives);
IC_CMD(serve);
IC_CMD(plot);
IC_CMD(demo);
#undef IC_CMD

#endif
