/* Reliability audits. Each audit computes a result (struct sal_audit: metrics, curves, verdicts with
 * their reasons, the maps of the figure sample) and writes nothing; the writers turn a result into
 * files: write.c (JSON, CSV), figure.c (figure grids, curve plots). Shared machinery (result.c):
 * building results, method lists, explaining a slice of samples (patterns estimated in memory),
 * reducing maps to planes, similarities, progress. */
#ifndef SAL_AUDIT_H
#define SAL_AUDIT_H

#include "graph/exec.h"
#include <math.h>

/* AU_NKINDS also stands for an audit this build does not know (read back by the report). */
typedef enum { AU_INVARIANCE, AU_RANDOMIZATION, AU_CLASS_SENSITIVITY, AU_POINTING, AU_FAITHFULNESS, AU_MOTIF, AU_NKINDS } au_kind;
extern const char *const au_kind_name[AU_NKINDS]; /* "invariance", ... as in the JSON */
extern const char *const au_pass_key[AU_NKINDS];  /* the boolean metric of a passed verdict */

/* Similarities of two maps, in the order of randomization's curves. */
enum { AU_SPEAR, AU_SPEAR_ABS, AU_SSIM, AU_HOG_P, AU_HOG_S, AU_NSIM };
extern const char *const au_sim_name[AU_NSIM];
/* Faithfulness curves. */
enum { AU_DEL_MORF, AU_DEL_LERF, AU_INS_MORF, AU_INS_LERF, AU_NCURVE };
extern const char *const au_curve_name[AU_NCURVE];

/* ---- results ---- */
#define AU_MAX_METRICS 24

typedef struct {
    char *label, *method;
    int nparams;
    char **params;       /* as given, "key=value" */
    sal_verdict outcome;
    char *verdict;       /* with its reason */
    int nmetric;
    char mkey[AU_MAX_METRICS][40];
    double mval[AU_MAX_METRICS];
    bool mbool[AU_MAX_METRICS]; /* written as true/false */
    bool patterns;       /* the method ran on patterns the audit estimated */
    bool reference;      /* a reference row, not a method (motif: the oracle and the random map) */
    int npoint;          /* points per curve: randomization L + 1 steps, faithfulness S + 1 */
    double *curve;       /* randomization: [mode: cascading, independent][step][AU_NSIM];
                            faithfulness: [AU_NCURVE][step] (means over the samples); else NULL */
    sal_tensor *maps;    /* a->nmaps maps of one sample each, for the figure (data NULL: none) */
} au_result;

struct sal_audit {
    au_kind kind;
    char *model, *data;
    uint64_t seed;
    double tol;
    int ranks;           /* processes that shared the audit (1: one) */
    int nres;
    au_result *res;
    int nmaps, ninputs;
    sal_tensor *inputs;  /* rows (1, ...) the figure shows beside the maps */
    int64_t fig_sample;  /* -1: the sample asked for (fig_asked) is not among the `samples` */
    int64_t fig_asked, samples;
    struct {
        double max_abs_diff, max_rel_diff, shift_min, shift_max;
        int64_t same_predictions;
        bool own; /* f2 evaluated with its own activations, not f1's beyond the first layer */
    } inv;
    struct {
        int nlayer, mode;
        char **layer;    /* the randomized layers' names, top first: step s randomized layer[s - 1] */
        bool scaled;
        double sigma;
    } rnd;
    struct {
        int nfig;        /* samples shown; maps: max then min class of each */
    } cls;
    struct {
        int64_t trials, images, fk[3], top; /* fk: the figure's classes; top: its top class */
        int nfk;
        double radius, top_labelled;
        sal_point_map reduce;
    } pt;
    struct {
        bool prob, have_occ;
        int64_t steps;
        sal_replace replace;
        double rep;      /* the replacement's value, sigma or sd */
        double del_auc, ins_auc, aopc; /* of the random order */
        double *curve;   /* the random order's mean curves, [AU_NCURVE][steps + 1] (read back from
                            JSON: only the deletion curve) */
        char *occ_err;   /* why the occlusion map could not be made, or NULL */
        int nocc;
        char **occ;      /* its parameters */
        sal_tensor occ_map; /* of the figure sample */
    } fa;
    struct {
        int axis;         /* the bases' axis of the sequences */
        int64_t L;
        uint8_t *planted; /* the figure sample's planted positions (L) */
    } mo;
};

/* A new result of the audit `kind` with nres result slots of nmaps maps each and ninputs inputs. */
sal_status au_audit_new(au_kind kind, const sal_audit_common *c, int nres, int nmaps, int ninputs, sal_audit **out);
/* Fills result r's label, method and parameters. */
sal_status au_result_init(au_result *r, const sal_audit_method *m);
void au_metric(au_result *r, const char *key, double v);
void au_metric_bool(au_result *r, const char *key, bool v);
double au_metric_get(const au_result *r, const char *key); /* NAN when absent */
/* Sets the outcome and the verdict (printf-style). */
void au_verdict(au_result *r, sal_verdict outcome, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* No verdict: the score it would rest on is undefined (a correlation of a constant map, a ranking
 * of maps that rank nothing). The pass key gets null and the verdict reads "undetermined (<why>)". */
void au_undetermined(au_result *r, const char *pass_key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether the n values are all equal (NaN-free): such a map ranks no element above another. */
bool au_constant(const float *v, int64_t n);
/* After a method failed with st: out of memory ends the audit (returns st); anything else marks the
 * result skipped with the message of the failure (after prefix: when not NULL) and returns SAL_OK. */
sal_status au_skip(au_result *r, sal_status st, const char *prefix);
static inline bool au_ran(const au_result *r) { return r->outcome != SAL_VERDICT_SKIPPED; }
/* Results that ran. */
int au_count_ran(const sal_audit *a);

/* ---- methods ---- */
/* The methods to audit: c's, or every method of the table with its defaults. *list is sal_free'd. */
sal_status au_methods(const sal_audit_common *c, sal_audit_method **list, int *n);

/* PatternNet and PatternAttribution need patterns estimated for the very model they explain (they
 * record its hash). When the user names no patterns file, the audits estimate them once per model
 * they explain (f1, the shifted f2, every randomized model) from that model's reference data and
 * pass them to sal_explain in memory. */
typedef struct {
    uint64_t hash; /* the model p belongs to */
    sal_patterns *p;
} au_patcache;
void au_patcache_free(au_patcache *pc);

typedef struct {
    const sal_audit_method *meth;
    au_patcache *pc;          /* NULL: no patterns estimated here */
    const sal_tensor *pdata;  /* data the patterns are estimated from */
    sal_target_mode target;
    const int64_t *classes;   /* SAL_TARGET_INDEX: one per row of x */
    const sal_tensor *data;
    double lo, hi;
    int64_t chunk;
    int prob;
} au_xopts;
/* sal_explain on x with these options; the map is copied into map (shaped as x). *estimated (may be
 * NULL) is set when the method ran on patterns the audit estimated. */
sal_status au_explain(const sal_model *m, const sal_tensor *x, const au_xopts *xo, sal_tensor *map, bool *estimated);

/* ---- tensors ---- */
/* Elements per sample of x (all axes but the first). */
static inline int64_t au_row(const sal_tensor *x) { return sal_row_size(x); }
/* A borrowed view of rows [i0, i0 + n) of x. */
sal_tensor au_rows(const sal_tensor *x, int64_t i0, int64_t n);
/* Copies one sample's values (au_row(x) floats) into t, shaped as x with a batch of 1: the maps
 * and inputs the results keep for their figures. */
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
/* The highest-scoring class of each row of y (N, K) (the first on ties). */
void au_argmax(const sal_tensor *y, int64_t *cls);
/* Explained value per row of outputs y (N,K): the logit of target[i], or its softmax probability. */
void au_scores(const sal_tensor *y, const int64_t *target, bool prob, float *out);

/* Similarities of two maps of one sample (C, H, W), as AU_SPEAR..AU_HOG_S. NAN where undefined.
 * work: scratch of au_sim_work floats. */
int64_t au_sim_work(int64_t C, int64_t H, int64_t W);
void au_similarity(const float *a, const float *b, int64_t C, int64_t H, int64_t W, float *work, double s[AU_NSIM]);
/* Mean of the finite values added so far. */
typedef struct {
    double sum;
    int64_t n;
} au_mean;
static inline void au_mean_add(au_mean *m, double v) {
    if (isfinite(v)) m->sum += v, m->n++;
}
static inline double au_mean_get(const au_mean *m) { return m->n ? m->sum / (double)m->n : NAN; }

/* ---- several processes (share.c, sal_shard) ---- */
/* The items [0, n) of a stage, run in batches of B: this process runs [lo, hi), whole batches, and
 * writes `width` values per item into v (n rows, NAN until computed or shared). One process: all. */
typedef struct {
    const sal_shard *s;  /* NULL: one process */
    int64_t n, B, lo, hi;
    int width;
    double *v;
    int64_t key;         /* the first skip here: its position in a single process's order; -1: none */
} au_share;
sal_status au_share_init(au_share *p, const sal_audit_common *c, int64_t n, int64_t B, int width);
void au_share_free(au_share *p);
/* Notes a skip (after au_skip) at position key: stage * (n + 1) + first item of the batch. */
void au_share_skip(au_share *p, int64_t key);
/* Collective, once per method (or stage): agrees on failures (st: this process's, which ends the
 * audit everywhere), makes the skip a single process meets first every process's (r skipped with
 * its verdict; p->key set), else shares the table's rows and r's first nmaps maps (x: their shape).
 * With one process: returns st. */
sal_status au_share_end(au_share *p, sal_status st, au_result *r, int nmaps, const sal_tensor *x);
/* Collective: st (this process's status so far) agreed, then every process's rows [lo, hi) of buf
 * (n rows of size bytes each; a caller's own table) to every process. One process: returns st. */
sal_status au_share_rows(const au_share *p, sal_status st, void *buf, size_t size);
/* Collective: maps (one sample each, shaped as x) held by whichever process made them, to all;
 * st (this process's status so far) is agreed first. */
sal_status au_share_maps(const au_share *p, sal_status st, sal_tensor *maps, int nmaps, const sal_tensor *x);

/* ---- progress, through the caller's callback ---- */
typedef struct {
    sal_progress_fn fn;
    void *user;
    const char *what;
    int64_t total, done;
} au_progress;
void au_progress_start(au_progress *p, const sal_audit_common *c, const char *what, int64_t total);
/* n more units done (label: what they were). */
void au_progress_step(au_progress *p, int64_t n, const char *label);
/* done = total, once at the end. */
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
