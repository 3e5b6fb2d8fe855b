/* import.c: importers from public check-in logs to iclock's event format.
 *
 * Two sources (docs/DATA.md): Context Trails (a ';' check-in file with ISO
 * timestamps plus a ',' venue file with categories) and the Foursquare TSMC
 * 2014 weekly trajectories (no dates: the importer lays each user's weeks on
 * a timeline). Both read plain or gzip files through zlib with a small RFC
 * 4180 record reader (quoted fields, doubled quotes, newlines inside quotes),
 * check the header against the source's schema, format each good row as an
 * output row, then sort the rows by time and write them atomically.
 *
 * Deliberately not streaming: rows are held in memory to be sorted (the
 * output text plus a 56-byte record per row), which is small for these
 * sources. It never hard-codes a city: time zones come from the data or the
 * options. Distinct users, items and venues are told apart by their 64-bit
 * ic_hash alone (a collision among a few million strings is ~1e-7 likely).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>


/* Appends s[0..n) as one CSV field, quoted (RFC 4180) when it holds a
 * comma, a quote or a line break. */
static void put_csv(ic__sbuf *t, const char *s, size_t n)
{
    if (!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\n', n) && !memchr(s, '\r', n)) {
        ic__sb_add(t, s, n);
        return;
    }
    ic__sb_putc(t, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') ic__sb_putc(t, '"');
        ic__sb_putc(t, s[i]);
    }
    ic__sb_putc(t, '"');
}

/* Trims spaces from s[0..*n) in place (returns the new start) and makes it
 * safe as one categorical value: '|' (the multi-value separator) becomes
 * '/', line breaks become spaces. */
static char *clean_value(char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t')) s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t')) (*n)--;
    for (size_t i = 0; i < *n; i++) {
        if (s[i] == '|') s[i] = '/';
        else if (s[i] == '\n' || s[i] == '\r') s[i] = ' ';
    }
    return s;
}

/* ---- An RFC 4180 record reader over zlib ---------------------------------- */

typedef struct {
    gzFile gz;
    const char *path;
    uint64_t line;      /* first physical line of the record last read */
    uint64_t next_line; /* the next physical line to read */
    ic__sbuf raw;           /* the record's text, line breaks inside quotes kept */
    char *fbuf;         /* the fields, unquoted, NUL-terminated */
    size_t fbuf_cap;
    char **field;
    int n_field, field_cap;
    char delim;
} rec_reader;

static ic_status rr_open(rec_reader *r, const char *path, ic_error *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->next_line = 1;
    r->delim = ',';
    r->gz = gzopen(path, "rb");
    if (!r->gz)
        return ic__fail(err, errno == ENOENT ? IC_ERR_NOTFOUND : IC_ERR_IO, "%s: cannot open: %s",
                        path, strerror(errno ? errno : EIO));
    gzbuffer(r->gz, 1 << 17);
    return IC_OK;
}

static void rr_close(rec_reader *r)
{
    if (r->gz) gzclose(r->gz);
    free(r->raw.p);
    free(r->fbuf);
    free(r->field);
    memset(r, 0, sizeof *r);
}

/* Appends one physical line (with its '\n') to r->raw. Returns 1, 0 at the
 * end of the file, or IC_ERR_IO for a read error or a corrupt gzip file. */
static int rr_line(rec_reader *r, ic_error *err)
{
    size_t start = r->raw.len;
    for (;;) {
        if (r->raw.cap - r->raw.len < 4096) {
            r->raw.cap = r->raw.cap * 2 + 8192;
            r->raw.p = ic__xrealloc(r->raw.p, r->raw.cap);
        }
        char *at = r->raw.p + r->raw.len;
        if (!gzgets(r->gz, at, (int)(r->raw.cap - r->raw.len))) break;
        r->raw.len += strlen(at);
        if (r->raw.len > start && r->raw.p[r->raw.len - 1] == '\n') break;
    }
    int zerr;
    const char *zmsg = gzerror(r->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END)
        return ic__fail(err, IC_ERR_IO, "%s:%llu: read error: %s", r->path,
                        (unsigned long long)r->next_line, zerr == Z_ERRNO ? strerror(errno) : zmsg);
    if (r->raw.len == start) return 0;
    r->next_line++;
    return 1;
}

/* Reads the next record: returns 1, 0 at the end, or a negative status
 * (a read error, or a quoted field never closed). */
static int rr_next(rec_reader *r, ic_error *err)
{
    r->raw.len = 0;
    r->line = r->next_line;
    int rc = rr_line(r, err);
    if (rc <= 0) return rc;
    size_t quotes = 0, scanned = 0;
    for (;;) {
        for (; scanned < r->raw.len; scanned++) quotes += r->raw.p[scanned] == '"';
        if (quotes % 2 == 0) break;
        rc = rr_line(r, err);
        if (rc < 0) return rc;
        if (rc == 0)
            return ic__fail(err, IC_ERR_PARSE, "%s:%llu: a quoted field is never closed", r->path,
                            (unsigned long long)r->line);
    }
    while (r->raw.len && (r->raw.p[r->raw.len - 1] == '\n' || r->raw.p[r->raw.len - 1] == '\r'))
        r->raw.len--;
    r->raw.p[r->raw.len] = '\0';
    return 1;
}

static void rr_add_field(rec_reader *r, char *f)
{
    if (r->n_field == r->field_cap) {
        r->field_cap = r->field_cap ? r->field_cap * 2 : 32;
        r->field = ic__xrealloc(r->field, (size_t)r->field_cap * sizeof *r->field);
    }
    r->field[r->n_field++] = f;
}

/* Splits the record into r->field[] by delim. Returns 0, or the 1-based
 * column of malformed quoting (text after a closing quote). */
static int rr_split(rec_reader *r, char delim)
{
    if (r->fbuf_cap < r->raw.len + 1) {
        r->fbuf_cap = r->raw.len + 1;
        r->fbuf = ic__xrealloc(r->fbuf, r->fbuf_cap);
    }
    r->n_field = 0;
    const char *s = r->raw.p, *end = s + r->raw.len;
    char *o = r->fbuf;
    for (;;) {
        rr_add_field(r, o);
        if (s < end && *s == '"') {
            for (s++;; s++) {
                if (s >= end) return r->n_field;
                if (*s == '"') {
                    if (s + 1 < end && s[1] == '"') *o++ = *s++;
                    else break;
                } else {
                    *o++ = *s;
                }
            }
            s++;
            if (s < end && *s != delim) return r->n_field;
        } else {
            while (s < end && *s != delim) *o++ = *s++;
        }
        *o++ = '\0';
        if (s >= end) return 0;
        s++; /* the delimiter */
    }
}

/* ---- Headers and rejected rows ---------------------------------------------- */

/* Reads the header and maps want[0..n) to column indices col[]. The header
 * must hold exactly these columns, in any order. The separator is the one of
 * ',' ';' tab that splits the header into the most fields. */
static ic_status read_header(rec_reader *r, const char *const *want, int n, int *col, ic_error *err)
{
    int rc = rr_next(r, err);
    if (rc < 0) return rc;
    if (rc == 0) return ic__fail(err, IC_ERR_PARSE, "%s: empty file (no header)", r->path);
    if (r->raw.len >= 3 && !memcmp(r->raw.p, "\xEF\xBB\xBF", 3)) { /* a UTF-8 BOM */
        memmove(r->raw.p, r->raw.p + 3, r->raw.len - 2);
        r->raw.len -= 3;
    }
    const char cand[] = {',', ';', '\t'};
    int best = 0;
    for (int c = 0; c < 3; c++) {
        rr_split(r, cand[c]);
        if (r->n_field > best) best = r->n_field, r->delim = cand[c];
    }
    rr_split(r, r->delim);
    for (int i = 0; i < n; i++) col[i] = -1;
    for (int j = 0; j < r->n_field; j++) {
        size_t len = strlen(r->field[j]);
        char *name = clean_value(r->field[j], &len);
        name[len] = '\0';
        int k = 0;
        while (k < n && strcmp(want[k], name)) k++;
        if (k == n)
            return ic__fail(err, IC_ERR_PARSE, "%s:1: unexpected column '%s' (is this the right file?)",
                            r->path, name);
        if (col[k] >= 0)
            return ic__fail(err, IC_ERR_PARSE, "%s:1: column '%s' appears twice", r->path, name);
        col[k] = j;
    }
    for (int k = 0; k < n; k++)
        if (col[k] < 0)
            return ic__fail(err, IC_ERR_PARSE, "%s:1: missing column '%s' (the header has %d columns)",
                            r->path, want[k], r->n_field);
    return IC_OK;
}

/* Counts a rejected row under reason what; under strict it is an error. */
static ic_status reject(ic_import_stats *st, int strict, const rec_reader *r, const char *what,
                        const char *detail, ic_error *err)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s:%llu: %s%s%.80s%s", r->path, (unsigned long long)r->line, what,
             detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    if (strict) return ic__fail(err, IC_ERR_PARSE, "%s", msg);
    st->rejected++;
    if (st->n_first_bad < IC_IMPORT_KEEP_BAD) ic__strlcpy(st->first_bad[st->n_first_bad++], msg, 256);
    int i = 0;
    while (i < st->n_reason && strcmp(st->reason[i].what, what)) i++;
    if (i == st->n_reason && i < IC_IMPORT_REASONS) ic__strlcpy(st->reason[st->n_reason++].what, what, 96);
    if (i < st->n_reason) st->reason[i].n++;
    return IC_OK;
}

/* Splits the record by its file's separator. Returns 1 if it has n fields;
 * otherwise counts it as rejected (prefix names the kind of row), sets *s
 * (an error under strict) and returns 0. */
static int split_row(rec_reader *r, int n, const char *prefix, ic_import_stats *st, int strict,
                     ic_status *s, ic_error *err)
{
    int bad = rr_split(r, r->delim);
    if (!bad && r->n_field == n) return 1;
    char what[64], d[64];
    snprintf(what, sizeof what, "%s%s", prefix, bad ? "bad quoting" : "wrong number of fields");
    snprintf(d, sizeof d, "%d fields, expected %d", r->n_field, n);
    *s = reject(st, strict, r, what, bad ? NULL : d, err);
    return 0;
}

/* ---- Output rows ------------------------------------------------------------ */

typedef struct {
    int64_t ts;     /* Unix seconds, UTC (TSMC: set by the layout) */
    int32_t tz;     /* UTC offset, minutes (contexttrails: as written, until resolved) */
    int32_t slot;   /* TSMC: day of the week * 24 + hour */
    int64_t week;   /* TSMC: the trajectory id */
    uint64_t seq;   /* input order, which breaks ties */
    uint64_t item;  /* ic_hash of the item */
    uint32_t user;  /* index of the user */
    uint32_t len;   /* the row's text after "ts,tz," */
    uint64_t off;
} row;

typedef struct {
    const ic_import_opts *o;
    ic_import_stats *st;
    row *rows;
    size_t n, cap;
    ic__sbuf pool;      /* rows' text */
    ic__u64map users;
    /* contexttrails */
    ic__u64map venues;  /* venue hash -> index into venue_off/len */
    ic__sbuf venue_text;
    uint64_t *venue_off;
    uint32_t *venue_len;
    uint8_t *venue_nocat;
    size_t n_venues;
    int32_t off_val[64]; /* written offsets seen, and how often */
    uint64_t off_n[64];
    int n_off;
} importer;

static void imp_free(importer *m)
{
    free(m->rows);
    free(m->pool.p);
    ic__u64map_free(&m->users);
    ic__u64map_free(&m->venues);
    free(m->venue_text.p);
    free(m->venue_off);
    free(m->venue_len);
    free(m->venue_nocat);
}

/* Appends a row whose text is "user,item," + rest; returns it. */
static row *add_row(importer *m, const char *user, const char *item, const char *rest, size_t rest_len)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4096;
        m->rows = ic__xrealloc(m->rows, m->cap * sizeof *m->rows);
    }
    row *w = &m->rows[m->n];
    memset(w, 0, sizeof *w);
    w->seq = m->n++;
    int added;
    w->user = *ic__u64map_put(&m->users, ic_hash(user, strlen(user)), (uint32_t)m->users.n, &added);
    w->item = ic_hash(item, strlen(item));
    w->off = m->pool.len;
    put_csv(&m->pool, user, strlen(user));
    ic__sb_putc(&m->pool, ',');
    put_csv(&m->pool, item, strlen(item));
    ic__sb_putc(&m->pool, ',');
    ic__sb_add(&m->pool, rest, rest_len);
    w->len = (uint32_t)(m->pool.len - w->off);
    return w;
}

/* Appends the values of s[0..n) split at sep (trimmed, cleaned, without
 * empties and repeats) as one CSV field, joined by '|'. Modifies s. */
static void put_list(ic__sbuf *t, char *s, size_t n, char sep)
{
    ic__sbuf joined = {0};
    size_t vstart[64], vlen[64];
    int nv = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && nv < 64; i++) {
        if (i < n && s[i] != sep) continue;
        size_t len = i - start;
        char *v = clean_value(s + start, &len);
        start = i + 1;
        int dup = !len;
        for (int k = 0; k < nv && !dup; k++)
            dup = vlen[k] == len && !memcmp(joined.p + vstart[k], v, len);
        if (dup) continue;
        if (joined.len) ic__sb_putc(&joined, '|');
        vstart[nv] = joined.len;
        vlen[nv++] = len;
        ic__sb_add(&joined, v, len);
    }
    if (joined.len) put_csv(t, joined.p, joined.len);
    free(joined.p);
}

/* A categorical value where the source writes "unknown" as a sentinel. */
static int is_unknown(const char *s)
{
    return !*s || !strcmp(s, "-1") || !strcmp(s, "-999") || !strcmp(s, "nan") ||
           !strcmp(s, "NaN") || !strcmp(s, "Unknown");
}

static void put_value(ic__sbuf *t, char *s)
{
    size_t n = strlen(s);
    s = clean_value(s, &n);
    s[n] = '\0';
    if (!is_unknown(s)) put_csv(t, s, n);
}

/* ---- Context Trails venues ------------------------------------------------- */

static const char *const CT_POI_COLS[] = {
    "fsq_id", "latitude", "longitude", "category", "price", "rating", "total_ratings",
    "total_tips", "Weekday_EarlyMorning", "Weekday_Morning", "Weekday_Afternoon",
    "Weekday_Night", "Weekend_EarlyMorning", "Weekend_Morning", "Weekend_Afternoon",
    "Weekend_Night", "category_lvlFs"};
enum { CT_POI_N = 17, P_ID = 0, P_CAT = 3, P_PRICE = 4, P_L1 = 16 };

/* Splits a Context Trails category list ("Café-Bakery") into names joined
 * by '|'. '-' separates names, except inside the few names that hold one
 * ("Tex-Mex Restaurant", "Non-Profit Organization"): two pieces are joined
 * again when neither is a name seen alone in the venue file and the first
 * is a single word. (It misjudges a pair of rare one-word names; docs/DATA.md.) */
static void put_categories(ic__sbuf *t, char *s, const ic__u64map *alone)
{
    if (is_unknown(s)) return;
    char *piece[64];
    int n = 0;
    for (char *p = s; n < 64;) {
        piece[n++] = p;
        char *d = strchr(p, '-');
        if (!d) break;
        *d = '\0';
        p = d + 1;
    }
    ic__sbuf names = {0};
    for (int i = 0; i < n; i++) {
        ic__sb_puts(&names, piece[i]);
        while (i + 1 < n && !strchr(piece[i], ' ') &&
               !ic__u64map_get(alone, ic_hash(piece[i], strlen(piece[i]))) &&
               !ic__u64map_get(alone, ic_hash(piece[i + 1], strlen(piece[i + 1])))) {
            ic__sb_putc(&names, '-');
            ic__sb_puts(&names, piece[++i]);
        }
        if (i + 1 < n) ic__sb_putc(&names, '\x1f');
    }
    put_list(t, names.p, names.len, '\x1f');
    free(names.p);
}

typedef struct {
    uint64_t id;
    uint64_t cat, l1, price; /* offsets of NUL-terminated copies in a text buffer */
    uint64_t line;
} poi_raw;

/* Reads the venue file: each venue's "category,category_l1,price" text. */
static ic_status ct_read_pois(importer *m, ic_error *err)
{
    rec_reader r;
    int col[CT_POI_N];
    ic_status s = rr_open(&r, m->o->pois, err);
    if (s == IC_OK) s = read_header(&r, CT_POI_COLS, CT_POI_N, col, err);
    ic__sbuf raw = {0};
    poi_raw *pr = NULL;
    size_t n = 0, cap = 0;
    ic__u64map alone = {0};
    int rc;
    while (s == IC_OK && (rc = rr_next(&r, err)) != 0) {
        if (rc < 0) { s = rc; break; }
        m->st->poi_rows++;
        if (!split_row(&r, CT_POI_N, "venue row: ", m->st, m->o->strict, &s, err)) continue;
        const char *id = r.field[col[P_ID]];
        if (!*id) { s = reject(m->st, m->o->strict, &r, "venue row: empty fsq_id", NULL, err); continue; }
        if (n == cap) pr = ic__xrealloc(pr, (cap = cap ? cap * 2 : 1024) * sizeof *pr);
        poi_raw *p = &pr[n++];
        p->id = ic_hash(id, strlen(id));
        p->line = r.line;
        const char *cat = r.field[col[P_CAT]];
        p->cat = raw.len, ic__sb_add(&raw, cat, strlen(cat) + 1);
        p->l1 = raw.len, ic__sb_add(&raw, r.field[col[P_L1]], strlen(r.field[col[P_L1]]) + 1);
        p->price = raw.len, ic__sb_add(&raw, r.field[col[P_PRICE]], strlen(r.field[col[P_PRICE]]) + 1);
        int added;
        if (!strchr(cat, '-') && !is_unknown(cat)) ic__u64map_put(&alone, ic_hash(cat, strlen(cat)), 0, &added);
    }
    m->venue_off = ic__xmalloc((n + 1) * sizeof *m->venue_off);
    m->venue_len = ic__xmalloc((n + 1) * sizeof *m->venue_len);
    m->venue_nocat = ic__xmalloc(n + 1);
    for (size_t i = 0; s == IC_OK && i < n; i++) {
        int added;
        ic__u64map_put(&m->venues, pr[i].id, (uint32_t)m->n_venues, &added);
        if (!added) {
            r.line = pr[i].line;
            s = reject(m->st, m->o->strict, &r, "venue row: duplicate fsq_id (first kept)", NULL, err);
            continue;
        }
        size_t k = m->n_venues++;
        m->venue_off[k] = m->venue_text.len;
        put_categories(&m->venue_text, raw.p + pr[i].cat, &alone);
        ic__sb_putc(&m->venue_text, ',');
        size_t before = m->venue_text.len;
        put_list(&m->venue_text, raw.p + pr[i].l1, strlen(raw.p + pr[i].l1), ',');
        m->venue_nocat[k] = m->venue_text.len == before;
        ic__sb_putc(&m->venue_text, ',');
        put_value(&m->venue_text, raw.p + pr[i].price);
        m->venue_len[k] = (uint32_t)(m->venue_text.len - m->venue_off[k]);
    }
    free(raw.p);
    free(pr);
    ic__u64map_free(&alone);
    rr_close(&r);
    return s;
}

/* ---- Context Trails check-ins --------------------------------------------- */

static const char *const CT_COLS[] = {"trail_id", "user_id", "venue_id", "timestamp", "temp",
                                      "precip", "windspeed", "preciptype", "conditions"};
enum { CT_N = 9, C_USER = 1, C_VENUE = 2, C_TIME = 3, C_COND = 8 };

static void count_offset(importer *m, int32_t off)
{
    int i = 0;
    while (i < m->n_off && m->off_val[i] != off) i++;
    if (i == m->n_off) {
        if (i == 64) return;
        m->off_val[m->n_off++] = off;
    }
    m->off_n[i]++;
}

/* Parses a Context Trails timestamp into *ts (the clock digits read as UTC,
 * or as written under trust) and *off (the written offset, minutes; 0 and
 * *has_off = 0 when there is none). Returns 0 or -1. */
static int ct_time(const char *s, int trust, int64_t *ts, int32_t *off, int *has_off)
{
    size_t n = strlen(s);
    int64_t written, digits;
    if (ic_time_parse(s, n, &written)) return -1;
    *has_off = n > 19;
    if (n < 19 || ic_time_parse(s, 19, &digits)) digits = written;
    *off = (int32_t)((digits - written) / 60);
    *ts = trust ? written : digits;
    return 0;
}

static ic_status ct_read_checkins(importer *m, const char *path, ic_error *err)
{
    rec_reader r;
    int col[CT_N], rc;
    ic_status s = rr_open(&r, path, err);
    if (s == IC_OK) s = read_header(&r, CT_COLS, CT_N, col, err);
    ic__sbuf rest = {0};
    while (s == IC_OK && (rc = rr_next(&r, err)) != 0) {
        if (rc < 0) { s = rc; break; }
        m->st->rows++;
        if (!split_row(&r, CT_N, "", m->st, m->o->strict, &s, err)) continue;
        const char *user = r.field[col[C_USER]], *venue = r.field[col[C_VENUE]];
        const uint32_t *v = *venue ? ic__u64map_get(&m->venues, ic_hash(venue, strlen(venue))) : NULL;
        int64_t ts;
        int32_t off;
        int has_off;
        if (!*user) s = reject(m->st, m->o->strict, &r, "empty user_id", NULL, err);
        else if (!*venue) s = reject(m->st, m->o->strict, &r, "empty venue_id", NULL, err);
        else if (!v) s = reject(m->st, m->o->strict, &r, "venue not in the venue file", venue, err);
        else if (ct_time(r.field[col[C_TIME]], m->o->trust_offsets, &ts, &off, &has_off))
            s = reject(m->st, m->o->strict, &r, "bad timestamp", r.field[col[C_TIME]], err);
        else {
            rest.len = 0;
            ic__sb_add(&rest, m->venue_text.p + m->venue_off[*v], m->venue_len[*v]);
            ic__sb_putc(&rest, ',');
            put_value(&rest, r.field[col[C_COND]]);
            ic__sb_puts(&rest, ",1");
            row *w = add_row(m, user, venue, rest.p, rest.len);
            w->ts = ts;
            w->tz = has_off ? off : INT32_MIN;
            if (has_off) count_offset(m, off);
            m->st->uncategorised += m->venue_nocat[*v];
        }
    }
    free(rest.p);
    rr_close(&r);
    return s;
}

/* Gives every row its tz: the option, or else (digits-as-UTC mode) the most
 * common written offset, or (trust mode) the row's own written offset. */
static void ct_resolve_tz(importer *m)
{
    int32_t fixed = 0;
    if (m->o->tz_given) {
        fixed = m->o->tz_min;
    } else {
        uint64_t best = 0;
        for (int i = 0; i < m->n_off; i++)
            if (m->off_n[i] > best) best = m->off_n[i], fixed = m->off_val[i];
    }
    for (size_t i = 0; i < m->n; i++) {
        row *w = &m->rows[i];
        int has = w->tz != INT32_MIN;
        if (has && w->tz != fixed) m->st->offset_differs++;
        if (m->o->tz_given || !m->o->trust_offsets || !has) w->tz = fixed;
    }
}

static ic_status import_contexttrails(importer *m, ic_error *err)
{
    if (!m->o->pois) return ic__fail(err, IC_ERR_ARG, "contexttrails: the venue file (--pois) is required");
    ic_status s = ct_read_pois(m, err);
    for (int i = 0; s == IC_OK && i < m->o->n_input; i++) s = ct_read_checkins(m, m->o->input[i], err);
    if (s == IC_OK) ct_resolve_tz(m);
    return s;
}

/* ---- Foursquare TSMC trajectories -------------------------------------------- */

static const char *const TS_COLS[] = {"tid", "label", "lat", "lon", "day", "hour",
                                      "poi", "category", "price", "rating", "weather"};
enum { TS_N = 11, T_TID = 0, T_USER = 1, T_DAY = 4, T_HOUR = 5, T_POI = 6, T_CAT = 7,
       T_PRICE = 8, T_WEATHER = 10 };

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int day_index(const char *s)
{
    static const char *const days[] = {"monday", "tuesday", "wednesday", "thursday",
                                       "friday", "saturday", "sunday"};
    for (int i = 0; i < 7; i++)
        if (!strcasecmp(s, days[i])) return i;
    return -1;
}

static ic_status ts_read(importer *m, const char *path, ic_error *err)
{
    rec_reader r;
    int col[TS_N], rc;
    ic_status s = rr_open(&r, path, err);
    if (s == IC_OK) s = read_header(&r, TS_COLS, TS_N, col, err);
    ic__sbuf rest = {0};
    while (s == IC_OK && (rc = rr_next(&r, err)) != 0) {
        if (rc < 0) { s = rc; break; }
        m->st->rows++;
        if (!split_row(&r, TS_N, "", m->st, m->o->strict, &s, err)) continue;
        char **f = r.field;
        long long tid, hour;
        int day = day_index(f[col[T_DAY]]);
        ic_import_stats *st = m->st;
        int strict = m->o->strict;
        if (parse_int(f[col[T_TID]], INT64_MIN / 2, INT64_MAX / 2, &tid))
            s = reject(st, strict, &r, "bad tid", f[col[T_TID]], err);
        else if (!*f[col[T_USER]]) s = reject(st, strict, &r, "empty label (user)", NULL, err);
        else if (day < 0) s = reject(st, strict, &r, "bad day name", f[col[T_DAY]], err);
        else if (parse_int(f[col[T_HOUR]], 0, 23, &hour))
            s = reject(st, strict, &r, "bad hour", f[col[T_HOUR]], err);
        else if (!*f[col[T_POI]]) s = reject(st, strict, &r, "empty poi", NULL, err);
        else {
            rest.len = 0;
            put_value(&rest, f[col[T_CAT]]);
            ic__sb_putc(&rest, ',');
            put_value(&rest, f[col[T_PRICE]]);
            ic__sb_putc(&rest, ',');
            put_value(&rest, f[col[T_WEATHER]]);
            ic__sb_puts(&rest, ",1");
            row *w = add_row(m, f[col[T_USER]], f[col[T_POI]], rest.p, rest.len);
            w->week = tid;
            w->slot = day * 24 + (int)hour;
        }
    }
    free(rest.p);
    rr_close(&r);
    return s;
}

static int cmp_layout(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    if (x->week != y->week) return x->week < y->week ? -1 : 1;
    if (x->slot != y->slot) return x->slot < y->slot ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Lays each user's trajectories on a timeline of weeks from o->origin:
 * a user's weeks in trajectory-id order, end to end (or tid - first tid
 * weeks apart with keep_tid_gaps); all users end in the same last week
 * (or, with align_start, start in week 0); the k-th of n check-ins in one
 * hour at (2k+1)/2n of it. */
static void ts_layout(importer *m)
{
    qsort(m->rows, m->n, sizeof *m->rows, cmp_layout);
    int64_t *wk = ic__xmalloc((m->n + 1) * sizeof *wk);           /* (n) week in its user */
    int64_t *span = ic__xcalloc(m->users.n + 1, sizeof *span);      /* (users) weeks spanned */
    int64_t week = 0, first_tid = 0, total = 0;
    for (size_t i = 0; i < m->n; i++) {
        const row *a = &m->rows[i];
        if (i == 0 || m->rows[i - 1].user != a->user) week = 0, first_tid = a->week;
        else if (m->rows[i - 1].week != a->week) week++;
        wk[i] = m->o->keep_tid_gaps ? a->week - first_tid : week;
        if (wk[i] + 1 > span[a->user]) span[a->user] = wk[i] + 1;
        if (span[a->user] > total) total = span[a->user];
    }
    int32_t tz = m->o->tz_given ? m->o->tz_min : 0;
    for (size_t i = 0, j; i < m->n; i = j) {
        const row *a = &m->rows[i];
        int64_t w = wk[i] + (m->o->align_start ? 0 : total - span[a->user]);
        for (j = i; j < m->n && m->rows[j].user == a->user && m->rows[j].week == a->week &&
                    m->rows[j].slot == a->slot;)
            j++;
        int64_t n = (int64_t)(j - i);
        for (size_t k = i; k < j; k++) {
            int64_t in_hour = 3600 * (2 * (int64_t)(k - i) + 1) / (2 * n);
            m->rows[k].ts = m->o->origin + w * 7 * 86400 + (int64_t)a->slot * 3600 + in_hour - tz * 60;
            m->rows[k].tz = tz;
        }
    }
    free(wk);
    free(span);
}

static ic_status import_tsmc(importer *m, ic_error *err)
{
    ic_status s = IC_OK;
    for (int i = 0; s == IC_OK && i < m->o->n_input; i++) s = ts_read(m, m->o->input[i], err);
    if (s == IC_OK) ts_layout(m);
    return s;
}

/* ---- Filtering, sorting, writing ------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Keeps the rows of users with at least o->min_active_days local days. */
static void filter_active(importer *m)
{
    int n_min = m->o->min_active_days;
    if (n_min <= 0 || !m->n) return;
    uint64_t *key = ic__xmalloc(m->n * sizeof *key);
    for (size_t i = 0; i < m->n; i++)
        key[i] = (uint64_t)m->rows[i].user << 32 |
                 (uint32_t)(ic_local_day(m->rows[i].ts, m->rows[i].tz) + 0x80000000LL);
    qsort(key, m->n, sizeof *key, cmp_u64);
    uint32_t *days = ic__xcalloc(m->users.n + 1, sizeof *days);
    for (size_t i = 0; i < m->n; i++)
        if (i == 0 || key[i] != key[i - 1]) days[key[i] >> 32]++;
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (days[m->rows[i].user] >= (uint32_t)n_min) m->rows[k++] = m->rows[i];
        else m->st->inactive_events++;
    }
    for (size_t u = 0; u < m->users.n; u++) m->st->inactive_users += days[u] && days[u] < (uint32_t)n_min;
    m->n = k;
    free(key);
    free(days);
}

static int cmp_time(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Counts distinct users and items and the time span of the rows. */
static void count_output(importer *m)
{
    ic_import_stats *st = m->st;
    st->events = m->n;
    if (!m->n) return;
    st->first_ts = m->rows[0].ts;
    st->last_ts = m->rows[m->n - 1].ts;
    st->tz_min = m->rows[m->n - 1].tz;
    uint64_t *key = ic__xmalloc(m->n * sizeof *key);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < m->n; i++) key[i] = pass ? m->rows[i].item : m->rows[i].user;
        qsort(key, m->n, sizeof *key, cmp_u64);
        uint64_t d = 0;
        for (size_t i = 0; i < m->n; i++) d += i == 0 || key[i] != key[i - 1];
        *(pass ? &st->items : &st->users) = d;
    }
    free(key);
}

static const char *header_of(ic_import_format f)
{
    return f == IC_IMPORT_CONTEXTTRAILS
               ? "ts,tz,user,item,category,category_l1,price,weather,checkin\n"
               : "ts,tz,user,item,category,price,weather,checkin\n";
}

/* Writes the rows to path (or stdout for "-") through a temporary file. */
static ic_status write_rows(const importer *m, const char *path, ic_error *err)
{
    int to_stdout = !strcmp(path, "-");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = to_stdout ? stdout : fopen(tmp, "wb");
    if (!f) return ic__fail(err, IC_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    fputs(header_of(m->o->format), f);
    for (size_t i = 0; i < m->n; i++) {
        const row *w = &m->rows[i];
        fprintf(f, "%lld,%d,", (long long)w->ts, (int)w->tz);
        fwrite(m->pool.p + w->off, 1, w->len, f);
        fputc('\n', f);
    }
    int bad = fflush(f) != 0 || ferror(f);
    if (to_stdout) return bad ? ic__fail(err, IC_ERR_IO, "stdout: write failed") : IC_OK;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return ic__fail(err, IC_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return IC_OK;
}

/* ---- Public ------------------------------------------------------------------ */

const char *ic_import_format_name(ic_import_format f)
{
    return f == IC_IMPORT_CONTEXTTRAILS ? "contexttrails" : "foursquare-tsmc";
}

int ic_import_format_parse(const char *s)
{
    if (!strcmp(s, "contexttrails")) return IC_IMPORT_CONTEXTTRAILS;
    if (!strcmp(s, "foursquare-tsmc")) return IC_IMPORT_FOURSQUARE_TSMC;
    return -1;
}

void ic_import_opts_default(ic_import_opts *o, ic_import_format f)
{
    memset(o, 0, sizeof *o);
    o->format = f;
    ic_time_parse("2012-04-02", 10, &o->origin); /* a Monday */
}

ic_status ic_import_run(const ic_import_opts *o, const char *out_path, ic_import_stats *st,
                        ic_error *err)
{
    ic_import_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (o->n_input < 1 || !o->input) return ic__fail(err, IC_ERR_ARG, "import: no input file");
    if (!out_path) return ic__fail(err, IC_ERR_ARG, "import: no output file");
    if (o->tz_given && (o->tz_min < -16 * 60 || o->tz_min > 16 * 60))
        return ic__fail(err, IC_ERR_ARG, "import: tz %d minutes is not a UTC offset", (int)o->tz_min);
    if (o->format == IC_IMPORT_FOURSQUARE_TSMC && ic_local_dow(o->origin, 0) != 0)
        return ic__fail(err, IC_ERR_ARG, "import: the origin must be a Monday 00:00");
    if (o->format == IC_IMPORT_FOURSQUARE_TSMC && ic_local_seconds(o->origin, 0) % 86400 != 0)
        return ic__fail(err, IC_ERR_ARG, "import: the origin must be a Monday 00:00");
    importer m = {.o = o, .st = st};
    ic_status s = o->format == IC_IMPORT_CONTEXTTRAILS ? import_contexttrails(&m, err)
                                                       : import_tsmc(&m, err);
    if (s == IC_OK) {
        filter_active(&m);
        qsort(m.rows, m.n, sizeof *m.rows, cmp_time);
        count_output(&m);
        s = write_rows(&m, out_path, err);
    }
    imp_free(&m);
    return s;
}
