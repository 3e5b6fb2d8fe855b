/* test_import.c: the importers (Context Trails, Foursquare TSMC) and the
 * negative sampler, on tiny synthetic files the tests write themselves in a
 * temporary directory (they mimic the public files' schemas; the real data
 * is never needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

/* dir/name, in a buffer that stays valid (one per name) for the whole run. */
static const char *path_of(const char *name)
{
    static char names[64][64], paths[64][512];
    static int n;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return paths[i];
    assert_true(n < 64);
    snprintf(names[n], sizeof names[n], "%s", name);
    snprintf(paths[n], sizeof paths[n], "%s/%s", dir, name);
    return paths[n++];
}

static void write_text(const char *name, const char *s)
{
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void write_gz(const char *name, const char *s)
{
    gzFile g = gzopen(path_of(name), "wb");
    assert_non_null(g);
    assert_int_equal(gzputs(g, s), (int)strlen(s));
    gzclose(g);
}

/* ---- Reading the output back (an independent small CSV splitter) ---------- */

typedef struct {
    int n_rows, n_cols;
    char cell[64][12][128]; /* [row][col], row 0 is the header */
} table;

static void split_line(const char *line, char out[12][128], int *n)
{
    *n = 0;
    const char *s = line;
    for (;;) {
        char *o = out[(*n)++];
        size_t k = 0;
        if (*s == '"') {
            for (s++; *s && !(*s == '"' && s[1] != '"'); s++) {
                if (*s == '"') s++;
                o[k++] = *s;
            }
            if (*s == '"') s++;
        } else {
            while (*s && *s != ',' && *s != '\n') o[k++] = *s++;
        }
        o[k] = '\0';
        if (*s != ',') break;
        s++;
    }
}

static void read_table(const char *path, table *t)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char line[2048];
    t->n_rows = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(t->n_rows < 64);
        int n;
        split_line(line, t->cell[t->n_rows], &n);
        if (t->n_rows == 0) t->n_cols = n;
        else assert_int_equal(n, t->n_cols);
        t->n_rows++;
    }
    fclose(f);
}

static int col_of(const table *t, const char *name)
{
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->cell[0][c], name)) return c;
    fail_msg("no column %s", name);
    return -1;
}

/* The data row whose item is item, or -1. */
static int row_of_item(const table *t, const char *item)
{
    int c = col_of(t, "item");
    for (int r = 1; r < t->n_rows; r++)
        if (!strcmp(t->cell[r][c], item)) return r;
    return -1;
}

static int64_t cell_i64(const table *t, int r, const char *col)
{
    return strtoll(t->cell[r][col_of(t, col)], NULL, 10);
}

static void assert_sorted_by_time(const table *t)
{
    for (int r = 2; r < t->n_rows; r++) assert_true(cell_i64(t, r, "ts") >= cell_i64(t, r - 1, "ts"));
}

/* ---- Context Trails -------------------------------------------------------- */

static const char *POIS_HEADER =
    "fsq_id,latitude,longitude,category,price,rating,total_ratings,total_tips,"
    "Weekday_EarlyMorning,Weekday_Morning,Weekday_Afternoon,Weekday_Night,"
    "Weekend_EarlyMorning,Weekend_Morning,Weekend_Afternoon,Weekend_Night,category_lvlFs\n";
#define POI_MID ",1.0,2.0,"
#define POI_OPEN ",8.0,10,2,1,1,1,1,1,1,1,1,"

static void write_pois(void)
{
    char s[4096];
    snprintf(s, sizeof s,
             "%s"
             "vcafe" POI_MID "Café,1" POI_OPEN "Dining and Drinking\n"
             "vbakery" POI_MID "Bakery,2" POI_OPEN "Dining and Drinking\n"
             "vboth" POI_MID "Café-Bakery,-1" POI_OPEN "Dining and Drinking\n"
             "vtex" POI_MID "Tex-Mex Restaurant,3" POI_OPEN "Dining and Drinking\n"
             "vmix" POI_MID "Concert Hall-Tex-Mex Restaurant,2" POI_OPEN
             "\"Arts and Entertainment, Dining and Drinking\"\n"
             "vnone,-1.0,-1.0,-1,-1,-1.0,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,\n"
             "vhall" POI_MID "Concert Hall,-1" POI_OPEN "\"Arts and \"\"Fun\"\"|Music\"\n"
             "vnl" POI_MID "Park,-1" POI_OPEN "\"Landmarks\nand Outdoors\"\n",
             POIS_HEADER);
    write_gz("pois.csv.gz", s);
}

static const char *CHECKINS_HEADER =
    "trail_id;user_id;venue_id;timestamp;temp;precip;windspeed;preciptype;conditions\n";

static void test_contexttrails_import(void **state)
{
    (void)state;
    write_pois();
    /* Written out of time order on purpose; one row with a +00:00 offset. */
    char s[2048];
    snprintf(s, sizeof s,
             "%s"
             "1;u1;vtex;2017-10-04T12:00:00+08:00;28.0;0.0;3.6;nan;Overcast\n"
             "1;u1;vcafe;2017-10-04T00:47:00+08:00;28.0;0.0;3.6;nan;Partially cloudy\n"
             "2;u2;vmix;2017-10-04T05:00:00+08:00;28.0;0.0;3.6;rain;\"Rain, Overcast\"\n"
             "3;u3;vnone;2017-10-05T03:00:00+00:00;28.0;0.0;3.6;nan;nan\n"
             "3;u3;vboth;2017-10-05T04:00:00+08:00;28.0;0.0;3.6;nan;Overcast\n",
             CHECKINS_HEADER);
    write_gz("checkins.csv.gz", s);

    ic_import_opts o;
    ic_import_opts_default(&o, IC_IMPORT_CONTEXTTRAILS);
    const char *in[] = {path_of("checkins.csv.gz")};
    o.input = in;
    o.n_input = 1;
    o.pois = path_of("pois.csv.gz");
    ic_import_stats st;
    ic_error err = {{0}};
    assert_int_equal(ic_import_run(&o, path_of("ct.csv"), &st, &err), IC_OK);
    assert_int_equal(st.rows, 5);
    assert_int_equal(st.poi_rows, 8);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.users, 3);
    assert_int_equal(st.items, 5);
    assert_int_equal(st.tz_min, 480);      /* the most common written offset */
    assert_int_equal(st.offset_differs, 1); /* the +00:00 row */
    assert_int_equal(st.uncategorised, 1);  /* vnone */

    table t;
    read_table(path_of("ct.csv"), &t);
    assert_int_equal(t.n_rows, 6);
    assert_sorted_by_time(&t);
    /* The timezone decision: the clock digits are UTC, the local hour is
     * digits + 8 h. 00:47 written -> 08:47 local. */
    int r = row_of_item(&t, "vcafe");
    int64_t want;
    assert_int_equal(ic_time_parse("2017-10-04T00:47:00Z", 20, &want), 0);
    assert_int_equal(cell_i64(&t, r, "ts"), want);
    assert_int_equal(cell_i64(&t, r, "tz"), 480);
    assert_int_equal(ic_local_hour(cell_i64(&t, r, "ts"), 480), 8);
    /* The +00:00 row keeps its digits as UTC and gets the file's tz. */
    r = row_of_item(&t, "vnone");
    assert_int_equal(ic_local_hour(cell_i64(&t, r, "ts"), (int32_t)cell_i64(&t, r, "tz")), 11);
    assert_string_equal(t.cell[r][col_of(&t, "category")], "");
    assert_string_equal(t.cell[r][col_of(&t, "weather")], "");
    /* Categories: '-' splits names, but not inside "Tex-Mex Restaurant". */
    r = row_of_item(&t, "vboth");
    assert_string_equal(t.cell[r][col_of(&t, "category")], "Café|Bakery");
    assert_string_equal(t.cell[r][col_of(&t, "price")], "");
    r = row_of_item(&t, "vtex");
    assert_string_equal(t.cell[r][col_of(&t, "category")], "Tex-Mex Restaurant");
    assert_string_equal(t.cell[r][col_of(&t, "price")], "3");
    r = row_of_item(&t, "vmix");
    assert_string_equal(t.cell[r][col_of(&t, "category")], "Concert Hall|Tex-Mex Restaurant");
    assert_string_equal(t.cell[r][col_of(&t, "category_l1")], "Arts and Entertainment|Dining and Drinking");
    assert_string_equal(t.cell[r][col_of(&t, "weather")], "Rain, Overcast");
    assert_string_equal(t.cell[r][col_of(&t, "checkin")], "1");
    assert_string_equal(t.cell[r][col_of(&t, "user")], "u2");

    /* Taking timestamps as written moves the instant, not the local hour of
     * a +08:00 row: 00:47 local. */
    o.trust_offsets = 1;
    assert_int_equal(ic_import_run(&o, path_of("ct2.csv"), &st, &err), IC_OK);
    read_table(path_of("ct2.csv"), &t);
    r = row_of_item(&t, "vcafe");
    assert_int_equal(cell_i64(&t, r, "ts"), want - 8 * 3600);
    assert_int_equal(ic_local_hour(cell_i64(&t, r, "ts"), (int32_t)cell_i64(&t, r, "tz")), 0);
    r = row_of_item(&t, "vnone");
    assert_int_equal(cell_i64(&t, r, "tz"), 0);
}

static void test_contexttrails_quoting(void **state)
{
    (void)state;
    write_pois();
    char s[512];
    snprintf(s, sizeof s,
             "%s1;u1;vhall;2017-10-04T12:00:00+08:00;28;0;3;nan;Overcast\n"
             "1;u1;vnl;2017-10-04T13:00:00+08:00;28;0;3;nan;Overcast\n",
             CHECKINS_HEADER);
    write_text("q.csv", s);
    ic_import_opts o;
    ic_import_opts_default(&o, IC_IMPORT_CONTEXTTRAILS);
    const char *in[] = {path_of("q.csv")};
    o.input = in, o.n_input = 1, o.pois = path_of("pois.csv.gz");
    ic_error err = {{0}};
    assert_int_equal(ic_import_run(&o, path_of("q_out.csv"), NULL, &err), IC_OK);
    table t;
    read_table(path_of("q_out.csv"), &t);
    /* Doubled quotes survive a round trip; '|' inside a value (the multi-value
     * separator) becomes '/'. */
    assert_string_equal(t.cell[1][col_of(&t, "category_l1")], "Arts and \"Fun\"/Music");
    /* A line break inside a quoted field continues the record (the venue
     * file's next line is not a row) and becomes a space in the value. */
    assert_int_equal(t.n_rows, 3);
    assert_string_equal(t.cell[2][col_of(&t, "category_l1")], "Landmarks and Outdoors");
}

static void test_contexttrails_rejects(void **state)
{
    (void)state;
    write_pois();
    ic_import_opts o;
    ic_import_opts_default(&o, IC_IMPORT_CONTEXTTRAILS);
    const char *in[] = {path_of("bad.csv")};
    o.input = in, o.n_input = 1, o.pois = path_of("pois.csv.gz");
    ic_error err = {{0}};

    /* A missing column rejects the file, naming file, line and column. */
    write_text("bad.csv", "trail_id;user_id;timestamp;temp;precip;windspeed;preciptype;conditions\n"
                          "1;u1;2017-10-04T12:00:00+08:00;28;0;3;nan;Overcast\n");
    assert_int_equal(ic_import_run(&o, path_of("out.csv"), NULL, &err), IC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "bad.csv:1:"));
    assert_non_null(strstr(err.msg, "missing column 'venue_id'"));
    assert_int_equal(access(path_of("out.csv"), F_OK), -1);

    /* So does an unexpected one. */
    write_text("bad.csv", "trail_id;user_id;venue_id;timestamp;temp;precip;windspeed;preciptype;conditions;mood\n");
    assert_int_equal(ic_import_run(&o, path_of("out.csv"), NULL, &err), IC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "unexpected column 'mood'"));

    /* Bad rows are skipped and counted by reason... */
    char s[1024];
    snprintf(s, sizeof s,
             "%s"
             "1;u1;vcafe;2017-10-04T12:00:00+08:00;28;0;3;nan;Overcast\n"
             "1;u1;vcafe;2017-13-04T12:00:00+08:00;28;0;3;nan;Overcast\n"
             "1;u1;nowhere;2017-10-04T12:00:00+08:00;28;0;3;nan;Overcast\n"
             "1;u1;vcafe;2017-10-04T12:00:00+08:00;28;0\n"
             "1;u2;vtex;2017-10-04T13:00:00+08:00;28;0;3;nan;Overcast\n",
             CHECKINS_HEADER);
    write_text("bad.csv", s);
    ic_import_stats st;
    assert_int_equal(ic_import_run(&o, path_of("out.csv"), &st, &err), IC_OK);
    assert_int_equal(st.rows, 5);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.n_reason, 3);
    assert_int_equal(st.n_first_bad, 3);
    assert_non_null(strstr(st.first_bad[0], "bad.csv:3: bad timestamp"));
    assert_non_null(strstr(st.first_bad[1], "bad.csv:4: venue not in the venue file"));
    assert_non_null(strstr(st.first_bad[2], "bad.csv:5: wrong number of fields"));
    /* ...or fail the import under strict, at the first one. */
    o.strict = 1;
    assert_int_equal(ic_import_run(&o, path_of("out2.csv"), &st, &err), IC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "bad.csv:3: bad timestamp"));
    assert_int_equal(access(path_of("out2.csv"), F_OK), -1);

    /* The venue file is required; a truncated .gz is an I/O error. */
    o.strict = 0;
    o.pois = NULL;
    assert_int_equal(ic_import_run(&o, path_of("out.csv"), NULL, &err), IC_ERR_ARG);
    o.pois = path_of("pois.csv.gz");
    FILE *f = fopen(path_of("pois.csv.gz"), "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(path_of("trunc.csv.gz"), "wb");
    fwrite(buf, 1, n - 12, f);
    fclose(f);
    o.pois = path_of("trunc.csv.gz");
    assert_int_equal(ic_import_run(&o, path_of("out.csv"), NULL, &err), IC_ERR_IO);
    assert_non_null(strstr(err.msg, "trunc.csv.gz"));
}

/* ---- Foursquare TSMC ------------------------------------------------------- */

static const char *TSMC_HEADER = "tid,label,lat,lon,day,hour,poi,category,price,rating,weather\n";

/* Each row has its own poi, so an output row can be traced to its input. */
static void write_tsmc(void)
{
    char s[2048];
    /* User 6: trajectories 126 (test file) and 127, 130 (train file): the
     * source splits by trajectory, so a user's weeks are in both files. */
    snprintf(s, sizeof s,
             "%s"
             "127,6,40.8,-73.9,Monday,13,p5,Food,1,8.2,Clouds\n"
             "127,6,40.8,-73.9,Monday,13,p6,Food,-999,-999.0,Unknown\n"
             "127,6,40.8,-73.9,Monday,13,p7,Residence,2,8.2,Clear\n"
             "127,6,40.8,-73.9,Sunday,23,p8,Nightlife Spot,-999,-999.0,Clear\n"
             "130,6,40.8,-73.9,Wednesday,0,p9,Food,1,8.2,Rain\n"
             "200,9,40.8,-73.9,Tuesday,7,p20,Food,1,8.2,Clouds\n",
             TSMC_HEADER);
    write_gz("train.csv.gz", s);
    snprintf(s, sizeof s,
             "%s"
             "126,6,40.8,-73.9,Monday,5,p1,Residence,-999,-999.0,Clear\n"
             "126,6,40.8,-73.9,Monday,23,p2,Food,1,8.2,Clouds\n"
             "126,6,40.8,-73.9,Tuesday,0,p3,Residence,-999,-999.0,Clouds\n"
             "126,6,40.8,-73.9,Friday,18,p4,Shop & Service,-999,-999.0,Clouds\n"
             "201,9,40.8,-73.9,Saturday,9,p21,Food,1,8.2,Snow\n",
             TSMC_HEADER);
    write_text("test.csv", s);
}

typedef struct {
    const char *poi;
    int tid, day, hour;
} tsmc_row;

static const tsmc_row TSMC_ROWS[] = {
    {"p1", 126, 0, 5},   {"p2", 126, 0, 23}, {"p3", 126, 1, 0},  {"p4", 126, 4, 18},
    {"p5", 127, 0, 13},  {"p6", 127, 0, 13}, {"p7", 127, 0, 13}, {"p8", 127, 6, 23},
    {"p9", 130, 2, 0},   {"p20", 200, 1, 7}, {"p21", 201, 5, 9},
};
#define N_TSMC (int)(sizeof TSMC_ROWS / sizeof TSMC_ROWS[0])

static void tsmc_opts(ic_import_opts *o)
{
    static const char *in[2];
    in[0] = path_of("train.csv.gz");
    in[1] = path_of("test.csv");
    ic_import_opts_default(o, IC_IMPORT_FOURSQUARE_TSMC);
    o->input = in;
    o->n_input = 2;
}

static void test_tsmc_layout(void **state)
{
    (void)state;
    write_tsmc();
    ic_import_opts o;
    table t;
    tsmc_opts(&o);
    ic_import_stats st;
    ic_error err = {{0}};
    assert_int_equal(ic_import_run(&o, path_of("ts.csv"), &st, &err), IC_OK);
    assert_int_equal(st.rows, N_TSMC);
    assert_int_equal(st.events, N_TSMC);
    assert_int_equal(st.users, 2);
    read_table(path_of("ts.csv"), &t);
    assert_int_equal(t.n_rows, N_TSMC + 1);
    assert_sorted_by_time(&t);

    int64_t prev_key[2] = {-1, -1}, prev_ts[2] = {0, 0};
    /* Walk the output in time order: per user, (tid, day, hour) never goes
     * back (the layout is monotone), and the local hour and weekday are the
     * source's. */
    for (int r = 1; r < t.n_rows; r++) {
        const tsmc_row *src = NULL;
        for (int i = 0; i < N_TSMC; i++)
            if (!strcmp(TSMC_ROWS[i].poi, t.cell[r][col_of(&t, "item")])) src = &TSMC_ROWS[i];
        assert_non_null(src);
        int64_t ts = cell_i64(&t, r, "ts");
        int32_t tz = (int32_t)cell_i64(&t, r, "tz");
        assert_int_equal(ic_local_hour(ts, tz), src->hour);
        assert_int_equal(ic_local_dow(ts, tz), src->day);
        int u = !strcmp(t.cell[r][col_of(&t, "user")], "9");
        int64_t key = (int64_t)src->tid * 1000 + src->day * 24 + src->hour;
        assert_true(key >= prev_key[u]);
        assert_true(ts > prev_ts[u]); /* check-ins in one hour are spread apart */
        prev_key[u] = key;
        prev_ts[u] = ts;
    }
    /* Weeks end to end: user 6's tids 126, 127, 130 are its weeks 0, 1, 2
     * (the tid gap is closed); user 9's two weeks end with user 6's, so its
     * tid 200 is week 1 of the timeline. */
    int64_t origin = o.origin;
    assert_int_equal(ic_local_dow(origin, 0), 0);
    int r = row_of_item(&t, "p1");
    assert_int_equal((cell_i64(&t, r, "ts") - origin) / 86400, 0);
    r = row_of_item(&t, "p9");
    assert_int_equal((cell_i64(&t, r, "ts") - origin) / 86400, 2 * 7 + 2);
    r = row_of_item(&t, "p20");
    assert_int_equal((cell_i64(&t, r, "ts") - origin) / 86400, 7 + 1);
    /* Three check-ins in one hour: distinct times inside that hour, in the
     * source's order. */
    int64_t t5 = cell_i64(&t, row_of_item(&t, "p5"), "ts");
    int64_t t6 = cell_i64(&t, row_of_item(&t, "p6"), "ts");
    int64_t t7 = cell_i64(&t, row_of_item(&t, "p7"), "ts");
    assert_true(t5 < t6 && t6 < t7);
    assert_int_equal(t5 / 3600, t7 / 3600);
    /* Unknown price (-999) and weather ("Unknown") are empty. */
    r = row_of_item(&t, "p6");
    assert_string_equal(t.cell[r][col_of(&t, "price")], "");
    assert_string_equal(t.cell[r][col_of(&t, "weather")], "");
    assert_string_equal(t.cell[r][col_of(&t, "category")], "Food");
    r = row_of_item(&t, "p4");
    assert_string_equal(t.cell[r][col_of(&t, "category")], "Shop & Service");

    /* keep_tid_gaps: tid 130 is four weeks after 126; a tz shifts the
     * instant but not the local hour. */
    tsmc_opts(&o);
    o.keep_tid_gaps = 1;
    o.tz_given = 1;
    o.tz_min = -300;
    assert_int_equal(ic_import_run(&o, path_of("ts2.csv"), &st, &err), IC_OK);
    read_table(path_of("ts2.csv"), &t);
    r = row_of_item(&t, "p9");
    int64_t ts9 = cell_i64(&t, r, "ts");
    assert_int_equal(cell_i64(&t, r, "tz"), -300);
    assert_int_equal((ic_local_seconds(ts9, -300) - origin) / 86400, 4 * 7 + 2);
    assert_int_equal(ic_local_hour(ts9, -300), 0);

    /* align_start: user 9 starts in week 0 too. */
    tsmc_opts(&o);
    o.align_start = 1;
    assert_int_equal(ic_import_run(&o, path_of("ts4.csv"), &st, &err), IC_OK);
    read_table(path_of("ts4.csv"), &t);
    r = row_of_item(&t, "p20");
    assert_int_equal((cell_i64(&t, r, "ts") - origin) / 86400, 1);

    /* An origin that is not a Monday is refused. */
    tsmc_opts(&o);
    o.origin += 86400;
    assert_int_equal(ic_import_run(&o, path_of("ts3.csv"), &st, &err), IC_ERR_ARG);
}

static void test_tsmc_rejects(void **state)
{
    (void)state;
    char s[1024];
    snprintf(s, sizeof s,
             "%s"
             "1,6,40.8,-73.9,Monday,24,p1,Food,1,8.2,Clouds\n"
             "1,6,40.8,-73.9,Moonday,2,p2,Food,1,8.2,Clouds\n"
             "x,6,40.8,-73.9,Monday,2,p3,Food,1,8.2,Clouds\n"
             "1,6,40.8,-73.9,monday,2,p4,Food,1,8.2,Clouds\n",
             TSMC_HEADER);
    write_text("tb.csv", s);
    ic_import_opts o;
    ic_import_opts_default(&o, IC_IMPORT_FOURSQUARE_TSMC);
    const char *in[] = {path_of("tb.csv")};
    o.input = in, o.n_input = 1;
    ic_import_stats st;
    ic_error err = {{0}};
    assert_int_equal(ic_import_run(&o, path_of("tb_out.csv"), &st, &err), IC_OK);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.events, 1);
    assert_string_equal(st.reason[0].what, "bad hour");
    assert_string_equal(st.reason[1].what, "bad day name");
    assert_string_equal(st.reason[2].what, "bad tid");
    write_text("tb.csv", "tid,label,lat,lon,day,hour,poi,category,price,rating\n");
    assert_int_equal(ic_import_run(&o, path_of("tb_out.csv"), &st, &err), IC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "tb.csv:1: missing column 'weather'"));
}

/* ---- --min-active-days ------------------------------------------------------ */

static void test_min_active_days(void **state)
{
    (void)state;
    write_pois();
    /* u1: 3 local days. u2: 23:30 and 01:00 written on two dates, but with
     * the clock digits as UTC they are 07:30 and 09:00 on one local day.
     * u3: 2 local days. */
    char s[2048];
    snprintf(s, sizeof s,
             "%s"
             "1;u1;vcafe;2017-10-04T01:00:00+08:00;28;0;3;nan;Overcast\n"
             "1;u1;vcafe;2017-10-05T01:00:00+08:00;28;0;3;nan;Overcast\n"
             "1;u1;vtex;2017-10-06T01:00:00+08:00;28;0;3;nan;Overcast\n"
             "2;u2;vcafe;2017-10-04T23:30:00+08:00;28;0;3;nan;Overcast\n"
             "2;u2;vtex;2017-10-05T01:00:00+08:00;28;0;3;nan;Overcast\n"
             "3;u3;vcafe;2017-10-04T01:00:00+08:00;28;0;3;nan;Overcast\n"
             "3;u3;vcafe;2017-10-08T01:00:00+08:00;28;0;3;nan;Overcast\n",
             CHECKINS_HEADER);
    write_text("active.csv", s);
    ic_import_opts o;
    ic_import_opts_default(&o, IC_IMPORT_CONTEXTTRAILS);
    const char *in[] = {path_of("active.csv")};
    o.input = in, o.n_input = 1, o.pois = path_of("pois.csv.gz");
    o.min_active_days = 2;
    ic_import_stats st;
    ic_error err = {{0}};
    assert_int_equal(ic_import_run(&o, path_of("active_out.csv"), &st, &err), IC_OK);
    assert_int_equal(st.users, 2);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.inactive_users, 1);
    assert_int_equal(st.inactive_events, 2);
    table t;
    read_table(path_of("active_out.csv"), &t);
    for (int r = 1; r < t.n_rows; r++) assert_string_not_equal(t.cell[r][col_of(&t, "user")], "u2");
    o.min_active_days = 3;
    assert_int_equal(ic_import_run(&o, path_of("active_out.csv"), &st, &err), IC_OK);
    assert_int_equal(st.users, 1);
    assert_int_equal(st.events, 3);
}

/* ---- Negative sampling ----------------------------------------------------- */

static const char *NEG_INI =
    "[data]\ntime = ts\nuser = user\nitem = item\ntz = tz\n"
    "[fields]\ncat = item\nwx = context\n"
    "[clock]\nfields = cat\n"
    "[actions]\ncheckin = 1\n"
    "[tasks]\ncheckin = 1\n";

typedef struct {
    int64_t ts;
    int tz, label;
    char user[128], item[128], cat[128], wx[128];
} nrow;

/* Reads a log with columns ts,tz,user,item,cat,wx,checkin (header checked). */
static nrow *read_log(const char *path, int *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char line[512], cell[12][128];
    int nc, cap = 1024;
    nrow *v = malloc((size_t)cap * sizeof *v);
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "ts,tz,user,item,cat,wx,checkin\n");
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        split_line(line, cell, &nc);
        assert_int_equal(nc, 7);
        if (*n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        nrow *r = &v[(*n)++];
        r->ts = strtoll(cell[0], NULL, 10);
        r->tz = atoi(cell[1]);
        snprintf(r->user, sizeof r->user, "%s", cell[2]);
        snprintf(r->item, sizeof r->item, "%s", cell[3]);
        snprintf(r->cat, sizeof r->cat, "%s", cell[4]);
        snprintf(r->wx, sizeof r->wx, "%s", cell[5]);
        r->label = atoi(cell[6]);
    }
    fclose(f);
    return v;
}

static void load_neg_config(ic_config *cfg)
{
    write_text("neg.ini", NEG_INI);
    ic_error err = {{0}};
    ic_config_default(cfg);
    assert_int_equal(ic_config_load(cfg, path_of("neg.ini"), &err), IC_OK);
}

/* A random positives-only log: 12 users, 40 items whose category is fixed
 * except item i7's, which changes halfway; one moment in three is shared by
 * several events (same ts), some of them the same user's. Returns n. */
static int write_random_log(const char *name, int n)
{
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    fputs("ts,tz,user,item,cat,wx,checkin\n", f);
    ic_rng rng;
    ic__rng_seed(&rng, 42);
    int64_t ts = 1000;
    static const char *wx[] = {"sun", "rain", "fog"};
    for (int i = 0; i < n; i++) {
        if (ic__rng_uniform(&rng) > 0.35) ts += 1 + (int64_t)(ic__rng_u64(&rng) % 50);
        int u = (int)(ic__rng_u64(&rng) % 12);
        /* A skewed item distribution, so popularity matters. */
        int it = (int)(40 * ic__rng_uniform(&rng) * ic__rng_uniform(&rng));
        const char *cat = it == 7 && i > n / 2 ? "changed" : it % 2 ? "odd" : "even";
        fprintf(f, "%lld,%d,u%d,i%d,%s,%s,1\n", (long long)ts, 60 * (u % 3), u, it, cat,
                wx[ic__rng_u64(&rng) % 3]);
    }
    fclose(f);
    return n;
}

/* Checks every promise of the protocol against the input log, recomputed
 * here from scratch (quadratic, fine for a few hundred rows). */
static void check_negatives(const nrow *in, int n_in, const nrow *out, int n_out, int K)
{
    int pos = 0;
    for (int o = 0; o < n_out;) {
        const nrow *p = &out[o];
        assert_int_equal(p->label, 1);
        assert_true(pos < n_in);
        assert_string_equal(p->item, in[pos].item); /* positives in input order */
        assert_int_equal(p->ts, in[pos].ts);
        pos++;
        /* The items the protocol may draw for p: a positive strictly before
         * p's time, not an item of p's user at p's time. */
        int eligible = 0;
        for (int a = 0; a < n_in; a++) {
            if (in[a].ts >= p->ts) continue;
            int first = 1, excluded = 0;
            for (int b = 0; b < a; b++) first &= strcmp(in[b].item, in[a].item) != 0;
            for (int b = 0; b < n_in; b++)
                excluded |= in[b].ts == p->ts && !strcmp(in[b].user, p->user) &&
                            !strcmp(in[b].item, in[a].item);
            eligible += first && !excluded;
        }
        int k = 0;
        for (o++; o < n_out && out[o].label == 0; o++, k++) {
            const nrow *g = &out[o];
            assert_int_equal(g->ts, p->ts);
            assert_int_equal(g->tz, p->tz);
            assert_string_equal(g->user, p->user);
            assert_string_equal(g->wx, p->wx);             /* context: the positive's */
            assert_string_not_equal(g->item, p->item);
            for (int b = o - k; b < o; b++) assert_string_not_equal(out[b].item, g->item);
            const char *last_cat = NULL;                   /* item side: as last seen */
            for (int a = 0; a < n_in && in[a].ts < p->ts; a++)
                if (!strcmp(in[a].item, g->item)) last_cat = in[a].cat;
            assert_non_null(last_cat);                     /* past only */
            assert_string_equal(g->cat, last_cat);
            for (int b = 0; b < n_in; b++)
                if (in[b].ts == p->ts && !strcmp(in[b].user, p->user))
                    assert_string_not_equal(in[b].item, g->item);
        }
        assert_int_equal(k, eligible < K ? eligible : K);
    }
    assert_int_equal(pos, n_in);
}

static void test_negatives_protocol(void **state)
{
    (void)state;
    ic_config cfg;
    load_neg_config(&cfg);
    int n_in = write_random_log("pos.csv", 400);
    ic_negatives_opts o = {.per_positive = 3, .seed = 7};
    ic_negatives_stats st;
    ic_error err = {{0}};
    assert_int_equal(ic_negatives_run(&cfg, path_of("pos.csv"), path_of("neg.csv"), &o, &st, &err), IC_OK);
    int n_out, n_chk;
    nrow *in = read_log(path_of("pos.csv"), &n_chk);
    nrow *out = read_log(path_of("neg.csv"), &n_out);
    assert_int_equal(n_chk, n_in);
    assert_int_equal(st.rows_in, n_in);
    assert_int_equal(st.positives, n_in);
    assert_int_equal(st.negatives, n_out - n_in);
    assert_true(st.negatives > (uint64_t)(3 * n_in * 9 / 10)); /* mostly K per positive */
    assert_true(st.short_positives > 0);                       /* the first moments */
    for (int i = 1; i < n_out; i++) assert_true(out[i].ts >= out[i - 1].ts);
    check_negatives(in, n_in, out, n_out, 3);
    /* Item i7 changed category halfway: some negative shows it as "changed". */
    int changed = 0;
    for (int i = 0; i < n_out; i++) changed += out[i].label == 0 && !strcmp(out[i].cat, "changed");
    assert_true(changed > 0);
    free(in);
    free(out);
}

static int same_file(const char *a, const char *b)
{
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    assert_non_null(f);
    assert_non_null(g);
    int c, d, same = 1;
    do {
        c = fgetc(f), d = fgetc(g);
        same &= c == d;
    } while (c != EOF && d != EOF);
    fclose(f);
    fclose(g);
    return same;
}

static void test_negatives_seed_and_popularity(void **state)
{
    (void)state;
    ic_config cfg;
    load_neg_config(&cfg);
    write_random_log("pos2.csv", 300);
    ic_negatives_opts o = {.per_positive = 2, .seed = 7};
    ic_error err = {{0}};
    assert_int_equal(ic_negatives_run(&cfg, path_of("pos2.csv"), path_of("a.csv"), &o, NULL, &err), IC_OK);
    assert_int_equal(ic_negatives_run(&cfg, path_of("pos2.csv"), path_of("b.csv"), &o, NULL, &err), IC_OK);
    o.seed = 8;
    assert_int_equal(ic_negatives_run(&cfg, path_of("pos2.csv"), path_of("c.csv"), &o, NULL, &err), IC_OK);
    assert_true(same_file(path_of("a.csv"), path_of("b.csv")));
    assert_false(same_file(path_of("a.csv"), path_of("c.csv")));

    /* Popularity: 90 positives of P and 10 of Q, then 2000 positives of R by
     * one user: R is the positive itself, so each draw is P with chance 0.9.
     * An item first seen later (S, at the very end) is never drawn. */
    FILE *f = fopen(path_of("pop.csv"), "wb");
    fputs("ts,tz,user,item,cat,wx,checkin\n", f);
    for (int i = 0; i < 100; i++) fprintf(f, "%d,0,u%d,%s,x,sun,1\n", 10 + i, i, i % 10 ? "P" : "Q");
    for (int i = 0; i < 2000; i++) fprintf(f, "%d,0,z,R,x,sun,1\n", 1000 + i);
    fprintf(f, "5000,0,y,S,x,sun,1\n");
    fclose(f);
    o.per_positive = 1;
    assert_int_equal(ic_negatives_run(&cfg, path_of("pop.csv"), path_of("pop_neg.csv"), &o, NULL, &err), IC_OK);
    int n;
    nrow *v = read_log(path_of("pop_neg.csv"), &n);
    int p = 0, q = 0, other = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].label || v[i].ts < 1000 || v[i].ts >= 5000) continue;
        if (!strcmp(v[i].item, "P")) p++;
        else if (!strcmp(v[i].item, "Q")) q++;
        else other++;
    }
    assert_int_equal(other, 0);
    assert_int_equal(p + q, 2000);
    assert_in_range(p, 1800 - 70, 1800 + 70); /* 5 standard deviations */
    for (int i = 0; i < n; i++) assert_true(strcmp(v[i].item, "S") || v[i].label == 1);
    free(v);

    /* K < 1 is refused; a log out of time order fails with the reader's error. */
    o.per_positive = 0;
    assert_int_equal(ic_negatives_run(&cfg, path_of("pop.csv"), path_of("x.csv"), &o, NULL, &err), IC_ERR_ARG);
    write_text("unsorted.csv", "ts,tz,user,item,cat,wx,checkin\n20,0,u,A,x,sun,1\n10,0,u,B,x,sun,1\n");
    o.per_positive = 1;
    assert_int_equal(ic_negatives_run(&cfg, path_of("unsorted.csv"), path_of("x.csv"), &o, NULL, &err), IC_ERR_ORDER);
    assert_int_equal(access(path_of("x.csv"), F_OK), -1);
}

/* ---- Setup -------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/iclock_test_import_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contexttrails_import),
        cmocka_unit_test(test_contexttrails_quoting),
        cmocka_unit_test(test_contexttrails_rejects),
        cmocka_unit_test(test_tsmc_layout),
        cmocka_unit_test(test_tsmc_rejects),
        cmocka_unit_test(test_min_active_days),
        cmocka_unit_test(test_negatives_protocol),
        cmocka_unit_test(test_negatives_seed_and_popularity),
    };
    return cmocka_run_group_tests_name("import", tests, setup, teardown);
}
