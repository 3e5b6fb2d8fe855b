/* iclock.c: the iclock command. Dispatches to one subcommand per file
 * (tools/cmd_*.c); holds the helpers they share (tools/cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "run the main job on built-in defaults"},
    {"synth", cmd_synth, "simulate a music-listening log"},
    {"stats", cmd_stats, "summarise a log: rates, users, value shares by hour"},
    {"sort", cmd_sort, "sort a log by time"},
    {"clock", cmd_clock, "print a user's Interest Clock at a time"},
    {"train", cmd_train, "train a model on a log and save it"},
    {"eval", cmd_eval, "evaluate a saved model on a log's test period"},
    {"experiment", cmd_experiment, "compare baseline and clock variants (Table 2)"},
    {"import", cmd_import, "convert a public check-in log to the event format"},
    {"negatives", cmd_negatives, "add sampled negative impressions to a positives-only log"},
    {"plot", cmd_plot, "draw SVG pictures of a log"},
    {"serve", cmd_serve, "rank requests over HTTP and learn from events"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iclock <command> [options]   (iclock <command> --help for its options)\n"
            "\n"
            "iclock %s: a time-aware streaming ranking engine (the Interest Clock).\n"
            "\ncommands:\n",
            IC_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].fn) fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexit status: 0 ok, 1 runtime error, 2 bad usage or bad input\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_BADINPUT;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("iclock %s\n", IC_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].fn && !strcmp(name, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "iclock: unknown command '%s'\n\n", name);
    usage(stderr);
    return EXIT_BADINPUT;
}

/* ---- helpers shared by the subcommands (cli.h) ---------------------------- */

int cli_exit_for(ic_status s)
{
    switch (s) {
    case IC_ERR_PARSE:
    case IC_ERR_CONFIG:
    case IC_ERR_ORDER:
    case IC_ERR_ARG:
    case IC_ERR_CORRUPT:
    case IC_ERR_MISMATCH:
        return EXIT_BADINPUT;
    default:
        return s == IC_OK ? EXIT_OK : EXIT_RUNTIME;
    }
}

int cli_fail(const char *cmd, ic_status s, const ic_error *err)
{
    fprintf(stderr, "iclock %s: %s\n", cmd, err && err->msg[0] ? err->msg : ic_strerror(s));
    return cli_exit_for(s);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "iclock %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see iclock %s --help)\n", cmd);
    va_end(ap);
    return EXIT_BADINPUT;
}

int cli_load_config(const char *cmd, const char *path, ic_config *cfg)
{
    ic_error err = {{0}};
    ic_config_default(cfg);
    if (!path) return 0;
    ic_status s = ic_config_load(cfg, path, &err);
    return s == IC_OK ? 0 : cli_fail(cmd, s, &err);
}

int cli_stderr_is_tty(void) { return isatty(STDERR_FILENO); }

int cli_parse_time(const char *s, int64_t *out)
{
    return ic_time_parse(s, strlen(s), out);
}
