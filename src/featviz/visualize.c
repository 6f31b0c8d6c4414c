/* Activation maximization (Erhan et al. 2009; Olah et al. 2017) and model inversion (Mahendran &
 * Vedaldi 2015): gradient ascent on the parameters of a batch of inputs. One step:
 *   x = T(P)                      parameterization (pixel or decorrelated Fourier)
 *   x' = resample(x, random A)    transformation robustness, per image
 *   J = sum_b objective(x'_b) - penalties(x) + diversity
 *   P += step(T^T resample^T dJ/dx')
 * then the projections (range, norm sphere, probability simplex) and, every k steps, a blur. */
#include "featviz.h"
#include <math.h>
#include <stdarg.h>

struct sal_featviz {
    sal_tensor images, snaps;
    int *snap_steps;
    float *before, *after;
    char *json;
};

sal_featviz_opts sal_featviz_defaults(void) {
    return (sal_featviz_opts){.opt = SAL_OPT_ADAM, .lr = 0.05f, .steps = 256, .seed = 1, .space = SAL_SPACE_PIXEL,
                              .decay = 1.0f, .decorrelate = 1, .init_sd = 0.01f, .clip = 1, .tv_beta = 2.0f,
                              .blur_sigma = 0.5f, .fill = NAN};
}

void sal_featviz_free(sal_featviz *f) {
    if (!f) return;
    sal_tensor_free(&f->images);
    sal_tensor_free(&f->snaps);
    sal_free(f->snap_steps);
    sal_free(f->before);
    sal_free(f->after);
    sal_free(f->json);
    sal_free(f);
}

const sal_tensor *sal_featviz_images(const sal_featviz *f) { return &f->images; }
const sal_tensor *sal_featviz_snapshots(const sal_featviz *f) { return f->snaps.data ? &f->snaps : NULL; }
const int *sal_featviz_snapshot_steps(const sal_featviz *f) { return f->snap_steps; }
const float *sal_featviz_before(const sal_featviz *f) { return f->before; }
const float *sal_featviz_after(const sal_featviz *f) { return f->after; }

sal_status sal_featviz_json(const sal_featviz *f, char **json) {
    size_t n = strlen(f->json) + 1;
    *json = malloc(n); /* the caller frees with free(), not through our allocator */
    if (!*json) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    memcpy(*json, f->json, n);
    return SAL_OK;
}

/* ---- the run's state ---- */

typedef struct {
    const sal_model *m;
    const sal_objective *obj;
    sal_featviz_opts o;
    int64_t B, E;          /* images, elements per image */
    int ndim;              /* of the model input */
    int64_t dim[SAL_MAX_DIMS];
    int64_t C, S;          /* channels and spatial elements per channel */
    int rank;              /* spatial dimensions (0: none) */
    int64_t sp[2];
    float lo, hi, fill;
    bool transforms, replicate;
    int div_val;           /* value the diversity term reads, or -1 */
    fv_param par;
    sal_session *s;
    fv_seeds seeds;
    float *P, *gP, *m1, *m2, *x, *xt, *gx, *tmp, *G, *dG;
    double *vals, *nrm, *cosm; /* objective per image; Gram norms (B) and cosines (B, B) */
    fv_affine *T;          /* (B) this step's transforms */
    sal_rng rng;
} run;

static void run_free(run *r) {
    fv_param_free(&r->par);
    sal_session_free(r->s);
    fv_seeds_free(&r->seeds);
    float *bufs[] = {r->P, r->gP, r->m1, r->m2, r->x, r->xt, r->gx, r->tmp, r->G, r->dG};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sal_free(bufs[i]);
    sal_free(r->vals);
    sal_free(r->nrm);
    sal_free(r->cosm);
    sal_free(r->T);
}

/* Shape of one input: the declared one where static, else the data's or the start's. */
static sal_status input_shape(run *r) {
    const sal_model *m = r->m;
    const sal_tensor *decl = &m->val[m->input[0]].t;
    const sal_tensor *ref = r->o.data ? r->o.data : r->o.init;
    r->ndim = decl->ndim;
    if (r->ndim < 2)
        return sal_fail(SAL_ERR_SHAPE, "input '%s' of %s has no dimensions after the batch", m->val[m->input[0]].name,
                        m->path);
    for (int d = 1; d < r->ndim; d++) {
        r->dim[d] = decl->dim[d];
        if (r->dim[d] >= 0) continue;
        if (!ref || ref->ndim != r->ndim)
            return sal_fail(SAL_ERR_SHAPE,
                            "input '%s' of %s has a dynamic dimension %d: give data or a start image of the size "
                            "to optimize",
                            m->val[m->input[0]].name, m->path, d);
        r->dim[d] = ref->dim[d];
    }
    r->dim[0] = r->B;
    r->E = 1;
    for (int d = 1; d < r->ndim; d++) r->E *= r->dim[d];
    if (r->E < 1) return sal_fail(SAL_ERR_SHAPE, "input '%s' is empty", m->val[m->input[0]].name);
    r->C = r->dim[1];
    r->S = r->E / r->C;
    r->rank = r->ndim == 3 ? 1 : r->ndim == 4 ? 2 : 0;
    r->sp[0] = r->ndim >= 3 ? r->dim[2] : 1;
    r->sp[1] = r->ndim == 4 ? r->dim[3] : 1;
    return SAL_OK;
}

static sal_status check_opts(run *r) {
    const sal_featviz_opts *o = &r->o;
    if (!(o->lr > 0) || o->steps < 0 || o->steps > 10000000)
        return sal_fail(SAL_ERR_ARG, "visualize: lr must be positive and steps in [0, 1e7] (lr %g, steps %d)",
                        (double)o->lr, o->steps);
    if (o->opt != SAL_OPT_ADAM && o->opt != SAL_OPT_SGD) return sal_fail(SAL_ERR_ARG, "visualize: unknown optimizer");
    if (o->space != SAL_SPACE_PIXEL && o->space != SAL_SPACE_FOURIER && o->space != SAL_SPACE_SOFTMAX)
        return sal_fail(SAL_ERR_ARG, "visualize: unknown parameterization");
    float w[] = {o->l1, o->l2, o->tv, o->norm, o->diversity, o->init_sd, o->blur_sigma, o->entropy};
    const char *wn[] = {"l1", "l2", "tv", "norm", "diversity", "init_sd", "blur_sigma", "entropy"};
    for (int i = 0; i < 8; i++)
        if (!(w[i] >= 0) || !isfinite(w[i])) return sal_fail(SAL_ERR_ARG, "visualize: %s must be >= 0, not %g", wn[i], (double)w[i]);
    if (!(o->tv_beta >= 1 && o->tv_beta <= 4)) return sal_fail(SAL_ERR_ARG, "visualize: tv_beta must be in [1, 4]");
    if (o->blur_every < 0 || (o->blur_every > 0 && !(o->blur_sigma > 0)))
        return sal_fail(SAL_ERR_ARG, "visualize: blurring every %d steps needs blur_sigma > 0", o->blur_every);
    if (o->jitter < 0 || o->jitter2 < 0 || o->pad < 0 || o->nscales < 0 || o->nangles < 0 || o->snapshots < 0)
        return sal_fail(SAL_ERR_ARG, "visualize: negative pad, jitter or count");
    for (int i = 0; i < o->nscales; i++)
        if (!(o->scales[i] > 0.1f && o->scales[i] < 10))
            return sal_fail(SAL_ERR_ARG, "visualize: scale factor %g outside (0.1, 10)", (double)o->scales[i]);
    for (int i = 0; i < o->nangles; i++)
        if (!(fabsf(o->angles[i]) <= 360)) return sal_fail(SAL_ERR_ARG, "visualize: rotation angle %g", (double)o->angles[i]);
    if (o->space == SAL_SPACE_FOURIER && (r->rank == 0))
        return sal_fail(SAL_ERR_UNSUPPORTED, "the Fourier parameterization needs inputs (N,C,L) or (N,C,H,W)");
    if (r->transforms && r->rank == 0)
        return sal_fail(SAL_ERR_UNSUPPORTED, "jitter, scaling and rotation need inputs (N,C,L) or (N,C,H,W)");
    if (o->nangles > 0 && r->rank != 2) return sal_fail(SAL_ERR_UNSUPPORTED, "rotation needs image inputs (N,C,H,W)");
    if (o->blur_every > 0 && r->rank == 0) return sal_fail(SAL_ERR_UNSUPPORTED, "blurring needs (N,C,L) or (N,C,H,W) inputs");
    if (o->ppm && r->ndim != 3)
        return sal_fail(SAL_ERR_UNSUPPORTED, "ppm needs sequence inputs (N,C,L) with one channel per letter");
    if ((o->ppm || o->norm > 0) && o->space != SAL_SPACE_PIXEL)
        return sal_fail(SAL_ERR_UNSUPPORTED, "ppm and the norm constraint need the pixel parameterization");
    if (o->space == SAL_SPACE_SOFTMAX && r->ndim != 3)
        return sal_fail(SAL_ERR_UNSUPPORTED, "the softmax parameterization needs sequence inputs (N,C,L), one channel per letter");
    if (o->entropy > 0 && !o->ppm && o->space != SAL_SPACE_SOFTMAX)
        return sal_fail(SAL_ERR_ARG, "visualize: the entropy penalty needs ppm or the softmax parameterization");
    if (o->diversity > 0 && r->B < 2) return sal_fail(SAL_ERR_ARG, "the diversity term needs a batch of 2 or more");
    if (o->init) {
        const sal_tensor *t = o->init;
        bool ok = t->dtype == SAL_F32 && t->ndim == r->ndim && (t->dim[0] == 1 || t->dim[0] == r->B);
        for (int d = 1; ok && d < r->ndim; d++) ok = t->dim[d] == r->dim[d];
        if (!ok) {
            char a[160], b[160];
            int64_t want[SAL_MAX_DIMS];
            memcpy(want, r->dim, sizeof want);
            return sal_fail(SAL_ERR_SHAPE, "the start image has shape %s; wanted %s or 1 sample",
                            sal_shape_str(t->ndim, t->dim, a, sizeof a), sal_shape_str(r->ndim, want, b, sizeof b));
        }
        for (int64_t i = 0, n = sal_tensor_numel(t); i < n; i++)
            if (!isfinite(sal_f32(t)[i])) return sal_fail(SAL_ERR_NUMERIC, "the start image has a non-finite value");
    }
    return SAL_OK;
}

/* Data range, from the options or the data. */
static sal_status data_range(run *r) {
    const sal_featviz_opts *o = &r->o;
    double lo = o->lo, hi = o->hi;
    if (o->ppm || o->space == SAL_SPACE_SOFTMAX) lo = 0, hi = 1;
    else if (lo == 0 && hi == 0 && o->data) {
        const sal_tensor *d = o->data;
        if (d->dtype != SAL_F32 || sal_tensor_numel(d) < 1) return sal_fail(SAL_ERR_ARG, "visualize: data must be float samples");
        lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0, n = sal_tensor_numel(d); i < n; i++) {
            float v = sal_f32(d)[i];
            if (!isfinite(v)) return sal_fail(SAL_ERR_NUMERIC, "visualize: the data has a non-finite value at %lld", (long long)i);
            lo = fmin(lo, v), hi = fmax(hi, v);
        }
        if (hi == lo) hi = lo + 1;
    } else if (lo == 0 && hi == 0) {
        hi = 1;
    }
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi))
        return sal_fail(SAL_ERR_ARG, "visualize: the data range [%g, %g] is empty", lo, hi);
    r->lo = (float)lo;
    r->hi = (float)hi;
    r->fill = !isnan(o->fill)                           ? (float)o->fill
              : o->ppm || o->space == SAL_SPACE_SOFTMAX ? 1.0f / (float)r->C
                                                         : (float)((lo + hi) / 2);
    return SAL_OK;
}

static void project(run *r) {
    if (r->o.space != SAL_SPACE_PIXEL) return;
    const sal_featviz_opts *o = &r->o;
    for (int64_t b = 0; b < r->B; b++) {
        float *x = r->P + b * r->E;
        if (o->norm > 0) {
            double n2 = 0;
            for (int64_t i = 0; i < r->E; i++) n2 += ((double)x[i] - o->center) * ((double)x[i] - o->center);
            if (n2 > 0) {
                double k = o->norm / sqrt(n2);
                for (int64_t i = 0; i < r->E; i++) x[i] = (float)(o->center + (x[i] - o->center) * k);
            }
        }
        if (o->ppm)
            for (int64_t l = 0; l < r->S; l++) fv_simplex(x + l, r->C, r->S, r->tmp);
        else if (o->clip && !(o->norm > 0)) /* the sphere replaces the range */
            for (int64_t i = 0; i < r->E; i++) x[i] = x[i] < r->lo ? r->lo : x[i] > r->hi ? r->hi : x[i];
    }
}

static int64_t rand_int(sal_rng *g, int64_t n) { return (int64_t)(sal_rng_u64(g) % (uint64_t)n); }

/* Jitter, scale, rotate, jitter, as an inverse map from output to source positions. */
static void draw_transform(run *r, fv_affine *T) {
    const sal_featviz_opts *o = &r->o;
    double d1[2] = {0, 0}, d2[2] = {0, 0}, s = 1, th = 0;
    for (int a = 0; a < r->rank; a++) d1[a] = o->jitter ? (double)(rand_int(&r->rng, 2 * o->jitter + 1) - o->jitter) : 0;
    if (o->nscales) s = o->scales[rand_int(&r->rng, o->nscales)];
    if (o->nangles) th = o->angles[rand_int(&r->rng, o->nangles)] * M_PI / 180;
    for (int a = 0; a < r->rank; a++) d2[a] = o->jitter2 ? (double)(rand_int(&r->rng, 2 * o->jitter2 + 1) - o->jitter2) : 0;
    /* forward: q = R (s (p + d1)) + d2, so p = R^-1 (q - d2) / s - d1 */
    double c = cos(th) / s, sn = sin(th) / s;
    T->A[0][0] = c, T->A[0][1] = sn, T->A[1][0] = -sn, T->A[1][1] = c;
    if (r->rank == 1) T->A[0][0] = 1 / s;
    for (int a = 0; a < 2; a++) T->t[a] = -(T->A[a][0] * d2[0] + T->A[a][1] * d2[1]) - d1[a];
}

/* Gram matrices G_b = A_b A_b^T of the layer's (C, positions) activations; returns the mean cosine
 * similarity over pairs, and with seed adds w * d(-mean cosine) / d activation. */
static sal_status gram_diversity(run *r, double w, float *seed, double *mean_cos) {
    const sal_tensor *a = &r->s->act[r->div_val];
    const int64_t B = r->B;
    if (a->dtype != SAL_F32 || a->ndim < 2 || a->dim[0] != B)
        return sal_fail(SAL_ERR_SHAPE, "diversity: '%s' is not a float activation with the batch first",
                        r->m->val[r->div_val].name);
    const int64_t C = a->dim[1], Q = sal_tensor_numel(a) / (B * C);
    if (C * C * B > (1 << 26) || Q > 1 << 30)
        return sal_fail(SAL_ERR_UNSUPPORTED, "diversity: '%s' has too many channels (%lld) for Gram matrices",
                        r->m->val[r->div_val].name, (long long)C);
    /* allocated once (the layer keeps its shape); after a failure the next call retries the rest */
    if (!r->G) r->G = sal_malloc((size_t)(B * C * C) * sizeof *r->G);
    if (!r->dG) r->dG = sal_malloc((size_t)(C * C) * sizeof *r->dG);
    if (!r->nrm) r->nrm = sal_malloc((size_t)B * sizeof *r->nrm);
    if (!r->cosm) r->cosm = sal_malloc((size_t)(B * B) * sizeof *r->cosm);
    if (!r->G || !r->dG || !r->nrm || !r->cosm) return sal_fail(SAL_ERR_NOMEM, "out of memory for Gram matrices");
    double *nrm = r->nrm, *cosm = r->cosm, total = 0;
    const float *A = sal_f32(a);
    for (int64_t b = 0; b < B; b++)
        sal_sgemm(false, true, (int)C, (int)C, (int)Q, 1.0f, A + b * C * Q, (int)Q, A + b * C * Q, (int)Q, 0.0f,
                  r->G + b * C * C, (int)C);
    for (int64_t b = 0; b < B; b++) {
        double s = 0;
        for (int64_t i = 0; i < C * C; i++) s += (double)r->G[b * C * C + i] * r->G[b * C * C + i];
        nrm[b] = sqrt(s);
    }
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < B; j++) {
            double d = 0;
            if (i != j && nrm[i] > 0 && nrm[j] > 0) {
                for (int64_t k = 0; k < C * C; k++) d += (double)r->G[i * C * C + k] * r->G[j * C * C + k];
                d /= nrm[i] * nrm[j];
            }
            cosm[i * B + j] = d;
            if (i != j) total += d;
        }
    const double pairs = (double)(B * (B - 1));
    *mean_cos = total / pairs;
    if (!seed) return SAL_OK;
    for (int64_t i = 0; i < B; i++) {
        if (!(nrm[i] > 0)) continue; /* a dead layer: no direction to push */
        /* d(-sum_{ordered pairs} cos / pairs) / dG_i = -2/pairs sum_j (G_j / (n_i n_j) - cos_ij G_i / n_i^2) */
        for (int64_t k = 0; k < C * C; k++) r->dG[k] = 0;
        for (int64_t j = 0; j < B; j++) {
            if (j == i || !(nrm[j] > 0)) continue;
            double aj = 1 / (nrm[i] * nrm[j]), ai = cosm[i * B + j] / (nrm[i] * nrm[i]);
            for (int64_t k = 0; k < C * C; k++)
                r->dG[k] += (float)(aj * r->G[j * C * C + k] - ai * r->G[i * C * C + k]);
        }
        /* G = A A^T, dG symmetric: dA = 2 dG A */
        sal_sgemm(false, false, (int)C, (int)Q, (int)C, (float)(-2.0 / pairs * 2.0 * w), r->dG, (int)C,
                  A + i * C * Q, (int)Q, 1.0f, seed + i * C * Q, (int)Q);
    }
    return SAL_OK;
}

/* Forward pass of xt (B images) into the session. */
static sal_status forward(run *r, float *xt) {
    sal_tensor in = {.dtype = SAL_F32, .ndim = r->ndim, .data = xt};
    memcpy(in.dim, r->dim, sizeof in.dim);
    return sal_exec_forward(r->s, &in);
}

/* Objective (and the Gram cosine when there is a layer to read) of the current image, untransformed. */
static sal_status measure(run *r, float *values, double *gram_cos) {
    fv_param_image(&r->par, r->P, r->x);
    SAL_TRY(forward(r, r->x));
    SAL_TRY(fv_eval(r->obj, r->s, r->B, 0, r->vals, NULL));
    for (int64_t b = 0; b < r->B; b++) values[b] = (float)r->vals[b];
    *gram_cos = NAN;
    /* reported only: a layer too wide for Gram matrices leaves it unknown, unless diversity needs it */
    if (r->div_val >= 0 && r->B >= 2) {
        sal_status st = gram_diversity(r, 0, NULL, gram_cos);
        if (st != SAL_OK && r->o.diversity > 0) return st;
    }
    return SAL_OK;
}

/* Adam, ascending. Under a projection (norm sphere, simplex) the second moment is shared by the
 * coordinates that the projection ties together (the image; the letters of one position), so the
 * step keeps the gradient's direction inside the group: with per-coordinate scaling the step tends
 * to sign(g), and projected ascent then stops short of the constrained optimum (for a linear unit
 * on the sphere it settles near sign(w) instead of w / ||w||; on the simplex it splits ties evenly). */
static void adam(run *r, int t) {
    const sal_featviz_opts *o = &r->o;
    const double bc1 = 1 - pow(0.9, t + 1), bc2 = 1 - pow(0.999, t + 1);
    for (int64_t i = 0; i < r->par.np; i++) {
        float g = r->gP[i];
        r->m1[i] = 0.9f * r->m1[i] + 0.1f * g;
        r->m2[i] = 0.999f * r->m2[i] + 0.001f * g * g;
    }
    int64_t groups = r->par.np, size = 1, stride = 1; /* group k: size elements from first(k), stride apart */
    if (o->ppm) groups = r->B * r->S, size = r->C, stride = r->S;
    else if (o->norm > 0) groups = r->B, size = r->E;
    for (int64_t k = 0; k < groups; k++) {
        const int64_t first = o->ppm ? (k / r->S) * r->E + k % r->S : k * size;
        double v = 0;
        for (int64_t j = 0; j < size; j++) v += r->m2[first + j * stride];
        const double den = sqrt(v / (double)size / bc2) + 1e-8;
        for (int64_t j = 0; j < size; j++) {
            const int64_t i = first + j * stride;
            r->P[i] += (float)(o->lr * (r->m1[i] / bc1) / den);
        }
    }
}

/* One ascent step; returns the mean objective and the regularized loss of the batch. */
static sal_status step(run *r, int t, double *objective, double *loss) {
    const sal_featviz_opts *o = &r->o;
    fv_param_image(&r->par, r->P, r->x);
    float *feed = r->x;
    if (r->transforms) {
        for (int64_t b = 0; b < r->B; b++) {
            draw_transform(r, &r->T[b]);
            fv_resample(r->x + b * r->E, r->xt + b * r->E, r->C, r->rank, r->sp, &r->T[b], r->fill, r->replicate);
        }
        feed = r->xt;
    }
    SAL_TRY(forward(r, feed));
    fv_seeds_clear(&r->seeds);
    SAL_TRY(fv_eval(r->obj, r->s, r->B, 0, r->vals, &r->seeds));
    double div = 0, total = 0, mean = 0;
    if (o->diversity > 0) {
        float *seed = fv_seed_for(&r->seeds, r->s, r->div_val);
        if (!seed) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        double mc;
        SAL_TRY(gram_diversity(r, o->diversity, seed, &mc));
        div = -mc;
    }
    SAL_TRY(sal_exec_backward(r->s, r->seeds.n, r->seeds.val, r->seeds.seed, NULL));
    const float *gin = sal_f32(&r->s->grad[r->m->input[0]]);
    if (r->transforms) {
        memset(r->gx, 0, (size_t)(r->B * r->E) * sizeof *r->gx);
        for (int64_t b = 0; b < r->B; b++)
            fv_resample_adjoint(gin + b * r->E, r->gx + b * r->E, r->C, r->rank, r->sp, &r->T[b], r->replicate);
    } else {
        memcpy(r->gx, gin, (size_t)(r->B * r->E) * sizeof *r->gx);
    }
    /* penalties on the untransformed image: ascend objective - penalty */
    const double E = (double)r->E;
    for (int64_t b = 0; b < r->B; b++) {
        const float *x = r->x + b * r->E;
        float *g = r->gx + b * r->E;
        double pen = 0;
        if (o->l1 > 0 || o->l2 > 0)
            for (int64_t i = 0; i < r->E; i++) {
                double d = (double)x[i] - o->center;
                pen += o->l1 * fabs(d) / E + o->l2 * d * d / E;
                g[i] -= (float)((o->l1 * (d > 0 ? 1 : d < 0 ? -1 : 0) + 2 * o->l2 * d) / E);
            }
        if (o->tv > 0) pen += o->tv * fv_tv(x, g, -o->tv / E, r->C, r->rank, r->sp, o->tv_beta) / E;
        if (o->entropy > 0) /* mean over positions of -sum_c x log x; d/dx = -(log x + 1) */
            for (int64_t l = 0; l < r->S; l++)
                for (int64_t c = 0; c < r->C; c++) {
                    double v = x[c * r->S + l] > 1e-12f ? x[c * r->S + l] : 1e-12;
                    pen -= o->entropy * v * log(v) / (double)r->S;
                    g[c * r->S + l] += (float)(o->entropy * (log(v) + 1) / (double)r->S);
                }
        mean += r->vals[b];
        total += r->vals[b] - pen;
    }
    *objective = mean / (double)r->B;
    *loss = total / (double)r->B + o->diversity * div;
    fv_param_grad(&r->par, r->x, r->gx, r->gP);
    if (o->opt == SAL_OPT_SGD) {
        for (int64_t i = 0; i < r->par.np; i++) r->P[i] += o->lr * r->gP[i];
    } else {
        adam(r, t);
    }
    project(r);
    if (o->blur_every > 0 && (t + 1) % o->blur_every == 0) {
        fv_param_image(&r->par, r->P, r->x);
        int64_t H = r->rank == 2 ? r->sp[0] : 1, W = r->rank == 2 ? r->sp[1] : r->sp[0];
        SAL_TRY(sal_gauss_blur(r->x, r->x, r->B * r->C, H, W, o->blur_sigma));
        fv_param_inverse(&r->par, r->x, r->P);
        project(r);
    }
    for (int64_t i = 0; i < r->par.np; i++)
        if (!isfinite(r->P[i]))
            return sal_fail(SAL_ERR_NUMERIC, "visualize: the image diverged at step %d; lower the learning rate", t + 1);
    return SAL_OK;
}

/* ---- JSON ---- */

static void sb_floats(sal_sbuf *b, const float *v, int64_t n) {
    sal_sb_printf(b, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i) sal_sb_printf(b, ", ");
        sal_sb_num(b, v[i]);
    }
    sal_sb_printf(b, "]");
}

static double meanf(const float *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : NAN;
}

static sal_status make_json(const run *r, sal_featviz *f, double loss, double cos0, double cos1) {
    const sal_featviz_opts *o = &r->o;
    sal_sbuf b = {0};
    sal_sb_printf(&b, "{\n  \"objective\": ");
    sal_sb_str(&b, r->obj->text);
    sal_sb_printf(&b, ",\n  \"model\": ");
    sal_sb_str(&b, r->m->path);
    sal_sb_printf(&b, ",\n  \"input\": ");
    sal_sb_str(&b, r->m->val[r->m->input[0]].name);
    sal_sb_printf(&b, ",\n  \"shape\": [");
    for (int d = 0; d < r->ndim; d++) sal_sb_printf(&b, "%s%lld", d ? ", " : "", (long long)r->dim[d]);
    sal_sb_printf(&b, "],\n  \"options\": {\"optimizer\": \"%s\", \"lr\": %.9g, \"steps\": %d, \"seed\": %llu, \"batch\": %lld",
       o->opt == SAL_OPT_ADAM ? "adam" : "gradient", (double)o->lr, o->steps, (unsigned long long)o->seed,
       (long long)r->B);
    sal_sb_printf(&b, ", \"space\": \"%s\", \"decay\": %.9g, \"decorrelated\": %s", o->space == SAL_SPACE_FOURIER ? "fourier" : o->space == SAL_SPACE_SOFTMAX ? "softmax" : "pixel",
       (double)o->decay, r->par.colour ? "true" : "false");
    sal_sb_printf(&b, ", \"range\": [%.9g, %.9g], \"clip\": %s, \"init_sd\": %.9g", (double)r->lo, (double)r->hi,
       o->clip && !(o->norm > 0) ? "true" : "false", (double)o->init_sd);
    sal_sb_printf(&b, ", \"l1\": %.9g, \"l2\": %.9g, \"center\": %.9g, \"tv\": %.9g, \"tv_beta\": %.9g, \"norm\": %.9g",
       (double)o->l1, (double)o->l2, o->center, (double)o->tv, (double)o->tv_beta, (double)o->norm);
    sal_sb_printf(&b, ", \"blur_every\": %d, \"blur_sigma\": %.9g, \"pad\": %d, \"fill\": %.9g, \"jitter\": %d, \"scales\": ",
       o->blur_every, (double)o->blur_sigma, o->pad, (double)r->fill, o->jitter);
    sb_floats(&b, o->scales, o->nscales);
    sal_sb_printf(&b, ", \"angles\": ");
    sb_floats(&b, o->angles, o->nangles);
    sal_sb_printf(&b, ", \"jitter2\": %d, \"diversity\": %.9g, \"diversity_layer\": ", o->jitter2, (double)o->diversity);
    if (r->div_val >= 0) sal_sb_str(&b, r->m->val[r->div_val].name);
    else sal_sb_printf(&b, "null");
    sal_sb_printf(&b, ", \"ppm\": %s, \"entropy\": %.9g}", o->ppm ? "true" : "false", (double)o->entropy);
    sal_sb_printf(&b, ",\n  \"before\": ");
    sb_floats(&b, f->before, r->B);
    sal_sb_printf(&b, ",\n  \"after\": ");
    sb_floats(&b, f->after, r->B);
    sal_sb_printf(&b, ",\n  \"before_mean\": ");
    sal_sb_num(&b, meanf(f->before, r->B));
    sal_sb_printf(&b, ",\n  \"after_mean\": ");
    sal_sb_num(&b, meanf(f->after, r->B));
    sal_sb_printf(&b, ",\n  \"final_loss\": ");
    sal_sb_num(&b, loss);
    sal_sb_printf(&b, ",\n  \"gram_cosine_before\": ");
    sal_sb_num(&b, cos0);
    sal_sb_printf(&b, ",\n  \"gram_cosine_after\": ");
    sal_sb_num(&b, cos1);
    if (f->snap_steps) {
        sal_sb_printf(&b, ",\n  \"snapshot_steps\": [");
        for (int i = 0; i < o->snapshots; i++) sal_sb_printf(&b, "%s%d", i ? ", " : "", f->snap_steps[i]);
        sal_sb_printf(&b, "]");
    }
    sal_sb_printf(&b, "\n}\n");
    if (b.oom) {
        sal_sb_free(&b);
        return sal_fail(SAL_ERR_NOMEM, "out of memory writing JSON");
    }
    f->json = b.s;
    return SAL_OK;
}

/* ---- the driver ---- */

static sal_status setup(run *r) {
    const sal_featviz_opts *o = &r->o;
    SAL_TRY(input_shape(r));
    r->transforms = o->jitter || o->jitter2 || o->nscales || o->nangles;
    r->replicate = o->pad == 0;
    SAL_TRY(check_opts(r));
    SAL_TRY(data_range(r));
    r->div_val = -1;
    if (o->diversity_node) {
        if ((r->div_val = fv_resolve(r->m, o->diversity_node)) < 0)
            return sal_fail(SAL_ERR_ARG, "diversity: no node or value named '%s' in %s", o->diversity_node, r->m->path);
    } else {
        r->div_val = fv_first_layer(r->obj);
    }
    if (o->diversity > 0 && r->div_val < 0)
        return sal_fail(SAL_ERR_ARG, "diversity: the objective reads no layer; name one (diversity_node)");
    float chol[9];
    bool colour = false;
    if (o->space == SAL_SPACE_FOURIER && o->decorrelate && r->C == 3 && o->data && o->data->ndim == r->ndim) {
        SAL_TRY(fv_colour_factor(o->data, chol));
        colour = true;
    }
    SAL_TRY(fv_param_init(&r->par, o->space == SAL_SPACE_FOURIER ? FV_FOURIER : o->space == SAL_SPACE_SOFTMAX ? FV_SOFTMAX : FV_PIXEL,
                          r->B, r->C, r->rank, r->sp,
                          o->decay, colour ? chol : NULL, o->clip != 0, r->lo, r->hi));
    const size_t np = (size_t)r->par.np, nx = (size_t)(r->B * r->E);
    r->P = sal_calloc(np, sizeof *r->P);
    r->gP = sal_calloc(np, sizeof *r->gP);
    r->m1 = sal_calloc(np, sizeof *r->m1);
    r->m2 = sal_calloc(np, sizeof *r->m2);
    r->x = sal_calloc(nx, sizeof *r->x);
    r->xt = sal_calloc(nx, sizeof *r->xt);
    r->gx = sal_calloc(nx, sizeof *r->gx);
    r->tmp = sal_calloc((size_t)(r->S > r->C ? r->S : r->C), sizeof *r->tmp);
    r->vals = sal_calloc((size_t)r->B, sizeof *r->vals);
    r->T = sal_calloc((size_t)r->B, sizeof *r->T);
    if (!r->P || !r->gP || !r->m1 || !r->m2 || !r->x || !r->xt || !r->gx || !r->tmp || !r->vals || !r->T)
        return sal_fail(SAL_ERR_NOMEM, "out of memory for a batch of %lld images", (long long)r->B);
    SAL_TRY(sal_session_new(r->m, &r->s));
    /* the start: the given images or the middle of the range, plus noise, then the projections */
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t i = 0; i < r->E; i++)
            r->x[b * r->E + i] = o->init ? sal_f32(o->init)[(o->init->dim[0] == 1 ? 0 : b) * r->E + i]
                                 : o->ppm || o->space == SAL_SPACE_SOFTMAX ? 1.0f / (float)r->C
                                          : (r->lo + r->hi) / 2;
    fv_param_inverse(&r->par, r->x, r->P);
    sal_rng_seed(&r->rng, o->seed);
    /* noise of init_sd of the range in the image (the sigmoid's slope at the middle is 1/4) */
    const float range = r->hi - r->lo;
    float sd = o->init_sd * (r->par.squash ? 4.0f : range);
    fv_param_noise(&r->par, r->P, sd, &r->rng);
    project(r);
    return SAL_OK;
}

sal_status sal_visualize(const sal_model *m, const sal_objective *obj, const sal_featviz_opts *opts, sal_featviz **out) {
    *out = NULL;
    if (!m || !obj || !opts) return sal_fail(SAL_ERR_ARG, "sal_visualize: NULL argument");
    if (obj->m != m) return sal_fail(SAL_ERR_ARG, "sal_visualize: the objective was parsed for another model");
    if (m->ninput != 1)
        return sal_fail(SAL_ERR_ARG, "visualize needs a model with one input (%s has %d)", m->path, m->ninput);
    run r = {.m = m, .obj = obj, .o = *opts};
    r.B = opts->batch > 0 ? opts->batch : obj->rows ? obj->rows : 1;
    if (obj->rows && r.B != obj->rows)
        return sal_fail(SAL_ERR_ARG, "objective '%s' inverts %lld samples; the batch is %lld", obj->text,
                        (long long)obj->rows, (long long)r.B);
    if (r.B > 4096) return sal_fail(SAL_ERR_ARG, "visualize: a batch of %lld images is too large", (long long)r.B);
    sal_featviz *f = sal_calloc(1, sizeof *f);
    if (!f) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = setup(&r);
    const int S = opts->snapshots >= 2 ? opts->snapshots : 0;
    if (st == SAL_OK) {
        f->before = sal_calloc((size_t)r.B, sizeof *f->before);
        f->after = sal_calloc((size_t)r.B, sizeof *f->after);
        if (!f->before || !f->after) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    if (st == SAL_OK && S) {
        int64_t sd[SAL_MAX_DIMS];
        sd[0] = S;
        for (int d = 0; d < r.ndim && d + 1 < SAL_MAX_DIMS; d++) sd[d + 1] = r.dim[d];
        if (r.ndim + 1 > SAL_MAX_DIMS) st = sal_fail(SAL_ERR_UNSUPPORTED, "snapshots of a rank-%d input", r.ndim);
        else if (!(f->snap_steps = sal_calloc((size_t)S, sizeof *f->snap_steps)))
            st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        else st = sal_tensor_alloc(&f->snaps, SAL_F32, r.ndim + 1, sd);
        for (int k = 0; st == SAL_OK && k < S; k++)
            f->snap_steps[k] = (int)llround((double)k * opts->steps / (S - 1));
    }
    double cos0 = NAN, cos1 = NAN, objective = NAN, loss = NAN;
    if (st == SAL_OK) st = measure(&r, f->before, &cos0);
    for (int t = 0, k = 0; st == SAL_OK && t <= opts->steps; t++) {
        for (; S && k < S && f->snap_steps[k] == t; k++) {
            fv_param_image(&r.par, r.P, r.x);
            memcpy(sal_f32(&f->snaps) + (int64_t)k * r.B * r.E, r.x, (size_t)(r.B * r.E) * sizeof *r.x);
        }
        if (t == opts->steps) break;
        st = step(&r, t, &objective, &loss);
        if (st == SAL_OK && opts->on_step) opts->on_step(opts->user, t + 1, objective, loss);
    }
    if (st == SAL_OK) st = measure(&r, f->after, &cos1);
    if (st == SAL_OK) st = sal_tensor_alloc(&f->images, SAL_F32, r.ndim, r.dim);
    if (st == SAL_OK) memcpy(f->images.data, r.x, (size_t)(r.B * r.E) * sizeof *r.x);
    if (st == SAL_OK) st = make_json(&r, f, loss, cos0, cos1);
    run_free(&r);
    if (st != SAL_OK) {
        sal_featviz_free(f);
        return st;
    }
    *out = f;
    return SAL_OK;
}
