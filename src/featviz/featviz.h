/* Feature visualization internals: objectives read from a session's activations, the image
 * parameterizations (pixel, decorrelated Fourier), and the differentiable transforms that give
 * transformation robustness. Everything here is a linear map or a pointwise one with an exact
 * adjoint, so the gradient at the model input can be carried back to the parameters. */
#ifndef SAL_FEATVIZ_H
#define SAL_FEATVIZ_H

#include "graph/exec.h"

#define FV_MAX_TERMS 32

typedef enum { FV_UNIT, FV_CHANNEL, FV_LAYER, FV_LOGIT, FV_PROB, FV_DIRECTION, FV_MATCH } fv_kind;

typedef struct {
    fv_kind kind;
    double w;                  /* weight in the sum */
    int val;                   /* value index of the activation it reads */
    int nidx;                  /* unit: indices after the batch; channel, logit, prob: idx[0] */
    int64_t idx[SAL_MAX_DIMS];
    sal_tensor vec;            /* direction: the vector; match: the target activations (N, ...) */
    char text[192];            /* the term as written, for messages */
} fv_term;

struct sal_objective {
    const sal_model *m;
    int n;
    fv_term t[FV_MAX_TERMS];
    int64_t rows;              /* match terms fix the batch: rows of their targets; 0: any */
    char *text;                /* normalized spec: "0.5*channel:conv2:3 + 0.5*channel:conv2:7" */
};

/* Gradient seeds of one backward pass: one tensor per distinct value (the walker wants one). */
typedef struct {
    int n;
    int val[FV_MAX_TERMS + 1];
    sal_tensor seed[FV_MAX_TERMS + 1];
} fv_seeds;

/* The zeroed seed of value v shaped as its activation, added on first use. NULL on failure. */
float *fv_seed_for(fv_seeds *sd, const sal_session *s, int v);
void fv_seeds_clear(fv_seeds *sd); /* forget the values, keep the buffers */
void fv_seeds_free(fv_seeds *sd);

/* After a forward pass of B samples that are rows row0.. of the batch (match targets are per row):
 * value[b] = the objective of sample b. With seeds, adds d(sum_b value[b]) / d activation. */
sal_status fv_eval(const sal_objective *o, const sal_session *s, int64_t B, int64_t row0, double *value,
                   fv_seeds *seeds);
/* Value index of the first term that reads a layer (not logit/prob), or -1. */
int fv_first_layer(const sal_objective *o);
/* Resolves NODE: a node name (its first output) or a value name; -1 if neither. */
int fv_resolve(const sal_model *m, const char *name);

/* ---- parameterizations (param.c) ---- */

/* FV_SOFTMAX: sequences (N, C, L): x[c, l] = softmax over c of P[c, l], a position probability
 * matrix at every step. */
typedef enum { FV_PIXEL, FV_FOURIER, FV_SOFTMAX } fv_space;

typedef struct fv_param {
    fv_space space;
    int64_t N, C, S;           /* images, channels, spatial elements per channel */
    int rank;                  /* spatial dimensions: 0 (a vector input), 1 or 2 */
    int64_t sp[2];
    int64_t F;                 /* complex coefficients per channel (Fourier) */
    int64_t np;                /* floats in the parameter vector */
    bool squash;               /* Fourier: x = lo + (hi - lo) sigmoid(z), which keeps x in range */
    float lo, hi;
    float L[9], Linv[9];       /* colour mixing (C = 3): lower-triangular, and its inverse */
    bool colour;
    float *scale;              /* (F) amplitude of each frequency */
    float *rbuf;               /* (S) real plane */
    float *cbuf;               /* (2F) complex plane, interleaved */
    float *tmp;                /* (C S) spatial planes of one image */
    void *r2c, *c2r;           /* FFTW plans */
} fv_param;

/* Sets up a parameterization of N images (C, sp...). Fourier: decay is the exponent of the 1/f
 * amplitude scale; chol (C = 3, may be NULL) is a lower-triangular colour factor. */
sal_status fv_param_init(fv_param *p, fv_space space, int64_t N, int64_t C, int rank, const int64_t *sp,
                         double decay, const float *chol, bool squash, float lo, float hi);
void fv_param_free(fv_param *p);
/* x (N,C,sp) = T(P). */
void fv_param_image(fv_param *p, const float *P, float *x);
/* gP = J^T gx at the image x = T(P) (the sigmoid's slope is read from x). gx is clobbered. */
void fv_param_grad(fv_param *p, const float *x, float *gx, float *gP);
/* P = T^-1(x); x outside the open range is pulled inside when squashing. */
void fv_param_inverse(fv_param *p, const float *x, float *P);
/* Adds sd * white noise, drawn in image space and moved into parameter space through the unitary
 * FFT (Fourier: a Hermitian spectrum, so the image stays real). */
void fv_param_noise(fv_param *p, float *P, float sd, sal_rng *r);
/* Lower-triangular Cholesky factor of the colour covariance of data (M,3,...), scaled so that no
 * row has a norm above 1. */
sal_status fv_colour_factor(const sal_tensor *data, float chol[9]);

/* ---- transforms (transform.c) ---- */

/* The inverse map of one random transform: output position q (relative to the centre) reads the
 * source at A q + t (relative to the centre). */
typedef struct {
    double A[2][2];
    double t[2];
} fv_affine;

/* y (C,sp) = x resampled through T (bilinear; linear in 1-D). Samples outside read fill, or the
 * nearest edge pixel when replicate. */
void fv_resample(const float *x, float *y, int64_t C, int rank, const int64_t *sp, const fv_affine *T,
                 float fill, bool replicate);
/* gx += the adjoint of fv_resample applied to gy. */
void fv_resample_adjoint(const float *gy, float *gx, int64_t C, int rank, const int64_t *sp, const fv_affine *T,
                         bool replicate);
/* Euclidean projection of v (n) onto the probability simplex. tmp: n floats. */
void fv_simplex(float *v, int64_t n, int64_t stride, float *tmp);
/* Total variation sum over neighbours of (dx^2 + dy^2 + eps)^(beta/2) of one image (C,sp), its
 * gradient times w added into g. Returns the sum. */
double fv_tv(const float *x, float *g, double w, int64_t C, int rank, const int64_t *sp, double beta);

#endif
