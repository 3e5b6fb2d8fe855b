/* test_engine.c: the engine and the replay driver: samples are exact inside
 * a batch, replay periods, resume from a checkpoint gives the same model as
 * one run, experiment runs are deterministic under threads, and the
 * commands reject bad input with the right exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "internal.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

void openblas_set_num_threads(int n);

static char dir[64];
static char log_path[128];

/* A small simulated log: 120 users x 21 days, written as CSV. */
static int setup(void **state)
{
    (void)state;
    openblas_set_num_threads(1);
    snprintf(dir, sizeof dir, "/tmp/ic_engine_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(log_path, sizeof log_path, "%s/log.csv", dir);
    return ic_test_write_synth(log_path, 120, 400, 21, 7);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void small_config(ic_config *cfg)
{
    ic_config_default(cfg);
    cfg->mlp[0] = 32;
    cfg->mlp[1] = 16;
    cfg->n_mlp = 2;
    cfg->batch = 64;
}

static void load_log(ic_log *log, const ic_config *cfg)
{
    ic_error err;
    ic_status s = ic_log_load(log, log_path, cfg, IC_BAD_ROWS_FAIL, &err);
    if (s != IC_OK) fail_msg("%s", err.msg);
    assert_true(log->n > 2000);
}

/* Predicting a chunk at once must give what predicting one event at a time
 * gives: each sample sees the clock as it stood before its own event, not
 * the chunk's later events. A model with random weights makes the clock
 * matter to the output. */
static void test_chunk_is_point_in_time(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    cfg.clock = IC_CLOCK_NAIVE;
    ic_log log;
    load_log(&log, &cfg);
    size_t warm = 4000, n = 3000;
    ic_engine *a, *b, *cold;
    ic_error err;
    /* Three identical engines, trained alike on a prefix so that embedding
     * rows exist (unseen ids embed as zero). */
    ic_engine **all[] = {&a, &b, &cold};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ic_engine_create(all[k], &cfg, NULL, NULL, &err), IC_OK);
        assert_int_equal(ic_engine_step(*all[k], log.ev, warm, IC_STEP_APPLY | IC_STEP_TRAIN, NULL,
                                        NULL, &err), IC_OK);
    }
    float *pa = malloc(n * 2 * sizeof(float)), *pb = malloc(n * 2 * sizeof(float));
    const ic_event *ev = log.ev + warm;
    int kind = IC_STEP_APPLY | IC_STEP_PREDICT;
    assert_int_equal(ic_engine_step(a, ev, n, kind, pa, NULL, &err), IC_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ic_engine_step(b, &ev[i], 1, kind, &pb[2 * i], NULL, &err), IC_OK);
    for (size_t i = 0; i < 2 * n; i++) assert_float_equal(pa[i], pb[i], 1e-6);
    /* The clock matters to these outputs: with an emptied store most
     * predictions change, so the comparison above has teeth. */
    assert_int_equal(ic_engine_reset_clock(cold, &err), IC_OK);
    assert_int_equal(ic_engine_step(cold, ev, n, IC_STEP_PREDICT, pb, NULL, &err), IC_OK);
    size_t changed = 0;
    for (size_t i = 0; i < 2 * n; i++) changed += fabsf(pa[i] - pb[i]) > 1e-6f;
    print_message("%zu of %zu outputs move with the clock\n", changed, 2 * n);
    assert_true(changed > n / 2);
    for (int k = 0; k < 3; k++) ic_engine_free(*all[k]);
    free(pa);
    free(pb);
    ic_log_free(&log);
}

/* Removing an event that a sample should not see (its own, or a later one)
 * does not change that sample's clock; removing an earlier one of the same
 * user does. Checked through ic_sample_build on the engine's store. */
static void test_sample_sees_only_the_past(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    ic_log log;
    load_log(&log, &cfg);
    ic_engine *e;
    ic_error err;
    assert_int_equal(ic_engine_create(&e, &cfg, NULL, NULL, &err), IC_OK);
    size_t n = log.n / 2;
    assert_int_equal(ic_engine_step(e, log.ev, n, IC_STEP_APPLY, NULL, NULL, &err), IC_OK);
    /* The last applied event: its own sample must not count it. */
    const ic_event *last = &log.ev[n - 1];
    ic_clock_view with, ref;
    ic_sample s;
    ic_sample_build(ic_engine_clock(e), &cfg, last, &with, &s);
    assert_ptr_equal(s.ev, last);
    assert_ptr_equal(s.clock, &with);
    /* Rebuild a store from the events strictly before last->ts only. */
    ic_clock_store *c;
    assert_int_equal(ic_clock_create(&c, &cfg, &err), IC_OK);
    for (size_t i = 0; i < n && log.ev[i].ts < last->ts; i++)
        assert_int_equal(ic_clock_apply(c, &log.ev[i], &err), IC_OK);
    ic_clock_query(c, last->user, last->ts, last->tz_min, &ref);
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < cfg.n_clock; f++) {
            assert_int_equal(ic_clock_view_n(&with, h, f), ic_clock_view_n(&ref, h, f));
            for (int k = 0; k < ic_clock_view_n(&with, h, f); k++) {
                assert_true(ic_clock_view_values(&with, h, f)[k] == ic_clock_view_values(&ref, h, f)[k]);
                assert_float_equal(ic_clock_view_scores(&with, h, f)[k], ic_clock_view_scores(&ref, h, f)[k], 0);
            }
        }
    ic_clock_free(c);
    ic_engine_free(e);
    ic_log_free(&log);
}

static void test_replay_periods(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    ic_log log;
    load_log(&log, &cfg);
    int64_t tv, tt;
    ic_replay_split(&cfg, &log, &tv, &tt);
    uint64_t want[IC_N_PHASES] = {0};
    for (size_t i = 0; i < log.n; i++)
        want[log.ev[i].ts < tv ? 0 : log.ev[i].ts < tt ? 1 : 2]++;
    ic_engine *e;
    ic_error err;
    assert_int_equal(ic_engine_create(&e, &cfg, NULL, NULL, &err), IC_OK);
    ic_replay_opts o;
    ic_replay_opts_default(&o);
    ic_replay_result r;
    assert_int_equal(ic_replay(e, &log, &o, &r, &err), IC_OK);
    for (int p = 0; p < IC_N_PHASES; p++) assert_int_equal(r.n[p], want[p]);
    assert_true(want[0] > want[2] * 4); /* 75% / 12.5% of the span */
    /* It learned something: better than chance on the test period. */
    assert_true(r.m[IC_PHASE_TEST][0].auc > 0.55);
    assert_true(isfinite(r.train_loss));
    ic_engine_free(e);

    /* A test start after the last event: no test period. */
    assert_int_equal(ic_engine_create(&e, &cfg, NULL, NULL, &err), IC_OK);
    o.t_test = log.ev[log.n - 1].ts + 1;
    assert_int_equal(ic_replay(e, &log, &o, &r, &err), IC_ERR_ARG);
    assert_non_null(strstr(err.msg, "no test period"));
    ic_engine_free(e);
    ic_log_free(&log);
}

static int exists(const char *dir_, const char *name)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir_, name);
    return access(p, F_OK) == 0;
}

/* The one generation g whose ck.<g>.model and ck.<g>.clock both exist
 * (fails if there are several), or 0. */
static int only_generation(void)
{
    int found = 0;
    for (int g = 1; g < 200; g++) {
        char m[40], c[40];
        snprintf(m, sizeof m, "ck.%d.model", g);
        snprintf(c, sizeof c, "ck.%d.clock", g);
        if (exists(dir, m) && exists(dir, c)) {
            assert_int_equal(found, 0);
            found = g;
        }
    }
    return found;
}

/* Rewrites checkpoint `from` (format version 2) as version 1 wrote it, as
 * `to`: the state without its generation field, and the model and clock
 * files under the old names to.model and to.clock. */
static void make_v1_checkpoint(const char *from, int gen, const char *to)
{
    char a[300], b[300];
    ic_breader r;
    ic_error err;
    assert_int_equal(ic__br_open(&r, from, "ICCKPT01", 2, &err), IC_OK);
    unsigned char state[56];
    assert_int_equal(ic__br_read(&r, state, sizeof state, &err), IC_OK);
    size_t rest = ic__br_left(&r);
    unsigned char *buf = malloc(rest);
    assert_int_equal(ic__br_read(&r, buf, rest, &err), IC_OK);
    ic__br_close(&r);
    ic_bwriter w;
    assert_int_equal(ic__bw_open(&w, to, "ICCKPT01", 1, &err), IC_OK);
    ic__bw_write(&w, state, 48); /* version 1's state: no generation */
    ic__bw_write(&w, buf, rest);
    assert_int_equal(ic__bw_commit(&w, &err), IC_OK);
    free(buf);
    const char *ext[2] = {"model", "clock"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s.%d.%s", from, gen, ext[i]);
        snprintf(b, sizeof b, "%s.%s", to, ext[i]);
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        assert_non_null(in);
        assert_non_null(out);
        int ch;
        while ((ch = fgetc(in)) != EOF) fputc(ch, out);
        fclose(in);
        fclose(out);
    }
}

static void write_junk(const char *dir_, const char *name)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir_, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs("half a model", f);
    fclose(f);
}

/* A fresh engine for cfg on `threads` model threads, one replay with o,
 * freed; the replay must succeed. */
static void replay_run(const ic_config *cfg, const ic_log *log, int threads, const ic_replay_opts *o,
                       ic_replay_result *res)
{
    ic_engine *e;
    ic_error err;
    assert_int_equal(ic_engine_create(&e, cfg, NULL, NULL, &err), IC_OK);
    if (threads > 1) assert_int_equal(ic_engine_set_threads(e, threads), threads);
    ic_status s = ic_replay(e, log, o, res, &err);
    if (s != IC_OK) fail_msg("%s", err.msg);
    ic_engine_free(e);
}

/* The first half of the log, checkpoints to ck every 5 batches, stopping
 * after 10 (at an exact batch boundary). */
static void replay_first_half(const ic_config *cfg, const ic_log *log, int threads, const char *ck)
{
    ic_replay_opts o;
    ic_replay_result half;
    ic_replay_opts_default(&o);
    o.checkpoint = ck;
    o.checkpoint_every = (uint64_t)cfg->batch * 5;
    o.stop_after = (uint64_t)cfg->batch * 10;
    replay_run(cfg, log, threads, &o, &half);
}

/* The small config, its log, and the checkpoint prefix dir/name. */
static void resume_setup(ic_config *cfg, ic_log *log, char *ck, size_t cap, const char *name)
{
    small_config(cfg);
    load_log(log, cfg);
    snprintf(ck, cap, "%s/%s", dir, name);
}

static int same_results(const ic_config *cfg, const ic_replay_result *a, const ic_replay_result *b)
{
    int same = a->train_loss == b->train_loss;
    for (int p = 0; p < IC_N_PHASES; p++) {
        same &= a->n[p] == b->n[p];
        for (int t = 0; t < cfg->n_tasks; t++)
            same &= a->m[p][t].auc == b->m[p][t].auc && a->m[p][t].logloss == b->m[p][t].logloss;
    }
    return same;
}

/* Train half the log with checkpoints, resume from the last one, and
 * finish: the same predictions and loss as one uninterrupted run, bit for
 * bit (one thread). Meanwhile a crash in the middle of the next save (its
 * new model file half written, the state not yet) must not matter: the
 * state still names the complete previous generation. */
static void test_resume_is_bit_identical(void **state)
{
    (void)state;
    ic_config cfg;
    ic_log log;
    char ck[200];
    resume_setup(&cfg, &log, ck, sizeof ck, "ck");
    ic_error err;
    ic_replay_opts o;
    ic_replay_result one, two, three;

    ic_replay_opts_default(&o);
    replay_run(&cfg, &log, 1, &o, &one);

    /* First half, two checkpoints: generation 2 on disk, 1 removed. */
    replay_first_half(&cfg, &log, 1, ck);
    assert_true(exists(dir, "ck"));
    assert_int_equal(only_generation(), 2);
    char v1[200];
    snprintf(v1, sizeof v1, "%s/v1", dir);
    make_v1_checkpoint(ck, 2, v1);
    /* The crash: generation 3's model half written, its clock missing; and
     * a stale generation 1 a crash after a state commit could leave. */
    write_junk(dir, "ck.3.model");
    write_junk(dir, "ck.1.clock");

    /* A fresh engine (other seed: the checkpoint must override it),
     * resuming from ck and saving to it again: its first save writes
     * generation 3 over the junk, then removes generations 2 and 1. */
    ic_config other = cfg;
    other.seed = 99;
    ic_replay_opts_default(&o);
    o.resume = ck;
    o.checkpoint = ck;
    o.checkpoint_every = (uint64_t)cfg.batch * 5;
    replay_run(&other, &log, 1, &o, &two);
    assert_true(only_generation() >= 3);
    assert_false(exists(dir, "ck.1.clock"));
    assert_true(same_results(&cfg, &one, &two));

    /* A version 1 checkpoint of the same state resumes to the same end. */
    ic_replay_opts_default(&o);
    o.resume = v1;
    replay_run(&other, &log, 1, &o, &three);
    assert_true(same_results(&cfg, &one, &three));

    /* A checkpoint is rejected by a different network. */
    ic_config wider = cfg;
    wider.dim = 8;
    ic_engine *e;
    assert_int_equal(ic_engine_create(&e, &wider, NULL, NULL, &err), IC_OK);
    o.resume = ck;
    assert_true(ic_replay(e, &log, &o, &two, &err) < 0);
    ic_engine_free(e);
    ic_log_free(&log);
}

/* On two model threads (ic_engine_set_threads), a run resumed from a
 * checkpoint is bit-identical to an uninterrupted two-thread run: the
 * model loaded from the checkpoint also trains on two threads (a one-thread
 * second half would round its sums differently), and two threads agree
 * with one within float rounding. */
static void test_two_threads_resume(void **state)
{
    (void)state;
    ic_config cfg;
    ic_log log;
    char ck[200];
    resume_setup(&cfg, &log, ck, sizeof ck, "ck2");
    ic_replay_opts o;
    ic_replay_result one, two, single;

    ic_replay_opts_default(&o);
    replay_run(&cfg, &log, 2, &o, &one);
    replay_first_half(&cfg, &log, 2, ck);
    o.resume = ck;
    replay_run(&cfg, &log, 2, &o, &two);
    assert_true(same_results(&cfg, &one, &two));

    ic_replay_opts_default(&o);
    replay_run(&cfg, &log, 1, &o, &single);
    assert_true(fabs(one.train_loss - single.train_loss) < 1e-3 * fabs(single.train_loss));
    assert_true(fabs(one.m[IC_PHASE_TEST][0].auc - single.m[IC_PHASE_TEST][0].auc) < 2e-3);
    ic_log_free(&log);
}

/* Two runs at a time give the same figures as one at a time. */
static void test_experiment_deterministic(void **state)
{
    (void)state;
    ic_config cfg;
    small_config(&cfg);
    ic_log log;
    load_log(&log, &cfg);
    ic_variant v[IC_MAX_VARIANTS];
    int nv = ic_experiment_variants(&cfg, 0, v, IC_MAX_VARIANTS);
    assert_int_equal(nv, 4);
    assert_string_equal(v[0].name, "baseline");
    assert_int_equal(v[0].cfg.clock, IC_CLOCK_NONE);
    assert_int_equal(v[3].cfg.clock, IC_CLOCK_GAUSSIAN);
    assert_int_equal(ic_experiment_variants(&cfg, 1, v, IC_MAX_VARIANTS), 7);
    nv = 2; /* baseline and naive, 2 seeds */
    ic_variant_result r1[2], r2[2];
    ic_error err;
    assert_int_equal(ic_experiment_run(&log, v, nv, 2, 1, 0, r1, &err), IC_OK);
    assert_int_equal(ic_experiment_run(&log, v, nv, 2, 2, 0, r2, &err), IC_OK);
    for (int i = 0; i < nv; i++) {
        assert_true(r1[i].auc == r2[i].auc);
        assert_true(r1[i].uauc == r2[i].uauc);
        assert_true(r1[i].auc_seed[0] != r1[i].auc_seed[1]); /* seeds differ */
        double m = (r1[i].auc_seed[0] + r1[i].auc_seed[1]) / 2;
        assert_float_equal(r1[i].auc, m, 1e-12);
    }
    ic_log_free(&log);
}

/* ---- the commands, as a user runs them ---- */

/* Runs the tool with args, stdout to out, stderr to dir/stderr.txt. */
static int run_tool_to(const char *args, const char *out)
{
    char err[128];
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    return ic_test_run_tool(args, out, err);
}

static int run_tool(const char *args) { return run_tool_to(args, "/dev/null"); }

static int stderr_has(const char *s)
{
    char path[128], buf[4096] = {0};
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, s) != NULL;
}

static void test_commands_bad_input(void **state)
{
    (void)state;
    if (!getenv("ICLOCK_BIN")) skip();
    char a[1024];
    /* usage */
    assert_int_equal(run_tool("train"), 2);
    assert_int_equal(run_tool("train --data x.csv"), 2);
    assert_int_equal(run_tool("experiment --seeds 0 --data x.csv"), 2);
    assert_int_equal(run_tool("eval --bogus"), 2);
    /* a missing file */
    snprintf(a, sizeof a, "train --data %s/none.csv --model %s/m --quiet", dir, dir);
    assert_int_equal(run_tool(a), 1);
    assert_true(stderr_has("none.csv"));
    /* a bad config */
    char cfgp[128];
    snprintf(cfgp, sizeof cfgp, "%s/bad.ini", dir);
    FILE *f = fopen(cfgp, "w");
    fputs("[model]\ndim = -3\n", f);
    fclose(f);
    snprintf(a, sizeof a, "train --data %s --config %s --model %s/m --quiet", log_path, cfgp, dir);
    assert_int_equal(run_tool(a), 2);
    assert_true(stderr_has("bad.ini:2"));
    /* a bad --set */
    snprintf(a, sizeof a, "train --data %s --set model.clock=sundial --model %s/m --quiet", log_path, dir);
    assert_int_equal(run_tool(a), 2);
    /* --threads is 1 or 2 */
    snprintf(a, sizeof a, "train --data %s --threads 3 --model %s/m --quiet", log_path, dir);
    assert_int_equal(run_tool(a), 2);
    assert_true(stderr_has("--threads"));
    /* train a small model on two threads, then eval it with another network's config */
    snprintf(a, sizeof a, "train --data %s --set model.mlp=16 --set train.batch=128 --threads 2 --model %s/m --quiet",
             log_path, dir);
    assert_int_equal(run_tool(a), 0);
    snprintf(a, sizeof a, "eval --data %s --model %s/m --quiet", log_path, dir);
    assert_int_equal(run_tool(a), 0);
    snprintf(a, sizeof a, "eval --data %s --model %s/m --config configs/music.ini --quiet", log_path, dir);
    assert_int_equal(run_tool(a), 2);
    /* a log with no test period */
    snprintf(a, sizeof a, "eval --data %s --model %s/m --test-start 2099-01-01 --quiet", log_path, dir);
    assert_int_equal(run_tool(a), 2);
    assert_true(stderr_has("no test period"));
    /* a corrupt model file */
    snprintf(a, sizeof a, "%s/m", dir);
    assert_int_equal(truncate(a, 100), 0);
    snprintf(a, sizeof a, "eval --data %s --model %s/m --quiet", log_path, dir);
    assert_int_equal(run_tool(a), 2);
}

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (!j) fail_msg("%s is not JSON: %.200s", path, buf);
    return j;
}

/* `iclock experiment --json` writes what the issue specifies: the variants
 * in order, each with mean/std that agree with its per-seed figures. */
static void test_experiment_json(void **state)
{
    (void)state;
    if (!getenv("ICLOCK_BIN")) skip();
    char a[1024], out[128];
    snprintf(out, sizeof out, "%s/exp.json", dir);
    snprintf(a, sizeof a, "experiment --data %s --seeds 2 --set model.mlp=16 --set train.batch=128 "
             "--json %s --quiet", log_path, out);
    assert_int_equal(run_tool(a), 0);
    cJSON *j = read_json(out);
    const cJSON *v = cJSON_GetObjectItem(j, "variants");
    assert_int_equal(cJSON_GetArraySize(v), 4);
    const char *names[] = {"baseline", "naive", "adaptive", "gaussian"};
    for (int i = 0; i < 4; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        assert_string_equal(cJSON_GetObjectItem(x, "name")->valuestring, names[i]);
        assert_int_equal(cJSON_GetObjectItem(x, "seeds")->valueint, 2);
        const cJSON *per = cJSON_GetObjectItem(x, "auc_per_seed");
        assert_int_equal(cJSON_GetArraySize(per), 2);
        double s0 = cJSON_GetArrayItem(per, 0)->valuedouble, s1 = cJSON_GetArrayItem(per, 1)->valuedouble;
        assert_float_equal(cJSON_GetObjectItem(x, "auc")->valuedouble, (s0 + s1) / 2, 1e-5);
        assert_float_equal(cJSON_GetObjectItem(x, "auc_std")->valuedouble, fabs(s0 - s1) / sqrt(2), 1e-5);
        assert_true(s0 > 0.5 && s0 < 1);
        const char *keys[] = {"uauc", "uauc_std", "gauc", "logloss"};
        for (int k = 0; k < 4; k++) assert_true(cJSON_IsNumber(cJSON_GetObjectItem(x, keys[k])));
    }
    cJSON_Delete(j);
    /* train --json: validation metrics per task */
    snprintf(out, sizeof out, "%s/train.json", dir);
    snprintf(a, sizeof a, "train --data %s --set model.mlp=16 --model %s/m2 --json --quiet", log_path, dir);
    assert_int_equal(run_tool_to(a, out), 0);
    j = read_json(out);
    const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "valid"), "tasks"), "finish");
    assert_non_null(t);
    assert_true(cJSON_GetObjectItem(t, "auc")->valuedouble > 0.5);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_is_point_in_time),
        cmocka_unit_test(test_sample_sees_only_the_past),
        cmocka_unit_test(test_replay_periods),
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_two_threads_resume),
        cmocka_unit_test(test_experiment_deterministic),
        cmocka_unit_test(test_commands_bad_input),
        cmocka_unit_test(test_experiment_json),
    };
    return cmocka_run_group_tests_name("engine", tests, setup, teardown);
}
