/* test_config.c: the configuration: built-in defaults equal configs/music.ini,
 * overrides and list replacement, every bad-config message (file, line,
 * section and key), ic_config_set, the write/load round trip, and numbers
 * under a decimal-comma locale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* Compares every member that is the configuration's value (not path, not
 * the source lines), naming the first that differs. */
static void assert_config_equal(const ic_config *a, const ic_config *b)
{
#define EQ_S(f) assert_string_equal(a->f, b->f)
#define EQ_I(f) assert_int_equal(a->f, b->f)
#define EQ_F(f) assert_true(a->f == b->f)
    EQ_S(time_col); EQ_S(user_col); EQ_S(item_col); EQ_S(tz_col);
    EQ_I(tz_default_min); EQ_I(delimiter); EQ_I(multi_sep);
    EQ_I(n_fields);
    for (int i = 0; i < a->n_fields; i++) { EQ_S(field[i]); EQ_I(field_is_context[i]); }
    EQ_I(n_clock);
    for (int i = 0; i < a->n_clock; i++) EQ_I(clock_field[i]);
    EQ_I(window_days); EQ_I(top_k); EQ_I(refresh);
    EQ_I(n_actions);
    for (int i = 0; i < a->n_actions; i++) { EQ_S(action[i].name); EQ_F(action[i].weight); }
    EQ_I(n_tasks);
    for (int i = 0; i < a->n_tasks; i++) { EQ_S(task[i].name); EQ_F(task[i].weight); }
    EQ_I(clock); EQ_F(clock_sigma); EQ_I(clock_sigma_learn); EQ_I(clock_continuous);
    EQ_I(clock_pool); EQ_I(dim); EQ_I(cross_layers); EQ_I(cross_rank); EQ_I(n_mlp);
    for (int i = 0; i < a->n_mlp; i++) EQ_I(mlp[i]);
    EQ_I(structure);
    EQ_I(batch); EQ_F(lr); EQ_F(emb_lr); EQ_I(emb_optim); EQ_F(l2_emb); EQ_F(init_std);
    EQ_F(adam_beta1); EQ_F(adam_beta2); EQ_F(adam_eps);
    assert_true(a->seed == b->seed);
    EQ_F(split_train); EQ_F(split_valid);
#undef EQ_S
#undef EQ_I
#undef EQ_F
}

static char tmp_path[64];

static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/iclock_test_config_%d.ini", (int)getpid());
    FILE *f = fopen(tmp_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return tmp_path;
}

static void test_defaults_equal_music_ini(void **state)
{
    (void)state;
    ic_config def, file;
    ic_error err = {{0}};
    ic_config_default(&def);
    ic_config_default(&file);
    /* Start the file's load from something else, so that every key must
     * come from the file, not from the defaults it is read over. */
    file.dim = 99;
    file.split_train = 0.5;
    ic__strlcpy(file.time_col, "zzz", IC_NAME_MAX);
    file.n_tasks = 1;
    assert_int_equal(ic_config_load(&file, "configs/music.ini", &err), IC_OK);
    assert_config_equal(&def, &file);
    assert_string_equal(file.path, "configs/music.ini");
    assert_int_equal(ic_config_validate(&def, &err), IC_OK);
    /* The reader's source lines: [data] time is on a real line; the built-in
     * one says so. */
    assert_true(file.line.time > 0);
    char where[256];
    char expect[64];
    snprintf(expect, sizeof expect, "configs/music.ini:%d: [data] time", file.line.time);
    assert_string_equal(ic_config_where(&file, "data", "time", 0, where, sizeof where), expect);
    assert_string_equal(ic_config_where(&def, "tasks", "finish", 0, where, sizeof where),
                        "built-in default [tasks] finish");
}

static void test_load_overrides_and_lists(void **state)
{
    (void)state;
    ic_config cfg;
    ic_error err = {{0}};
    ic_config_default(&cfg);
    const char *p = write_tmp("# comment\n"
                              "[clock]\n"
                              "fields = weather, genre\n"
                              "[model]\n"
                              "dim = 32\n"
                              "clock = naive ; inline comment\n"
                              "[fields]\n"
                              "genre = item\n"
                              "weather = context\n"
                              "[data]\n"
                              "delimiter = tab\n"
                              "tz =\n");
    assert_int_equal(ic_config_load(&cfg, p, &err), IC_OK);
    assert_int_equal(cfg.dim, 32);
    assert_int_equal(cfg.clock, IC_CLOCK_NAIVE);
    assert_int_equal(cfg.n_fields, 2);
    assert_string_equal(cfg.field[1], "weather");
    assert_int_equal(cfg.field_is_context[1], 1);
    assert_int_equal(cfg.field_is_context[0], 0);
    /* [clock] came before [fields]: names are resolved after the file. */
    assert_int_equal(cfg.n_clock, 2);
    assert_int_equal(cfg.clock_field[0], 1);
    assert_int_equal(cfg.clock_field[1], 0);
    assert_int_equal(cfg.delimiter, '\t');
    assert_string_equal(cfg.tz_col, "");
    assert_int_equal(cfg.line.tz, 12);
    /* Untouched sections keep the defaults, lists included. */
    assert_int_equal(cfg.n_actions, 4);
    assert_int_equal(cfg.n_tasks, 2);
    assert_int_equal(cfg.top_k, 3);

    /* A [fields] section that keeps the clock's names keeps the clock. */
    ic_config_default(&cfg);
    p = write_tmp("[fields]\nlang = item\nmood = item\ngenre = item\nextra = context\n");
    assert_int_equal(ic_config_load(&cfg, p, &err), IC_OK);
    assert_int_equal(cfg.n_clock, 3);
    assert_string_equal(cfg.field[cfg.clock_field[0]], "genre");
    assert_string_equal(cfg.field[cfg.clock_field[2]], "lang");

    /* An empty list section replaces the list with nothing. */
    ic_config_default(&cfg);
    p = write_tmp("[actions]\n");
    assert_int_equal(ic_config_load(&cfg, p, &err), IC_OK);
    assert_int_equal(cfg.n_actions, 0);
}

typedef struct {
    const char *ini;
    const char *expect[3]; /* substrings of the message; "@" is the path */
} bad_case;

static void test_bad_configs(void **state)
{
    (void)state;
    char many[2048] = "[fields]\n";
    for (int i = 0; i <= IC_MAX_FIELDS; i++) {
        char l[32];
        snprintf(l, sizeof l, "f%d = item\n", i);
        strcat(many, l);
    }
    const bad_case cases[] = {
        {"[data]\ntime = ts\n[colour]\nx = 1\n", {"@:3: [colour]", "unknown section"}},
        {"[empty]\n", {"@:1: [empty]", "unknown section"}},
        {"[model]\ndimension = 3\n", {"@:2: [model] dimension", "unknown key"}},
        {"[model]\ndim = 1x\n", {"@:2: [model] dim", "\"1x\" is not an integer"}},
        {"[train]\nlr = fast\n", {"@:2: [train] lr", "\"fast\" is not a number"}},
        {"\n[model]\ndim = 0\n", {"@:3: [model] dim", "0 is out of range [1, 1024]"}},
        {"[clock]\ntop_k = 9\n", {"@:2: [clock] top_k", "out of range [1, 8]"}},
        {"[clock]\nwindow_days = 0\n", {"@:2: [clock] window_days", "out of range"}},
        {many, {"@:18: [fields] f16", "too many fields"}},
        {"[clock]\nfields = genre,colour\n", {"@:2: [clock] fields", "'colour' is not in [fields]"}},
        {"[fields]\ngenre = item\n", {"@:1: [fields]", "clock field 'mood' is no longer"}},
        {"[train]\nsplit_train = 1.2\n", {"@:2: [train] split_train", "out of range (0, 1)"}},
        {"[train]\nsplit_train = 0.9\nsplit_valid = 0.1\n",
         {"@:3: [train] split_valid", "leaves no test period"}},
        {"[model]\ndim = 8\ndim = 9\n", {"@:3: [model] dim", "duplicate key (first on line 2)"}},
        {"[actions]\nlike = 1\nlike = 2\n", {"@:3: [actions] like", "duplicate key"}},
        {"[model]\nclock = sundial\n", {"@:2: [model] clock", "unknown value \"sundial\""}},
        {"dim = 3\n", {"@:1: dim", "outside any [section]"}},
        {"[model]\nthis line has no equals\n", {"@:2:", "syntax error"}},
        {"[tasks]\nfinish = -1\n", {"@:2: [tasks] finish", ">= 0"}},
        {"[fields]\ngenre = song\n", {"@:2: [fields] genre", "not item or context"}},
        {"[data]\ndelimiter = ab\n", {"@:2: [data] delimiter", "not one character"}},
        {"[data]\nmulti_separator = ,\n", {"@:2: [data] multi_separator", "other than the delimiter"}},
        {"[data]\ntime = user\n", {"[data]", "column 'user' already has another role"}},
        {"[tasks]\n", {"@:1: [tasks]", "at least 1"}},
        {"[data]\ntime =\n", {"@:2: [data] time", "a column name is needed"}},
        {"[model]\nmlp = 64,,32\n", {"@:2: [model] mlp", "not a list"}},
        {"[model]\nmlp = 64,0\n", {"@:2: [model] mlp", "0 is out of range"}},
        {"[train]\nseed = -4\n", {"@:2: [train] seed", "not a non-negative integer"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ic_config cfg, before;
        ic_error err = {{0}};
        ic_config_default(&cfg);
        before = cfg;
        const char *p = write_tmp(cases[i].ini);
        ic_status s = ic_config_load(&cfg, p, &err);
        if (s != IC_ERR_CONFIG) print_error("case %zu: status %d (%s)\n", i, s, err.msg);
        assert_int_equal(s, IC_ERR_CONFIG);
        for (int k = 0; k < 3 && cases[i].expect[k]; k++) {
            char want[256];
            const char *e = cases[i].expect[k];
            if (e[0] == '@') snprintf(want, sizeof want, "%s%s", p, e + 1);
            else ic__strlcpy(want, e, sizeof want);
            if (!strstr(err.msg, want))
                print_error("case %zu: message \"%s\" lacks \"%s\"\n", i, err.msg, want);
            assert_non_null(strstr(err.msg, want));
        }
        /* A failed load leaves the config as it was. */
        assert_config_equal(&cfg, &before);
        assert_string_equal(cfg.path, "");
    }
    ic_config cfg;
    ic_error err = {{0}};
    ic_config_default(&cfg);
    assert_int_equal(ic_config_load(&cfg, "/nonexistent/x.ini", &err), IC_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.ini: cannot open"));
}

static void test_set(void **state)
{
    (void)state;
    ic_config cfg, def;
    ic_error err = {{0}};
    ic_config_default(&cfg);
    ic_config_default(&def);
    assert_int_equal(ic_config_set(&cfg, "model", "clock", "adaptive", &err), IC_OK);
    assert_int_equal(cfg.clock, IC_CLOCK_ADAPTIVE);
    assert_int_equal(ic_config_set(&cfg, "train", "lr", "0.01", &err), IC_OK);
    assert_true(cfg.lr == 0.01f);
    assert_int_equal(ic_config_set(&cfg, "data", "time", "when", &err), IC_OK);
    assert_string_equal(cfg.time_col, "when");
    char where[128];
    assert_string_equal(ic_config_where(&cfg, "data", "time", 0, where, sizeof where),
                        "option [data] time");
    /* A list entry: added, or its weight changed; the rest of the list stays. */
    assert_int_equal(ic_config_set(&cfg, "actions", "share", "2", &err), IC_OK);
    assert_int_equal(cfg.n_actions, 5);
    assert_true(cfg.action[4].weight == 2.0f);
    assert_int_equal(ic_config_set(&cfg, "actions", "skip", "-3", &err), IC_OK);
    assert_int_equal(cfg.n_actions, 5);
    assert_true(cfg.action[2].weight == -3.0f);
    assert_int_equal(ic_config_set(&cfg, "fields", "weather", "context", &err), IC_OK);
    assert_int_equal(ic_config_set(&cfg, "clock", "fields", "weather", &err), IC_OK);
    assert_int_equal(cfg.n_clock, 1);
    assert_int_equal(cfg.clock_field[0], 3);

    ic_config before = cfg;
    assert_int_equal(ic_config_set(&cfg, "model", "clock", "sundial", &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "option [model] clock: unknown value \"sundial\""));
    assert_int_equal(ic_config_set(&cfg, "clock", "fields", "tempo", &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "option [clock] fields: clock field 'tempo' is not in"));
    assert_int_equal(ic_config_set(&cfg, "model", "dim", "-1", &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "option [model] dim: -1 is out of range"));
    assert_int_equal(ic_config_set(&cfg, "nope", "dim", "1", &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "option [nope]: unknown section"));
    assert_config_equal(&cfg, &before); /* failures change nothing */
    assert_int_equal(cfg.clock, IC_CLOCK_ADAPTIVE);
}

static void roundtrip(const ic_config *cfg)
{
    ic_error err = {{0}};
    char path[64];
    snprintf(path, sizeof path, "/tmp/iclock_test_rt_%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    ic_config_write(cfg, f);
    fclose(f);
    ic_config back;
    ic_config_default(&back);
    ic_status s = ic_config_load(&back, path, &err);
    if (s != IC_OK) print_error("%s\n", err.msg);
    assert_int_equal(s, IC_OK);
    assert_config_equal(cfg, &back);
    unlink(path);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    roundtrip(&cfg);
    /* Values that are awkward to write: tab, ';', floats without a short
     * decimal form, a context field, an empty list, no tz column. */
    cfg.delimiter = '\t';
    cfg.multi_sep = ';';
    cfg.tz_col[0] = '\0';
    cfg.tz_default_min = -330;
    cfg.n_fields = 4;
    ic__strlcpy(cfg.field[3], "weather", IC_NAME_MAX);
    cfg.field_is_context[3] = 1;
    cfg.n_clock = 2;
    cfg.clock_field[0] = 3;
    cfg.clock_field[1] = 0;
    cfg.n_actions = 0;
    cfg.task[1].weight = 0.3f;
    cfg.lr = 1.0f / 3.0f;
    cfg.adam_eps = 1.234567e-7f;
    cfg.split_train = 0.7;
    cfg.split_valid = 0.1 + 0.2 - 0.3 + 0.1; /* not the shortest decimal */
    cfg.seed = UINT64_MAX;
    cfg.clock = IC_CLOCK_NONE;
    cfg.refresh = IC_REFRESH_DAILY;
    cfg.clock_pool = IC_POOL_SCORE;
    cfg.structure = IC_STRUCT_STACKED;
    cfg.emb_optim = IC_OPT_ADAM;
    cfg.n_mlp = 1;
    cfg.mlp[0] = 7;
    assert_int_equal(ic_config_validate(&cfg, NULL), IC_OK);
    roundtrip(&cfg);
}

/* Numbers mean the same whatever LC_NUMERIC the host program set: under a
 * decimal comma (de_DE, built with localedef into a temporary LOCPATH;
 * skipped where that cannot be done) a config still reads "0.01", writes
 * numbers that load back, and the CSV reader's slow path (more than 15
 * significant digits) still reads a decimal point. */
static void test_comma_locale(void **state)
{
    (void)state;
    char dir[64], cmd[256];
    snprintf(dir, sizeof dir, "/tmp/iclock_locale_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    int made = system(cmd) == 0;
    if (made) setenv("LOCPATH", dir, 1);
    if (!made || !setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) print_message("could not remove %s\n", dir);
        print_message("no de_DE locale here (localedef needs the 'locales' package): skipped\n");
        skip();
    }
    /* The locale bites: plain strtod stops at the point. */
    char *end;
    assert_true(strtod("0.5", &end) == 0.0 && *end == '.');

    ic_config cfg;
    ic_error err = {{0}};
    ic_config_default(&cfg);
    assert_int_equal(ic_config_set(&cfg, "train", "lr", "0.01", &err), IC_OK);
    assert_true(cfg.lr == 0.01f);
    cfg.lr = 1.0f / 3.0f;
    cfg.split_train = 0.625;
    roundtrip(&cfg);

    const char *path = write_tmp("ts,user,item,tz,genre,mood,lang,finish,like,skip,dislike\n"
                                 "1690848000,u1,i1,0,pop,calm,en,0.1234567890123456789,1,0,0\n");
    ic_reader *r;
    assert_int_equal(ic_reader_open(&r, path, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_OK);
    ic_event ev;
    int got = ic_reader_next(r, &ev, &err);
    if (got != 1) print_error("%s\n", err.msg);
    assert_int_equal(got, 1);
    int fin = -1;
    for (int a = 0; a < cfg.n_actions; a++)
        if (!strcmp(cfg.action[a].name, "finish")) fin = a;
    assert_true(fin >= 0 && ev.action[fin] == 0.12345679f);
    ic_reader_close(r);
    unlink(path);

    setlocale(LC_NUMERIC, "C");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_validate_and_names(void **state)
{
    (void)state;
    ic_config cfg;
    ic_error err = {{0}};
    ic_config_default(&cfg);
    cfg.dim = 0;
    assert_int_equal(ic_config_validate(&cfg, &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "[model] dim"));
    ic_config_default(&cfg);
    cfg.clock_field[1] = 7;
    assert_int_equal(ic_config_validate(&cfg, &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "[clock] fields"));
    ic_config_default(&cfg);
    cfg.top_k = IC_MAX_TOPK + 1;
    assert_int_equal(ic_config_validate(&cfg, &err), IC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "[clock] top_k"));

    for (int k = IC_CLOCK_NONE; k <= IC_CLOCK_GAUSSIAN; k++)
        assert_int_equal(ic_clock_kind_parse(ic_clock_kind_name((ic_clock_kind)k)), k);
    assert_string_equal(ic_clock_kind_name(IC_CLOCK_GAUSSIAN), "gaussian");
    assert_int_equal(ic_clock_kind_parse("sundial"), -1);
    assert_string_equal(ic_refresh_name(IC_REFRESH_DAILY), "daily");
    assert_string_equal(ic_pool_name(IC_POOL_SCORE), "score");
    assert_string_equal(ic_structure_name(IC_STRUCT_STACKED), "stacked");
    assert_string_equal(ic_optim_name(IC_OPT_ADAM), "adam");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_equal_music_ini),
        cmocka_unit_test(test_load_overrides_and_lists),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_comma_locale),
        cmocka_unit_test(test_validate_and_names),
    };
    int rc = cmocka_run_group_tests_name("config", tests, NULL, NULL);
    unlink(tmp_path);
    return rc;
}
