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
 * freed block to the kernel, and reuses it for the next block of its
 * class, or cuts a smaller block from it (split_larger) before it touches
 * fresh memory. Blocks are 64-byte aligned.
 *
 * Classes: multiples of 64 bytes up to 512, then four per power of two
 * (640, 768, 896, 1024, 1280, ...) up to 1 MiB: rounding loses at most
 * 63 bytes or 25% of a block. A block above 1 MiB gets a mapping of its own,
 * unmapped when it is freed.
 *
 * Not here: thread safety (the owner serialises), returning memory to the
 * kernel before ic__pool_free (the pool keeps what its owner's peak
 * needed), a chunk's unused tail (< 1 MiB per chunk). Under AddressSanitizer
 * every block is a plain malloc, so ASan checks each block's bounds. */
#include "pool.h"

#include <sys/mman.h>

#define CHUNK_MAX ((size_t)32 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
#define MAX_CLASS_BYTES ((size_t)1 << 20)
#define N_CLASSES (8 + (20 - 9) * 4) /* 8 up to 512 bytes, 4 per power of two above */

struct ic__pool {
    void *free[N_CLASSES];   /* per class, a list linked through the blocks' first word */
    char *bump, *bump_end;   /* the rest of the newest chunk */
    void **chunks;           /* every chunk, to unmap at the end */
    size_t *chunk_len;       /* (n_chunks) their lengths */
    size_t n_chunks, chunks_cap;
    size_t mapped;           /* bytes mapped: chunks and single mappings */
    size_t in_use;           /* class bytes of the blocks handed out */
};

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
/* The size of class c (the inverse of class_of). */
static size_t class_size(unsigned c)
{
    if (c < 8) return (c + 1) * 64;
    unsigned j = 9 + (c - 8) / 4, m = 4 + (c - 8) % 4;
    return (size_t)(m + 1) << (j - 2);
}

/* The largest class size <= n (n a multiple of 64, 64 <= n <= MAX_CLASS_BYTES). */
static size_t class_floor(size_t n)
{
    if (n <= 512) return n;
    unsigned j = 63u - (unsigned)__builtin_clzll(n); /* 2^j <= n */
    size_t q = (size_t)1 << (j - 2), m = n / q;      /* 4..7 */
    return m * q;
}

/* Gives b[0..n) back as free blocks of the largest classes that fit (n a
 * multiple of 64: every class size is, so it splits exactly). */
static void free_run(ic__pool *p, char *b, size_t n)
{
    while (n) {
        size_t piece = class_floor(n), size;
        unsigned c = class_of(piece, &size);
        IC_ASSERT(size == piece);
        *(void **)b = p->free[c];
        p->free[c] = b;
        b += piece, n -= piece;
    }
}

/* A free block of class c's size cut from a free block up to four classes
 * (at most twice the size) larger, the rest returned as smaller free
 * blocks; NULL if there is none. Memory the pool has touched before spares
 * a fresh page's fault (docs/PERFORMANCE.md), and blocks change class as
 * users grow, so without this a store kept ~14% of its memory in free
 * lists while it bumped fresh memory for other classes. */
static void *split_larger(ic__pool *p, unsigned c, size_t size)
{
    for (unsigned c2 = c + 1; c2 < N_CLASSES && c2 <= c + 4; c2++) {
        if (!p->free[c2]) continue;
        char *b = p->free[c2];
        p->free[c2] = *(void **)b;
        free_run(p, b + size, class_size(c2) - size);
        return b;
    }
    return NULL;
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
    unsigned c = class_of(bytes, &size);
    if (p->free[c]) {
        void *b = p->free[c];
        p->free[c] = *(void **)b;
        return b;
    }
    void *split = split_larger(p, c, size);
    if (split) return split;
    if ((size_t)(p->bump_end - p->bump) < size) {
        if (p->n_chunks == p->chunks_cap) {
            p->chunks_cap = p->chunks_cap ? 2 * p->chunks_cap : 16;
            p->chunks = ic__xrealloc(p->chunks, p->chunks_cap * sizeof *p->chunks);
            p->chunk_len = ic__xrealloc(p->chunk_len, p->chunks_cap * sizeof *p->chunk_len);
        }
        /* Chunks grow with the pool (half of what it holds, 2 to 32 MiB),
         * so a small store does not hold 32 MiB for a few blocks. */
        size_t len = round_up(p->mapped / 2, HUGE_PAGE);
        len = len < HUGE_PAGE ? HUGE_PAGE : len > CHUNK_MAX ? CHUNK_MAX : len;
        p->chunk_len[p->n_chunks] = len;
        p->bump = p->chunks[p->n_chunks++] = map_aligned(len);
        p->bump_end = p->bump + len;
        p->mapped += len;
    }
    void *b = p->bump;
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
    size_t size;
    unsigned c = class_of(bytes, &size);
    *(void **)b = p->free[c];
    p->free[c] = b;
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
    if (ic__pool_class_bytes(old_bytes) == ic__pool_class_bytes(bytes)) return b;
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
    for (size_t i = 0; i < p->n_chunks; i++) munmap(p->chunks[i], p->chunk_len[i]);
    free(p->chunks);
    free(p->chunk_len);
    free(p);
}
