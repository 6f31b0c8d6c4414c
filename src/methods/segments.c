/* Segments for the black-box methods: pixels, patches, a grid, SLIC superpixels, one segment per
 * element or per index along an axis, or a map the user gives; and the per-sample driver. */
#include "segments.h"
#include "sampling.h"
#include <errno.h>
#include <math.h>

sal_planes sal_planes_of(const sal_tensor *x) {
    sal_planes l = {1, 1, x->dim[x->ndim - 1]};
    if (x->ndim >= 4) l.H = x->dim[x->ndim - 2];
    l.P = sal_row_size(x) / (l.H * l.W);
    return l;
}

void sal_segments_free(sal_segments *s) {
    sal_free(s->label);
    sal_free(s->nseg);
    memset(s, 0, sizeof *s);
}

double sal_segments_mean(const sal_segments *s) {
    double t = 0;
    for (int64_t i = 0; i < s->n; i++) t += (double)s->nseg[i];
    return s->n ? t / (double)s->n : 0;
}

void sal_segments_spread(const int32_t *label, int64_t row, const double *v, float *out) {
    for (int64_t e = 0; e < row; e++) out[e] = (float)v[label[e]];
}

/* ---- SLIC ---- */

typedef struct {
    double y, x, *col; /* position and colour (P) */
} center;

/* Relabels 4-connected components in raster order; a component smaller than min joins the
 * component of an already relabelled neighbour of its first element (Achanta et al.'s
 * EnforceLabelConnectivity), so no segment is split in pieces or left as a speck. */
static sal_status connect(int32_t *label, int64_t H, int64_t W, int64_t min, int64_t *nseg) {
    int64_t n = H * W;
    int32_t *nl = sal_malloc((size_t)n * sizeof *nl);
    int64_t *stack = sal_malloc((size_t)n * sizeof *stack), *comp = sal_malloc((size_t)n * sizeof *comp);
    if (!nl || !stack || !comp) {
        sal_free(nl), sal_free(stack), sal_free(comp);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    for (int64_t p = 0; p < n; p++) nl[p] = -1;
    int32_t lab = 0;
    static const int dy[4] = {0, -1, 0, 1}, dx[4] = {-1, 0, 1, 0};
    for (int64_t p = 0; p < n; p++) {
        if (nl[p] >= 0) continue;
        int64_t y = p / W, x = p % W;
        int32_t adj = -1;
        for (int d = 0; d < 4; d++) {
            int64_t yy = y + dy[d], xx = x + dx[d];
            if (yy >= 0 && yy < H && xx >= 0 && xx < W && nl[yy * W + xx] >= 0) adj = nl[yy * W + xx];
        }
        int64_t top = 0, size = 0;
        nl[p] = lab;
        stack[top++] = p;
        while (top) {
            int64_t q = stack[--top];
            comp[size++] = q;
            int64_t qy = q / W, qx = q % W;
            for (int d = 0; d < 4; d++) {
                int64_t yy = qy + dy[d], xx = qx + dx[d], r = yy * W + xx;
                if (yy < 0 || yy >= H || xx < 0 || xx >= W || nl[r] >= 0 || label[r] != label[p]) continue;
                nl[r] = lab;
                stack[top++] = r;
            }
        }
        if (size < min && adj >= 0)
            for (int64_t k = 0; k < size; k++) nl[comp[k]] = adj;
        else lab++;
    }
    memcpy(label, nl, (size_t)n * sizeof *nl);
    *nseg = lab;
    sal_free(nl), sal_free(stack), sal_free(comp);
    return SAL_OK;
}

sal_status sal_slic(const float *x, int64_t P, int64_t H, int64_t W, int64_t k, double compactness, double range,
                    int32_t *label, int64_t *nseg) {
    int64_t n = H * W;
    if (k < 1) k = 1;
    if (k > n) k = n;
    /* grid step S: the side of a square superpixel, or its length on one row */
    double S = H > 1 ? sqrt((double)n / (double)k) : (double)W / (double)k;
    int64_t ny = H > 1 ? (int64_t)fmax(1, round((double)H / S)) : 1, nx = (int64_t)fmax(1, round((double)W / S));
    int64_t nc = ny * nx;
    double cs = 100.0 / (range > 0 ? range : 1), ws = compactness / S; /* colour and space scales */
    center *c = sal_calloc((size_t)nc, sizeof *c);
    double *col = sal_calloc((size_t)(nc * P), sizeof *col), *dist = sal_malloc((size_t)n * sizeof *dist);
    double *acc = sal_malloc((size_t)(nc * (P + 3)) * sizeof *acc);
    if (!c || !col || !dist || !acc) {
        sal_free(c), sal_free(col), sal_free(dist), sal_free(acc);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    /* centres on a regular grid; every element starts in the cell it lies in, so none stays
     * unassigned wherever the centres move */
    for (int64_t j = 0; j < nc; j++) {
        c[j].y = ((double)(j / nx) + 0.5) * (double)H / (double)ny;
        c[j].x = ((double)(j % nx) + 0.5) * (double)W / (double)nx;
        c[j].col = col + j * P;
        int64_t e = (int64_t)c[j].y * W + (int64_t)c[j].x;
        for (int64_t p = 0; p < P; p++) c[j].col[p] = cs * x[p * n + e];
    }
    for (int64_t e = 0; e < n; e++) label[e] = (int32_t)((e / W) * ny / H * nx + (e % W) * nx / W);
    for (int it = 0; it < 10; it++) {
        for (int64_t e = 0; e < n; e++) dist[e] = INFINITY;
        for (int64_t j = 0; j < nc; j++) { /* each centre looks at the 2S x 2S window around it */
            int64_t y0 = (int64_t)fmax(0, floor(c[j].y - S)), y1 = (int64_t)fmin((double)H, ceil(c[j].y + S) + 1);
            int64_t x0 = (int64_t)fmax(0, floor(c[j].x - S)), x1 = (int64_t)fmin((double)W, ceil(c[j].x + S) + 1);
            for (int64_t y = y0; y < y1; y++)
                for (int64_t xx = x0; xx < x1; xx++) {
                    int64_t e = y * W + xx;
                    double dc = 0, dy = ((double)y + 0.5 - c[j].y) * ws, dx = ((double)xx + 0.5 - c[j].x) * ws;
                    for (int64_t p = 0; p < P; p++) {
                        double d = cs * x[p * n + e] - c[j].col[p];
                        dc += d * d;
                    }
                    double D = dc + dy * dy + dx * dx;
                    if (D < dist[e]) dist[e] = D, label[e] = (int32_t)j;
                }
        }
        memset(acc, 0, (size_t)(nc * (P + 3)) * sizeof *acc);
        for (int64_t e = 0; e < n; e++) {
            double *a = acc + label[e] * (P + 3);
            a[0] += 1, a[1] += (double)(e / W) + 0.5, a[2] += (double)(e % W) + 0.5;
            for (int64_t p = 0; p < P; p++) a[3 + p] += cs * x[p * n + e];
        }
        for (int64_t j = 0; j < nc; j++) { /* a centre that lost every element stays where it was */
            const double *a = acc + j * (P + 3);
            if (a[0] == 0) continue;
            c[j].y = a[1] / a[0], c[j].x = a[2] / a[0];
            for (int64_t p = 0; p < P; p++) c[j].col[p] = a[3 + p] / a[0];
        }
    }
    sal_free(c), sal_free(col), sal_free(dist), sal_free(acc);
    return connect(label, H, W, (int64_t)fmax(1, (double)n / (double)nc / 4), nseg);
}

/* ---- the segments parameter ---- */

/* "A" or "AxB" after a prefix, into a, b (b = a when single). */
static bool parse_pair(const char *v, long *a, long *b, bool *pair) {
    char *end;
    errno = 0;
    *a = strtol(v, &end, 10);
    *pair = *end == 'x';
    *b = *a;
    if (*pair) *b = strtol(end + 1, &end, 10);
    return !errno && end != v && !*end && *a >= 1 && *b >= 1 && *a <= 1000000 && *b <= 1000000;
}

/* Integer labels from an NPY file: the input's shape, one sample's (with or without a batch axis
 * of 1), or the spatial plane's ((H, W), or (L) for (N, C, L)) shared by every channel. */
static sal_status file_labels(const sal_xctx *c, const char *path, const sal_planes *l, int64_t *lab) {
    const sal_tensor *x = c->x;
    sal_tensor f = {0};
    sal_status st = sal_npy_read(path, &f);
    if (st != SAL_OK) return sal_wrap(st, "method %s: segments", c->meth->name);
    int64_t N = x->dim[0], row = sal_row_size(x), plane = l->H * l->W, n = sal_tensor_numel(&f);
    bool all = sal_tensor_same_shape(&f, x);
    bool one = (f.ndim == x->ndim - 1 && !memcmp(f.dim, x->dim + 1, sizeof(int64_t) * (size_t)f.ndim)) ||
               (f.ndim == x->ndim && f.dim[0] == 1 &&
                !memcmp(f.dim + 1, x->dim + 1, sizeof(int64_t) * (size_t)(f.ndim - 1)));
    bool flat = x->ndim >= 3 && ((x->ndim >= 4 && f.ndim == 2 && f.dim[0] == l->H && f.dim[1] == l->W) ||
                                 (x->ndim == 3 && f.ndim == 1 && f.dim[0] == l->W));
    if (!all && !one && !flat) {
        char a[160], b[160];
        st = sal_fail(SAL_ERR_SHAPE,
                      "method %s: segments %s has shape %s; it needs the input's shape %s, one sample's, or the "
                      "spatial plane's",
                      c->meth->name, path, sal_shape_str(f.ndim, f.dim, a, sizeof a),
                      sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    for (int64_t e = 0; e < n && st == SAL_OK; e++) {
        double v = f.dtype == SAL_I64 ? (double)((const int64_t *)f.data)[e] : (double)sal_f32(&f)[e];
        if (f.dtype != SAL_I64 && (v != floor(v) || fabs(v) > 2e9))
            st = sal_fail(SAL_ERR_ARG, "method %s: segments %s: element %lld is %g, not an integer label",
                          c->meth->name, path, (long long)e, v);
    }
    for (int64_t i = 0; i < N && st == SAL_OK; i++)
        for (int64_t e = 0; e < row; e++) {
            int64_t src = all ? i * row + e : flat ? e % plane : e;
            lab[i * row + e] = f.dtype == SAL_I64 ? ((const int64_t *)f.data)[src] : (int64_t)sal_f32(&f)[src];
        }
    sal_tensor_free(&f);
    return st;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Numbers the distinct labels of one sample 0 .. k - 1 in increasing order. */
static sal_status compact(const int64_t *lab, int64_t row, int32_t *out, int64_t *k) {
    int64_t *u = sal_malloc((size_t)row * sizeof *u);
    if (!u) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    memcpy(u, lab, (size_t)row * sizeof *u);
    qsort(u, (size_t)row, sizeof *u, cmp_i64);
    int64_t n = 0;
    for (int64_t e = 0; e < row; e++)
        if (e == 0 || u[e] != u[n - 1]) u[n++] = u[e];
    for (int64_t e = 0; e < row; e++) {
        int64_t lo = 0, hi = n - 1;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (u[mid] < lab[e]) lo = mid + 1;
            else hi = mid;
        }
        out[e] = (int32_t)lo;
    }
    *k = n;
    sal_free(u);
    return SAL_OK;
}

enum { SEG_SLIC, SEG_PATCH, SEG_GRID, SEG_PIXEL, SEG_ELEMENT, SEG_AXIS, SEG_FILE };

sal_status sal_segments_make(const sal_xctx *c, sal_segments *s) {
    const sal_tensor *x = c->x;
    memset(s, 0, sizeof *s);
    const char *v = sal_param(c, "segments");
    sal_planes l = sal_planes_of(x);
    if (!strcmp(v, "auto")) v = x->ndim >= 4 ? "slic:50" : "pixel";
    int kind = -1;
    long a = 0, b = 0;
    bool pair = false, ok = true;
    size_t len = strlen(v);
    if (!strncmp(v, "slic:", 5)) kind = SEG_SLIC, ok = parse_pair(v + 5, &a, &b, &pair) && !pair;
    else if (!strncmp(v, "patch:", 6)) kind = SEG_PATCH, ok = parse_pair(v + 6, &a, &b, &pair);
    else if (!strncmp(v, "grid:", 5)) kind = SEG_GRID, ok = parse_pair(v + 5, &a, &b, &pair);
    else if (!strncmp(v, "axis:", 5)) kind = SEG_AXIS, ok = parse_pair(v + 5, &a, &b, &pair) && !pair;
    else if (!strcmp(v, "pixel") || !strcmp(v, "position")) kind = SEG_PIXEL;
    else if (!strcmp(v, "element")) kind = SEG_ELEMENT;
    else if (len > 4 && !strcmp(v + len - 4, ".npy")) kind = SEG_FILE;
    if (kind < 0 || !ok)
        return sal_fail(SAL_ERR_ARG,
                        "method %s: parameter segments=%s must be auto, slic:K, patch:K, patch:HxW, grid:G, "
                        "grid:GHxGW, pixel, position, element, axis:K or a path to a .npy file",
                        c->meth->name, v);
    if (pair && l.H == 1 && a != 1)
        return sal_fail(SAL_ERR_ARG, "method %s: segments=%s: the input has one spatial axis; give one size",
                        c->meth->name, v);
    if (l.H == 1 && (kind == SEG_PATCH || kind == SEG_GRID)) a = 1; /* on a 1 x W plane only W counts */
    if (kind == SEG_AXIS && (a < 1 || a >= x->ndim))
        return sal_fail(SAL_ERR_ARG, "method %s: segments=%s: the input has axes 1 to %d besides the batch axis",
                        c->meth->name, v, x->ndim - 1);
    int64_t N = x->dim[0], row = sal_row_size(x), plane = l.H * l.W;
    if (row > INT32_MAX) return sal_fail(SAL_ERR_SHAPE, "method %s: too many elements per sample", c->meth->name);
    s->n = N, s->row = row;
    s->label = sal_malloc((size_t)(N * row) * sizeof *s->label);
    s->nseg = sal_calloc((size_t)N, sizeof *s->nseg);
    int64_t *lab = kind == SEG_FILE ? sal_malloc((size_t)(N * row) * sizeof *lab) : NULL;
    sal_status st = s->label && s->nseg && (lab || kind != SEG_FILE) ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && kind == SEG_FILE) st = file_labels(c, v, &l, lab);
    double cmp = 10;
    if (st == SAL_OK && kind == SEG_SLIC) st = sal_param_float(c, "compactness", 1e-6, 1e6, &cmp);
    int64_t stride = 1; /* axis:K */
    for (int d = (int)a + 1; kind == SEG_AXIS && d < x->ndim; d++) stride *= x->dim[d];
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        int32_t *L = s->label + i * row;
        int64_t k = 0;
        switch (kind) {
        case SEG_SLIC:
            st = sal_slic(sal_f32(x) + i * row, l.P, l.H, l.W, b, cmp, c->hi - c->lo, L, &k);
            for (int64_t e = plane; e < row && st == SAL_OK; e++) L[e] = L[e % plane];
            break;
        case SEG_PATCH:
        case SEG_GRID: {
            /* patch: cells of a x b elements; grid: a x b cells of (nearly) equal size */
            int64_t gy = kind == SEG_PATCH ? (l.H + a - 1) / a : a < l.H ? a : l.H;
            int64_t gx = kind == SEG_PATCH ? (l.W + b - 1) / b : b < l.W ? b : l.W;
            for (int64_t e = 0; e < row; e++) {
                int64_t y = (e % plane) / l.W, q = e % l.W;
                int64_t cy = kind == SEG_PATCH ? y / a : y * gy / l.H, cx = kind == SEG_PATCH ? q / b : q * gx / l.W;
                L[e] = (int32_t)(cy * gx + cx);
            }
            k = gy * gx;
            break;
        }
        case SEG_PIXEL:
            for (int64_t e = 0; e < row; e++) L[e] = (int32_t)(e % plane);
            k = plane;
            break;
        case SEG_ELEMENT:
            for (int64_t e = 0; e < row; e++) L[e] = (int32_t)e;
            k = row;
            break;
        case SEG_AXIS:
            for (int64_t e = 0; e < row; e++) L[e] = (int32_t)(e / stride % x->dim[a]);
            k = x->dim[a];
            break;
        default: st = compact(lab + i * row, row, L, &k);
        }
        s->nseg[i] = k;
    }
    sal_free(lab);
    if (st != SAL_OK) sal_segments_free(s);
    return st;
}

/* ---- one sample's rows through the batch driver ---- */

sal_status sal_bb_run(sal_xctx *c, int64_t i, int64_t rows,
                      sal_status (*make)(void *u, int64_t i, int64_t k, float *row, sal_rng *r),
                      void (*take)(void *u, int64_t i, int64_t k, const float *row, const float *g, float value,
                                   sal_rng *r),
                      void *u) {
    sal_tensor xi = sal_tensor_view(c->x);
    xi.dim[0] = 1;
    xi.data = sal_f32(c->x) + i * sal_row_size(c->x);
    uint64_t id = sal_stream_id(c, i);
    sal_xctx sub = *c; /* the sample alone, its stream id kept: chunks never depend on other samples */
    sub.x = &xi;
    sub.target = c->target + i;
    sub.stream = &id;
    sal_batched b = {.per_sample = rows, .make = make, .take = take, .u = u, .forward_only = true};
    return sal_run_batched(&sub, &b);
}

static sal_status job_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)i, (void)r;
    const sal_bb_job *j = u;
    j->coef(j, k, j->a);
    for (int64_t e = 0; e < j->row; e++) {
        float b = j->base[e], t = j->a[j->label[e]];
        row[e] = t == 1 ? j->x[e] : t == 0 ? b : b + t * (j->x[e] - b); /* the ends exactly */
    }
    return SAL_OK;
}

static void job_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)i, (void)row, (void)g, (void)r;
    ((sal_bb_job *)u)->value[k] = value;
}

sal_status sal_bb_run_job(sal_xctx *c, int64_t i, sal_bb_job *j) { return sal_bb_run(c, i, j->rows, job_make, job_take, j); }
