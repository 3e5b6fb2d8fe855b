/* plot.c: SVG pictures. A tiny SVG writer (static helpers: text with XML
 * escaping, rectangles, lines, annular wedges, a ring's value colours) and
 * the drawings built on it: ic_plot_clock_svg, a user's clock as a 24-hour
 * dial, and ic_plot_hourly_svg, the share of each value of a field by local
 * hour (stacked columns) with the hour's volume beneath. Further charts
 * belong here too and should use the same helpers.
 * Deliberately not here: any raster output, fonts or layout engine; labels
 * are clipped to a few characters instead of measured. */
#include "internal.h"

#include <math.h>
#include <stdio.h>

#define PI 3.14159265358979323846

/* ---- a tiny SVG writer ------------------------------------------------------ */

static void svg_begin(FILE *f, int w, int h)
{
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
            w, h, w, h, w, h);
}

static void svg_end(FILE *f) { fputs("</svg>\n", f); }

/* Writes s with &, <, >, " and ' escaped; at most max characters (bytes;
 * a cut never splits a UTF-8 sequence), with an ellipsis when cut. */
static void svg_escaped(FILE *f, const char *s, size_t max)
{
    size_t n = strlen(s), cut = n > max ? max : n;
    while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    for (size_t i = 0; i < cut; i++) {
        switch (s[i]) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)s[i] >= 0x20) fputc(s[i], f);
        }
    }
    if (cut < n) fputs("\xe2\x80\xa6", f);
}

/* anchor: "start", "middle" or "end"; rotate in degrees about (x, y). */
static void svg_text(FILE *f, double x, double y, double size, const char *anchor, const char *fill,
                     double rotate, const char *weight, const char *s, size_t max)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" text-anchor=\"%s\" "
               "dominant-baseline=\"central\" fill=\"%s\" font-weight=\"%s\"",
            x, y, size, anchor, fill, weight);
    if (rotate != 0) fprintf(f, " transform=\"rotate(%.1f %.1f %.1f)\"", rotate, x, y);
    fputc('>', f);
    svg_escaped(f, s, max);
    fputs("</text>\n", f);
}

static void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill, const char *stroke)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"%s\"/>\n",
            x, y, w, h, fill, stroke);
}

static void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *stroke, double width)
{
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"/>\n",
            x1, y1, x2, y2, stroke, width);
}

/* The ring sector between radii r0 < r1 and angles a0 < a1 (radians,
 * clockwise from 12 o'clock) around (cx, cy). */
static void svg_wedge(FILE *f, double cx, double cy, double r0, double r1, double a0, double a1,
                      const char *fill, const char *stroke)
{
    double s0 = sin(a0), c0 = -cos(a0), s1 = sin(a1), c1 = -cos(a1);
    int large = a1 - a0 > PI;
    fprintf(f,
            "<path d=\"M %.2f %.2f A %.2f %.2f 0 %d 1 %.2f %.2f L %.2f %.2f A %.2f %.2f 0 %d 0 %.2f %.2f Z\" "
            "fill=\"%s\" stroke=\"%s\" stroke-width=\"1\"/>\n",
            cx + r1 * s0, cy + r1 * c0, r1, r1, large, cx + r1 * s1, cy + r1 * c1, cx + r0 * s1,
            cy + r0 * c1, r0, r0, large, cx + r0 * s0, cy + r0 * c0, fill, stroke);
}

/* ---- the clock dial's colours ---------------------------------------------------
 * Within a ring, values get colours in the order the legend lists them
 * (first appearance by hour): a qualitative palette of light colours
 * (ColorBrewer Set3) that keep dark labels readable, then hues a golden
 * angle apart. So two values of one ring never share a colour or get
 * near-identical ones (a hash of the id did, e.g. docs/img/nyc_clock_660.svg
 * before). The price: a value's colour depends on the picture. */
static const char *const SET3[12] = {"#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462",
                                     "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f"};

/* The top values of ring fld in order of first appearance by hour
 * (at most IC_HOURS); returns how many. */
static int ring_values(const ic_clock_view *v, int fld, uint64_t seen[IC_HOURS])
{
    int n = 0;
    for (int h = 0; h < IC_HOURS; h++) {
        if (!ic_clock_view_n(v, h, fld)) continue;
        uint64_t id = ic_clock_view_values(v, h, fld)[0];
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= seen[i] == id;
        if (!dup) seen[n++] = id;
    }
    return n;
}

/* The colour of the i-th value of a ring. */
static void value_color(int i, char out[24])
{
    if (i < 12) snprintf(out, 24, "%s", SET3[i]);
    else snprintf(out, 24, "hsl(%d,55%%,72%%)", (int)((i - 12) * 137.508 + 20) % 360);
}

/* The colour of value id in ring fld (its place in ring_values). */
static void ring_color(const ic_clock_view *v, int fld, uint64_t id, char out[24])
{
    uint64_t seen[IC_HOURS];
    int n = ring_values(v, fld, seen), i = 0;
    while (i < n && seen[i] != id) i++;
    value_color(i, out);
}

/* The string of a value: its name, or its id in hex. */
static const char *value_label(const ic_names *names, uint64_t id, char buf[20])
{
    const char *s = names ? ic_names_get(names, id) : NULL;
    if (s) return s;
    snprintf(buf, 20, "%016llx", (unsigned long long)id);
    return buf;
}

/* ---- the clock dial ---------------------------------------------------------- */

enum { DIAL_W = 1160, DIAL_H = 900, CX = 440, CY = 470, R_IN = 95, R_OUT = 380 };

/* Draws the legend of field f at (x, y); returns the y below it. Values in
 * order of first appearance by hour, at most 14. */
static double dial_legend(FILE *f, const ic_clock_view *v, const ic_config *cfg, const ic_names *names,
                          int fld, double x, double y)
{
    char head[IC_NAME_MAX + 32], col[24], buf[20];
    const char *name = cfg->field[cfg->clock_field[fld]];
    snprintf(head, sizeof head, "%s (ring %d%s)", name, fld + 1,
             fld == 0 ? ", inner" : fld == v->n_fields - 1 ? ", outer" : "");
    svg_text(f, x, y, 15, "start", "#222", 0, "bold", head, 48);
    y += 22;
    uint64_t seen[IC_HOURS];
    int n_seen = ring_values(v, fld, seen);
    for (int i = 0; i < n_seen && i < 14; i++) {
        value_color(i, col);
        svg_rect(f, x, y - 7, 14, 14, col, "#555");
        svg_text(f, x + 22, y, 13, "start", "#222", 0, "normal", value_label(names, seen[i], buf), 30);
        y += 20;
    }
    if (n_seen == 0) {
        svg_text(f, x, y, 13, "start", "#888", 0, "normal", "(no positive scores)", 40);
        y += 20;
    } else if (n_seen > 14) {
        svg_text(f, x, y, 12, "start", "#888", 0, "normal", "(more values not listed)", 40);
        y += 20;
    }
    return y + 14;
}

/* One ring: 24 sectors, each coloured by the hour's top value and
 * labelled with it along the radius. */
static void dial_ring(FILE *f, const ic_clock_view *v, const ic_names *names, int fld, double r0, double r1)
{
    char col[24], buf[20];
    for (int h = 0; h < IC_HOURS; h++) {
        double a0 = 2 * PI * h / IC_HOURS, a1 = 2 * PI * (h + 1) / IC_HOURS;
        int has = ic_clock_view_n(v, h, fld) > 0;
        uint64_t top = has ? ic_clock_view_values(v, h, fld)[0] : 0;
        if (has) ring_color(v, fld, top, col);
        svg_wedge(f, CX, CY, r0, r1, a0, a1, has ? col : "#f2f2f2", "#ffffff");
        if (!has) continue;
        /* Text runs outwards along the sector's middle; on the left half it
         * is turned over so that it never reads upside down. */
        double am = (a0 + a1) / 2, rm = (r0 + r1) / 2;
        double x = CX + rm * sin(am), y = CY - rm * cos(am);
        double deg = am * 180 / PI - 90;
        if (am > PI) deg += 180;
        size_t max = (size_t)((r1 - r0) / 6.5);
        svg_text(f, x, y, 10.5, "middle", "#1a1a1a", deg, "normal",
                 value_label(names, top, buf), max);
    }
}

ic_status ic_plot_clock_svg(FILE *out, const ic_clock_view *v, const ic_config *cfg,
                            const ic_names *names, const char *title, ic_error *err)
{
    IC_ASSERT(v->n_fields >= 0 && v->n_fields <= IC_MAX_CLOCK_FIELDS && v->n_fields <= cfg->n_clock);
    svg_begin(out, DIAL_W, DIAL_H);
    svg_text(out, CX, 30, 20, "middle", "#111", 0, "bold", title ? title : "Interest Clock", 90);
    int F = v->n_fields > 0 ? v->n_fields : 1;
    double ring = (double)(R_OUT - R_IN) / F;
    for (int fld = 0; fld < v->n_fields; fld++)
        dial_ring(out, v, names, fld, R_IN + fld * ring + 2, R_IN + (fld + 1) * ring);
    /* Hour ticks and labels (local hours) outside the rings. */
    for (int h = 0; h < IC_HOURS; h++) {
        double a = 2 * PI * h / IC_HOURS;
        char lab[16];
        snprintf(lab, sizeof lab, "%02d", h);
        svg_line(out, CX + (R_OUT + 2) * sin(a), CY - (R_OUT + 2) * cos(a), CX + (R_OUT + 12) * sin(a),
                 CY - (R_OUT + 12) * cos(a), "#666", 1.2);
        double am = a + PI / IC_HOURS;
        svg_text(out, CX + (R_OUT + 24) * sin(am), CY - (R_OUT + 24) * cos(am), 13, "middle", "#333", 0,
                 "normal", lab, 4);
    }
    svg_text(out, CX, CY - 10, 14, "middle", "#444", 0, "bold", "local hour", 20);
    svg_text(out, CX, CY + 12, 12, "middle", "#777", 0, "normal", "top value per hour", 30);
    double y = 90;
    for (int fld = 0; fld < v->n_fields; fld++) y = dial_legend(out, v, cfg, names, fld, 900, y);
    svg_end(out);
    if (ferror(out)) return ic__fail(err, IC_ERR_IO, "plot: cannot write the SVG");
    return IC_OK;
}

/* ---- the hourly share chart -------------------------------------------------- */

/* Layout of the hourly chart, in pixels: 24 columns of shares (SH tall),
 * the hour's volume beneath (VH tall), the legend on the right. */
enum {
    HR_W = 1140, HR_H = 700, HR_X0 = 84, HR_STEP = 30, HR_COL = 26, HR_SY = 96, HR_SH = 400,
    HR_VY = 530, HR_VH = 100, HR_LX = 846
};

/* Series colours in stack order: strong and light hues alternate so that
 * neighbours in a column differ. The rest of the values is grey. */
static const char *const HR_PALETTE[IC_PLOT_MAX_SERIES] = {
    "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#499894",
    "#d37295", "#9d7660", "#86bcb6", "#a0cbe8", "#ffbe7d", "#ff9d9a", "#8cd17d",
    "#d4a6c8", "#f1ce63", "#b6992d", "#fabfd2", "#d7b5a6", "#79706e"};
static const char HR_REST_COLOR[] = "#c9c9c9";

static const char *hr_color(const ic_plot_hourly *p, int i)
{
    return p->rest && i == p->n - 1 ? HR_REST_COLOR : HR_PALETTE[i];
}

/* A rectangle that carries its figures: data-* attributes (hour, series)
 * for programs, a <title> child for a browser's tooltip. */
static void hr_segment(FILE *f, double x, double y, double w, double h, const char *fill,
                       const char *cls, int hour, int series, const char *tip)
{
    fprintf(f, "<rect class=\"%s\" data-hour=\"%d\"", cls, hour);
    if (series >= 0) fprintf(f, " data-series=\"%d\"", series);
    fprintf(f, " x=\"%.3f\" y=\"%.3f\" width=\"%.3f\" height=\"%.3f\" fill=\"%s\"><title>", x, y, w,
            h, fill);
    svg_escaped(f, tip, 200);
    fputs("</title></rect>\n", f);
}

/* The hour's column: the series' shares stacked from the top, series 0
 * first. A column without counts is drawn empty. */
static void hr_column(FILE *f, const ic_plot_hourly *p, int h, uint64_t total)
{
    double x = HR_X0 + h * HR_STEP + (HR_STEP - HR_COL) / 2.0, y = HR_SY;
    char tip[256];
    if (total == 0) {
        snprintf(tip, sizeof tip, "%02d h: no values", h);
        hr_segment(f, x, y, HR_COL, HR_SH, "#f4f4f4", "empty", h, -1, tip);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        uint64_t c = p->count[i][h];
        if (c == 0) continue;
        double share = (double)c / (double)total, hgt = HR_SH * share;
        snprintf(tip, sizeof tip, "%02d h: %s %llu of %llu (%.1f%%)", h, p->label[i],
                 (unsigned long long)c, (unsigned long long)total, 100 * share);
        hr_segment(f, x, y, HR_COL, hgt, hr_color(p, i), "share", h, i, tip);
        y += hgt;
    }
}

/* Gridlines and the share axis; the volume strip's frame and axis. */
static void hr_axes(FILE *f, uint64_t vmax)
{
    char lab[48];
    double x1 = HR_X0 + 24 * HR_STEP;
    for (int q = 0; q <= 4; q++) {
        double y = HR_SY + HR_SH * (1 - q / 4.0);
        svg_line(f, HR_X0 - 4, y, x1, y, "#dddddd", 1);
        snprintf(lab, sizeof lab, "%d%%", 25 * q);
        svg_text(f, HR_X0 - 8, y, 12, "end", "#444", 0, "normal", lab, 8);
    }
    svg_text(f, 26, HR_SY + HR_SH / 2.0, 13, "middle", "#333", -90, "normal", "share of the hour", 40);
    svg_line(f, HR_X0 - 4, HR_VY + HR_VH, x1, HR_VY + HR_VH, "#999999", 1);
    snprintf(lab, sizeof lab, "%llu", (unsigned long long)vmax);
    svg_line(f, HR_X0 - 4, HR_VY, x1, HR_VY, "#eeeeee", 1);
    svg_text(f, HR_X0 - 8, HR_VY, 12, "end", "#444", 0, "normal", lab, 16);
    svg_text(f, HR_X0 - 8, HR_VY + HR_VH, 12, "end", "#444", 0, "normal", "0", 4);
    svg_text(f, 26, HR_VY + HR_VH / 2.0, 13, "middle", "#333", -90, "normal", "count", 20);
    for (int h = 0; h < IC_HOURS; h++) {
        snprintf(lab, sizeof lab, "%02d", h);
        svg_text(f, HR_X0 + h * HR_STEP + HR_STEP / 2.0, HR_VY + HR_VH + 16, 12, "middle", "#333", 0,
                 "normal", lab, 4);
    }
    svg_text(f, HR_X0 + 12 * HR_STEP, HR_VY + HR_VH + 42, 14, "middle", "#333", 0, "bold",
             "local hour", 20);
}

/* The legend, series 0 first (the top of the stack), with each series'
 * share of all the counts. */
static void hr_legend(FILE *f, const ic_plot_hourly *p, uint64_t grand)
{
    char pct[32];
    svg_text(f, HR_LX, HR_SY - 4, 14, "start", "#222", 0, "bold", "value (share of all hours)", 40);
    for (int i = 0; i < p->n; i++) {
        double y = HR_SY + 22 + 22 * i;
        uint64_t tot = 0;
        for (int h = 0; h < IC_HOURS; h++) tot += p->count[i][h];
        svg_rect(f, HR_LX, y - 7, 14, 14, hr_color(p, i), "#555555");
        svg_text(f, HR_LX + 22, y, 13, "start", "#222", 0, "normal", p->label[i], 34);
        snprintf(pct, sizeof pct, "%.1f%%", grand ? 100.0 * (double)tot / (double)grand : 0.0);
        svg_text(f, HR_W - 14, y, 13, "end", "#444", 0, "normal", pct, 8);
    }
}

ic_status ic_plot_hourly_svg(FILE *out, const ic_plot_hourly *p, ic_error *err)
{
    if (p->n < 1 || p->n > IC_PLOT_MAX_SERIES)
        return ic__fail(err, IC_ERR_ARG, "plot: %d series (1..%d can be drawn)", p->n,
                        IC_PLOT_MAX_SERIES);
    uint64_t total[IC_HOURS] = {0}, vmax = 0, grand = 0;
    for (int h = 0; h < IC_HOURS; h++) {
        for (int i = 0; i < p->n; i++) total[h] += p->count[i][h];
        vmax = total[h] > vmax ? total[h] : vmax;
        grand += total[h];
    }
    svg_begin(out, HR_W, HR_H);
    svg_text(out, HR_W / 2.0, 30, 20, "middle", "#111", 0, "bold",
             p->title ? p->title : "Share of each value by local hour", 100);
    if (p->note) svg_text(out, HR_W / 2.0, 58, 13, "middle", "#555", 0, "normal", p->note, 150);
    hr_axes(out, vmax);
    char tip[64];
    for (int h = 0; h < IC_HOURS; h++) {
        hr_column(out, p, h, total[h]);
        double vh = vmax ? HR_VH * (double)total[h] / (double)vmax : 0;
        snprintf(tip, sizeof tip, "%02d h: %llu", h, (unsigned long long)total[h]);
        hr_segment(out, HR_X0 + h * HR_STEP + (HR_STEP - HR_COL) / 2.0, HR_VY + HR_VH - vh, HR_COL, vh,
                   "#8c8c8c", "volume", h, -1, tip);
    }
    hr_legend(out, p, grand);
    svg_end(out);
    if (ferror(out)) return ic__fail(err, IC_ERR_IO, "plot: cannot write the SVG");
    return IC_OK;
}
