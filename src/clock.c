/* clock.c: the Interest Clock store. For every user it keeps the
 * contributions of the events of the last W days, per (local hour, clock
 * field, value) running scores, and per (hour, field) the cached top-k, so
 * that applying an event and querying a clock cost O(1) amortised plus the
 * few (hour, field) lists the window's movement touched.
 *
 * How a query stays point-in-time correct: an applied event only appends
 * records to its user's list; scores hold exactly the records of the
 * window of the user's last query, rec[lo..hi). A query moves both ends of
 * that window to its own [a, b) (either direction), so events at or after
 * b (already applied, e.g. in the same second) are never seen, and expiry
 * at a is exact whenever the user is next looked at (lazy expiry). Records
 * are dropped for good only below (latest event - W - 2 days), by the
 * user's own events and by a sweep that visits one user per applied event;
 * that bounds memory by what lies in the window (plus two days) and frees
 * users whose records are all gone.
 *
 * Scores: an event's delta is (float)(sum_a (double)weight_a * action_a);
 * a score is the double sum of its deltas and becomes exactly 0 when its
 * last record leaves. With dyadic weights (1, -1, 0.5...) and small counts
 * all sums are exact, so the store equals the brute-force reference
 * (ic__clock_query_ref, at the end of this file) bit for bit; otherwise it
 * may differ from it in the last bits.
 * Ranking: score descending, ties by value id ascending; only scores > 0.
 *
 * Not here: saving and loading (clock_io.c), drawing (plot.c). */
#include "clock_internal.h"

#include <math.h>

#define DAY 86400

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static unsigned n_hf(const ic_clock_store *s) { return (unsigned)(IC_HOURS * s->F); }

/* ---- creation ------------------------------------------------------------ */

ic_status ic_clock_create(ic_clock_store **out, const ic_config *cfg, ic_error *err)
{
    *out = NULL;
    if (cfg->n_clock < 0 || cfg->n_clock > IC_MAX_CLOCK_FIELDS)
        return ic__fail(err, IC_ERR_CONFIG, "clock: %d clock fields (at most %d)", cfg->n_clock,
                        IC_MAX_CLOCK_FIELDS);
    for (int f = 0; f < cfg->n_clock; f++)
        if (cfg->clock_field[f] < 0 || cfg->clock_field[f] >= cfg->n_fields)
            return ic__fail(err, IC_ERR_CONFIG, "clock: clock field %d is not a field", f);
    if (cfg->window_days < 1 || cfg->window_days > 3650)
        return ic__fail(err, IC_ERR_CONFIG, "clock: window of %d days (1..3650)", cfg->window_days);
    if (cfg->top_k < 1 || cfg->top_k > IC_MAX_TOPK)
        return ic__fail(err, IC_ERR_CONFIG, "clock: top_k %d (1..%d)", cfg->top_k, IC_MAX_TOPK);
    if (cfg->n_actions < 0 || cfg->n_actions > IC_MAX_ACTIONS)
        return ic__fail(err, IC_ERR_CONFIG, "clock: %d actions (at most %d)", cfg->n_actions,
                        IC_MAX_ACTIONS);
    ic_clock_store *s = ic__xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->F = cfg->n_clock;
    s->k = cfg->top_k;
    s->window = (int64_t)cfg->window_days * DAY;
    for (int a = 0; a < cfg->n_actions; a++) s->weight[a] = cfg->action[a].weight;
    s->utab_cap = 16;
    s->utab = ic__xcalloc(s->utab_cap, sizeof *s->utab);
    s->last_ts = INT64_MIN;
    s->pruned_below = INT64_MIN;
    *out = s;
    return IC_OK;
}

static void user_release(ic__clk_user *u)
{
    free(u->rec);
    free(u->ent);
    free(u->slot);
    free(u->topv); /* tops, head and topn live in the same block */
}

void ic_clock_free(ic_clock_store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_users; i++) user_release(&s->users[i]);
    free(s->users);
    free(s->utab);
    free(s);
}

/* ---- the user table: open addressing (linear probing) on the id --------- */

/* The slot holding id, or the empty slot where it would go. */
static size_t utab_pos(const ic_clock_store *s, uint64_t id)
{
    size_t mask = s->utab_cap - 1, pos = mix64(id) & mask;
    while (s->utab[pos] && s->users[s->utab[pos] - 1].id != id) pos = (pos + 1) & mask;
    return pos;
}

ic__clk_user *ic__clock_user_find(const ic_clock_store *s, uint64_t id)
{
    uint32_t x = s->utab[utab_pos(s, id)];
    return x ? &s->users[x - 1] : NULL;
}

static void utab_grow(ic_clock_store *s)
{
    free(s->utab);
    s->utab_cap *= 2;
    s->utab = ic__xcalloc(s->utab_cap, sizeof *s->utab);
    for (size_t i = 0; i < s->n_users; i++) s->utab[utab_pos(s, s->users[i].id)] = (uint32_t)i + 1;
}

ic__clk_user *ic__clock_user_add(ic_clock_store *s, uint64_t id)
{
    IC_ASSERT(s->n_users < UINT32_MAX - 1);
    if ((s->n_users + 1) * 2 > s->utab_cap) utab_grow(s);
    if (s->n_users == s->users_cap) {
        s->users_cap = s->users_cap ? s->users_cap * 2 : 64;
        s->users = ic__xrealloc(s->users, s->users_cap * sizeof *s->users);
    }
    size_t pos = utab_pos(s, id);
    IC_ASSERT(s->utab[pos] == 0);
    ic__clk_user *u = &s->users[s->n_users];
    memset(u, 0, sizeof *u);
    u->id = id;
    unsigned hf = n_hf(s);
    size_t hk = (size_t)hf * s->k;
    u->topv = ic__xmalloc(hk * (sizeof(uint64_t) + sizeof(double)) + hf * (sizeof(uint32_t) + 1));
    u->tops = (double *)(u->topv + hk);
    u->head = (uint32_t *)(u->tops + hk);
    u->topn = (uint8_t *)(u->head + hf);
    for (unsigned i = 0; i < hf; i++) u->head[i] = IC__CLK_NONE;
    memset(u->topn, 0, hf);
    s->utab[pos] = (uint32_t)++s->n_users;
    return u;
}

/* Removes users[i] (backward-shift deletion keeps probe chains intact). */
static void user_remove(ic_clock_store *s, size_t i)
{
    size_t mask = s->utab_cap - 1, pos = utab_pos(s, s->users[i].id), j = pos;
    IC_ASSERT(s->utab[pos] == i + 1);
    s->utab[pos] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->utab[j]) break;
        size_t want = mix64(s->users[s->utab[j] - 1].id) & mask;
        /* Move j back into the hole unless its home lies cyclically in (pos, j]. */
        int stays = pos <= j ? (want > pos && want <= j) : (want > pos || want <= j);
        if (!stays) {
            s->utab[pos] = s->utab[j];
            s->utab[j] = 0;
            pos = j;
        }
    }
    user_release(&s->users[i]);
    size_t last = s->n_users - 1;
    if (i != last) {
        s->utab[utab_pos(s, s->users[last].id)] = (uint32_t)i + 1;
        s->users[i] = s->users[last];
    }
    s->n_users--;
}

/* ---- a user's entries: (hour, field, value) -> running score ------------ */

static uint64_t entry_hash(unsigned hf, uint64_t value) { return mix64(value + hf * 0x9E3779B97F4A7C15ull); }

static void slots_rebuild(ic__clk_user *u, uint32_t cap)
{
    free(u->slot);
    u->slot_cap = cap;
    u->slot = ic__xcalloc(cap, sizeof *u->slot);
    uint32_t mask = cap - 1;
    for (uint32_t e = 0; e < u->n_ent; e++) {
        uint32_t pos = (uint32_t)entry_hash(u->ent[e].hf, u->ent[e].value) & mask;
        while (u->slot[pos]) pos = (pos + 1) & mask;
        u->slot[pos] = e + 1;
    }
}

uint32_t ic__clock_entry_get(ic_clock_store *s, ic__clk_user *u, unsigned hf, uint64_t value)
{
    (void)s;
    if ((u->n_ent + 1) * 2 > u->slot_cap) slots_rebuild(u, u->slot_cap ? u->slot_cap * 2 : 16);
    uint32_t mask = u->slot_cap - 1, pos = (uint32_t)entry_hash(hf, value) & mask;
    for (uint32_t x; (x = u->slot[pos]); pos = (pos + 1) & mask)
        if (u->ent[x - 1].value == value && u->ent[x - 1].hf == hf) return x - 1;
    IC_ASSERT(u->n_ent < IC__CLK_NONE);
    if (u->n_ent == u->ent_cap) {
        u->ent_cap = u->ent_cap ? u->ent_cap * 2 : 8;
        u->ent = ic__xrealloc(u->ent, u->ent_cap * sizeof *u->ent);
    }
    uint32_t e = u->n_ent++;
    u->ent[e] = (ic__clk_entry){.value = value, .next = u->head[hf], .hf = (uint16_t)hf};
    u->head[hf] = e;
    u->slot[pos] = e + 1;
    u->n_dead++; /* no records yet: the caller references it */
    return e;
}

/* Drops dead entries (no retained record) and groups the rest by (hour,
 * field) list, so that a list walk reads contiguous memory; renumbers the
 * records, the lists and the hash table. O(records + entries + HF); run
 * when half the entries are dead or their number has doubled since the
 * last run, so amortised O(1) per record. The cached top-k holds values,
 * not indices, and stays valid. */
static void user_compact(ic_clock_store *s, ic__clk_user *u)
{
    unsigned HF = n_hf(s);
    uint32_t off[IC__CLK_HF + 1] = {0};
    for (uint32_t e = 0; e < u->n_ent; e++)
        if (u->ent[e].refs) off[u->ent[e].hf + 1]++;
    for (unsigned hf = 0; hf < HF; hf++) off[hf + 1] += off[hf];
    uint32_t m = off[HF];
    uint32_t cap = m > 4 ? 2 * m : 8;
    ic__clk_entry *ent = ic__xmalloc(cap * sizeof *ent);
    uint32_t *remap = ic__xmalloc((size_t)u->n_ent * sizeof *remap + 1);
    for (uint32_t e = 0; e < u->n_ent; e++) {
        if (!u->ent[e].refs) {
            remap[e] = IC__CLK_NONE;
            continue;
        }
        remap[e] = off[u->ent[e].hf]++;
        ent[remap[e]] = u->ent[e];
    }
    for (uint32_t i = u->start; i < u->end; i++) {
        uint32_t r = u->rec[i].ref, e = r & ~IC__CLK_FIRST;
        if (e != IC__CLK_NONE) u->rec[i].ref = remap[e] | (r & IC__CLK_FIRST);
    }
    free(remap);
    free(u->ent);
    u->ent = ent, u->ent_cap = cap, u->n_ent = m, u->n_sorted = m, u->n_dead = 0;
    for (unsigned hf = 0; hf < HF; hf++) u->head[hf] = IC__CLK_NONE;
    for (uint32_t e = m; e-- > 0;) { /* off[hf] is now the end of list hf */
        ent[e].next = u->head[ent[e].hf];
        u->head[ent[e].hf] = e;
    }
    uint32_t slots = 16;
    while (slots < 2 * (m + 1)) slots *= 2;
    slots_rebuild(u, slots);
}

/* ---- a user's records and window ----------------------------------------- */

void ic__clock_rec_push(ic__clk_user *u, int64_t ts, float delta, uint32_t ref)
{
    IC_ASSERT(u->start == u->end || u->rec[u->end - 1].ts <= ts);
    if (u->end == u->rec_cap) {
        if (u->start >= u->rec_cap / 2 && u->start > 0) {
            uint32_t sh = u->start;
            memmove(u->rec, u->rec + sh, (size_t)(u->end - sh) * sizeof *u->rec);
            u->start -= sh, u->lo -= sh, u->hi -= sh, u->end -= sh;
        } else {
            IC_ASSERT(u->rec_cap < (1u << 30));
            u->rec_cap = u->rec_cap ? u->rec_cap * 2 : 8;
            u->rec = ic__xrealloc(u->rec, u->rec_cap * sizeof *u->rec);
        }
    }
    if (u->start == u->end) u->oldest = ts;
    u->rec[u->end++] = (ic__clk_rec){.ts = ts, .delta = delta, .ref = ref};
}

static inline void mark_dirty(ic__clk_user *u, unsigned hf) { u->dirty[hf >> 6] |= 1ull << (hf & 63); }
static inline int is_dirty(const ic__clk_user *u, unsigned hf) { return (u->dirty[hf >> 6] >> (hf & 63)) & 1; }

/* (score, value) ranks before (score2, value2): score descending, ties by
 * value id ascending. */
static inline int ranks_before(double score, uint64_t value, double score2, uint64_t value2)
{
    return score > score2 || (score == score2 && value < value2);
}

/* Keeps the cached top-k of x's list in step with a change of x's score
 * from old, without walking the list when the outcome is certain: a rise
 * moves x up or into the top; a fall of a value outside the top changes
 * nothing; a fall inside it moves it down, unless it may now rank below a
 * value outside the top (last place of a full top, or no longer positive):
 * then the list is marked for a full recomputation at the query. */
static void top_update(ic__clk_user *u, int k, const ic__clk_entry *x, double old)
{
    unsigned hf = x->hf;
    if (x->score == old || is_dirty(u, hf)) return;
    int n = u->topn[hf], p = 0;
    uint64_t *tv = u->topv + (size_t)hf * k;
    double *ts = u->tops + (size_t)hf * k;
    while (p < n && tv[p] != x->value) p++;
    if (p == n) { /* not in the top */
        if (x->score < old || !(x->score > 0)) return;
        if (n == k && !ranks_before(x->score, x->value, ts[n - 1], tv[n - 1])) return;
        if (n < k) u->topn[hf] = (uint8_t)++n;
        p = n - 1; /* takes the last place, then moves up */
    } else if (x->score < old && (!(x->score > 0) || (n == k && p == n - 1))) {
        mark_dirty(u, hf);
        return;
    }
    tv[p] = x->value, ts[p] = x->score;
    while (p > 0 && ranks_before(ts[p], tv[p], ts[p - 1], tv[p - 1])) { /* rise */
        double sc = ts[p]; ts[p] = ts[p - 1], ts[p - 1] = sc;
        uint64_t v = tv[p]; tv[p] = tv[p - 1], tv[p - 1] = v;
        p--;
    }
    while (p + 1 < n && ranks_before(ts[p + 1], tv[p + 1], ts[p], tv[p])) { /* fall */
        double sc = ts[p]; ts[p] = ts[p + 1], ts[p + 1] = sc;
        uint64_t v = tv[p]; tv[p] = tv[p + 1], tv[p + 1] = v;
        p++;
    }
    if (x->score < old && n == k && p == n - 1) mark_dirty(u, hf);
}

static inline void rec_include(ic__clk_user *u, int k, uint32_t i)
{
    uint32_t r = u->rec[i].ref, e = r & ~IC__CLK_FIRST;
    u->n_in += r >> 31;
    if (e == IC__CLK_NONE) return;
    ic__clk_entry *x = &u->ent[e];
    double old = x->score;
    x->score += u->rec[i].delta;
    x->count++;
    top_update(u, k, x, old);
}

static inline void rec_exclude(ic__clk_user *u, int k, uint32_t i)
{
    uint32_t r = u->rec[i].ref, e = r & ~IC__CLK_FIRST;
    u->n_in -= r >> 31;
    if (e == IC__CLK_NONE) return;
    ic__clk_entry *x = &u->ent[e];
    double old = x->score;
    x->score -= u->rec[i].delta;
    if (--x->count == 0) x->score = 0; /* no residue from inexact sums */
    top_update(u, k, x, old);
}

/* Moves the included records to exactly those with a <= ts < b: first
 * grows the interval on each side, then shrinks it, so lo <= hi always. */
static void user_window(ic__clk_user *u, int k, int64_t a, int64_t b)
{
    const ic__clk_rec *r = u->rec;
    while (u->hi < u->end && r[u->hi].ts < b) rec_include(u, k, u->hi++);
    while (u->lo > u->start && r[u->lo - 1].ts >= a) rec_include(u, k, --u->lo);
    while (u->lo < u->hi && r[u->lo].ts < a) rec_exclude(u, k, u->lo++);
    while (u->hi > u->lo && r[u->hi - 1].ts >= b) rec_exclude(u, k, --u->hi);
}

/* Drops the records older than horizon for good. */
static void user_drop_old(ic__clk_user *u, int k, int64_t horizon)
{
    while (u->start < u->end && u->rec[u->start].ts < horizon) {
        if (u->lo == u->start) {
            if (u->hi > u->start) rec_exclude(u, k, u->start);
            u->lo++;
            if (u->hi < u->lo) u->hi = u->lo;
        }
        uint32_t e = u->rec[u->start].ref & ~IC__CLK_FIRST;
        if (e != IC__CLK_NONE && --u->ent[e].refs == 0) u->n_dead++;
        u->start++;
    }
    if (u->start == u->end) u->start = u->lo = u->hi = u->end = 0;
    else u->oldest = u->rec[u->start].ts;
    uint32_t live = u->end - u->start;
    if (u->rec_cap > 16 && live * 4 < u->rec_cap) {
        memmove(u->rec, u->rec + u->start, (size_t)live * sizeof *u->rec);
        u->lo -= u->start, u->hi -= u->start, u->end -= u->start, u->start = 0;
        u->rec_cap /= 2;
        u->rec = ic__xrealloc(u->rec, u->rec_cap * sizeof *u->rec);
    }
}

/* Drops old records and reclaims memory; reads only *u when there is
 * nothing to do (the sweep visits users that are cold in cache). */
static void user_prune(ic_clock_store *s, ic__clk_user *u, int64_t horizon)
{
    if (u->start < u->end && u->oldest < horizon) user_drop_old(u, s->k, horizon);
    if ((u->n_dead > 8 && u->n_dead * 2 > u->n_ent) || (u->n_ent >= 16 && u->n_ent >= 2 * u->n_sorted))
        user_compact(s, u);
}

/* ---- apply ---------------------------------------------------------------- */

/* Prunes the next user of the round-robin sweep, and forgets it if empty. */
static void sweep_one(ic_clock_store *s, int64_t horizon)
{
    if (s->n_users == 0) return;
    if (s->sweep >= s->n_users) s->sweep = 0;
    ic__clk_user *u = &s->users[s->sweep];
    user_prune(s, u, horizon);
    if (u->start == u->end)
        user_remove(s, s->sweep);
    else
        s->sweep++;
}

ic_status ic_clock_apply(ic_clock_store *s, const ic_event *ev, ic_error *err)
{
    if (ev->ts < s->last_ts)
        return ic__fail(err, IC_ERR_ORDER,
                        "clock: event at %lld is earlier than the last applied event at %lld",
                        (long long)ev->ts, (long long)s->last_ts);
    s->last_ts = ev->ts;
    int64_t horizon = ev->ts - s->window - 2 * DAY;
    if (horizon > s->pruned_below) s->pruned_below = horizon;

    ic__clk_user *u = ic__clock_user_find(s, ev->user);
    if (!u) u = ic__clock_user_add(s, ev->user);
    user_prune(s, u, horizon);

    double d = 0;
    for (int a = 0; a < s->cfg.n_actions; a++) d += s->weight[a] * (double)ev->action[a];
    float delta = (float)d;
    unsigned h = (unsigned)ic_local_hour(ev->ts, ev->tz_min);
    uint32_t first = IC__CLK_FIRST;
    for (int f = 0; f < s->F; f++) {
        int fi = s->cfg.clock_field[f];
        IC_ASSERT(ev->voff[fi] <= ev->voff[fi + 1] && ev->voff[fi + 1] <= IC_MAX_VALUES);
        for (int j = ev->voff[fi]; j < ev->voff[fi + 1]; j++) {
            if (!ev->val[j]) continue;
            uint32_t e = ic__clock_entry_get(s, u, h * (unsigned)s->F + (unsigned)f, ev->val[j]);
            if (u->ent[e].refs++ == 0) u->n_dead--;
            ic__clock_rec_push(u, ev->ts, delta, e | first);
            first = 0;
        }
    }
    if (first) ic__clock_rec_push(u, ev->ts, delta, IC__CLK_NONE | IC__CLK_FIRST);
    sweep_one(s, horizon);
    return IC_OK;
}

/* ---- query ---------------------------------------------------------------- */

/* The window [*a, *b) a query at t sees; daily: the W days before the start
 * of t's local day (in the query's tz_min). */
static void query_window(const ic_clock_store *s, int64_t t, int32_t tz_min, int64_t *a, int64_t *b)
{
    *b = s->cfg.refresh == IC_REFRESH_DAILY ? ic_local_day(t, tz_min) * DAY - (int64_t)tz_min * 60 : t;
    *a = *b - s->window;
}

static inline int better(const ic__clk_entry *x, const ic__clk_entry *y)
{
    return x->score > y->score || (x->score == y->score && x->value < y->value);
}

/* Recomputes the cached top-k of list hf by insertion into k places. */
static void user_topk(const ic_clock_store *s, ic__clk_user *u, unsigned hf)
{
    const int k = s->k;
    const ic__clk_entry *top[IC_MAX_TOPK];
    int n = 0;
    for (uint32_t e = u->head[hf]; e != IC__CLK_NONE; e = u->ent[e].next) {
        const ic__clk_entry *x = &u->ent[e];
        if (!(x->score > 0)) continue;
        int pos = n;
        while (pos > 0 && better(x, top[pos - 1])) pos--;
        if (pos >= k) continue;
        for (int j = n < k ? n : k - 1; j > pos; j--) top[j] = top[j - 1];
        top[pos] = x;
        if (n < k) n++;
    }
    u->topn[hf] = (uint8_t)n;
    for (int i = 0; i < n; i++) {
        u->topv[hf * k + i] = top[i]->value;
        u->tops[hf * k + i] = top[i]->score;
    }
}

int ic_clock_query(ic_clock_store *s, uint64_t user, int64_t t, int32_t tz_min, ic_clock_view *out)
{
    out->n_fields = s->F;
    out->k = s->k;
    memset(out->n, 0, sizeof out->n);
    int64_t a, b;
    query_window(s, t, tz_min, &a, &b);
    /* The contract (iclock.h): no query more than a day before the latest
     * applied event; older records than this may already be gone. */
    IC_ASSERT(a >= s->pruned_below && "clock query too far in the past");
    ic__clk_user *u = ic__clock_user_find(s, user);
    if (!u) return 0;
    user_window(u, s->k, a, b);
    for (int w = 0; w < 2; w++)
        for (uint64_t bits = u->dirty[w]; bits; bits &= bits - 1)
            user_topk(s, u, (unsigned)(w * 64 + __builtin_ctzll(bits)));
    u->dirty[0] = u->dirty[1] = 0;
    if (u->n_in == 0) return 0;
    const int k = s->k;
    for (int h = 0, hf = 0; h < IC_HOURS; h++)
        for (int f = 0; f < s->F; f++, hf++) {
            int n = u->topn[hf];
            out->n[h][f] = (uint8_t)n;
            const uint64_t *tv = u->topv + hf * k;
            const double *ts = u->tops + hf * k;
            for (int i = 0; i < n; i++) out->value[h][f][i] = tv[i], out->score[h][f][i] = (float)ts[i];
        }
    return 1;
}

/* ---- introspection ------------------------------------------------------- */

size_t ic_clock_n_users(const ic_clock_store *s) { return s->n_users; }

int ic_clock_next_user(const ic_clock_store *s, size_t *cursor, uint64_t *user)
{
    if (*cursor >= s->n_users) return 0;
    *user = s->users[(*cursor)++].id;
    return 1;
}

size_t ic_clock_bytes(const ic_clock_store *s)
{
    size_t hf = n_hf(s);
    size_t b = sizeof *s + s->users_cap * sizeof *s->users + s->utab_cap * sizeof *s->utab;
    for (size_t i = 0; i < s->n_users; i++) {
        const ic__clk_user *u = &s->users[i];
        b += (size_t)u->rec_cap * sizeof *u->rec + (size_t)u->ent_cap * sizeof *u->ent +
             (size_t)u->slot_cap * sizeof *u->slot +
             hf * ((sizeof(uint64_t) + sizeof(double)) * (size_t)s->k + sizeof(uint32_t) + 1);
    }
    return b;
}

/* ---- the brute-force reference ------------------------------------------- */

typedef struct {
    unsigned hf;
    uint64_t value;
    double score;
} ref_acc;

static int ref_cmp(const void *pa, const void *pb)
{
    const ref_acc *x = pa, *y = pb;
    if (x->hf != y->hf) return x->hf < y->hf ? -1 : 1;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->value < y->value ? -1 : x->value > y->value;
}

/* Straight from the definition: filter the user's events in the window, sum
 * deltas per (hour, field, value) by linear search, sort, keep k positive. */
int ic__clock_query_ref(const ic_config *cfg, const ic_event *events, size_t n, uint64_t user,
                        int64_t t, int32_t tz_min, ic_clock_view *out)
{
    const int F = cfg->n_clock;
    int64_t b = t;
    if (cfg->refresh == IC_REFRESH_DAILY) b = ic_local_day(t, tz_min) * DAY - (int64_t)tz_min * 60;
    int64_t a = b - (int64_t)cfg->window_days * DAY;
    memset(out, 0, sizeof *out);
    out->n_fields = F;
    out->k = cfg->top_k;
    ref_acc *acc = NULL;
    size_t na = 0, cap = 0;
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        const ic_event *ev = &events[i];
        if (ev->user != user || ev->ts < a || ev->ts >= b) continue;
        seen = 1;
        double d = 0;
        for (int j = 0; j < cfg->n_actions; j++) d += (double)cfg->action[j].weight * (double)ev->action[j];
        float delta = (float)d;
        unsigned h = (unsigned)ic_local_hour(ev->ts, ev->tz_min);
        for (int f = 0; f < F; f++) {
            int fi = cfg->clock_field[f];
            for (int j = ev->voff[fi]; j < ev->voff[fi + 1]; j++) {
                if (!ev->val[j]) continue;
                unsigned hf = h * (unsigned)F + (unsigned)f;
                size_t q = 0;
                while (q < na && !(acc[q].hf == hf && acc[q].value == ev->val[j])) q++;
                if (q == na) {
                    if (na == cap) acc = ic__xrealloc(acc, (cap = cap ? 2 * cap : 64) * sizeof *acc);
                    acc[na++] = (ref_acc){hf, ev->val[j], 0};
                }
                acc[q].score += delta;
            }
        }
    }
    if (na) qsort(acc, na, sizeof *acc, ref_cmp);
    for (size_t q = 0; q < na; q++) {
        int h = (int)acc[q].hf / F, f = (int)acc[q].hf % F;
        if (acc[q].score > 0 && out->n[h][f] < cfg->top_k) {
            out->value[h][f][out->n[h][f]] = acc[q].value;
            out->score[h][f][out->n[h][f]++] = (float)acc[q].score;
        }
    }
    free(acc);
    return seen;
}
