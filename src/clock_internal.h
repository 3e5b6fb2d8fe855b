/* clock_internal.h: the Interest Clock store's layout, shared by clock.c
 * (apply, query) and clock_io.c (save, load), and the brute-force reference
 * used by the tests and the benchmark. Not part of the public API.
 *
 * Shape of one user's state (HF = 24 * n_clock (hour, field) lists):
 *   rec[start .. end)   every retained contribution, in time order: one per
 *                       (event, clock value); an event without clock values
 *                       leaves one record with no entry, so it still counts
 *                       as "an event in the window".
 *   rec[lo .. hi)       the contributions inside the last query's window:
 *                       exactly those summed into ent[].score.
 *   ent[]               one per (hour, field, value) seen: running score,
 *                       linked into its (hour, field) list.
 *   slot[]              open addressing (hf, value) -> entry index + 1.
 *   head[HF]            the first entry of each (hour, field) list.
 *   topn[HF], topv[HF*k], tops[HF*k]: the cached top-k (values, scores) of
 *                       each list, laid out for copying into a view;
 *                       dirty[] marks the lists whose cache is stale. */
#ifndef IC_CLOCK_INTERNAL_H
#define IC_CLOCK_INTERNAL_H

#include "internal.h"

#define IC__CLK_FIRST 0x80000000u  /* rec.ref: first record of its event */
#define IC__CLK_NONE 0x7fffffffu   /* rec.ref / list end: no entry */
#define IC__CLK_HF (IC_HOURS * IC_MAX_CLOCK_FIELDS)

typedef struct {
    int64_t ts;     /* the event's time, Unix seconds */
    float delta;    /* the event's score: sum_a weight_a * action_a */
    uint32_t ref;   /* entry index (or IC__CLK_NONE) | IC__CLK_FIRST */
} ic__clk_rec;

typedef struct {
    uint64_t value;  /* value id */
    double score;    /* sum of delta over included records */
    uint32_t count;  /* included records; score is reset to 0 at count 0 */
    uint32_t refs;   /* retained records; 0 = dead, reclaimed by compaction */
    uint32_t next;   /* next entry of the same (hour, field) list */
    uint16_t hf;     /* hour * n_clock + field */
} ic__clk_entry;

typedef struct {
    uint64_t id;
    ic__clk_rec *rec;
    uint32_t rec_cap, start, lo, hi, end;
    uint32_t n_in;            /* included records flagged IC__CLK_FIRST */
    ic__clk_entry *ent;
    uint32_t n_ent, ent_cap, n_dead;
    uint32_t *slot;           /* entry index + 1, 0 = empty; slot_cap a power of 2 */
    uint32_t slot_cap;
    uint32_t n_sorted;        /* entries at the last compaction (grouped by list) */
    int64_t oldest;           /* rec[start].ts if any record */
    uint64_t *topv;           /* (HF, k): cached top-k values; owns the block */
    double *tops;             /* (HF, k): their scores */
    uint32_t *head;           /* (HF): first entry of each list */
    uint8_t *topn;            /* (HF): places filled */
    uint64_t dirty[2];        /* bit hf: the cached top-k of hf is stale */
} ic__clk_user;

struct ic_clock_store {
    ic_config cfg;            /* copy of the creating configuration */
    int F, k;                 /* clock fields, top-k */
    int64_t window;           /* W in seconds */
    double weight[IC_MAX_ACTIONS];
    ic__clk_user *users;      /* dense, in no particular order */
    size_t n_users, users_cap;
    uint32_t *utab;           /* open addressing id -> user index + 1 */
    size_t utab_cap;          /* a power of 2 */
    int64_t last_ts;          /* latest applied event, INT64_MIN before any */
    int64_t pruned_below;     /* records older than this may be gone */
    size_t sweep;             /* round-robin cursor of the expiry sweep */
};

/* The user with id, or NULL. */
ic__clk_user *ic__clock_user_find(const ic_clock_store *s, uint64_t id);
/* Adds a user with no records (id must be new); returns it. */
ic__clk_user *ic__clock_user_add(ic_clock_store *s, uint64_t id);
/* Entry index of (hf, value) in u, created with no records if new. */
uint32_t ic__clock_entry_get(ic_clock_store *s, ic__clk_user *u, unsigned hf, uint64_t value);
/* Appends a record (ts must be >= the last record's). */
void ic__clock_rec_push(ic__clk_user *u, int64_t ts, float delta, uint32_t ref);

/* The brute-force reference: the clock of user at t computed from scratch
 * from events[0..n) (any order; events at or after t are ignored), with the
 * same window, hour, score and tie rules as the store. Returns 1 if one of
 * the user's events lies in the window, else 0 (view empty). */
int ic__clock_query_ref(const ic_config *cfg, const ic_event *events, size_t n,
                        uint64_t user, int64_t t, int32_t tz_min, ic_clock_view *out);

#endif
