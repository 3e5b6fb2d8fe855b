/* test_synth.c: the listening simulator. Determinism (same seed, same
 * bytes; a shorter run is a prefix of a longer one), time order, the log's
 * shape (rates, ids, time zones), the daily rhythm (on at rhythm 1, absent
 * at rhythm 0 against a within-user shuffle of the hours), the CSV writer
 * against the callback form, write errors, and the command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
    ic_synth_event *a;
    size_t n, cap;
} evlist;

static int collect(void *ctx, const ic_synth_event *ev)
{
    evlist *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->a = ic__xrealloc(l->a, l->cap * sizeof *l->a);
    }
    l->a[l->n++] = *ev;
    return 0;
}

static evlist run(const ic_synth_opts *o, ic_synth_stats *st)
{
    evlist l = {0};
    ic_error err = {{0}};
    ic_status s = ic_synth_run(o, collect, &l, st, &err);
    if (s != IC_OK) fail_msg("ic_synth_run: %s", err.msg);
    return l;
}

/* The CSV text for o, malloc'd; *len its length. */
static char *csv_text_oracle(const ic_synth_opts *o, int oracle, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    ic_error err = {{0}};
    ic_status s = oracle ? ic_synth_write_csv_oracle(o, f, NULL, &err)
                         : ic_synth_write_csv(o, f, NULL, &err);
    if (s != IC_OK) fail_msg("ic_synth_write_csv: %s", err.msg);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static char *csv_text(const ic_synth_opts *o, size_t *len) { return csv_text_oracle(o, 0, len); }

static ic_synth_opts small_opts(int users, int days)
{
    ic_synth_opts o;
    ic_synth_opts_default(&o);
    o.n_users = users;
    o.n_days = days;
    o.n_items = 2000;
    return o;
}

/* ---- options -------------------------------------------------------------- */

static void test_defaults_and_check(void **state)
{
    (void)state;
    ic_synth_opts o;
    ic_synth_opts_default(&o);
    assert_int_equal(o.n_days, 56);
    assert_int_equal(o.start, 1690848000); /* 2023-08-01T00:00:00Z */
    assert_true(o.rhythm == 1.0);
    ic_error err = {{0}};
    assert_int_equal(ic_synth_check(&o, &err), IC_OK);
    struct {
        ic_synth_opts o;
        const char *word;
    } bad[8];
    for (int i = 0; i < 8; i++) bad[i].o = o;
    bad[0].o.n_users = 0, bad[0].word = "users";
    bad[1].o.n_items = -3, bad[1].word = "items";
    bad[2].o.n_days = 0, bad[2].word = "days";
    bad[3].o.rhythm = 1.5, bad[3].word = "rhythm";
    bad[4].o.rhythm = NAN, bad[4].word = "rhythm";
    bad[5].o.events_per_day = 1.0, bad[5].word = "events-per-day";
    bad[6].o.start = INT64_MAX, bad[6].word = "start";
    bad[7].o.n_days = 4000, bad[7].word = "days";
    for (int i = 0; i < 8; i++) {
        err.msg[0] = '\0';
        assert_int_equal(ic_synth_check(&bad[i].o, &err), IC_ERR_ARG);
        assert_non_null(strstr(err.msg, bad[i].word));
        /* The generators refuse the same options without calling back. */
        evlist l = {0};
        assert_int_equal(ic_synth_run(&bad[i].o, collect, &l, NULL, &err), IC_ERR_ARG);
        assert_int_equal(l.n, 0);
    }
    assert_string_equal(ic_synth_genre_name(0), "pop");
    assert_null(ic_synth_genre_name(IC_SYNTH_GENRES));
    assert_null(ic_synth_mood_name(-1));
    assert_non_null(ic_synth_lang_name(IC_SYNTH_LANGS - 1));
}

/* ---- determinism ---------------------------------------------------------- */

static void test_deterministic(void **state)
{
    (void)state;
    ic_synth_opts o = small_opts(120, 6);
    size_t n1, n2, n3;
    char *a = csv_text(&o, &n1), *b = csv_text(&o, &n2);
    assert_true(n1 > 10000);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    o.seed = 2;
    char *c = csv_text(&o, &n3);
    assert_false(n3 == n1 && memcmp(a, c, n1) == 0);
    /* Same seed, fewer days: exactly the longer log's first days. */
    o.seed = 1;
    o.n_days = 3;
    size_t n4;
    char *d = csv_text(&o, &n4);
    assert_true(n4 < n1 && n4 > 1000);
    assert_memory_equal(a, d, n4);
    int64_t next_ts = strtoll(a + n4, NULL, 10);
    assert_true(next_ts >= o.start + 3 * 86400);
    free(a), free(b), free(c), free(d);
}

/* ---- order and shape ------------------------------------------------------ */

static void test_sorted_and_shape(void **state)
{
    (void)state;
    ic_synth_opts o = small_opts(300, 14);
    ic_synth_stats st;
    evlist l = run(&o, &st);
    assert_int_equal(st.events, l.n);
    uint64_t fin = 0, like = 0, skip = 0, dis = 0, two = 0;
    int tz_seen[8] = {0}, n_tz = 0, tz_vals[8];
    uint8_t *user_seen = ic__xcalloc(300, 1);
    uint32_t users = 0;
    for (size_t i = 0; i < l.n; i++) {
        const ic_synth_event *e = &l.a[i];
        if (i) assert_true(e->ts > l.a[i - 1].ts ||
                           (e->ts == l.a[i - 1].ts && e->user >= l.a[i - 1].user));
        assert_true(e->ts >= o.start && e->ts < o.start + 14 * 86400);
        assert_true(e->user < 300 && e->item < 2000);
        assert_true(e->genre[0] >= 0 && e->genre[0] < IC_SYNTH_GENRES);
        assert_true(e->genre[1] != e->genre[0] && e->genre[1] < IC_SYNTH_GENRES);
        assert_non_null(ic_synth_mood_name(e->mood));
        assert_non_null(ic_synth_lang_name(e->lang));
        assert_false(e->finish && e->skip);
        assert_true(!e->like || e->finish);   /* likes come with a finished play */
        assert_true(!e->dislike || e->skip);  /* dislikes with a skip */
        assert_true(e->p_finish > 0 && e->p_finish < 1);
        fin += e->finish, like += e->like, skip += e->skip, dis += e->dislike;
        two += e->genre[1] >= 0;
        users += !user_seen[e->user];
        user_seen[e->user] = 1;
        int k = 0;
        while (k < n_tz && tz_vals[k] != e->tz_min) k++;
        if (k == n_tz && n_tz < 8) tz_vals[n_tz++] = e->tz_min;
        if (k < 8) tz_seen[k]++;
    }
    double n = (double)l.n;
    print_message("events %zu finish %.3f like %.3f skip %.3f dislike %.3f two-genre %.3f\n",
                  l.n, fin / n, like / n, skip / n, dis / n, two / n);
    /* 300 users x 14 days x ~0.55 active x 10 plays */
    assert_true(l.n > 15000 && l.n < 35000);
    assert_true(fin / n > 0.4 && fin / n < 0.6);
    assert_true(like / n > 0.05 && like / n < 0.15);
    assert_true(skip / n > 0.6 * (1 - fin / n) && skip / n < 1 - fin / n);
    assert_true(dis / n > 0.01 && dis / n < 0.03);
    assert_true(two / n > 0.01 && two / n < 0.1);
    assert_int_equal(st.finish, fin);
    assert_int_equal(st.dislike, dis);
    assert_int_equal(st.users_active, users);
    assert_true(users >= 295); /* every user returns on many days */
    assert_true(st.items_seen > 1000 && st.items_seen <= 2000);
    assert_true(n_tz >= 6);
    for (int k = 0; k < n_tz; k++) assert_true(tz_seen[k] > 200);
    free(user_seen);
    free(l.a);
}

/* ---- the daily rhythm ----------------------------------------------------- */

/* How much the genre mix depends on the local 3-hour window: the mean over
 * events of the total variation distance between their window's genre
 * distribution and the overall one. win (n) holds each event's window. */
static double hour_tv(const ic_synth_event *a, const uint8_t *win, size_t n)
{
    double c[8][IC_SYNTH_GENRES] = {{0}}, all[IC_SYNTH_GENRES] = {0}, w[8] = {0}, s = 0;
    for (size_t i = 0; i < n; i++) {
        c[win[i]][a[i].genre[0]]++;
        all[a[i].genre[0]]++;
        w[win[i]]++;
    }
    for (int k = 0; k < 8; k++) {
        if (w[k] == 0) continue;
        double tv = 0;
        for (int g = 0; g < IC_SYNTH_GENRES; g++) tv += fabs(c[k][g] / w[k] - all[g] / n);
        s += w[k] / n * 0.5 * tv;
    }
    return s;
}

static int by_user(const void *x, const void *y)
{
    const ic_synth_event *a = x, *b = y;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    return (a->ts > b->ts) - (a->ts < b->ts);
}

typedef struct {
    double tv, null_mean, null_sd;
} rhythm_stat;

/* hour_tv of the log, and its mean and sd when each user's hours are
 * shuffled among that user's own events: what sampling noise and the mix of
 * users active at each hour give when genre and hour are independent. */
static rhythm_stat rhythm_of(evlist *l)
{
    qsort(l->a, l->n, sizeof *l->a, by_user);
    uint8_t *win = ic__xmalloc(l->n);
    for (size_t i = 0; i < l->n; i++) win[i] = (uint8_t)(ic_local_hour(l->a[i].ts, l->a[i].tz_min) / 3);
    rhythm_stat r = {hour_tv(l->a, win, l->n), 0, 0};
    ic_rng rng;
    ic__rng_seed(&rng, 12345);
    const int K = 8;
    double s = 0, s2 = 0;
    for (int k = 0; k < K; k++) {
        for (size_t i = 0, j; i < l->n; i = j) {
            for (j = i; j < l->n && l->a[j].user == l->a[i].user; j++) {}
            for (size_t t = j - 1; t > i; t--) {
                size_t q = i + (size_t)(ic__rng_uniform(&rng) * (double)(t - i + 1));
                uint8_t x = win[t];
                win[t] = win[q];
                win[q] = x;
            }
        }
        double v = hour_tv(l->a, win, l->n);
        s += v, s2 += v * v;
    }
    r.null_mean = s / K;
    r.null_sd = sqrt(fmax(s2 / K - r.null_mean * r.null_mean, 0));
    free(win);
    return r;
}

static const float *auc_key;
static int by_key(const void *x, const void *y)
{
    float a = auc_key[*(const uint32_t *)x], b = auc_key[*(const uint32_t *)y];
    return (a > b) - (a < b);
}

/* AUC of score (n) against the events' finish labels, ties counted half. */
static double finish_auc(const ic_synth_event *a, const float *score, size_t n)
{
    uint32_t *ix = ic__xmalloc(n * sizeof *ix);
    for (size_t i = 0; i < n; i++) ix[i] = (uint32_t)i;
    auc_key = score;
    qsort(ix, n, sizeof *ix, by_key);
    double rank_sum = 0, pos = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && score[ix[j]] == score[ix[i]]; j++) {}
        for (size_t t = i; t < j; t++)
            if (a[ix[t]].finish) rank_sum += (double)(i + j + 1) / 2, pos++;
    }
    free(ix);
    return (rank_sum - pos * (pos + 1) / 2) / (pos * ((double)n - pos));
}

/* AUCs of the simulator's true probability and of its two oracles. */
typedef struct {
    double truth, global, blind;
} oracle_auc;

static oracle_auc oracle_aucs(const evlist *l)
{
    float *p = ic__xmalloc(l->n * sizeof *p);
    oracle_auc a;
    for (size_t i = 0; i < l->n; i++) p[i] = l->a[i].p_finish;
    a.truth = finish_auc(l->a, p, l->n);
    for (size_t i = 0; i < l->n; i++) p[i] = l->a[i].p_global;
    a.global = finish_auc(l->a, p, l->n);
    for (size_t i = 0; i < l->n; i++) p[i] = l->a[i].p_static;
    a.blind = finish_auc(l->a, p, l->n);
    free(p);
    return a;
}

static void test_rhythm(void **state)
{
    (void)state;
    ic_synth_opts o = small_opts(300, 14);
    evlist on = run(&o, NULL);
    o.rhythm = 0.0;
    evlist off = run(&o, NULL);
    /* At rhythm 0 the feedback model ignores the hour entirely. */
    for (size_t i = 0; i < off.n; i++) {
        assert_true(off.a[i].p_finish == off.a[i].p_static);
        assert_true(off.a[i].p_finish == off.a[i].p_global);
    }
    oracle_auc a1 = oracle_aucs(&on), a0 = oracle_aucs(&off);
    rhythm_stat r1 = rhythm_of(&on), r0 = rhythm_of(&off);
    print_message("rhythm 1: TV %.4f (shuffled %.4f +- %.4f), AUC true %.4f global-hour %.4f "
                  "time-blind %.4f\n", r1.tv, r1.null_mean, r1.null_sd, a1.truth, a1.global,
                  a1.blind);
    print_message("rhythm 0: TV %.4f (shuffled %.4f +- %.4f), AUC true %.4f time-blind %.4f\n",
                  r0.tv, r0.null_mean, r0.null_sd, a0.truth, a0.blind);
    /* The hour shifts the logged genre mix far beyond noise at rhythm 1 ... */
    assert_true(r1.tv > 4 * r1.null_mean);
    assert_true(r1.tv > 4 * r0.tv);
    /* ... and not at all at rhythm 0: within noise of the shuffled hours. */
    assert_true(r0.tv < r0.null_mean + 4 * r0.null_sd + 0.1 * r0.null_mean);
    /* Knowing the hour predicts finishes better only when there is a rhythm,
     * and knowing each user's own hours better than the hour effect all
     * users share: the room the Interest Clock has over a global hour. */
    assert_true(a1.global > a1.blind + 0.01);
    assert_true(a1.truth > a1.global + 0.02);
    assert_true(a0.truth == a0.blind);
    free(on.a);
    free(off.a);
}

/* ---- the CSV writer --------------------------------------------------------- */

static void test_csv_matches_events(void **state)
{
    (void)state;
    ic_synth_opts o = small_opts(50, 3);
    evlist l = run(&o, NULL);
    size_t len;
    char *text = csv_text_oracle(&o, 1, &len);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    assert_string_equal(line, "ts,user,item,tz,genre,mood,lang,finish,like,skip,dislike,"
                              "p_finish,p_static,p_global");
    size_t i = 0;
    for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        assert_true(i < l.n);
        const ic_synth_event *e = &l.a[i];
        char want[256], genre[64];
        if (e->genre[1] >= 0)
            snprintf(genre, sizeof genre, "%s|%s", ic_synth_genre_name(e->genre[0]),
                     ic_synth_genre_name(e->genre[1]));
        else
            snprintf(genre, sizeof genre, "%s", ic_synth_genre_name(e->genre[0]));
        snprintf(want, sizeof want, "%lld,u%u,i%u,%d,%s,%s,%s,%d,%d,%d,%d", (long long)e->ts,
                 e->user, e->item, e->tz_min, genre, ic_synth_mood_name(e->mood),
                 ic_synth_lang_name(e->lang), e->finish, e->like, e->skip, e->dislike);
        size_t n = strlen(want);
        assert_memory_equal(line, want, n);
        float p[3];
        assert_int_equal(sscanf(line + n, ",%f,%f,%f", &p[0], &p[1], &p[2]), 3);
        assert_float_equal(p[0], e->p_finish, 1e-6);
        assert_float_equal(p[1], e->p_static, 1e-6);
        assert_float_equal(p[2], e->p_global, 1e-6);
    }
    assert_int_equal(i, l.n);
    free(text);
    free(l.a);
}

/* A callback can stop the run: a negative status comes back, a positive
 * value stops quietly. */
static int stop_after_10(void *ctx, const ic_synth_event *ev)
{
    (void)ev;
    int *n = ctx;
    return ++*n == 10 ? IC_ERR_NOTFOUND : 0;
}
static int stop_quietly(void *ctx, const ic_synth_event *ev)
{
    (void)ev;
    return ++*(int *)ctx == 5;
}

static void test_stop_and_write_error(void **state)
{
    (void)state;
    ic_synth_opts o = small_opts(30, 2);
    ic_error err = {{0}};
    int n = 0;
    ic_synth_stats st;
    assert_int_equal(ic_synth_run(&o, stop_after_10, &n, &st, &err), IC_ERR_NOTFOUND);
    assert_int_equal(n, 10);
    assert_int_equal(st.events, 10);
    n = 0;
    assert_int_equal(ic_synth_run(&o, stop_quietly, &n, NULL, &err), IC_OK);
    assert_int_equal(n, 5);
    /* /dev/full fails every write with ENOSPC. */
    FILE *f = fopen("/dev/full", "w");
    assert_non_null(f);
    err.msg[0] = '\0';
    assert_int_equal(ic_synth_write_csv(&o, f, NULL, &err), IC_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot write"));
    fclose(f);
}

/* ---- the command line --------------------------------------------------------- */

static const char *bin(void)
{
    const char *b = getenv("ICLOCK_BIN");
    return b ? b : "build/iclock";
}

/* Runs `iclock synth <args>` with stdout to out_path (or /dev/null) and
 * stderr to err_path; returns the exit status. */
static int synth_cli(const char *args, const char *out_path, const char *err_path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s synth %s >%s 2>%s", bin(), args,
             out_path ? out_path : "/dev/null", err_path);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    return WEXITSTATUS(rc);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        buf = ic__xrealloc(buf, cap = cap * 2 + 65536);
        n += fread(buf + n, 1, cap - n - 1, f);
        if (feof(f)) break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void test_cli(void **state)
{
    (void)state;
    if (access(bin(), X_OK) != 0)
        fail_msg("%s is not built (set ICLOCK_BIN, or use make test)", bin());
    char out[] = "/tmp/test_synth_outXXXXXX", errp[] = "/tmp/test_synth_errXXXXXX";
    close(mkstemp(out));
    close(mkstemp(errp));
    const char *bad[] = {"--users 0", "--users 12x", "--rhythm 1.5", "--rhythm -0.1",
                         "--start tomorrow", "--days", "--bogus", "--events-per-day 0.5",
                         "--seed -1", "extra"};
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(synth_cli(bad[i], NULL, errp), 2);
        char *msg = slurp(errp, &len);
        assert_non_null(strstr(msg, "iclock synth: "));
        free(msg);
    }
    /* -o FILE holds exactly what the library writes for the same options. */
    char args[512];
    snprintf(args, sizeof args, "--users 40 --days 3 --items 500 --seed 9 --rhythm 0.5 "
             "--start 2023-09-01 -o %s", out);
    assert_int_equal(synth_cli(args, NULL, errp), 0);
    char *msg = slurp(errp, &len);
    assert_non_null(strstr(msg, " events, "));
    free(msg);
    ic_synth_opts o = small_opts(40, 3);
    o.n_items = 500, o.seed = 9, o.rhythm = 0.5, o.start = 1693526400;
    size_t n_lib, n_cli;
    char *lib = csv_text(&o, &n_lib), *cli = slurp(out, &n_cli);
    assert_int_equal(n_cli, n_lib);
    assert_memory_equal(cli, lib, n_lib);
    free(cli);
    /* stdout, quiet: the same bytes and nothing on stderr. */
    assert_int_equal(synth_cli("--users 40 --days 3 --items 500 --seed 9 --rhythm 0.5 "
                               "--start 1693526400 --quiet", out, errp), 0);
    cli = slurp(out, &n_cli);
    assert_int_equal(n_cli, n_lib);
    assert_memory_equal(cli, lib, n_lib);
    msg = slurp(errp, &len);
    assert_int_equal(len, 0);
    free(msg), free(cli), free(lib);
    /* --help lists every option. */
    assert_int_equal(synth_cli("--help", out, errp), 0);
    msg = slurp(out, &len);
    const char *opts[] = {"--users", "--items", "--days", "--seed", "--rhythm", "--start",
                          "--events-per-day", "--oracle", "--output", "--quiet"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) assert_non_null(strstr(msg, opts[i]));
    free(msg);
    unlink(out);
    unlink(errp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_check),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_sorted_and_shape),
        cmocka_unit_test(test_rhythm),
        cmocka_unit_test(test_csv_matches_events),
        cmocka_unit_test(test_stop_and_write_error),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests_name("synth", tests, NULL, NULL);
}
