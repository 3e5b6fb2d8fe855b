/* embed.c: collisionless embedding tables: a hash table from a 64-bit id to
 * a dense row, growing as ids arrive, with each row's optimizer state kept
 * beside it so updates are sparse (only rows a batch touched).
 *
 * Deliberately not here: initialising rows (model.c draws them from the
 * model's rng), the update rules (optim.c), eviction (rows are kept for
 * the life of the model). */
#include "model.h"

static uint64_t mix(uint64_t x)
{
    /* Ids are usually hashes already, but tests and users may pass small
     * integers: a finaliser spreads them over the table. */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

void ic__emb_init(ic__emb *t, int d, ic_optim_kind opt)
{
    memset(t, 0, sizeof *t);
    t->d = d;
    t->opt = opt;
    t->hcap = 16;
    t->slot = ic__xcalloc(t->hcap, sizeof *t->slot);
}

void ic__emb_free(ic__emb *t)
{
    if (!t) return;
    free(t->ids);
    free(t->rows);
    free(t->s1);
    free(t->s2);
    free(t->steps);
    free(t->mark);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

int64_t ic__emb_find(const ic__emb *t, uint64_t id)
{
    size_t mask = t->hcap - 1;
    for (size_t i = mix(id) & mask;; i = (i + 1) & mask) {
        uint32_t s = t->slot[i];
        if (s == 0) return -1;
        if (t->ids[s - 1] == id) return (int64_t)s - 1;
    }
}

static void rehash(ic__emb *t, size_t hcap)
{
    free(t->slot);
    t->hcap = hcap;
    t->slot = ic__xcalloc(hcap, sizeof *t->slot);
    size_t mask = hcap - 1;
    for (size_t r = 0; r < t->n; r++) {
        size_t i = mix(t->ids[r]) & mask;
        while (t->slot[i]) i = (i + 1) & mask;
        t->slot[i] = (uint32_t)(r + 1);
    }
}

static void *grow(void *p, size_t n, size_t old_n, size_t size)
{
    p = ic__xrealloc(p, n * size);
    memset((char *)p + old_n * size, 0, (n - old_n) * size);
    return p;
}

void ic__emb_reserve(ic__emb *t, size_t n)
{
    IC_ASSERT(n < UINT32_MAX / 2);
    if (n > t->cap) {
        size_t old = t->cap, cap = old ? old : 64, d = t->d;
        while (cap < n) cap *= 2;
        t->ids = grow(t->ids, cap, old, sizeof *t->ids);
        t->rows = grow(t->rows, cap * d, old * d, sizeof *t->rows);
        t->s1 = grow(t->s1, cap * d, old * d, sizeof *t->s1);
        if (t->opt == IC_OPT_ADAM) {
            t->s2 = grow(t->s2, cap * d, old * d, sizeof *t->s2);
            t->steps = grow(t->steps, cap, old, sizeof *t->steps);
        }
        t->mark = ic__xrealloc(t->mark, cap * sizeof *t->mark);
        for (size_t i = old; i < cap; i++) t->mark[i] = -1;
        t->cap = cap;
    }
    if (2 * n > t->hcap) {
        size_t h = t->hcap;
        while (2 * n > h) h *= 2;
        rehash(t, h);
    }
}

int64_t ic__emb_add(ic__emb *t, uint64_t id, int *added)
{
    IC_ASSERT(id != 0);
    int64_t r = ic__emb_find(t, id);
    if (added) *added = r < 0;
    if (r >= 0) return r;
    ic__emb_reserve(t, t->n + 1);
    r = (int64_t)t->n++;
    t->ids[r] = id;
    size_t mask = t->hcap - 1, i = mix(id) & mask;
    while (t->slot[i]) i = (i + 1) & mask;
    t->slot[i] = (uint32_t)(r + 1);
    return r;
}
