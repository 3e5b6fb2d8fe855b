/* clock_io.c: saving and loading the Interest Clock store in the
 * versioned, checksummed binary format of util.c (ic__bw_* / ic__br_*).
 *
 * Payload (version 1, host-endian):
 *   clock config: n_clock (i32), per clock field its name (IC_NAME_MAX
 *     bytes), window_days (i32), top_k (i32), n_actions (i32), per action
 *     its name (IC_NAME_MAX bytes) and weight (f32)
 *   last_ts (i64), pruned_below (i64), n_users (u64)
 *   per user: id (u64), n_ent (u32), n_rec (u32),
 *     n_ent x { value (u64), hf (u16) },
 *     n_rec x { ts (i64), delta (f32), ref (u32) }   in time order
 *   a record per (event, clock value): ref is the entry's index, or
 *   0x7fffffff for an event without clock values (one record), with the
 *   top bit set on an event's first record; the records after it carry
 *   the event's ts and delta (the ring keeps them once an event)
 * Running scores and caches are not saved: a loaded user has no records
 * included yet, and its first query sums its window from the records.
 * A light user (clock.c) is saved in the same form, its distinct (value,
 * list) pairs as entries; a loaded user whose records fit a light user
 * is one again (whatever it was when saved), the others get a block.
 * The loader checks every count, index and order, so a file that passes
 * the checksum but is inconsistent is still IC_ERR_CORRUPT, never a crash.
 * Deliberately not here: any text format (see iclock clock --json). */
#include "clock_internal.h"

#include <math.h>

static const char MAGIC[8] = {'I', 'C', 'C', 'L', 'O', 'C', 'K', '1'};
#define VERSION 1u

static void w_i32(ic_bwriter *w, int32_t x) { ic__bw_write(w, &x, sizeof x); }
static void w_name(ic_bwriter *w, const char *s)
{
    char buf[IC_NAME_MAX] = {0};
    ic__strlcpy(buf, s, sizeof buf);
    ic__bw_write(w, buf, sizeof buf);
}

static void write_config(ic_bwriter *w, const ic_config *cfg)
{
    w_i32(w, cfg->n_clock);
    for (int f = 0; f < cfg->n_clock; f++) w_name(w, cfg->field[cfg->clock_field[f]]);
    w_i32(w, cfg->window_days);
    w_i32(w, cfg->top_k);
    w_i32(w, cfg->n_actions);
    for (int a = 0; a < cfg->n_actions; a++) {
        w_name(w, cfg->action[a].name);
        ic__bw_write(w, &cfg->action[a].weight, sizeof(float));
    }
}

/* A light user (no block) in the same form: its distinct (value, list)
 * pairs as the entries, in order of first appearance. */
static void write_light_user(ic_bwriter *w, const ic__clk_user *u)
{
    uint64_t value[IC__CLK_LIGHT_MAX];
    uint16_t hf[IC__CLK_LIGHT_MAX];
    uint32_t ref[IC__CLK_LIGHT_MAX], n_ent = 0, n_rec = u->end - u->start;
    IC_ASSERT(n_rec <= IC__CLK_LIGHT_MAX);
    for (uint32_t i = 0; i < n_rec; i++) {
        const ic__clk_srec *r = &u->srec[u->start + i];
        uint32_t e = IC__CLK_NONE;
        const uint16_t h = (uint16_t)ic__srec_hf(r);
        if (h != IC__CLK_SNONE) {
            for (e = 0; e < n_ent && !(value[e] == r->value && hf[e] == h); e++) {}
            if (e == n_ent) value[n_ent] = r->value, hf[n_ent++] = h;
        }
        ref[i] = e | (ic__srec_first(r) ? IC__CLK_FIRST : 0);
    }
    ic__bw_write(w, &u->id, 8);
    ic__bw_write(w, &n_ent, 4);
    ic__bw_write(w, &n_rec, 4);
    for (uint32_t e = 0; e < n_ent; e++) {
        ic__bw_write(w, &value[e], 8);
        ic__bw_write(w, &hf[e], 2);
    }
    for (uint32_t i = 0; i < n_rec; i++) {
        int64_t ts = u->base + ic__srec_t(&u->srec[u->start + i]);
        ic__bw_write(w, &ts, 8);
        ic__bw_write(w, &u->srec[u->start + i].delta, 4);
        ic__bw_write(w, &ref[i], 4);
    }
}

static void write_user(ic_bwriter *w, const ic__clk_user *u)
{
    if (!u->blk) {
        write_light_user(w, u);
        return;
    }
    uint32_t n_rec = 0; /* the file keeps a record per ref, as a light user's */
    for (uint32_t i = u->start, j; i < u->end; i = j) n_rec += (j = ic__rec_next(u->rec, i)) - i - 2;
    ic__bw_write(w, &u->id, 8);
    ic__bw_write(w, &u->n_ent, 4);
    ic__bw_write(w, &n_rec, 4);
    for (uint32_t e = 0; e < u->n_ent; e++) {
        ic__bw_write(w, &u->ent[e].value, 8);
        ic__bw_write(w, &u->ent[e].hf, 2);
    }
    for (uint32_t i = u->start; i < u->end;) {
        const int64_t ts = u->base + u->rec[i];
        const float delta = ic__rec_delta(u->rec, i);
        uint32_t r;
        i += 2;
        do { /* ref: the entry index (IC__CLK_NONE: none), IC__CLK_FIRST on an event's first */
            r = u->rec[i++];
            const uint32_t e = r & IC__CLK_REF, ref = (e == IC__CLK_RNONE ? IC__CLK_NONE : e) | (r & IC__CLK_FIRST);
            ic__bw_write(w, &ts, 8);
            ic__bw_write(w, &delta, 4);
            ic__bw_write(w, &ref, 4);
        } while (!(r & IC__CLK_LAST));
    }
}

ic_status ic_clock_save(const ic_clock_store *s, const char *path, ic_error *err)
{
    ic_bwriter w;
    ic_status st = ic__bw_open(&w, path, MAGIC, VERSION, err);
    if (st != IC_OK) return st;
    write_config(&w, &s->cfg);
    uint64_t n_users = s->n_users;
    ic__bw_write(&w, &s->last_ts, 8);
    ic__bw_write(&w, &s->pruned_below, 8);
    ic__bw_write(&w, &n_users, 8);
    for (size_t i = 0; i < s->n_users; i++) write_user(&w, &s->users[i]);
    return ic__bw_commit(&w, err);
}

/* ---- loading --------------------------------------------------------------- */

/* Reads a clock-config value and compares it with cfg's. */
static ic_status check_i32(ic_breader *r, const char *what, int32_t want, ic_error *err)
{
    int32_t got;
    ic_status st = ic__br_read(r, &got, 4, err);
    if (st != IC_OK) return st;
    if (got != want)
        return ic__fail(err, IC_ERR_MISMATCH, "%s: saved with %s = %d, the configuration has %d",
                        r->path, what, (int)got, (int)want);
    return IC_OK;
}

static ic_status check_name(ic_breader *r, const char *what, const char *want, ic_error *err)
{
    char got[IC_NAME_MAX], w[IC_NAME_MAX] = {0};
    ic_status st = ic__br_read(r, got, sizeof got, err);
    if (st != IC_OK) return st;
    got[IC_NAME_MAX - 1] = '\0';
    ic__strlcpy(w, want, sizeof w);
    if (strcmp(got, w) != 0)
        return ic__fail(err, IC_ERR_MISMATCH, "%s: saved with %s '%s', the configuration has '%s'",
                        r->path, what, got, w);
    return IC_OK;
}

static ic_status read_config(ic_breader *r, const ic_config *cfg, ic_error *err)
{
    ic_status st = check_i32(r, "clock fields", cfg->n_clock, err);
    for (int f = 0; st == IC_OK && f < cfg->n_clock; f++)
        st = check_name(r, "clock field", cfg->field[cfg->clock_field[f]], err);
    if (st == IC_OK) st = check_i32(r, "window_days", cfg->window_days, err);
    if (st == IC_OK) st = check_i32(r, "top_k", cfg->top_k, err);
    if (st == IC_OK) st = check_i32(r, "actions", cfg->n_actions, err);
    for (int a = 0; st == IC_OK && a < cfg->n_actions; a++) {
        st = check_name(r, "action", cfg->action[a].name, err);
        float wgt;
        if (st == IC_OK) st = ic__br_read(r, &wgt, 4, err);
        if (st == IC_OK && memcmp(&wgt, &cfg->action[a].weight, 4) != 0)
            st = ic__fail(err, IC_ERR_MISMATCH, "%s: saved with action '%s' weight %g, the configuration has %g",
                          r->path, cfg->action[a].name, wgt, cfg->action[a].weight);
    }
    return st;
}

static ic_status corrupt(ic_breader *r, ic_error *err, const char *what, uint64_t user)
{
    return ic__fail(err, IC_ERR_CORRUPT, "%s: corrupt clock store: %s (user %016llx, payload byte %zu)",
                    r->path, what, (unsigned long long)user, r->pos);
}

/* Scratch space of the loader, grown as needed: per saved entry its new
 * index (a user with a block) or its value and list (a light user). */
typedef struct {
    uint32_t *remap;
    uint64_t *value;
    uint16_t *hf;
    size_t cap;
} load_scratch;

/* Reads one user's entries and records into a new user of s: light (clock.c)
 * if its records fit, else with a block. */
static ic_status read_user(ic_clock_store *s, ic_breader *r, load_scratch *sc, ic_error *err)
{
    uint64_t id;
    uint32_t n_ent, n_rec;
    ic_status st = ic__br_read(r, &id, 8, err);
    if (st == IC_OK) st = ic__br_read(r, &n_ent, 4, err);
    if (st == IC_OK) st = ic__br_read(r, &n_rec, 4, err);
    if (st != IC_OK) return st;
    if (ic__br_left(r) / 10 < n_ent || (ic__br_left(r) - (size_t)n_ent * 10) / 16 < n_rec)
        return corrupt(r, err, "counts larger than the file", id);
    if (ic__clock_user_find(s, id)) return corrupt(r, err, "user saved twice", id);
    ic__clk_user *u = ic__clock_user_add(s, id); /* light when the store has light users */
    const int light = s->light_max && n_rec <= s->light_max;
    if (!light) ic__clock_user_to_big(s, u);
    if ((size_t)n_ent + 1 > sc->cap) {
        sc->cap = (size_t)n_ent + 1;
        sc->remap = ic__xrealloc(sc->remap, sc->cap * sizeof *sc->remap);
        sc->value = ic__xrealloc(sc->value, sc->cap * sizeof *sc->value);
        sc->hf = ic__xrealloc(sc->hf, sc->cap * sizeof *sc->hf);
    }
    unsigned n_hf = (unsigned)(IC_HOURS * s->F);
    for (uint32_t e = 0; e < n_ent; e++) {
        uint64_t value;
        uint16_t hf;
        ic__br_read(r, &value, 8, err); /* cannot fail: counts checked */
        ic__br_read(r, &hf, 2, err);
        if (hf >= n_hf || value == 0) return corrupt(r, err, "bad entry", id);
        if (light) sc->value[e] = value, sc->hf[e] = hf;
        else sc->remap[e] = ic__clock_entry_get(s, u, hf, value);
    }
    /* The records of an event (its first flagged IC__CLK_FIRST, the rest with
     * its time and score) become one event of the ring: refs[0..n) wait for
     * the next first record or the end. */
    uint32_t refs[IC_MAX_VALUES], n = 0, in_ev = 0; /* in_ev: the event's records so far */
    int64_t ev_ts = 0;
    float ev_delta = 0;
    for (uint32_t i = 0; i < n_rec; i++) {
        int64_t ts;
        float delta;
        uint32_t ref;
        ic__br_read(r, &ts, 8, err);
        ic__br_read(r, &delta, 4, err);
        ic__br_read(r, &ref, 4, err);
        uint32_t e = ref & ~IC__CLK_FIRST;
        const int first = (ref & IC__CLK_FIRST) != 0;
        if (!isfinite(delta) || (e != IC__CLK_NONE && e >= n_ent))
            return corrupt(r, err, "bad record", id);
        if (!first) {
            if (i == 0 || ts != ev_ts || memcmp(&delta, &ev_delta, sizeof delta) != 0 ||
                in_ev == IC_MAX_VALUES)
                return corrupt(r, err, "record does not continue its event", id);
        } else {
            if (n) ic__clock_rec_push(s, u, ev_ts, ev_delta, refs, n), n = 0;
            /* A user's records span at most W + 2 days: it is pruned before
             * each of its events is recorded. */
            if (ts > s->last_ts || (u->end > u->start && (ts < u->newest || (uint64_t)ts - (uint64_t)u->oldest >
                                                                                   (uint64_t)s->window + 2 * 86400)))
                return corrupt(r, err, "record time out of order or range", id);
            ev_ts = ts, ev_delta = delta, in_ev = 0;
        }
        in_ev++;
        if (light) {
            int none = e == IC__CLK_NONE;
            ic__clock_light_push(s, u, ts, delta, none ? IC__CLK_SNONE : sc->hf[e], none ? 0 : sc->value[e], first);
            continue;
        }
        if (e != IC__CLK_NONE) {
            e = sc->remap[e];
            if (u->ent[e].refs++ == 0) u->n_dead--;
        } else {
            e = IC__CLK_RNONE;
        }
        refs[n++] = e;
    }
    if (n) ic__clock_rec_push(s, u, ev_ts, ev_delta, refs, n);
    return IC_OK;
}

static ic_status read_store(ic_clock_store *s, ic_breader *r, ic_error *err)
{
    ic_status st = read_config(r, &s->cfg, err);
    uint64_t n_users = 0;
    if (st == IC_OK) st = ic__br_read(r, &s->last_ts, 8, err);
    if (st == IC_OK) st = ic__br_read(r, &s->pruned_below, 8, err);
    if (st == IC_OK) st = ic__br_read(r, &n_users, 8, err);
    if (st != IC_OK) return st;
    /* Every apply sets pruned_below to its own horizon (times are ordered). */
    int64_t horizon = s->last_ts == INT64_MIN ? INT64_MIN : s->last_ts - s->window - 2 * 86400;
    if (s->pruned_below != horizon) return corrupt(r, err, "inconsistent store times", 0);
    if (n_users > ic__br_left(r) / 16) return corrupt(r, err, "user count larger than the file", 0);
    load_scratch sc = {0};
    for (uint64_t i = 0; st == IC_OK && i < n_users; i++) st = read_user(s, r, &sc, err);
    free(sc.remap);
    free(sc.value);
    free(sc.hf);
    if (st == IC_OK && ic__br_left(r) != 0) return corrupt(r, err, "bytes after the last user", 0);
    return st;
}

ic_status ic_clock_load(ic_clock_store **out, const char *path, const ic_config *cfg, ic_error *err)
{
    *out = NULL;
    ic_clock_store *s;
    ic_status st = ic_clock_create(&s, cfg, err);
    if (st != IC_OK) return st;
    ic_breader r;
    st = ic__br_open(&r, path, MAGIC, VERSION, err);
    if (st == IC_OK) {
        st = read_store(s, &r, err);
        ic__br_close(&r);
    }
    if (st != IC_OK) {
        ic_clock_free(s);
        return st;
    }
    *out = s;
    return IC_OK;
}
