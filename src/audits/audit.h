/* Reliability audits: shared machinery (reports, method lists, explaining a slice of samples,
 * reducing maps to planes, progress) for the audit files of this folder. */
#ifndef SAL_AUDIT_H
#define SAL_AUDIT_H

#include "graph/exec.h"
#include <math.h>

/* ---- reports ---- */
#define AU_MAX_METRICS 24

typedef struct {
    char *label, *method;
    sal_sbuf params; /* a JSON object of the parameters given */
    int nmetric;
    char mkey[AU_MAX_METRICS][40];
    double mval[AU_MAX_METRICS];
    bool mbool[AU_MAX_METRICS]; /* written as true/false */
    char *verdict;
    bool skipped, violation;
    sal_sbuf extra; /* more JSON members, each written as ",\n      \"key\": value" */
} au_result;

struct sal_audit {
    char name[32];
    char *model, *data;
    uint64_t seed;
    double tol;
    sal_sbuf top;   /* more top-level JSON members, each ",\n  \"key\": value" */
    au_result *res;
    int nres;
    sal_sbuf curves; /* CSV of curves; empty: one row per result */
};

/* A new report of the audit `name` with one result slot per method. */
sal_status au_report_new(const char *name, const sal_audit_opts *o, int nres, sal_audit **out);
/* Fills result i's label, method and parameters. */
sal_status au_result_init(au_result *r, const sal_audit_method *m);
void au_metric(au_result *r, const char *key, double v);
void au_metric_bool(au_result *r, const char *key, bool v);
/* Sets the verdict (printf-style); violation marks a failed check. */
void au_verdict(au_result *r, bool violation, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Marks the result skipped with the current error message. */
void au_skip(au_result *r, const char *why);

/* ---- methods ---- */
/* The methods to audit: o's, or every method of the table with its defaults. *list is sal_free'd. */
sal_status au_methods(const sal_audit_opts *o, sal_audit_method **list, int *n);

/* PatternNet and PatternAttribution need patterns estimated for the very model they explain (the
 * file records the model's hash). When the user names no patterns file, the audits estimate them
 * for each model they explain (f1, the shifted f2, every randomized model) from that model's
 * reference data, into a temporary file removed by au_patcache_free. */
typedef struct {
    uint64_t hash; /* the model the file holds patterns for; 0: none yet */
    char dir[512], file[600];
    bool used;     /* patterns were estimated since the flag was last cleared */
} au_patcache;
void au_patcache_free(au_patcache *pc);

typedef struct {
    const sal_audit_method *meth;
    au_patcache *pc;          /* NULL: no patterns estimated here */
    const sal_tensor *pdata;  /* data the patterns are estimated from */
    sal_target_mode target;
    const int64_t *classes; /* SAL_TARGET_INDEX: one per row of x */
    const sal_tensor *data;
    double lo, hi;
    int64_t chunk;
    int prob;
} au_xopts;
/* sal_explain on x with these options; the map is copied into map (shaped as x). */
sal_status au_explain(const sal_model *m, const sal_tensor *x, const au_xopts *xo, sal_tensor *map,
                      int64_t *targets /* OUT or NULL */);

/* ---- tensors ---- */
/* Elements per sample of x (all axes but the first). */
static inline int64_t au_row(const sal_tensor *x) { return sal_row_size(x); }
/* A borrowed view of rows [i0, i0 + n) of x. */
sal_tensor au_rows(const sal_tensor *x, int64_t i0, int64_t n);
/* Copies one sample's values (au_row(x) floats) into t, shaped as x with a batch of 1: the maps
 * the audits keep for their figures. */
sal_status au_keep_row(sal_tensor *t, const sal_tensor *x, const float *row);
/* Copies rows idx[0..n) of x into out. */
sal_status au_gather(const sal_tensor *x, const int64_t *idx, int64_t n, sal_tensor *out);
/* Channels and spatial size of one sample of x (N, ...): (N,C,H,W) -> C,H,W; (N,C,L) -> C,1,L;
 * (N,D) -> 1,1,D; more axes fold into H. */
void au_geom(const sal_tensor *x, int64_t *C, int64_t *H, int64_t *W);
/* Sum over channels (of |v| when abs) of one sample (C, H*W) into plane (H*W). */
void au_plane(const float *v, int64_t C, int64_t HW, bool abs, float *plane);
void au_range(const sal_tensor *t, double *lo, double *hi);
/* Model outputs (logits) of x, (N, K), by forward passes of at most chunk rows. */
sal_status au_outputs(const sal_model *m, const sal_tensor *x, int64_t chunk, sal_tensor *y);
/* Explained value per row of outputs y (N,K): the logit of target[i], or its softmax probability. */
void au_scores(const sal_tensor *y, const int64_t *target, bool prob, float *out);

/* Similarities of two maps of one sample (C, H, W) used by several audits. NAN where undefined. */
typedef struct {
    double spearman, spearman_abs, ssim, hog_pearson, hog_spearman;
} au_sim;
/* work: scratch of at least 4 * C*H*W + 2 * (HOG length) floats (au_sim_work gives the count). */
int64_t au_sim_work(int64_t C, int64_t H, int64_t W);
void au_similarity(const float *a, const float *b, int64_t C, int64_t H, int64_t W, float *work, au_sim *s);
/* Mean of the finite values added so far. */
typedef struct {
    double sum;
    int64_t n;
} au_mean;
static inline void au_mean_add(au_mean *m, double v) {
    if (isfinite(v)) m->sum += v, m->n++;
}
static inline double au_mean_get(const au_mean *m) { return m->n ? m->sum / (double)m->n : NAN; }

/* ---- progress on stderr (only when it is a terminal and asked for) ---- */
typedef struct {
    bool on;
    int64_t total, done;
    const char *what;
    double last;
} au_progress;
void au_progress_start(au_progress *p, bool want, const char *what, int64_t total);
void au_progress_step(au_progress *p, int64_t n, const char *label);
void au_progress_end(au_progress *p);

/* ---- figures ---- */
/* A line chart: npanel panels side by side, each with nseries lines of npoint values
 * (v[(panel * nseries + s) * npoint + k], NAN: no point), x tick labels per panel, y from ylo to yhi. */
typedef struct {
    int npanel, nseries, npoint;
    const char *const *panel_titles;
    const char *const *series;     /* legend */
    const char *const *xticks;     /* npanel * npoint labels (NULL entries: none) */
    const double *v;
    double ylo, yhi;
} au_plot_spec;
sal_status au_plot(const char *path, const au_plot_spec *p);

#endif
