/* event.c: ic_names, the map from 64-bit ids (ic_hash of a string) back to
 * their strings, for printing users, items and categorical values.
 *
 * An open-addressing hash table (linear probing, load <= 1/2) of id ->
 * string, the strings copied into an arena of large chunks, so a million
 * entries cost two table arrays and a few dozen chunk allocations, not a
 * million mallocs. Deliberately not here: removal (ids are never
 * forgotten), and thread safety (one writer, the reader thread). */
#include "internal.h"

#define ARENA_CHUNK (1u << 20)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

struct ic_names {
    uint64_t *key;  /* (cap) 0 = empty slot; ic_hash never returns 0 */
    char **val;     /* (cap) strings in the arena */
    size_t cap;     /* a power of two */
    size_t n;
    chunk *arena;   /* the newest chunk first */
};

ic_names *ic_names_create(void)
{
    ic_names *m = ic__xcalloc(1, sizeof *m);
    m->cap = 1024;
    m->key = ic__xcalloc(m->cap, sizeof *m->key);
    m->val = ic__xcalloc(m->cap, sizeof *m->val);
    return m;
}

void ic_names_free(ic_names *m)
{
    if (!m) return;
    for (chunk *c = m->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(m->key);
    free(m->val);
    free(m);
}

/* Ids are already hashes, but callers may pass small integers: mix anyway. */
static size_t slot_of(uint64_t id, size_t mask)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)id & mask;
}

/* The slot holding id, or the empty slot where it would go. */
static size_t find(const ic_names *m, uint64_t id)
{
    size_t mask = m->cap - 1, i = slot_of(id, mask);
    while (m->key[i] && m->key[i] != id) i = (i + 1) & mask;
    return i;
}

static void grow(ic_names *m)
{
    ic_names old = *m;
    m->cap *= 2;
    m->key = ic__xcalloc(m->cap, sizeof *m->key);
    m->val = ic__xcalloc(m->cap, sizeof *m->val);
    for (size_t i = 0; i < old.cap; i++)
        if (old.key[i]) {
            size_t j = find(m, old.key[i]);
            m->key[j] = old.key[i];
            m->val[j] = old.val[i];
        }
    free(old.key);
    free(old.val);
}

/* A NUL-terminated copy of s[0..len) in the arena. */
static char *arena_copy(ic_names *m, const char *s, size_t len)
{
    chunk *c = m->arena;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > ARENA_CHUNK ? len + 1 : ARENA_CHUNK;
        c = ic__xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = m->arena;
        m->arena = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, len);
    p[len] = '\0';
    c->used += len + 1;
    return p;
}

void ic_names_put(ic_names *m, uint64_t id, const char *s, size_t len)
{
    if (id == 0) return;
    size_t i = find(m, id);
    if (m->key[i]) return; /* first string wins */
    if (2 * (m->n + 1) > m->cap) {
        grow(m);
        i = find(m, id);
    }
    m->key[i] = id;
    m->val[i] = arena_copy(m, s, len);
    m->n++;
}

const char *ic_names_get(const ic_names *m, uint64_t id)
{
    if (!m || id == 0) return NULL;
    size_t i = find(m, id);
    return m->key[i] ? m->val[i] : NULL;
}

size_t ic_names_count(const ic_names *m) { return m ? m->n : 0; }
