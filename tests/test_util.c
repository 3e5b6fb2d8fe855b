/* test_util.c: local time, time parsing, hashing, the checksummed binary
 * file format, the 64-byte-move copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <unistd.h>

static void test_local_time(void **state)
{
    (void)state;
    /* 2023-09-01T00:30:00Z is a Friday. */
    int64_t t = 1693528200;
    assert_int_equal(ic_local_hour(t, 0), 0);
    assert_int_equal(ic_local_dow(t, 0), 4);
    /* UTC-5: still Thursday 19:30 local. */
    assert_int_equal(ic_local_hour(t, -300), 19);
    assert_int_equal(ic_local_dow(t, -300), 3);
    assert_int_equal(ic_local_day(t, -300), ic_local_day(t, 0) - 1);
    /* +08:00 -> 08:30 */
    assert_int_equal(ic_local_hour(t, 480), 8);
    assert_true(ic_local_hour_frac(t, 480) > 8.49 && ic_local_hour_frac(t, 480) < 8.51);
    /* Negative times floor, not truncate: one second before the epoch is 23h
     * on Wednesday 1969-12-31. */
    assert_int_equal(ic_local_hour(-1, 0), 23);
    assert_int_equal(ic_local_day(-1, 0), -1);
    assert_int_equal(ic_local_dow(-1, 0), 2);
    /* Day, hour and weekday agree with the local seconds, on both sides of
     * the epoch, at day edges and far out: day * 86400 <= l < (day + 1) *
     * 86400, hour = (l - day * 86400) / 3600 by truncation (non-negative),
     * and each day later is one weekday later. */
    const int64_t far = (int64_t)1 << 62;
    const int64_t ts[] = {0, -1, 86399, 86400, -86400, -86401, 1693528200, -1693528199, far, -far, far - 1};
    const int32_t tz[] = {0, 1, -1, 60, -300, 330, 840, -720};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        for (size_t j = 0; j < sizeof tz / sizeof *tz; j++) {
            int64_t l = ic_local_seconds(ts[i], tz[j]), d = ic_local_day(ts[i], tz[j]);
            assert_true(d * 86400 <= l && l - d * 86400 < 86400);
            assert_int_equal(ic_local_hour(ts[i], tz[j]), (l - d * 86400) / 3600);
            assert_true(ic_local_hour_frac(ts[i], tz[j]) == (double)(l - d * 86400) / 3600.0);
            int w = ic_local_dow(ts[i], tz[j]);
            assert_true(w >= 0 && w < 7);
            assert_int_equal(ic_local_dow(ts[i] + 86400, tz[j]), (w + 1) % 7);
        }
}

static void test_time_parse(void **state)
{
    (void)state;
    int64_t t;
    const char *iso = "2023-09-01T08:30:00+08:00";
    assert_int_equal(ic_time_parse(iso, strlen(iso), &t), 0);
    assert_int_equal(t, 1693528200);
    const char *z = "2023-09-01T00:30:00Z";
    assert_int_equal(ic_time_parse(z, strlen(z), &t), 0);
    assert_int_equal(t, 1693528200);
    const char *neg = "2023-08-31T19:30:00-05:00";
    assert_int_equal(ic_time_parse(neg, strlen(neg), &t), 0);
    assert_int_equal(t, 1693528200);
    assert_int_equal(ic_time_parse("1693528200", 10, &t), 0);
    assert_int_equal(t, 1693528200);
    /* Length-delimited: the trailing garbage is outside the field. */
    assert_int_equal(ic_time_parse("42,x", 2, &t), 0);
    assert_int_equal(t, 42);
    const char *bad[] = {"", "2023-13-01", "12a", "2023-09-01T25:00:00Z", "tomorrow",
                         "2023-09-01T08:30:00+8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ic_time_parse(bad[i], strlen(bad[i]), &t), -1);
}

static void test_hash(void **state)
{
    (void)state;
    assert_true(ic_hash("pop", 3) != ic_hash("rock", 4));
    assert_true(ic_hash("pop", 3) == ic_hash("pop|rock", 3));
    assert_true(ic_hash("", 0) != 0);
}

static const char MAGIC[8] = "ICTEST01";

static void write_file(const char *path, const void *p, size_t n)
{
    ic_bwriter w;
    ic_error err;
    assert_int_equal(ic__bw_open(&w, path, MAGIC, 1, &err), IC_OK);
    ic__bw_write(&w, p, n);
    assert_int_equal(ic__bw_commit(&w, &err), IC_OK);
}

static void test_binary_roundtrip_and_damage(void **state)
{
    (void)state;
    char path[] = "/tmp/ic_test_binXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    double payload[100];
    for (int i = 0; i < 100; i++) payload[i] = i * 0.5;
    write_file(path, payload, sizeof payload);

    ic_breader r;
    ic_error err;
    double back[100];
    assert_int_equal(ic__br_open(&r, path, MAGIC, 1, &err), IC_OK);
    assert_int_equal(ic__br_read(&r, back, sizeof back, &err), IC_OK);
    assert_memory_equal(back, payload, sizeof back);
    assert_int_equal(ic__br_read(&r, back, 1, &err), IC_ERR_CORRUPT);
    ic__br_close(&r);

    /* Wrong magic: a file of another kind. */
    assert_int_equal(ic__br_open(&r, path, "OTHERMAG", 1, &err), IC_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "magic"));

    /* Flip one payload byte: checksum. */
    FILE *f = fopen(path, "r+b");
    fseek(f, 12 + 40, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 12 + 40, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    assert_int_equal(ic__br_open(&r, path, MAGIC, 1, &err), IC_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "checksum"));

    /* Truncate at every length: never accepted. */
    write_file(path, payload, sizeof payload);
    for (long cut = 0; cut < (long)(12 + sizeof payload + 16); cut += 7) {
        assert_int_equal(truncate(path, cut), 0);
        assert_int_equal(ic__br_open(&r, path, MAGIC, 1, &err), IC_ERR_CORRUPT);
        write_file(path, payload, sizeof payload);
    }

    /* A newer version than this build reads. */
    ic_bwriter w;
    assert_int_equal(ic__bw_open(&w, path, MAGIC, 7, &err), IC_OK);
    ic__bw_write(&w, payload, 8);
    assert_int_equal(ic__bw_commit(&w, &err), IC_OK);
    assert_int_equal(ic__br_open(&r, path, MAGIC, 1, &err), IC_ERR_MISMATCH);
    unlink(path);

    /* Missing file. */
    assert_int_equal(ic__br_open(&r, "/nonexistent/x.bin", MAGIC, 1, &err), IC_ERR_IO);
}

/* The id -> index map against a plain array, across several growths. */
static void test_u64map(void **state)
{
    (void)state;
    enum { N = 100000 };
    uint64_t *keys = malloc(N * sizeof *keys);
    ic_rng r;
    ic__rng_seed(&r, 5);
    ic__u64map m = {0};
    assert_null(ic__u64map_get(&m, 42)); /* empty map */
    for (uint32_t i = 0; i < N; i++) {
        keys[i] = ic__rng_u64(&r) | 1; /* never 0 */
        int added;
        uint32_t *v = ic__u64map_put(&m, keys[i], i, &added);
        assert_int_equal(added, 1);
        assert_int_equal(*v, i);
    }
    assert_int_equal(m.n, N);
    for (uint32_t i = 0; i < N; i++) {
        const uint32_t *v = ic__u64map_get(&m, keys[i]);
        assert_non_null(v);
        assert_int_equal(*v, i);
        int added;
        assert_int_equal(*ic__u64map_put(&m, keys[i], 7, &added), i); /* present: kept */
        assert_int_equal(added, 0);
    }
    for (int i = 0; i < 1000; i++) assert_null(ic__u64map_get(&m, ic__rng_u64(&r) & ~1ull));
    assert_int_equal(m.n, N);
    ic__u64map_free(&m);
    free(keys);
}

/* ic__copy_lines copies exactly [0, bytes) for every size from 64 up (the
 * last move overlaps the one before it), from any alignment, and writes
 * nothing past bytes. */
static void test_copy_lines(void **state)
{
    (void)state;
    enum { MAX = 10080 + 64, GUARD = 64 };
    unsigned char *src = malloc(MAX + 8), *dst = malloc(MAX + GUARD);
    assert_non_null(src);
    assert_non_null(dst);
    for (size_t i = 0; i < MAX + 8; i++) src[i] = (unsigned char)(i * 131 + 7);
    for (size_t bytes = 64; bytes <= MAX; bytes += bytes < 300 ? 1 : 61)
        for (size_t off = 0; off < 8; off += 3) {
            memset(dst, 0xEE, MAX + GUARD);
            ic__copy_lines(dst, src + off, bytes);
            assert_memory_equal(dst, src + off, bytes);
            for (size_t i = bytes; i < bytes + GUARD && i < MAX + GUARD; i++) assert_int_equal(dst[i], 0xEE);
        }
    free(src);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_time),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_binary_roundtrip_and_damage),
        cmocka_unit_test(test_u64map),
        cmocka_unit_test(test_copy_lines),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
