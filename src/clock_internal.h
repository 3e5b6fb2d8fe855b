/* clock_internal.h: the Interest Clock store's layout, shared by clock.c
 * (apply, query) and clock_io.c (save, load), and the brute-force reference
 * used by the tests and the benchmark. Not part of the public API.
 *
 * A user is a 128-byte header in the store's dense users[] array and two
 * blocks of memory from the store's pool: blk, holding its clock (each
 * part grown by doubling), and rec, its record ring:
 *   cidx[IC__CLK_HF]    uint8: row index + 1 of each (hour, field) list, 0 =
 *                       the list has no entry yet
 *   rows[row_cap]       one row per (hour, field) list that has entries:
 *                       its cached top-k (float scores, then values): with
 *                       cidx, a view's index and lists (iclock.h), so a
 *                       query copies both in one piece; stride
 *                       ic__clk_row_bytes(k) (40 bytes at k = 3)
 *   heads[row_cap]      uint32: each row's first entry (IC__CLK_NONE if
 *                       none), apart from the rows so that a query, which
 *                       copies the rows, reads fewer lines; rounded up to
 *                       an even count so the entries stay 8-byte aligned
 *   ent[ent_cap]        one per (hour, field, value) seen: running score,
 *                       linked into its (hour, field) list
 *   slot[slot_cap]      open addressing (hf, value) -> entry index + 1 in
 *                       the low IC__CLK_SLOT_BITS bits, the top 8 bits of
 *                       the pair's hash above (a probe reads an entry only
 *                       when they match); a pair's home slot lies in its
 *                       hour's region of the table (clock.c, "Hash slots")
 *   hcount[IC_HOURS]    uint32: the entries of each hour (live or dead),
 *                       which size the table
 * and in a block of its own, so that a ring resize copies only records
 * and a move of the clock part none (1-1.5 x its live words, below):
 *   rec[rec_cap]        rec[start .. end) every retained event, in time
 *                       order, as 32-bit words: its time (- u->base), its
 *                       score (float bits), then one ref per clock value
 *                       (the entry index, or IC__CLK_RNONE for an event
 *                       without clock values, which so still counts as
 *                       "an event in the window"), the first flagged
 *                       IC__CLK_FIRST and the last IC__CLK_LAST: 20 bytes
 *                       for three values, where a record per value took
 *                       36. rec[lo .. hi) are the events inside the last
 *                       query's window: exactly those summed into
 *                       ent[].score. start, lo, hi and end are word
 *                       indices at an event's first word.
 * dirty[] marks the lists whose cached top-k is stale.
 *
 * A light user (blk == NULL) has no block: until its live
 * records pass s->light_max it keeps only srec[start .. end), one per
 * (event, clock value) with the value inline, and a query sums its window
 * from them (clock.c, "Light users"); a user with a block is light again
 * once its ring falls to s->light_max words. lo, hi, n_in and the block's
 * fields are unused then. */
#ifndef IC_CLOCK_INTERNAL_H
#define IC_CLOCK_INTERNAL_H

#include "internal.h"

#define IC__CLK_FIRST 0x80000000u  /* ref word: its event's first ref */
#define IC__CLK_LAST 0x40000000u   /* ref word: its event's last ref */
#define IC__CLK_REF 0x00ffffffu    /* ref word: the entry index */
#define IC__CLK_RNONE IC__CLK_REF  /* ref word: no entry (an event without clock values) */
#define IC__CLK_NONE 0x7fffffffu   /* list end: no entry */
#define IC__CLK_HF (IC_HOURS * IC_MAX_CLOCK_FIELDS)

/* The word of a user's ring after its event that starts at word i: the
 * refs, at i + 2 on, end at the one flagged IC__CLK_LAST. */
static inline uint32_t ic__rec_next(const uint32_t *w, uint32_t i)
{
    for (i += 2; !(w[i] & IC__CLK_LAST); i++) {}
    return i + 1;
}
/* The first word of the event that ends just before word i (the refs
 * before i go back to the one flagged IC__CLK_FIRST, then the score and
 * the time). */
static inline uint32_t ic__rec_prev(const uint32_t *w, uint32_t i)
{
    for (i--; !(w[i] & IC__CLK_FIRST); i--) {}
    return i - 2;
}
/* The score of the event that starts at word i. */
static inline float ic__rec_delta(const uint32_t *w, uint32_t i)
{
    float d;
    memcpy(&d, &w[i + 1], sizeof d);
    return d;
}

/* A light user's record, 16 bytes: one per (event, clock value), in time
 * order; an event without clock values leaves one with list IC__CLK_SNONE.
 * tf packs the event's time - u->base (low IC__CLK_STBITS bits: a store has
 * light users only while W + 2 days < 2^24 s, 194 days), the list hf (7
 * bits) and, in the top bit, whether it is its event's first record. */
typedef struct {
    uint64_t value;  /* value id (0 with IC__CLK_SNONE) */
    uint32_t tf;     /* t | hf << 24 | first << 31 */
    float delta;     /* the event's score */
} ic__clk_srec;
#define IC__CLK_SNONE 127u
#define IC__CLK_STBITS 24
_Static_assert(IC__CLK_HF < IC__CLK_SNONE, "a list index fits 7 bits");
static inline uint32_t ic__srec_t(const ic__clk_srec *r) { return r->tf & ((1u << IC__CLK_STBITS) - 1); }
static inline unsigned ic__srec_hf(const ic__clk_srec *r) { return (r->tf >> IC__CLK_STBITS) & 127u; }
static inline int ic__srec_first(const ic__clk_srec *r) { return (int)(r->tf >> 31); }
/* The most (hour, field, value) entries a user with a block may hold: the
 * entry index + 1 fits a hash slot's low 24 bits. */
#define IC__CLK_SLOT_BITS 24
#define IC__CLK_ENT_MAX ((1u << IC__CLK_SLOT_BITS) - 2)
/* The most records a light user may keep (s->light_max <= this). */
#define IC__CLK_LIGHT_MAX 64u

typedef struct {
    uint64_t value;  /* value id */
    double score;    /* sum of delta over included records */
    uint32_t count;  /* included records; score is reset to 0 at count 0 */
    uint32_t refs;   /* retained records; 0 = dead, reclaimed by compaction */
    uint32_t next;   /* next entry of the same (hour, field) list */
    uint16_t hf;     /* hour * n_clock + field */
    uint16_t pad;
} ic__clk_entry;

/* The fixed part of a row; its k float scores follow it, then, at
 * ic__clk_val_off(k) (8-byte aligned), its k u64 values. A row ranks by
 * the float scores it shows (iclock.h), so it needs no double. */
typedef struct {
    uint8_t n;       /* places of the cached top-k filled */
    uint8_t pad[3];
} ic__clk_row;

typedef struct {
    uint64_t id;
    int64_t base;             /* record times are ts - base */
    int64_t oldest;           /* base + rec[start] (srec[start]'s time) if any event */
    uint32_t start, lo, hi, end, rec_cap; /* words of rec (records of srec) */
    uint32_t n_in;            /* included events */
    uint32_t n_ent, ent_cap, n_dead, slot_cap;
    uint32_t n_sorted;        /* entries at the last compaction (grouped by list) */
    uint8_t n_rows, row_cap;
    uint64_t dirty[2];        /* bit hf: the cached top-k of hf is stale */
    unsigned char *blk;       /* the block (from the store's pool); starts with cidx, then the rows */
    int64_t newest;           /* the time of the last event if any */
    ic__clk_entry *ent;       /* into blk */
    uint32_t *slot;           /* into blk; slot_cap a power of 2 */
    union {
        uint32_t *rec;        /* its own block (from the store's pool) */
        ic__clk_srec *srec;   /* the same, for a light user (blk NULL) */
    };
} ic__clk_user;
_Static_assert(sizeof(ic__clk_user) == 128, "a user header is two cache lines");

typedef struct ic__pool ic__pool;

struct ic_clock_store {
    ic_config cfg;            /* copy of the creating configuration */
    ic__pool *pool;           /* the users' blocks come from here (pool.c) */
    int F, k;                 /* clock fields, top-k */
    size_t row_bytes;         /* ic__clk_row_bytes(k) */
    size_t val_off;           /* ic__clk_val_off(k) */
    int64_t window;           /* W in seconds */
    double weight[IC_MAX_ACTIONS];
    ic__clk_user *users;      /* dense, in no particular order; 64-byte aligned */
    size_t n_users, users_cap;
    uint64_t *utab;           /* open addressing id -> user index + 1, tagged (clock.c) */
    size_t utab_cap;          /* a power of 2 */
    int64_t last_ts;          /* latest applied event, INT64_MIN before any */
    int64_t pruned_below;     /* records older than this may be gone */
    size_t sweep;             /* round-robin cursor of the expiry sweep */
    size_t recent;            /* users[] index of the last queried user: the
                               * engine queries a user, then applies its event */
    uint32_t hf_mul;          /* ceil(2^16 / F): hf * hf_mul >> 16 is hf's hour */
    uint32_t light_max;       /* records a light user keeps before it gets a
                               * block (IC__CLK_LIGHT_MAX; 0: every user has one) */
    uint32_t ent_max;         /* entries a user may hold (IC__CLK_ENT_MAX) */
};

/* Where a row's values start for top-k k: after the fixed part and k
 * float scores, 8-byte aligned. */
static inline size_t ic__clk_val_off(int k) { return (sizeof(ic__clk_row) + 4 * (size_t)k + 7) & ~(size_t)7; }
/* Bytes of one row for top-k k: the fixed part, k scores, k values. */
static inline size_t ic__clk_row_bytes(int k) { return ic__clk_val_off(k) + 8 * (size_t)k; }

/* For tests: sets the records a light user keeps before it gets a block
 * (0..IC__CLK_LIGHT_MAX; 0: none is light). Only on an empty store. */
void ic__clock_set_light_max(ic_clock_store *s, uint32_t n);
/* For tests: sets the entries a user may hold (IC__CLK_LIGHT_MAX ..
 * IC__CLK_ENT_MAX). */
void ic__clock_set_ent_max(ic_clock_store *s, uint32_t n);
/* Gives light user u a block (its records become ordinary ones, none yet
 * inside a window); no-op for a user that has one. Other users stay where
 * they are. */
void ic__clock_user_to_big(ic_clock_store *s, ic__clk_user *u);

/* Appends a record to light user u (at most s->light_max records in all;
 * ts >= its newest; hf IC__CLK_SNONE with value 0 for an event without
 * clock values; first: the record starts its event). */
void ic__clock_light_push(ic_clock_store *s, ic__clk_user *u, int64_t ts, float delta, unsigned hf, uint64_t value,
                          int first);

/* The user with id, or NULL. */
ic__clk_user *ic__clock_user_find(const ic_clock_store *s, uint64_t id);
/* Adds a user with no records (id must be new); returns it. */
ic__clk_user *ic__clock_user_add(ic_clock_store *s, uint64_t id);
/* Entry index of (hf, value) in u, created with no records if new. May
 * move u's block (u->ent and the other block pointers change). */
uint32_t ic__clock_entry_get(ic_clock_store *s, ic__clk_user *u, unsigned hf, uint64_t value);
/* Appends an event of time ts and score delta (ts must be >= the last
 * one's) with n > 0 refs: entry indices, or IC__CLK_RNONE alone for an
 * event without clock values (its entries' refs counts are the caller's).
 * Moves u's records (never its block) when they need room. */
void ic__clock_rec_push(ic_clock_store *s, ic__clk_user *u, int64_t ts, float delta, const uint32_t *refs, uint32_t n);

/* The brute-force reference: the clock of user at t computed from scratch
 * from events[0..n) (any order; events at or after t are ignored), with the
 * same window, hour, score and tie rules as the store. Returns 1 if one of
 * the user's events lies in the window, else 0 (view empty). */
int ic__clock_query_ref(const ic_config *cfg, const ic_event *events, size_t n,
                        uint64_t user, int64_t t, int32_t tz_min, ic_clock_view *out);

#endif
