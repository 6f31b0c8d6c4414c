/* saliency heatmap, and the PNG output of saliency explain --png */
#include "cli.h"
#include <math.h>

static const char k_help[] =
    "usage: saliency heatmap A.npy --out A.png [options]\n\n"
    "Draws attribution maps as a PNG. A.npy is a batch (N, ...) as `saliency explain` writes it, or\n"
    "one (H,W) map; each sample is (H,W) or (C,H,W) (channels are reduced, see --reduce). One sample\n"
    "gives one heatmap, several a grid of the first --max. Diverging maps (blue - white - red) show\n"
    "signed values centred at zero, sequential ones (dark - bright) magnitudes; see docs/heatmaps.md.\n"
    "  --out FILE            the PNG to write (required)\n"
    "  --input X.npy         the inputs (same batch, or one sample for all): drawn beside each map,\n"
    "                        or under it with --overlay\n"
    "  --overlay             blend the map over the input shown in grey\n"
    "  --alpha A             overlay opacity at full colour, in (0,1] (default 0.8)\n"
    "  --clip PCT            percentile of |values| drawn at full colour (default 99.5)\n"
    "  --cmap auto|diverging|sequential   (default auto: diverging if the map has both signs)\n"
    "  --reduce sum|abs-sum|max-abs       channel reduction (default sum)\n"
    "  --scale K             upscale by K, nearest neighbour (default: about 224 pixels a side)\n"
    "  --no-colorbar         leave out the colour bar\n"
    "  --sample I            only sample I\n"
    "  --max N               samples in a grid (default 16)\n"
    "  --cols K              samples per grid row (default 4)\n"
    "  --share tile|all      clipping per sample (default) or one scale for the whole grid\n"
    "  --single              A.npy is one (C,H,W) map without a batch dimension\n"
    "Sequences (docs/sequences.md): with --out FILE.svg, maps of one-hot DNA (N, 4, L) or (N, L, 4)\n"
    "become a sequence logo of sample --sample (default 0): letters as tall as their attribution,\n"
    "  --window S:E          positions [S, E) only (default all)\n"
    "  --own                 with --input: only the sequence's own bases (map x input)\n";

/* A sequence logo of one sample of maps (N, 4, L) or (N, L, 4). */
static int logo(const char *out, const sal_tensor *maps, const char *path, const sal_tensor *x, int64_t sample,
                const char *window, bool own) {
    if (maps->dtype != SAL_F32 || maps->ndim != 3 || (maps->dim[1] != 4 && maps->dim[2] != 4))
        return cli_error("heatmap", "%s: a logo (--out .svg) needs maps of one-hot sequences (N, 4, L) or (N, L, 4)", path);
    if (sample >= maps->dim[0]) return cli_error("heatmap", "--sample %lld is out of range (%lld maps)", (long long)sample,
                                                 (long long)maps->dim[0]);
    int axis = maps->dim[1] == 4 ? 1 : 2;
    int64_t row = maps->dim[1] * maps->dim[2];
    sal_logo_opts lo = {0};
    if (window) {
        char *end;
        lo.start = strtoll(window, &end, 10);
        lo.end = *end == ':' ? strtoll(end + 1, &end, 10) : -1;
        if (*end || lo.start < 0 || lo.end <= lo.start) return cli_error("heatmap", "--window must read S:E with S < E, not '%s'", window);
    }
    if (own && (!x || x->dtype != SAL_F32 || sal_tensor_numel(x) < (sample + 1) * row))
        return cli_error("heatmap", "--own needs --input X.npy holding the sequences of the maps");
    sal_tensor one = {0};
    sal_status st = sal_tensor_alloc(&one, SAL_F32, 2, maps->dim + 1);
    for (int64_t e = 0; st == SAL_OK && e < row; e++)
        sal_f32(&one)[e] = sal_f32(maps)[sample * row + e] * (own ? sal_f32(x)[sample * row + e] : 1.0f);
    if (st == SAL_OK) st = sal_logo_svg(out, &one, axis, &lo);
    sal_tensor_free(&one);
    if (st != SAL_OK) return cli_fail("heatmap", st);
    return 0;
}

/* "(1,28,28)" */
static const char *shape_str(const sal_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)t->dim[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

/* The whole tensor, borrowed. */
static sal_tensor borrow(const sal_tensor *t) {
    sal_tensor v = *t;
    v.cap = 0;
    return v;
}

/* Sample i of a batch, borrowed. */
static sal_tensor sample(const sal_tensor *t, int64_t i) {
    sal_tensor v = {.dtype = t->dtype, .ndim = t->ndim - 1};
    memcpy(v.dim, t->dim + 1, sizeof(int64_t) * (size_t)v.ndim);
    v.data = (float *)t->data + i * sal_tensor_numel(&v);
    return v;
}

/* The input of sample i: from a batch (one of a batch of 1 serves all), or the one sample. */
static sal_tensor input_of(const sal_tensor *x, bool batched, int64_t i) {
    return batched ? sample(x, x->dim[0] == 1 ? 0 : i) : borrow(x);
}

/* Index of the first non-finite value, or -1; checked here so the message names the NPY file. */
static int64_t first_nonfinite(const sal_tensor *t) {
    const float *v = t->data;
    for (int64_t i = 0, n = sal_tensor_numel(t); i < n; i++)
        if (!isfinite(v[i])) return i;
    return -1;
}

/* (H, W) of a sample (the last two dims). */
static void hw(const sal_tensor *s, int64_t *h, int64_t *w) {
    *h = s->ndim >= 2 ? s->dim[s->ndim - 2] : 1;
    *w = s->ndim >= 1 ? s->dim[s->ndim - 1] : 1;
}

int cli_heatmap_png(const char *cmd, const char *png, const sal_tensor *maps, const char *map_name,
                    const sal_tensor *inputs, const char *in_name, const cli_heatmap_opts *opts) {
    cli_heatmap_opts o = opts ? *opts : (cli_heatmap_opts){0};
    if (o.max <= 0) o.max = 16;
    if (o.cols <= 0) o.cols = 4;
    char s1[200], s2[200];
    if (maps->dtype != SAL_F32) return cli_error(cmd, "%s: maps must be float32", map_name);
    int64_t bad = first_nonfinite(maps);
    if (bad >= 0) return cli_error(cmd, "%s: non-finite value at index %lld", map_name, (long long)bad);
    if (inputs && inputs->dtype == SAL_F32 && (bad = first_nonfinite(inputs)) >= 0)
        return cli_error(cmd, "%s: non-finite value at index %lld", in_name, (long long)bad);
    /* a batch unless marked single, or (H,W) and not marked batched */
    bool batched = o.batched || (!o.single && maps->ndim >= 3);
    int64_t n = batched ? maps->dim[0] : 1;
    if (n < 1) return cli_error(cmd, "%s: no samples in shape %s", map_name,
                               shape_str(maps, s1, sizeof s1));
    sal_tensor one = borrow(maps);
    sal_tensor m0 = batched ? sample(maps, 0) : one;
    if (m0.ndim != 2 && m0.ndim != 3)
        return cli_error(cmd, "%s: a sample of shape %s is not an (H,W) or (C,H,W) map", map_name,
                        shape_str(&m0, s1, sizeof s1));
    /* inputs: the same batch, or one sample for every map */
    bool in_batched = false;
    if (inputs) {
        if (inputs->dtype != SAL_F32) return cli_error(cmd, "%s: inputs must be float32", in_name);
        in_batched = batched && inputs->ndim == maps->ndim;
        sal_tensor x0 = in_batched ? sample(inputs, 0) : borrow(inputs);
        int64_t mh, mw, xh, xw;
        hw(&m0, &mh, &mw);
        hw(&x0, &xh, &xw);
        if ((in_batched && inputs->dim[0] != n && inputs->dim[0] != 1) || x0.ndim < 2 || x0.ndim > 3 || mh != xh ||
            mw != xw)
            return cli_error(cmd, "%s: input shape %s does not fit %s of shape %s", in_name,
                            shape_str(inputs, s1, sizeof s1), map_name,
                            shape_str(maps, s2, sizeof s2));
    }
    int64_t first = 0, count = n < o.max ? n : o.max;
    if (o.one) {
        if (o.sample >= n)
            return cli_error(cmd, "%s: sample %lld does not exist (%lld samples)", map_name, (long long)o.sample,
                            (long long)n);
        first = o.sample, count = 1;
    }
    sal_heatmap_opts ho = o.heat;
    if (ho.scale == 0) { /* about 224 pixels a side */
        int64_t h, w;
        hw(&m0, &h, &w);
        int64_t side = h > w ? h : w, k = 224 / (side > 0 ? side : 1);
        ho.scale = (int)(k < 1 ? 1 : k > 64 ? 64 : k);
    }
    sal_tensor mv[16], xv[16];
    if (count == 1) {
        mv[0] = batched ? sample(maps, first) : one;
        if (inputs) xv[0] = input_of(inputs, in_batched, first);
        if (!inputs || ho.overlay) {
            sal_status st = sal_heatmap_png(png, &mv[0], inputs ? &xv[0] : NULL, &ho);
            return st == SAL_OK ? 0 : cli_fail(cmd, st);
        }
    }
    /* a grid: samples in rows of o.cols, each an (input, map) pair when inputs are shown beside */
    if (count > 16) count = 16;
    for (int64_t i = 0; i < count; i++) {
        mv[i] = batched ? sample(maps, first + i) : one;
        if (inputs) xv[i] = input_of(inputs, in_batched, first + i);
    }
    bool pairs = inputs && !ho.overlay;
    int per_row = (int)(count < o.cols ? count : o.cols), rows = (int)((count + per_row - 1) / per_row);
    int cols = per_row * (pairs ? 2 : 1);
    sal_grid_tile tiles[64] = {{0}}; /* rows * cols < 2 (count + per_row) <= 64 */
    for (int64_t i = 0; i < count; i++) {
        int r = (int)(i / per_row), c = (int)(i % per_row) * (pairs ? 2 : 1);
        if (pairs) tiles[r * cols + c] = (sal_grid_tile){.image = &xv[i]};
        tiles[r * cols + c + (pairs ? 1 : 0)] = (sal_grid_tile){.map = &mv[i], .image = inputs ? &xv[i] : NULL};
    }
    sal_grid_opts go = {.heat = ho, .share = o.share};
    sal_status st = sal_png_grid(png, rows, cols, tiles, &go);
    return st == SAL_OK ? 0 : cli_fail(cmd, st);
}

int cmd_heatmap(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *path = NULL, *out = NULL, *in = NULL, *window = NULL;
    bool own = false;
    cli_heatmap_opts o = {.heat.colorbar = 1};
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--input")) in = cli_value(&a);
        else if (cli_is(&a, "--overlay")) o.heat.overlay = 1;
        else if (cli_is(&a, "--no-colorbar")) o.heat.colorbar = 0;
        else if (cli_is(&a, "--single")) o.single = 1;
        else if (cli_is(&a, "--window")) window = cli_value(&a);
        else if (cli_is(&a, "--own")) own = true;
        else if (cli_is(&a, "--scale")) o.heat.scale = (int)cli_long(&a, 1, 64);
        else if (cli_is(&a, "--sample")) o.sample = cli_long(&a, 0, 1L << 40), o.one = 1;
        else if (cli_is(&a, "--max")) o.max = (int)cli_long(&a, 1, 16);
        else if (cli_is(&a, "--cols")) o.cols = (int)cli_long(&a, 1, 16);
        else if (cli_is(&a, "--clip")) {
            o.heat.clip = cli_double(&a);
            if (!a.error && !(o.heat.clip > 0 && o.heat.clip <= 100))
                return cli_error("heatmap", "--clip must be a percentile in (0, 100], not '%g'", o.heat.clip);
        } else if (cli_is(&a, "--alpha")) {
            o.heat.alpha = cli_double(&a);
            if (!a.error && !(o.heat.alpha > 0 && o.heat.alpha <= 1))
                return cli_error("heatmap", "--alpha must be in (0, 1], not '%g'", o.heat.alpha);
        } else if (cli_is(&a, "--cmap")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "auto")) o.heat.cmap = SAL_CMAP_AUTO;
            else if (!strcmp(v, "diverging")) o.heat.cmap = SAL_CMAP_DIVERGING;
            else if (!strcmp(v, "sequential")) o.heat.cmap = SAL_CMAP_SEQUENTIAL;
            else if (!a.error) return cli_error("heatmap", "--cmap must be auto, diverging or sequential, not '%s'", v);
        } else if (cli_is(&a, "--reduce")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "sum")) o.heat.reduce = SAL_REDUCE_SUM;
            else if (!strcmp(v, "abs-sum")) o.heat.reduce = SAL_REDUCE_ABS_SUM;
            else if (!strcmp(v, "max-abs")) o.heat.reduce = SAL_REDUCE_MAX_ABS;
            else if (!a.error) return cli_error("heatmap", "--reduce must be sum, abs-sum or max-abs, not '%s'", v);
        } else if (cli_is(&a, "--share")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "tile")) o.share = SAL_SHARE_TILE;
            else if (!strcmp(v, "all")) o.share = SAL_SHARE_ALL;
            else if (!a.error) return cli_error("heatmap", "--share must be tile or all, not '%s'", v);
        } else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "heatmap");
    }
    if (a.error) return 1;
    if (!path) return cli_error("heatmap", "missing A.npy (see saliency heatmap --help)");
    if (!out) return cli_error("heatmap", "missing --out A.png");
    if (o.heat.overlay && !in) return cli_error("heatmap", "--overlay needs --input X.npy");
    sal_tensor maps = {0}, x = {0};
    int rc = 1;
    sal_status st = sal_npy_read(path, &maps);
    if (st == SAL_OK && in) st = sal_npy_read(in, &x);
    size_t ol = strlen(out);
    bool svg = ol > 4 && !strcmp(out + ol - 4, ".svg");
    if (st == SAL_OK && !svg && (window || own)) rc = cli_error("heatmap", "--window and --own draw logos (--out FILE.svg)");
    else if (st == SAL_OK && svg) rc = logo(out, &maps, path, in ? &x : NULL, o.one ? o.sample : 0, window, own);
    else if (st == SAL_OK) rc = cli_heatmap_png("heatmap", out, &maps, path, in ? &x : NULL, in, &o);
    else cli_fail("heatmap", st);
    sal_tensor_free(&maps);
    sal_tensor_free(&x);
    return rc;
}
