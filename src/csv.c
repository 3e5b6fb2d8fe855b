/* csv.c: the event log reader. Streams a CSV log (RFC 4180 quoting; plain
 * or .gz, both through zlib's gzread) in constant memory, maps its columns
 * to roles by the config, and turns each row into an ic_event, with a
 * "file:line:col: column 'name': ..." message for every kind of bad row.
 *
 * Layers, bottom up: ic_csv_scan splits one record held in memory (also
 * used by iclock sort); the reader keeps one input buffer (IN_CAP bytes),
 * scans records in place and refills when a record crosses the buffer's
 * end; convert_row parses the fields a row's roles need. No allocation per
 * row or per field: unquoted fields are pointers into the input buffer,
 * quoted ones are unescaped into one scratch area.
 *
 * Deliberately not here: sorting (tools/cmd_sort.c), what events mean
 * (clock.c, engine), and any guessing of a column's format: time is Unix
 * seconds or ISO-8601, tz is minutes, actions and labels are numbers. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <time.h>
#include <zlib.h>

/* Input buffer: one record must fit, and a record of IC_CSV_MAX_COLS
 * fields of IC_CSV_MAX_FIELD bytes, all quoted, does. */
#define IN_CAP ((size_t)2 * IC_CSV_SCRATCH + 4096)
#define MSG_CAP 1024
#define RECENT_CAP 1024

/* ---- The record scanner ------------------------------------------------------ */

static int utf8_valid(const char *text, size_t n);

const char *ic_csv_problem_text(ic_csv_problem p)
{
    switch (p) {
    case IC_CSV_OK: return "ok";
    case IC_CSV_UNTERMINATED: return "unterminated quote";
    case IC_CSV_AFTER_QUOTE: return "text after a closing quote";
    case IC_CSV_LONG_FIELD: return "over-long field (more than 4096 bytes)";
    case IC_CSV_TOO_MANY_COLS: return "too many columns (more than 256)";
    case IC_CSV_LONG_ROW: return "over-long row";
    }
    return "?";
}

static void set_problem(ic_csv_record *rec, ic_csv_problem p, int col)
{
    if (rec->problem == IC_CSV_OK) {
        rec->problem = p;
        rec->problem_col = col;
    }
}

static int count_nl(const char *p, size_t n)
{
    int k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++) k++;
    return k;
}

/* Appends s[0..k) to a quoted field's unescaped text, at most
 * IC_CSV_MAX_FIELD bytes kept; out is NULL past IC_CSV_MAX_COLS. */
static void append(ic_csv_record *rec, char *out, size_t *olen, const char *s, size_t k, int col)
{
    if (*olen + k > IC_CSV_MAX_FIELD) {
        set_problem(rec, IC_CSV_LONG_FIELD, col);
        k = *olen < IC_CSV_MAX_FIELD ? IC_CSV_MAX_FIELD - *olen : 0;
    }
    if (out && k) memcpy(out + *olen, s, k);
    *olen += k;
}

/* A quoted field starting at p[i] == '"'. Returns the index of the byte
 * that ends it (delimiter, '\n' or n), or (size_t)-1 when more input is
 * needed. */
static size_t scan_quoted(const char *p, size_t n, size_t i, int at_eof, char delim,
                          ic_csv_record *rec, char *out, size_t *olen, int col)
{
    size_t j = i + 1;
    for (;;) {
        const char *q = memchr(p + j, '"', n - j);
        size_t stop = q ? (size_t)(q - p) : n;
        rec->lines += count_nl(p + j, stop - j);
        append(rec, out, olen, p + j, stop - j, col);
        if (!q) {
            if (!at_eof) return (size_t)-1;
            set_problem(rec, IC_CSV_UNTERMINATED, col);
            return n;
        }
        if (stop + 1 == n && !at_eof) return (size_t)-1; /* "" or the end? */
        if (stop + 1 < n && p[stop + 1] == '"') {
            append(rec, out, olen, "\"", 1, col);
            j = stop + 2;
            continue;
        }
        j = stop + 1;
        break;
    }
    size_t k = j;
    while (k < n && p[k] == '\r') k++;
    if (k < n && p[k] != delim && p[k] != '\n') {
        set_problem(rec, IC_CSV_AFTER_QUOTE, col);
        while (k < n && p[k] != delim && p[k] != '\n') k++;
    }
    if (k == n && !at_eof) return (size_t)-1;
    return k;
}

size_t ic_csv_scan(const char *p, size_t n, int at_eof, char delim, ic_csv_record *rec)
{
    rec->n = 0;
    rec->lines = 0;
    rec->blank = 0;
    rec->problem = IC_CSV_OK;
    rec->problem_col = 0;
    if (n == 0) return 0;
    size_t i = 0, used = 0;
    int quoted_any = 0;
    for (int col = 0;; col++) {
        int keep = col < IC_CSV_MAX_COLS;
        if (!keep) set_problem(rec, IC_CSV_TOO_MANY_COLS, col);
        if (i == n && !at_eof) return 0;
        const char *fptr;
        size_t flen, end;
        if (i < n && p[i] == '"') {
            quoted_any = 1;
            char *out = keep ? rec->scratch + used : NULL;
            flen = 0;
            end = scan_quoted(p, n, i, at_eof, delim, rec, out, &flen, col);
            if (end == (size_t)-1) return 0;
            fptr = out;
            used += flen;
        } else {
            end = i;
            while (end < n && p[end] != delim && p[end] != '\n') end++;
            if (end == n && !at_eof) return 0;
            fptr = p + i;
            flen = end - i;
            if (flen && fptr[flen - 1] == '\r' && (end == n || p[end] == '\n')) flen--;
            if (flen > IC_CSV_MAX_FIELD) set_problem(rec, IC_CSV_LONG_FIELD, col);
        }
        if (keep) {
            rec->ptr[col] = fptr;
            rec->len[col] = (uint32_t)flen;
            rec->n = col + 1;
        }
        if (end < n && p[end] == delim) {
            i = end + 1;
            continue;
        }
        rec->blank = rec->n == 1 && rec->len[0] == 0 && !quoted_any;
        if (end < n) { /* '\n' */
            rec->lines++;
            return end + 1;
        }
        return n;
    }
}

const char *ic_csv_quote(const char *text, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0, limit = len > 60 ? 60 : len;
    int bad_utf8 = 0;
    for (size_t i = 0; i < len && !bad_utf8; i++)
        bad_utf8 = s[i] >= 0x80; /* refined below only when needed */
    if (bad_utf8) /* keep valid UTF-8 readable; escape only when invalid */
        bad_utf8 = !utf8_valid(text, len);
    if (!bad_utf8) /* do not cut a character in two */
        while (limit < len && limit > 0 && (s[limit] & 0xC0) == 0x80) limit--;
    if (cap < 8) {
        if (cap) buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < limit && o + 6 < cap; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && bad_utf8)) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    if (limit < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- Field parsers (no locale, no allocation) -------------------------------- */

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII eight bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i == n) break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07;
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
        if (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

/* Unix seconds (all digits, optional '-') directly; anything else through
 * ic_time_parse (ISO-8601). */
static int parse_time(const char *s, size_t n, int64_t *out)
{
    size_t i = n && s[0] == '-';
    if (n > i && n - i <= 18) {
        int64_t v = 0;
        size_t k = i;
        for (; k < n && s[k] >= '0' && s[k] <= '9'; k++) v = v * 10 + (s[k] - '0');
        if (k == n) {
            *out = i ? -v : v;
            return 0;
        }
    }
    return ic_time_parse(s, n, out);
}

/* A decimal integer with an optional sign, at most 9 digits. */
static int parse_int(const char *s, size_t n, int32_t *out)
{
    size_t i = n && (s[0] == '-' || s[0] == '+');
    if (n == i || n - i > 9) return -1;
    int32_t v = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return -1;
        v = v * 10 + (s[k] - '0');
    }
    *out = s[0] == '-' ? -v : v;
    return 0;
}

/* The rare number the fast path cannot do exactly: strtod in the C locale. */
static int parse_num_slow(const char *s, size_t n, double *out)
{
    char buf[128];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = ic__strtod_c(buf, &end);
    if (*end) return -1;
    *out = v;
    return 0;
}

/* A decimal number: [+-]digits[.digits][(e|E)[+-]digits]; no hex, inf or
 * nan. Exact for up to 15 significant digits and |exponent| <= 22 (the
 * common case, done here); strtod_l otherwise. */
static int parse_num(const char *s, size_t n, double *out)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    uint64_t m = 0;
    int nd = 0, digits = 0, e10 = 0, exact = 1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (m == 0 && s[i] == '0') continue;
        if (nd < 19) m = m * 10 + (uint64_t)(s[i] - '0'), nd++;
        else e10++, exact = 0;
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            if (m == 0 && s[i] == '0') e10--;
            else if (nd < 19) m = m * 10 + (uint64_t)(s[i] - '0'), nd++, e10--;
            else exact = 0;
        }
    if (digits == 0) return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, ev = 0, ed = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, ed++)
            if (ev < 100000) ev = ev * 10 + (s[i] - '0');
        if (ed == 0) return -1;
        e10 += eneg ? -ev : ev;
    }
    if (i != n) return -1;
    if (m == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if (!exact || nd > 15 || e10 < -22 || e10 > 22) return parse_num_slow(s, n, out);
    double v = e10 < 0 ? (double)m / p10[-e10] : (double)m * p10[e10];
    *out = neg ? -v : v;
    return 0;
}

/* "2023-09-01T08:00:00Z" for a message. */
static const char *iso_utc(int64_t ts, char *buf, size_t cap)
{
    time_t t = (time_t)ts;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "?");
        return buf;
    }
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* ---- The reader ----------------------------------------------------------------- */

struct ic_reader {
    gzFile gz;
    char path[512];
    const ic_config *cfg;
    ic_bad_rows policy;
    ic_names *names;

    char *in;            /* (IN_CAP) input; in[pos..len) not yet scanned */
    size_t len, pos;
    int eof;
    ic_csv_record rec;   /* the last record scanned */
    uint64_t line;       /* line number of in[pos] */
    uint64_t row_line;   /* first line of the last record */
    uint64_t ret_line;   /* first line of the last row returned */

    int ncols;
    char colname[IC_CSV_MAX_COLS][IC_NAME_MAX];
    int c_time, c_user, c_item, c_tz; /* column indices; c_tz -1 = none */
    int c_field[IC_MAX_FIELDS], c_action[IC_MAX_ACTIONS], c_task[IC_MAX_TASKS];

    int have_prev;
    int64_t prev_ts;
    uint64_t prev_line;
    ic_reader_stats stats;
    uint64_t recent[RECENT_CAP]; /* ids lately put into names */
    ic_status sticky;    /* a failure that ends the read, returned again */
    char sticky_msg[MSG_CAP];
};

/* Moves the unscanned bytes to the front and reads more. */
static ic_status refill(ic_reader *r, ic_error *err)
{
    if (r->pos > 0) {
        memmove(r->in, r->in + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->eof || r->len == IN_CAP) return IC_OK;
    int got = gzread(r->gz, r->in + r->len, (unsigned)(IN_CAP - r->len));
    if (got > 0) { /* a truncated .gz still hands out what it had; the next read says so */
        r->len += (size_t)got;
        return IC_OK;
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(r->gz, &zerr);
    if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
        return ic__fail(err, IC_ERR_IO, "%s:%llu: read error: %s", r->path,
                        (unsigned long long)r->line, zerr == Z_ERRNO ? strerror(errno) : zmsg);
    r->eof = 1;
    return IC_OK;
}

/* Skips a record too long for the buffer, tracking quotes across refills. */
static ic_status skip_long_record(ic_reader *r, ic_error *err)
{
    int in_quote = 0;
    for (;;) {
        while (r->pos < r->len) {
            char c = r->in[r->pos++];
            if (c == '"') in_quote = !in_quote;
            else if (c == '\n' && (r->line++, !in_quote)) return IC_OK;
        }
        if (r->eof) return IC_OK;
        ic_status s = refill(r, err);
        if (s) return s;
    }
}

/* Scans the next non-blank record into r->rec: 1, 0 at the end, or an
 * I/O error. A record longer than the buffer comes back with n = 0 and
 * problem IC_CSV_LONG_ROW. */
static int next_record(ic_reader *r, ic_error *err)
{
    for (;;) {
        size_t used = ic_csv_scan(r->in + r->pos, r->len - r->pos, r->eof, r->cfg->delimiter,
                                  &r->rec);
        if (used) {
            r->row_line = r->line;
            r->line += (uint64_t)r->rec.lines;
            r->pos += used;
            if (r->rec.blank) continue;
            return 1;
        }
        if (r->eof && r->pos == r->len) return 0;
        if (r->pos == 0 && r->len == IN_CAP) {
            r->row_line = r->line;
            ic_status s = skip_long_record(r, err);
            if (s) return s;
            r->rec.n = 0;
            r->rec.problem = IC_CSV_LONG_ROW;
            r->rec.problem_col = 0;
            return 1;
        }
        ic_status s = refill(r, err);
        if (s) return s;
    }
}

/* Index of name in the header, -1 if absent, -2 if it appears twice. */
static int find_col(const ic_reader *r, const char *name, int *dup)
{
    int found = -1;
    for (int c = 0; c < r->ncols; c++)
        if (!strcmp(r->colname[c], name)) {
            if (found >= 0) *dup = c;
            else found = c;
        }
    return found;
}

/* Maps one configured column to its index, or fails naming the config
 * key that asked for it. */
static ic_status map_col(ic_reader *r, const char *section, const char *key, int idx,
                         const char *name, int *out, ic_error *err)
{
    int dup = -1;
    *out = find_col(r, name, &dup);
    char where[400];
    if (*out < 0)
        return ic__fail(err, IC_ERR_CONFIG, "%s: column '%s' is not in %s",
                        ic_config_where(r->cfg, section, key, idx, where, sizeof where), name,
                        r->path);
    if (dup >= 0)
        return ic__fail(err, IC_ERR_PARSE, "%s:%llu:%d: column '%s' appears twice in the header "
                        "(also column %d)", r->path, (unsigned long long)r->row_line, dup + 1,
                        name, *out + 1);
    return IC_OK;
}

static ic_status read_header(ic_reader *r, ic_error *err)
{
    int k = next_record(r, err);
    if (k < 0) return k;
    if (k == 0) return ic__fail(err, IC_ERR_PARSE, "%s: empty file (no header)", r->path);
    if (r->rec.problem)
        return ic__fail(err, IC_ERR_PARSE, "%s:%llu:%d: header: %s", r->path,
                        (unsigned long long)r->row_line, r->rec.problem_col + 1,
                        ic_csv_problem_text(r->rec.problem));
    r->ncols = r->rec.n;
    for (int c = 0; c < r->ncols; c++) {
        size_t n = r->rec.len[c] < IC_NAME_MAX - 1 ? r->rec.len[c] : IC_NAME_MAX - 1;
        memcpy(r->colname[c], r->rec.ptr[c], n);
        r->colname[c][n] = '\0';
    }
    const ic_config *cfg = r->cfg;
    ic_status s;
    if ((s = map_col(r, "data", "time", 0, cfg->time_col, &r->c_time, err)) ||
        (s = map_col(r, "data", "user", 0, cfg->user_col, &r->c_user, err)) ||
        (s = map_col(r, "data", "item", 0, cfg->item_col, &r->c_item, err)))
        return s;
    r->c_tz = -1;
    if (cfg->tz_col[0] && (s = map_col(r, "data", "tz", 0, cfg->tz_col, &r->c_tz, err))) return s;
    for (int i = 0; i < cfg->n_fields; i++)
        if ((s = map_col(r, "fields", cfg->field[i], i, cfg->field[i], &r->c_field[i], err)))
            return s;
    for (int i = 0; i < cfg->n_actions; i++)
        if ((s = map_col(r, "actions", cfg->action[i].name, i, cfg->action[i].name,
                         &r->c_action[i], err)))
            return s;
    for (int i = 0; i < cfg->n_tasks; i++)
        if ((s = map_col(r, "tasks", cfg->task[i].name, i, cfg->task[i].name, &r->c_task[i],
                         err)))
            return s;
    return IC_OK;
}

ic_status ic_reader_open(ic_reader **out, const char *path, const ic_config *cfg,
                         ic_bad_rows policy, ic_names *names, ic_error *err)
{
    *out = NULL;
    ic_status vs = ic_config_validate(cfg, err); /* the reader indexes by its counts */
    if (vs) return vs;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return ic__fail(err, IC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(gz, 1 << 17);
    ic_reader *r = ic__xcalloc(1, sizeof *r);
    r->gz = gz;
    ic__strlcpy(r->path, path, sizeof r->path);
    r->cfg = cfg;
    r->policy = policy;
    r->names = names;
    r->in = ic__xmalloc(IN_CAP);
    r->rec.scratch = ic__xmalloc(IC_CSV_SCRATCH);
    r->line = 1;
    ic_status s = refill(r, err);
    if (!s && r->len >= 3 && !memcmp(r->in, "\xEF\xBB\xBF", 3)) r->pos = 3; /* UTF-8 BOM */
    if (!s) s = read_header(r, err);
    if (s) {
        ic_reader_close(r);
        return s;
    }
    r->ret_line = 1;
    *out = r;
    return IC_OK;
}

void ic_reader_close(ic_reader *r)
{
    if (!r) return;
    gzclose(r->gz);
    free(r->in);
    free(r->rec.scratch);
    free(r);
}

const ic_reader_stats *ic_reader_stats_get(const ic_reader *r) { return &r->stats; }
uint64_t ic_reader_line(const ic_reader *r) { return r->ret_line; }
int ic_reader_columns(const ic_reader *r) { return r->ncols; }

/* ---- One row -> one event ---------------------------------------------------------- */

/* "file:line:col: column 'name': " + what (printf) into msg. */
static ic_status row_fail(const ic_reader *r, char *msg, ic_status s, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static ic_status row_fail(const ic_reader *r, char *msg, ic_status s, int col, const char *fmt, ...)
{
    int k = snprintf(msg, MSG_CAP, "%s:%llu:%d: column '%s': ", r->path,
                     (unsigned long long)r->row_line, col + 1,
                     col < r->ncols ? r->colname[col] : "?");
    if (k < 0 || k >= MSG_CAP) return s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + k, MSG_CAP - (size_t)k, fmt, ap);
    va_end(ap);
    return s;
}

#define FIELD(c) r->rec.ptr[c], r->rec.len[c]
#define QUOTE(c) ic_csv_quote(r->rec.ptr[c], r->rec.len[c], q, sizeof q)

/* The row's shape: quoting problems and the column count. */
static ic_status check_shape(const ic_reader *r, char *msg)
{
    const ic_csv_record *rec = &r->rec;
    char q[128];
    if (rec->problem == IC_CSV_LONG_ROW) {
        snprintf(msg, MSG_CAP, "%s:%llu:1: over-long row (more than %zu bytes)", r->path,
                 (unsigned long long)r->row_line, IN_CAP);
        return IC_ERR_PARSE;
    }
    if (rec->problem) {
        int c = rec->problem_col;
        if (c >= r->ncols || c >= rec->n) {
            snprintf(msg, MSG_CAP, "%s:%llu:%d: %s", r->path, (unsigned long long)r->row_line,
                     c + 1, ic_csv_problem_text(rec->problem));
            return IC_ERR_PARSE;
        }
        return row_fail(r, msg, IC_ERR_PARSE, c, "%s: %s", ic_csv_problem_text(rec->problem),
                        QUOTE(c));
    }
    if (rec->n < r->ncols)
        return row_fail(r, msg, IC_ERR_PARSE, rec->n,
                        "missing (the row has %d columns, the header %d)", rec->n, r->ncols);
    if (rec->n > r->ncols) {
        snprintf(msg, MSG_CAP, "%s:%llu:%d: extra column (the row has %d columns, the header %d): %s",
                 r->path, (unsigned long long)r->row_line, r->ncols + 1, rec->n, r->ncols,
                 ic_csv_quote(FIELD(r->ncols), q, sizeof q));
        return IC_ERR_PARSE;
    }
    return IC_OK;
}

/* A user or item id: non-empty UTF-8. */
static ic_status parse_id(const ic_reader *r, int c, uint64_t *id, char *msg)
{
    char q[128];
    if (r->rec.len[c] == 0) return row_fail(r, msg, IC_ERR_PARSE, c, "empty id");
    if (!utf8_valid(FIELD(c)))
        return row_fail(r, msg, IC_ERR_PARSE, c, "%s is not valid UTF-8", QUOTE(c));
    *id = ic_hash(FIELD(c));
    return IC_OK;
}

/* Where a row's value strings are, to record their names once the row is
 * known to be good. */
typedef struct {
    const char *p[IC_MAX_VALUES];
    uint32_t n[IC_MAX_VALUES];
} value_text;

/* Field f's cell: values separated by multi_sep; an empty cell has none. */
static ic_status parse_values(const ic_reader *r, int f, ic_event *ev, int *nv, value_text *vt,
                              char *msg)
{
    int c = r->c_field[f];
    const char *s = r->rec.ptr[c], *e = s + r->rec.len[c];
    char q[128];
    if (s == e) return IC_OK;
    if (!utf8_valid(FIELD(c)))
        return row_fail(r, msg, IC_ERR_PARSE, c, "%s is not valid UTF-8", QUOTE(c));
    for (;;) {
        const char *sep = memchr(s, r->cfg->multi_sep, (size_t)(e - s));
        const char *end = sep ? sep : e;
        if (end == s)
            return row_fail(r, msg, IC_ERR_PARSE, c, "%s has an empty value", QUOTE(c));
        if (*nv == IC_MAX_VALUES)
            return row_fail(r, msg, IC_ERR_PARSE, c, "too many values in the row (more than %d): %s",
                            IC_MAX_VALUES, QUOTE(c));
        vt->p[*nv] = s;
        vt->n[*nv] = (uint32_t)(end - s);
        ev->val[(*nv)++] = ic_hash(s, (size_t)(end - s));
        if (!sep) return IC_OK;
        s = sep + 1;
    }
}

/* Actions (non-negative) and labels (in [0, 1]). */
static ic_status parse_numbers(const ic_reader *r, ic_event *ev, char *msg)
{
    const ic_config *cfg = r->cfg;
    char q[128];
    double v;
    for (int a = 0; a < cfg->n_actions; a++) {
        int c = r->c_action[a];
        if (parse_num(FIELD(c), &v) || !(v >= 0) || !isfinite(v))
            return row_fail(r, msg, IC_ERR_PARSE, c, "%s is not a non-negative number", QUOTE(c));
        ev->action[a] = (float)v;
    }
    for (int t = 0; t < cfg->n_tasks; t++) {
        int c = r->c_task[t];
        if (parse_num(FIELD(c), &v) || !(v >= 0 && v <= 1))
            return row_fail(r, msg, IC_ERR_PARSE, c, "%s is not a label in [0, 1]", QUOTE(c));
        ev->label[t] = (float)v;
    }
    for (int a = cfg->n_actions; a < IC_MAX_ACTIONS; a++) ev->action[a] = 0;
    for (int t = cfg->n_tasks; t < IC_MAX_TASKS; t++) ev->label[t] = 0;
    return IC_OK;
}

static ic_status check_order(ic_reader *r, const ic_event *ev, char *msg)
{
    if (r->have_prev && ev->ts < r->prev_ts) {
        char a[40], b[40];
        return row_fail(r, msg, IC_ERR_ORDER, r->c_time,
                        "time %lld (%s) is earlier than %lld (%s) on line %llu: the log must be "
                        "sorted by time (iclock sort %s -o sorted.csv)",
                        (long long)ev->ts, iso_utc(ev->ts, a, sizeof a), (long long)r->prev_ts,
                        iso_utc(r->prev_ts, b, sizeof b), (unsigned long long)r->prev_line,
                        r->path);
    }
    r->have_prev = 1;
    r->prev_ts = ev->ts;
    r->prev_line = r->row_line;
    return IC_OK;
}

/* Categorical values repeat row after row: a small direct-mapped cache of
 * ids already put saves most trips into the (large, cache-cold) map. */
static void put_name(ic_reader *r, uint64_t id, const char *s, size_t n)
{
    uint64_t *slot = &r->recent[id & (RECENT_CAP - 1)];
    if (*slot == id) return;
    *slot = id;
    ic_names_put(r->names, id, s, n);
}

static void record_names(ic_reader *r, const ic_event *ev, const value_text *vt, int nv)
{
    put_name(r, ev->user, FIELD(r->c_user));
    put_name(r, ev->item, FIELD(r->c_item));
    for (int i = 0; i < nv; i++) put_name(r, ev->val[i], vt->p[i], vt->n[i]);
}

/* Parses r->rec into ev: IC_OK, or IC_ERR_PARSE / IC_ERR_ORDER with msg. */
static ic_status convert_row(ic_reader *r, ic_event *ev, char *msg)
{
    const ic_config *cfg = r->cfg;
    char q[128];
    ic_status s = check_shape(r, msg);
    if (s) return s;
    int c = r->c_time;
    if (parse_time(FIELD(c), &ev->ts))
        return row_fail(r, msg, IC_ERR_PARSE, c, "%s is not a time", QUOTE(c));
    ev->tz_min = cfg->tz_default_min;
    c = r->c_tz;
    if (c >= 0 && r->rec.len[c] > 0) {
        if (parse_int(FIELD(c), &ev->tz_min) || ev->tz_min < -1080 || ev->tz_min > 1080)
            return row_fail(r, msg, IC_ERR_PARSE, c,
                            "%s is not a UTC offset in minutes (-1080 to 1080)", QUOTE(c));
    }
    if ((s = parse_id(r, r->c_user, &ev->user, msg)) || (s = parse_id(r, r->c_item, &ev->item, msg)))
        return s;
    value_text vt;
    int nv = 0;
    for (int f = 0; f < cfg->n_fields; f++) {
        ev->voff[f] = (uint8_t)nv;
        if ((s = parse_values(r, f, ev, &nv, &vt, msg))) return s;
    }
    for (int f = cfg->n_fields; f <= IC_MAX_FIELDS; f++) ev->voff[f] = (uint8_t)nv;
    if ((s = parse_numbers(r, ev, msg)) || (s = check_order(r, ev, msg))) return s;
    if (r->names) record_names(r, ev, &vt, nv);
    return IC_OK;
}

static void note_bad(ic_reader *r, ic_status s, const char *msg)
{
    ic_reader_stats *st = &r->stats;
    st->bad++;
    if (s == IC_ERR_ORDER) st->bad_order++;
    else if (r->rec.problem || r->rec.n != r->ncols) st->bad_shape++;
    if (st->n_first_bad < IC_READER_KEEP_BAD)
        ic__strlcpy(st->first_bad[st->n_first_bad++], msg, sizeof st->first_bad[0]);
}

int ic_reader_next(ic_reader *r, ic_event *ev, ic_error *err)
{
    if (r->sticky) return ic__fail(err, r->sticky, "%s", r->sticky_msg);
    char msg[MSG_CAP];
    for (;;) {
        ic_error ioerr;
        int k = next_record(r, &ioerr);
        if (k < 0) {
            r->sticky = k;
            ic__strlcpy(r->sticky_msg, ioerr.msg, sizeof r->sticky_msg);
            return ic__fail(err, k, "%s", ioerr.msg);
        }
        if (k == 0) return 0;
        r->stats.rows++;
        ic_status s = convert_row(r, ev, msg);
        if (s == IC_OK) {
            r->stats.events++;
            r->ret_line = r->row_line;
            return 1;
        }
        if (r->policy == IC_BAD_ROWS_SKIP) {
            note_bad(r, s, msg);
            continue;
        }
        r->sticky = s;
        ic__strlcpy(r->sticky_msg, msg, sizeof r->sticky_msg);
        return ic__fail(err, s, "%s", msg);
    }
}
