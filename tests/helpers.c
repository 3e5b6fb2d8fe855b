/* helpers.c: running the built tool and writing small simulated logs, for
 * the tests that drive iclock as a user would. */
#include "helpers.h"

#include "iclock.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int ic_test_run_tool(const char *args, const char *out, const char *err)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", getenv("ICLOCK_BIN"), args, out, err);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int ic_test_write_synth(const char *path, int users, int items, int days, uint64_t seed)
{
    ic_synth_opts o;
    ic_synth_opts_default(&o);
    o.n_users = users;
    o.n_items = items;
    o.n_days = days;
    o.seed = seed;
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    ic_status s = ic_synth_write_csv(&o, f, NULL, NULL);
    return fclose(f) == 0 && s == IC_OK ? 0 : -1;
}
