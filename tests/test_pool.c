/* test_pool.c: the block pool (pool.c): class sizes, alignment, reuse of
 * released blocks, splitting and merging of free blocks, blocks above 1
 * MiB, resizing that keeps contents (copied, same class, in place,
 * remapped), and that many live blocks written with their own patterns
 * never overlap, also under random churn. */
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

/* A request whose class has no free block takes a larger free block's
 * front, the rest staying free for the next (1792 = 1024 + 768); released
 * neighbours merge, so three released 1 KiB blocks serve a 3 KiB request
 * in their place, without fresh memory. */
static void test_split_and_merge(void **state)
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
    /* Released neighbours merge into one block: b (1024) and c (768), in
     * either order of release, serve 1792 in their place. */
    ic__pool_release(p, c, 700);
    ic__pool_release(p, b, 1000);
    char *e = ic__pool_alloc(p, 1792);
    assert_ptr_equal(e, a);
    /* Three in a row, the middle one released last. */
    char *x[4];
    for (int i = 0; i < 4; i++) x[i] = ic__pool_alloc(p, 1024);
    for (int i = 0; i < 3; i++) assert_ptr_equal(x[i + 1], x[i] + 1024);
    ic__pool_release(p, x[0], 1024);
    ic__pool_release(p, x[2], 1024);
    ic__pool_release(p, x[1], 1024);
    mapped = ic__pool_bytes(p);
    char *f = ic__pool_alloc(p, 3072);
    assert_ptr_equal(f, x[0]);
    assert_int_equal(ic__pool_bytes(p), mapped);
    fill(f, 3072, 3), fill(x[3], 1024, 4);
    assert_true(check(f, 3072, 3) && check(x[3], 1024, 4));
    ic__pool_release(p, f, 3072);
    ic__pool_release(p, x[3], 1024);
    ic__pool_release(p, e, 1792);
    ic__pool_release(p, d, 64);
    ic__pool_release(p, guard, 64);
    assert_int_equal(ic__pool_in_use(p), 0);
    ic__pool_free(p);
#endif
}

/* A block grows in place into a free right neighbour (the rest of it
 * staying free) and shrinks in place, giving its tail back: its address
 * and contents stay. */
static void test_resize_in_place(void **state)
{
    (void)state;
#if !defined(__SANITIZE_ADDRESS__)
    ic__pool *p = ic__pool_create();
    char *a = ic__pool_alloc(p, 1024), *n = ic__pool_alloc(p, 4096), *guard = ic__pool_alloc(p, 64);
    fill(a, 1024, 5);
    ic__pool_release(p, n, 4096);
    char *g = ic__pool_resize(p, a, 1024, 2048, 1024); /* takes 1024 of the 4096 after it */
    assert_ptr_equal(g, a);
    assert_true(check(g, 1024, 5));
    assert_int_equal(ic__pool_in_use(p), 2048 + 64);
    char *r = ic__pool_alloc(p, 3072); /* the neighbour's rest */
    assert_ptr_equal(r, a + 2048);
    char *s2 = ic__pool_resize(p, g, 2048, 640, 640); /* shrinks: its tail is free again */
    assert_ptr_equal(s2, a);
    assert_true(check(s2, 640, 5));
    assert_ptr_equal(ic__pool_alloc(p, 1280), a + 640); /* of the 1408 bytes freed */
    /* No room on the right: moved, contents kept. */
    fill(s2, 640, 6);
    char *m = ic__pool_resize(p, s2, 640, 4000, 640);
    assert_ptr_not_equal(m, a);
    assert_true(check(m, 640, 6));
    (void)guard;
    ic__pool_free(p);
#endif
}

/* Random allocations, releases and resizes of blocks up to 40 KB, each
 * block written with its own pattern and checked before it changes: no
 * block overlaps another through any split, merge or in-place resize, and
 * after all are released the pool's memory is one free run per chunk (a
 * block of the largest size fits without fresh memory). */
static void test_random_churn(void **state)
{
    (void)state;
    enum { N = 2000, STEPS = 60000 };
    ic__pool *p = ic__pool_create();
    char *b[N] = {0};
    size_t len[N] = {0};
    unsigned seed[N] = {0};
    uint64_t r = 88172645463325252ull;
    for (unsigned step = 0; step < STEPS; step++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        unsigned i = (unsigned)(r % N);
        size_t want = 1 + (size_t)((r >> 20) % (r >> 60 ? 3000 : 40000));
        if (!b[i]) {
            b[i] = ic__pool_alloc(p, want);
            len[i] = want, seed[i] = step;
            fill(b[i], want, step);
        } else {
            assert_true(check(b[i], len[i], seed[i]));
            if ((r >> 40) % 3 == 0) {
                ic__pool_release(p, b[i], len[i]);
                b[i] = NULL;
            } else {
                size_t keep = len[i] < want ? len[i] : want;
                b[i] = ic__pool_resize(p, b[i], len[i], want, keep);
                assert_true(check(b[i], keep, seed[i]));
                len[i] = want, seed[i] = step;
                fill(b[i], want, step);
            }
        }
        assert_int_equal((uintptr_t)(b[i] ? b[i] : (char *)0) % 64, 0);
    }
    size_t used = 0;
    for (unsigned i = 0; i < N; i++)
        if (b[i]) assert_true(check(b[i], len[i], seed[i])), used += ic__pool_class_bytes(len[i]);
    assert_int_equal(ic__pool_in_use(p), used);
    for (unsigned i = 0; i < N; i++) ic__pool_release(p, b[i], len[i]);
    assert_int_equal(ic__pool_in_use(p), 0);
#if !defined(__SANITIZE_ADDRESS__)
    /* Everything merged back: a block as large as the pool's first chunk
     * (2 MiB, in its own class list or the bump space) comes without
     * mapping more. */
    size_t mapped = ic__pool_bytes(p);
    void *big = ic__pool_alloc(p, 1u << 20);
    assert_int_equal(ic__pool_bytes(p), mapped);
    ic__pool_release(p, big, 1u << 20);
#endif
    ic__pool_free(p);
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
        cmocka_unit_test(test_split_and_merge),
        cmocka_unit_test(test_resize_in_place),
        cmocka_unit_test(test_random_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
