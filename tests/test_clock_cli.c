/* test_clock_cli.c: `iclock clock` as a user runs it: its --json output is
 * the store's own query at the requested time (checked against the library
 * replaying the same log), in both refresh modes; --svg writes a dial; an
 * unknown user exits 1 and a bad time exits 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "iclock.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], log_path[128], out_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ic_clockcli_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(log_path, sizeof log_path, "%s/log.csv", dir);
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    return ic_test_write_synth(log_path, 40, 300, 20, 3);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int run_tool(const char *args) { return ic_test_run_tool(args, out_path, "/dev/null"); }

static cJSON *read_out(void)
{
    FILE *f = fopen(out_path, "r");
    assert_non_null(f);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (!j) fail_msg("not JSON: %.200s", buf);
    return j;
}

/* The library's answer: replay events before t, query with the user's tz
 * of its last event before t. */
static void expected(const ic_log *log, const ic_config *cfg, const char *user, int64_t t,
                     ic_clock_view *v)
{
    uint64_t u = ic_hash(user, strlen(user));
    ic_clock_store *s;
    assert_int_equal(ic_clock_create(&s, cfg, NULL), IC_OK);
    int32_t tz = 0;
    for (size_t i = 0; i < log->n && log->ev[i].ts < t; i++) {
        assert_int_equal(ic_clock_apply(s, &log->ev[i], NULL), IC_OK);
        if (log->ev[i].user == u) tz = log->ev[i].tz_min;
    }
    ic_clock_query(s, u, t, tz, v);
    ic_clock_free(s);
}

static void check_mode(const ic_log *log, ic_refresh mode)
{
    ic_config cfg;
    ic_config_default(&cfg);
    cfg.refresh = mode;
    int64_t t = log->ev[log->n * 2 / 3].ts;
    char args[512];
    snprintf(args, sizeof args, "clock --data %s --user u7 --at %lld --mode %s --json", log_path,
             (long long)t, mode == IC_REFRESH_DAILY ? "daily" : "realtime");
    assert_int_equal(run_tool(args), 0);
    cJSON *j = read_out();
    assert_string_equal(cJSON_GetObjectItem(j, "user")->valuestring, "u7");
    assert_true((int64_t)cJSON_GetObjectItem(j, "at")->valuedouble == t);
    const cJSON *hours = cJSON_GetObjectItem(j, "hours");
    assert_int_equal(cJSON_GetArraySize(hours), 24);
    ic_clock_view v;
    expected(log, &cfg, "u7", t, &v);
    int filled = 0;
    for (int h = 0; h < 24; h++)
        for (int f = 0; f < cfg.n_clock; f++) {
            const char *name = cfg.field[cfg.clock_field[f]];
            const cJSON *list = cJSON_GetObjectItem(cJSON_GetArrayItem(hours, h), name);
            assert_int_equal(cJSON_GetArraySize(list), ic_clock_view_n(&v, h, f));
            for (int k = 0; k < ic_clock_view_n(&v, h, f); k++, filled++) {
                const cJSON *e = cJSON_GetArrayItem(list, k);
                const char *val = cJSON_GetObjectItem(e, "value")->valuestring;
                assert_true(ic_hash(val, strlen(val)) == ic_clock_view_values(&v, h, f)[k]);
                assert_float_equal(cJSON_GetObjectItem(e, "score")->valuedouble, ic_clock_view_scores(&v, h, f)[k], 1e-4);
            }
        }
    assert_true(filled > 20); /* a user with history: the comparison has content */
    cJSON_Delete(j);
}

static void test_json_matches_library(void **state)
{
    (void)state;
    if (!getenv("ICLOCK_BIN")) skip();
    ic_config cfg;
    ic_config_default(&cfg);
    ic_log log;
    assert_int_equal(ic_log_load(&log, log_path, &cfg, IC_BAD_ROWS_FAIL, NULL), IC_OK);
    check_mode(&log, IC_REFRESH_REALTIME);
    check_mode(&log, IC_REFRESH_DAILY);
    ic_log_free(&log);
}

static void test_svg_and_errors(void **state)
{
    (void)state;
    if (!getenv("ICLOCK_BIN")) skip();
    char args[512], svg[160];
    snprintf(svg, sizeof svg, "%s/u3.svg", dir);
    snprintf(args, sizeof args, "clock --data %s --user u3 --svg %s", log_path, svg);
    assert_int_equal(run_tool(args), 0);
    FILE *f = fopen(svg, "r");
    assert_non_null(f);
    char buf[256] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    snprintf(args, sizeof args, "clock --data %s --user nobody", log_path);
    assert_int_equal(run_tool(args), 1);
    snprintf(args, sizeof args, "clock --data %s --user u3 --at yesterday", log_path);
    assert_int_equal(run_tool(args), 2);
    snprintf(args, sizeof args, "clock --data %s/missing.csv --user u3", dir);
    assert_int_equal(run_tool(args), 1);
    assert_int_equal(run_tool("clock --user u3"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_matches_library),
        cmocka_unit_test(test_svg_and_errors),
    };
    return cmocka_run_group_tests_name("clock_cli", tests, setup, teardown);
}
