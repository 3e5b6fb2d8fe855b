/* clock.c: the Interest Clock store. For every user it keeps the
 * contributions of the events of the last W days, per (local hour, clock
 * field, value) running scores, and per (hour, field) the cached top-k, so
 * that applying an event and querying a clock cost O(1) amortised plus the
 * few (hour, field) lists the window's movement touched.
 *
 * How a query stays point-in-time correct: an applied event only appends
 * records to its user's list; scores hold exactly the records of the
 * window of the user's last query, the events rec[lo..hi). A query moves both ends of
 * that window to its own [a, b) (either direction), so events at or after
 * b (already applied, e.g. in the same second) are never seen, and expiry
 * at a is exact whenever the user is next looked at (lazy expiry). Records
 * are dropped for good only below (latest event - W - 2 days), by the
 * user's own events; a sweep that looks at one user header per applied
 * event forgets the users whose records all lie below that horizon. So a
 * user holds at most the records of the W + 2 days before its latest
 * event, and an inactive user is gone within one sweep round.
 *
 * Memory layout (clock_internal.h), chosen because the work is bound by
 * memory latency, not arithmetic: a user is a 128-byte header plus one
 * block (list rows with their cached top-k, entries, hash slots) and a
 * ring of its events (32-bit words: a time, a score and a ref per clock
 * value, 20 bytes for three), so an event touches few cache lines and no
 * allocation happens except when a part doubles or halves; blocks come from the
 * store's pool (pool.c), which keeps freed memory for reuse because a
 * fresh page costs a fault. ic_clock_prefetch runs a pipeline of hints
 * ahead of the events (below) so that the misses of several events
 * overlap. The cached top-k of a
 * list lives in its row in the view's own form (float scores, then
 * values; the list's first entry is kept apart), only lists that have
 * entries have a row, and the block starts with the list index and the
 * rows, so a query copies the view in one memcpy of the block's head:
 * 96 + 40 bytes a list at k = 3, not 24 x fields x 8 places. A light user
 * (at most s->light_max records, most users of a log) has no block, only
 * its records with their values inline, and a query sums its window from
 * them ("Light users" below).
 *
 * Scores: an event's delta is (float)(sum_a (double)weight_a * action_a);
 * a score is the double sum of its deltas and becomes exactly 0 when its
 * last record leaves. With dyadic weights (1, -1, 0.5...) and small counts
 * all sums are exact, so the store equals the brute-force reference
 * (ic__clock_query_ref, at the end of this file) bit for bit; otherwise it
 * may differ from it in the last bits.
 * Ranking: by the float of the score, as the view shows it (a row caches
 * floats: 40-byte rows at k = 3 instead of 56 with doubles), descending,
 * ties by value id ascending; only floats > 0.
 *
 * Not here: saving and loading (clock_io.c), drawing (plot.c). */
#include "clock_internal.h"
#include "pool.h"

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
    s->hf_mul = s->F ? (65536u + (uint32_t)s->F - 1) / (uint32_t)s->F : 0;
    for (unsigned hf = 0; hf < n_hf(s); hf++) IC_ASSERT((hf * s->hf_mul) >> 16 == hf / (unsigned)s->F);
    s->k = cfg->top_k;
    s->row_bytes = ic__clk_row_bytes(s->k);
    s->val_off = ic__clk_val_off(s->k);
    s->window = (int64_t)cfg->window_days * DAY;
    for (int a = 0; a < cfg->n_actions; a++) s->weight[a] = cfg->action[a].weight;
    s->pool = ic__pool_create();
    s->utab_cap = 16;
    s->utab = ic__pool_alloc(s->pool, s->utab_cap * sizeof *s->utab);
    memset(s->utab, 0, s->utab_cap * sizeof *s->utab);
    s->last_ts = INT64_MIN;
    s->pruned_below = INT64_MIN;
    /* Light users keep 24-bit times (clock_internal.h). */
    s->light_max = s->window + 2 * DAY < ((int64_t)1 << IC__CLK_STBITS) ? IC__CLK_LIGHT_MAX : 0;
    s->ent_max = IC__CLK_ENT_MAX;
    *out = s;
    return IC_OK;
}

static void user_release(ic_clock_store *s, const ic__clk_user *u);

void ic_clock_free(ic_clock_store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_users; i++) user_release(s, &s->users[i]);
    ic__pool_release(s->pool, s->users, s->users_cap * sizeof *s->users);
    ic__pool_release(s->pool, s->utab, s->utab_cap * sizeof *s->utab);
    ic__pool_free(s->pool);
    free(s);
}

/* ---- a user's blocks ------------------------------------------------------- */

/* The capacities of a user's block (the records have a block of their own). */
typedef struct {
    uint32_t rows, ent, slot;
} blk_caps;

static blk_caps caps_of(const ic__clk_user *u) { return (blk_caps){u->row_cap, u->ent_cap, u->slot_cap}; }

/* The heads part for rows rows: an even count, so the entries after it
 * stay 8-byte aligned. */
static size_t heads_bytes(uint32_t rows) { return (size_t)((rows + 1u) & ~1u) * sizeof(uint32_t); }

static size_t block_bytes(const ic_clock_store *s, blk_caps c)
{
    return IC__CLK_HF + c.rows * s->row_bytes + heads_bytes(c.rows) + c.ent * sizeof(ic__clk_entry) +
           (c.slot + IC_HOURS) * sizeof(uint32_t);
}

/* Points u's parts into a new block of capacities c (contents undefined). */
static void block_point(const ic_clock_store *s, ic__clk_user *u, unsigned char *blk, blk_caps c)
{
    u->blk = blk;
    u->ent = (ic__clk_entry *)(blk + IC__CLK_HF + c.rows * s->row_bytes + heads_bytes(c.rows));
    u->slot = (uint32_t *)(u->ent + c.ent);
    u->row_cap = (uint8_t)c.rows, u->ent_cap = c.ent, u->slot_cap = c.slot;
}

/* A new block for capacities at least c from the store's pool (contents
 * undefined), pointed to by u: the pool rounds a block up to its class (up
 * to 25%), so the rest holds more entries, as many as c's hash slots take. */
static void block_new(ic_clock_store *s, ic__clk_user *u, blk_caps c)
{
    const size_t bytes = block_bytes(s, c);
    const uint32_t spare = (uint32_t)((ic__pool_class_bytes(bytes) - bytes) / sizeof(ic__clk_entry));
    const uint32_t slot_max = c.slot / 4 * 3 - 1; /* slots_fit(slot_max + 1, c.slot) */
    if (slot_max > c.ent) c.ent += spare < slot_max - c.ent ? spare : slot_max - c.ent;
    block_point(s, u, ic__pool_alloc(s->pool, block_bytes(s, c)), c);
}

/* Gives u's block back to the pool (u may be a copy of the header). */
static void block_release(ic_clock_store *s, const ic__clk_user *u)
{
    ic__pool_release(s->pool, u->blk, block_bytes(s, caps_of(u)));
}

static inline int is_light(const ic__clk_user *u) { return u->blk == NULL; }

/* Gives both of u's blocks back (a light user's records only). */
static void user_release(ic_clock_store *s, const ic__clk_user *u)
{
    if (is_light(u)) {
        ic__pool_release(s->pool, u->srec, (size_t)u->rec_cap * sizeof *u->srec);
        return;
    }
    block_release(s, u);
    ic__pool_release(s->pool, u->rec, (size_t)u->rec_cap * sizeof *u->rec);
}

static inline ic__clk_row *row_at(const ic_clock_store *s, const ic__clk_user *u, unsigned i)
{
    return (ic__clk_row *)(u->blk + IC__CLK_HF + i * s->row_bytes);
}

/* The row of list hf (it must have one). */
static inline ic__clk_row *row_of(const ic_clock_store *s, const ic__clk_user *u, unsigned hf)
{
    return row_at(s, u, u->blk[hf] - 1u);
}

static inline float *row_scores(ic__clk_row *r) { return (float *)(r + 1); } /* (k) */
static inline uint64_t *row_values(const ic_clock_store *s, ic__clk_row *r)     /* (k) */
{
    return (uint64_t *)((unsigned char *)r + s->val_off);
}

/* The first entries of u's rows' lists (row_cap), just before the entries. */
static inline uint32_t *heads_of(const ic__clk_user *u)
{
    return (uint32_t *)((unsigned char *)u->ent - heads_bytes(u->row_cap));
}

static uint64_t entry_hash(unsigned hf, uint64_t value) { return mix64(value + hf * 0x9E3779B97F4A7C15ull); }

/* Hash slots (clock_internal.h): the entry index + 1 below, the top 8 bits
 * of the pair's hash (its tag) above. A probe reads an entry only when the
 * tags match: without them a lookup read 2.3 entries on the Zipf log of
 * bench_clock (1.8 on the simulator's), each a cache line of its own. */
#define SLOT_IDX ((1u << IC__CLK_SLOT_BITS) - 1)
static inline uint32_t slot_tag(uint64_t h) { return (uint32_t)(h >> 56) << IC__CLK_SLOT_BITS; }
static inline uint32_t slot_entry(uint32_t x) { return (x & SLOT_IDX) - 1; } /* x != 0 */

/* n entries fit `slots` hash slots: a load of at most 3/4. The tags keep
 * longer probes cheap (a probe reads an entry only when its tag matches);
 * against a load of 1/2 the store holds 6% less memory on the simulator's
 * log and 2% less on the Zipf log, for ~1% more instructions an event
 * (docs/PERFORMANCE.md). */
static inline int slots_fit(uint64_t n, uint64_t slots) { return 4 * n <= 3 * slots; }

/* The hour of list hf: hf / F by a multiply (exact for hf < IC__CLK_HF,
 * checked at creation). */
static inline unsigned hf_hour(const ic_clock_store *s, unsigned hf) { return (hf * s->hf_mul) >> 16; }

/* Hash slots by hour. A pair's home slot lies in its hour's region, the
 * slot_cap / 24 slots from hour * slot_cap / 24 on, at an offset from its
 * hash; a probe runs on from there as in any linear probing, past the
 * region if it must. So the values of one event (one hour) and of the
 * user's next events in that hour find their slots in the same few lines,
 * which stay in cache between them. So that a user whose entries crowd
 * into a few hours does not make one long cluster of them, the table also
 * keeps every hour's region at a load of at most 3/4 (hour_fits, from
 * hcount): up to 24 x the slots of a table with uniform homes for a user
 * active at one hour only (4 bytes a slot, against 32 an entry). On the
 * Zipf log of bench_clock: 1.09-1.10x events/s against uniform homes,
 * 3.4% more bytes per user, 1.16 slots read a lookup (max 18) where there
 * were 2.79 (max 143); the simulator's log: 1.04x, 5.2% more bytes, 1.01
 * slots (was 2.62) (docs/PERFORMANCE.md, "Eighth session"). Above
 * HOUR_RULE_MAX slots the hours share the table as they may (a user with
 * millions of pairs). */
enum { HOUR_RULE_MAX = 1u << 22 };
static inline int hour_fits(uint64_t n, uint64_t slots) { return slots >= HOUR_RULE_MAX || 4 * IC_HOURS * n <= 3 * slots; }

static inline uint32_t slot_home(const ic__clk_user *u, unsigned hour, uint64_t h)
{
    const uint32_t cap = u->slot_cap; /* hour * cap < 2^30: cap <= 2^25 (IC__CLK_ENT_MAX at a load of 3/4) */
    return (hour * cap / IC_HOURS + (uint32_t)(((h & 0xffffffffu) * (cap / IC_HOURS + 1)) >> 32)) & (cap - 1);
}

/* The entries of each hour (IC_HOURS), just after the hash slots. */
static inline uint32_t *hour_counts(const ic__clk_user *u) { return u->slot + u->slot_cap; }

/* Fills u->slot (u->slot_cap slots) from the entries. */
static void slots_fill(const ic_clock_store *s, ic__clk_user *u)
{
    memset(u->slot, 0, u->slot_cap * sizeof *u->slot);
    const uint32_t mask = u->slot_cap - 1;
    for (uint32_t e = 0; e < u->n_ent; e++) {
        const uint64_t h = entry_hash(u->ent[e].hf, u->ent[e].value);
        uint32_t pos = slot_home(u, hf_hour(s, u->ent[e].hf), h);
        while (u->slot[pos]) pos = (pos + 1) & mask;
        u->slot[pos] = (e + 1) | slot_tag(h);
    }
}

/* Moves u into a new block of capacities c (each part at least as large as
 * its contents). The records stay where they are. */
static void user_move(ic_clock_store *s, ic__clk_user *u, blk_caps c)
{
    ic__clk_user old = *u;
    IC_ASSERT(c.rows >= old.n_rows && c.ent >= old.n_ent);
    block_new(s, u, c);
    if (!old.blk) { /* a new user */
        memset(u->blk, 0, IC__CLK_HF);
        memset(u->slot, 0, (c.slot + IC_HOURS) * sizeof *u->slot); /* and the hour counts */
        return;
    }
    memcpy(u->blk, old.blk, IC__CLK_HF);
    memcpy(u->blk + IC__CLK_HF, old.blk + IC__CLK_HF, old.n_rows * s->row_bytes);
    memcpy(heads_of(u), heads_of(&old), old.n_rows * sizeof(uint32_t));
    memcpy(u->ent, old.ent, old.n_ent * sizeof *u->ent);
    memcpy(hour_counts(u), hour_counts(&old), IC_HOURS * sizeof(uint32_t));
    if (c.slot == old.slot_cap) memcpy(u->slot, old.slot, c.slot * sizeof *u->slot);
    else slots_fill(s, u);
    block_release(s, &old);
}

/* Words that fill the pool block of at least cap words: the pool
 * rounds a block up to its class (up to 25%), so the ring uses it all. */
static uint32_t rec_cap_for(uint32_t cap)
{
    return (uint32_t)(ic__pool_class_bytes((size_t)cap * sizeof(uint32_t)) / sizeof(uint32_t));
}

/* Gives u's ring a capacity of cap words (at least the live ones; rounded up
 * to fill its pool block when it changes), moving the live ones to the
 * front. The records have a block of their own, so only they are copied
 * (the pool grows a block in place when it can, and remaps one above 1
 * MiB: ic__pool_resize). */
static void rec_resize(ic_clock_store *s, ic__clk_user *u, uint32_t cap)
{
    uint32_t live = u->end - u->start;
    if (cap != u->rec_cap) cap = rec_cap_for(cap);
    IC_ASSERT(cap >= live && cap > 0);
    if (u->start > 0) {
        memmove(u->rec, u->rec + u->start, (size_t)live * sizeof *u->rec);
        u->lo -= u->start, u->hi -= u->start, u->end = live, u->start = 0;
    }
    if (cap == u->rec_cap) return;
    u->rec = ic__pool_resize(s->pool, u->rec, (size_t)u->rec_cap * sizeof *u->rec, (size_t)cap * sizeof *u->rec,
                             (size_t)live * sizeof *u->rec);
    u->rec_cap = cap;
}

/* ---- the user table: open addressing (linear probing) on the id ---------
 * A slot holds the user's index + 1 in its low 32 bits and the high 32 bits
 * of the id's hash (its tag) above, 0 when empty; the low bits of the hash
 * are its home slot. A probe reads a user's header only when the tags
 * match, so the prefetch hint can follow a probe chain through the table
 * alone: it used to look at the home slot only, and missed the users
 * further along (23% of the events of the simulator's log, 2.4% of the
 * Zipf log's, at a load of up to 1/2). */

static inline uint32_t utab_tag(uint64_t h) { return (uint32_t)(h >> 32); }
static inline uint64_t utab_slot(uint64_t id, size_t index) { return (uint64_t)utab_tag(mix64(id)) << 32 | (index + 1); }
static inline size_t utab_index(uint64_t x) { return (size_t)(uint32_t)x - 1; } /* x != 0 */

/* The slot holding id, or the empty slot where it would go. */
static size_t utab_pos(const ic_clock_store *s, uint64_t id)
{
    const uint64_t h = mix64(id);
    const size_t mask = s->utab_cap - 1;
    size_t pos = h & mask;
    for (uint64_t x; (x = s->utab[pos]); pos = (pos + 1) & mask)
        if (utab_tag(x) == utab_tag(h) && s->users[utab_index(x)].id == id) break;
    return pos;
}

ic__clk_user *ic__clock_user_find(const ic_clock_store *s, uint64_t id)
{
    uint64_t x = s->utab[utab_pos(s, id)];
    return x ? &s->users[utab_index(x)] : NULL;
}

/* ---- the prefetch pipeline (ic_clock_prefetch) ----------------------------
 * DRAM latency here is ~350 ns per dependent miss (bench_memory), and
 * an event's work is a chain of them: user table -> header -> block (rows,
 * records, hash slots) -> entries. A stage that *loads* a missing line stalls
 * the core until it arrives, so each stage below loads only what an earlier
 * stage asked for, and asks for the next level: the user table's slot
 * D_SLOT events ahead, the header D_HEAD ahead, the block's lines D_BLOCK
 * ahead, the entries the event's query and apply will change D_ENT ahead.
 * Every stage only reads the store; addresses may be stale by the time the
 * event comes (other events moved the block): then a hint is wasted. */
enum { D_SLOT = 10, D_HEAD = 6, D_BLOCK = 3, D_ENT = 1 };
enum { HEAD_LINES = 16 }; /* lines of a block's head (index, rows) stage 3 asks for */

static void pf_lines(const void *p, size_t bytes)
{
    const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63), *e = (const char *)p + bytes;
    for (; c < e; c += 64) __builtin_prefetch(c);
}

/* Times whose window arithmetic cannot overflow (iclock.h). */
static inline int ts_ok(int64_t t) { return t > -IC_CLOCK_MAX_TS && t < IC_CLOCK_MAX_TS; }

/* The first slot along user's probe chain whose tag is user's (0 if none):
 * reads the table only. */
static uint64_t pf_slot(const ic_clock_store *s, uint64_t user)
{
    const uint64_t h = mix64(user);
    const size_t mask = s->utab_cap - 1;
    for (size_t pos = h & mask;; pos = (pos + 1) & mask) {
        const uint64_t x = s->utab[pos];
        if (!x || utab_tag(x) == utab_tag(h)) return x;
    }
}

/* The user, or NULL (also when another user with the same tag comes first
 * along the chain: then the hint is lost, never wrong). */
static const ic__clk_user *pf_user(const ic_clock_store *s, uint64_t user)
{
    const uint64_t x = pf_slot(s, user);
    return x && s->users[utab_index(x)].id == user ? &s->users[utab_index(x)] : NULL;
}

static void window_of(const ic_clock_store *s, int64_t t, int32_t tz_min, int64_t *a, int64_t *b);

/* Stage 3: the block's lines the event will touch: the list index, the
 * rows (copied out by the query), the ring around the window's ends, its
 * end and its start (the records the prune drops), the hash slots of the
 * event's values. The stages call the out-of-line ic_local_hour on
 * purpose: with an inline copy of it here the hint ran 314 fewer
 * instructions an event but the whole loop 6-13% slower, in alternating
 * runs (docs/PERFORMANCE.md). */
static void pf_block(const ic_clock_store *s, const ic_event *ev)
{
    const ic__clk_user *u = pf_user(s, ev->user);
    if (!u || !ts_ok(ev->ts)) return;
    if (is_light(u)) { /* all it has */
        pf_lines(&u->srec[u->start], (u->end - u->start) * sizeof *u->srec);
        return;
    }
    /* The list index and the first rows; stage 4 asks for the rest
     * (pf_rows_rest). */
    size_t head = IC__CLK_HF + u->n_rows * s->row_bytes;
    pf_lines(u->blk, head < HEAD_LINES * 64 ? head : HEAD_LINES * 64);
    if (u->end > u->start) {
        pf_lines(&u->rec[u->lo], 2 * 64);
        pf_lines(&u->rec[u->start], 64);
        pf_lines(&u->rec[u->hi > u->start ? u->hi - 1 : u->hi], 64);
        pf_lines(&u->rec[u->end - 1], 2 * sizeof *u->rec);
    }
    const unsigned h = (unsigned)ic_local_hour(ev->ts, ev->tz_min);
    for (int f = 0; f < s->F; f++) {
        int fi = s->cfg.clock_field[f];
        for (int j = ev->voff[fi]; j < ev->voff[fi + 1] && j < IC_MAX_VALUES; j++)
            __builtin_prefetch(&u->slot[slot_home(u, h, entry_hash(h * (unsigned)s->F + (unsigned)f, ev->val[j]))]);
    }
}

/* The rows past the HEAD_LINES that stage 3 asked for, asked for by stage
 * 4, one event ahead: the query's window updates touch some of them and its
 * copy reads them all. Asked for with the rest three events ahead, they
 * made the loop slower (0.93x); at the query's start faster (1.02-1.05x);
 * one event ahead faster still (1.05-1.08x over that); two, the same. */
static void pf_rows_rest(const ic_clock_store *s, const ic__clk_user *u)
{
    const size_t head = IC__CLK_HF + u->n_rows * s->row_bytes;
    if (head > HEAD_LINES * 64) pf_lines(u->blk + HEAD_LINES * 64, head - HEAD_LINES * 64);
}

/* The entries of the events from word i on before time rt (relative to
 * u's base) and before word end, at most 8 refs' worth. */
static void pf_events(const ic__clk_user *u, uint32_t i, uint32_t end, int64_t rt)
{
    const uint32_t *w = u->rec;
    for (uint32_t m = 0, r; i < end && m < 8 && w[i] < rt;) {
        i += 2;
        do {
            r = w[i++], m++;
            if ((r & IC__CLK_REF) != IC__CLK_RNONE) __builtin_prefetch(&u->ent[r & IC__CLK_REF]);
        } while (!(r & IC__CLK_LAST));
    }
}

/* Stage 4: the rest of the rows, and the entries whose scores the event's
 * query (records entering and leaving the window) and apply (the event's
 * values, and the records its prune drops: their reference counts) will
 * change. */
static void pf_entries(const ic_clock_store *s, const ic_event *ev)
{
    const ic__clk_user *u = pf_user(s, ev->user);
    if (!u || !ts_ok(ev->ts) || is_light(u)) return;
    pf_rows_rest(s, u);
    if (u->end > u->start) {
        int64_t a, b;
        window_of(s, ev->ts, ev->tz_min, &a, &b);
        pf_events(u, u->hi, u->end, b - u->base);
        pf_events(u, u->lo, u->hi, a - u->base);
        pf_events(u, u->start, u->end, ev->ts - s->window - 2 * DAY - u->base); /* user_prune's horizon */
    }
    const unsigned h = (unsigned)ic_local_hour(ev->ts, ev->tz_min);
    for (int f = 0; f < s->F; f++) {
        int fi = s->cfg.clock_field[f];
        for (int j = ev->voff[fi]; j < ev->voff[fi + 1] && j < IC_MAX_VALUES; j++) {
            uint32_t x = u->slot[slot_home(u, h, entry_hash(h * (unsigned)s->F + (unsigned)f, ev->val[j]))];
            if (x) __builtin_prefetch(&u->ent[slot_entry(x)]);
        }
    }
}

void ic_clock_prefetch(const ic_clock_store *s, const ic_event *ev, size_t n, size_t i)
{
    if (i + D_SLOT < n) __builtin_prefetch(&s->utab[mix64(ev[i + D_SLOT].user) & (s->utab_cap - 1)]);
    if (i + D_HEAD < n) {
        const uint64_t x = pf_slot(s, ev[i + D_HEAD].user);
        if (x) pf_lines(&s->users[utab_index(x)], sizeof(ic__clk_user));
    }
    if (i + D_BLOCK < n) pf_block(s, &ev[i + D_BLOCK]);
    if (i + D_ENT < n) pf_entries(s, &ev[i + D_ENT]);
}

/* The user table and the users' array come from the store's pool too:
 * huge pages (a 4 KiB page's first touch costs ~11 us on this VM), and
 * memory the pool already holds. */
static void utab_resize(ic_clock_store *s, size_t cap)
{
    ic__pool_release(s->pool, s->utab, s->utab_cap * sizeof *s->utab);
    s->utab_cap = cap;
    s->utab = ic__pool_alloc(s->pool, s->utab_cap * sizeof *s->utab);
    memset(s->utab, 0, s->utab_cap * sizeof *s->utab);
    for (size_t i = 0; i < s->n_users; i++) s->utab[utab_pos(s, s->users[i].id)] = utab_slot(s->users[i].id, i);
}

/* Moves the users to an array of cap places (at least n_users). */
static void users_resize(ic_clock_store *s, size_t cap)
{
    /* Above 1 MiB the pool remaps the pages (nothing copied, no fresh
     * memory for the part already written). */
    s->users = s->users ? ic__pool_resize(s->pool, s->users, s->users_cap * sizeof *s->users, cap * sizeof *s->users,
                                          s->n_users * sizeof *s->users)
                        : ic__pool_alloc(s->pool, cap * sizeof *s->users);
    s->users_cap = cap;
}

ic__clk_user *ic__clock_user_add(ic_clock_store *s, uint64_t id)
{
    IC_ASSERT(s->n_users < UINT32_MAX - 1);
    if ((s->n_users + 1) * 2 > s->utab_cap) utab_resize(s, s->utab_cap * 2);
    if (s->n_users == s->users_cap) users_resize(s, s->users_cap ? s->users_cap * 2 : 64);
    size_t pos = utab_pos(s, id);
    IC_ASSERT(s->utab[pos] == 0);
    ic__clk_user *u = &s->users[s->n_users];
    memset(u, 0, sizeof *u);
    u->id = id;
    s->utab[pos] = utab_slot(id, s->n_users++);
    if (s->light_max) { /* light until its records pass light_max */
        u->rec_cap = s->light_max < 8 ? s->light_max : 8;
        u->srec = ic__pool_alloc(s->pool, u->rec_cap * sizeof *u->srec);
        return u;
    }
    user_move(s, u, (blk_caps){.rows = 8, .ent = 8, .slot = 16});
    u->rec_cap = rec_cap_for(8);
    u->rec = ic__pool_alloc(s->pool, u->rec_cap * sizeof *u->rec);
    return u;
}

/* Removes users[i] (backward-shift deletion keeps probe chains intact). */
static void user_remove(ic_clock_store *s, size_t i)
{
    size_t mask = s->utab_cap - 1, pos = utab_pos(s, s->users[i].id), j = pos;
    IC_ASSERT(s->utab[pos] && utab_index(s->utab[pos]) == i);
    s->utab[pos] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->utab[j]) break;
        size_t want = mix64(s->users[utab_index(s->utab[j])].id) & mask;
        /* Move j back into the hole unless its home lies cyclically in (pos, j]. */
        int stays = pos <= j ? (want > pos && want <= j) : (want > pos || want <= j);
        if (!stays) {
            s->utab[pos] = s->utab[j];
            s->utab[j] = 0;
            pos = j;
        }
    }
    user_release(s, &s->users[i]);
    size_t last = s->n_users - 1;
    if (i != last) {
        s->utab[utab_pos(s, s->users[last].id)] = utab_slot(s->users[last].id, i);
        s->users[i] = s->users[last];
    }
    s->n_users--;
    /* Shrink when a quarter is used, so memory follows the users held. */
    if (s->users_cap > 64 && s->n_users * 4 < s->users_cap) users_resize(s, s->users_cap / 2);
    if (s->utab_cap > 64 && s->n_users * 8 < s->utab_cap) utab_resize(s, s->utab_cap / 2);
}

/* ---- a user's entries: (hour, field, value) -> running score ------------ */

/* The entry index + 1 of (hf, value) whose hash is h (hf's hour: hour),
 * or 0 with *pos at its empty slot. */
static inline uint32_t slot_find(const ic__clk_user *u, unsigned hour, unsigned hf, uint64_t value, uint64_t h,
                                 uint32_t *pos)
{
    const uint32_t mask = u->slot_cap - 1, tag = slot_tag(h);
    uint32_t p = slot_home(u, hour, h), x;
    while ((x = u->slot[p])) {
        if ((x & ~SLOT_IDX) == tag) {
            const ic__clk_entry *e = &u->ent[slot_entry(x)];
            if (e->value == value && e->hf == hf) break;
        }
        p = (p + 1) & mask;
    }
    *pos = p;
    return x & SLOT_IDX;
}

/* Adds an empty row for list hf. Capacity must be there. */
static void row_add(const ic_clock_store *s, ic__clk_user *u, unsigned hf)
{
    IC_ASSERT(u->n_rows < u->row_cap);
    ic__clk_row *r = row_at(s, u, u->n_rows);
    *r = (ic__clk_row){0};
    heads_of(u)[u->n_rows] = IC__CLK_NONE;
    u->blk[hf] = ++u->n_rows;
}

/* Adds the entry (hf, value), whose hash is h and whose empty slot is pos
 * (slot_find), with no records; may move u's block. */
static uint32_t entry_add(ic_clock_store *s, ic__clk_user *u, unsigned hf, uint64_t value, uint64_t h, uint32_t pos)
{
    IC_ASSERT(u->n_ent < s->ent_max); /* callers check (ic_clock_apply, the loader) */
    const unsigned hour = hf_hour(s, hf);
    int new_row = u->blk[hf] == 0;
    blk_caps c = caps_of(u);
    if (u->n_ent == c.ent) c.ent *= 2;
    while (!slots_fit(u->n_ent + 1, c.slot) || !hour_fits(hour_counts(u)[hour] + 1, c.slot)) c.slot *= 2;
    if (new_row && u->n_rows == c.rows) c.rows = c.rows * 2 < n_hf(s) ? c.rows * 2 : n_hf(s);
    if (c.ent != u->ent_cap || c.slot != u->slot_cap || c.rows != u->row_cap) {
        user_move(s, u, c);
        slot_find(u, hour, hf, value, h, &pos);
    }
    hour_counts(u)[hour]++;
    if (new_row) row_add(s, u, hf);
    uint32_t *head = &heads_of(u)[u->blk[hf] - 1u];
    uint32_t e = u->n_ent++;
    u->ent[e] = (ic__clk_entry){.value = value, .next = *head, .hf = (uint16_t)hf};
    *head = e;
    u->slot[pos] = (e + 1) | slot_tag(h);
    u->n_dead++; /* no records yet: the caller references it */
    return e;
}

uint32_t ic__clock_entry_get(ic_clock_store *s, ic__clk_user *u, unsigned hf, uint64_t value)
{
    const uint64_t h = entry_hash(hf, value);
    uint32_t pos, x = slot_find(u, hf_hour(s, hf), hf, value, h, &pos);
    return x ? x - 1 : entry_add(s, u, hf, value, h, pos);
}

/* Drops dead entries (no retained record) and the rows of lists left
 * without entries, and groups the entries by (hour, field) list so that a
 * list walk reads contiguous memory; renumbers the records, the lists and
 * the hash table, in a new block. O(records + entries + HF); run when half
 * the entries are dead or their number has doubled since the last run, so
 * amortised O(1) per record. The cached top-k holds values, not indices,
 * and stays valid; a list without live entries has an empty or stale
 * cache, so it loses its row and its dirty mark. */
static void user_compact(ic_clock_store *s, ic__clk_user *u)
{
    unsigned HF = n_hf(s);
    uint32_t off[IC__CLK_HF + 1] = {0};
    for (uint32_t e = 0; e < u->n_ent; e++)
        if (u->ent[e].refs) off[u->ent[e].hf + 1]++;
    unsigned lists = 0;
    for (unsigned hf = 0; hf < HF; hf++) lists += off[hf + 1] > 0, off[hf + 1] += off[hf];
    /* Room to grow in every part, so that the next new lists and values
     * do not move the block at once: rows for half as many lists again,
     * entries for as many again, hash slots for those entries (a move
     * copies the whole block: scripts/clock_counts.sh, docs/PERFORMANCE.md). */
    uint32_t m = off[HF], ents = m > 4 ? 2 * m : 8, slots = 16, hours[IC_HOURS] = {0}, hmax = 0;
    for (unsigned hf = 0; hf < HF; hf++) hours[hf_hour(s, hf)] += off[hf + 1] - off[hf];
    for (unsigned h = 0; h < IC_HOURS; h++) hmax = hours[h] > hmax ? hours[h] : hmax;
    while (!slots_fit(ents + 1, slots) || !hour_fits(hmax + 1, slots)) slots *= 2;
    ic__clk_user old = *u;
    unsigned rows = lists + lists / 2 + 3 < HF ? lists + lists / 2 + 3 : HF;
    blk_caps c = {rows, ents, slots};
    block_new(s, u, c);
    uint32_t *remap = ic__xmalloc((size_t)old.n_ent * sizeof *remap + 1);
    for (uint32_t e = 0; e < old.n_ent; e++) {
        remap[e] = IC__CLK_NONE;
        if (old.ent[e].refs) u->ent[remap[e] = off[old.ent[e].hf]++] = old.ent[e];
    }
    for (uint32_t i = u->start; i < u->end; i++) { /* the records stay; their entries move */
        uint32_t r;
        for (i += 2;; i++) {
            r = u->rec[i];
            if ((r & IC__CLK_REF) != IC__CLK_RNONE) u->rec[i] = remap[r & IC__CLK_REF] | (r & ~IC__CLK_REF);
            if (r & IC__CLK_LAST) break;
        }
    }
    free(remap);
    u->n_ent = m, u->n_sorted = m, u->n_dead = 0, u->n_rows = 0;
    memset(u->blk, 0, IC__CLK_HF);
    for (unsigned hf = 0, prev = 0; hf < HF; prev = off[hf++]) { /* off[hf] is now the end of list hf */
        if (off[hf] == prev) {
            u->dirty[hf >> 6] &= ~(1ull << (hf & 63));
            continue;
        }
        memcpy(row_at(s, u, u->n_rows), row_at(s, &old, old.blk[hf] - 1u), s->row_bytes);
        uint32_t *head = &heads_of(u)[u->n_rows];
        u->blk[hf] = ++u->n_rows;
        *head = IC__CLK_NONE;
        for (uint32_t e = off[hf]; e-- > prev;) u->ent[e].next = *head, *head = e;
    }
    memcpy(hour_counts(u), hours, sizeof hours);
    slots_fill(s, u);
    block_release(s, &old);
}

/* ---- a user's records and window ----------------------------------------- */

/* Moves the time base to the oldest record, so that ts fits in 32 bits. */
static void rec_rebase(ic__clk_user *u, int64_t ts)
{
    uint32_t shift = u->rec[u->start];
    for (uint32_t i = u->start; i < u->end; i = ic__rec_next(u->rec, i)) u->rec[i] -= shift;
    u->base += shift;
    /* Records span at most W + 2 days (pruned before each push). */
    IC_ASSERT((uint64_t)ts - (uint64_t)u->base <= UINT32_MAX);
}

/* The ring capacity for live words after a resize: room for half as
 * many again (twice as many, plus 8, while small). */
static uint32_t rec_fit(uint32_t live) { return live < 64 ? 2 * live + 8 : live + live / 2; }

/* The ring has fewer than n words left at its end: moves the live
 * words to the front when they fill at most two thirds of it and that
 * leaves n words (at most two words moved per word pushed until the next
 * move), else gives it room for 1.5 x its live words and the n (2 x
 * while small). So the ring stays 1-1.5 x its live words in steady
 * state (memory is most of the store's cost on a fresh machine: a new page
 * costs a fault). */
static void rec_make_room(ic_clock_store *s, ic__clk_user *u, uint32_t n)
{
    uint32_t live = u->end - u->start;
    if (live * 3 <= u->rec_cap * 2 && u->start > 0 && u->rec_cap - live >= n) {
        rec_resize(s, u, u->rec_cap);
        return;
    }
    IC_ASSERT(u->rec_cap < (1u << 30));
    rec_resize(s, u, rec_fit(live + n));
}

void ic__clock_rec_push(ic_clock_store *s, ic__clk_user *u, int64_t ts, float delta, const uint32_t *refs, uint32_t n)
{
    IC_ASSERT(n > 0 && n <= IC_MAX_VALUES && (u->start == u->end || u->newest <= ts));
    if (u->start == u->end) u->base = u->oldest = ts;
    else if ((uint64_t)ts - (uint64_t)u->base > UINT32_MAX) rec_rebase(u, ts);
    if (u->rec_cap - u->end < n + 2) rec_make_room(s, u, n + 2);
    uint32_t *w = u->rec + u->end;
    w[0] = (uint32_t)(ts - u->base);
    memcpy(&w[1], &delta, sizeof delta);
    for (uint32_t j = 0; j < n; j++) w[2 + j] = refs[j];
    w[2] |= IC__CLK_FIRST, w[n + 1] |= IC__CLK_LAST;
    u->end += n + 2;
    u->newest = ts;
}

static inline void mark_dirty(ic__clk_user *u, unsigned hf) { u->dirty[hf >> 6] |= 1ull << (hf & 63); }
static inline int is_dirty(const ic__clk_user *u, unsigned hf) { return (u->dirty[hf >> 6] >> (hf & 63)) & 1; }

/* (score, value) ranks before (score2, value2): score descending, ties by
 * value id ascending. Scores rank as a view shows them: as floats. */
static inline int ranks_before(float score, uint64_t value, float score2, uint64_t value2)
{
    return score > score2 || (score == score2 && value < value2);
}

/* Inserts (sx, vx) into the top k (ts, tv)[0..*n) in rank order if it
 * belongs there; only positive scores enter. It takes the last place (a
 * new one, or the last of a full top) and moves up by swaps: a shift
 * loop here compiled to two memmove calls. */
static inline void topk_insert(float *ts, uint64_t *tv, int *n, int k, float sx, uint64_t vx)
{
    if (!(sx > 0)) return;
    int p = *n;
    if (p == k) {
        if (!ranks_before(sx, vx, ts[k - 1], tv[k - 1])) return;
        p = k - 1;
    } else {
        (*n)++;
    }
    ts[p] = sx, tv[p] = vx;
    for (; p > 0 && ranks_before(ts[p], tv[p], ts[p - 1], tv[p - 1]); p--) {
        const float sc = ts[p];
        ts[p] = ts[p - 1], ts[p - 1] = sc;
        const uint64_t v = tv[p];
        tv[p] = tv[p - 1], tv[p - 1] = v;
    }
}

/* Keeps the cached top-k of x's list in step with a change of x's score
 * from old, without walking the list when the outcome is certain: a rise
 * moves x up or into the top; a fall of a value outside the top changes
 * nothing; a fall inside it moves it down, unless it may now rank below a
 * value outside the top (last place of a full top, or no longer positive):
 * then the list is marked for a full recomputation at the query. Rises
 * and falls are those of the float score (a change that the float does not
 * show changes no rank). */
static void top_update(const ic_clock_store *s, ic__clk_user *u, const ic__clk_entry *x, double old)
{
    unsigned hf = x->hf;
    const float sx = (float)x->score, so = (float)old;
    if (sx == so || is_dirty(u, hf)) return;
    const int k = s->k;
    ic__clk_row *row = row_of(s, u, hf);
    int n = row->n, p = 0;
    uint64_t *tv = row_values(s, row);
    float *ts = row_scores(row);
    while (p < n && tv[p] != x->value) p++;
    if (p == n) { /* not in the top */
        if (sx < so || !(sx > 0)) return;
        if (n == k && !ranks_before(sx, x->value, ts[n - 1], tv[n - 1])) return;
        if (n < k) row->n = (uint8_t)++n;
        p = n - 1; /* takes the last place, then moves up */
    } else if (sx < so && (!(sx > 0) || (n == k && p == n - 1))) {
        mark_dirty(u, hf);
        return;
    }
    tv[p] = x->value, ts[p] = sx;
    while (p > 0 && ranks_before(ts[p], tv[p], ts[p - 1], tv[p - 1])) { /* rise */
        float sc = ts[p]; ts[p] = ts[p - 1], ts[p - 1] = sc;
        uint64_t v = tv[p]; tv[p] = tv[p - 1], tv[p - 1] = v;
        p--;
    }
    while (p + 1 < n && ranks_before(ts[p + 1], tv[p + 1], ts[p], tv[p])) { /* fall */
        float sc = ts[p]; ts[p] = ts[p + 1], ts[p + 1] = sc;
        uint64_t v = tv[p]; tv[p] = tv[p + 1], tv[p + 1] = v;
        p++;
    }
    if (sx < so && n == k && p == n - 1) mark_dirty(u, hf);
}

/* Adds the event at word i to the window's sums (in = 1) or takes it out
 * (in = 0); returns the word after it. Callers pass a constant in, so
 * each call site compiles to its own loop. */
static inline uint32_t ev_move(const ic_clock_store *s, ic__clk_user *u, uint32_t i, int in)
{
    const double d = in ? ic__rec_delta(u->rec, i) : -(double)ic__rec_delta(u->rec, i);
    u->n_in += in ? 1u : -1u;
    for (i += 2;; i++) {
        const uint32_t r = u->rec[i], e = r & IC__CLK_REF;
        if (e != IC__CLK_RNONE) {
            ic__clk_entry *x = &u->ent[e];
            const double old = x->score;
            x->score += d;
            if (in) x->count++;
            else if (--x->count == 0) x->score = 0; /* no residue from inexact sums */
            top_update(s, u, x, old);
        }
        if (r & IC__CLK_LAST) return i + 1;
    }
}
static inline uint32_t ev_include(const ic_clock_store *s, ic__clk_user *u, uint32_t i) { return ev_move(s, u, i, 1); }
static inline uint32_t ev_exclude(const ic_clock_store *s, ic__clk_user *u, uint32_t i) { return ev_move(s, u, i, 0); }

/* Moves the included records to exactly those with a <= ts < b: first
 * grows the interval on each side, then shrinks it, so lo <= hi always.
 * Times compare relative to the user's base (a and b may lie far before
 * it: the differences are then negative, never wrapped). */
static void user_window(const ic_clock_store *s, ic__clk_user *u, int64_t a, int64_t b)
{
    const uint32_t *w = u->rec;
    const int64_t ra = a - u->base, rb = b - u->base;
    while (u->hi < u->end && w[u->hi] < rb) u->hi = ev_include(s, u, u->hi);
    for (uint32_t p; u->lo > u->start && w[p = ic__rec_prev(w, u->lo)] >= ra; u->lo = p) ev_include(s, u, p);
    while (u->lo < u->hi && w[u->lo] < ra) u->lo = ev_exclude(s, u, u->lo);
    for (uint32_t p; u->hi > u->lo && w[p = ic__rec_prev(w, u->hi)] >= rb; u->hi = p) ev_exclude(s, u, p);
}

/* Drops the records older than horizon for good. */
static void user_drop_old(ic_clock_store *s, ic__clk_user *u, int64_t horizon)
{
    int64_t rh = horizon - u->base;
    while (u->start < u->end && u->rec[u->start] < rh) {
        if (u->lo == u->start) {
            u->lo = u->hi > u->start ? ev_exclude(s, u, u->start) : ic__rec_next(u->rec, u->start);
            if (u->hi < u->lo) u->hi = u->lo;
        }
        uint32_t r, i = u->start + 2;
        do {
            r = u->rec[i++];
            if ((r & IC__CLK_REF) != IC__CLK_RNONE && --u->ent[r & IC__CLK_REF].refs == 0) u->n_dead++;
        } while (!(r & IC__CLK_LAST));
        u->start = i;
    }
    if (u->start == u->end) u->start = u->lo = u->hi = u->end = 0;
    else u->oldest = u->base + u->rec[u->start];
    uint32_t live = u->end - u->start;
    uint32_t fit = rec_cap_for(rec_fit(live));
    if (u->rec_cap > 16 && live * 3 < u->rec_cap && fit < u->rec_cap) rec_resize(s, u, fit);
}

static void light_drop_old(ic_clock_store *s, ic__clk_user *u, int64_t horizon);
static void user_to_light(ic_clock_store *s, ic__clk_user *u);

/* Drops old records and reclaims memory; reads only *u when there is
 * nothing to do (the sweep visits users that are cold in cache). A user
 * with a block whose ring falls to light_max words becomes light again:
 * then it has at most light_max records (a ref is a word, and an event
 * two more: with three values, ~38 records where a light user may keep
 * 64, so a user near the limit does not change back and forth). */
static void user_prune(ic_clock_store *s, ic__clk_user *u, int64_t horizon)
{
    if (is_light(u)) {
        if (u->start < u->end && u->oldest < horizon) light_drop_old(s, u, horizon);
        return;
    }
    if (u->start < u->end && u->oldest < horizon) user_drop_old(s, u, horizon);
    if (s->light_max && u->end - u->start <= s->light_max) {
        user_to_light(s, u);
        return;
    }
    if ((u->n_dead > 8 && u->n_dead * 2 > u->n_ent) || (u->n_ent >= 16 && u->n_ent >= 2 * u->n_sorted))
        user_compact(s, u);
}

/* ---- light users: records with their values inline ---------------------
 * Most users of a log have a handful of events in their window (the Zipf
 * log of bench_clock: 36k of 43k users hold under 32 records, 41k under
 * 128). The full layout gives such a user a block of ~2 KB (list index,
 * rows, heads, entries, hash slots) for 5 events, and an event touched
 * most of its ~30 lines. A light user keeps only its records, each with
 * its (hour, field, value): 16 bytes each, and a query sums its window
 * from them, at most light_max records, in time order and in double as
 * the reference does. When an event would take it past light_max records
 * it gets a block (ic__clock_user_to_big), and it is light again once its
 * ring falls to light_max words (user_prune). light_max 64: 32 and 128
 * ran as fast within this machine's noise; 128 used 10% less memory and
 * 19% fewer simulated LL misses an event but 14% more instructions
 * (docs/PERFORMANCE.md). */

/* Moves the time base to the oldest record, so that ts fits in
 * IC__CLK_STBITS bits. */
static void light_rebase(ic__clk_user *u, int64_t ts)
{
    uint32_t shift = ic__srec_t(&u->srec[u->start]);
    for (uint32_t i = u->start; i < u->end; i++) u->srec[i].tf -= shift; /* t >= shift: no borrow */
    u->base += shift;
    IC_ASSERT((uint64_t)ts - (uint64_t)u->base < (1u << IC__CLK_STBITS));
}

/* Moves the live records to the front and gives them cap places. */
static void light_resize(ic_clock_store *s, ic__clk_user *u, uint32_t cap)
{
    uint32_t live = u->end - u->start;
    IC_ASSERT(cap >= live && cap > 0);
    if (u->start > 0) memmove(u->srec, u->srec + u->start, (size_t)live * sizeof *u->srec);
    u->start = 0, u->end = live;
    if (cap != u->rec_cap)
        u->srec = ic__pool_resize(s->pool, u->srec, (size_t)u->rec_cap * sizeof *u->srec,
                                  (size_t)cap * sizeof *u->srec, (size_t)live * sizeof *u->srec);
    u->rec_cap = cap;
}

/* Makes room for m more records at time ts (>= the newest) at the end of
 * light user u's records (live + m <= light_max): a new time base when ts
 * would not fit, the live records moved to the front, or twice the places
 * (at most light_max) when they fill them. */
static inline void light_room(ic_clock_store *s, ic__clk_user *u, int64_t ts, uint32_t m)
{
    IC_ASSERT(is_light(u) && u->end - u->start + m <= s->light_max);
    if (u->start == u->end) u->start = u->end = 0, u->base = u->oldest = ts;
    else if ((uint64_t)ts - (uint64_t)u->base >= (1u << IC__CLK_STBITS)) light_rebase(u, ts);
    if (u->rec_cap - u->end < m) {
        uint32_t live = u->end - u->start, cap = u->rec_cap;
        while (live + m > cap) cap = 2 * cap < s->light_max ? 2 * cap : s->light_max;
        light_resize(s, u, cap);
    }
}

/* (clock_internal.h: the loader's way in; light_room asserts live + 1 <= light_max.) */
void ic__clock_light_push(ic_clock_store *s, ic__clk_user *u, int64_t ts, float delta, unsigned hf, uint64_t value,
                          int first)
{
    light_room(s, u, ts, 1);
    uint32_t tf = (uint32_t)(ts - u->base) | hf << IC__CLK_STBITS | (uint32_t)first << 31;
    u->srec[u->end++] = (ic__clk_srec){.value = value, .tf = tf, .delta = delta};
    u->newest = ts;
}

/* Drops the records older than horizon for good; shrinks the array when
 * it is at most a quarter full. */
static void light_drop_old(ic_clock_store *s, ic__clk_user *u, int64_t horizon)
{
    int64_t rh = horizon - u->base;
    while (u->start < u->end && (int64_t)ic__srec_t(&u->srec[u->start]) < rh) u->start++;
    if (u->start == u->end) u->start = u->end = 0;
    else u->oldest = u->base + ic__srec_t(&u->srec[u->start]);
    uint32_t live = u->end - u->start;
    if (u->rec_cap > 8 && live * 4 <= u->rec_cap) light_resize(s, u, live * 2 > 8 ? live * 2 : 8);
}

void ic__clock_user_to_big(ic_clock_store *s, ic__clk_user *u)
{
    if (!is_light(u)) return;
    ic__clk_srec *r = u->srec;
    uint32_t a = u->start, b = u->end, cap = u->rec_cap;
    int64_t base = u->base;
    u->start = u->lo = u->hi = u->end = u->n_in = 0;
    u->rec_cap = rec_cap_for(rec_fit(b - a));
    u->rec = ic__pool_alloc(s->pool, (size_t)u->rec_cap * sizeof *u->rec);
    user_move(s, u, (blk_caps){.rows = 8, .ent = 8, .slot = 16}); /* blk NULL: a fresh block */
    for (uint32_t i = a, j; i < b; i = j) { /* an event: srec[i] and the records after it not flagged first */
        uint32_t refs[IC_MAX_VALUES], n = 0;
        for (j = i; j < b && (j == i || !ic__srec_first(&r[j])); j++) {
            IC_ASSERT(n < IC_MAX_VALUES);
            uint32_t ref = IC__CLK_RNONE;
            if (ic__srec_hf(&r[j]) != IC__CLK_SNONE) {
                ref = ic__clock_entry_get(s, u, ic__srec_hf(&r[j]), r[j].value);
                if (u->ent[ref].refs++ == 0) u->n_dead--;
            }
            refs[n++] = ref;
        }
        ic__clock_rec_push(s, u, base + ic__srec_t(&r[i]), r[i].delta, refs, n);
    }
    ic__pool_release(s->pool, r, (size_t)cap * sizeof *r);
}

/* (user_prune) u's records with their (list, value) inline, as a light
 * user's; its block and ring go back to the pool, and with them its
 * running scores and cached top-k (a light user's query sums its window). */
static void user_to_light(ic_clock_store *s, ic__clk_user *u)
{
    const ic__clk_user old = *u;
    IC_ASSERT(!is_light(u) && old.end - old.start <= s->light_max);
    uint32_t live = 0; /* records: the refs */
    for (uint32_t i = old.start, j; i < old.end; i = j) live += (j = ic__rec_next(old.rec, i)) - i - 2;
    uint32_t cap = s->light_max < 8 ? s->light_max : 8;
    while (cap < live) cap *= 2; /* as a light user's records grow: cap < 2 live <= 2 light_max */
    if (cap > s->light_max) cap = s->light_max;
    const uint64_t id = u->id;
    memset(u, 0, sizeof *u);
    u->id = id;
    u->newest = old.newest;
    u->rec_cap = cap;
    u->srec = ic__pool_alloc(s->pool, (size_t)cap * sizeof *u->srec);
    if (live) {
        const uint32_t shift = old.rec[old.start]; /* events span at most W + 2 days < 2^24 s */
        u->base = u->oldest = old.base + shift;
        for (uint32_t i = old.start; i < old.end;) { /* an event's refs become records */
            const uint32_t t = old.rec[i] - shift;
            const float delta = ic__rec_delta(old.rec, i);
            uint32_t r;
            for (i += 2;; i++) {
                r = old.rec[i];
                const uint32_t e = r & IC__CLK_REF;
                const unsigned hf = e == IC__CLK_RNONE ? IC__CLK_SNONE : old.ent[e].hf;
                u->srec[u->end++] = (ic__clk_srec){.value = e == IC__CLK_RNONE ? 0 : old.ent[e].value,
                                                   .tf = t | hf << IC__CLK_STBITS | (r & IC__CLK_FIRST),
                                                   .delta = delta};
                if (r & IC__CLK_LAST) break;
            }
            i++;
        }
    }
    block_release(s, &old);
    ic__pool_release(s->pool, old.rec, (size_t)old.rec_cap * sizeof *old.rec);
}

void ic__clock_set_ent_max(ic_clock_store *s, uint32_t n)
{
    IC_ASSERT(n >= IC__CLK_LIGHT_MAX && n <= IC__CLK_ENT_MAX); /* a light user's change fits */
    s->ent_max = n;
}

void ic__clock_set_light_max(ic_clock_store *s, uint32_t n)
{
    IC_ASSERT(s->n_users == 0 && n <= IC__CLK_LIGHT_MAX && (n == 0 || s->light_max));
    s->light_max = n;
}

typedef struct {
    uint64_t value;
    double score;  /* sum of the window's deltas, in time order */
    uint8_t next;  /* the next sum of the same list (index + 1), 0 = none */
} light_acc;

_Static_assert(IC__CLK_LIGHT_MAX < 255, "a light user's sums are indexed by bytes");

/* The clock of light user u over [a, b) into out: the window's records
 * summed per (list, value) in time order, each list's sums chained from
 * head[list] (a light user's list holds one or two values, so a record
 * finds its sum by walking the chain), then each list's top k, lists in
 * order of first appearance. O(records + lists). Returns 1 if a record
 * lies in the window. */
static int light_query(const ic_clock_store *s, const ic__clk_user *u, int64_t a, int64_t b, ic_clock_view *out)
{
    light_acc acc[IC__CLK_LIGHT_MAX];
    uint8_t head[IC__CLK_HF], order[IC__CLK_LIGHT_MAX]; /* acc index + 1, 0 = none; lists seen */
    memset(head, 0, sizeof head);
    const ic__clk_srec *r = u->srec;
    const int64_t ra = a - u->base, rb = b - u->base;
    unsigned n = 0, n_lists = 0;
    int seen = 0;
    for (uint32_t i = u->start; i < u->end && (int64_t)ic__srec_t(&r[i]) < rb; i++) {
        if ((int64_t)ic__srec_t(&r[i]) < ra) continue;
        seen = 1;
        const unsigned hf = ic__srec_hf(&r[i]);
        if (hf == IC__CLK_SNONE) continue;
        const uint64_t v = r[i].value;
        unsigned e = head[hf];
        while (e && acc[e - 1].value != v) e = acc[e - 1].next;
        if (!e) {
            if (!head[hf]) order[n_lists++] = (uint8_t)hf;
            acc[n] = (light_acc){.value = v, .score = 0, .next = head[hf]};
            head[hf] = (uint8_t)(e = ++n);
        }
        acc[e - 1].score += r[i].delta;
    }
    unsigned lists = 0;
    for (unsigned j = 0; j < n_lists; j++) { /* each list's top k straight into its row */
        const unsigned hf = order[j];
        ic__clk_row *row = (ic__clk_row *)(out->lists + lists * s->row_bytes);
        int m = 0;
        for (unsigned e = head[hf]; e; e = acc[e - 1].next)
            topk_insert(row_scores(row), row_values(s, row), &m, s->k, (float)acc[e - 1].score, acc[e - 1].value);
        if (!m) continue; /* the next list takes the row */
        *row = (ic__clk_row){.n = (uint8_t)m};
        out->list[hf] = (uint8_t)++lists;
    }
    out->n_lists = (uint16_t)lists;
    return seen;
}

/* ---- apply ---------------------------------------------------------------- */

/* Visits the next user of the round-robin sweep and forgets it if all its
 * records are older than horizon. Reads only the header's newest (one line,
 * prefetched ahead): the records of a user who is still active are dropped
 * by its own events (user_prune in ic_clock_apply), so a user holds at most
 * the records of the W + 2 days before its latest event, and is forgotten
 * within a sweep round (n_users events) once those too lie beyond the
 * horizon. A user without records has its newest before the horizon of
 * the drop that took its last one, so newest alone decides. */
static void sweep_one(ic_clock_store *s, int64_t horizon)
{
    if (s->n_users == 0) return;
    if (s->sweep >= s->n_users) s->sweep = 0;
    if (s->sweep + 8 < s->n_users) __builtin_prefetch(&s->users[s->sweep + 8].newest);
    ic__clk_user *u = &s->users[s->sweep];
    if (u->newest < horizon)
        user_remove(s, s->sweep);
    else
        s->sweep++;
}

/* 1 when u can take the values of ev (at local hour h) it holds no entry
 * for, after dropping the entries no record holds. */
static int room_for(ic_clock_store *s, ic__clk_user *u, const ic_event *ev, unsigned h)
{
    if (u->n_dead) user_compact(s, u);
    unsigned fresh = 0; /* values without an entry (one repeated in the event counts twice) */
    for (int f = 0; f < s->F; f++) {
        int fi = s->cfg.clock_field[f];
        for (int j = ev->voff[fi]; j < ev->voff[fi + 1]; j++) {
            unsigned hf = h * (unsigned)s->F + (unsigned)f;
            uint32_t pos;
            fresh += ev->val[j] && !slot_find(u, h, hf, ev->val[j], entry_hash(hf, ev->val[j]), &pos);
        }
    }
    return u->n_ent + fresh <= s->ent_max;
}

ic_status ic_clock_apply(ic_clock_store *s, const ic_event *ev, ic_error *err)
{
    /* Window arithmetic (ts - W - 2 days, local days) must not overflow. */
    if (!ts_ok(ev->ts))
        return ic__fail(err, IC_ERR_ARG, "clock: event time %lld is out of range (|t| < 2^62 s)",
                        (long long)ev->ts);
    if (ev->ts < s->last_ts)
        return ic__fail(err, IC_ERR_ORDER,
                        "clock: event at %lld is earlier than the last applied event at %lld",
                        (long long)ev->ts, (long long)s->last_ts);
    s->last_ts = ev->ts;
    int64_t horizon = ev->ts - s->window - 2 * DAY;
    if (horizon > s->pruned_below) s->pruned_below = horizon;

    ic__clk_user *u = s->recent < s->n_users && s->users[s->recent].id == ev->user ? &s->users[s->recent]
                                                                                  : ic__clock_user_find(s, ev->user);
    if (!u) u = ic__clock_user_add(s, ev->user);
    user_prune(s, u, horizon);

    double d = 0;
    for (int a = 0; a < s->cfg.n_actions; a++) d += s->weight[a] * (double)ev->action[a];
    float delta = (float)d;
    unsigned h = (unsigned)ic_local_hour(ev->ts, ev->tz_min);
    if (is_light(u)) {
        unsigned nv = 0; /* the event's clock values */
        for (int f = 0; f < s->F; f++) {
            int fi = s->cfg.clock_field[f];
            IC_ASSERT(ev->voff[fi] <= ev->voff[fi + 1] && ev->voff[fi + 1] <= IC_MAX_VALUES);
            for (int j = ev->voff[fi]; j < ev->voff[fi + 1]; j++) nv += ev->val[j] != 0;
        }
        if (u->end - u->start + (nv ? nv : 1) <= s->light_max) { /* its records, in one push */
            light_room(s, u, ev->ts, nv ? nv : 1);
            const uint32_t t = (uint32_t)(ev->ts - u->base);
            uint32_t first = 1u << 31;
            for (int f = 0; f < s->F; f++) {
                const int fi = s->cfg.clock_field[f];
                const uint32_t tf = t | (h * (unsigned)s->F + (unsigned)f) << IC__CLK_STBITS;
                for (int j = ev->voff[fi]; j < ev->voff[fi + 1]; j++) {
                    if (!ev->val[j]) continue;
                    u->srec[u->end++] = (ic__clk_srec){.value = ev->val[j], .tf = tf | first, .delta = delta};
                    first = 0;
                }
            }
            if (first) /* no clock value: one record, so the event still counts */
                u->srec[u->end++] =
                    (ic__clk_srec){.value = 0, .tf = t | IC__CLK_SNONE << IC__CLK_STBITS | first, .delta = delta};
            u->newest = ev->ts;
            sweep_one(s, horizon);
            return IC_OK;
        }
        ic__clock_user_to_big(s, u);
    }
    if (u->n_ent + IC_MAX_VALUES > s->ent_max && !room_for(s, u, ev, h)) /* rare: near the limit */
        return ic__fail(err, IC_ERR_ARG,
                        "clock: user %016llx would hold more than %u (hour, field, value) pairs in its window; "
                        "event at %lld not applied", (unsigned long long)ev->user, s->ent_max, (long long)ev->ts);
    /* Its entries (found, or added), then its records in one push. */
    uint32_t refs[IC_MAX_VALUES], n = 0;
    for (int f = 0; f < s->F; f++) {
        int fi = s->cfg.clock_field[f];
        IC_ASSERT(ev->voff[fi] <= ev->voff[fi + 1] && ev->voff[fi + 1] <= IC_MAX_VALUES);
        for (int j = ev->voff[fi]; j < ev->voff[fi + 1]; j++) {
            if (!ev->val[j]) continue;
            const uint32_t e = ic__clock_entry_get(s, u, h * (unsigned)s->F + (unsigned)f, ev->val[j]);
            if (u->ent[e].refs++ == 0) u->n_dead--;
            refs[n++] = e;
        }
    }
    if (!n) refs[n++] = IC__CLK_RNONE;
    ic__clock_rec_push(s, u, ev->ts, delta, refs, n);
    sweep_one(s, horizon);
    return IC_OK;
}

/* ---- query ---------------------------------------------------------------- */

/* The window [*a, *b) a query at t sees; daily: the W days before the start
 * of t's local day (in the query's tz_min). */
static void window_of(const ic_clock_store *s, int64_t t, int32_t tz_min, int64_t *a, int64_t *b)
{
    *b = s->cfg.refresh == IC_REFRESH_DAILY ? ic_local_day(t, tz_min) * DAY - (int64_t)tz_min * 60 : t;
    *a = *b - s->window;
}

/* Recomputes the cached top-k of list hf by insertion into its row's k
 * places, ranking the float scores (ranks_before). */
static void user_topk(const ic_clock_store *s, ic__clk_user *u, unsigned hf)
{
    ic__clk_row *row = row_of(s, u, hf);
    int n = 0;
    for (uint32_t e = heads_of(u)[u->blk[hf] - 1u]; e != IC__CLK_NONE; e = u->ent[e].next)
        topk_insert(row_scores(row), row_values(s, row), &n, s->k, (float)u->ent[e].score, u->ent[e].value);
    row->n = (uint8_t)n;
}

/* The view's layout is the block's head: the list index (cidx) and the
 * rows, in this order and form, so a query copies them in one memcpy. */
_Static_assert(offsetof(ic_clock_view, lists) == offsetof(ic_clock_view, list) + IC__CLK_HF,
               "a view's lists follow its index as a block's rows follow cidx");
_Static_assert(sizeof(((ic_clock_view *)0)->list) == IC__CLK_HF, "one index byte per (hour, field)");
_Static_assert(((sizeof(ic__clk_row) + 4 * IC_MAX_TOPK + 7) & ~7) + 8 * IC_MAX_TOPK <= IC_CLOCK_LIST_MAX,
               "a row at the largest k fits a view's list (ic__clk_row_bytes)");
_Static_assert(offsetof(ic__clk_row, n) == 0 && sizeof(ic__clk_row) == 4, "a view list: n, 3 bytes, scores");

/* Sets out's header for s, with no list yet (the index is left as it is). */
static void view_head(const ic_clock_store *s, ic_clock_view *out)
{
    out->n_fields = s->F;
    out->k = s->k;
    out->list_bytes = (uint16_t)s->row_bytes;
    out->val_off = (uint16_t)s->val_off;
    out->n_lists = 0;
}

int ic_clock_query(ic_clock_store *s, uint64_t user, int64_t t, int32_t tz_min, ic_clock_view *out)
{
    view_head(s, out);
    memset(out->list, 0, sizeof out->list);
    if (!ts_ok(t)) return 0; /* (contract: sees nothing) */
    int64_t a, b;
    window_of(s, t, tz_min, &a, &b);
    /* The contract (iclock.h): no query more than a day before the latest
     * applied event; older records than this may already be gone. */
    IC_ASSERT(a >= s->pruned_below && "clock query too far in the past");
    ic__clk_user *u = ic__clock_user_find(s, user);
    if (!u) return 0;
    s->recent = (size_t)(u - s->users);
    if (is_light(u)) return light_query(s, u, a, b, out);
    user_window(s, u, a, b);
    for (int w = 0; w < 2; w++)
        for (uint64_t bits = u->dirty[w]; bits; bits &= bits - 1)
            user_topk(s, u, (unsigned)(w * 64 + __builtin_ctzll(bits)));
    u->dirty[0] = u->dirty[1] = 0;
    if (u->n_in == 0) return 0;
    /* The copy: the index and the rows, one block (most of a query's work
     * once the user's lines are in cache, when it was a store per list). */
    out->n_lists = u->n_rows;
    ic__copy_lines(out->list, u->blk, IC__CLK_HF + u->n_rows * s->row_bytes);
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
    return sizeof *s + ic__pool_in_use(s->pool); /* the tables are pool blocks too */
}

/* ---- views ----------------------------------------------------------------- */

void ic_clock_view_init(ic_clock_view *v, int n_fields, int k)
{
    IC_ASSERT(n_fields >= 1 && n_fields <= IC_MAX_CLOCK_FIELDS && k >= 1 && k <= IC_MAX_TOPK);
    v->n_fields = n_fields;
    v->k = k;
    v->list_bytes = (uint16_t)ic__clk_row_bytes(k);
    v->val_off = (uint16_t)ic__clk_val_off(k);
    v->n_lists = 0;
    memset(v->list, 0, sizeof v->list);
}

void ic_clock_view_set(ic_clock_view *v, int h, int f, int n, const uint64_t *values, const float *scores)
{
    IC_ASSERT(h >= 0 && h < IC_HOURS && f >= 0 && f < v->n_fields && n >= 0 && n <= v->k);
    uint8_t *i = &v->list[h * v->n_fields + f];
    if (!*i) {
        IC_ASSERT(v->n_lists < IC_HOURS * IC_MAX_CLOCK_FIELDS);
        *i = (uint8_t)++v->n_lists;
        memset(v->lists + (*i - 1) * (size_t)v->list_bytes, 0, v->list_bytes);
    }
    unsigned char *l = v->lists + (*i - 1) * (size_t)v->list_bytes;
    l[0] = (uint8_t)n;
    if (n) {
        memcpy(l + 4, scores, (size_t)n * sizeof *scores);
        memcpy(l + v->val_off, values, (size_t)n * sizeof *values);
    }
}

int ic_clock_view_equal(const ic_clock_view *a, const ic_clock_view *b)
{
    if (a->n_fields != b->n_fields || a->k != b->k) return 0;
    for (int h = 0; h < IC_HOURS; h++)
        for (int f = 0; f < a->n_fields; f++) {
            int n = ic_clock_view_n(a, h, f);
            if (n != ic_clock_view_n(b, h, f)) return 0;
            if (n && (memcmp(ic_clock_view_values(a, h, f), ic_clock_view_values(b, h, f), (size_t)n * 8) ||
                      memcmp(ic_clock_view_scores(a, h, f), ic_clock_view_scores(b, h, f), (size_t)n * 4)))
                return 0;
        }
    return 1;
}

/* ---- the brute-force reference ------------------------------------------- */

typedef struct {
    unsigned hf;
    uint64_t value;
    double score;
} ref_acc;

/* By list, then score as the view shows it (float) descending, then value. */
static int ref_cmp(const void *pa, const void *pb)
{
    const ref_acc *x = pa, *y = pb;
    if (x->hf != y->hf) return x->hf < y->hf ? -1 : 1;
    float sx = (float)x->score, sy = (float)y->score;
    if (sx != sy) return sx > sy ? -1 : 1;
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
    ic_clock_view_init(out, F, cfg->top_k);
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
    for (size_t q = 0, q1; q < na; q = q1) { /* a list at a time: [q, q1) */
        uint64_t val[IC_MAX_TOPK];
        float sc[IC_MAX_TOPK];
        int m = 0;
        for (q1 = q; q1 < na && acc[q1].hf == acc[q].hf; q1++)
            if ((float)acc[q1].score > 0 && m < cfg->top_k) val[m] = acc[q1].value, sc[m++] = (float)acc[q1].score;
        if (m) ic_clock_view_set(out, (int)acc[q].hf / F, (int)acc[q].hf % F, m, val, sc);
    }
    free(acc);
    return seen;
}
