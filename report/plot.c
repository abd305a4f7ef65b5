/* A replay as an SVG picture (see plot.h). Plain SVG 1.1, no script, no
 * external reference: it opens in any browser. */
#include "plot.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define W 1280
#define TOP_H 300
#define BOT_H 180
#define PAD 50

struct column {
    double demand, capacity, instances;
};

static void thin(const uint32_t *demand, const float *ready, const float *booting, size_t n, uint32_t rpm,
                 struct column *col, size_t ncol)
{
    for (size_t c = 0; c < ncol; c++) {
        size_t a = c * n / ncol, b = (c + 1) * n / ncol;
        if (b <= a)
            b = a + 1;
        col[c].demand = 0;
        col[c].capacity = 1e300;
        col[c].instances = 0;
        for (size_t m = a; m < b && m < n; m++) {
            double cap = ready[m] * (double)rpm, inst = ready[m] + booting[m];
            if (demand[m] > col[c].demand)
                col[c].demand = demand[m];
            if (cap < col[c].capacity)
                col[c].capacity = cap;
            if (inst > col[c].instances)
                col[c].instances = inst;
        }
    }
}

static void polyline(FILE *out, const struct column *col, size_t ncol, size_t field, double top, double h,
                     double max, const char *color)
{
    fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1\" points=\"", color);
    for (size_t c = 0; c < ncol; c++) {
        double v = *(const double *)((const char *)&col[c] + field);
        double x = PAD + (double)c * (W - 2 * PAD) / (double)(ncol > 1 ? ncol - 1 : 1);
        double y = top + h - (max > 0 ? v / max : 0) * h;
        fprintf(out, "%.1f,%.1f ", x, y);
    }
    fprintf(out, "\"/>\n");
}

static void axis(FILE *out, double top, double h, double max, const char *unit)
{
    fprintf(out, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%d\" y2=\"%.0f\" stroke=\"#888\"/>\n", PAD, top + h, W - PAD,
            top + h);
    fprintf(out, "<text x=\"%d\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">%.0f</text>\n", PAD - 4,
            top + 10, max);
    fprintf(out, "<text x=\"%d\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">0</text>\n", PAD - 4, top + h);
    fprintf(out, "<text x=\"%d\" y=\"%.0f\" font-size=\"11\">%s</text>\n", PAD, top - 4, unit);
}

static void escape(FILE *out, const char *s)
{
    for (; *s; s++)
        if (*s == '<')
            fputs("&lt;", out);
        else if (*s == '&')
            fputs("&amp;", out);
        else if (*s == '>')
            fputs("&gt;", out);
        else
            fputc(*s, out);
}

int plot_replay_svg(FILE *out, const char *title, const uint32_t *demand, const float *ready,
                    const float *booting, size_t n, uint32_t capacity_rpm)
{
    if (n == 0)
        return -1;
    size_t ncol = n < PLOT_COLUMNS ? n : PLOT_COLUMNS;
    struct column *col = calloc(ncol, sizeof *col);
    if (!col)
        return -1;
    thin(demand, ready, booting, n, capacity_rpm, col, ncol);
    double dmax = 1, imax = 1;
    for (size_t c = 0; c < ncol; c++) {
        if (col[c].demand > dmax)
            dmax = col[c].demand;
        if (col[c].capacity > dmax && col[c].capacity < 1e300)
            dmax = col[c].capacity;
        if (col[c].instances > imax)
            imax = col[c].instances;
    }
    int h = TOP_H + BOT_H + 3 * PAD;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                 "<text x=\"%d\" y=\"20\" font-size=\"14\">", W, h, PAD);
    escape(out, title);
    fprintf(out, "</text>\n");
    double top = PAD, bot = PAD * 2 + TOP_H;
    axis(out, top, TOP_H, dmax, "requests a minute: demand (red, highest per column), capacity of the ready "
                                "instances (blue, lowest per column)");
    polyline(out, col, ncol, offsetof(struct column, capacity), top, TOP_H, dmax, "#2b6cb0");
    polyline(out, col, ncol, offsetof(struct column, demand), top, TOP_H, dmax, "#c53030");
    axis(out, bot, BOT_H, imax, "instances, ready and booting (highest per column)");
    polyline(out, col, ncol, offsetof(struct column, instances), bot, BOT_H, imax, "#2f855a");
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\">minute 0</text>\n", PAD, h - 10);
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">minute %zu</text>\n", W - PAD,
            h - 10, n);
    fprintf(out, "</svg>\n");
    free(col);
    return ferror(out) ? -1 : 0;
}
