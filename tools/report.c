/* report.c: how train, eval and experiment print metrics and load logs. */
#include "cli.h"

#include <math.h>
#include <string.h>
#include <time.h>

void cli_json_num(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.6g", x);
    else
        fputs("null", out);
}

void cli_print_metrics(FILE *out, const ic_config *cfg, const char *period, uint64_t n,
                       const ic_metrics *m)
{
    fprintf(out, "%s (%llu samples)\n", period, (unsigned long long)n);
    fprintf(out, "  %-10s %8s %8s %8s %8s %8s %8s %7s\n", "task", "pos", "AUC", "UAUC", "GAUC",
            "logloss", "calib", "users");
    for (int t = 0; t < cfg->n_tasks; t++)
        fprintf(out, "  %-10s %8.4f %8.4f %8.4f %8.4f %8.4f %8.3f %7llu\n", cfg->task[t].name,
                m[t].pos_rate, m[t].auc, m[t].uauc, m[t].gauc, m[t].logloss, m[t].calibration,
                (unsigned long long)m[t].auc_users);
}

void cli_json_kv(FILE *out, const char *key, double x)
{
    fprintf(out, ", \"%s\": ", key);
    cli_json_num(out, x);
}

void cli_json_list(FILE *out, const char *key, const double *x, int n)
{
    fprintf(out, ", \"%s\": [", key);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", out);
        cli_json_num(out, x[i]);
    }
    fputc(']', out);
}

void cli_metrics_json(FILE *out, const ic_config *cfg, uint64_t n, const ic_metrics *m)
{
    fprintf(out, "{\"n\": %llu, \"tasks\": {", (unsigned long long)n);
    for (int t = 0; t < cfg->n_tasks; t++) {
        fprintf(out, "%s\"%s\": {\"users\": %llu", t ? ", " : "", cfg->task[t].name,
                (unsigned long long)m[t].auc_users);
        cli_json_kv(out, "auc", m[t].auc);
        cli_json_kv(out, "uauc", m[t].uauc);
        cli_json_kv(out, "gauc", m[t].gauc);
        cli_json_kv(out, "logloss", m[t].logloss);
        cli_json_kv(out, "calibration", m[t].calibration);
        cli_json_kv(out, "pos_rate", m[t].pos_rate);
        fputc('}', out);
    }
    fputs("}}", out);
}

int cli_parse_bad_rows(const char *s, ic_bad_rows *out)
{
    if (!strcmp(s, "fail")) *out = IC_BAD_ROWS_FAIL;
    else if (!strcmp(s, "skip")) *out = IC_BAD_ROWS_SKIP;
    else return -1;
    return 0;
}

int cli_load_log(const char *cmd, const char *path, const ic_config *cfg, ic_bad_rows bad,
                 int quiet, ic_log *log)
{
    ic_error err = {{0}};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ic_status s = ic_log_load(log, path, cfg, bad, &err);
    if (s != IC_OK) return cli_fail(cmd, s, &err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (!quiet) {
        fprintf(stderr, "iclock %s: read %zu events from %s in %.1f s", cmd, log->n, path,
                (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
        if (log->stats.bad) fprintf(stderr, " (%llu bad rows skipped)", (unsigned long long)log->stats.bad);
        fputc('\n', stderr);
        for (int i = 0; i < log->stats.n_first_bad; i++)
            fprintf(stderr, "  skipped: %s\n", log->stats.first_bad[i]);
    }
    if (log->n == 0) {
        fprintf(stderr, "iclock %s: %s holds no events\n", cmd, path);
        ic_log_free(log);
        return EXIT_BADINPUT;
    }
    return 0;
}

int cli_apply_set(const char *cmd, ic_config *cfg, const char *assignment)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", assignment);
    char *dot = strchr(buf, '.'), *eq = strchr(buf, '=');
    if (!dot || !eq || dot > eq)
        return cli_usage_error(cmd, "--set wants section.key=value, got '%s'", assignment);
    *dot = *eq = '\0';
    ic_error err = {{0}};
    ic_status s = ic_config_set(cfg, buf, dot + 1, eq + 1, &err);
    return s == IC_OK ? 0 : cli_fail(cmd, s, &err);
}

int cli_config_overrides(const char *cmd, ic_config *cfg, const char *clock, long long seed,
                         const char *const *sets, int n_sets)
{
    ic_error err = {{0}};
    ic_status s;
    if (clock && (s = ic_config_set(cfg, "model", "clock", clock, &err)) != IC_OK)
        return cli_fail(cmd, s, &err);
    if (seed >= 0) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", seed);
        if ((s = ic_config_set(cfg, "train", "seed", buf, &err)) != IC_OK) return cli_fail(cmd, s, &err);
    }
    for (int i = 0; i < n_sets; i++) {
        int rc = cli_apply_set(cmd, cfg, sets[i]);
        if (rc) return rc;
    }
    if ((s = ic_config_validate(cfg, &err)) != IC_OK) return cli_fail(cmd, s, &err);
    return 0;
}
