/* test_csv.c: the log reader and the id->string map: RFC 4180 quoting,
 * multi-values, .gz, Unix and ISO times, CRLF, BOM, blank lines, every
 * bad-row message (file, line, column number and name, text), skip mode,
 * the ordering contract, a configured column missing from the header; and
 * the iclock sort and stats commands, driven as a user would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER "ts,user,item,tz,genre,mood,lang,finish,like,skip,dislike\n"

static char path_buf[4][128];

/* A per-process temporary file name, slot k. */
static const char *tmp_name(int k, const char *suffix)
{
    snprintf(path_buf[k], sizeof path_buf[k], "/tmp/iclock_test_csv_%d_%d%s", (int)getpid(), k,
             suffix);
    return path_buf[k];
}

static const char *write_file(int k, const char *suffix, const char *text, size_t n)
{
    const char *p = tmp_name(k, suffix);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
    return p;
}

static const char *write_text(int k, const char *text)
{
    return write_file(k, ".csv", text, strlen(text));
}

static uint64_t H(const char *s) { return ic_hash(s, strlen(s)); }

/* Reads all of path with the default config; returns the event count and
 * copies up to cap events into evs. Asserts the read ends cleanly. */
static int read_all(const char *path, const ic_config *cfg, ic_event *evs, int cap, ic_names *nm)
{
    ic_reader *r;
    ic_error err = {{0}};
    ic_status s = ic_reader_open(&r, path, cfg, IC_BAD_ROWS_FAIL, nm, &err);
    if (s) print_error("open: %s\n", err.msg);
    assert_int_equal(s, IC_OK);
    ic_event ev;
    int n = 0, k;
    while ((k = ic_reader_next(r, &ev, &err)) == 1) {
        if (n < cap) evs[n] = ev;
        n++;
    }
    if (k < 0) print_error("next: %s\n", err.msg);
    assert_int_equal(k, 0);
    ic_reader_close(r);
    return n;
}

static void test_scan_record(void **state)
{
    (void)state;
    ic_csv_record rec;
    rec.scratch = malloc(IC_CSV_SCRATCH);
    const char *a = "x,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\nnext";
    size_t used = ic_csv_scan(a, strlen(a), 0, ',', &rec);
    assert_int_equal(used, strlen(a) - 4);
    assert_int_equal(rec.n, 5);
    assert_int_equal(rec.problem, IC_CSV_OK);
    assert_int_equal(rec.lines, 2);
    assert_memory_equal(rec.ptr[1], "a,b", 3);
    assert_int_equal(rec.len[2], 8);
    assert_memory_equal(rec.ptr[2], "say \"hi\"", 8);
    assert_memory_equal(rec.ptr[3], "two\nlines", 9);
    assert_int_equal(rec.len[4], 0); /* the CR of CRLF is not data */
    /* Without a line end, more input may follow: no record yet... */
    assert_int_equal(ic_csv_scan("a,b", 3, 0, ',', &rec), 0);
    /* ...nor after a quote that may be the first of a doubled pair. */
    assert_int_equal(ic_csv_scan("\"a\"", 3, 0, ',', &rec), 0);
    /* At the end of the input, it is the last record. */
    assert_int_equal(ic_csv_scan("a,b", 3, 1, ',', &rec), 3);
    assert_int_equal(rec.n, 2);
    assert_int_equal(ic_csv_scan("\"a\"", 3, 1, ',', &rec), 3);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.blank, 0);
    assert_int_equal(ic_csv_scan("\r\nx", 3, 0, ',', &rec), 2);
    assert_int_equal(rec.blank, 1);
    /* Problems are reported with their column, and the record consumed. */
    assert_int_equal(ic_csv_scan("a,\"b\"c,d\ne", 10, 0, ',', &rec), 9);
    assert_int_equal(rec.problem, IC_CSV_AFTER_QUOTE);
    assert_int_equal(rec.problem_col, 1);
    assert_int_equal(rec.n, 3);
    assert_int_equal(ic_csv_scan("a,\"open\n", 8, 1, ',', &rec), 8);
    assert_int_equal(rec.problem, IC_CSV_UNTERMINATED);
    assert_int_equal(rec.problem_col, 1);
    /* Another delimiter. */
    assert_int_equal(ic_csv_scan("a;b,c\n", 6, 0, ';', &rec), 6);
    assert_int_equal(rec.n, 2);
    assert_int_equal(rec.len[1], 3);
    char q[64];
    assert_string_equal(ic_csv_quote("a\"b\x01", 4, q, sizeof q), "\"a\\\"b\\x01\"");
    assert_string_equal(ic_csv_quote("\xff", 1, q, sizeof q), "\"\\xff\"");
    assert_string_equal(ic_csv_quote("\xc3\xa9", 2, q, sizeof q), "\"\xc3\xa9\"");
    free(rec.scratch);
}

static void test_read_quoting_and_values(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    /* Columns in another order than the config's, and an extra one. */
    const char *text =
        "extra,user,ts,item,tz,genre,mood,lang,finish,like,skip,dislike\n"
        "zz,u1,1693526400,\"a,b\",480,pop|rock,happy,en,1,0,0,0\n"
        "zz,\"say \"\"hi\"\"\",2023-09-01T08:30:00+08:00,\"two\nlines\",,,calm,zh,0,1,1,0\n"
        "zz,u2,2023-09-01T00:30:00Z,i3,-300,jazz,,en,0.5,1,2.5,0\n";
    const char *p = write_text(0, text);
    ic_event ev[4];
    ic_names *nm = ic_names_create();
    ic_reader *r;
    ic_error err = {{0}};
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, nm, &err), IC_OK);
    assert_int_equal(ic_reader_columns(r), 12);
    int lines[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ic_reader_next(r, &ev[i], &err), 1);
        lines[i] = (int)ic_reader_line(r);
    }
    assert_int_equal(ic_reader_next(r, &ev[3], &err), 0);
    assert_int_equal(ic_reader_stats_get(r)->events, 3);
    ic_reader_close(r);
    /* The second row spans lines 3-4, so the third starts on line 5. */
    assert_int_equal(lines[0], 2);
    assert_int_equal(lines[1], 3);
    assert_int_equal(lines[2], 5);

    assert_int_equal(ev[0].ts, 1693526400);
    assert_int_equal(ev[0].tz_min, 480);
    assert_true(ev[0].user == H("u1"));
    assert_true(ev[0].item == H("a,b"));
    /* genre holds two values, mood and lang one each. */
    assert_int_equal(ev[0].voff[0], 0);
    assert_int_equal(ev[0].voff[1], 2);
    assert_int_equal(ev[0].voff[2], 3);
    assert_int_equal(ev[0].voff[3], 4);
    assert_true(ev[0].val[0] == H("pop") && ev[0].val[1] == H("rock"));
    assert_true(ev[0].val[2] == H("happy") && ev[0].val[3] == H("en"));
    /* actions: like, finish, skip, dislike; tasks: finish, like */
    assert_true(ev[0].action[0] == 0 && ev[0].action[1] == 1);
    assert_true(ev[0].label[0] == 1 && ev[0].label[1] == 0);

    assert_int_equal(ev[1].ts, 1693528200);
    assert_int_equal(ev[1].tz_min, cfg.tz_default_min); /* empty tz cell */
    assert_true(ev[1].user == H("say \"hi\""));
    assert_true(ev[1].item == H("two\nlines"));
    assert_int_equal(ev[1].voff[0], 0); /* empty genre: no value */
    assert_int_equal(ev[1].voff[1], 0);
    assert_int_equal(ev[1].voff[2], 1);
    assert_true(ev[1].val[0] == H("calm"));
    assert_true(ev[1].action[2] == 1);

    assert_int_equal(ev[2].ts, 1693528200);
    assert_int_equal(ev[2].tz_min, -300);
    assert_int_equal(ev[2].voff[1] - ev[2].voff[0], 1);
    assert_int_equal(ev[2].voff[2] - ev[2].voff[1], 0); /* empty mood */
    assert_true(ev[2].label[0] == 0.5f);
    assert_true(ev[2].action[2] == 2.5f); /* counts are fine for actions */

    assert_string_equal(ic_names_get(nm, H("a,b")), "a,b");
    assert_string_equal(ic_names_get(nm, H("say \"hi\"")), "say \"hi\"");
    assert_string_equal(ic_names_get(nm, H("rock")), "rock");
    assert_null(ic_names_get(nm, H("zz"))); /* not a role: not recorded */
    ic_names_free(nm);
}

static const char *CRLF_BODY = "\xEF\xBB\xBF" "ts,user,item,tz,genre,mood,lang,finish,like,skip,dislike\r\n"
                               "100,u1,i1,60,pop,happy,en,1,0,0,0\r\n"
                               "\r\n"
                               "200,u2,\"i\r\n2\",60,rock,sad,zh,0,1,0,0\r\n"
                               "300,u3,i3,,jazz,calm,en,0,0,1,1\r\n"
                               "\r\n\r\n";

static void test_crlf_bom_blank_lines(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    ic_event ev[4];
    const char *p = write_text(0, CRLF_BODY);
    assert_int_equal(read_all(p, &cfg, ev, 4, NULL), 3);
    assert_int_equal(ev[0].ts, 100);
    assert_true(ev[1].item == H("i\r\n2")); /* inside quotes, CRLF is data */
    assert_true(ev[2].action[3] == 1);      /* the last column lost its CR */
    assert_true(ev[2].label[0] == 0);

    /* No final newline; the BOM made no difference to the first column. */
    const char *t2 = "\xEF\xBB\xBF" HEADER "5,u,i,0,a,b,c,1,1,0,0";
    p = write_text(0, t2);
    assert_int_equal(read_all(p, &cfg, ev, 4, NULL), 1);
    assert_int_equal(ev[0].ts, 5);
    assert_true(ev[0].action[3] == 0 && ev[0].label[1] == 1);
}

static void test_gz(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    const char *gz = tmp_name(1, ".csv.gz");
    gzFile f = gzopen(gz, "wb");
    assert_non_null(f);
    /* Enough rows to need several buffer refills of the decompressed text. */
    gzputs(f, HEADER);
    for (int i = 0; i < 50000; i++)
        gzprintf(f, "%d,u%d,\"item %d\",0,g%d,m,en,%d,0,0,0\n", 1000 + i, i % 97, i, i % 5, i & 1);
    gzclose(f);
    ic_event ev[1];
    ic_names *nm = ic_names_create();
    ic_reader *r;
    ic_error err = {{0}};
    assert_int_equal(ic_reader_open(&r, gz, &cfg, IC_BAD_ROWS_FAIL, nm, &err), IC_OK);
    int n = 0, finished = 0, k;
    while ((k = ic_reader_next(r, ev, &err)) == 1) {
        assert_int_equal(ev[0].ts, 1000 + n);
        finished += ev[0].label[0] == 1;
        n++;
    }
    assert_int_equal(k, 0);
    assert_int_equal(n, 50000);
    assert_int_equal(finished, 25000);
    assert_int_equal(ic_reader_line(r), 50001);
    ic_reader_close(r);
    assert_string_equal(ic_names_get(nm, H("item 49999")), "item 49999");
    ic_names_free(nm);

    /* A truncated .gz is an I/O error, not a silent short read. */
    FILE *in = fopen(gz, "rb");
    char *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, in);
    fclose(in);
    const char *cut = write_file(2, ".csv.gz", buf, len / 2);
    free(buf);
    assert_int_equal(ic_reader_open(&r, cut, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_OK);
    while ((k = ic_reader_next(r, ev, &err)) == 1) {}
    assert_int_equal(k, IC_ERR_IO);
    assert_non_null(strstr(err.msg, cut));
    ic_reader_close(r);
}

typedef struct {
    const char *row;  /* line 3 of the file; line 2 is good */
    int col;          /* 1-based */
    const char *name; /* the column's name */
    const char *text; /* the offending text as the message shows it */
    const char *what;
} bad_row;

static void test_bad_rows_fail(void **state)
{
    (void)state;
    static char longrow[6000], manyvals[400], badutf[64];
    {
        char *p = longrow + snprintf(longrow, sizeof longrow, "10,u,");
        memset(p, 'x', 5000);
        strcpy(p + 5000, ",0,a,b,c,0,0,0,0\n");
    }
    {
        char *p = manyvals + snprintf(manyvals, sizeof manyvals, "10,u,i,0,");
        for (int i = 0; i < IC_MAX_VALUES; i++) p += sprintf(p, "v%d|", i);
        strcpy(p, "last,b,c,0,0,0,0\n");
    }
    snprintf(badutf, sizeof badutf, "10,u\xff" "x,i,0,a,b,c,0,0,0,0\n");
    const bad_row cases[] = {
        {"2023-13-01,u,i,0,a,b,c,0,0,0,0\n", 1, "ts", "\"2023-13-01\"", "is not a time"},
        {"10,u,i,0,a,b,c,0,0,0\n", 11, "dislike", NULL, "missing (the row has 10 columns"},
        {"10,u,i,0,a,b,c,0,0,0,0,9\n", 12, NULL, "\"9\"", "extra column"},
        {"10,u,i,+8h,a,b,c,0,0,0,0\n", 4, "tz", "\"+8h\"", "not a UTC offset"},
        {"10,u,i,0,a,b,c,0,0,0,0\n10,u,\"open,0,a,b,c,0,0,0,0\n", 3, "item", NULL,
         "unterminated quote"},
        {"10,u,\"i\"x,0,a,b,c,0,0,0,0\n", 3, "item", "\"i\"", "text after a closing quote"},
        {longrow, 3, "item", "\"xxxx", "over-long field"},
        {badutf, 2, "user", "\"u\\xffx\"", "not valid UTF-8"},
        {"10,u,i,0,a,b\xc3,c,0,0,0,0\n", 6, "mood", "\"b\\xc3\"", "not valid UTF-8"},
        {manyvals, 5, "genre", "\"v0|v1|", "too many values"},
        {"10,u,i,0,a,b,c,2,0,0,0\n", 8, "finish", "\"2\"", "is not a label in [0, 1]"},
        {"10,u,i,0,a,b,c,0,1.5,0,0\n", 9, "like", "\"1.5\"", "is not a label"},
        {"10,u,i,0,a,b,c,0,0,0x1,0\n", 10, "skip", "\"0x1\"", "not a non-negative number"},
        {"10,u,i,0,a,b,c,0,0,-1,0\n", 10, "skip", "\"-1\"", "not a non-negative number"},
        {"10,u,i,0,a,b,c,0,0,0,\n", 11, "dislike", "\"\"", "not a non-negative number"},
        {"10,,i,0,a,b,c,0,0,0,0\n", 2, "user", NULL, "empty id"},
        {"10,u,i,0,pop||rock,b,c,0,0,0,0\n", 5, "genre", "\"pop||rock\"", "empty value"},
    };
    ic_config cfg;
    ic_config_default(&cfg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[8000];
        snprintf(text, sizeof text, HEADER "1,u0,i0,0,a,b,c,0,0,0,0\n%s", cases[i].row);
        /* The unterminated-quote case has its bad row on line 4. */
        int line = strstr(cases[i].row, "\"open") ? 4 : 3;
        const char *p = write_text(0, text);
        ic_reader *r;
        ic_error err = {{0}};
        ic_event ev;
        assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_OK);
        int k;
        while ((k = ic_reader_next(r, &ev, &err)) == 1) {}
        if (k != IC_ERR_PARSE) print_error("case %zu: %d %s\n", i, k, err.msg);
        assert_int_equal(k, IC_ERR_PARSE);
        char want[256];
        if (cases[i].name)
            snprintf(want, sizeof want, "%s:%d:%d: column '%s': ", p, line, cases[i].col,
                     cases[i].name);
        else
            snprintf(want, sizeof want, "%s:%d:%d: ", p, line, cases[i].col);
        const char *subs[] = {want, cases[i].text, cases[i].what};
        for (int s = 0; s < 3; s++)
            if (subs[s] && !strstr(err.msg, subs[s])) {
                print_error("case %zu: \"%s\" lacks \"%s\"\n", i, err.msg, subs[s]);
                fail();
            }
        /* The failure is sticky. */
        assert_int_equal(ic_reader_next(r, &ev, &err), IC_ERR_PARSE);
        ic_reader_close(r);
    }
}

static void test_skip_mode_and_order(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    const char *text = HEADER "10,u,i,0,a,b,c,0,0,0,0\n"
                              "xx,u,i,0,a,b,c,0,0,0,0\n"    /* bad time */
                              "20,u,i,0,a,b,c,0,0,0\n"      /* too few columns */
                              "30,u,i,0,a,b,c,1,0,0,0\n"
                              "25,u,i,0,a,b,c,0,0,0,0\n"    /* out of order */
                              "30,u,i,0,a,b,c,0,7,0,0\n"    /* bad label */
                              "31,u,i,0,a,b,c,0,0,0,0\n"
                              "1,u,i,0,a,b,c,0,0,0,0\n"     /* out of order */
                              "40,u,i,0,a,b,c,0,0,0,0\n";
    const char *p = write_text(0, text);
    ic_reader *r;
    ic_error err = {{0}};
    ic_event ev;
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_SKIP, NULL, &err), IC_OK);
    int64_t ts[8];
    int n = 0, k;
    while ((k = ic_reader_next(r, &ev, &err)) == 1) ts[n++] = ev.ts;
    assert_int_equal(k, 0);
    assert_int_equal(n, 4);
    assert_int_equal(ts[0], 10);
    assert_int_equal(ts[1], 30);
    assert_int_equal(ts[2], 31);
    assert_int_equal(ts[3], 40);
    const ic_reader_stats *st = ic_reader_stats_get(r);
    assert_int_equal(st->rows, 9);
    assert_int_equal(st->events, 4);
    assert_int_equal(st->bad, 5);
    assert_int_equal(st->bad_order, 2);
    assert_int_equal(st->bad_shape, 1);
    assert_int_equal(st->n_first_bad, IC_READER_KEEP_BAD);
    char want[128];
    snprintf(want, sizeof want, "%s:3:1: column 'ts': \"xx\"", p);
    assert_non_null(strstr(st->first_bad[0], want));
    snprintf(want, sizeof want, "%s:6:1: column 'ts': time 25", p);
    assert_non_null(strstr(st->first_bad[2], want));
    snprintf(want, sizeof want, "%s:7:9:", p);
    assert_non_null(strstr(st->first_bad[3], want));
    ic_reader_close(r);

    /* Fail mode: the first earlier row is IC_ERR_ORDER naming both times. */
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_OK);
    assert_int_equal(ic_reader_next(r, &ev, &err), 1);
    assert_int_equal(ic_reader_next(r, &ev, &err), IC_ERR_PARSE);
    ic_reader_close(r);
    const char *sorted_then_not = HEADER "100,u,i,0,a,b,c,0,0,0,0\n"
                                         "100,u,i,0,a,b,c,0,0,0,0\n"
                                         "2023-09-01T00:00:00Z,u,i,0,a,b,c,0,0,0,0\n"
                                         "1693526399,u,i,0,a,b,c,0,0,0,0\n";
    p = write_text(0, sorted_then_not);
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(ic_reader_next(r, &ev, &err), 1);
    assert_int_equal(ic_reader_next(r, &ev, &err), IC_ERR_ORDER);
    snprintf(want, sizeof want, "%s:5:1: column 'ts': time 1693526399", p);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "1693526400 (2023-09-01T00:00:00Z) on line 4"));
    assert_non_null(strstr(err.msg, "iclock sort"));
    ic_reader_close(r);
}

static void test_header_errors(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    ic_reader *r = (ic_reader *)1;
    ic_error err = {{0}};
    const char *p = write_text(0, "ts,user,item,tz,genre,lang,finish,like,skip,dislike\n");
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_ERR_CONFIG);
    assert_null(r);
    char want[256];
    snprintf(want, sizeof want, "built-in default [fields] mood: column 'mood' is not in %s", p);
    assert_non_null(strstr(err.msg, want));

    /* A config file: the message names its line and key. */
    const char *ini = write_file(1, ".ini", "[data]\n\ntime = when\n", 21);
    assert_int_equal(ic_config_load(&cfg, ini, &err), IC_OK);
    p = write_text(0, HEADER);
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_ERR_CONFIG);
    snprintf(want, sizeof want, "%s:3: [data] time: column 'when' is not in %s", ini, p);
    assert_non_null(strstr(err.msg, want));
    unlink(ini);

    ic_config_default(&cfg);
    p = write_text(0, "ts,user,item,tz,genre,mood,lang,finish,like,skip,dislike,mood\n");
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "column 'mood' appears twice"));
    p = write_text(0, "\n\n");
    assert_int_equal(ic_reader_open(&r, p, &cfg, IC_BAD_ROWS_FAIL, NULL, &err), IC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "empty file"));
    assert_int_equal(ic_reader_open(&r, "/nonexistent/e.csv", &cfg, IC_BAD_ROWS_FAIL, NULL, &err),
                     IC_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/e.csv: cannot open"));

    /* Header only: no events, no error. A tab-separated log with no tz. */
    ic_event ev;
    assert_int_equal(read_all(p = write_text(0, HEADER), &cfg, &ev, 1, NULL), 0);
    assert_int_equal(ic_config_set(&cfg, "data", "delimiter", "tab", &err), IC_OK);
    assert_int_equal(ic_config_set(&cfg, "data", "tz", "", &err), IC_OK);
    assert_int_equal(ic_config_set(&cfg, "data", "tz_default", "-60", &err), IC_OK);
    p = write_text(0, "ts\tuser\titem\tgenre\tmood\tlang\tfinish\tlike\tskip\tdislike\n"
                      "7\tu,1\ti\tpop\ta\tb\t1\t0\t0\t0\n");
    assert_int_equal(read_all(p, &cfg, &ev, 1, NULL), 1);
    assert_true(ev.user == H("u,1"));
    assert_int_equal(ev.tz_min, -60);
}

static void test_numbers(void **state)
{
    (void)state;
    ic_config cfg;
    ic_config_default(&cfg);
    const char *text = HEADER "1,u,i,0,a,b,c,0.25,1.0,3e0,.5\n"
                              "2,u,i,0,a,b,c,1e-1,+0,12.50,0.1234567890123456789\n";
    ic_event ev[2];
    assert_int_equal(read_all(write_text(0, text), &cfg, ev, 2, NULL), 2);
    assert_true(ev[0].label[0] == 0.25f && ev[0].label[1] == 1.0f);
    assert_true(ev[0].action[2] == 3.0f && ev[0].action[3] == 0.5f);
    assert_true(ev[1].label[0] == 0.1f && ev[1].label[1] == 0.0f);
    assert_true(ev[1].action[2] == 12.5f);
    assert_true(ev[1].action[3] == (float)0.1234567890123456789);
}

static void test_names_map(void **state)
{
    (void)state;
    ic_names *nm = ic_names_create();
    char buf[32];
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(buf, sizeof buf, "id-%d", i);
        ic_names_put(nm, ic_hash(buf, (size_t)n), buf, (size_t)n);
    }
    assert_int_equal(ic_names_count(nm), 200000);
    for (int i = 0; i < 200000; i += 997) {
        int n = snprintf(buf, sizeof buf, "id-%d", i);
        assert_string_equal(ic_names_get(nm, ic_hash(buf, (size_t)n)), buf);
    }
    ic_names_put(nm, H("id-5"), "other", 5); /* first string wins */
    assert_string_equal(ic_names_get(nm, H("id-5")), "id-5");
    ic_names_put(nm, 7, "seven", 5);          /* small ids work too */
    assert_string_equal(ic_names_get(nm, 7), "seven");
    assert_null(ic_names_get(nm, H("never")));
    assert_null(ic_names_get(nm, 0));
    ic_names_free(nm);
    ic_names_free(NULL);
}

/* ---- The tools, as a user runs them ------------------------------------------------ */

/* Runs cmd through the shell; returns its exit status; its stdout goes to
 * out (if non-NULL). */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = 0, got;
    char sink[4096];
    while ((got = fread(out ? out + n : sink, 1, out ? cap - 1 - n : sizeof sink, f)) > 0)
        if (out) n += got;
    if (out) out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tools(void **state)
{
    (void)state;
    const char *bin = getenv("ICLOCK_BIN");
    if (!bin) {
        print_message("ICLOCK_BIN is unset: skipping the iclock sort/stats checks\n");
        skip();
    }
    /* Rows out of order, one spanning two lines, equal times whose order
     * must be kept (stable), CRLF kept verbatim. */
    const char *rows[] = {
        "300,u1,i1,0,pop,happy,en,1,0,0,0\n",
        "100,u2,\"i,2\",480,rock|pop,sad,zh,0,1,0,0\n",
        "200,u1,i3,,jazz,calm,en,0,0,1,0\r\n",
        "100,u3,\"two\nlines\",0,pop,happy,en,1,1,0,0\n",
        "2023-09-01T00:00:00Z,u2,i1,0,pop,sad,en,0,0,0,1\n",
    };
    const int order[] = {1, 3, 2, 0, 4};
    char text[2048] = HEADER, want[2048] = HEADER;
    for (int i = 0; i < 5; i++) strcat(text, rows[i]);
    for (int i = 0; i < 5; i++) strcat(want, rows[order[i]]);
    const char *in = write_text(0, text);
    const char *out = tmp_name(1, ".sorted.csv");
    char cmd[1024], buf[1 << 16];
    snprintf(cmd, sizeof cmd, "%s sort %s -o %s", bin, in, out);
    assert_int_equal(run(cmd, NULL, 0), 0);
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_string_equal(buf, want);

    /* stats on the sorted file: 5 events, 3 users, 4 items, finish 2/5. */
    snprintf(cmd, sizeof cmd, "%s stats %s", bin, out);
    assert_int_equal(run(cmd, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "events"));
    snprintf(cmd, sizeof cmd, "%s stats --json %s", bin, out);
    assert_int_equal(run(cmd, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "\"events\": 5"));
    assert_non_null(strstr(buf, "\"users\": 3"));
    assert_non_null(strstr(buf, "\"items\": 4"));
    assert_non_null(strstr(buf, "\"finish\": 0.4"));

    /* The unsorted file: stats refuses (2); skip mode reads what it can. */
    snprintf(cmd, sizeof cmd, "%s stats %s 2>/dev/null", bin, in);
    assert_int_equal(run(cmd, NULL, 0), 2);
    snprintf(cmd, sizeof cmd, "%s stats --json --bad-rows=skip %s", bin, in);
    assert_int_equal(run(cmd, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "\"skipped\": 3"));
    assert_non_null(strstr(buf, "\"skipped_order\": 3"));
    assert_non_null(strstr(buf, "\"events\": 2"));

    /* Missing file: 1. Bad usage and bad input: 2. */
    snprintf(cmd, sizeof cmd, "%s stats /nonexistent/x.csv 2>/dev/null", bin);
    assert_int_equal(run(cmd, NULL, 0), 1);
    snprintf(cmd, sizeof cmd, "%s sort /nonexistent/x.csv 2>/dev/null", bin);
    assert_int_equal(run(cmd, NULL, 0), 1);
    snprintf(cmd, sizeof cmd, "%s stats --bogus %s 2>/dev/null", bin, out);
    assert_int_equal(run(cmd, NULL, 0), 2);
    snprintf(cmd, sizeof cmd, "%s stats --bad-rows=maybe %s 2>/dev/null", bin, out);
    assert_int_equal(run(cmd, NULL, 0), 2);
    snprintf(cmd, sizeof cmd, "%s sort 2>/dev/null", bin);
    assert_int_equal(run(cmd, NULL, 0), 2);
    const char *bad = write_text(2, HEADER "10,u,i,0,a,b,c,0,0,0,0\nsoon,u,i,0,a,b,c,0,0,0,0\n");
    snprintf(cmd, sizeof cmd, "%s sort %s 2>&1 >/dev/null", bin, bad);
    assert_int_equal(run(cmd, buf, sizeof buf), 2);
    char msg[256];
    snprintf(msg, sizeof msg, "%s:3:1: column 'ts': \"soon\" is not a time", bad);
    assert_non_null(strstr(buf, msg));
    snprintf(cmd, sizeof cmd, "%s sort --help", bin);
    assert_int_equal(run(cmd, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "memory"));
    snprintf(cmd, sizeof cmd, "%s stats --help", bin);
    assert_int_equal(run(cmd, buf, sizeof buf), 0);
    unlink(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_record),
        cmocka_unit_test(test_read_quoting_and_values),
        cmocka_unit_test(test_crlf_bom_blank_lines),
        cmocka_unit_test(test_gz),
        cmocka_unit_test(test_bad_rows_fail),
        cmocka_unit_test(test_skip_mode_and_order),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_names_map),
        cmocka_unit_test(test_tools),
    };
    int rc = cmocka_run_group_tests_name("csv", tests, NULL, NULL);
    const char *suffixes[] = {".csv", ".csv.gz", ".sorted.csv", ".ini"};
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 4; s++) unlink(tmp_name(k, suffixes[s]));
    return rc;
}
