/* What the black-box methods (LIME, KernelSHAP, Sobol) switch on and off: segments, a label per
 * input element, and the per-sample driver that runs a sample's perturbed copies through the
 * batch driver. */
#ifndef SAL_SEGMENTS_H
#define SAL_SEGMENTS_H

#include "method.h"

/* One sample as P planes of H x W: the last two axes of (N, C..., H, W), the last axis of (N, C, L)
 * (H = 1), or (N, D) as one 1 x D plane. Segments made from the plane (pixels, patches, a grid,
 * superpixels) cover every plane alike. */
typedef struct {
    int64_t P, H, W;
} sal_planes;
sal_planes sal_planes_of(const sal_tensor *x);

typedef struct {
    int64_t n, row;  /* samples, elements per sample */
    int32_t *label;  /* (n, row): the segment of every element, 0 .. nseg[i] - 1 */
    int64_t *nseg;   /* (n) */
} sal_segments;

/* The segments of every sample of c->x from the parameters `segments` (auto, slic:K, patch:K,
 * patch:HxW, grid:G, grid:GHxGW, pixel, position, element, axis:K, or FILE.npy) and `compactness`
 * (SLIC). auto: slic:50 for (N, C, H, W) inputs, pixel (one segment per position, all channels
 * together) for (N, C, L), element for (N, D). */
sal_status sal_segments_make(const sal_xctx *c, sal_segments *s);
void sal_segments_free(sal_segments *s);
/* The mean number of segments per sample (reported as the metric "segments"). */
double sal_segments_mean(const sal_segments *s);

/* SLIC superpixels (Achanta et al. 2012) of one sample: P planes of H x W, about k segments,
 * colour distances in units where `range` spans 100 (as L* does in CIELAB) against spatial
 * distances weighted by compactness / S. Labels are 4-connected and numbered 0 .. *nseg - 1 in
 * raster order of their first element; label holds H * W entries. */
sal_status sal_slic(const float *x, int64_t P, int64_t H, int64_t W, int64_t k, double compactness, double range,
                    int32_t *label, int64_t *nseg);

/* ---- one sample's perturbed copies ---- */

/* Row k of a sample's run: element e gets base[e] + a[label[e]] * (x[e] - base[e]), with the
 * coefficients a (nseg) that coef() gives for k (1: the input, 0: the baseline). */
typedef struct sal_bb_job {
    const float *x, *base; /* (row) */
    const int32_t *label;  /* (row) */
    int64_t row, nseg, rows;
    void (*coef)(const struct sal_bb_job *j, int64_t k, float *a);
    float *a;              /* (nseg) scratch */
    float *value;          /* OUT (rows): the explained output of every row */
    uint64_t seed, id;     /* the method's seed and the sample's stream id (sampling.h) */
    void *user;
} sal_bb_job;

/* Runs rows k = 0 .. rows - 1 of sample i alone through the network, forward only, in chunks of
 * c->chunk rows (sal_run_batched with per_sample = rows, as if sample i were the only one, its
 * stream id kept): make builds row k, take gets its explained output. */
sal_status sal_bb_run(sal_xctx *c, int64_t i, int64_t rows,
                      sal_status (*make)(void *u, int64_t i, int64_t k, float *row, sal_rng *r),
                      void (*take)(void *u, int64_t i, int64_t k, const float *row, const float *g, float value,
                                   sal_rng *r),
                      void *u);
/* The rows of a sal_bb_job: sal_bb_run with the segment perturbation, outputs into j->value. */
sal_status sal_bb_run_job(sal_xctx *c, int64_t i, sal_bb_job *j);

/* The first n points of the unscrambled Sobol' sequence in dims dimensions (at most 1024; Joe &
 * Kuo's direction numbers, Gray-code order, point 0 the origin) into out (n, dims) (sobol.c). */
sal_status sal_sobol_points(int64_t dims, int64_t n, double *out);

/* out (row) = v[label[e]]: a segment's value on each of its elements. */
void sal_segments_spread(const int32_t *label, int64_t row, const double *v, float *out);

#endif
