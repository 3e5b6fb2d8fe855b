/* internal.h: helpers shared by the library's files, not part of the API.
 * Names are ic__ (two underscores). */
#ifndef IC_INTERNAL_H
#define IC_INTERNAL_H

#include "iclock.h"

#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A bug: print file:line and the failed condition, then abort. Stays on in
 * release builds; use it for invariants, never for user input. */
#define IC_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) ic__assert_fail(#cond, __FILE__, __LINE__);               \
    } while (0)
_Noreturn void ic__assert_fail(const char *cond, const char *file, int line);

/* Allocation that aborts with a message when memory runs out. */
void *ic__xmalloc(size_t n);
void *ic__xcalloc(size_t n, size_t size);
void *ic__xrealloc(void *p, size_t n);
/* 64-byte aligned, zeroed; free with free(). */
void *ic__xalloc_aligned(size_t n);
/* Prints that n bytes could not be had, and aborts. */
_Noreturn void *ic__oom(size_t n);

/* Writes printf-style text into err (if err is non-NULL) and returns s. */
ic_status ic__fail(ic_error *err, ic_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The C locale, made once (thread-safe), so that numbers read and write
 * the same whatever LC_NUMERIC the host program set; (locale_t)0 if it
 * cannot be made. */
locale_t ic__c_locale(void);
/* strtod in the C locale (plain strtod if it cannot be made). */
double ic__strtod_c(const char *s, char **end);

/* Copies bytes >= 64 from src to dst (not overlapping) in whole 64-byte
 * moves, the last one ending at bytes. For the clock query's ~3 KB copy:
 * glibc's memcpy takes such sizes with rep movsb, which took 1.1-1.5x as
 * long here (bench_memory, "memory_view_copy"). */
static inline void ic__copy_lines(void *dst, const void *src, size_t bytes)
{
    unsigned char *d = dst;
    const unsigned char *q = src;
    IC_ASSERT(bytes >= 64);
    for (size_t i = 0; i + 64 < bytes; i += 64) __builtin_memcpy(d + i, q + i, 64);
    __builtin_memcpy(d + bytes - 64, q + bytes - 64, 64);
}

/* Copies src into dst[cap] with truncation; always terminates. */
void ic__strlcpy(char *dst, const char *src, size_t cap);

/* splitmix64: a tiny seeded PRNG used for initialisation and sampling. */
typedef struct {
    uint64_t s;
} ic_rng;
void ic__rng_seed(ic_rng *r, uint64_t seed);
uint64_t ic__rng_u64(ic_rng *r);
double ic__rng_uniform(ic_rng *r);   /* [0, 1) */
double ic__rng_normal(ic_rng *r);    /* N(0, 1), Box-Muller */

/* Seconds on the monotonic clock, for timing and progress. */
double ic__now_s(void);

/* A small open-addressing map from 64-bit ids (never 0) to 32-bit indices;
 * zero-initialise it, free with ic__u64map_free. Aborts on out of memory. */
typedef struct {
    uint64_t *key;  /* (cap) 0 = empty */
    uint32_t *val;  /* (cap) */
    size_t cap, n;
} ic__u64map;
void ic__u64map_free(ic__u64map *m);
/* The value slot of key, inserted with value v if absent (*added = 1). */
uint32_t *ic__u64map_put(ic__u64map *m, uint64_t key, uint32_t v, int *added);
/* The value of key, or NULL. */
const uint32_t *ic__u64map_get(const ic__u64map *m, uint64_t key);

/* A growing text buffer; zero-initialise it, free(b.p) when done. p stays
 * NUL-terminated; appending aborts on out of memory. */
typedef struct {
    char *p;
    size_t len, cap;
} ic__sbuf;
void ic__sb_add(ic__sbuf *b, const char *s, size_t n);
void ic__sb_puts(ic__sbuf *b, const char *s);
void ic__sb_putc(ic__sbuf *b, char c);

/* ---- Binary files: versioned, checksummed, written atomically ----------
 * Layout: magic (8 bytes) | version (u32) | payload | payload length (u64)
 * | XXH64 of everything before it (u64). The writer writes to path.tmp,
 * fsyncs, and renames over path, so a crash leaves the old file or the new
 * one, never half of one. The reader loads the whole file and checks magic,
 * version, length and checksum before any payload byte is handed out. */
typedef struct {
    FILE *f;
    char path[512];
    char tmp[520];
    uint64_t len;     /* payload bytes written */
    void *hash;       /* XXH64_state_t */
    int failed;
} ic_bwriter;

ic_status ic__bw_open(ic_bwriter *w, const char *path, const char magic[8],
                      uint32_t version, ic_error *err);
void ic__bw_write(ic_bwriter *w, const void *p, size_t n);
/* Writes the trailer, fsyncs, renames. Frees w's resources either way. */
ic_status ic__bw_commit(ic_bwriter *w, ic_error *err);
/* Discards the temporary file. */
void ic__bw_abort(ic_bwriter *w);

typedef struct {
    unsigned char *buf;
    size_t len;       /* payload length */
    size_t pos;       /* read cursor into the payload */
    uint32_t version;
    char path[512];
} ic_breader;

/* Opens and verifies. Errors: IC_ERR_IO (cannot read), IC_ERR_CORRUPT
 * (too short, bad magic, bad checksum: "file: ..."), IC_ERR_MISMATCH
 * (version newer than max_version). */
ic_status ic__br_open(ic_breader *r, const char *path, const char magic[8],
                      uint32_t max_version, ic_error *err);
/* Copies n payload bytes; IC_ERR_CORRUPT if fewer remain. */
ic_status ic__br_read(ic_breader *r, void *p, size_t n, ic_error *err);
/* Remaining payload bytes. */
size_t ic__br_left(const ic_breader *r);
void ic__br_close(ic_breader *r);

#endif
