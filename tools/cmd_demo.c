/* cmd_demo.c: `iclock demo`, the README's main job on built-in defaults:
 * simulate the default listening log, then run the paper's comparison on
 * it (baseline, naive, adaptive and Gaussian clocks, 3 seeds each) and
 * print the table. It is the other subcommands run in sequence. */
#include "cli.h"

#include <string.h>
#include <errno.h>
#include <sys/stat.h>

static void help(FILE *out)
{
    fputs("usage: iclock demo [--dir DIR] [--seeds K] [--quiet]\n"
          "\n"
          "Runs, on built-in defaults:\n"
          "  iclock synth -o DIR/music.csv          (the default simulated log)\n"
          "  iclock experiment --data DIR/music.csv --seeds K --json DIR/experiment.json\n"
          "\n"
          "  --dir DIR    where to write the log and results (default build/demo)\n"
          "  --seeds K    seeds per variant (default 3)\n"
          "  --quiet      no progress on stderr\n",
          out);
}

/* Runs a subcommand with a fresh getopt state. */
static int run(int (*cmd)(int, char **), char **argv)
{
    int argc = 0;
    while (argv[argc]) argc++;
    optind = 0;
    return cmd(argc, argv);
}

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"seeds", required_argument, 0, 's'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = "build/demo", *seeds = "3";
    int quiet = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 's': seeds = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': help(stdout); return EXIT_OK;
        default: return cli_usage_error("demo", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "iclock demo: cannot create %s: %s\n", dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    char log[1024], json[1024];
    snprintf(log, sizeof log, "%s/music.csv", dir);
    snprintf(json, sizeof json, "%s/experiment.json", dir);
    char *q = quiet ? "--quiet" : NULL;
    printf("== iclock synth -o %s\n", log);
    fflush(stdout);
    char *synth_argv[] = {"synth", "-o", log, q, NULL};
    int rc = run(cmd_synth, synth_argv);
    if (rc) return rc;
    printf("== iclock experiment --data %s --seeds %s --json %s\n", log, seeds, json);
    fflush(stdout);
    char *exp_argv[] = {"experiment", "--data", log, "--seeds", (char *)seeds, "--json", json, q, NULL};
    return run(cmd_experiment, exp_argv);
}
