/* cmd_sort.c: `iclock sort`, which sorts a log by time so the reader's
 * ordering contract holds. Stable, and verbatim: the header and every row
 * come out byte for byte as they went in (quoting, CRLF), only reordered.
 *
 * Deliberately simple: the whole (uncompressed) file is read into memory
 * and sorted there; there is no external merge sort. Only the time column
 * is parsed; other columns are not checked (iclock stats does that). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    int64_t ts;
    size_t off; /* of the row in the file; also the tie-breaker (stable) */
    size_t len; /* bytes, line end included */
} row_ref;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iclock sort IN [-o OUT] [--config CFG]\n"
            "\n"
            "Sorts an event log by its time column, stably (rows with equal times keep\n"
            "their order), keeping the header and every row byte for byte. IN may be a\n"
            ".csv.gz; the output is plain CSV. The whole uncompressed file is read into\n"
            "memory (its size plus about 24 bytes a row).\n"
            "\n"
            "  -o, --output OUT   write to OUT (through OUT.tmp and a rename, so OUT may\n"
            "                     be IN); default: standard output\n"
            "  -c, --config CFG   the config naming the time column and delimiter\n"
            "                     (default: built in, time column 'ts')\n"
            "  -h, --help         this text\n"
            "\nexit status: 0 ok, 1 cannot read or write, 2 bad usage or a bad time\n");
}

/* Reads all of path (plain or gzip) into *buf. */
static int slurp(const char *path, char **buf, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        fprintf(stderr, "iclock sort: %s: cannot open: %s\n", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    size_t cap = 1 << 20, n = 0;
    char *p = malloc(cap);
    int got = 0;
    while (p && (got = gzread(gz, p + n, (unsigned)(cap - n > (1u << 30) ? 1u << 30 : cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap) p = realloc(p, cap *= 2);
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(gz, &zerr);
    if (!p || got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
        fprintf(stderr, "iclock sort: %s: %s\n", path, p ? zmsg : "out of memory");
        gzclose(gz);
        free(p);
        return EXIT_RUNTIME;
    }
    gzclose(gz);
    *buf = p;
    *len = n;
    return 0;
}

static int cmp_rows(const void *a, const void *b)
{
    const row_ref *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Finds the time column in the header at buf[0..n); returns its index or
 * -1 after printing an error. *used gets the header's length. */
static int header_time_col(const char *in, const char *buf, size_t n, const ic_config *cfg,
                           ic_csv_record *rec, size_t *used)
{
    size_t skip = n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
    *used = skip + ic_csv_scan(buf + skip, n - skip, 1, cfg->delimiter, rec);
    if (*used == skip) {
        fprintf(stderr, "iclock sort: %s: empty file (no header)\n", in);
        return -1;
    }
    for (int c = 0; c < rec->n; c++)
        if (rec->len[c] == strlen(cfg->time_col) && !memcmp(rec->ptr[c], cfg->time_col, rec->len[c]))
            return c;
    char where[400];
    fprintf(stderr, "iclock sort: %s: column '%s' is not in %s\n",
            ic_config_where(cfg, "data", "time", 0, where, sizeof where), cfg->time_col, in);
    return -1;
}

/* Scans the rows after the header into refs; 0 or an exit status. */
static int collect_rows(const char *in, const char *buf, size_t n, size_t pos,
                        unsigned long long line, int tcol, const ic_config *cfg,
                        ic_csv_record *rec, row_ref **out, size_t *count)
{
    size_t cap = 1024, k = 0;
    row_ref *refs = malloc(cap * sizeof *refs);
    char q[128];
    while (refs && pos < n) {
        size_t used = ic_csv_scan(buf + pos, n - pos, 1, cfg->delimiter, rec);
        unsigned long long row_line = line;
        line += (unsigned long long)rec->lines;
        if (!rec->blank) {
            int64_t ts;
            const char *what = NULL;
            if (rec->problem) what = ic_csv_problem_text(rec->problem);
            else if (rec->n <= tcol) what = "missing";
            else if (ic_time_parse(rec->ptr[tcol], rec->len[tcol], &ts)) what = "is not a time";
            if (what) {
                int c = rec->problem ? rec->problem_col : tcol;
                fprintf(stderr, "iclock sort: %s:%llu:%d: column '%s': %s%s%s\n", in, row_line,
                        c + 1, c == tcol ? cfg->time_col : "?",
                        rec->n > c ? ic_csv_quote(rec->ptr[c], rec->len[c], q, sizeof q) : "",
                        rec->n > c ? " " : "", what);
                free(refs);
                return EXIT_BADINPUT;
            }
            if (k == cap) refs = realloc(refs, (cap *= 2) * sizeof *refs);
            if (refs) refs[k++] = (row_ref){ts, pos, used};
        }
        pos += used;
    }
    if (!refs) {
        fprintf(stderr, "iclock sort: out of memory\n");
        return EXIT_RUNTIME;
    }
    *out = refs;
    *count = k;
    return 0;
}

/* Writes header and rows; a row without a line end gets the header's. */
static int write_sorted(FILE *f, const char *buf, size_t hdr_len, const row_ref *refs, size_t k)
{
    const char *eol = hdr_len >= 2 && buf[hdr_len - 2] == '\r' ? "\r\n" : "\n";
    fwrite(buf, 1, hdr_len, f);
    if (hdr_len == 0 || buf[hdr_len - 1] != '\n') fputs(eol, f);
    for (size_t i = 0; i < k; i++) {
        fwrite(buf + refs[i].off, 1, refs[i].len, f);
        if (buf[refs[i].off + refs[i].len - 1] != '\n') fputs(eol, f);
    }
    return fflush(f) != 0 || ferror(f);
}

static int output(const char *out, const char *buf, size_t hdr_len, const row_ref *refs, size_t k)
{
    if (!out) {
        if (write_sorted(stdout, buf, hdr_len, refs, k)) {
            fprintf(stderr, "iclock sort: write error: %s\n", strerror(errno));
            return EXIT_RUNTIME;
        }
        return 0;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "iclock sort: %s: cannot create: %s\n", tmp, strerror(errno));
        return EXIT_RUNTIME;
    }
    int bad = write_sorted(f, buf, hdr_len, refs, k);
    int e = errno;
    if (fclose(f) != 0 && !bad) bad = 1, e = errno;
    if (bad || rename(tmp, out) != 0) {
        fprintf(stderr, "iclock sort: %s: %s\n", bad ? tmp : out, strerror(bad ? e : errno));
        remove(tmp);
        return EXIT_RUNTIME;
    }
    return 0;
}

int cmd_sort(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                         {"config", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *cfg_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:c:h", opts, NULL)) != -1) {
        if (c == 'o') out = optarg;
        else if (c == 'c') cfg_path = optarg;
        else if (c == 'h') return usage(stdout), EXIT_OK;
        else return cli_usage_error("sort", "bad option");
    }
    if (argc - optind != 1) return cli_usage_error("sort", "expected one input file");
    const char *in = argv[optind];
    ic_config cfg;
    int rc = cli_load_config("sort", cfg_path, &cfg);
    if (rc) return rc;

    char *buf = NULL;
    size_t n = 0, hdr_len = 0, k = 0;
    row_ref *refs = NULL;
    ic_csv_record rec;
    rec.scratch = malloc(IC_CSV_SCRATCH);
    if (!rec.scratch) return fprintf(stderr, "iclock sort: out of memory\n"), EXIT_RUNTIME;
    int tcol = -1;
    if (!(rc = slurp(in, &buf, &n))) {
        tcol = header_time_col(in, buf, n, &cfg, &rec, &hdr_len);
        if (tcol < 0) rc = EXIT_BADINPUT;
    }
    if (!rc) rc = collect_rows(in, buf, n, hdr_len, 1 + (unsigned long long)rec.lines, tcol, &cfg,
                               &rec, &refs, &k);
    if (!rc) {
        size_t moved = 0;
        for (size_t i = 1; i < k; i++) moved += refs[i].ts < refs[i - 1].ts;
        qsort(refs, k, sizeof *refs, cmp_rows);
        rc = output(out, buf, hdr_len, refs, k);
        if (!rc && out)
            fprintf(stderr, "iclock sort: %zu rows (%zu earlier than the row before them) -> %s\n",
                    k, moved, out);
    }
    free(refs);
    free(buf);
    free(rec.scratch);
    return rc;
}
