/* negatives.c: sampled negative impressions for a positives-only log.
 *
 * The log is replayed in time order through the event reader. Events with
 * the same time form one moment. For each positive of a moment, K items are
 * drawn without replacement in proportion to their counts of positives
 * strictly before the moment (a Fenwick tree over item counts: O(log n) per
 * draw and per update), with the user's own items of that moment removed
 * first (their counts are taken out of the tree for the draw and put back).
 * Only after the whole moment is written do its positives enter the counts
 * and its items' attributes become "last seen". So a negative never uses
 * the future, and an item is never drawn before its first positive.
 *
 * Deliberately not done: uniform or in-session negatives, negatives for
 * non-positive rows, keeping columns the configuration does not name.
 * Items are told apart by their 64-bit ids (ic_hash of the string).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

/* ---- A Fenwick tree of item counts ------------------------------------------ */

typedef struct {
    int64_t *tree;  /* (cap + 1), 1-based partial sums */
    int64_t *count; /* (cap) each item's count */
    size_t n, cap;
    int64_t total;
} fenwick;

static void fw_add(fenwick *f, size_t i, int64_t d)
{
    f->count[i] += d;
    f->total += d;
    for (size_t k = i + 1; k <= f->cap; k += k & (~k + 1)) f->tree[k] += d;
}

/* Appends an item with count 0; doubling the capacity rebuilds the tree
 * from the counts in O(n). Returns its index. */
static size_t fw_push(fenwick *f)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 1024;
        f->count = ic__xrealloc(f->count, f->cap * sizeof *f->count);
        free(f->tree);
        f->tree = ic__xcalloc(f->cap + 1, sizeof *f->tree);
        for (size_t k = 1; k <= f->n; k++) f->tree[k] = f->count[k - 1];
        for (size_t k = 1; k <= f->cap; k++) {
            size_t up = k + (k & (~k + 1));
            if (up <= f->cap) f->tree[up] += f->tree[k];
        }
    }
    f->count[f->n] = 0;
    return f->n++;
}

/* The item whose cumulative range holds target, 0 <= target < total. */
static size_t fw_find(const fenwick *f, int64_t target)
{
    size_t pos = 0, step = 1;
    while (step * 2 <= f->cap) step *= 2;
    for (; step; step /= 2)
        if (pos + step <= f->cap && f->tree[pos + step] <= target) {
            pos += step;
            target -= f->tree[pos];
        }
    IC_ASSERT(pos < f->n);
    return pos;
}

/* ---- Items: popularity and last-seen attributes ------------------------------ */

typedef struct {
    uint64_t id;
    uint8_t voff[IC_MAX_FIELDS + 1]; /* item-side fields' values in val[] */
    uint64_t val[IC_MAX_VALUES];
} item_attr;

typedef struct {
    const ic_config *cfg;
    ic__u64map index;
    fenwick pop;
    item_attr *attr;   /* per item index */
    size_t attr_cap;
} item_table;

static void items_free(item_table *t)
{
    ic__u64map_free(&t->index);
    free(t->pop.tree);
    free(t->pop.count);
    free(t->attr);
}

/* The index of id, added (count 0, no attributes) if new. */
static size_t items_get(item_table *t, uint64_t id)
{
    const uint32_t *slot = ic__u64map_get(&t->index, id);
    if (slot) return *slot;
    size_t k = fw_push(&t->pop);
    if (k == t->attr_cap) {
        t->attr_cap = t->attr_cap ? t->attr_cap * 2 : 1024;
        t->attr = ic__xrealloc(t->attr, t->attr_cap * sizeof *t->attr);
    }
    memset(&t->attr[k], 0, sizeof t->attr[k]);
    t->attr[k].id = id;
    int added;
    ic__u64map_put(&t->index, id, (uint32_t)k, &added);
    return k;
}

/* Remembers ev's item-side values as the item's last seen. */
static void items_see(item_table *t, size_t k, const ic_event *ev)
{
    item_attr *a = &t->attr[k];
    int n = 0;
    for (int f = 0; f < t->cfg->n_fields; f++) {
        a->voff[f] = (uint8_t)n;
        if (t->cfg->field_is_context[f]) continue;
        for (int v = ev->voff[f]; v < ev->voff[f + 1]; v++) a->val[n++] = ev->val[v];
    }
    a->voff[t->cfg->n_fields] = (uint8_t)n;
}

/* ---- Writing rows ----------------------------------------------------------- */

typedef struct {
    FILE *f;
    const ic_config *cfg;
    const ic_names *names;
    int n_extra;                    /* task columns that are not action columns */
    int extra_task[IC_MAX_TASKS];
} writer;

static void put_csv(const writer *w, const char *s)
{
    char d = w->cfg->delimiter;
    if (!strchr(s, d) && !strchr(s, '"') && !strchr(s, '\n') && !strchr(s, '\r')) {
        fputs(s, w->f);
        return;
    }
    fputc('"', w->f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', w->f);
        fputc(*s, w->f);
    }
    fputc('"', w->f);
}

static void put_name(const writer *w, uint64_t id)
{
    const char *s = ic_names_get(w->names, id);
    IC_ASSERT(s != NULL); /* the reader records every id it returns */
    put_csv(w, s);
}

static void put_values(const writer *w, const uint64_t *val, int from, int to)
{
    /* Quote the joined values as one field if any of them needs it. */
    char d = w->cfg->delimiter;
    int quote = 0;
    for (int v = from; v < to; v++) {
        const char *s = ic_names_get(w->names, val[v]);
        IC_ASSERT(s != NULL);
        quote |= strchr(s, d) || strchr(s, '"') || strchr(s, '\n') || strchr(s, '\r');
    }
    if (quote) fputc('"', w->f);
    for (int v = from; v < to; v++) {
        if (v > from) fputc(w->cfg->multi_sep, w->f);
        for (const char *s = ic_names_get(w->names, val[v]); *s; s++) {
            if (*s == '"' && quote) fputc('"', w->f);
            fputc(*s, w->f);
        }
    }
    if (quote) fputc('"', w->f);
}

static void write_header(writer *w)
{
    const ic_config *c = w->cfg;
    char d = c->delimiter;
    put_csv(w, c->time_col);
    if (c->tz_col[0]) fputc(d, w->f), put_csv(w, c->tz_col);
    fputc(d, w->f), put_csv(w, c->user_col);
    fputc(d, w->f), put_csv(w, c->item_col);
    for (int f = 0; f < c->n_fields; f++) fputc(d, w->f), put_csv(w, c->field[f]);
    for (int a = 0; a < c->n_actions; a++) fputc(d, w->f), put_csv(w, c->action[a].name);
    w->n_extra = 0;
    for (int t = 0; t < c->n_tasks; t++) {
        int dup = 0;
        for (int a = 0; a < c->n_actions; a++) dup |= !strcmp(c->task[t].name, c->action[a].name);
        if (dup) continue;
        w->extra_task[w->n_extra++] = t;
        fputc(d, w->f), put_csv(w, c->task[t].name);
    }
    fputc('\n', w->f);
}

/* Writes ev; with attr non-NULL, as a negative: attr's item and item-side
 * values, ev's context values, actions and labels 0. */
static void write_row(const writer *w, const ic_event *ev, const item_attr *attr)
{
    const ic_config *c = w->cfg;
    char d = c->delimiter;
    fprintf(w->f, "%lld", (long long)ev->ts);
    if (c->tz_col[0]) fprintf(w->f, "%c%d", d, (int)ev->tz_min);
    fputc(d, w->f), put_name(w, ev->user);
    fputc(d, w->f), put_name(w, attr ? attr->id : ev->item);
    for (int f = 0; f < c->n_fields; f++) {
        fputc(d, w->f);
        if (attr && !c->field_is_context[f]) put_values(w, attr->val, attr->voff[f], attr->voff[f + 1]);
        else put_values(w, ev->val, ev->voff[f], ev->voff[f + 1]);
    }
    for (int a = 0; a < c->n_actions; a++) fprintf(w->f, "%c%g", d, attr ? 0.0 : (double)ev->action[a]);
    for (int t = 0; t < w->n_extra; t++)
        fprintf(w->f, "%c%g", d, attr ? 0.0 : (double)ev->label[w->extra_task[t]]);
    fputc('\n', w->f);
}

/* ---- Sampling one moment ------------------------------------------------------ */

typedef struct {
    const ic_negatives_opts *o;
    ic_negatives_stats *st;
    item_table items;
    writer w;
    ic_rng rng;
    ic_event *group;   /* the events of one moment */
    size_t n_group, cap_group;
    size_t *held;      /* items whose counts are out of the tree for a draw */
    int64_t *held_n;
    size_t n_held, cap_held;
} sampler;

static int is_positive(const ic_event *ev) { return ev->label[0] > 0.0f; }

/* Takes item k's count out of the tree until restore_held. */
static void hold(sampler *s, size_t k)
{
    int64_t c = s->items.pop.count[k];
    if (c <= 0) return;
    if (s->n_held == s->cap_held) {
        s->cap_held = s->cap_held ? s->cap_held * 2 : 64;
        s->held = ic__xrealloc(s->held, s->cap_held * sizeof *s->held);
        s->held_n = ic__xrealloc(s->held_n, s->cap_held * sizeof *s->held_n);
    }
    s->held[s->n_held] = k;
    s->held_n[s->n_held++] = c;
    fw_add(&s->items.pop, k, -c);
}

static void restore_held(sampler *s)
{
    for (size_t i = 0; i < s->n_held; i++) fw_add(&s->items.pop, s->held[i], s->held_n[i]);
    s->n_held = 0;
}

/* Writes the negatives of positive p of the current moment. */
static void draw_negatives(sampler *s, const ic_event *p)
{
    for (size_t i = 0; i < s->n_group; i++) {
        if (s->group[i].user != p->user) continue;
        const uint32_t *slot = ic__u64map_get(&s->items.index, s->group[i].item);
        if (slot) hold(s, *slot);
    }
    int drawn = 0;
    for (; drawn < s->o->per_positive && s->items.pop.total > 0; drawn++) {
        uint64_t r = (uint64_t)(((unsigned __int128)ic__rng_u64(&s->rng) * (uint64_t)s->items.pop.total) >> 64);
        size_t k = fw_find(&s->items.pop, (int64_t)r);
        write_row(&s->w, p, &s->items.attr[k]);
        hold(s, k);
    }
    restore_held(s);
    s->st->negatives += (uint64_t)drawn;
    s->st->short_positives += drawn < s->o->per_positive;
}

/* Writes the moment's events and their negatives, then lets the moment's
 * positives and attributes into the item table. */
static void flush_moment(sampler *s)
{
    for (size_t i = 0; i < s->n_group; i++) {
        const ic_event *ev = &s->group[i];
        write_row(&s->w, ev, NULL);
        if (is_positive(ev)) {
            s->st->positives++;
            draw_negatives(s, ev);
        } else {
            s->st->passed++;
        }
    }
    for (size_t i = 0; i < s->n_group; i++) {
        size_t k = items_get(&s->items, s->group[i].item);
        items_see(&s->items, k, &s->group[i]);
        if (is_positive(&s->group[i])) fw_add(&s->items.pop, k, 1);
    }
    s->n_group = 0;
}

static void group_push(sampler *s, const ic_event *ev)
{
    if (s->n_group == s->cap_group) {
        s->cap_group = s->cap_group ? s->cap_group * 2 : 16;
        s->group = ic__xrealloc(s->group, s->cap_group * sizeof *s->group);
    }
    s->group[s->n_group++] = *ev;
}

/* ---- Public ------------------------------------------------------------------ */

/* Replays the reader into the sampler; returns IC_OK or the reader's error. */
static ic_status replay(sampler *s, ic_reader *r, ic_error *err)
{
    ic_event ev;
    int rc;
    while ((rc = ic_reader_next(r, &ev, err)) == 1) {
        s->st->rows_in++;
        if (s->n_group && s->group[0].ts != ev.ts) flush_moment(s);
        group_push(s, &ev);
    }
    if (rc < 0) return (ic_status)rc;
    flush_moment(s);
    return IC_OK;
}

/* Samples from r into f (the caller opens and closes both). */
static ic_status sample_to(const ic_config *cfg, ic_reader *r, const ic_names *names, FILE *f,
                           const ic_negatives_opts *o, ic_negatives_stats *st, ic_error *err)
{
    sampler sm = {.o = o, .st = st, .items = {.cfg = cfg}, .w = {f, cfg, names, 0, {0}}};
    ic__rng_seed(&sm.rng, o->seed);
    write_header(&sm.w);
    ic_status s = replay(&sm, r, err);
    st->items = sm.items.pop.n;
    items_free(&sm.items);
    free(sm.group);
    free(sm.held);
    free(sm.held_n);
    return s;
}

ic_status ic_negatives_run(const ic_config *cfg, const char *in_path, const char *out_path,
                           const ic_negatives_opts *o, ic_negatives_stats *st, ic_error *err)
{
    ic_negatives_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (o->per_positive < 1)
        return ic__fail(err, IC_ERR_ARG, "negatives: K must be at least 1 (got %d)", o->per_positive);
    if (cfg->n_tasks < 1)
        return ic__fail(err, IC_ERR_ARG, "negatives: the configuration has no task (label) column");
    ic_names *names = ic_names_create();
    ic_reader *r = NULL;
    ic_status s = ic_reader_open(&r, in_path, cfg, IC_BAD_ROWS_FAIL, names, err);
    int to_stdout = !strcmp(out_path, "-");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *f = NULL;
    if (s == IC_OK) {
        f = to_stdout ? stdout : fopen(tmp, "wb");
        if (!f) s = ic__fail(err, IC_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    if (f) {
        s = sample_to(cfg, r, names, f, o, st, err);
        int bad = fflush(f) != 0 || ferror(f);
        if (!to_stdout) {
            bad |= fsync(fileno(f)) != 0;
            bad |= fclose(f) != 0;
            if (s == IC_OK && (bad || rename(tmp, out_path) != 0))
                s = ic__fail(err, IC_ERR_IO, "%s: write failed: %s", out_path, strerror(errno));
            if (s != IC_OK) remove(tmp);
        } else if (s == IC_OK && bad) {
            s = ic__fail(err, IC_ERR_IO, "stdout: write failed");
        }
    }
    ic_reader_close(r);
    ic_names_free(names);
    return s;
}
