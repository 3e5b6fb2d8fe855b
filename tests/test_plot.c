/* test_plot.c: the hourly share chart (ic_plot_hourly_svg). The SVG is
 * read back with a small tag scanner: the markup must nest, every segment's
 * height must be its count's share of the hour (measured against the
 * column it stands in, so the test does not depend on the layout), empty
 * hours must draw no share, and labels must come out escaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Draws p into a memory buffer (caller frees). Returns the status. */
static ic_status draw(const ic_plot_hourly *p, char **out, ic_error *err)
{
    size_t len = 0;
    FILE *f = open_memstream(out, &len);
    assert_non_null(f);
    ic_status s = ic_plot_hourly_svg(f, p, err);
    assert_int_equal(fclose(f), 0);
    return s;
}

/* Checks that tags nest: every <x ...> is closed by </x> in order, <x/>
 * closes itself; text holds no raw '<' (it would open a tag) and every
 * '&' starts an entity. Returns the number of elements. */
static int check_nesting(const char *s)
{
    char stack[64][32];
    int depth = 0, elements = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            const char *semi = strchr(p, ';');
            assert_non_null(semi);
            assert_true(semi - p <= 6);
            continue;
        }
        if (*p != '<') continue;
        const char *end = strchr(p, '>');
        assert_non_null(end);
        for (const char *q = p + 1; q < end; q++) assert_true(*q != '<');
        char name[32];
        int closing = p[1] == '/';
        size_t n = strcspn(p + 1 + closing, " />");
        assert_true(n > 0 && n < sizeof name);
        memcpy(name, p + 1 + closing, n);
        name[n] = 0;
        if (closing) {
            assert_true(depth > 0);
            assert_string_equal(stack[--depth], name);
        } else if (end[-1] != '/') {
            assert_true(depth < 64);
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
            elements++;
        } else {
            elements++;
        }
        p = end;
    }
    assert_int_equal(depth, 0);
    return elements;
}

/* The value of attribute name="..." in the tag starting at tag, as a double. */
static double attr(const char *tag, const char *name)
{
    char key[40];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *end = strchr(tag, '>'), *a = strstr(tag, key);
    assert_true(a && a < end);
    return strtod(a + strlen(key), NULL);
}

typedef struct {
    int n;                 /* share segments found */
    double h[IC_HOURS][IC_PLOT_MAX_SERIES]; /* their heights, -1 = none */
    int empty[IC_HOURS];   /* "empty" columns */
} segments;

static void find_segments(const char *svg, segments *sg)
{
    memset(sg, 0, sizeof *sg);
    for (int h = 0; h < IC_HOURS; h++)
        for (int i = 0; i < IC_PLOT_MAX_SERIES; i++) sg->h[h][i] = -1;
    for (const char *p = svg; (p = strstr(p, "<rect class=\"")) != NULL; p++) {
        const char *cls = p + strlen("<rect class=\"");
        if (!strncmp(cls, "empty\"", 6)) sg->empty[(int)attr(p, "data-hour")] = 1;
        if (strncmp(cls, "share\"", 6)) continue;
        int h = (int)attr(p, "data-hour"), i = (int)attr(p, "data-series");
        assert_true(h >= 0 && h < IC_HOURS && i >= 0 && i < IC_PLOT_MAX_SERIES);
        assert_true(sg->h[h][i] < 0); /* one segment per hour and series */
        sg->h[h][i] = attr(p, "height");
        sg->n++;
    }
}

/* Every segment's share of its column equals its count's share of the hour. */
static void test_shares_equal_counts(void **state)
{
    (void)state;
    enum { N = 4 };
    uint64_t count[N][IC_HOURS];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++)
        for (int h = 0; h < IC_HOURS; h++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            count[i][h] = (x >> 33) % 1000; /* some zeros among them */
        }
    count[2][5] = 0;
    for (int i = 0; i < N; i++) count[i][3] = 0; /* an hour without counts */
    count[0][7] = 1, count[1][7] = 0, count[2][7] = 0, count[3][7] = 999999; /* a sliver */
    const char *label[N] = {"Food", "Nightlife Spot", "Shop & Service", "other"};
    ic_plot_hourly p = {.n = N, .label = label, .count = (const uint64_t(*)[IC_HOURS])count,
                        .rest = 1, .title = "t", .note = "n"};
    char *svg = NULL;
    ic_error err = {{0}};
    assert_int_equal(draw(&p, &svg, &err), IC_OK);
    check_nesting(svg);
    segments sg;
    find_segments(svg, &sg);
    int expected = 0;
    for (int h = 0; h < IC_HOURS; h++) {
        uint64_t total = 0;
        double col = 0;
        for (int i = 0; i < N; i++) total += count[i][h];
        for (int i = 0; i < N; i++) col += sg.h[h][i] > 0 ? sg.h[h][i] : 0;
        assert_int_equal(sg.empty[h], total == 0);
        for (int i = 0; i < N; i++) {
            /* a zero count draws nothing; a non-zero one draws its share */
            assert_int_equal(sg.h[h][i] >= 0, count[i][h] > 0);
            if (count[i][h] == 0) continue;
            expected++;
            double want = (double)count[i][h] / (double)total, got = sg.h[h][i] / col;
            assert_true(fabs(got - want) < 1e-4 + 2e-3 / col); /* heights have 3 decimals */
        }
    }
    assert_int_equal(sg.n, expected);
    /* The sliver's tooltip states its exact count. */
    assert_non_null(strstr(svg, "07 h: Food 1 of 1000000 (0.0%)"));
    /* Columns are all equally tall (each sums to 100%). */
    double first = -1;
    for (int h = 0; h < IC_HOURS; h++) {
        double col = 0;
        for (int i = 0; i < N; i++) col += sg.h[h][i] > 0 ? sg.h[h][i] : 0;
        if (col == 0) continue;
        if (first < 0) first = col;
        assert_true(fabs(col - first) < 0.01);
    }
    free(svg);
}

/* The legend's figure for each series is its share of all counts. */
static void test_legend_shares(void **state)
{
    (void)state;
    uint64_t count[2][IC_HOURS] = {{0}};
    count[0][0] = 1, count[0][12] = 2; /* 3 of 12 = 25.0% */
    count[1][0] = 9;                   /* 9 of 12 = 75.0% */
    const char *label[2] = {"morning", "evening"};
    ic_plot_hourly p = {.n = 2, .label = label, .count = (const uint64_t(*)[IC_HOURS])count};
    char *svg = NULL;
    assert_int_equal(draw(&p, &svg, NULL), IC_OK);
    const char *a = strstr(svg, ">morning<"), *b = strstr(svg, ">evening<");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(strstr(a, ">25.0%<") != NULL && strstr(a, ">25.0%<") < b);
    assert_non_null(strstr(b, ">75.0%<"));
    /* Hour 12 is series 0 alone: one segment, the column's full height. */
    segments sg;
    find_segments(svg, &sg);
    assert_true(sg.h[12][0] > 0);
    assert_true(sg.h[12][1] < 0);
    assert_true(fabs(sg.h[12][0] - (sg.h[0][0] + sg.h[0][1])) < 0.01);
    assert_true(fabs(sg.h[0][0] / (sg.h[0][0] + sg.h[0][1]) - 0.1) < 1e-4);
    free(svg);
}

/* Labels, title and note with markup characters come out escaped. */
static void test_escaping(void **state)
{
    (void)state;
    uint64_t count[2][IC_HOURS] = {{0}};
    count[0][1] = 3, count[1][1] = 1;
    const char *label[2] = {"Bar <&> \"Grill\"", "Caf\xc3\xa9 'n' more"};
    ic_plot_hourly p = {.n = 2, .label = label, .count = (const uint64_t(*)[IC_HOURS])count,
                        .title = "<script>alert(1)</script>", .note = "a & b"};
    char *svg = NULL;
    assert_int_equal(draw(&p, &svg, NULL), IC_OK);
    assert_null(strstr(svg, "<script"));
    assert_null(strstr(svg, "Bar <&>"));
    assert_non_null(strstr(svg, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(svg, "Bar &lt;&amp;&gt; &quot;Grill&quot;"));
    assert_non_null(strstr(svg, "Caf\xc3\xa9 &apos;n&apos; more"));
    assert_non_null(strstr(svg, "a &amp; b"));
    /* in the tooltip too */
    assert_non_null(strstr(svg, "<title>01 h: Bar &lt;&amp;&gt; &quot;Grill&quot; 3 of 4 (75.0%)</title>"));
    int elements = check_nesting(svg);
    assert_true(elements > 24 * 2); /* columns, volume bars, axes, legend */
    assert_true(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    size_t n = strlen(svg);
    assert_string_equal(svg + n - 7, "</svg>\n");
    free(svg);
}

/* Series counts out of range are refused with a message. */
static void test_bad_args(void **state)
{
    (void)state;
    uint64_t count[1][IC_HOURS] = {{1}};
    const char *label[1] = {"x"};
    ic_plot_hourly p = {.n = 0, .label = label, .count = (const uint64_t(*)[IC_HOURS])count};
    char *svg = NULL;
    ic_error err = {{0}};
    assert_int_equal(draw(&p, &svg, &err), IC_ERR_ARG);
    assert_non_null(strstr(err.msg, "series"));
    free(svg);
    p.n = IC_PLOT_MAX_SERIES + 1;
    svg = NULL;
    assert_int_equal(draw(&p, &svg, &err), IC_ERR_ARG);
    free(svg);
}

/* `iclock plot hourly` as a user runs it: a chart of a real field, and the
 * exit statuses of the mistakes a user makes. */
static int run_plot(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "plot %s", args);
    return ic_test_run_tool(cmd, "/dev/null", "/dev/null");
}

static void test_command(void **state)
{
    (void)state;
    if (!getenv("ICLOCK_BIN")) skip();
    char dir[] = "/tmp/ic_plotcli_XXXXXX", log[64], svg[64], args[256];
    assert_non_null(mkdtemp(dir));
    snprintf(log, sizeof log, "%s/log.csv", dir);
    snprintf(svg, sizeof svg, "%s/genre.svg", dir);
    assert_int_equal(ic_test_write_synth(log, 30, 10000, 5, 1), 0);
    snprintf(args, sizeof args, "hourly --data %s --field genre -o %s", log, svg);
    assert_int_equal(run_plot(args), 0);
    FILE *f = fopen(svg, "r");
    assert_non_null(f);
    char head[128] = {0};
    assert_true(fread(head, 1, sizeof head - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(head, "<svg"));
    snprintf(args, sizeof args, "hourly --data %s --field colour -o %s", log, svg);
    assert_int_equal(run_plot(args), 2); /* not a field of the config */
    snprintf(args, sizeof args, "hourly --data %s/none.csv --field genre -o %s", dir, svg);
    assert_int_equal(run_plot(args), 1); /* no such file */
    snprintf(args, sizeof args, "hourly --field genre -o %s", svg);
    assert_int_equal(run_plot(args), 2); /* no --data */
    assert_int_equal(run_plot("sideways"), 2); /* no such chart */
    snprintf(args, sizeof args, "rm -rf %s", dir);
    assert_int_equal(system(args), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares_equal_counts),
        cmocka_unit_test(test_legend_shares),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests_name("plot", tests, NULL, NULL);
}
