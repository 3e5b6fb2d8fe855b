/* pool.c: a pool of memory blocks in size classes, for a store that holds
 * many blocks which grow and shrink as it runs (the clock store: two blocks
 * per user: its clock and its record ring, reallocated whenever a part
 * doubles or halves).
 *
 * Why not malloc: on the machines iclock runs on (a paravirtualised VM) a
 * first touch of a fresh 4 KiB page costs ~12 us (docs/PERFORMANCE.md), and
 * glibc hands big freed blocks back to the kernel (munmap, heap trim), so a
 * store that keeps reallocating its users paid a page fault every few
 * events. The pool maps memory in chunks of 2 to 32 MiB (half of what it
 * already holds), aligned to 2 MiB, and asks for transparent huge pages
 * (one fault per 2 MiB where the kernel grants them); it never returns a
 * freed block to the kernel. Blocks are 64-byte aligned.
 *
 * Free blocks merge with free neighbours (boundary tags: a free block
 * holds its links and size at its start and its size in its last 8 bytes,
 * and a bitmap per chunk marks the first and last 64-byte unit of every
 * free block, so a released block finds a free neighbour on either side in
 * O(1)); a request takes a block from the smallest class that has one at
 * least its size and leaves the rest free, and a block grows or shrinks in
 * place when its right neighbour allows. As users grow, the blocks they
 * leave behind merge into room for larger ones: on the simulator's log the
 * pool held 95 MB in free blocks of its classes it could not use, 80 MB of
 * them next to each other (docs/PERFORMANCE.md).
 *
 * Classes: multiples of 64 bytes up to 512, then four per power of two
 * (640, 768, 896, 1024, 1280, ...) up to 1 MiB: rounding loses at most
 * 63 bytes or 25% of a block. A free block sits in the list of the largest
 * class not above its size. A block above 1 MiB gets a mapping of its own,
 * unmapped when it is freed.
 *
 * Not here: thread safety (the owner serialises), returning memory to the
 * kernel before ic__pool_free (the pool keeps what its owner's peak
 * needed). Under AddressSanitizer every block is a plain malloc, so ASan
 * checks each block's bounds. */
#include "pool.h"

#include <sys/mman.h>

#define CHUNK_MAX ((size_t)32 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
#define MAX_CLASS_BYTES ((size_t)1 << 20)
#define N_CLASSES (8 + (20 - 9) * 4) /* 8 up to 512 bytes, 4 per power of two above */

#define UNIT 64              /* bytes of a unit: block sizes are multiples */

/* The head of a free block (its size also sits in its last 8 bytes). */
typedef struct free_blk {
    struct free_blk *next, *prev;
    size_t size;
} free_blk;

/* A mapped chunk and its edge bitmap: bit u set when unit u is the first
 * or the last unit of a free block. */
typedef struct {
    char *base;
    size_t len;
    uint64_t *edge;
} chunk;

struct ic__pool {
    free_blk *free[N_CLASSES];  /* per class, doubly linked */
    uint64_t nonempty;          /* bit c: free[c] has a block */
    char *bump, *bump_end;      /* the rest of the newest chunk (not a free block) */
    char *bump_base;            /* the newest chunk's start: only its blocks meet the bump space */
    chunk *chunks;              /* (n_chunks) by base address */
    size_t n_chunks, chunks_cap;
    size_t mapped;              /* bytes mapped: chunks and single mappings */
    size_t in_use;              /* class bytes of the blocks handed out */
};
_Static_assert(N_CLASSES <= 64, "the classes with free blocks fit a 64-bit mask");
_Static_assert(sizeof(free_blk) + sizeof(size_t) <= UNIT, "a free block's tags fit its smallest size");

/* The class of a block of bytes (1 <= bytes <= MAX_CLASS_BYTES), and its size. */
static unsigned class_of(size_t bytes, size_t *size)
{
    if (bytes <= 512) {
        size_t c = (bytes + 63) / 64;
        *size = c * 64;
        return (unsigned)(c ? c - 1 : 0);
    }
    size_t b = bytes - 1;
    unsigned j = 63u - (unsigned)__builtin_clzll(b); /* 2^j <= b < 2^(j+1), j >= 9 */
    size_t m = b >> (j - 2);                          /* 4..7: the top three bits */
    *size = (m + 1) << (j - 2);
    return 8 + (j - 9) * 4 + (unsigned)(m - 4);
}

ic__pool *ic__pool_create(void)
{
    ic__pool *p = ic__xcalloc(1, sizeof *p);
    return p;
}

#if !defined(__SANITIZE_ADDRESS__)
/* Maps bytes (a multiple of HUGE_PAGE) at a 2 MiB-aligned address and asks
 * for huge pages; aborts when the kernel refuses (out of memory). */
static void *map_aligned(size_t bytes)
{
    size_t over = bytes + HUGE_PAGE;
    char *m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) ic__oom(bytes);
    char *a = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (a > m) munmap(m, (size_t)(a - m));
    if (a + bytes < m + over) munmap(a + bytes, (size_t)(m + over - (a + bytes)));
    madvise(a, bytes, MADV_HUGEPAGE); /* a hint: without THP the pages stay 4 KiB */
    return a;
}
#endif

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

#if !defined(__SANITIZE_ADDRESS__)
/* The list of a free block of size bytes (a multiple of UNIT): the
 * largest class not above it. */
static unsigned free_class(size_t size)
{
    if (size >= MAX_CLASS_BYTES) return N_CLASSES - 1;
    if (size <= 512) return (unsigned)(size / UNIT - 1);
    /* Class 8 + 4 (j - 9) + m - 4 is (m + 1) 2^(j - 2) (class_of), so a size
     * of 2^j q / 4 (q its top three bits, 4..7) lies in class 7 + 4 (j - 9)
     * + q - 4: 512..639 -> 7 (512), 640 -> 8, 1024..1279 -> 11 (1024). */
    unsigned j = 63u - (unsigned)__builtin_clzll(size); /* 2^j <= size, j >= 9 */
    return 7 + (j - 9) * 4 + (unsigned)((size >> (j - 2)) - 4);
}

/* The chunk holding address a (which must lie in one). */
static chunk *chunk_of(ic__pool *p, const char *a)
{
    size_t lo = 0, hi = p->n_chunks;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (p->chunks[mid].base <= a) lo = mid; else hi = mid;
    }
    IC_ASSERT(hi > lo && a >= p->chunks[lo].base && a < p->chunks[lo].base + p->chunks[lo].len);
    return &p->chunks[lo];
}

static inline size_t unit_of(const chunk *c, const char *a) { return (size_t)(a - c->base) / UNIT; }
static inline int edge_get(const chunk *c, size_t u) { return (int)(c->edge[u / 64] >> (u % 64) & 1); }
static inline void edge_put(chunk *c, size_t u, int on)
{
    if (on) c->edge[u / 64] |= 1ull << (u % 64);
    else c->edge[u / 64] &= ~(1ull << (u % 64));
}

/* Makes [b, b + size) a free block of chunk c: tags, edges, its list. */
static void free_put(ic__pool *p, chunk *c, char *b, size_t size)
{
    free_blk *f = (free_blk *)b;
    unsigned k = free_class(size);
    f->size = size;
    memcpy(b + size - sizeof(size_t), &size, sizeof size);
    f->prev = NULL;
    f->next = p->free[k];
    if (f->next) f->next->prev = f;
    p->free[k] = f;
    p->nonempty |= 1ull << k;
    edge_put(c, unit_of(c, b), 1);
    edge_put(c, unit_of(c, b + size) - 1, 1);
}

/* Takes free block f of chunk c out of its list and clears its edges. */
static void free_take(ic__pool *p, chunk *c, free_blk *f)
{
    unsigned k = free_class(f->size);
    if (f->prev) f->prev->next = f->next;
    else p->free[k] = f->next;
    if (f->next) f->next->prev = f->prev;
    if (!p->free[k]) p->nonempty &= ~(1ull << k);
    edge_put(c, unit_of(c, (char *)f), 0);
    edge_put(c, unit_of(c, (char *)f + f->size) - 1, 0);
}

/* The free block starting right after [b, b + size) in chunk c, or NULL. */
static free_blk *free_after(chunk *c, char *b, size_t size)
{
    size_t u = unit_of(c, b + size);
    return u < c->len / UNIT && edge_get(c, u) ? (free_blk *)(b + size) : NULL;
}

/* Gives [b, b + size) of chunk c back: merged with free neighbours, into
 * a list, or into the bump space when it ends there. */
static void free_run(ic__pool *p, chunk *c, char *b, size_t size)
{
    size_t u = unit_of(c, b);
    if (u > 0 && edge_get(c, u - 1)) { /* the left neighbour is free: its size is in its last 8 bytes */
        size_t left;
        memcpy(&left, b - sizeof left, sizeof left);
        free_take(p, c, (free_blk *)(b - left));
        b -= left, size += left;
    }
    free_blk *right = free_after(c, b, size);
    if (right) {
        size_t r = right->size;
        free_take(p, c, right);
        size += r;
    }
    if (b + size == p->bump && b >= p->bump_base) {
        p->bump = b;
        return;
    }
    free_put(p, c, b, size);
}

/* A block of size bytes (class size) from the free blocks, or NULL: the
 * first block of the smallest class that has one at least size, its rest
 * left free. */
static char *free_get(ic__pool *p, size_t size)
{
    unsigned k0 = free_class(size);
    uint64_t m = p->nonempty & (~0ull << k0);
    if (!m) return NULL;
    free_blk *f = p->free[__builtin_ctzll(m)];
    IC_ASSERT(f->size >= size);
    chunk *c = chunk_of(p, (char *)f);
    size_t total = f->size;
    free_take(p, c, f);
    if (total > size) free_put(p, c, (char *)f + size, total - size);
    return (char *)f;
}

/* Maps a new chunk for at least need bytes and makes it the bump space
 * (the old bump space's rest becomes a free block). */
static void chunk_new(ic__pool *p, size_t need)
{
    if (p->n_chunks == p->chunks_cap) {
        p->chunks_cap = p->chunks_cap ? 2 * p->chunks_cap : 16;
        p->chunks = ic__xrealloc(p->chunks, p->chunks_cap * sizeof *p->chunks);
    }
    if (p->bump < p->bump_end) {
        char *rest = p->bump;
        size_t n = (size_t)(p->bump_end - rest);
        p->bump = p->bump_end;
        free_put(p, chunk_of(p, rest), rest, n);
    }
    /* Chunks grow with the pool (half of what it holds, 2 to 32 MiB), so a
     * small store does not hold 32 MiB for a few blocks. */
    size_t len = round_up(p->mapped / 2, HUGE_PAGE);
    len = len < HUGE_PAGE ? HUGE_PAGE : len > CHUNK_MAX ? CHUNK_MAX : len;
    if (len < need) len = round_up(need, HUGE_PAGE);
    chunk c = {map_aligned(len), len, ic__xcalloc(len / UNIT / 64 + 1, sizeof(uint64_t))};
    size_t i = p->n_chunks++;
    while (i > 0 && p->chunks[i - 1].base > c.base) p->chunks[i] = p->chunks[i - 1], i--;
    p->chunks[i] = c;
    p->bump = p->bump_base = c.base;
    p->bump_end = c.base + len;
    p->mapped += len;
}
#endif

void *ic__pool_alloc(ic__pool *p, size_t bytes)
{
    p->in_use += ic__pool_class_bytes(bytes);
#if defined(__SANITIZE_ADDRESS__)
    p->mapped += ic__pool_class_bytes(bytes);
    return ic__xalloc_aligned(bytes);
#else
    if (bytes > MAX_CLASS_BYTES) {
        size_t len = round_up(bytes, HUGE_PAGE);
        p->mapped += len;
        return map_aligned(len);
    }
    size_t size;
    class_of(bytes, &size);
    char *b = free_get(p, size);
    if (b) return b;
    if ((size_t)(p->bump_end - p->bump) < size) chunk_new(p, size);
    b = p->bump;
    p->bump += size;
    return b;
#endif
}

void ic__pool_release(ic__pool *p, void *b, size_t bytes)
{
    if (!b) return;
    p->in_use -= ic__pool_class_bytes(bytes);
#if defined(__SANITIZE_ADDRESS__)
    p->mapped -= ic__pool_class_bytes(bytes);
    free(b);
#else
    if (bytes > MAX_CLASS_BYTES) {
        size_t len = round_up(bytes, HUGE_PAGE);
        munmap(b, len);
        p->mapped -= len;
        return;
    }
    size_t size = ic__pool_class_bytes(bytes);
    free_run(p, chunk_of(p, b), b, size);
#endif
}

void *ic__pool_resize(ic__pool *p, void *b, size_t old_bytes, size_t bytes, size_t keep)
{
#if !defined(__SANITIZE_ADDRESS__)
    if (old_bytes > MAX_CLASS_BYTES && bytes > MAX_CLASS_BYTES) {
        /* Its own mapping: the kernel moves the pages, nothing is copied. */
        size_t old_len = round_up(old_bytes, HUGE_PAGE), len = round_up(bytes, HUGE_PAGE);
        if (len == old_len) return b;
        void *m = mremap(b, old_len, len, MREMAP_MAYMOVE);
        if (m == MAP_FAILED) ic__oom(bytes);
        if (len > old_len) madvise((char *)m + old_len, len - old_len, MADV_HUGEPAGE);
        p->mapped = p->mapped - old_len + len;
        p->in_use = p->in_use - old_len + len;
        return m;
    }
    size_t old_size = ic__pool_class_bytes(old_bytes), size = ic__pool_class_bytes(bytes);
    if (old_size == size) return b;
    if (old_bytes <= MAX_CLASS_BYTES && bytes <= MAX_CLASS_BYTES) {
        /* In place when the block shrinks, or when its right neighbour (a
         * free block or the bump space) has the room: nothing copied. */
        char *c0 = b;
        chunk *c = chunk_of(p, c0);
        if (size < old_size) {
            free_run(p, c, c0 + size, old_size - size);
            p->in_use -= old_size - size;
            return b;
        }
        size_t more = size - old_size;
        free_blk *right = free_after(c, c0, old_size);
        if (right && right->size >= more) {
            size_t r = right->size;
            free_take(p, c, right);
            if (r > more) free_put(p, c, c0 + size, r - more);
            p->in_use += more;
            return b;
        }
        if (c0 + old_size == p->bump && c0 >= p->bump_base && (size_t)(p->bump_end - p->bump) >= more) {
            p->bump += more;
            p->in_use += more;
            return b;
        }
    }
#endif
    void *n = ic__pool_alloc(p, bytes);
    memcpy(n, b, keep < bytes ? keep : bytes);
    ic__pool_release(p, b, old_bytes);
    return n;
}

size_t ic__pool_bytes(const ic__pool *p) { return sizeof *p + p->mapped; }

size_t ic__pool_in_use(const ic__pool *p) { return p->in_use; }

size_t ic__pool_class_bytes(size_t bytes)
{
    if (bytes > MAX_CLASS_BYTES) return round_up(bytes, HUGE_PAGE);
    size_t size;
    class_of(bytes, &size);
    return size;
}

void ic__pool_free(ic__pool *p)
{
    if (!p) return;
#if !defined(__SANITIZE_ADDRESS__)
    for (size_t i = 0; i < p->n_chunks; i++) {
        munmap(p->chunks[i].base, p->chunks[i].len);
        free(p->chunks[i].edge);
    }
#endif
    free(p->chunks);
    free(p);
}
