/* Differentiable image operations of feature visualization: resampling through a random affine
 * transform (with its exact adjoint, so the gradient flows back through jitter, scale and rotation),
 * Gaussian blur, projection onto the probability simplex, and total variation. */
#include "featviz.h"
#include <math.h>

/* Source taps of one output position: flat indices (-1: outside, reads the fill) and weights. */
typedef struct {
    int64_t i[4];
    float w[4];
    int n;
} taps;

static int64_t clampi(int64_t v, int64_t n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

static void find_taps(const fv_affine *T, int rank, const int64_t *sp, int64_t o, bool rep, taps *t) {
    if (rank == 1) {
        const double c = (double)(sp[0] - 1) / 2, q = (double)o - c, s = T->A[0][0] * q + T->t[0] + c;
        const double f0 = floor(s), f = s - f0;
        const int64_t i0 = (int64_t)f0;
        t->n = 2;
        for (int k = 0; k < 2; k++) {
            int64_t i = i0 + k;
            t->w[k] = (float)(k ? f : 1 - f);
            t->i[k] = rep ? clampi(i, sp[0]) : i >= 0 && i < sp[0] ? i : -1;
        }
        return;
    }
    const int64_t H = sp[0], W = sp[1];
    const double cy = (double)(H - 1) / 2, cx = (double)(W - 1) / 2;
    const double qy = (double)(o / W) - cy, qx = (double)(o % W) - cx;
    const double sy = T->A[0][0] * qy + T->A[0][1] * qx + T->t[0] + cy;
    const double sx = T->A[1][0] * qy + T->A[1][1] * qx + T->t[1] + cx;
    const double y0 = floor(sy), x0 = floor(sx), fy = sy - y0, fx = sx - x0;
    t->n = 4;
    for (int k = 0; k < 4; k++) {
        int64_t y = (int64_t)y0 + k / 2, x = (int64_t)x0 + k % 2;
        t->w[k] = (float)((k / 2 ? fy : 1 - fy) * (k % 2 ? fx : 1 - fx));
        if (rep) t->i[k] = clampi(y, H) * W + clampi(x, W);
        else t->i[k] = y >= 0 && y < H && x >= 0 && x < W ? y * W + x : -1;
    }
}

void fv_resample(const float *x, float *y, int64_t C, int rank, const int64_t *sp, const fv_affine *T, float fill,
                 bool replicate) {
    const int64_t S = rank == 2 ? sp[0] * sp[1] : sp[0];
    taps t;
    for (int64_t o = 0; o < S; o++) {
        find_taps(T, rank, sp, o, replicate, &t);
        for (int64_t c = 0; c < C; c++) {
            const float *xc = x + c * S;
            float v = 0;
            for (int k = 0; k < t.n; k++) v += t.w[k] * (t.i[k] >= 0 ? xc[t.i[k]] : fill);
            y[c * S + o] = v;
        }
    }
}

void fv_resample_adjoint(const float *gy, float *gx, int64_t C, int rank, const int64_t *sp, const fv_affine *T,
                         bool replicate) {
    const int64_t S = rank == 2 ? sp[0] * sp[1] : sp[0];
    taps t;
    for (int64_t o = 0; o < S; o++) {
        find_taps(T, rank, sp, o, replicate, &t);
        for (int64_t c = 0; c < C; c++)
            for (int k = 0; k < t.n; k++)
                if (t.i[k] >= 0) gx[c * S + t.i[k]] += t.w[k] * gy[c * S + o];
    }
}

static int desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Duchi et al. 2008: w = max(v - theta, 0) with theta chosen so that sum(w) = 1. */
void fv_simplex(float *v, int64_t n, int64_t stride, float *tmp) {
    for (int64_t i = 0; i < n; i++) tmp[i] = v[i * stride];
    qsort(tmp, (size_t)n, sizeof *tmp, desc);
    double cum = 0, theta = 0;
    for (int64_t j = 0; j < n; j++) {
        cum += tmp[j];
        double t = (cum - 1) / (double)(j + 1);
        if (tmp[j] - t > 0) theta = t;
    }
    for (int64_t i = 0; i < n; i++) {
        double w = v[i * stride] - theta;
        v[i * stride] = w > 0 ? (float)w : 0.0f;
    }
}

double fv_tv(const float *x, float *g, double w, int64_t C, int rank, const int64_t *sp, double beta) {
    if (rank < 1) return 0;
    const double eps = beta >= 2 ? 0 : 1e-6;
    const int64_t H = rank == 2 ? sp[0] : 1, W = sp[rank - 1], S = H * W;
    double total = 0;
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * S;
        float *gc = g ? g + c * S : NULL;
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                const int64_t o = i * W + j;
                double dx = j + 1 < W ? (double)xc[o + 1] - xc[o] : 0, dy = i + 1 < H ? (double)xc[o + W] - xc[o] : 0;
                double u = dx * dx + dy * dy + eps;
                if (u == 0) continue;
                total += pow(u, beta / 2);
                if (!gc) continue;
                double k = w * beta * pow(u, beta / 2 - 1); /* d u^(beta/2) = beta/2 u^(beta/2-1) 2 d */
                gc[o] -= (float)(k * (dx + dy));
                if (j + 1 < W) gc[o + 1] += (float)(k * dx);
                if (i + 1 < H) gc[o + W] += (float)(k * dy);
            }
    }
    return total;
}
