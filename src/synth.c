/* synth.c: a deterministic, seeded music-listening simulator.
 *
 * It builds a catalogue (items with genre, mood, language, quality and a
 * Zipf popularity) and a population (users in several time zones, each with
 * an activity profile, a time-independent taste and a daily rhythm of a few
 * listening modes), then walks day by day: active users open sessions, a
 * logging policy picks each impression (popularity mixed with the user's
 * taste at that local hour), and a logistic model draws the feedback. Events
 * are buffered, sorted by (ts, user, order) and handed out day by day, so
 * memory holds about two days of events. docs/SIMULATOR.md describes the
 * model and its parameter values; they are the constants below.
 *
 * Determinism: every random draw comes from splitmix streams keyed by
 * (seed, what, user or item, local day), and the only floating-point
 * operations are +, -, *, /, sqrt, fabs, floor, frexp and scaling by powers
 * of two, which IEEE-754 defines exactly; exp and log are our own
 * polynomials (dexp, dlog), not libm's. With -std=c17 GCC does not contract
 * a*b+c into FMA; a build that does (-ffp-contract=fast with FMA) was
 * measured to give the same bytes too, since decisions compare a uniform
 * draw with a probability and a last-bit difference almost never flips one.
 *
 * Deliberately not here: reading logs, any feature engineering, weekly
 * (day-of-week) patterns or taste drift over the weeks. */
#include "internal.h"

#include <errno.h>
#include <math.h>

#define NG IC_SYNTH_GENRES
#define NM IC_SYNTH_MOODS
#define NL IC_SYNTH_LANGS
#define NPREF (NG + NM + NL) /* a preference vector: genres, then moods, then languages */
#define OFF_MOOD NG
#define OFF_LANG (NG + NM)
#define N_MODES 5

/* ---- Model constants (docs/SIMULATOR.md lists them) ---------------------- */

#define ZIPF_S 0.9          /* popularity of rank r ~ (r + ZIPF_OFF)^-ZIPF_S */
#define ZIPF_OFF 10.0
#define P_SECOND_GENRE 0.05 /* items with a second genre */
#define P_GENRE_MOOD 0.6    /* item mood drawn from its genre's two moods */
#define QUALITY_SD 0.5

#define P_ACTIVE_MIN 0.25   /* a user is active on a day with p ~ U(0.25, 0.85) */
#define P_ACTIVE_SPAN 0.6
#define P_MORE_SESSIONS 0.5 /* sessions per active day: 1 + geometric, mean 2 */
#define MAX_SESSIONS 8
#define MAX_PLAYS 500
#define SESSION_GAP 600     /* seconds between the end of a session and the next */
#define CHRONO_SD 1.2       /* hours a user's activity curve is shifted by */

#define MODE_STRENGTH 2.5   /* weight of the current modes' preferences at rhythm 1 */
#define PEAK_JITTER_SD 0.75 /* hours */

#define N_CAND 10           /* policy candidates per impression */
#define P_EXPLORE 0.2       /* impressions drawn by popularity alone */
#define P_GENRE_CHANNEL 0.5 /* candidates retrieved through a genre the user likes now */
#define POLICY_QUALITY 0.5  /* how much of an item's quality the policy sees */

/* Finish logit: FIN_BIAS + FIN_BIAS_RHYTHM*rhythm + user bias + FIN_TASTE*taste
 * + quality. The rhythm term offsets the taste the current modes add, so
 * the finish rate is about the same at any rhythm. */
#define FIN_BIAS -1.1
#define FIN_BIAS_RHYTHM -1.3
#define FIN_TASTE 0.8
#define USER_BIAS_SD 0.4
#define LIKE_SHIFT 2.8      /* like | finish ~ sigmoid(z - LIKE_SHIFT) */
#define SKIP_BIAS 1.6       /* skip | not finished ~ sigmoid(SKIP_BIAS - SKIP_Z*z) */
#define SKIP_Z 0.5
#define DISLIKE_SHIFT 4.2   /* dislike | skip ~ sigmoid(-z - DISLIKE_SHIFT) */

/* ---- Vocabularies -------------------------------------------------------- */

enum { POP, ROCK, HIPHOP, RNB, ELECTRONIC, DANCE, JAZZ, CLASSICAL, FOLK, COUNTRY,
       METAL, INDIE, SOUL, BLUES, REGGAE, LATIN, KPOP, AMBIENT, LOFI, PUNK };
enum { CALM, SAD, HAPPY, ENERGETIC, ROMANTIC, FOCUS, DREAMY, ANGRY };
enum { EN, ZH, ES, JA, KO };

static const char *const genre_names[NG] = {
    "pop", "rock", "hiphop", "rnb", "electronic", "dance", "jazz", "classical", "folk", "country",
    "metal", "indie", "soul", "blues", "reggae", "latin", "kpop", "ambient", "lofi", "punk"};
static const double genre_share[NG] = {.14, .09, .09, .06, .07, .05, .04, .04, .04, .04,
                                       .03, .05, .03, .02, .02, .05, .05, .03, .04, .02};
/* The two moods an item of each genre most often has. */
static const int8_t genre_moods[NG][2] = {
    {HAPPY, ROMANTIC}, {ENERGETIC, ANGRY}, {ENERGETIC, ANGRY}, {ROMANTIC, DREAMY},
    {ENERGETIC, FOCUS}, {HAPPY, ENERGETIC}, {CALM, ROMANTIC}, {CALM, FOCUS},
    {CALM, SAD}, {SAD, HAPPY}, {ANGRY, ENERGETIC}, {DREAMY, SAD}, {ROMANTIC, SAD},
    {SAD, CALM}, {HAPPY, CALM}, {HAPPY, ROMANTIC}, {HAPPY, ENERGETIC}, {CALM, FOCUS},
    {FOCUS, DREAMY}, {ANGRY, ENERGETIC}};
static const char *const mood_names[NM] = {"calm", "sad", "happy", "energetic",
                                           "romantic", "focus", "dreamy", "angry"};
static const char *const lang_names[NL] = {"en", "zh", "es", "ja", "ko"};
static const double lang_share[NL] = {.45, .25, .12, .09, .09};

/* Time zones: UTC offset, share of users, and their native languages. */
typedef struct {
    int32_t tz_min;
    double share;
    double native[NL];
} zone;
#define N_ZONES 8
#define MAX_TZ_MIN 540
static const zone zones[N_ZONES] = {
    {-480, .08, {.85, 0, .15, 0, 0}}, {-300, .14, {.80, 0, .20, 0, 0}},
    {-180, .10, {.10, 0, .90, 0, 0}}, {0, .10, {1, 0, 0, 0, 0}},
    {60, .12, {.60, 0, .40, 0, 0}},   {330, .10, {1, 0, 0, 0, 0}},
    {480, .24, {0, 1, 0, 0, 0}},      {540, .12, {0, 0, 0, .90, .10}}};

/* Global activity by local hour (relative weights). */
static const double activity_curve[24] = {2.0, 1.2, 0.6, 0.3, 0.3, 0.6, 1.5, 3.0,
                                          3.5, 2.5, 2.0, 2.2, 3.0, 2.6, 2.0, 2.0,
                                          2.4, 3.2, 3.5, 3.6, 4.0, 4.2, 3.8, 3.0};

/* The daily listening modes. Each is a Gaussian bump over the 24h circle
 * (two bumps for the commute) with the genres and moods it draws from. */
typedef struct {
    const char *name;
    double peak[2]; /* local hours; peak[1] < 0: one bump */
    double width;   /* sd in hours */
    int8_t genres[8];
    int8_t moods[4];
    int second_lang; /* 1: prefers the user's second language */
} mode_template;
static const mode_template modes[N_MODES] = {
    {"dawn", {6.5, -1}, 1.5, {AMBIENT, CLASSICAL, FOLK, JAZZ, LOFI, -1}, {CALM, SAD, -1}, 0},
    {"commute", {8.5, 18.0}, 1.0, {POP, DANCE, ELECTRONIC, HIPHOP, ROCK, KPOP, -1},
     {ENERGETIC, HAPPY, -1}, 0},
    {"work", {13.0, -1}, 2.2, {LOFI, CLASSICAL, AMBIENT, ELECTRONIC, JAZZ, -1},
     {FOCUS, CALM, -1}, 0},
    {"evening", {20.5, -1}, 1.3, {POP, RNB, SOUL, LATIN, DANCE, COUNTRY, REGGAE, -1},
     {HAPPY, ROMANTIC, -1}, 0},
    {"night", {0.5, -1}, 1.8, {INDIE, RNB, LOFI, METAL, BLUES, PUNK, -1},
     {SAD, DREAMY, ANGRY, -1}, 1},
};

const char *ic_synth_genre_name(int g) { return g >= 0 && g < NG ? genre_names[g] : NULL; }
const char *ic_synth_mood_name(int m) { return m >= 0 && m < NM ? mood_names[m] : NULL; }
const char *ic_synth_lang_name(int l) { return l >= 0 && l < NL ? lang_names[l] : NULL; }

/* ---- Options ------------------------------------------------------------- */

void ic_synth_opts_default(ic_synth_opts *o)
{
    o->n_users = 2000;
    o->n_items = 10000;
    o->n_days = 56;
    o->seed = 1;
    o->rhythm = 1.0;
    o->start = 1690848000; /* 2023-08-01T00:00:00Z */
    o->events_per_day = 10.0;
}

ic_status ic_synth_check(const ic_synth_opts *o, ic_error *err)
{
    if (o->n_users < 1 || o->n_users > 1000000)
        return ic__fail(err, IC_ERR_ARG, "users: %d is outside 1..1000000", o->n_users);
    if (o->n_items < 1 || o->n_items > 10000000)
        return ic__fail(err, IC_ERR_ARG, "items: %d is outside 1..10000000", o->n_items);
    if (o->n_days < 1 || o->n_days > 3660)
        return ic__fail(err, IC_ERR_ARG, "days: %d is outside 1..3660", o->n_days);
    if (!(o->rhythm >= 0.0 && o->rhythm <= 1.0))
        return ic__fail(err, IC_ERR_ARG, "rhythm: %g is outside [0, 1]", o->rhythm);
    if (!(o->events_per_day >= 2.0 && o->events_per_day <= 1000.0))
        return ic__fail(err, IC_ERR_ARG, "events-per-day: %g is outside [2, 1000]",
                        o->events_per_day);
    /* Keep every generated time far from int64 overflow. */
    if (o->start < -((int64_t)1 << 50) || o->start > ((int64_t)1 << 50))
        return ic__fail(err, IC_ERR_ARG, "start: %lld is too far from 1970",
                        (long long)o->start);
    return IC_OK;
}

/* ---- Deterministic arithmetic and sampling -------------------------------- */

/* exp(x) from a range reduction and a Taylor polynomial: relative error
 * below 1e-15, and the same bits on every IEEE-754 machine. */
static double dexp(double x)
{
    if (x < -700.0) return 0.0;
    if (x > 700.0) x = 700.0;
    double k = floor(x * 1.4426950408889634 + 0.5);
    double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    /* 1/n! for n = 11..0, rounded once by the compiler */
    static const double inv_fact[12] = {1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                        1.0 / 40320.0,    1.0 / 5040.0,    1.0 / 720.0,
                                        1.0 / 120.0,      1.0 / 24.0,      1.0 / 6.0,
                                        1.0 / 2.0,        1.0,             1.0};
    double p = 1.0 / 479001600.0; /* 1/12! */
    for (int i = 0; i < 12; i++) p = p * r + inv_fact[i];
    /* times 2^k, exactly (|k| <= 1010 keeps 2^k and the result normal) */
    union {
        double d;
        uint64_t u;
    } two_k = {.u = (uint64_t)(1023 + (int64_t)k) << 52};
    return p * two_k.d;
}

/* log(x) for x > 0 from the atanh series on [sqrt(1/2), sqrt(2)). */
static double dlog(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752) {
        m *= 2.0;
        e--;
    }
    double f = (m - 1.0) / (m + 1.0), f2 = f * f, s = 0.0;
    for (int n = 23; n >= 1; n -= 2) s = s * f2 + 1.0 / n;
    return e * 0.69314718055994531 + 2.0 * f * s;
}

static double sigmoid(double z) { return 1.0 / (1.0 + dexp(-z)); }

static double unif(ic_rng *r) { return ic__rng_uniform(r); }

/* N(0, 1) by Marsaglia's polar method (dlog and sqrt only). */
static double rnorm(ic_rng *r)
{
    for (;;) {
        double u = 2.0 * unif(r) - 1.0, v = 2.0 * unif(r) - 1.0, s = u * u + v * v;
        if (s > 0.0 && s < 1.0) return u * sqrt(-2.0 * dlog(s) / s);
    }
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

enum { TAG_ITEM = 1, TAG_PERM, TAG_USER, TAG_DAY };

/* An independent stream for (seed, tag, a, b). */
static void stream(ic_rng *r, uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
    ic__rng_seed(r, mix64(mix64(mix64(seed + tag * 0x9E3779B97F4A7C15ull) ^ a) + b));
}

/* An index drawn with probability w[i] / sum(w), w (n), sum > 0. */
static int pick(const double *w, int n, ic_rng *r)
{
    double tot = 0.0;
    for (int i = 0; i < n; i++) tot += w[i];
    double u = unif(r) * tot;
    for (int i = 0; i < n; i++) {
        if (u < w[i]) return i;
        u -= w[i];
    }
    for (int i = n - 1; i >= 0; i--) /* rounding left u just past the end */
        if (w[i] > 0.0) return i;
    IC_ASSERT(0 && "pick: all weights are zero");
    return 0;
}

/* An index i in [0, n) with P = (cdf[i] - cdf[i-1]) / cdf[n-1], cdf (n). */
static uint32_t pick_cdf(const double *cdf, uint32_t n, ic_rng *r)
{
    double u = unif(r) * cdf[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* ---- The world: items and users ------------------------------------------ */

typedef struct {
    int8_t genre[2], mood, lang;
    float quality;
} item;

typedef struct {
    double peak, width, weight; /* peak of the first bump (hours) */
    float pref[NPREF];
} user_mode;

typedef struct {
    int32_t tz;
    int8_t native, second;
    float p_active, bias;
    double act_cdf[24];      /* cumulative activity over local hours */
    float taste[NPREF];      /* time-independent */
    float avg_pref[NPREF];   /* taste plus the activity-weighted daily mean of the modes */
    user_mode mode[N_MODES];
} user;

typedef struct {
    ic_synth_opts o;
    item *items;        /* (M) */
    double *pop_cdf;    /* (M) cumulative popularity in item order */
    uint32_t goff[NG + 1];
    uint32_t *gitem;    /* (goff[NG]) items of each genre, by genre */
    double *gcdf;       /* (goff[NG]) cumulative popularity within each genre */
    user *users;        /* (N) */
    int64_t *busy;      /* (N) end of each user's last session */
    float shift[24][NPREF]; /* population mean of pref_at(h + 0.5) - avg_pref */
} world;

static void build_item(const world *w, uint32_t i, item *it)
{
    ic_rng r;
    stream(&r, w->o.seed, TAG_ITEM, i, 0);
    int g = pick(genre_share, NG, &r);
    it->genre[0] = (int8_t)g;
    it->genre[1] = -1;
    if (unif(&r) < P_SECOND_GENRE) {
        double s[NG];
        memcpy(s, genre_share, sizeof s);
        s[g] = 0.0;
        it->genre[1] = (int8_t)pick(s, NG, &r);
    }
    double u = unif(&r);
    it->mood = (int8_t)(u < P_GENRE_MOOD ? genre_moods[g][u < P_GENRE_MOOD / 2]
                                         : (int)(unif(&r) * NM));
    if (g == KPOP && unif(&r) < 0.9) it->lang = KO;
    else if (g == LATIN && unif(&r) < 0.85) it->lang = ES;
    else it->lang = (int8_t)pick(lang_share, NL, &r);
    it->quality = (float)(QUALITY_SD * rnorm(&r));
}

/* Zipf popularity over a random ranking of the items, and the per-genre
 * lists the policy's genre channel retrieves from. */
static void build_popularity(world *w)
{
    uint32_t M = (uint32_t)w->o.n_items;
    uint32_t *rank = ic__xmalloc(M * sizeof *rank);
    for (uint32_t i = 0; i < M; i++) rank[i] = i;
    ic_rng r;
    stream(&r, w->o.seed, TAG_PERM, M, 0);
    for (uint32_t i = M - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(unif(&r) * (i + 1));
        uint32_t t = rank[i];
        rank[i] = rank[j];
        rank[j] = t;
    }
    double *pop = ic__xmalloc(M * sizeof *pop), acc = 0.0;
    for (uint32_t i = 0; i < M; i++) {
        pop[i] = dexp(-ZIPF_S * dlog(rank[i] + ZIPF_OFF));
        w->pop_cdf[i] = acc += pop[i];
    }
    uint32_t cnt[NG] = {0};
    for (uint32_t i = 0; i < M; i++)
        for (int k = 0; k < 2 && w->items[i].genre[k] >= 0; k++) cnt[w->items[i].genre[k]]++;
    w->goff[0] = 0;
    for (int g = 0; g < NG; g++) w->goff[g + 1] = w->goff[g] + cnt[g];
    w->gitem = ic__xmalloc((w->goff[NG] + 1) * sizeof *w->gitem);
    w->gcdf = ic__xmalloc((w->goff[NG] + 1) * sizeof *w->gcdf);
    uint32_t fill[NG];
    double gacc[NG] = {0};
    memcpy(fill, w->goff, sizeof fill);
    for (uint32_t i = 0; i < M; i++)
        for (int k = 0; k < 2 && w->items[i].genre[k] >= 0; k++) {
            int g = w->items[i].genre[k];
            w->gitem[fill[g]] = i;
            /* a two-genre item is half in each list, as likely as any other */
            w->gcdf[fill[g]++] = gacc[g] += w->items[i].genre[1] >= 0 ? 0.5 * pop[i] : pop[i];
        }
    free(pop);
    free(rank);
}

/* How present mode m is at local hour h (0..24): Gaussian bumps over the
 * circular distance to its peak(s). Unnormalised. */
static double mode_bump(const user_mode *um, int m, double h)
{
    double best = 0.0;
    for (int k = 0; k < 2; k++) {
        if (modes[m].peak[k] < 0) break;
        double p = um->peak + (modes[m].peak[k] - modes[m].peak[0]);
        double d = fabs(h - p);
        d -= 24.0 * floor(d / 24.0);
        if (d > 12.0) d = 24.0 - d;
        double b = dexp(-0.5 * d * d / (um->width * um->width));
        if (b > best) best = b;
    }
    return best;
}

/* The user's preferences at local hour h: taste plus the modes' own
 * preferences weighted by their share of the hour. pref (NPREF). */
static void pref_at(const user *u, double rhythm, double h, float *pref)
{
    memcpy(pref, u->taste, NPREF * sizeof *pref);
    if (rhythm == 0.0) return; /* the hour must not matter at all */
    double a[N_MODES], tot = 1e-300;
    for (int m = 0; m < N_MODES; m++) tot += a[m] = u->mode[m].weight * mode_bump(&u->mode[m], m, h);
    for (int m = 0; m < N_MODES; m++) {
        float s = (float)(MODE_STRENGTH * rhythm * a[m] / tot);
        for (int k = 0; k < NPREF; k++) pref[k] += s * u->mode[m].pref[k];
    }
}

static void build_activity(user *u, ic_rng *r)
{
    double shift = CHRONO_SD * rnorm(r), acc = 0.0;
    for (int h = 0; h < 24; h++) {
        double x = h - shift;
        x -= 24.0 * floor(x / 24.0);
        int a = (int)x;
        double f = x - a;
        double v = (1.0 - f) * activity_curve[a] + f * activity_curve[(a + 1) % 24];
        u->act_cdf[h] = acc += v * dexp(0.5 * rnorm(r));
    }
}

static void build_taste(user *u, ic_rng *r)
{
    for (int k = 0; k < NPREF; k++) u->taste[k] = (float)(0.3 * rnorm(r));
    double w[NG];
    for (int g = 0; g < NG; g++) w[g] = sqrt(genre_share[g]);
    int n_fav = 2 + (unif(r) < 0.5);
    for (int f = 0; f < n_fav; f++) { /* a few favourite genres */
        int g = pick(w, NG, r);
        w[g] = 0.0;
        u->taste[g] += (float)(1.0 + 0.8 * unif(r));
    }
    for (int l = 0; l < NL; l++)
        u->taste[OFF_LANG + l] += l == u->native ? 1.2f : l == u->second ? 0.4f : -0.4f;
}

/* A value from a -1 terminated list, uniformly. */
static int pick_list(const int8_t *list, ic_rng *r)
{
    int n = 0;
    while (n < 8 && list[n] >= 0) n++;
    return list[(int)(unif(r) * n)];
}

static void build_mode(user *u, int m, ic_rng *r)
{
    user_mode *um = &u->mode[m];
    memset(um, 0, sizeof *um);
    um->peak = modes[m].peak[0] + PEAK_JITTER_SD * rnorm(r);
    um->width = modes[m].width * (0.8 + 0.45 * unif(r));
    um->weight = 0.5 + unif(r);
    int g1 = pick_list(modes[m].genres, r), g2;
    do g2 = pick_list(modes[m].genres, r);
    while (g2 == g1);
    um->pref[g1] = um->pref[g2] = 1.0f;
    if (unif(r) < 0.4) um->pref[(int)(unif(r) * NG)] = 1.0f; /* a personal extra */
    um->pref[OFF_MOOD + pick_list(modes[m].moods, r)] = 0.8f;
    if (unif(r) < 0.3) um->pref[OFF_MOOD + (int)(unif(r) * NM)] = 0.8f;
    if (modes[m].second_lang) um->pref[OFF_LANG + u->second] = 1.0f;
}

static void build_user(const world *w, uint32_t id, user *u)
{
    ic_rng r;
    stream(&r, w->o.seed, TAG_USER, id, 0);
    double zw[N_ZONES];
    for (int z = 0; z < N_ZONES; z++) zw[z] = zones[z].share;
    const zone *z = &zones[pick(zw, N_ZONES, &r)];
    u->tz = z->tz_min;
    u->native = (int8_t)pick(z->native, NL, &r);
    double lw[NL];
    memcpy(lw, lang_share, sizeof lw);
    lw[u->native] = 0.0;
    u->second = (int8_t)pick(lw, NL, &r);
    u->p_active = (float)(P_ACTIVE_MIN + P_ACTIVE_SPAN * unif(&r));
    u->bias = (float)(USER_BIAS_SD * rnorm(&r));
    build_activity(u, &r);
    build_taste(u, &r);
    for (int m = 0; m < N_MODES; m++) build_mode(u, m, &r);
    /* The time-blind oracle: the modes averaged over the user's own hours. */
    float p[NPREF];
    double avg[NPREF] = {0}, prev = 0.0;
    for (int h = 0; h < 24; h++) {
        double share = (u->act_cdf[h] - prev) / u->act_cdf[23];
        prev = u->act_cdf[h];
        pref_at(u, w->o.rhythm, h + 0.5, p);
        for (int k = 0; k < NPREF; k++) avg[k] += share * (p[k] - u->taste[k]);
    }
    /* exactly the taste at rhythm 0 */
    for (int k = 0; k < NPREF; k++) u->avg_pref[k] = u->taste[k] + (float)avg[k];
}

/* The hour effect shared by everyone: at each local hour, how far the
 * users' preferences are on average from their daily means. */
static void build_shift(world *w)
{
    float p[NPREF];
    double acc[NPREF];
    for (int h = 0; h < 24; h++) {
        memset(acc, 0, sizeof acc);
        for (int u = 0; u < w->o.n_users; u++) {
            pref_at(&w->users[u], w->o.rhythm, h + 0.5, p);
            for (int k = 0; k < NPREF; k++) acc[k] += p[k] - w->users[u].avg_pref[k];
        }
        for (int k = 0; k < NPREF; k++) w->shift[h][k] = (float)(acc[k] / w->o.n_users);
    }
}

static void world_build(world *w, const ic_synth_opts *o)
{
    memset(w, 0, sizeof *w);
    w->o = *o;
    uint32_t M = (uint32_t)o->n_items, N = (uint32_t)o->n_users;
    w->items = ic__xmalloc(M * sizeof *w->items);
    w->pop_cdf = ic__xmalloc(M * sizeof *w->pop_cdf);
    for (uint32_t i = 0; i < M; i++) build_item(w, i, &w->items[i]);
    build_popularity(w);
    w->users = ic__xmalloc(N * sizeof *w->users);
    w->busy = ic__xmalloc(N * sizeof *w->busy);
    for (uint32_t u = 0; u < N; u++) {
        build_user(w, u, &w->users[u]);
        w->busy[u] = INT64_MIN / 2;
    }
    build_shift(w);
}

static void world_free(world *w)
{
    free(w->items);
    free(w->pop_cdf);
    free(w->gitem);
    free(w->gcdf);
    free(w->users);
    free(w->busy);
}

/* ---- The logging policy and the feedback model ---------------------------- */

/* The user's taste for an item's attributes under preferences pref (NPREF);
 * a two-genre item counts as half of each. */
static double taste_for(const float *pref, const item *it)
{
    double g = pref[it->genre[0]];
    if (it->genre[1] >= 0) g = 0.5 * (g + pref[it->genre[1]]);
    return g + pref[OFF_MOOD + it->mood] + pref[OFF_LANG + it->lang];
}

/* One candidate: by global popularity, or by popularity within a genre drawn
 * from the user's current genre preferences (gw (NG), filled on first use). */
static uint32_t retrieve(const world *w, const float *pref, double *gw, int *have_gw, ic_rng *r)
{
    if (unif(r) >= P_GENRE_CHANNEL) return pick_cdf(w->pop_cdf, (uint32_t)w->o.n_items, r);
    if (!*have_gw) {
        for (int g = 0; g < NG; g++)
            gw[g] = w->goff[g + 1] > w->goff[g] ? dexp(pref[g]) : 0.0;
        *have_gw = 1;
    }
    int g = pick(gw, NG, r);
    uint32_t lo = w->goff[g], n = w->goff[g + 1] - lo;
    return w->gitem[lo + pick_cdf(w->gcdf + lo, n, r)];
}

/* The impression shown: with P_EXPLORE a popularity draw, otherwise one of
 * N_CAND candidates by a softmax of the user's current taste (pref) for it
 * plus part of its quality. */
static uint32_t policy_choose(const world *w, const float *pref, ic_rng *r)
{
    if (unif(r) < P_EXPLORE) return pick_cdf(w->pop_cdf, (uint32_t)w->o.n_items, r);
    double gw[NG], s[N_CAND], best = -1e300;
    uint32_t cand[N_CAND];
    int have_gw = 0;
    for (int c = 0; c < N_CAND; c++) {
        cand[c] = retrieve(w, pref, gw, &have_gw, r);
        const item *it = &w->items[cand[c]];
        s[c] = taste_for(pref, it) + POLICY_QUALITY * it->quality;
        if (s[c] > best) best = s[c];
    }
    for (int c = 0; c < N_CAND; c++) s[c] = dexp(s[c] - best);
    return cand[pick(s, N_CAND, r)];
}

static double finish_logit(const world *w, const user *u, const item *it, const float *pref)
{
    return FIN_BIAS + FIN_BIAS_RHYTHM * w->o.rhythm + u->bias + FIN_TASTE * taste_for(pref, it) + it->quality;
}

/* Draws the four actions of one impression from its finish logit z. */
static void draw_feedback(double z, ic_rng *r, ic_synth_event *ev)
{
    ev->finish = unif(r) < sigmoid(z);
    ev->like = ev->skip = ev->dislike = 0;
    if (ev->finish) {
        ev->like = unif(r) < sigmoid(z - LIKE_SHIFT);
    } else {
        ev->skip = unif(r) < sigmoid(SKIP_BIAS - SKIP_Z * z);
        if (ev->skip) ev->dislike = unif(r) < sigmoid(-z - DISLIKE_SHIFT);
    }
}

/* ---- Days, sessions and the sorted stream --------------------------------- */

/* A generated event in the day buffer; item attributes and the time zone
 * are looked up again when it is handed out. */
typedef struct {
    int64_t ts;
    uint32_t user, item;
    uint32_t seq;   /* (day, index) of the event within its user */
    uint8_t flags;  /* finish 1, like 2, skip 4, dislike 8 */
    float p, p_static, p_global;
} rec;

typedef struct {
    rec *a;
    size_t n, cap;
    int64_t t_lo, t_hi; /* events outside [t_lo, t_hi) are dropped */
} rec_buf;

static void push(rec_buf *b, const rec *e)
{
    if (e->ts < b->t_lo || e->ts >= b->t_hi) return;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1 << 16;
        b->a = ic__xrealloc(b->a, b->cap * sizeof *b->a);
    }
    b->a[b->n++] = *e;
}

/* One impression of user uid at time t, then the seconds until the next:
 * a finished track plays out, a skip ends early. */
static int64_t play(const world *w, uint32_t uid, int64_t t, uint32_t seq, ic_rng *r, rec_buf *b)
{
    const user *u = &w->users[uid];
    float pref[NPREF];
    pref_at(u, w->o.rhythm, ic_local_hour_frac(t, u->tz), pref);
    uint32_t i = policy_choose(w, pref, r);
    const item *it = &w->items[i];
    double z = finish_logit(w, u, it, pref);
    ic_synth_event ev;
    draw_feedback(z, r, &ev);
    float global[NPREF]; /* the user's daily mean plus everyone's hour effect */
    const float *shift = w->shift[ic_local_hour(t, u->tz)];
    for (int k = 0; k < NPREF; k++) global[k] = u->avg_pref[k] + shift[k];
    rec e = {t, uid, i, seq,
             (uint8_t)(ev.finish | ev.like << 1 | ev.skip << 2 | ev.dislike << 3),
             (float)sigmoid(z), (float)sigmoid(finish_logit(w, u, it, u->avg_pref)),
             (float)sigmoid(finish_logit(w, u, it, global))};
    push(b, &e);
    if (ev.finish) return 150 + (int64_t)(unif(r) * 120);
    if (ev.skip) return 5 + (int64_t)(unif(r) * 40);
    return 40 + (int64_t)(unif(r) * 100);
}

/* All events of user uid on its local day L (days since 1970, local). */
static void user_day(world *w, uint32_t uid, int64_t L, rec_buf *b)
{
    const user *u = &w->users[uid];
    ic_rng r;
    stream(&r, w->o.seed, TAG_DAY, uid, (uint64_t)L);
    if (unif(&r) >= u->p_active) return;
    int ns = 1;
    while (ns < MAX_SESSIONS && unif(&r) < P_MORE_SESSIONS) ns++;
    int64_t start[MAX_SESSIONS], day0 = L * 86400 - (int64_t)u->tz * 60;
    for (int s = 0; s < ns; s++) {
        uint32_t h = pick_cdf(u->act_cdf, 24, &r);
        start[s] = day0 + h * 3600 + (int64_t)(unif(&r) * 3600);
        for (int k = s; k > 0 && start[k] < start[k - 1]; k--) { /* insertion sort */
            int64_t t = start[k];
            start[k] = start[k - 1];
            start[k - 1] = t;
        }
    }
    double mean_plays = w->o.events_per_day / 2.0, more = 1.0 - 1.0 / mean_plays;
    uint32_t seq = (uint32_t)(L & 0xFFFF) << 16;
    for (int s = 0; s < ns; s++) {
        int64_t t = start[s] > w->busy[uid] + SESSION_GAP ? start[s] : w->busy[uid] + SESSION_GAP;
        int n = 1;
        while (n < MAX_PLAYS && unif(&r) < more) n++;
        for (int p = 0; p < n; p++) t += play(w, uid, t, seq++, &r, b);
        w->busy[uid] = t;
    }
}

static int rec_cmp(const void *pa, const void *pb)
{
    const rec *a = pa, *b = pb;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

typedef struct {
    ic_synth_stats st;
    uint8_t *user_seen, *item_seen;
} tally;

static void to_event(const world *w, const rec *e, ic_synth_event *ev)
{
    const item *it = &w->items[e->item];
    ev->ts = e->ts;
    ev->tz_min = w->users[e->user].tz;
    ev->user = e->user;
    ev->item = e->item;
    memcpy(ev->genre, it->genre, 2);
    ev->mood = it->mood;
    ev->lang = it->lang;
    ev->finish = e->flags & 1;
    ev->like = e->flags >> 1 & 1;
    ev->skip = e->flags >> 2 & 1;
    ev->dislike = e->flags >> 3 & 1;
    ev->p_finish = e->p;
    ev->p_static = e->p_static;
    ev->p_global = e->p_global;
}

/* Sorts the buffer and hands out the events earlier than before; the rest
 * stay for the next round. Returns fn's nonzero value, or 0. */
static int flush(const world *w, rec_buf *b, int64_t before, ic_synth_fn fn, void *ctx, tally *t)
{
    if (b->n == 0) return 0;
    /* Keys are unique, so any sort gives the same order. */
    qsort(b->a, b->n, sizeof *b->a, rec_cmp);
    size_t k = 0;
    int rc = 0;
    for (; k < b->n && b->a[k].ts < before && rc == 0; k++) {
        ic_synth_event ev;
        to_event(w, &b->a[k], &ev);
        rc = fn(ctx, &ev);
        t->st.events++;
        t->st.finish += ev.finish;
        t->st.like += ev.like;
        t->st.skip += ev.skip;
        t->st.dislike += ev.dislike;
        t->st.users_active += !t->user_seen[ev.user];
        t->st.items_seen += !t->item_seen[ev.item];
        t->user_seen[ev.user] = t->item_seen[ev.item] = 1;
    }
    memmove(b->a, b->a + k, (b->n - k) * sizeof *b->a);
    b->n -= k;
    return rc;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

ic_status ic_synth_run(const ic_synth_opts *o, ic_synth_fn fn, void *ctx,
                       ic_synth_stats *stats, ic_error *err)
{
    ic_status s = ic_synth_check(o, err);
    if (s != IC_OK) return s;
    world w;
    world_build(&w, o);
    rec_buf b = {NULL, 0, 0, o->start, o->start + (int64_t)o->n_days * 86400};
    tally t = {{0}, ic__xcalloc((size_t)o->n_users, 1), ic__xcalloc((size_t)o->n_items, 1)};
    int64_t base = floor_div(o->start, 86400);
    int rc = 0;
    /* Local day L spans UTC [L*86400 - tz*60, +1 day), so every day later
     * than L starts at or after (L+1)*86400 - MAX_TZ_MIN*60: events before
     * that are final once day L is done. Day base-2 feeds the first hours
     * of the west; day base+days+1 the last hours of the east. */
    for (int64_t L = base - 2; L <= base + o->n_days + 1 && rc == 0; L++) {
        for (uint32_t u = 0; u < (uint32_t)o->n_users; u++) user_day(&w, u, L, &b);
        int64_t before = L == base + o->n_days + 1 ? INT64_MAX
                                                   : (L + 1) * 86400 - MAX_TZ_MIN * 60;
        rc = flush(&w, &b, before, fn, ctx, &t);
    }
    if (stats) *stats = t.st;
    free(b.a);
    free(t.user_seen);
    free(t.item_seen);
    world_free(&w);
    if (rc < 0) return ic__fail(err, (ic_status)rc, "synth: stopped: %s", ic_strerror(rc));
    return IC_OK;
}

/* ---- CSV ------------------------------------------------------------------ */

typedef struct {
    FILE *out;
    int oracle; /* append p_finish, p_static, p_global */
    int failed_errno;
} csv_ctx;

static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t x = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do tmp[n++] = (char)('0' + x % 10);
    while (x /= 10);
    if (v < 0) *p++ = '-';
    while (n) *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static int csv_row(void *vctx, const ic_synth_event *ev)
{
    csv_ctx *c = vctx;
    char line[256], *p = line;
    p = put_i64(p, ev->ts);
    p = put_str(p, ",u");
    p = put_i64(p, ev->user);
    p = put_str(p, ",i");
    p = put_i64(p, ev->item);
    *p++ = ',';
    p = put_i64(p, ev->tz_min);
    *p++ = ',';
    p = put_str(p, genre_names[ev->genre[0]]);
    if (ev->genre[1] >= 0) {
        *p++ = '|';
        p = put_str(p, genre_names[ev->genre[1]]);
    }
    *p++ = ',';
    p = put_str(p, mood_names[ev->mood]);
    *p++ = ',';
    p = put_str(p, lang_names[ev->lang]);
    const uint8_t act[4] = {ev->finish, ev->like, ev->skip, ev->dislike};
    for (int k = 0; k < 4; k++) {
        *p++ = ',';
        *p++ = (char)('0' + act[k]);
    }
    if (c->oracle) /* glibc prints the exact decimal of these floats */
        p += snprintf(p, 64, ",%.6f,%.6f,%.6f", ev->p_finish, ev->p_static, ev->p_global);
    *p++ = '\n';
    if (fwrite(line, 1, (size_t)(p - line), c->out) != (size_t)(p - line)) {
        c->failed_errno = errno ? errno : EIO;
        return IC_ERR_IO;
    }
    return 0;
}

static ic_status write_csv(const ic_synth_opts *o, FILE *out, int oracle, ic_synth_stats *stats,
                           ic_error *err)
{
    ic_status s = ic_synth_check(o, err);
    if (s != IC_OK) return s;
    csv_ctx c = {out, oracle, 0};
    errno = 0;
    if (fputs(oracle ? IC_SYNTH_HEADER IC_SYNTH_ORACLE_COLS "\n" : IC_SYNTH_HEADER "\n", out) == EOF)
        return ic__fail(err, IC_ERR_IO, "synth: cannot write: %s", strerror(errno ? errno : EIO));
    s = ic_synth_run(o, csv_row, &c, stats, err);
    if (s == IC_OK && fflush(out) != 0) c.failed_errno = errno ? errno : EIO;
    if (c.failed_errno || ferror(out))
        return ic__fail(err, IC_ERR_IO, "synth: cannot write: %s",
                        strerror(c.failed_errno ? c.failed_errno : EIO));
    return s;
}

ic_status ic_synth_write_csv(const ic_synth_opts *o, FILE *out, ic_synth_stats *stats,
                             ic_error *err)
{
    return write_csv(o, out, 0, stats, err);
}

ic_status ic_synth_write_csv_oracle(const ic_synth_opts *o, FILE *out, ic_synth_stats *stats,
                                    ic_error *err)
{
    return write_csv(o, out, 1, stats, err);
}
