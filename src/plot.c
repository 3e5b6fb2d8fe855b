/* plot.c: SVG pictures. A tiny SVG writer (static helpers: text with XML
 * escaping, rectangles, lines, annular wedges, a colour per value id) and
 * the drawings built on it: ic_plot_clock_svg, a user's clock as a 24-hour
 * dial. Further charts (e.g. hourly value shares) belong here too and
 * should use the same helpers.
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

/* A colour for a value id, the same in every picture: a hue from the id's
 * bits, at a saturation and lightness that keep dark labels readable. */
static void value_color(uint64_t id, char out[24])
{
    uint64_t x = id * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    int hue = (int)(x % 360), sat = 45 + (int)((x >> 20) % 30), light = 62 + (int)((x >> 40) % 14);
    snprintf(out, 24, "hsl(%d,%d%%,%d%%)", hue, sat, light);
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
    int n_seen = 0;
    for (int h = 0; h < IC_HOURS; h++) {
        if (!v->n[h][fld]) continue;
        uint64_t id = v->value[h][fld][0];
        int dup = 0;
        for (int i = 0; i < n_seen; i++) dup |= seen[i] == id;
        if (dup) continue;
        seen[n_seen++] = id;
        if (n_seen > 14) continue;
        value_color(id, col);
        svg_rect(f, x, y - 7, 14, 14, col, "#555");
        svg_text(f, x + 22, y, 13, "start", "#222", 0, "normal", value_label(names, id, buf), 30);
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
        int has = v->n[h][fld] > 0;
        if (has) value_color(v->value[h][fld][0], col);
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
                 value_label(names, v->value[h][fld][0], buf), max);
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
