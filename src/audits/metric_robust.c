/* Robustness metrics: how much the map moves when the input moves a little. Each sample's noisy
 * copies are explained together (one sal_explain call of `samples` rows, chunked inside) and, for
 * the relative stabilities, run forward beside the sample itself. Conventions: docs/metrics.md. */
#include "metric.h"

enum { MAXSENS, AVGSENS, LIPSCHITZ, CONTINUITY, RIS, ROS, RRS };

/* The representation of relative representation stability: the `layer` parameter, else the input
 * of the last linear node (Gemm, MatMul, Conv): what the classifier's last layer reads. */
static const char *rep_name(const mt_ctx *c) {
    if (c->ps[3] && *c->ps[3]) return c->ps[3];
    const sal_model *m = c->m;
    for (int i = m->nnode - 1; i >= 0; i--)
        if (sal_node_has(&m->node[i], SAL_TR_LINEAR) && m->node[i].nin > 0 && m->node[i].in[0] >= 0)
            return m->val[m->node[i].in[0]].name;
    return NULL;
}

static double norm2(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
    return sqrt(s);
}

/* ||(a - b) / a||_2 with |a| below eps replaced by eps (Agarwal et al.'s relative change). */
static double rel2(const float *a, const float *b, int64_t n, double eps) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) {
        double d = fabs((double)a[k]) >= eps ? a[k] : eps, r = ((double)a[k] - b[k]) / d;
        s += r * r;
    }
    return sqrt(s);
}

static sal_status run_kind(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, int kind) {
    int64_t R = mt_count(c->p[0], 10), row = c->row, K = c->K;
    bool rel = kind >= RIS, uniform = kind <= AVGSENS;
    double amp = c->p[1] * (c->hi - c->lo), eps = rel ? c->p[2] : 0;
    const char *rep = kind == RRS ? rep_name(c) : NULL;
    if (kind == RRS && !rep) return sal_fail(SAL_ERR_UNSUPPORTED, "%s has no linear layer: name the representation with layer=VALUE", c->m->path);
    for (int64_t q = 0; q < n; q++) {
        int64_t i = i0 + q;
        const float *x = sal_f32(c->x) + i * row, *a = A + q * row;
        float *b;
        SAL_TRY(mt_rows(c, R + 1, &b));
        sal_rng g;
        mt_rng(c, i, &g);
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < row; k++)
                b[r * row + k] = x[k] + (float)(uniform ? amp * (2 * sal_rng_uniform(&g) - 1) : amp * sal_rng_normal(&g));
        memcpy(b + R * row, x, (size_t)row * sizeof *b); /* the sample itself, last */
        SAL_TRY(mt_explain_rows(c, R, c->target[i]));
        if (rel) SAL_TRY(mt_forward(c, R + 1, NULL, NULL, c->target[i], false, kind == ROS, rep));
        double best = NAN, sum = 0, an = 0;
        int64_t used = 0;
        for (int64_t k = 0; k < row; k++) an += (double)a[k] * a[k];
        an = sqrt(an);
        for (int64_t r = 0; r < R; r++) {
            const float *ar = sal_f32(&c->A2) + r * row, *xr = b + r * row;
            double val;
            if (kind == MAXSENS || kind == AVGSENS) {
                val = an > 0 ? norm2(a, ar, row) / an : NAN;
            } else if (kind == LIPSCHITZ || kind == CONTINUITY) {
                double dx = norm2(x, xr, row), da = 0;
                if (kind == LIPSCHITZ) da = norm2(a, ar, row);
                else
                    for (int64_t k = 0; k < row; k++) da += fabs((double)a[k] - ar[k]);
                val = dx > 0 ? da / dx : NAN;
            } else {
                if (!c->top[r]) continue; /* Agarwal et al.: only neighbours with the same prediction */
                double num = rel2(a, ar, row, eps), den;
                if (kind == RIS) den = rel2(x, xr, row, eps);
                else if (kind == ROS) den = rel2(c->logits + R * K, c->logits + r * K, K, eps);
                else den = rel2(c->rep + R * c->nrep, c->rep + r * c->nrep, c->nrep, eps);
                val = num / (den > eps ? den : eps);
            }
            if (!isfinite(val)) continue;
            best = isnan(best) || val > best ? val : best;
            sum += val, used++;
        }
        v[q] = kind == AVGSENS ? (used ? sum / (double)used : NAN) : best;
    }
    return SAL_OK;
}

#define RUN(fn, kind)                                                                                    \
    static sal_status fn(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {      \
        (void)cv;                                                                                        \
        return run_kind(c, i0, n, A, v, kind);                                                           \
    }
RUN(run_maxsens, MAXSENS)
RUN(run_avgsens, AVGSENS)
RUN(run_lipschitz, LIPSCHITZ)
RUN(run_continuity, CONTINUITY)
RUN(run_ris, RIS)
RUN(run_ros, ROS)
RUN(run_rrs, RRS)

#define SAMPLES {"samples", "10", "perturbed copies per sample"}
#define EPS {"eps", "1e-6", "floor of the relative changes' denominators"}
const mt_metric mt_robustness[] = {
    {"max_sensitivity", "robustness", "largest ||a(x') - a(x)|| / ||a(x)|| over x' uniform in an L-inf ball (Yeh et al. "
     "2019)", -1, false, {SAMPLES, {"radius", "0.05", "the ball's radius, fraction of the input range"}}, NULL, NULL, 0,
     run_maxsens, NULL},
    {"avg_sensitivity", "robustness", "mean ||a(x') - a(x)|| / ||a(x)|| over x' uniform in an L-inf ball (Yeh et al. "
     "2019)", -1, false, {SAMPLES, {"radius", "0.05", "the ball's radius, fraction of the input range"}}, NULL, NULL, 0,
     run_avgsens, NULL},
    {"local_lipschitz_estimate", "robustness", "largest ||a(x) - a(x')||_2 / ||x - x'||_2 over Gaussian neighbours "
     "(Alvarez-Melis & Jaakkola 2018)", -1, false, {SAMPLES, {"sd", "0.1", "noise sd, fraction of the input range"}},
     NULL, NULL, 0, run_lipschitz, NULL},
    {"continuity", "robustness", "largest ||a(x) - a(x')||_1 / ||x - x'||_2 over Gaussian neighbours (Montavon et al. "
     "2018)", -1, false, {SAMPLES, {"sd", "0.1", "noise sd, fraction of the input range"}}, NULL, NULL, 0, run_continuity, NULL},
    {"relative_input_stability", "robustness", "largest relative change of the map over the relative change of the "
     "input, neighbours of the same prediction (Agarwal et al. 2022)", -1, false,
     {SAMPLES, {"sd", "0.05", "noise sd, fraction of the input range"}, EPS}, NULL, NULL, 0, run_ris, NULL},
    {"relative_output_stability", "robustness", "largest relative change of the map over the relative change of the "
     "logits (Agarwal et al. 2022)", -1, false, {SAMPLES, {"sd", "0.05", "noise sd, fraction of the input range"}, EPS},
     NULL, NULL, 0, run_ros, NULL},
    {"relative_representation_stability", "robustness", "largest relative change of the map over the relative change "
     "of an inner representation (Agarwal et al. 2022)", -1, false,
     {SAMPLES, {"sd", "0.05", "noise sd, fraction of the input range"}, EPS,
      {"layer", "", "the representation's value name; default: the input of the last linear layer"}},
     NULL, NULL, 0, run_rrs, NULL},
};
const int mt_nrobustness = (int)(sizeof mt_robustness / sizeof mt_robustness[0]);
