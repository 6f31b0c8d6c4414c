/* Path methods: integrated gradients (Sundararajan et al. 2017) and gradient SHAP / expected
 * gradients (Lundberg & Lee 2017; Erion et al. 2021). Both average gradients at points between a
 * baseline and the input; the points of all samples run as batches through sal_run_batched, so
 * memory is bounded by the chunk and the input's size, never by the step or sample count. */
#include "method.h"
#include "sampling.h"
#include <math.h>

/* ---- quadrature of the path integral over alpha in [0, 1] ---- */

enum { RULE_LEFT, RULE_RIGHT, RULE_MIDDLE, RULE_TRAPEZOID, RULE_GAUSS };
static const char *const k_rules[] = {"riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
                                      "gauss_legendre", NULL};

/* Gauss-Legendre nodes t (ascending) and weights w on [-1, 1]. Newton's method on P_n from the
 * guess cos(pi (i + 3/4) / (n + 1/2)); P_n comes from (j+1) P_{j+1} = (2j+1) t P_j - j P_{j-1},
 * P_n' = n (t P_n - P_{n-1}) / (t^2 - 1), and w_i = 2 / ((1 - t_i^2) P_n'(t_i)^2). */
static void gauss_legendre(int64_t n, double *t, double *w) {
    for (int64_t i = 0; i < (n + 1) / 2; i++) {
        double z = cos(M_PI * ((double)i + 0.75) / ((double)n + 0.5)), dp = 1;
        for (int it = 0; it < 100; it++) {
            double p0 = 1, p1 = z;
            for (int64_t j = 1; j < n; j++) {
                double p2 = ((double)(2 * j + 1) * z * p1 - (double)j * p0) / (double)(j + 1);
                p0 = p1;
                p1 = p2;
            }
            dp = (double)n * (z * p1 - p0) / (z * z - 1);
            double dz = p1 / dp;
            z -= dz;
            if (fabs(dz) < 1e-15) break;
        }
        t[i] = -z;
        t[n - 1 - i] = z;
        w[i] = w[n - 1 - i] = 2 / ((1 - z * z) * dp * dp);
    }
}

/* Points alpha_k and weights w_k with sum_k w_k g(alpha_k) ~ integral_0^1 g. Every rule's weights
 * sum to 1, so a constant gradient (a linear model) is integrated exactly. */
static void quadrature(int rule, int64_t n, double *alpha, double *w) {
    if (rule == RULE_GAUSS) {
        gauss_legendre(n, alpha, w);
        for (int64_t k = 0; k < n; k++) alpha[k] = (alpha[k] + 1) / 2, w[k] /= 2;
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        double m = (double)n;
        switch (rule) {
        case RULE_LEFT: alpha[k] = (double)k / m, w[k] = 1 / m; break;
        case RULE_RIGHT: alpha[k] = (double)(k + 1) / m, w[k] = 1 / m; break;
        case RULE_MIDDLE: alpha[k] = ((double)k + 0.5) / m, w[k] = 1 / m; break;
        default: /* trapezoid: n points, n - 1 intervals, half weight at both ends */
            alpha[k] = (double)k / (m - 1);
            w[k] = (k == 0 || k == n - 1 ? 0.5 : 1) / (m - 1);
        }
    }
}

/* ---- baselines ---- */

enum { BASE_ZERO, BASE_BLACK, BASE_UNIFORM, BASE_BLUR, BASE_MEAN };
static const char *const k_bases[] = {"zero", "black", "uniform", "blur", "mean", NULL};

/* Gaussian blur of x over its spatial axes: the last two of (N, C..., H, W), the last of (N, C, L). */
static sal_status blur_baseline(const sal_xctx *c, double sigma, sal_tensor *base) {
    const sal_tensor *x = c->x;
    if (x->ndim < 3) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE,
                        "method %s: baseline=blur needs spatial axes, (N,C,L) or (N,C,H,W) inputs; the input is %s",
                        c->meth->name, sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    int64_t W = x->dim[x->ndim - 1], H = x->ndim >= 4 ? x->dim[x->ndim - 2] : 1;
    SAL_TRY(sal_tensor_alloc(base, SAL_F32, x->ndim, x->dim));
    sal_status st = sal_gauss_blur(sal_f32(x), sal_f32(base), sal_tensor_numel(x) / (H * W), H, W, sigma);
    return st == SAL_OK ? SAL_OK : sal_wrap(st, "method %s: baseline=blur", c->meth->name);
}

/* A baseline from an NPY file: the shape of one sample (with or without a batch axis of 1) is
 * used for every sample, the shape of x gives one baseline per sample. */
static sal_status file_baseline(const sal_xctx *c, const char *path, sal_tensor *base) {
    const sal_tensor *x = c->x;
    sal_tensor f = {0};
    sal_status st = sal_npy_read(path, &f);
    if (st != SAL_OK) return sal_wrap(st, "method %s: baseline", c->meth->name);
    int64_t row = sal_row_size(x), n = f.dtype == SAL_F32 ? sal_tensor_numel(&f) : -1;
    bool one = f.ndim == x->ndim - 1 && !memcmp(f.dim, x->dim + 1, sizeof(int64_t) * (size_t)f.ndim);
    one |= f.ndim == x->ndim && f.dim[0] == 1 && !memcmp(f.dim + 1, x->dim + 1, sizeof(int64_t) * (size_t)(f.ndim - 1));
    bool all = sal_tensor_same_shape(&f, x);
    if (n < 0 || (!one && !all)) {
        char a[160], s1[160], s2[160];
        st = sal_fail(SAL_ERR_SHAPE,
                      "method %s: baseline %s has shape %s%s; it needs one sample's shape %s or the input's %s",
                      c->meth->name, path, sal_shape_str(f.ndim, f.dim, a, sizeof a),
                      n < 0 ? " and is not float32" : "", sal_shape_str(x->ndim - 1, x->dim + 1, s1, sizeof s1),
                      sal_shape_str(x->ndim, x->dim, s2, sizeof s2));
    }
    if (st == SAL_OK) st = sal_tensor_alloc(base, SAL_F32, x->ndim, x->dim);
    if (st == SAL_OK)
        for (int64_t i = 0; i < x->dim[0]; i++)
            memcpy(sal_f32(base) + i * row, sal_f32(&f) + (all ? i * row : 0), (size_t)row * sizeof(float));
    sal_tensor_free(&f);
    return st;
}

/* Every sample gets the per-element mean of the reference data. */
static sal_status mean_baseline(const sal_xctx *c, sal_tensor *base) {
    const sal_tensor *x = c->x, *d = c->data;
    if (!d)
        return sal_fail(SAL_ERR_ARG, "method %s: baseline=mean needs reference data: give --data D.npy "
                                     "(sal_explain_opts.data)", c->meth->name);
    int64_t row = sal_row_size(x);
    if (d->dtype != SAL_F32 || d->ndim < 1 || d->dim[0] < 1 || sal_row_size(d) != row) {
        char a[160], b[160];
        return sal_fail(SAL_ERR_SHAPE, "method %s: baseline=mean: reference data %s does not hold samples of the "
                        "input's size %s", c->meth->name, sal_shape_str(d->ndim, d->dim, a, sizeof a),
                        sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    double *m = sal_calloc((size_t)row, sizeof *m);
    sal_status st = m ? sal_tensor_alloc(base, SAL_F32, x->ndim, x->dim) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < d->dim[0] && st == SAL_OK; i++)
        for (int64_t e = 0; e < row; e++) m[e] += sal_f32(d)[i * row + e];
    for (int64_t i = 0; i < x->dim[0] && st == SAL_OK; i++)
        for (int64_t e = 0; e < row; e++) sal_f32(base)[i * row + e] = (float)(m[e] / (double)d->dim[0]);
    sal_free(m);
    return st;
}

sal_status sal_method_baseline(const sal_xctx *c, sal_tensor *base) {
    double sigma = 0;
    uint64_t seed = 0;
    SAL_TRY(sal_param_float(c, "sigma", 0, 1000, &sigma));
    SAL_TRY(sal_parse_seed(c->meth->name, sal_param(c, "seed"), &seed));
    const char *v = sal_param(c, "baseline");
    int kind = -1;
    for (int i = 0; k_bases[i]; i++)
        if (!strcmp(v, k_bases[i])) kind = i;
    size_t len = strlen(v);
    if (kind < 0) {
        if (len > 4 && !strcmp(v + len - 4, ".npy")) return file_baseline(c, v, base);
        return sal_fail(SAL_ERR_ARG,
                        "method %s: parameter baseline=%s must be zero, black, uniform, blur, mean or a path to a "
                        ".npy file",
                        c->meth->name, v);
    }
    if (kind == BASE_BLUR) return blur_baseline(c, sigma, base);
    if (kind == BASE_MEAN) return mean_baseline(c, base);
    const sal_tensor *x = c->x;
    SAL_TRY(sal_tensor_alloc(base, SAL_F32, x->ndim, x->dim));
    float *b = sal_f32(base);
    int64_t row = sal_row_size(x);
    for (int64_t i = 0; i < x->dim[0]; i++) {
        sal_rng r;
        sal_rng_stream(&r, seed, sal_stream_id(c, i), 0, 1);
        for (int64_t e = 0; e < row; e++) {
            float *p = b + i * row + e;
            if (kind == BASE_BLACK) *p = (float)c->lo;
            else if (kind == BASE_UNIFORM) *p = (float)(c->lo + (c->hi - c->lo) * sal_rng_uniform(&r));
        }
    }
    return SAL_OK;
}

/* ---- integrated gradients ---- */

typedef struct {
    const float *x, *base; /* (N, row) */
    int64_t row;
    int64_t steps;
    const double *alpha, *w; /* (steps) */
    double *acc;             /* (N, row): sum_k w_k grad(base + alpha_k (x - base)) */
    float *ends;             /* (N, 2): f(x), f(base) */
    /* through the affine front (sal_exec_front): its value, row size and shape, F(x) and F(base)
     * per sample (N, 2, frow), and the sum of w_k times the gradient there (N, frow) */
    const sal_xctx *c;
    int front;
    int64_t frow;
    sal_tensor fshape;
    float *f, *facc, *wk; /* wk: per row of a chunk, its weight */
    int64_t per;          /* rows per sample through the front: the steps, then x and base (weight 0) */
    sal_tensor seed;
} ig_job;

static sal_status ig_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)r;
    const ig_job *j = u;
    const float *x = j->x + i * j->row, *b = j->base + i * j->row;
    float a = (float)j->alpha[k];
    for (int64_t e = 0; e < j->row; e++) row[e] = b[e] + a * (x[e] - b[e]);
    return SAL_OK;
}

static void ig_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)r;
    (void)row, (void)value;
    const ig_job *j = u;
    double *acc = j->acc + i * j->row, w = j->w[k];
    for (int64_t e = 0; e < j->row; e++) acc[e] += w * g[e];
}

static sal_status ends_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)r;
    const ig_job *j = u;
    memcpy(row, (k ? j->base : j->x) + i * j->row, (size_t)j->row * sizeof *row);
    return SAL_OK;
}

static void ends_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)r;
    (void)row, (void)g;
    ((ig_job *)u)->ends[2 * i + k] = value;
}

/* ---- integrated gradients through the affine front ----
 * The network's head up to the front F (sal_exec_front) is affine, so along the path F moves on a
 * line: row k is F(x0) + alpha_k (F(x) - F(x0)), made from the two ends' values instead of running
 * the head once per row. The gradient at the input is the head's transposed Jacobian J^T applied
 * to the gradient at F, and J is constant, so sum_k w_k grad_x = J^T (sum_k w_k grad_F): one
 * backward pass through the head for all rows. On the MLP the head is a third of the work; on the
 * small CNN it is the one-channel convolution, whose input gradient oneDNN takes long over. */

/* F(x) and F(base) of every sample: the head alone on the rows x_0, base_0, x_1, base_1, ..., at
 * most a chunk at a time (the ends' values f(x) and f(base) then come out of the path's own pass,
 * as its last two rows per sample, instead of a pass of their own over the whole network). j->front
 * becomes -1 where the front's value does not have a row per input row: the whole path runs instead. */
static sal_status front_ends(ig_job *j) {
    const sal_xctx *c = j->c;
    int64_t N = c->x->dim[0], chunk = c->chunk > 0 ? c->chunk : 64, dim[SAL_MAX_DIMS];
    sal_tensor rows = {0};
    sal_status st = SAL_OK;
    for (int64_t r0 = 0; r0 < 2 * N && st == SAL_OK && j->front >= 0; r0 += chunk) {
        int64_t n = 2 * N - r0 < chunk ? 2 * N - r0 : chunk;
        memcpy(dim, c->x->dim, sizeof dim);
        dim[0] = n;
        st = sal_tensor_alloc_raw(&rows, SAL_F32, c->x->ndim, dim);
        for (int64_t r = r0; r < r0 + n && st == SAL_OK; r++)
            memcpy(sal_f32(&rows) + (r - r0) * j->row, (r % 2 ? j->base : j->x) + r / 2 * j->row,
                   (size_t)j->row * sizeof(float));
        if (st == SAL_OK) st = sal_exec_forward_head(c->s, &rows);
        const sal_tensor *t = &c->s->act[j->front];
        if (st != SAL_OK) break;
        if (t->dtype != SAL_F32 || t->ndim < 1 || t->dim[0] != n || (j->f && sal_row_size(t) != j->frow)) {
            j->front = -1;
            break;
        }
        if (!j->f) {
            j->frow = sal_row_size(t);
            j->fshape = sal_tensor_view(t);
            j->fshape.data = NULL;
            j->per = j->steps + 2;
            j->f = sal_malloc((size_t)(2 * N * j->frow) * sizeof *j->f);
            j->facc = sal_calloc((size_t)(N * j->frow), sizeof *j->facc);
            j->wk = sal_malloc((size_t)chunk * sizeof *j->wk);
            if (!j->f || !j->facc || !j->wk) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        }
        if (st == SAL_OK) memcpy(j->f + r0 * j->frow, sal_f32(t), (size_t)(n * j->frow) * sizeof(float));
    }
    sal_tensor_free(&rows);
    return st;
}

/* The rows of a chunk of the path at the front: F(base) + alpha_k (F(x) - F(base)), written into
 * the session's value of the front itself, which saves copying them there. */
static sal_status front_fill(void *u, int64_t r0, int64_t n, sal_tensor *spare, sal_tensor *x) {
    (void)spare;
    const ig_job *j = u;
    sal_tensor *buf = &j->c->s->act[j->front];
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, j->fshape.dim, sizeof dim);
    dim[0] = n;
    SAL_TRY(sal_tensor_alloc_raw(buf, SAL_F32, j->fshape.ndim, dim));
    bool relu = sal_exec_front_relu(j->c->s) >= 0; /* the ReLU after the front, in the same pass */
#pragma omp parallel for if (n * j->frow > 65536)
    for (int64_t r = 0; r < n; r++) {
        int64_t i = (r0 + r) / j->per, k = (r0 + r) % j->per;
        const float *fx = j->f + 2 * i * j->frow, *fb = fx + j->frow;
        /* the ends as they are (alpha 1 and 0): fx and fb themselves */
        const float *p = k == j->steps ? fx : fb;
        float q = k < j->steps ? (float)j->alpha[k] : 0.0f, *o = sal_f32(buf) + r * j->frow;
        if (relu) {
#pragma omp simd
            for (int64_t e = 0; e < j->frow; e++) {
                float v = p[e] + q * (fx[e] - fb[e]);
                o[e] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
            for (int64_t e = 0; e < j->frow; e++) o[e] = p[e] + q * (fx[e] - fb[e]);
        }
    }
    *x = sal_tensor_view(buf);
    return SAL_OK;
}

/* The tail's forward and backward pass, from the rows at the front to the gradient there. */
static sal_status front_pass(void *u, sal_chunk *ch) {
    ig_job *j = u;
    sal_session *s = ch->s;
    int out = sal_explained(j->c, s->m);
    SAL_TRY(sal_exec_forward_tail(s, ch->x, sal_exec_front_relu(s) >= 0));
    SAL_TRY(sal_target_seed(j->c, &s->act[out], ch->target, &j->seed, ch->value));
    bool *wrt = sal_calloc((size_t)s->m->nval, sizeof *wrt);
    if (!wrt) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    wrt[j->front] = true;
    sal_backward_opts bo = {.wrt = wrt};
    sal_status st = sal_exec_backward(s, 1, &out, &j->seed, &bo);
    sal_free(wrt);
    if (st != SAL_OK) return st;
    /* per sample, the weighted sum of its rows' gradients: rows as a matrix times their weights
     * (the gradients at the front are many times the input's size) */
    const float *g = sal_f32(&s->grad[j->front]);
    for (int64_t r = 0; r < ch->n; r++) { /* the ends' rows: f(x) and f(base), weight 0 below */
        int64_t i = (ch->r0 + r) / j->per, k = (ch->r0 + r) % j->per;
        if (k >= j->steps) j->ends[2 * i + (k - j->steps)] = ch->value[r];
    }
    for (int64_t r = 0; r < ch->n;) {
        int64_t i = (ch->r0 + r) / j->per, n = 0;
        for (; r + n < ch->n && (ch->r0 + r + n) / j->per == i; n++) {
            int64_t k = (ch->r0 + r + n) % j->per;
            j->wk[n] = k < j->steps ? (float)j->w[k] : 0.0f;
        }
        sal_sgemm(false, false, 1, (int)j->frow, (int)n, 1.0f, j->wk, (int)n, g + r * j->frow, (int)j->frow, 1.0f,
                  j->facc + i * j->frow, (int)j->frow);
        r += n;
    }
    return SAL_OK;
}

/* The path through the tail, then J^T of the head on the summed gradient at the front into acc. */
static sal_status front_path(sal_xctx *c, ig_job *j) {
    sal_batched path = {.per_sample = j->per, .fill = front_fill, .pass = front_pass, .u = j};
    SAL_TRY(sal_run_batched(c, &path));
    sal_session *s = c->s;
    int64_t N = c->x->dim[0];
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, j->fshape.dim, sizeof dim);
    dim[0] = N;
    SAL_TRY(sal_exec_forward_head(s, c->x));
    SAL_TRY(sal_tensor_alloc_raw(&j->seed, SAL_F32, j->fshape.ndim, dim));
    memcpy(sal_f32(&j->seed), j->facc, (size_t)(N * j->frow) * sizeof(float));
    SAL_TRY(sal_exec_backward(s, 1, &j->front, &j->seed, NULL));
    const float *g = sal_f32(&s->grad[s->m->input[0]]);
    for (int64_t e = 0; e < N * j->row; e++) j->acc[e] = g[e];
    return SAL_OK;
}

/* Integrated gradients through the front, a group of samples at a time (each as its own input: the
 * rows of a sample never depend on the others'). Where chunks take fewer rows than there are
 * samples, memory is short (run_ig): the front's values (F(x), F(base) and the gradients' sum:
 * three of its rows a sample, 38 MB on VGG16) then hold one sample at a time. j->front becomes -1
 * when the first group finds no row per input row at the front: then nothing is written and the
 * whole path runs instead. */
static sal_status front_groups(sal_xctx *c, ig_job *j) {
    int64_t N = c->x->dim[0], g = c->chunk < N ? 1 : N, row = j->row;
    const float *x = j->x, *base = j->base;
    double *acc = j->acc;
    float *ends = j->ends;
    uint64_t *ids = sal_malloc((size_t)g * sizeof *ids);
    sal_status st = ids ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i0 = 0; i0 < N && st == SAL_OK && j->front >= 0; i0 += g) {
        int64_t n = N - i0 < g ? N - i0 : g;
        sal_tensor xi = sal_tensor_view(c->x);
        xi.dim[0] = n;
        xi.data = sal_f32(c->x) + i0 * row;
        for (int64_t k = 0; k < n; k++) ids[k] = sal_stream_id(c, i0 + k);
        sal_xctx sub = *c;
        sub.x = &xi;
        sub.target = c->target ? c->target + i0 : NULL;
        sub.stream = ids;
        j->c = &sub, j->x = x + i0 * row, j->base = base + i0 * row, j->acc = acc + i0 * row, j->ends = ends + 2 * i0;
        if (j->facc) memset(j->facc, 0, (size_t)(n * j->frow) * sizeof *j->facc);
        st = front_ends(j);
        if (st == SAL_OK && j->front >= 0) st = front_path(&sub, j);
        else if (st == SAL_OK && i0 > 0) st = sal_fail(SAL_ERR_INTERNAL, "the front's rows changed between samples");
    }
    j->c = c, j->x = x, j->base = base, j->acc = acc, j->ends = ends;
    sal_free(ids);
    return st;
}

/* attribution = (x - x0) * integral_0^1 grad f(x0 + alpha (x - x0)) d alpha; completeness says it
 * sums to f(x) - f(x0), and the quadrature error shows in how far it misses. */
static sal_status run_ig(sal_xctx *c) {
    long steps;
    int rule;
    SAL_TRY(sal_param_int(c, "steps", 1, 1000000, &steps));
    SAL_TRY(sal_param_choice(c, "rule", k_rules, &rule));
    if (rule == RULE_GAUSS && steps > 10000) /* computing the nodes costs O(steps^2) */
        return sal_fail(SAL_ERR_ARG, "method %s: rule=gauss_legendre takes at most 10000 steps (%ld given)",
                        c->meth->name, steps);
    if (rule == RULE_TRAPEZOID && steps < 2)
        return sal_fail(SAL_ERR_ARG,
                        "method %s: rule=riemann_trapezoid evaluates both ends of the path: it needs steps >= 2",
                        c->meth->name);
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], row = sal_row_size(x);
    sal_tensor base = {0};
    SAL_TRY(sal_method_baseline(c, &base));
    /* the chunks run on c->s (sal_run_batched's default session): its front is the one used */
    ig_job j = {.x = sal_f32(x), .base = sal_f32(&base), .row = row, .steps = steps, .c = c,
                .front = sal_exec_front(c->s)};
    double *alpha = sal_malloc((size_t)steps * sizeof *alpha), *w = sal_malloc((size_t)steps * sizeof *w);
    j.acc = sal_calloc((size_t)(N * row), sizeof *j.acc);
    j.ends = sal_calloc((size_t)(2 * N), sizeof *j.ends);
    sal_status st = alpha && w && j.acc && j.ends ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        quadrature(rule, steps, alpha, w);
        j.alpha = alpha;
        j.w = w;
    }
    /* Chunks of fewer rows than samples (sal_explain's automatic chunk on a large network: 2 on
     * VGG16): memory is short. The targets' pass, which this method does not read, gives back its
     * buffers (N rows each) before the chunks, and the chunks theirs after them, so that they do
     * not stay beside the next call's targets' pass on a reused session. */
    bool short_mem = c->chunk < N;
    if (st == SAL_OK && short_mem) sal_exec_release(c->s);
    if (st == SAL_OK && j.front >= 0) st = front_groups(c, &j);
    if (st == SAL_OK && j.front < 0) { /* without the front: the ends, then the whole path */
        sal_batched ends = {.per_sample = 2, .make = ends_make, .take = ends_take, .u = &j, .forward_only = true};
        sal_batched path = {.per_sample = steps, .make = ig_make, .take = ig_take, .u = &j};
        st = sal_run_batched(c, &ends);
        if (st == SAL_OK) st = sal_run_batched(c, &path);
    }
    if (short_mem) sal_exec_release(c->s);
    if (st == SAL_OK) st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    if (st == SAL_OK) {
        double worst = 0, worst_rel = 0;
        for (int64_t i = 0; i < N; i++) {
            double sum = 0;
            for (int64_t e = i * row; e < (i + 1) * row; e++) {
                float a = (float)((double)(j.x[e] - j.base[e]) * j.acc[e]);
                sal_f32(&c->out)[e] = a;
                sum += a;
            }
            double df = (double)j.ends[2 * i] - j.ends[2 * i + 1], d = fabs(sum - df);
            worst = fmax(worst, d);
            worst_rel = fmax(worst_rel, d / fmax(fabs(df), 1e-12));
        }
        sal_metric(c, "completeness_delta", worst);
        sal_metric(c, "completeness_rel", worst_rel);
    }
    sal_tensor_free(&base);
    sal_tensor_free(&j.seed);
    sal_free(alpha);
    sal_free(w);
    sal_free(j.acc);
    sal_free(j.ends);
    sal_free(j.f);
    sal_free(j.facc);
    sal_free(j.wk);
    return st;
}

static const sal_param_spec k_ig_params[] = {
    {"baseline", "zero",
     "reference input x0: zero, black (every element = the data minimum), uniform (seeded, in the data range), "
     "blur (Gaussian blur of x, see sigma), mean (of --data) or a .npy file (one sample's shape, or the input's)"},
    {"steps", "50", "gradient evaluations along the path (points of the quadrature rule)"},
    {"rule", "gauss_legendre",
     "quadrature: riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gauss_legendre"},
    {"sigma", "3", "baseline=blur: standard deviation of the Gaussian, in elements of the spatial axes"},
    {"seed", "0", "baseline=uniform: random seed"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_integrated_gradients = {
    .name = "integrated_gradients",
    .summary = "path integral of gradients from a baseline, times (x - baseline) (Sundararajan et al. 2017)",
    .params = k_ig_params,
    .run = run_ig,
    .plain_io = true,
};

/* ---- gradient SHAP / expected gradients ---- */

typedef struct {
    const float *x, *data; /* (N, row), (M, row) */
    int64_t row, M;
    double sigma; /* noise added to x, absolute */
    double *acc;  /* (N, row) */
} gs_job;

/* The draw of a (sample, variant) pair from its stream r: a data row as baseline and a point alpha
 * on the path. The noise follows in the same stream, element by element; make and take get the
 * stream afresh, so they regenerate identical draws. */
static const float *gs_draw(const gs_job *j, sal_rng *r, float *alpha) {
    const float *b = j->data + (int64_t)(sal_rng_u64(r) % (uint64_t)j->M) * j->row;
    *alpha = (float)sal_rng_uniform(r);
    return b;
}

static float gs_noisy(const gs_job *j, sal_rng *r, float x) {
    return j->sigma > 0 ? x + (float)(j->sigma * sal_rng_normal(r)) : x;
}

static sal_status gs_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)k;
    const gs_job *j = u;
    float a;
    const float *b = gs_draw(j, r, &a), *x = j->x + i * j->row;
    for (int64_t e = 0; e < j->row; e++) row[e] = b[e] + a * (gs_noisy(j, r, x[e]) - b[e]);
    return SAL_OK;
}

static void gs_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)k, (void)row, (void)value;
    const gs_job *j = u;
    float a;
    const float *b = gs_draw(j, r, &a), *x = j->x + i * j->row;
    double *acc = j->acc + i * j->row;
    for (int64_t e = 0; e < j->row; e++) acc[e] += (double)(gs_noisy(j, r, x[e]) - b[e]) * g[e];
}

/* attribution = E_{b ~ data, alpha ~ U[0,1], eps ~ N(0, s^2)} [(x' - b) * grad f(b + alpha (x' - b))],
 * x' = x + eps: a Monte-Carlo estimate of integrated gradients averaged over data baselines. */
static sal_status run_gradient_shap(sal_xctx *c) {
    long samples;
    double noise;
    uint64_t seed = 0;
    SAL_TRY(sal_param_int(c, "samples", 1, 1000000, &samples));
    SAL_TRY(sal_param_float(c, "noise", 0, 100, &noise));
    SAL_TRY(sal_parse_seed(c->meth->name, sal_param(c, "seed"), &seed));
    const sal_tensor *x = c->x, *d = c->data;
    if (!d)
        return sal_fail(SAL_ERR_ARG, "method %s: needs reference data to draw baselines from: give --data D.npy "
                                     "(sal_explain_opts.data)", c->meth->name);
    if (d->dtype != SAL_F32 || d->ndim != x->ndim || d->dim[0] < 1 ||
        memcmp(d->dim + 1, x->dim + 1, sizeof(int64_t) * (size_t)(x->ndim - 1))) {
        char a[160], b[160];
        return sal_fail(SAL_ERR_SHAPE,
                        "method %s: reference data %s does not hold float32 samples shaped as the input %s",
                        c->meth->name, sal_shape_str(d->ndim, d->dim, a, sizeof a),
                        sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    int64_t N = x->dim[0], row = sal_row_size(x);
    gs_job j = {.x = sal_f32(x), .data = sal_f32(d), .row = row, .M = d->dim[0],
                .sigma = noise * (c->hi - c->lo)};
    j.acc = sal_calloc((size_t)(N * row), sizeof *j.acc);
    sal_status st = j.acc ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_batched b = {.per_sample = samples, .make = gs_make, .take = gs_take, .u = &j, .seeded = true, .seed = seed};
    if (st == SAL_OK) st = sal_run_batched(c, &b);
    if (st == SAL_OK) st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    if (st == SAL_OK)
        for (int64_t e = 0; e < N * row; e++) sal_f32(&c->out)[e] = (float)(j.acc[e] / (double)samples);
    sal_free(j.acc);
    return st;
}

static const sal_param_spec k_gs_params[] = {
    {"samples", "50", "baseline draws per sample (each: a random data row and a random point on the path)"},
    {"noise", "0", "standard deviation of Gaussian noise added to x, as a fraction of the input range"},
    {"seed", "0", "random seed"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_gradient_shap = {
    .name = "gradient_shap",
    .summary = "expected gradients over data baselines (Lundberg & Lee 2017; Erion et al. 2021); needs --data",
    .params = k_gs_params,
    .run = run_gradient_shap,
    .plain_io = true,
};
