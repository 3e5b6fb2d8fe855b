/* test_pool.c: the block pool (pool.c): class sizes, alignment, reuse of
 * released blocks, blocks above 1 MiB, resizing that keeps contents
 * (copied, same class, remapped), and that many live blocks written with
 * their own patterns never overlap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pool.h"

#define MIB ((size_t)1 << 20)

static void fill(void *b, size_t n, unsigned seed)
{
    unsigned char *c = b;
    for (size_t i = 0; i < n; i++) c[i] = (unsigned char)(seed * 131 + i * 7);
}

static int check(const void *b, size_t n, unsigned seed)
{
    const unsigned char *c = b;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(seed * 131 + i * 7)) return 0;
    return 1;
}

/* Classes: at least the request, a multiple of 64, at most 25% (or 64
 * bytes) above it, never smaller for a larger request. */
static void test_class_sizes(void **state)
{
    (void)state;
    size_t prev = 0;
    for (size_t b = 1; b <= 4 * MIB; b += b < 4096 ? 1 : 997) {
        size_t c = ic__pool_class_bytes(b);
        assert_true(c >= b);
        assert_int_equal(c % 64, 0);
        if (b <= MIB) assert_true(c <= b + b / 4 + 64);
        assert_true(c >= prev);
        prev = c;
    }
    assert_int_equal(ic__pool_class_bytes(64), 64);
    assert_int_equal(ic__pool_class_bytes(65), 128);
    assert_int_equal(ic__pool_class_bytes(513), 640);
    assert_int_equal(ic__pool_class_bytes(1024), 1024);
    assert_int_equal(ic__pool_class_bytes(1025), 1280);
    assert_int_equal(ic__pool_class_bytes(MIB), MIB);
    assert_int_equal(ic__pool_class_bytes(MIB + 1), 2 * MIB); /* own mapping, 2 MiB pages */
}

/* Many blocks of many sizes, each 64-byte aligned and written with its
 * own pattern: none overwrites another; the bytes in use follow. */
static void test_blocks_disjoint(void **state)
{
    (void)state;
    enum { N = 3000 };
    ic__pool *p = ic__pool_create();
    void *b[N];
    size_t len[N], want = 0;
    for (unsigned i = 0; i < N; i++) {
        len[i] = 1 + (i * 2654435761u) % (i % 50 == 0 ? 3 * MIB : 9000);
        b[i] = ic__pool_alloc(p, len[i]);
        assert_int_equal((uintptr_t)b[i] % 64, 0);
        fill(b[i], len[i], i);
        want += ic__pool_class_bytes(len[i]);
    }
    assert_int_equal(ic__pool_in_use(p), want);
    assert_true(ic__pool_bytes(p) >= want);
    for (unsigned i = 0; i < N; i++) assert_true(check(b[i], len[i], i));
    for (unsigned i = 0; i < N; i += 2) ic__pool_release(p, b[i], len[i]);
    for (unsigned i = 0; i < N; i += 2) { /* reuse: new blocks in the freed places */
        b[i] = ic__pool_alloc(p, len[i]);
        fill(b[i], len[i], i + 7);
    }
    for (unsigned i = 0; i < N; i++) assert_true(check(b[i], len[i], i % 2 ? i : i + 7));
    for (unsigned i = 0; i < N; i++) ic__pool_release(p, b[i], len[i]);
    assert_int_equal(ic__pool_in_use(p), 0);
    ic__pool_free(p);
}

/* A released block is handed out again for its class, and a block above
 * 1 MiB is unmapped when released. Under ASan every block is a malloc: the
 * pointers are not reused there, but the accounting must be the same. */
static void test_reuse(void **state)
{
    (void)state;
    ic__pool *p = ic__pool_create();
    void *a = ic__pool_alloc(p, 700), *b = ic__pool_alloc(p, 700);
    assert_ptr_not_equal(a, b);
    size_t mapped = ic__pool_bytes(p);
    ic__pool_release(p, a, 700);
    void *c = ic__pool_alloc(p, 760); /* 700 and 760 share the class of 768 */
#if !defined(__SANITIZE_ADDRESS__)
    assert_ptr_equal(c, a);
#endif
    assert_int_equal(ic__pool_bytes(p), mapped);
    assert_int_equal(ic__pool_in_use(p), 2 * 768);
    ic__pool_release(p, c, 760);
    ic__pool_release(p, b, 700);
    assert_int_equal(ic__pool_in_use(p), 0);
    size_t base = ic__pool_bytes(p);
    void *big = ic__pool_alloc(p, 3 * MIB);
    assert_int_equal(ic__pool_bytes(p), base + 4 * MIB);
    ic__pool_release(p, big, 3 * MIB);
    assert_int_equal(ic__pool_bytes(p), base);
    ic__pool_free(p);
}

/* A request whose class has no free block takes a free block up to four
 * classes larger before fresh memory: its front, the rest becoming free
 * blocks of the largest classes that fit (1792 = 1024 + 768). */
static void test_split_larger(void **state)
{
    (void)state;
#if !defined(__SANITIZE_ADDRESS__)
    ic__pool *p = ic__pool_create();
    char *a = ic__pool_alloc(p, 1792), *guard = ic__pool_alloc(p, 64);
    size_t mapped = ic__pool_bytes(p);
    ic__pool_release(p, a, 1792);
    char *b = ic__pool_alloc(p, 1000); /* class 1024: cut from the 1792 block */
    assert_ptr_equal(b, a);
    char *c = ic__pool_alloc(p, 700), *d = ic__pool_alloc(p, 64); /* 768 = the rest */
    assert_ptr_equal(c, a + 1024);
    assert_true(d < a || d >= a + 1792); /* nothing was left over */
    assert_int_equal(ic__pool_bytes(p), mapped);
    fill(b, 1000, 1), fill(c, 700, 2);
    assert_true(check(b, 1000, 1) && check(c, 700, 2));
    /* A block more than four classes larger is not cut. */
    char *big = ic__pool_alloc(p, 8192);
    ic__pool_release(p, big, 8192);
    char *small = ic__pool_alloc(p, 2048);
    assert_true(small < big || small >= big + 8192);
    ic__pool_release(p, small, 2048);
    /* Released halves come back as their own classes. */
    ic__pool_release(p, c, 700);
    assert_ptr_equal(ic__pool_alloc(p, 768), c);
    (void)guard;
    ic__pool_free(p);
#endif
}

/* Resizing keeps the first `keep` bytes in every path: within a class,
 * to another class, from a class to its own mapping, mapping to mapping
 * (remapped) and back down. */
static void test_resize_keeps(void **state)
{
    (void)state;
    ic__pool *p = ic__pool_create();
    const size_t steps[] = {100, 120, 5000, 900, 2 * MIB, 5 * MIB + 3, 3 * MIB, 4000, 64};
    size_t n = 50;
    void *b = ic__pool_alloc(p, n);
    fill(b, n, 1);
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        size_t keep = n < steps[i] ? n : steps[i];
        b = ic__pool_resize(p, b, n, steps[i], keep);
        assert_int_equal((uintptr_t)b % 64, 0);
        assert_true(check(b, keep, 1));
        n = steps[i];
        fill(b, n, 1);
        assert_int_equal(ic__pool_in_use(p), ic__pool_class_bytes(n));
    }
    ic__pool_release(p, b, n);
    assert_int_equal(ic__pool_in_use(p), 0);
    ic__pool_free(p);
    ic__pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_sizes),
        cmocka_unit_test(test_blocks_disjoint),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_resize_keeps),
        cmocka_unit_test(test_split_larger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
