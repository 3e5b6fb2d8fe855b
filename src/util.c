/* util.c: errors, allocation, local time, hashing, a small PRNG, and the
 * checksummed binary file format that the store and the model save in.
 * Deliberately small: anything with a concept of its own gets its own file. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

const char *ic_strerror(ic_status s)
{
    switch (s) {
    case IC_OK: return "ok";
    case IC_ERR_NOMEM: return "out of memory";
    case IC_ERR_IO: return "input/output error";
    case IC_ERR_PARSE: return "malformed input";
    case IC_ERR_CONFIG: return "bad configuration";
    case IC_ERR_CORRUPT: return "corrupt or truncated file";
    case IC_ERR_ORDER: return "events out of time order";
    case IC_ERR_ARG: return "bad argument";
    case IC_ERR_NOTFOUND: return "not found";
    case IC_ERR_MISMATCH: return "made with another configuration or version";
    }
    return "unknown error";
}

_Noreturn void ic__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, cond);
    abort();
}

_Noreturn void *ic__oom(size_t n)
{
    fprintf(stderr, "iclock: out of memory (asked for %zu bytes)\n", n);
    abort();
}

void *ic__xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : ic__oom(n);
}

void *ic__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : ic__oom(n * size);
}

void *ic__xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : ic__oom(n);
}

void *ic__xalloc_aligned(size_t n)
{
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) ic__oom(n);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

ic_status ic__fail(ic_error *err, ic_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

locale_t ic__c_locale(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale;
}

double ic__strtod_c(const char *s, char **end)
{
    locale_t loc = ic__c_locale();
    return loc ? strtod_l(s, end, loc) : strtod(s, end);
}

void ic__strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- Local time ---------------------------------------------------------- */

/* a mod m in [0, m), m > 0; with a constant m the compiler turns it into
 * a multiply (the clock store computes an hour three times an event). */
static inline int64_t floor_mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

/* floor(a / m), m > 0. */
static inline int64_t floor_div(int64_t a, int64_t m) { return (a - floor_mod(a, m)) / m; }

int64_t ic_local_seconds(int64_t ts, int32_t tz_min) { return ts + (int64_t)tz_min * 60; }

int ic_local_hour(int64_t ts, int32_t tz_min)
{
    return (int)(floor_mod(ic_local_seconds(ts, tz_min), 86400) / 3600);
}

int64_t ic_local_day(int64_t ts, int32_t tz_min)
{
    return floor_div(ic_local_seconds(ts, tz_min), 86400);
}

int ic_local_dow(int64_t ts, int32_t tz_min)
{
    /* 1970-01-01 was a Thursday: day 0 -> 3 with Monday = 0. */
    return (int)floor_mod(ic_local_day(ts, tz_min) + 3, 7);
}

double ic_local_hour_frac(int64_t ts, int32_t tz_min)
{
    return (double)floor_mod(ic_local_seconds(ts, tz_min), 86400) / 3600.0;
}

/* ---- Time parsing ---- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int ic_time_parse(const char *text, size_t len, int64_t *out)
{
    char s[64];
    if (len == 0 || len >= sizeof s) return -1;
    memcpy(s, text, len);
    s[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) {
        *out = v;
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == ' ') {
        int m2 = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &m2) != 3) return -1;
        p += 1 + m2;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) return -1;
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else if (*p != '\0') {
        return -1;
    }
    if (*p != '\0') return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60;
    return 0;
}

uint64_t ic_hash(const char *s, size_t n)
{
    uint64_t h = XXH3_64bits(s, n);
    return h ? h : 1; /* 0 is reserved for "no value" */
}

double ic__now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- PRNG ---------------------------------------------------------------- */

void ic__rng_seed(ic_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ull; }

uint64_t ic__rng_u64(ic_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double ic__rng_uniform(ic_rng *r) { return (double)(ic__rng_u64(r) >> 11) * 0x1.0p-53; }

double ic__rng_normal(ic_rng *r)
{
    double u1 = ic__rng_uniform(r), u2 = ic__rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- A map from 64-bit ids to indices (internal.h) ------------------------- */

void ic__u64map_free(ic__u64map *m)
{
    free(m->key);
    free(m->val);
}

static void u64map_grow(ic__u64map *m)
{
    ic__u64map g = {ic__xcalloc(m->cap ? m->cap * 2 : 1024, sizeof(uint64_t)), NULL,
                m->cap ? m->cap * 2 : 1024, m->n};
    g.val = ic__xmalloc(g.cap * sizeof(uint32_t));
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->key[i]) continue;
        size_t j = m->key[i] & (g.cap - 1);
        while (g.key[j]) j = (j + 1) & (g.cap - 1);
        g.key[j] = m->key[i];
        g.val[j] = m->val[i];
    }
    ic__u64map_free(m);
    *m = g;
}

uint32_t *ic__u64map_put(ic__u64map *m, uint64_t key, uint32_t v, int *added)
{
    if ((m->n + 1) * 2 > m->cap) u64map_grow(m);
    size_t j = key & (m->cap - 1);
    while (m->key[j] && m->key[j] != key) j = (j + 1) & (m->cap - 1);
    *added = !m->key[j];
    if (*added) {
        m->key[j] = key;
        m->val[j] = v;
        m->n++;
    }
    return &m->val[j];
}

const uint32_t *ic__u64map_get(const ic__u64map *m, uint64_t key)
{
    if (!m->cap) return NULL;
    size_t j = key & (m->cap - 1);
    while (m->key[j]) {
        if (m->key[j] == key) return &m->val[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* ---- A growing text buffer ---------------------------------------------------- */

void ic__sb_add(ic__sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = ic__xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ic__sb_puts(ic__sbuf *b, const char *s) { ic__sb_add(b, s, strlen(s)); }

void ic__sb_putc(ic__sbuf *b, char c) { ic__sb_add(b, &c, 1); }

/* ---- Checksummed binary files --------------------------------------------- */

ic_status ic__bw_open(ic_bwriter *w, const char *path, const char magic[8],
                      uint32_t version, ic_error *err)
{
    memset(w, 0, sizeof *w);
    ic__strlcpy(w->path, path, sizeof w->path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f)
        return ic__fail(err, IC_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    XXH64_state_t *h = XXH64_createState();
    if (!h) ic__oom(sizeof *h);
    XXH64_reset(h, 0);
    w->hash = h;
    /* magic and version are hashed but are not payload */
    fwrite(magic, 1, 8, w->f);
    XXH64_update(h, magic, 8);
    fwrite(&version, 4, 1, w->f);
    XXH64_update(h, &version, 4);
    return IC_OK;
}

void ic__bw_write(ic_bwriter *w, const void *p, size_t n)
{
    if (w->failed || n == 0) return;
    if (fwrite(p, 1, n, w->f) != n) w->failed = errno ? errno : EIO;
    XXH64_update((XXH64_state_t *)w->hash, p, n);
    w->len += n;
}

static void bw_release(ic_bwriter *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    XXH64_freeState((XXH64_state_t *)w->hash);
    w->hash = NULL;
}

void ic__bw_abort(ic_bwriter *w)
{
    bw_release(w);
    unlink(w->tmp);
}

ic_status ic__bw_commit(ic_bwriter *w, ic_error *err)
{
    XXH64_state_t *h = (XXH64_state_t *)w->hash;
    uint64_t len = w->len;
    if (!w->failed && fwrite(&len, 8, 1, w->f) != 1) w->failed = EIO;
    XXH64_update(h, &len, 8);
    uint64_t sum = XXH64_digest(h);
    if (!w->failed && fwrite(&sum, 8, 1, w->f) != 1) w->failed = EIO;
    if (!w->failed && fflush(w->f) != 0) w->failed = errno;
    if (!w->failed && fsync(fileno(w->f)) != 0) w->failed = errno;
    int failed = w->failed;
    if (failed) {
        ic__bw_abort(w);
        return ic__fail(err, IC_ERR_IO, "%s: write failed: %s", w->tmp, strerror(failed));
    }
    bw_release(w);
    if (rename(w->tmp, w->path) != 0) {
        int e = errno;
        unlink(w->tmp);
        return ic__fail(err, IC_ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(e));
    }
    return IC_OK;
}

ic_status ic__br_open(ic_breader *r, const char *path, const char magic[8],
                      uint32_t max_version, ic_error *err)
{
    memset(r, 0, sizeof *r);
    ic__strlcpy(r->path, path, sizeof r->path);
    FILE *f = fopen(path, "rb");
    if (!f) return ic__fail(err, IC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = ic__xmalloc(cap);
    for (;;) {
        if (n == cap) buf = ic__xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        free(buf);
        return ic__fail(err, IC_ERR_IO, "%s: read error", path);
    }
    const size_t head = 12, trail = 16;
    if (n < head + trail) {
        free(buf);
        return ic__fail(err, IC_ERR_CORRUPT, "%s: truncated (%zu bytes, at least %zu expected)",
                        path, n, head + trail);
    }
    if (memcmp(buf, magic, 8) != 0) {
        free(buf);
        return ic__fail(err, IC_ERR_CORRUPT, "%s: not a %.8s file (bad magic)", path, magic);
    }
    uint64_t len, sum;
    memcpy(&len, buf + n - 16, 8);
    memcpy(&sum, buf + n - 8, 8);
    if (len != n - head - trail) {
        free(buf);
        return ic__fail(err, IC_ERR_CORRUPT,
                        "%s: truncated or padded (payload says %llu bytes, file holds %zu)",
                        path, (unsigned long long)len, n - head - trail);
    }
    if (XXH64(buf, n - 8, 0) != sum) {
        free(buf);
        return ic__fail(err, IC_ERR_CORRUPT, "%s: checksum mismatch (file is corrupt)", path);
    }
    memcpy(&r->version, buf + 8, 4);
    if (r->version > max_version || r->version == 0) {
        free(buf);
        return ic__fail(err, IC_ERR_MISMATCH, "%s: format version %u, this build reads up to %u",
                        path, r->version, max_version);
    }
    r->buf = buf;
    r->len = (size_t)len;
    r->pos = 0;
    return IC_OK;
}

ic_status ic__br_read(ic_breader *r, void *p, size_t n, ic_error *err)
{
    if (n > r->len - r->pos)
        return ic__fail(err, IC_ERR_CORRUPT, "%s: payload ends early (wanted %zu bytes at %zu of %zu)",
                        r->path, n, r->pos, r->len);
    if (n == 0) return IC_OK; /* p may be NULL for an empty table */
    memcpy(p, r->buf + 12 + r->pos, n);
    r->pos += n;
    return IC_OK;
}

size_t ic__br_left(const ic_breader *r) { return r->len - r->pos; }

void ic__br_close(ic_breader *r)
{
    free(r->buf);
    r->buf = NULL;
}
