/* RGB canvases and a 3x5 pixel font for labels and colour-bar values. */
#include "viz.h"

sal_status viz_canvas_new(viz_canvas *c, int w, int h, const char *path) {
    memset(c, 0, sizeof *c);
    if (w < 1 || h < 1 || w > VIZ_MAX_SIDE || h > VIZ_MAX_SIDE || (int64_t)w * h > VIZ_MAX_PIXELS)
        return sal_fail(SAL_ERR_ARG, "%s: a %dx%d picture is outside 1..%d per side and %d pixels", path, w, h,
                        VIZ_MAX_SIDE, VIZ_MAX_PIXELS);
    c->px = sal_malloc((size_t)w * (size_t)h * 3);
    if (!c->px) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory for a %dx%d picture", path, w, h);
    memset(c->px, 255, (size_t)w * (size_t)h * 3);
    c->w = w;
    c->h = h;
    return SAL_OK;
}

void viz_canvas_free(viz_canvas *c) {
    sal_free(c->px);
    memset(c, 0, sizeof *c);
}

void viz_blit(viz_canvas *dst, int x, int y, const viz_canvas *src) {
    for (int sy = 0; sy < src->h; sy++) {
        int dy = y + sy;
        if (dy < 0 || dy >= dst->h) continue;
        int x0 = x < 0 ? -x : 0, x1 = src->w < dst->w - x ? src->w : dst->w - x;
        if (x1 > x0)
            memcpy(dst->px + ((size_t)dy * dst->w + (size_t)(x + x0)) * 3,
                   src->px + ((size_t)sy * src->w + (size_t)x0) * 3, (size_t)(x1 - x0) * 3);
    }
}

void viz_fill(viz_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]) {
    for (int yy = y < 0 ? 0 : y; yy < y + h && yy < c->h; yy++)
        for (int xx = x < 0 ? 0 : x; xx < x + w && xx < c->w; xx++)
            memcpy(c->px + ((size_t)yy * c->w + xx) * 3, rgb, 3);
}

/* Our own glyphs, 3 wide and 5 tall, drawn row by row from the top ('#' = ink). */
static const struct {
    char ch;
    const char *rows;
} k_glyphs[] = {
    {'0', "####.##.##.####"}, {'1', ".#.##..#..#.###"}, {'2', "###..#####..###"}, {'3', "###..#.##..####"},
    {'4', "#.##.####..#..#"}, {'5', "####..###..####"}, {'6', "####..####.####"}, {'7', "###..#..#.#..#."},
    {'8', "####.#####.####"}, {'9', "####.####..####"}, {'A', ".#.#.#####.##.#"}, {'B', "##.#.###.#.###."},
    {'C', ".###..#..#...##"}, {'D', "##.#.##.##.###."}, {'E', "####..##.#..###"}, {'F', "####..##.#..#.."},
    {'G', ".###..#.##.#.##"}, {'H', "#.##.#####.##.#"}, {'I', "###.#..#..#.###"}, {'J', "..#..#..##.#.#."},
    {'K', "#.##.###.#.##.#"}, {'L', "#..#..#..#..###"}, {'M', "#.########.##.#"}, {'N', "##.#.##.##.##.#"},
    {'O', ".#.#.##.##.#.#."}, {'P', "##.#.###.#..#.."}, {'Q', ".#.#.##.####.##"}, {'R', "##.#.###.#.##.#"},
    {'S', ".###...#...###."}, {'T', "###.#..#..#..#."}, {'U', "#.##.##.##.####"}, {'V', "#.##.##.##.#.#."},
    {'W', "#.##.########.#"}, {'X', "#.##.#.#.#.##.#"}, {'Y', "#.##.#.#..#..#."}, {'Z', "###..#.#.#..###"},
    {'-', "......###......"}, {'+', "....#.###.#...."}, {'.', ".............#."}, {',', "..........#.#.."},
    {':', "....#.....#...."}, {'_', "............###"}, {'/', "..#..#.#.#..#.."}, {'(', ".#.#..#..#...#."},
    {')', ".#...#..#..#.#."}, {'=', "...###...###..."}, {'%', "#.#..#.#.#..#.#"}, {'?', "###..#.##....#."},
    {'<', "..#.#.#...#...#"}, {'>', "#...#...#.#.#.."}, {'*', "...#.#.#.#.#..."}, {' ', "..............."},
};

static const char *glyph(char ch) {
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    for (size_t i = 0; i < sizeof k_glyphs / sizeof k_glyphs[0]; i++)
        if (k_glyphs[i].ch == ch) return k_glyphs[i].rows;
    return glyph('?');
}

int viz_text_width(const char *s, int size) {
    size_t n = strlen(s);
    return n ? (int)(4 * n - 1) * size : 0;
}

void viz_text(viz_canvas *c, int x, int y, int size, const char *s, const uint8_t rgb[3]) {
    for (; *s; s++, x += 4 * size) {
        const char *g = glyph(*s);
        for (int r = 0; r < 5; r++)
            for (int k = 0; k < 3; k++)
                if (g[r * 3 + k] == '#') viz_fill(c, x + k * size, y + r * size, size, size, rgb);
    }
}
