/* Image parameterizations. Pixel space is the identity. The Fourier space (Olah et al. 2017,
 * "Preconditioning") holds each channel's half spectrum, scaled per frequency by 1/f^decay so that
 * white parameters give an image with a natural 1/f spectrum, then mixes colours through a Cholesky
 * factor of the data's colour covariance, and optionally squashes into the data range with a sigmoid.
 *
 *   x = squash(L * irfft(scale . P) / sqrt(S))
 *
 * The FFT is unitary up to the 1/sqrt(S) factors, so gradient ascent on P is gradient ascent on the
 * image under the metric F^H diag(scale^2) F: high frequencies move slowly. */
#include "featviz.h"
#include <fftw3.h>
#include <math.h>
#include <pthread.h>

/* The FFTW planner is not thread-safe; executing plans is. */
static pthread_mutex_t g_plan_lock = PTHREAD_MUTEX_INITIALIZER;

void fv_param_free(fv_param *p) {
    pthread_mutex_lock(&g_plan_lock);
    if (p->r2c) fftwf_destroy_plan(p->r2c);
    if (p->c2r) fftwf_destroy_plan(p->c2r);
    pthread_mutex_unlock(&g_plan_lock);
    sal_free(p->scale);
    sal_free(p->rbuf);
    sal_free(p->cbuf);
    sal_free(p->tmp);
    memset(p, 0, sizeof *p);
}

/* Inverse of a lower-triangular 3x3 matrix with a positive diagonal. */
static void tri_inverse(const float L[9], float I[9]) {
    memset(I, 0, 9 * sizeof *I);
    for (int j = 0; j < 3; j++) {
        I[j * 3 + j] = 1.0f / L[j * 3 + j];
        for (int i = j + 1; i < 3; i++) {
            double s = 0;
            for (int k = j; k < i; k++) s += (double)L[i * 3 + k] * I[k * 3 + j];
            I[i * 3 + j] = (float)(-s / L[i * 3 + i]);
        }
    }
}

sal_status fv_param_init(fv_param *p, fv_space space, int64_t N, int64_t C, int rank, const int64_t *sp,
                         double decay, const float *chol, bool squash, float lo, float hi) {
    memset(p, 0, sizeof *p);
    p->space = space;
    p->N = N;
    p->C = C;
    p->rank = rank;
    p->S = 1;
    for (int d = 0; d < rank; d++) p->S *= (p->sp[d] = sp[d]);
    p->lo = lo;
    p->hi = hi;
    if (space == FV_PIXEL || space == FV_SOFTMAX) {
        p->np = N * C * p->S;
        return SAL_OK;
    }
    if (rank < 1 || rank > 2)
        return sal_fail(SAL_ERR_UNSUPPORTED, "the Fourier parameterization needs inputs (N,C,L) or (N,C,H,W)");
    p->squash = squash;
    const int64_t last = sp[rank - 1], half = last / 2 + 1, rows = rank == 2 ? sp[0] : 1;
    p->F = rows * half;
    p->np = N * C * 2 * p->F;
    p->colour = chol && C == 3;
    if (p->colour) {
        memcpy(p->L, chol, sizeof p->L);
        tri_inverse(p->L, p->Linv);
    }
    p->scale = sal_malloc((size_t)p->F * sizeof *p->scale);
    p->rbuf = sal_malloc((size_t)p->S * sizeof *p->rbuf);
    p->cbuf = sal_malloc((size_t)p->F * 2 * sizeof *p->cbuf);
    p->tmp = sal_malloc((size_t)(C * p->S) * sizeof *p->tmp);
    if (!p->scale || !p->rbuf || !p->cbuf || !p->tmp) {
        fv_param_free(p);
        return sal_fail(SAL_ERR_NOMEM, "out of memory for the Fourier parameterization");
    }
    /* amplitude 1/max(f, 1/n)^decay with f in cycles per pixel, normalized to unit mean energy over the
     * full spectrum (interior columns of the half spectrum stand for two coefficients) */
    const double fmin = 1.0 / (double)(rank == 2 && sp[0] > last ? sp[0] : last);
    double energy = 0;
    for (int64_t ky = 0; ky < rows; ky++)
        for (int64_t kx = 0; kx < half; kx++) {
            double fy = rank == 2 ? (double)(ky < rows - ky ? ky : rows - ky) / (double)rows : 0;
            double fx = (double)kx / (double)last, f = sqrt(fy * fy + fx * fx);
            double a = pow(f > fmin ? f : fmin, -decay);
            p->scale[ky * half + kx] = (float)a;
            energy += (kx == 0 || (last % 2 == 0 && kx == last / 2) ? 1 : 2) * a * a;
        }
    const float norm = (float)(1.0 / sqrt(energy / (double)p->S));
    for (int64_t f = 0; f < p->F; f++) p->scale[f] *= norm;
    int n[2] = {(int)sp[0], rank == 2 ? (int)sp[1] : 0};
    pthread_mutex_lock(&g_plan_lock);
    p->r2c = fftwf_plan_dft_r2c(rank, n, p->rbuf, (fftwf_complex *)p->cbuf, FFTW_ESTIMATE);
    p->c2r = fftwf_plan_dft_c2r(rank, n, (fftwf_complex *)p->cbuf, p->rbuf, FFTW_ESTIMATE);
    pthread_mutex_unlock(&g_plan_lock);
    if (!p->r2c || !p->c2r) {
        fv_param_free(p);
        return sal_fail(SAL_ERR_INTERNAL, "FFTW could not plan a transform of this size");
    }
    return SAL_OK;
}

static float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

/* y_c = sum_k M[c][k] x_k over C channels of S elements (M is 3x3 when used). */
static void mix(const float M[9], bool transpose, const float *x, float *y, int64_t S) {
    float A[9];
    for (int i = 0; i < 9; i++) A[i] = transpose ? M[(i % 3) * 3 + i / 3] : M[i];
    for (int64_t i = 0; i < S; i++) {
        float a = x[i], b = x[S + i], c = x[2 * S + i];
        for (int r = 0; r < 3; r++) y[r * S + i] = A[3 * r] * a + A[3 * r + 1] * b + A[3 * r + 2] * c;
    }
}

/* Softmax over the C channels (stride S) of every position of every sample. */
static void softmax_positions(const fv_param *p, const float *P, float *x) {
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t l = 0; l < p->S; l++) {
            const float *z = P + n * p->C * p->S + l;
            float *y = x + n * p->C * p->S + l, mx = z[0];
            double s = 0;
            for (int64_t c = 1; c < p->C; c++) mx = fmaxf(mx, z[c * p->S]);
            for (int64_t c = 0; c < p->C; c++) s += exp((double)z[c * p->S] - mx);
            for (int64_t c = 0; c < p->C; c++) y[c * p->S] = (float)(exp((double)z[c * p->S] - mx) / s);
        }
}

void fv_param_image(fv_param *p, const float *P, float *x) {
    const int64_t CS = p->C * p->S;
    if (p->space == FV_SOFTMAX) {
        softmax_positions(p, P, x);
        return;
    }
    if (p->space == FV_PIXEL) {
        memcpy(x, P, (size_t)(p->N * CS) * sizeof *x);
        return;
    }
    const float inv = 1.0f / sqrtf((float)p->S), range = p->hi - p->lo;
    for (int64_t n = 0; n < p->N; n++) {
        float *z = x + n * CS, *planes = p->colour ? p->tmp : z;
        for (int64_t k = 0; k < p->C; k++) {
            const float *Pk = P + (n * p->C + k) * 2 * p->F;
            for (int64_t f = 0; f < p->F; f++) {
                p->cbuf[2 * f] = p->scale[f] * Pk[2 * f];
                p->cbuf[2 * f + 1] = p->scale[f] * Pk[2 * f + 1];
            }
            fftwf_execute(p->c2r);
            for (int64_t i = 0; i < p->S; i++) planes[k * p->S + i] = p->rbuf[i] * inv;
        }
        if (p->colour) mix(p->L, false, p->tmp, z, p->S);
        if (p->squash)
            for (int64_t i = 0; i < CS; i++) z[i] = p->lo + range * sigmoid(z[i]);
    }
}

void fv_param_grad(fv_param *p, const float *x, float *gx, float *gP) {
    const int64_t CS = p->C * p->S;
    if (p->space == FV_SOFTMAX) { /* the softmax's Jacobian: gP_c = x_c (g_c - sum_k x_k g_k) */
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t l = 0; l < p->S; l++) {
                int64_t o = n * CS + l;
                double dot = 0;
                for (int64_t c = 0; c < p->C; c++) dot += (double)x[o + c * p->S] * gx[o + c * p->S];
                for (int64_t c = 0; c < p->C; c++) gP[o + c * p->S] = (float)(x[o + c * p->S] * (gx[o + c * p->S] - dot));
            }
        return;
    }
    if (p->space == FV_PIXEL) {
        memcpy(gP, gx, (size_t)(p->N * CS) * sizeof *gP);
        return;
    }
    const float inv = 1.0f / sqrtf((float)p->S), range = p->hi - p->lo;
    for (int64_t n = 0; n < p->N; n++) {
        float *g = gx + n * CS;
        if (p->squash) /* dx/dz = range * s (1 - s) = (x - lo)(hi - x) / range */
            for (int64_t i = 0; i < CS; i++) g[i] *= (x[n * CS + i] - p->lo) * (p->hi - x[n * CS + i]) / range;
        const float *planes = g;
        if (p->colour) {
            mix(p->L, true, g, p->tmp, p->S);
            planes = p->tmp;
        }
        for (int64_t k = 0; k < p->C; k++) {
            memcpy(p->rbuf, planes + k * p->S, (size_t)p->S * sizeof *p->rbuf);
            fftwf_execute(p->r2c);
            float *Gk = gP + (n * p->C + k) * 2 * p->F;
            for (int64_t f = 0; f < p->F; f++) {
                Gk[2 * f] = p->scale[f] * inv * p->cbuf[2 * f];
                Gk[2 * f + 1] = p->scale[f] * inv * p->cbuf[2 * f + 1];
            }
        }
    }
}

void fv_param_inverse(fv_param *p, const float *x, float *P) {
    const int64_t CS = p->C * p->S;
    if (p->space == FV_SOFTMAX) { /* log-probabilities: the softmax of log x is x when x sums to 1 */
        for (int64_t i = 0; i < p->N * CS; i++) P[i] = logf(x[i] > 1e-6f ? x[i] : 1e-6f);
        return;
    }
    if (p->space == FV_PIXEL) {
        memcpy(P, x, (size_t)(p->N * CS) * sizeof *P);
        return;
    }
    const float inv = 1.0f / sqrtf((float)p->S), range = p->hi - p->lo, eps = 1e-6f;
    for (int64_t n = 0; n < p->N; n++) {
        float *z = p->tmp; /* C planes */
        for (int64_t i = 0; i < CS; i++) {
            float v = x[n * CS + i];
            if (p->squash) {
                float u = (v - p->lo) / range;
                u = u < eps ? eps : u > 1 - eps ? 1 - eps : u;
                v = logf(u / (1 - u));
            }
            z[i] = v;
        }
        for (int64_t k = 0; k < p->C; k++) {
            if (p->colour) /* one channel of L^-1 z */
                for (int64_t i = 0; i < p->S; i++)
                    p->rbuf[i] = p->Linv[k * 3] * z[i] + p->Linv[k * 3 + 1] * z[p->S + i] + p->Linv[k * 3 + 2] * z[2 * p->S + i];
            else
                memcpy(p->rbuf, z + k * p->S, (size_t)p->S * sizeof *p->rbuf);
            fftwf_execute(p->r2c);
            float *Pk = P + (n * p->C + k) * 2 * p->F;
            for (int64_t f = 0; f < p->F; f++) {
                Pk[2 * f] = p->cbuf[2 * f] * inv / p->scale[f];
                Pk[2 * f + 1] = p->cbuf[2 * f + 1] * inv / p->scale[f];
            }
        }
    }
}

void fv_param_noise(fv_param *p, float *P, float sd, sal_rng *r) {
    if (sd == 0) return;
    if (p->space == FV_PIXEL || p->space == FV_SOFTMAX) {
        for (int64_t i = 0; i < p->np; i++) P[i] += sd * (float)sal_rng_normal(r);
        return;
    }
    const float inv = 1.0f / sqrtf((float)p->S);
    for (int64_t plane = 0; plane < p->N * p->C; plane++) {
        for (int64_t i = 0; i < p->S; i++) p->rbuf[i] = (float)sal_rng_normal(r);
        fftwf_execute(p->r2c);
        for (int64_t f = 0; f < 2 * p->F; f++) P[plane * 2 * p->F + f] += sd * inv * p->cbuf[f];
    }
}

sal_status fv_colour_factor(const sal_tensor *data, float chol[9]) {
    if (data->dtype != SAL_F32 || data->ndim < 3 || data->dim[1] != 3)
        return sal_fail(SAL_ERR_SHAPE, "colour statistics need data (M,3,...)");
    const int64_t M = data->dim[0], S = sal_tensor_numel(data) / (M ? M * 3 : 1), total = M * S;
    if (total < 2) return sal_fail(SAL_ERR_ARG, "colour statistics need more than one pixel of data");
    /* at most about a million pixels, evenly strided */
    const int64_t step = total > (1 << 20) ? total / (1 << 20) : 1;
    double mean[3] = {0}, cov[9] = {0};
    int64_t cnt = 0;
    const float *x = sal_f32(data);
    for (int64_t q = 0; q < total; q += step, cnt++) {
        const float *px = x + (q / S) * 3 * S + q % S;
        for (int c = 0; c < 3; c++) mean[c] += px[c * S];
    }
    for (int c = 0; c < 3; c++) mean[c] /= (double)cnt;
    for (int64_t q = 0; q < total; q += step) {
        const float *px = x + (q / S) * 3 * S + q % S;
        double d[3] = {px[0] - mean[0], px[S] - mean[1], px[2 * S] - mean[2]};
        for (int i = 0; i < 9; i++) cov[i] += d[i / 3] * d[i % 3];
    }
    double tr = 0;
    for (int i = 0; i < 9; i++) cov[i] /= (double)(cnt - 1);
    for (int c = 0; c < 3; c++) tr += cov[c * 4];
    if (!(tr > 0) || !isfinite(tr)) return sal_fail(SAL_ERR_NUMERIC, "colour statistics: the data has no colour variance");
    for (int c = 0; c < 3; c++) cov[c * 4] += 1e-6 * tr; /* a constant channel stays factorable */
    double L[9] = {0}, rowmax = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j <= i; j++) {
            double s = cov[i * 3 + j];
            for (int k = 0; k < j; k++) s -= L[i * 3 + k] * L[j * 3 + k];
            if (i == j) {
                if (!(s > 0)) return sal_fail(SAL_ERR_NUMERIC, "colour statistics: the covariance is not positive definite");
                L[i * 3 + i] = sqrt(s);
            } else {
                L[i * 3 + j] = s / L[j * 3 + j];
            }
        }
    for (int i = 0; i < 3; i++) /* row i's norm is channel i's standard deviation */
        rowmax = fmax(rowmax, sqrt(L[i * 3] * L[i * 3] + L[i * 3 + 1] * L[i * 3 + 1] + L[i * 3 + 2] * L[i * 3 + 2]));
    for (int i = 0; i < 9; i++) chol[i] = (float)(L[i] / rowmax);
    return SAL_OK;
}
