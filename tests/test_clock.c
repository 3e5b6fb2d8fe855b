/* test_clock.c: the Interest Clock store against its brute-force reference
 * (random logs, both refresh modes, many query times), hand-made boundary
 * cases (window edge, same-second events, local days across UTC midnight),
 * memory reclamation of inactive users and steady-state memory, a user
 * active for longer than 32-bit record times reach, the prefetch hint, and
 * save/load including damaged files. Scores are sums of small integers times dyadic weights (1, -1,
 * 0.5, 2, -0.25), exact in float and double, so views must be equal bit for
 * bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock_internal.h"

#include <stdio.h>
#include <unistd.h>

#define DAY 86400

/* ---- helpers ---------------------------------------------------------------- */

/* An event with values vals[f][0..nv[f]) in field f (3 fields) and actions
 * like, finish, skip, dislike. */
static ic_event mk_event(int64_t ts, int32_t tz, uint64_t user, const int nv[3],
                         const uint64_t vals[3][4], const float act[4])
{
    ic_event e;
    memset(&e, 0, sizeof e);
    e.ts = ts, e.tz_min = tz, e.user = user, e.item = 7;
    int n = 0;
    for (int f = 0; f < 3; f++) {
        e.voff[f] = (uint8_t)n;
        for (int j = 0; j < nv[f]; j++) e.val[n++] = vals[f][j];
    }
    for (int f = 3; f <= IC_MAX_FIELDS; f++) e.voff[f] = (uint8_t)n;
    for (int a = 0; a < 4; a++) e.action[a] = act[a];
    return e;
}

/* One value per field and a single like. */
static ic_event simple_event(int64_t ts, int32_t tz, uint64_t user, uint64_t g, uint64_t m, uint64_t l)
{
    const int nv[3] = {1, 1, 1};
    const uint64_t vals[3][4] = {{g}, {m}, {l}};
    const float act[4] = {1, 0, 0, 0};
    return mk_event(ts, tz, user, nv, vals, act);
}

/* Compares two views place by place; prints the first difference. */
static int views_equal(const ic_clock_view *a, const ic_clock_view *b, const char *ctx)
{
    if (a->n_fields != b->n_fields || a->k != b->k) {
        print_error("%s: shape %d/%d vs %d/%d\n", ctx, a->n_fields, a->k, b->n_fields, b->k);
        return 0;
    }
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < a->n_fields; f++) {
            if (ic_clock_view_n(a, h, f) != ic_clock_view_n(b, h, f)) {
                print_error("%s: hour %d field %d: %d vs %d places\n", ctx, h, f, ic_clock_view_n(a, h, f), ic_clock_view_n(b, h, f));
                return 0;
            }
            for (int i = 0; i < ic_clock_view_n(a, h, f); i++)
                if (ic_clock_view_values(a, h, f)[i] != ic_clock_view_values(b, h, f)[i] || ic_clock_view_scores(a, h, f)[i] != ic_clock_view_scores(b, h, f)[i]) {
                    print_error("%s: hour %d field %d place %d: %llu/%g vs %llu/%g\n", ctx, h, f, i,
                                (unsigned long long)ic_clock_view_values(a, h, f)[i], ic_clock_view_scores(a, h, f)[i],
                                (unsigned long long)ic_clock_view_values(b, h, f)[i], ic_clock_view_scores(b, h, f)[i]);
                    return 0;
                }
        }
    return 1;
}

static int view_places(const ic_clock_view *v)
{
    int n = 0;
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < v->n_fields; f++) n += ic_clock_view_n(v, h, f);
    return n;
}

/* Queries the store and the reference (over all of log[0..n), of which
 * only events before the window's end may count) and asserts equality. */
static int check_query(ic_clock_store *s, const ic_config *cfg, const ic_event *log, size_t n,
                       uint64_t user, int64_t t, int32_t tz)
{
    ic_clock_view got, want;
    int rg = ic_clock_query(s, user, t, tz, &got);
    int rw = ic__clock_query_ref(cfg, log, n, user, t, tz, &want);
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s user %llu t %lld tz %d", cfg->refresh == IC_REFRESH_DAILY ? "daily" : "realtime",
             (unsigned long long)user, (long long)t, (int)tz);
    if (rg != rw) print_error("%s: returned %d, reference %d\n", ctx, rg, rw);
    assert_int_equal(rg, rw);
    assert_true(views_equal(&got, &want, ctx));
    return view_places(&want);
}

/* Checks log[i]'s user at its time (it must not see log[i]), applies
 * log[i], and checks again dt seconds later: the places compared. */
static long apply_between_checks(ic_clock_store *s, const ic_config *cfg, const ic_event *log, size_t i, int64_t dt)
{
    const ic_event *e = &log[i];
    ic_error err;
    long places = check_query(s, cfg, log, i, e->user, e->ts, e->tz_min);
    assert_int_equal(ic_clock_apply(s, e, &err), IC_OK);
    return places + check_query(s, cfg, log, i + 1, e->user, e->ts + dt, e->tz_min);
}

/* ---- random logs ------------------------------------------------------------ */

static const int32_t TZS[] = {-600, 690, 0, 330, -300, 540};

typedef struct {
    ic_event *ev;
    size_t n;
    int n_users;
} rlog;

/* A log of n events over `days` days on a coarse time grid (so window edges
 * and hour boundaries fall exactly on events, and seconds repeat), users of
 * Zipf-ish activity, some of them away for longer than the window. */
static rlog random_log(uint64_t seed, size_t n, int n_users, int days, int window_days)
{
    ic_rng r;
    ic__rng_seed(&r, seed);
    rlog L = {ic__xcalloc(n, sizeof(ic_event)), n, n_users};
    const int nvals[3] = {6, 4, 3};
    /* Times are a 15-minute grid g (local midnights of every tz in TZS lie
     * on it) plus sometimes one second, so window edges t - W and local day
     * starts fall exactly on other events. */
    int64_t g = 1693526400 - 7 * 3600, t = g;
    for (size_t i = 0; i < n; i++) {
        /* The same second (3 in 8), or 15 to 60 minutes later. */
        if (ic__rng_u64(&r) % 8 >= 3) {
            g += 900 * (1 + (int64_t)(ic__rng_u64(&r) % 4));
            if (ic__rng_u64(&r) % 500 == 0) g += (int64_t)(window_days + 1) * DAY; /* everyone away */
            t = g + (ic__rng_u64(&r) % 6 == 0);
        }
        (void)days;
        int user = (int)(n_users * ic__rng_uniform(&r) * ic__rng_uniform(&r)); /* skewed */
        /* Users in the upper half are away from 1/3 to 2/3 of the log. */
        if (user >= n_users / 2 && i > n / 3 && i < 2 * n / 3) user = (int)(ic__rng_u64(&r) % (n_users / 2));
        int32_t tz = TZS[(user + (i > n / 2 && user % 3 == 0)) % 6]; /* some move */
        int nv[3];
        uint64_t vals[3][4];
        for (int f = 0; f < 3; f++) {
            uint64_t c = ic__rng_u64(&r) % 10;
            nv[f] = c == 0 ? 0 : c < 7 ? 1 : c < 9 ? 2 : 3;
            for (int j = 0; j < nv[f]; j++) {
                /* Per-user preferences: a skew towards user-dependent values. */
                uint64_t v = (ic__rng_u64(&r) % 3 == 0) ? (uint64_t)(user % nvals[f])
                                                         : ic__rng_u64(&r) % (uint64_t)nvals[f];
                vals[f][j] = ic__rng_u64(&r) % 40 == 0 ? 0 : 1 + v; /* 0 = no value */
            }
        }
        float act[4];
        for (int a = 0; a < 4; a++) act[a] = (float)(ic__rng_u64(&r) % 3 == 0);
        L.ev[i] = mk_event(t, tz, 1000 + (uint64_t)user, nv, vals, act);
    }
    return L;
}

/* Replays the log: before each event, queries its user at the event's time
 * (and sometimes another user, and a time up to a day earlier); after it,
 * queries again at the same second (the event must not be seen). At the end,
 * queries every user at later and later times (expiry of inactive users).
 * Returns the number of non-empty places compared. */
static long replay_and_check(const ic_config *cfg, const rlog *L, ic_rng *r, uint32_t light_max)
{
    ic_clock_store *s;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, cfg, &err), IC_OK);
    ic__clock_set_light_max(s, light_max);
    long places = 0;
    for (size_t i = 0; i < L->n; i++) {
        const ic_event *e = &L->ev[i];
        places += check_query(s, cfg, L->ev, L->n, e->user, e->ts, e->tz_min);
        if (ic__rng_u64(r) % 4 == 0) {
            uint64_t other = 1000 + ic__rng_u64(r) % (uint64_t)(L->n_users + 2); /* some unknown */
            int64_t back = i ? e->ts - (int64_t)(ic__rng_u64(r) % DAY) : e->ts;
            if (i && back < L->ev[i - 1].ts - DAY) back = L->ev[i - 1].ts - DAY;
            places += check_query(s, cfg, L->ev, L->n, other, back, TZS[ic__rng_u64(r) % 6]);
        }
        assert_int_equal(ic_clock_apply(s, e, &err), IC_OK);
        if (ic__rng_u64(r) % 3 == 0) places += check_query(s, cfg, L->ev, L->n, e->user, e->ts, e->tz_min);
    }
    /* Both kinds of user were there to compare, when both are allowed (with
     * few records allowed, every user may have changed). */
    size_t light = 0;
    for (size_t i = 0; i < s->n_users; i++) light += s->users[i].blk == NULL;
    if (light_max == 0) assert_int_equal(light, 0);
    else assert_true(light < s->n_users);
    if (light_max == IC__CLK_LIGHT_MAX) assert_true(light > 0);
    int64_t end = L->ev[L->n - 1].ts + 1;
    for (int64_t dt = 0; dt <= (int64_t)(cfg->window_days + 2) * DAY; dt += DAY / 4 + 1)
        for (int u = 0; u < L->n_users; u++)
            places += check_query(s, cfg, L->ev, L->n, 1000 + (uint64_t)u, end + dt, TZS[u % 6]);
    ic_clock_free(s);
    return places;
}

/* Records a light user keeps before it gets a block: the store's default,
 * none (every user has a block), and few (users change often). */
static const uint32_t LIGHT_MAXES[3] = {IC__CLK_LIGHT_MAX, 0, 4};

static void base_config(ic_config *cfg, int window_days, int k, ic_refresh mode)
{
    ic_config_default(cfg);
    cfg->window_days = window_days;
    cfg->top_k = k;
    cfg->refresh = mode;
}

/* A store for base_config(cfg, ...); aborts the test if it cannot be made. */
static ic_clock_store *new_store(ic_config *cfg, int window_days, int k, ic_refresh mode)
{
    base_config(cfg, window_days, k, mode);
    ic_clock_store *s;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, cfg, &err), IC_OK);
    return s;
}

static void test_property_default_weights(void **state)
{
    (void)state;
    ic_rng r;
    ic__rng_seed(&r, 11);
    for (int mode = 0; mode < 2; mode++) {
        rlog L = random_log(1 + (uint64_t)mode, 4000, 14, 0, 2);
        ic_config cfg;
        base_config(&cfg, 2, 3, mode ? IC_REFRESH_DAILY : IC_REFRESH_REALTIME);
        /* Light users as the store keeps them (up to 64 records, so both
         * kinds and the change), every user with a block, and users that
         * get one after 4 records (many changes, mid-window). */
        for (int sm = 0; sm < 3; sm++) {
            long places = replay_and_check(&cfg, &L, &r, LIGHT_MAXES[sm]);
            /* Guard against a vacuous pass: most compared clocks were non-empty. */
            assert_true(places > 20000);
        }
        free(L.ev);
    }
}

static void test_property_other_shapes(void **state)
{
    (void)state;
    ic_rng r;
    ic__rng_seed(&r, 12);
    for (int mode = 0; mode < 2; mode++) {
        ic_config cfg;
        base_config(&cfg, 1, 2, mode ? IC_REFRESH_DAILY : IC_REFRESH_REALTIME);
        /* Two clock fields in another order, dyadic non-unit weights. */
        cfg.n_clock = 2;
        cfg.clock_field[0] = 2;
        cfg.clock_field[1] = 0;
        const float w[4] = {0.5f, 2.0f, -1.0f, -0.25f};
        for (int a = 0; a < 4; a++) cfg.action[a].weight = w[a];
        rlog L = random_log(7 + (uint64_t)mode, 3000, 9, 0, 1);
        for (int sm = 0; sm < 3; sm++) assert_true(replay_and_check(&cfg, &L, &r, LIGHT_MAXES[sm]) > 10000);
        /* k = 8 (every value fits), window 5 days. */
        base_config(&cfg, 5, IC_MAX_TOPK, mode ? IC_REFRESH_DAILY : IC_REFRESH_REALTIME);
        for (int sm = 0; sm < 3; sm++) assert_true(replay_and_check(&cfg, &L, &r, LIGHT_MAXES[sm]) > 10000);
        free(L.ev);
    }
}

/* ---- hand-made boundary cases ------------------------------------------------ */

static void test_window_edges_realtime(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 30, 3, IC_REFRESH_REALTIME);
    ic_error err;
    const int64_t T = 1700000000; /* 22:13:20 UTC */
    ic_event a = simple_event(T, 0, 5, 11, 21, 31), b = simple_event(T, 0, 5, 12, 21, 31);
    assert_int_equal(ic_clock_apply(s, &a, &err), IC_OK);
    assert_int_equal(ic_clock_apply(s, &b, &err), IC_OK);
    ic_clock_view v;
    /* Both applied, but a query at their own second sees neither. */
    assert_int_equal(ic_clock_query(s, 5, T, 0, &v), 0);
    assert_int_equal(view_places(&v), 0);
    /* One second later: both; genre tie 1 vs 1 broken by id (11 < 12). */
    assert_int_equal(ic_clock_query(s, 5, T + 1, 0, &v), 1);
    int h = ic_local_hour(T, 0);
    assert_int_equal(ic_clock_view_n(&v, h, 0), 2);
    assert_true(ic_clock_view_values(&v, h, 0)[0] == 11 && ic_clock_view_values(&v, h, 0)[1] == 12);
    assert_true(ic_clock_view_n(&v, h, 1) == 1 && ic_clock_view_values(&v, h, 1)[0] == 21 && ic_clock_view_scores(&v, h, 1)[0] == 2.0f);
    assert_int_equal(ic_clock_view_n(&v, (h + 1) % 24, 0), 0);
    /* t - W <= ts: still in at exactly T + W, gone one second later. */
    assert_int_equal(ic_clock_query(s, 5, T + 30 * DAY, 0, &v), 1);
    assert_int_equal(ic_clock_view_n(&v, h, 1), 1);
    assert_int_equal(ic_clock_query(s, 5, T + 30 * DAY + 1, 0, &v), 0);
    assert_int_equal(view_places(&v), 0);
    /* Unknown user: empty view with the right shape. */
    assert_int_equal(ic_clock_query(s, 99, T + 30 * DAY + 1, 0, &v), 0);
    assert_int_equal(v.n_fields, 3);
    assert_int_equal(v.k, 3);
    /* Out of order: refused, store unchanged. */
    ic_event late = simple_event(T - 1, 0, 5, 13, 21, 31);
    assert_int_equal(ic_clock_apply(s, &late, &err), IC_ERR_ORDER);
    assert_int_equal(ic_clock_query(s, 5, T + 1, 0, &v), 1);
    assert_int_equal(ic_clock_view_n(&v, ic_local_hour(T - 1, 0), 0), 2);
    /* A time whose window arithmetic would overflow: refused, unchanged. */
    ic_event far = simple_event(INT64_MAX - 5, 0, 5, 13, 21, 31);
    assert_int_equal(ic_clock_apply(s, &far, &err), IC_ERR_ARG);
    assert_non_null(strstr(err.msg, "out of range"));
    far.ts = IC_CLOCK_MAX_TS;
    assert_int_equal(ic_clock_apply(s, &far, &err), IC_ERR_ARG);
    assert_int_equal(ic_clock_query(s, 5, INT64_MAX, 0, &v), 0);
    assert_int_equal(ic_clock_query(s, 5, INT64_MIN, 0, &v), 0);
    assert_int_equal(view_places(&v), 0);
    assert_int_equal(ic_clock_query(s, 5, T + 1, 0, &v), 1);
    assert_int_equal(ic_clock_view_n(&v, h, 0), 2);
    ic_clock_free(s);
}

static void test_negative_and_hours(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 30, 3, IC_REFRESH_REALTIME);
    ic_error err;
    const int64_t D = 1699920000; /* a UTC midnight */
    const int nv[3] = {1, 1, 0};
    const uint64_t vals[3][4] = {{11}, {21}, {0}};
    const float skip[4] = {0, 0, 1, 0}, like_fin[4] = {1, 1, 0, 0};
    /* 09:59:59 and 10:00:00 local at +05:30 fall in different hours. */
    ic_event e1 = mk_event(D - 330 * 60 + 10 * 3600 - 1, 330, 1, nv, vals, like_fin);
    ic_event e2 = mk_event(D - 330 * 60 + 10 * 3600, 330, 1, nv, vals, skip);
    assert_int_equal(ic_clock_apply(s, &e1, &err), IC_OK);
    assert_int_equal(ic_clock_apply(s, &e2, &err), IC_OK);
    ic_clock_view v;
    assert_int_equal(ic_clock_query(s, 1, e2.ts + 1, 330, &v), 1);
    assert_true(ic_clock_view_n(&v, 9, 0) == 1 && ic_clock_view_scores(&v, 9, 0)[0] == 2.0f);
    /* A negative total stays out; lang had no values at all. */
    assert_int_equal(ic_clock_view_n(&v, 10, 0), 0);
    assert_int_equal(ic_clock_view_n(&v, 9, 2), 0);
    /* The user returns 40 days later: the old events are gone. */
    ic_event e3 = simple_event(e2.ts + 40 * DAY, 330, 1, 12, 22, 32);
    assert_int_equal(ic_clock_apply(s, &e3, &err), IC_OK);
    assert_int_equal(ic_clock_query(s, 1, e3.ts + 1, 330, &v), 1);
    assert_int_equal(view_places(&v), 3);
    assert_int_equal(ic_clock_view_values(&v, 10, 0)[0], 12);
    ic_clock_free(s);
}

/* Values rank by the score the view shows (a float): two sums that
 * differ as doubles but round to the same float tie, and the smaller value
 * id comes first, in the store as in the reference. */
static void test_ties_as_shown(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 30, 3, IC_REFRESH_REALTIME);
    cfg.action[0].weight = 0.1f; /* like: deltas 0.1f, 0.2f, 0.3f for 1, 2, 3 likes */
    ic_clock_store *s;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, &cfg, &err), IC_OK);
    const int64_t T = 1700000000;
    const int nv[3] = {1, 0, 0};
    const uint64_t va[3][4] = {{11}}, vb[3][4] = {{12}};
    const float one[4] = {1, 0, 0, 0}, two[4] = {2, 0, 0, 0}, three[4] = {3, 0, 0, 0};
    ic_event log[3] = {mk_event(T, 0, 5, nv, vb, three), mk_event(T + 1, 0, 5, nv, va, one),
                       mk_event(T + 2, 0, 5, nv, va, two)};
    /* 12: 0.3f as a double (0.30000001192...); 11: 0.1f + 0.2f
     * (0.30000000447...): different doubles, the same float. */
    assert_true((double)0.3f != (double)0.1f + (double)0.2f && (float)((double)0.1f + (double)0.2f) == 0.3f);
    for (int i = 0; i < 3; i++) assert_int_equal(ic_clock_apply(s, &log[i], &err), IC_OK);
    ic_clock_view v, want;
    assert_int_equal(ic_clock_query(s, 5, T + 3, 0, &v), 1);
    int h = ic_local_hour(T, 0);
    assert_int_equal(ic_clock_view_n(&v, h, 0), 2);
    assert_true(ic_clock_view_values(&v, h, 0)[0] == 11 && ic_clock_view_values(&v, h, 0)[1] == 12);
    assert_true(ic_clock_view_scores(&v, h, 0)[0] == 0.3f && ic_clock_view_scores(&v, h, 0)[1] == 0.3f);
    assert_int_equal(ic__clock_query_ref(&cfg, log, 3, 5, T + 3, 0, &want), 1);
    assert_true(views_equal(&v, &want, "float tie"));
    ic_clock_free(s);
}

static void test_daily_local_day(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 2, 3, IC_REFRESH_DAILY);
    ic_error err;
    const int32_t tz = 690; /* +11:30: local midnight is 12:30 UTC the day before */
    const int64_t M = 1699920000 - tz * 60; /* a local midnight */
    ic_event e = simple_event(M - 1, tz, 3, 11, 21, 31); /* 23:59:59 local */
    assert_int_equal(ic_clock_apply(s, &e, &err), IC_OK);
    ic_clock_view v;
    /* Seen from the next local midnight (the nightly job has run), not
     * during its own local day, even at its own second or later. */
    assert_int_equal(ic_clock_query(s, 3, M, tz, &v), 1);
    assert_int_equal(ic_clock_view_n(&v, 23, 0), 1);
    assert_int_equal(ic_clock_query(s, 3, M - 1, tz, &v), 0);
    /* In UTC (tz 0) M - 1 is 12:29:59, a day whose start is before it. */
    assert_int_equal(ic_clock_query(s, 3, M + 1, 0, &v), 0);
    /* From local midnight on: seen, for W days; from day W+1: gone. */
    assert_int_equal(ic_clock_query(s, 3, M + 2 * DAY - 1, tz, &v), 1);
    assert_int_equal(ic_clock_view_values(&v, 23, 0)[0], 11);
    assert_int_equal(ic_clock_query(s, 3, M + 2 * DAY, tz, &v), 0);
    ic_clock_free(s);
}

/* A window too long for light users' 24-bit times (W + 2 days >= 2^24 s):
 * every user gets a block at once, and clocks are the reference's. */
static void test_long_window_no_light_users(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 193, 3, IC_REFRESH_REALTIME);
    ic_error err;
    const int64_t T = 1700000000;
    ic_event log[40];
    for (int i = 0; i < 40; i++) log[i] = simple_event(T + (int64_t)i * 5 * DAY, 0, 3, 11 + i % 4, 21, 31);
    long places = 0;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(ic_clock_apply(s, &log[i], &err), IC_OK);
        assert_non_null(ic__clock_user_find(s, 3)->blk);
        places += check_query(s, &cfg, log, (size_t)i + 1, 3, log[i].ts + 1, 0);
    }
    assert_true(places > 100);
    ic_clock_free(s);
    /* One day shorter: the user is light. */
    s = new_store(&cfg, 192, 3, IC_REFRESH_REALTIME);
    assert_int_equal(ic_clock_apply(s, &log[0], &err), IC_OK);
    assert_null(ic__clock_user_find(s, 3)->blk);
    ic_clock_free(s);
}

/* A user that got a block (past 64 records) and then slowed down is
 * light again once its records fall to 32; its clocks match the reference
 * on both sides of each change. */
static void test_block_user_light_again(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 2, 3, IC_REFRESH_REALTIME);
    enum { BUSY = 40, QUIET = 20, N = BUSY + QUIET + 30 };
    ic_event log[N];
    const int64_t T = 1700000000;
    int64_t t = T;
    int was_big = 0, light_again = 0;
    long places = 0;
    for (int i = 0; i < N; i++) {
        /* 40 events half an hour apart (120 records), then one every 12
         * hours (at most 4 days x 2 x 3 = 24 records kept), then busy again. */
        t += i < BUSY || i >= BUSY + QUIET ? 1800 : 12 * 3600;
        log[i] = simple_event(t, -300, 77, 11 + (uint64_t)(i % 5), 21 + (uint64_t)(i % 3), 31 + (uint64_t)(i % 2));
        places += apply_between_checks(s, &cfg, log, (size_t)i, 60);
        const ic__clk_user *u = ic__clock_user_find(s, 77);
        if (u->blk) was_big = 1;
        else if (was_big) light_again = 1;
        assert_true(u->end - u->start <= (u->blk ? 4096u : IC__CLK_LIGHT_MAX));
    }
    assert_true(was_big && light_again);
    assert_non_null(ic__clock_user_find(s, 77)->blk); /* and big again at the end */
    assert_true(places > 1000);
    ic_clock_free(s);
}

/* Events with the most clock values an event may carry (IC_MAX_VALUES,
 * some repeated), for users with a block from their first event (small
 * record rings that must grow by more than one place at a time) and for
 * light users that pass their limit within one event: every clock as the
 * reference has it. */
static void test_events_with_many_values(void **state)
{
    (void)state;
    for (int light = 0; light < 2; light++) {
        ic_config cfg;
        ic_clock_store *s = new_store(&cfg, 2, 3, IC_REFRESH_REALTIME);
        if (!light) ic__clock_set_light_max(s, 0);
        enum { N = 40 };
        ic_event log[N];
        const int64_t T = 1700000000;
        const int per_field[3] = {20, 8, 4}; /* 32 = IC_MAX_VALUES */
        _Static_assert(20 + 8 + 4 == IC_MAX_VALUES, "fills an event");
        long places = 0;
        for (int i = 0; i < N; i++) {
            ic_event *e = &log[i];
            memset(e, 0, sizeof *e);
            e->ts = T + (int64_t)i * 5400, e->tz_min = 60, e->user = 9 + (uint64_t)(i % 2), e->item = 1;
            int n = 0;
            for (int f = 0; f < 3; f++) {
                e->voff[f] = (uint8_t)n;
                for (int j = 0; j < per_field[f]; j++) /* values shift with i; the last repeats the first */
                    e->val[n++] = 100 * (uint64_t)(f + 1) + (uint64_t)((j + i) % (per_field[f] - 1));
            }
            for (int f = 3; f <= IC_MAX_FIELDS; f++) e->voff[f] = (uint8_t)n;
            e->action[0] = 1, e->action[2] = (float)(i % 3 == 0);
            places += apply_between_checks(s, &cfg, log, (size_t)i, 1);
        }
        assert_true(places > 1000);
        /* The light run's users passed their 64 records within an event. */
        assert_non_null(ic__clock_user_find(s, 9)->blk);
        ic_clock_free(s);
    }
}

/* A user may hold at most ent_max (hour, field, value) pairs (2^24 - 2 in
 * a store; 100 here): an event that would take it past is IC_ERR_ARG,
 * names the user and adds nothing; events whose values it holds, or
 * whose pairs fit once old ones left the window, are applied. */
static void test_entry_limit(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 2, 3, IC_REFRESH_REALTIME);
    ic__clock_set_light_max(s, 0);
    ic__clock_set_ent_max(s, IC__CLK_LIGHT_MAX + 36); /* 100 */
    ic_error err;
    const int64_t T = 1700000000;
    /* 33 events at one hour, 3 new values each: 99 pairs. */
    for (int i = 0; i < 33; i++) {
        ic_event e = simple_event(T + i, 0, 5, 1000 + (uint64_t)i, 2000 + (uint64_t)i, 3000 + (uint64_t)i);
        assert_int_equal(ic_clock_apply(s, &e, &err), IC_OK);
    }
    ic_clock_view before, after;
    assert_int_equal(ic_clock_query(s, 5, T + 40, 0, &before), 1);
    ic_event over = simple_event(T + 40, 0, 5, 1100, 2100, 3100); /* 3 more: 102 */
    assert_int_equal(ic_clock_apply(s, &over, &err), IC_ERR_ARG);
    assert_non_null(strstr(err.msg, "0000000000000005"));
    assert_int_equal(ic_clock_query(s, 5, T + 41, 0, &after), 1);
    assert_true(views_equal(&before, &after, "nothing added"));
    ic_event known = simple_event(T + 41, 0, 5, 1000, 2000, 3000); /* held: applied */
    assert_int_equal(ic_clock_apply(s, &known, &err), IC_OK);
    ic_event one = simple_event(T + 42, 0, 5, 1000, 2000, 3999); /* 1 new: 100 */
    assert_int_equal(ic_clock_apply(s, &one, &err), IC_OK);
    /* Five days later the old pairs are gone (kept W + 2 days): room again. */
    ic_event later = simple_event(T + 5 * DAY, 0, 5, 1100, 2100, 3100);
    assert_int_equal(ic_clock_apply(s, &later, &err), IC_OK);
    assert_int_equal(ic_clock_query(s, 5, T + 5 * DAY + 1, 0, &after), 1);
    int h = ic_local_hour(T + 5 * DAY, 0);
    assert_true(ic_clock_view_n(&after, h, 0) == 1 && ic_clock_view_values(&after, h, 0)[0] == 1100);
    ic_clock_free(s);
}

/* A user whose pairs all fall in one hour (900 of them) against one with
 * as many spread over the 24: both equal the reference, and the hash
 * table keeps the crowded hour's region (slot_cap / 24 slots) at a load
 * of at most 3/4 (clock.c, "Hash slots by hour") while the spread user's
 * table stays as small as its pairs allow. */
static void test_hours_crowded(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 30, 3, IC_REFRESH_REALTIME);
    enum { N = 600 };
    ic_event *log = malloc(N * sizeof *log);
    const int64_t T = 1700000000 - 1700000000 % 86400; /* midnight UTC */
    long places = 0;
    for (int i = 0; i < N; i++) {
        const uint64_t user = 1 + (uint64_t)(i % 2), v = (uint64_t)i / 2;
        /* user 1: 300 events at 05:xx, 3 new values each; user 2: one an
         * hour, 12.5 days. */
        const int64_t t = user == 1 ? T + 5 * 3600 + i : T + (int64_t)(i / 2) * 3600;
        log[i] = simple_event(t, 0, user, 1000 + v, 2000 + v, 3000 + v);
    }
    /* In time order, as the store wants them. */
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && log[j].ts < log[j - 1].ts; j--) {
            ic_event x = log[j];
            log[j] = log[j - 1], log[j - 1] = x;
        }
    for (int i = 0; i < N; i++)
        if (i % 29 == 0 || i + 2 >= N) places += apply_between_checks(s, &cfg, log, (size_t)i, 60);
        else assert_int_equal(ic_clock_apply(s, &log[i], &(ic_error){0}), IC_OK);
    assert_true(places > 100);
    const ic__clk_user *crowded = ic__clock_user_find(s, 1), *spread = ic__clock_user_find(s, 2);
    assert_true(crowded->blk && spread->blk && crowded->n_ent == 900 && spread->n_ent == 900);
    assert_true(3ull * crowded->slot_cap >= 4ull * IC_HOURS * 900);
    assert_true(crowded->slot_cap <= 65536);
    assert_true(spread->slot_cap <= 2048);
    assert_int_equal(check_query(s, &cfg, log, N, 1, log[N - 1].ts + 1, 0), 3 * 3); /* 05:00's top 3, 3 fields */
    ic_clock_free(s);
    free(log);
}

/* ---- memory -------------------------------------------------------------------- */

/* Users whose records all left the window are forgotten and their memory
 * goes (light users and users with a block alike). */
static void test_inactive_users_forgotten(void **state)
{
    (void)state;
    for (int light = 1; light >= 0; light--) {
        ic_config cfg;
        ic_clock_store *s = new_store(&cfg, 30, 3, IC_REFRESH_REALTIME);
        ic__clock_set_light_max(s, light ? IC__CLK_LIGHT_MAX : 0);
        ic_error err;
        const int64_t T = 1700000000;
        for (int j = 0; j < 5; j++)
            for (uint64_t u = 1; u <= 200; u++) {
                ic_event e = simple_event(T + j, 0, u, 11 + j, 21, 31);
                assert_int_equal(ic_clock_apply(s, &e, &err), IC_OK);
            }
        assert_int_equal(ic_clock_n_users(s), 200);
        size_t full = ic_clock_bytes(s);
        /* One user stays active long after the window (an event every other
         * day: ~17 in its window): the sweep frees the rest. */
        for (int j = 0; j < 400; j++) {
            ic_event e = simple_event(T + 33 * DAY + j * 2 * DAY, 0, 500, 11, 21, 31);
            assert_int_equal(ic_clock_apply(s, &e, &err), IC_OK);
        }
        assert_int_equal(ic_clock_n_users(s), 1);
        size_t cursor = 0;
        uint64_t id = 0;
        assert_int_equal(ic_clock_next_user(s, &cursor, &id), 1);
        assert_int_equal(id, 500);
        assert_int_equal(ic_clock_next_user(s, &cursor, &id), 0);
        assert_true(ic_clock_bytes(s) * 4 < full);
        ic_clock_view v;
        assert_int_equal(ic_clock_query(s, 7, T + 834 * DAY, 0, &v), 0);
        ic_clock_free(s);
    }
    ic_clock_free(NULL);
}

/* A heavy user in steady state: memory follows the records of the last W + 2
 * days and stops growing once the window is full. */
static void test_memory_steady_state(void **state)
{
    (void)state;
    ic_config cfg;
    ic_clock_store *s = new_store(&cfg, 30, 3, IC_REFRESH_REALTIME);
    ic_error err;
    const int64_t T = 1700000000;
    size_t at45 = 0;
    ic_clock_view v;
    for (int i = 0; i < 90 * 144; i++) { /* every 10 minutes for 90 days */
        ic_event e = simple_event(T + i * 600, 0, 42, 11 + i % 7, 21 + i % 3, 31);
        ic_clock_query(s, 42, e.ts, 0, &v);
        assert_int_equal(ic_clock_apply(s, &e, &err), IC_OK);
        if (i == 45 * 144) at45 = ic_clock_bytes(s);
    }
    size_t at90 = ic_clock_bytes(s);
    /* 32 days of 3 records of 12 bytes, ring at most 4x its content. */
    assert_true(at90 < 32 * 144 * 3 * 12 * 4 + 64 * 1024);
    assert_true(at90 <= at45 + at45 / 2);
    ic_clock_free(s);
}

/* A user active without a break for longer than 2^32 seconds: record times
 * are 32-bit offsets from a per-user base, which must move (rebase) without
 * changing any result, also through save and load. Window 1 day, an event
 * every 2 days (so the user's records never all expire), about 140 years. */
static void test_time_base_moves(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 1, 3, IC_REFRESH_REALTIME);
    ic_clock_store *s, *s2;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, &cfg, &err), IC_OK);
    const size_t n = 25600; /* 25600 * 2 days > 2^32 s */
    ic_event *log = calloc(n, sizeof *log);
    const int64_t T = 1600000000;
    for (size_t i = 0; i < n; i++) log[i] = simple_event(T + (int64_t)i * 2 * DAY + (int64_t)(i % 24) * 3600, 0, 9, 11 + i % 5, 21, 31);
    long places = 0;
    for (size_t i = 0; i < n; i++) {
        /* The reference over the last few events only (the window is 1 day). */
        size_t from = i > 4 ? i - 4 : 0;
        int check = i % 97 == 0 || i + 3 >= n;
        if (check) places += check_query(s, &cfg, log + from, i + 1 - from, 9, log[i].ts, 0);
        assert_int_equal(ic_clock_apply(s, &log[i], &err), IC_OK);
        /* Half a day later: sees this event (3 places). */
        if (check) places += check_query(s, &cfg, log + from, i + 1 - from, 9, log[i].ts + DAY / 2, 0);
    }
    assert_true(places > 300);
    /* The base moved: the last record's time is more than 2^32 s after the
     * first event. */
    ic__clk_user *u = ic__clock_user_find(s, 9);
    assert_non_null(u);
    assert_true(u->base > T);
    char path[64];
    snprintf(path, sizeof path, "/tmp/ic_test_clock_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ic_clock_save(s, path, &err), IC_OK);
    assert_int_equal(ic_clock_load(&s2, path, &cfg, &err), IC_OK);
    ic_clock_view v1, v2;
    int64_t t = log[n - 1].ts + 1;
    assert_int_equal(ic_clock_query(s, 9, t, 0, &v1), 1);
    assert_int_equal(ic_clock_query(s2, 9, t, 0, &v2), 1);
    assert_true(views_equal(&v1, &v2, "rebased, after load"));
    places = check_query(s2, &cfg, log + n - 4, 4, 9, t, 0);
    assert_true(places > 0);
    ic_clock_free(s);
    ic_clock_free(s2);
    unlink(path);
    free(log);
}

/* The prefetch hint never changes a result: a replay in chunks with the
 * hint before every query, checked against the reference. */
static void test_prefetch_hint(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 2, 3, IC_REFRESH_REALTIME);
    rlog L = random_log(31, 3000, 12, 0, 2);
    ic_clock_store *s;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, &cfg, &err), IC_OK);
    long places = 0;
    const size_t chunk = 37;
    for (size_t off = 0; off < L.n; off += chunk) {
        size_t m = L.n - off < chunk ? L.n - off : chunk;
        for (size_t i = 0; i < m; i++) {
            const ic_event *e = &L.ev[off + i];
            ic_clock_prefetch(s, L.ev + off, m, i);
            places += check_query(s, &cfg, L.ev, L.n, e->user, e->ts, e->tz_min);
            assert_int_equal(ic_clock_apply(s, e, &err), IC_OK);
        }
    }
    /* Unknown users and an empty store are fine too. */
    ic_clock_store *empty;
    assert_int_equal(ic_clock_create(&empty, &cfg, &err), IC_OK);
    for (size_t i = 0; i < 10; i++) ic_clock_prefetch(empty, L.ev, 10, i);
    ic_clock_free(empty);
    assert_true(places > 5000);
    ic_clock_free(s);
    free(L.ev);
}

/* ---- save and load ------------------------------------------------------------ */

static void tmp_path(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/ic_test_clock_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
}

static void test_save_load_roundtrip(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 2, 3, IC_REFRESH_REALTIME);
    rlog L = random_log(21, 3000, 10, 0, 2);
    ic_clock_store *s, *s2;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, &cfg, &err), IC_OK);
    size_t half = L.n / 2;
    ic_clock_view v1, v2;
    for (size_t i = 0; i < half; i++) {
        ic_clock_query(s, L.ev[i].user, L.ev[i].ts, L.ev[i].tz_min, &v1);
        assert_int_equal(ic_clock_apply(s, &L.ev[i], &err), IC_OK);
    }
    char path[64];
    tmp_path(path, sizeof path);
    assert_int_equal(ic_clock_save(s, path, &err), IC_OK);
    assert_int_equal(ic_clock_load(&s2, path, &cfg, &err), IC_OK);
    assert_int_equal(ic_clock_n_users(s2), ic_clock_n_users(s));
    /* Users whose records fit load light, whatever they were when saved
     * (here most had a block), so the loaded store is no larger; the two
     * are compared below, events applied to both. */
    size_t light = 0, light2 = 0;
    for (size_t i = 0; i < s->n_users; i++) light += s->users[i].blk == NULL, light2 += s2->users[i].blk == NULL;
    assert_true(light2 > light && light2 < s2->n_users);
    assert_true(ic_clock_bytes(s2) < ic_clock_bytes(s));
    size_t cursor = 0;
    uint64_t id;
    while (ic_clock_next_user(s, &cursor, &id)) {
        assert_int_equal(ic_clock_query(s, id, L.ev[half].ts, 0, &v1),
                         ic_clock_query(s2, id, L.ev[half].ts, 0, &v2));
        assert_true(views_equal(&v1, &v2, "after load"));
    }
    /* Continue both: identical to each other and to the reference. */
    long places = 0;
    for (size_t i = half; i < L.n; i++) {
        const ic_event *e = &L.ev[i];
        places += check_query(s2, &cfg, L.ev, L.n, e->user, e->ts, e->tz_min);
        assert_int_equal(ic_clock_query(s, e->user, e->ts, e->tz_min, &v1),
                         ic_clock_query(s2, e->user, e->ts, e->tz_min, &v2));
        assert_true(views_equal(&v1, &v2, "continued"));
        assert_int_equal(ic_clock_apply(s, e, &err), IC_OK);
        assert_int_equal(ic_clock_apply(s2, e, &err), IC_OK);
    }
    assert_true(places > 1000);
    ic_clock_free(s2);

    /* Another configuration: IC_ERR_MISMATCH naming the setting. */
    ic_config other = cfg;
    other.window_days = 3;
    assert_int_equal(ic_clock_load(&s2, path, &other, &err), IC_ERR_MISMATCH);
    assert_null(s2);
    assert_non_null(strstr(err.msg, "window_days"));
    other = cfg, other.top_k = 2;
    assert_int_equal(ic_clock_load(&s2, path, &other, &err), IC_ERR_MISMATCH);
    other = cfg, other.action[2].weight = -2;
    assert_int_equal(ic_clock_load(&s2, path, &other, &err), IC_ERR_MISMATCH);
    assert_non_null(strstr(err.msg, "skip"));
    other = cfg, other.clock_field[1] = 2, other.clock_field[2] = 1;
    assert_int_equal(ic_clock_load(&s2, path, &other, &err), IC_ERR_MISMATCH);
    other = cfg, other.n_clock = 2;
    assert_int_equal(ic_clock_load(&s2, path, &other, &err), IC_ERR_MISMATCH);
    /* The refresh mode is not part of the saved state. */
    other = cfg, other.refresh = IC_REFRESH_DAILY;
    assert_int_equal(ic_clock_load(&s2, path, &other, &err), IC_OK);
    ic_clock_free(s2);
    assert_int_equal(ic_clock_load(&s2, "/nonexistent/clock.bin", &cfg, &err), IC_ERR_IO);
    ic_clock_free(s);
    unlink(path);
    free(L.ev);
}

/* A small saved store: a few users, events, entries. */
static void small_store_file(const char *path, const ic_config *cfg)
{
    ic_clock_store *s;
    ic_error err;
    assert_int_equal(ic_clock_create(&s, cfg, &err), IC_OK);
    rlog L = random_log(5, 12, 3, 0, 30);
    for (size_t i = 0; i < L.n; i++) assert_int_equal(ic_clock_apply(s, &L.ev[i], &err), IC_OK);
    assert_int_equal(ic_clock_save(s, path, &err), IC_OK);
    ic_clock_free(s);
    free(L.ev);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void write_bytes(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_damaged_files(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 30, 3, IC_REFRESH_REALTIME);
    char path[64];
    tmp_path(path, sizeof path);
    small_store_file(path, &cfg);
    long n = file_size(path);
    assert_true(n > 400);
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    ic_clock_store *s2;
    ic_error err;
    /* The intact bytes load (so the failures below are the damage's). */
    write_bytes(path, buf, (size_t)n);
    assert_int_equal(ic_clock_load(&s2, path, &cfg, &err), IC_OK);
    ic_clock_free(s2);
    /* Every cut point. */
    for (long cut = 0; cut < n; cut++) {
        write_bytes(path, buf, (size_t)cut);
        assert_int_equal(ic_clock_load(&s2, path, &cfg, &err), IC_ERR_CORRUPT);
        assert_null(s2);
    }
    /* Every byte flipped. */
    for (long i = 0; i < n; i++) {
        buf[i] ^= 0x5a;
        write_bytes(path, buf, (size_t)n);
        ic_status st = ic_clock_load(&s2, path, &cfg, &err);
        assert_true(st == IC_ERR_CORRUPT || st == IC_ERR_MISMATCH);
        assert_null(s2);
        buf[i] ^= 0x5a;
    }
    free(buf);
    unlink(path);
}

/* Rewrites the payload of a saved store with byte i xor-ed and a valid
 * checksum: the loader's own checks must catch what the checksum no longer
 * does, or the store must load and work. */
static void test_consistent_checksum_fuzz(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 30, 3, IC_REFRESH_REALTIME);
    char path[64];
    tmp_path(path, sizeof path);
    small_store_file(path, &cfg);
    ic_breader r;
    ic_error err;
    static const char MAGIC[8] = {'I', 'C', 'C', 'L', 'O', 'C', 'K', '1'};
    assert_int_equal(ic__br_open(&r, path, MAGIC, 1, &err), IC_OK);
    size_t len = r.len;
    unsigned char *p = malloc(len);
    assert_int_equal(ic__br_read(&r, p, len, &err), IC_OK);
    ic__br_close(&r);
    int loaded = 0, refused = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            p[i] ^= (unsigned char)(1u << bit);
            ic_bwriter w;
            assert_int_equal(ic__bw_open(&w, path, MAGIC, 1, &err), IC_OK);
            ic__bw_write(&w, p, len);
            assert_int_equal(ic__bw_commit(&w, &err), IC_OK);
            p[i] ^= (unsigned char)(1u << bit);
            ic_clock_store *s2;
            ic_status st = ic_clock_load(&s2, path, &cfg, &err);
            if (st != IC_OK) {
                assert_true(st == IC_ERR_CORRUPT || st == IC_ERR_MISMATCH);
                assert_null(s2);
                refused++;
                continue;
            }
            /* Loaded (e.g. a changed value id or delta): usable. */
            loaded++;
            ic_clock_view v;
            size_t cursor = 0;
            uint64_t id;
            while (ic_clock_next_user(s2, &cursor, &id))
                ic_clock_query(s2, id, s2->last_ts + 1, 0, &v);
            ic_clock_free(s2);
        }
    /* Both kinds happen: config/count/index bytes are refused. */
    assert_true(refused > 100);
    assert_true(loaded > 10);
    free(p);
    unlink(path);
}

/* The file keeps a record per clock value, and the ring an event per
 * event: the records after an event's first must carry its time and
 * score. A payload (valid checksum) whose second record has another time
 * is refused with a message, for a user that loads light (one event) and
 * one that loads with a block (70 events, 210 records); the intact
 * payload loads to the same clock. */
static void test_event_records_checked(void **state)
{
    (void)state;
    static const char MAGIC[8] = {'I', 'C', 'C', 'L', 'O', 'C', 'K', '1'};
    const int64_t T = 1700000000;
    for (int light = 0; light < 2; light++) {
        ic_config cfg;
        ic_clock_store *s = new_store(&cfg, 30, 3, IC_REFRESH_REALTIME), *s2;
        ic_error err;
        const int events = light ? 1 : 70;
        for (int i = 0; i < events; i++) {
            ic_event e = simple_event(T + 60 * i, 60, 5, 11 + (uint64_t)(i % 4), 21, 31 + (uint64_t)(i % 3));
            assert_int_equal(ic_clock_apply(s, &e, &err), IC_OK);
        }
        char path[64];
        tmp_path(path, sizeof path);
        assert_int_equal(ic_clock_save(s, path, &err), IC_OK);
        ic_breader r;
        assert_int_equal(ic__br_open(&r, path, MAGIC, 1, &err), IC_OK);
        size_t len = r.len;
        unsigned char *p = malloc(len);
        assert_int_equal(ic__br_read(&r, p, len, &err), IC_OK);
        ic__br_close(&r);
        /* The first event's time: once per record (and before them as the
         * store's last_ts when it is the only event); at[n - 2] is its
         * second record's. */
        size_t at[4], n = 0;
        for (size_t i = 0; i + 8 <= len && n < 4; i++)
            if (memcmp(p + i, &T, 8) == 0) at[n++] = i;
        assert_int_equal(n, light ? 4 : 3);
        for (int damage = 0; damage < 2; damage++) {
            int64_t t2 = T - damage;
            memcpy(p + at[n - 2], &t2, 8);
            ic_bwriter w;
            assert_int_equal(ic__bw_open(&w, path, MAGIC, 1, &err), IC_OK);
            ic__bw_write(&w, p, len);
            assert_int_equal(ic__bw_commit(&w, &err), IC_OK);
            ic_status st = ic_clock_load(&s2, path, &cfg, &err);
            if (damage) {
                assert_int_equal(st, IC_ERR_CORRUPT);
                assert_null(s2);
                assert_non_null(strstr(err.msg, "does not continue its event"));
                continue;
            }
            assert_int_equal(st, IC_OK);
            assert_true((ic__clock_user_find(s2, 5)->blk == NULL) == light);
            ic_clock_view v1, v2;
            const int64_t t = T + 60 * events;
            assert_int_equal(ic_clock_query(s, 5, t, 60, &v1), 1);
            assert_int_equal(ic_clock_query(s2, 5, t, 60, &v2), 1);
            assert_true(views_equal(&v1, &v2, "an event's records, loaded"));
            assert_true(v2.n_lists >= 3);
            ic_clock_free(s2);
        }
        free(p);
        unlink(path);
        ic_clock_free(s);
    }
}

/* ---- views -------------------------------------------------------------------- */

/* The view's accessors and writers: places read back as set, a list set
 * twice is one list, an empty list equals no list, equality sees every
 * value, score, count and the shape, and a struct copy is a clock of its
 * own. */
static void test_view_api(void **state)
{
    (void)state;
    ic_clock_view a, b;
    ic_clock_view_init(&a, 2, 3);
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < 2; f++) assert_int_equal(ic_clock_view_n(&a, h, f), 0);
    assert_null(ic_clock_view_values(&a, 5, 1));
    ic_clock_view_set(&a, 5, 1, 3, (uint64_t[]){7, 9, 8}, (float[]){3, 2.5f, 2.5f});
    ic_clock_view_set(&a, 23, 0, 1, (uint64_t[]){UINT64_MAX}, (float[]){0.125f});
    assert_int_equal(ic_clock_view_n(&a, 5, 1), 3);
    assert_int_equal(ic_clock_view_n(&a, 5, 0), 0);
    assert_true(ic_clock_view_values(&a, 5, 1)[2] == 8 && ic_clock_view_scores(&a, 5, 1)[1] == 2.5f);
    assert_true(ic_clock_view_values(&a, 23, 0)[0] == UINT64_MAX && ic_clock_view_scores(&a, 23, 0)[0] == 0.125f);
    ic_clock_view_set(&a, 5, 1, 1, (uint64_t[]){4}, (float[]){1});
    assert_int_equal(a.n_lists, 2);
    assert_true(ic_clock_view_n(&a, 5, 1) == 1 && ic_clock_view_values(&a, 5, 1)[0] == 4);
    assert_true(ic_clock_view_n(&a, 23, 0) == 1 && ic_clock_view_values(&a, 23, 0)[0] == UINT64_MAX);

    b = a; /* a copy holds its own places */
    assert_true(ic_clock_view_equal(&a, &b));
    ic_clock_view_set(&b, 0, 0, 0, NULL, NULL); /* an empty list: the same clock */
    assert_int_equal(b.n_lists, 3);
    assert_true(ic_clock_view_equal(&a, &b) && ic_clock_view_equal(&b, &a));
    ic_clock_view_set(&b, 5, 1, 1, (uint64_t[]){4}, (float[]){1.0000001f});
    assert_false(ic_clock_view_equal(&a, &b));
    assert_true(ic_clock_view_scores(&a, 5, 1)[0] == 1.0f);
    ic_clock_view_set(&b, 5, 1, 1, (uint64_t[]){5}, (float[]){1});
    assert_false(ic_clock_view_equal(&a, &b));
    ic_clock_view_set(&b, 5, 1, 2, (uint64_t[]){4, 6}, (float[]){1, 1});
    assert_false(ic_clock_view_equal(&a, &b));
    ic_clock_view_set(&b, 5, 1, 1, (uint64_t[]){4}, (float[]){1});
    assert_true(ic_clock_view_equal(&a, &b));
    b.k = 4;
    assert_false(ic_clock_view_equal(&a, &b));

    /* Every list a view can hold: 24 x 4 at the largest k. */
    ic_clock_view_init(&a, IC_MAX_CLOCK_FIELDS, IC_MAX_TOPK);
    uint64_t val[IC_MAX_TOPK];
    float sc[IC_MAX_TOPK];
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < IC_MAX_CLOCK_FIELDS; f++) {
            for (int i = 0; i < IC_MAX_TOPK; i++) val[i] = (uint64_t)(h * 100 + f * 10 + i), sc[i] = (float)(IC_MAX_TOPK - i);
            ic_clock_view_set(&a, h, f, IC_MAX_TOPK, val, sc);
        }
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < IC_MAX_CLOCK_FIELDS; f++) {
            assert_int_equal(ic_clock_view_n(&a, h, f), IC_MAX_TOPK);
            assert_true(ic_clock_view_values(&a, h, f)[IC_MAX_TOPK - 1] == (uint64_t)(h * 100 + f * 10 + IC_MAX_TOPK - 1));
            assert_true(ic_clock_view_scores(&a, h, f)[0] == (float)IC_MAX_TOPK);
        }
}

/* ---- the SVG dial -------------------------------------------------------------- */

static void test_plot_svg(void **state)
{
    (void)state;
    ic_config cfg;
    base_config(&cfg, 30, 3, IC_REFRESH_REALTIME);
    ic_clock_view v;
    ic_clock_view_init(&v, 3, 3);
    ic_clock_view_set(&v, 7, 0, 2, (uint64_t[]){11, 12}, (float[]){3, 1});
    ic_clock_view_set(&v, 20, 2, 1, (uint64_t[]){0xabcdef}, (float[]){1});
    ic_names *names = ic_names_create();
    ic_names_put(names, 11, "r&b <soul>", 10);
    char path[64];
    tmp_path(path, sizeof path);
    FILE *f = fopen(path, "w+");
    ic_error err;
    assert_int_equal(ic_plot_clock_svg(f, &v, &cfg, names, "a \"title\"", &err), IC_OK);
    long n = ftell(f);
    char *buf = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "</svg>\n"));
    /* Escaped name and title; an unnamed id in hex; every hour labelled. */
    assert_non_null(strstr(buf, "r&amp;b &lt;soul&gt;"));
    assert_null(strstr(buf, "<soul>"));
    assert_non_null(strstr(buf, "a &quot;title&quot;"));
    assert_non_null(strstr(buf, "0000000000abcdef"));
    for (int h = 0; h < 24; h++) {
        char lab[32];
        snprintf(lab, sizeof lab, ">%02d</text>", h);
        assert_non_null(strstr(buf, lab));
    }
    /* 24 sectors per ring, 3 rings: 72 wedges. */
    int wedges = 0;
    for (char *p = buf; (p = strstr(p, "<path")); p++) wedges++;
    assert_int_equal(wedges, 72);
    free(buf);
    ic_names_free(names);
    unlink(path);

    /* Colours: 13 distinct top values in one ring, one value an hour then
     * repeating: 13 different fills (12 palette colours, then a hue), and
     * a value's wedges share its legend swatch's colour. */
    ic_clock_view_init(&v, 1, 3);
    for (int h = 0; h < 24; h++) ic_clock_view_set(&v, h, 0, 1, (uint64_t[]){1000 + (uint64_t)(h % 13)}, (float[]){1});
    f = fopen(path, "w+");
    assert_int_equal(ic_plot_clock_svg(f, &v, &cfg, NULL, NULL, &err), IC_OK);
    n = ftell(f);
    buf = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    unlink(path);
    char fills[24][32];
    int nf = 0;
    for (char *p = buf; (p = strstr(p, "<path")); p++) { /* the 24 wedges, by hour */
        char *q = strstr(p, "fill=\"");
        assert_non_null(q);
        assert_true(nf < 24);
        assert_int_equal(sscanf(q + 6, "%31[^\"]", fills[nf]), 1);
        nf++;
    }
    assert_int_equal(nf, 24);
    for (int a = 0; a < 24; a++)
        for (int b = 0; b < 24; b++)
            assert_int_equal(strcmp(fills[a], fills[b]) == 0, a % 13 == b % 13);
    for (int h = 0; h < 13; h++) { /* the legend lists them in the same order, same colours */
        char sw[96];
        snprintf(sw, sizeof sw, "fill=\"%.31s\" stroke=\"#555\"", fills[h]);
        assert_non_null(strstr(buf, sw));
    }
    /* The first twelve are #rrggbb colours far apart (at least 25 in RGB
     * distance): a hash of the ids once gave two values near-equal ones. */
    for (int a = 0; a < 12; a++)
        for (int b = a + 1; b < 12; b++) {
            unsigned ra, ga, ba, rb, gb, bb;
            assert_int_equal(sscanf(fills[a], "#%2x%2x%2x", &ra, &ga, &ba), 3);
            assert_int_equal(sscanf(fills[b], "#%2x%2x%2x", &rb, &gb, &bb), 3);
            double d2 = ((double)ra - rb) * ((double)ra - rb) + ((double)ga - gb) * ((double)ga - gb) +
                        ((double)ba - bb) * ((double)ba - bb);
            assert_true(d2 >= 25.0 * 25.0);
        }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_edges_realtime),
        cmocka_unit_test(test_negative_and_hours),
        cmocka_unit_test(test_ties_as_shown),
        cmocka_unit_test(test_daily_local_day),
        cmocka_unit_test(test_property_default_weights),
        cmocka_unit_test(test_property_other_shapes),
        cmocka_unit_test(test_long_window_no_light_users),
        cmocka_unit_test(test_events_with_many_values),
        cmocka_unit_test(test_block_user_light_again),
        cmocka_unit_test(test_entry_limit),
        cmocka_unit_test(test_hours_crowded),
        cmocka_unit_test(test_inactive_users_forgotten),
        cmocka_unit_test(test_memory_steady_state),
        cmocka_unit_test(test_time_base_moves),
        cmocka_unit_test(test_prefetch_hint),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_consistent_checksum_fuzz),
        cmocka_unit_test(test_event_records_checked),
        cmocka_unit_test(test_view_api),
        cmocka_unit_test(test_plot_svg),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
