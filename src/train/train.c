/* Mini-batch training with softmax cross-entropy (or, for multi-label data, sigmoid binary
 * cross-entropy), SGD with momentum or Adam. */
#include "graph/exec.h"
#include <math.h>

sal_train_opts sal_train_defaults(void) {
    return (sal_train_opts){.opt = SAL_OPT_ADAM, .lr = 1e-3f, .momentum = 0.9f, .epochs = 5, .batch = 64,
                            .seed = 1, .lr_decay = 1.0f};
}

/* Multi-hot labels: float32 (N, K) in [0, 1]. */
static bool multi_label(const sal_tensor *y) { return y->dtype == SAL_F32 && y->ndim == 2; }

/* x (N, ...) must fit the model's single input; y (N) int64 labels below the class count, or
 * float32 multi-hot labels (N, K). */
static sal_status check_data(const sal_model *m, const sal_tensor *x, const sal_tensor *y, int64_t *nclasses) {
    if (m->ninput != 1) return sal_fail(SAL_ERR_ARG, "training needs a model with one input (%s has %d)", m->path, m->ninput);
    const sal_tensor *in = &m->val[m->input[0]].t;
    bool ok = x->dtype == SAL_F32 && x->ndim == in->ndim && x->ndim >= 1;
    for (int d = 1; ok && d < x->ndim; d++) ok = in->dim[d] < 0 || in->dim[d] == x->dim[d];
    if (!ok) {
        char a[160], b[160];
        return sal_fail(SAL_ERR_SHAPE, "training data has shape %s; the model's input '%s' is %s",
                        sal_shape_str(x->ndim, x->dim, a, sizeof a), m->val[m->input[0]].name,
                        sal_shape_str(in->ndim, in->dim, b, sizeof b));
    }
    if (multi_label(y)) {
        if (y->dim[0] != x->dim[0] || y->dim[1] < 1)
            return sal_fail(SAL_ERR_SHAPE, "multi-hot labels must have shape (%lld, K)", (long long)x->dim[0]);
        const float *p = sal_f32(y);
        for (int64_t i = 0, n = sal_tensor_numel(y); i < n; i++)
            if (!(p[i] >= 0 && p[i] <= 1))
                return sal_fail(SAL_ERR_ARG, "multi-hot label %g of sample %lld is outside [0, 1]", (double)p[i],
                                (long long)(i / y->dim[1]));
        *nclasses = y->dim[1];
        return SAL_OK;
    }
    if (y->dtype != SAL_I64 || y->ndim != 1 || y->dim[0] != x->dim[0])
        return sal_fail(SAL_ERR_SHAPE, "labels must be int64 of shape (%lld), or float32 multi-hot (%lld, K)",
                        (long long)x->dim[0], (long long)x->dim[0]);
    const sal_tensor *out = &m->val[m->output[0]].t;
    (void)out;
    *nclasses = 0;
    const int64_t *lab = y->data;
    for (int64_t i = 0; i < y->dim[0]; i++) {
        if (lab[i] < 0) return sal_fail(SAL_ERR_ARG, "label %lld of sample %lld is negative", (long long)lab[i], (long long)i);
        if (lab[i] + 1 > *nclasses) *nclasses = lab[i] + 1;
    }
    return SAL_OK;
}

/* Copies samples idx[0..b) of x into xb (b, ...). */
static sal_status gather(const sal_tensor *x, const int64_t *idx, int64_t b, sal_tensor *xb) {
    int64_t dim[SAL_MAX_DIMS], row = sal_row_size(x);
    memcpy(dim, x->dim, sizeof dim);
    dim[0] = b;
    SAL_TRY(sal_tensor_alloc(xb, x->dtype, x->ndim, dim));
    size_t es = sal_dtype_size(x->dtype);
    for (int64_t i = 0; i < b; i++)
        memcpy((char *)xb->data + (size_t)(i * row) * es, (const char *)x->data + (size_t)(idx[i] * row) * es,
               (size_t)row * es);
    return SAL_OK;
}

/* Translates each image of xb (B,C,H,W) by a random offset in [-s, s]^2, filling with zeros. */
static void augment_shift(sal_tensor *xb, int s, sal_rng *r, float *tmp) {
    if (s <= 0 || xb->ndim != 4) return;
    int64_t C = xb->dim[1], H = xb->dim[2], W = xb->dim[3];
    for (int64_t i = 0; i < xb->dim[0]; i++) {
        int dy = (int)(sal_rng_u64(r) % (uint64_t)(2 * s + 1)) - s, dx = (int)(sal_rng_u64(r) % (uint64_t)(2 * s + 1)) - s;
        float *img = sal_f32(xb) + i * C * H * W;
        memcpy(tmp, img, (size_t)(C * H * W) * sizeof *tmp);
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) {
                    int64_t sy = y - dy, sx = x - dx;
                    img[(c * H + y) * W + x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? tmp[(c * H + sy) * W + sx] : 0.0f;
                }
    }
}

/* Mean softmax cross-entropy of logits (B,K) and its gradient into d (B,K). */
static sal_status softmax_xent(const sal_tensor *logits, const int64_t *lab, sal_tensor *d, double *loss) {
    if (logits->ndim != 2) return sal_fail(SAL_ERR_SHAPE, "training needs (batch, classes) logits");
    int64_t B = logits->dim[0], K = logits->dim[1];
    SAL_TRY(sal_tensor_alloc(d, SAL_F32, 2, logits->dim));
    double total = 0;
    for (int64_t i = 0; i < B; i++) {
        const float *z = sal_f32(logits) + i * K;
        float *g = sal_f32(d) + i * K;
        if (lab[i] >= K)
            return sal_fail(SAL_ERR_ARG, "label %lld is out of range for %lld outputs", (long long)lab[i], (long long)K);
        float mx = z[0];
        for (int64_t k = 1; k < K; k++) mx = fmaxf(mx, z[k]);
        double sum = 0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)(z[k] - mx));
        total += log(sum) - (double)(z[lab[i]] - mx);
        for (int64_t k = 0; k < K; k++)
            g[k] = (float)((exp((double)(z[k] - mx)) / sum - (k == lab[i])) / (double)B);
    }
    *loss = total / (double)B;
    return SAL_OK;
}

/* Mean over samples of the binary cross-entropy of sigmoid(logits) (B,K) against targets t (B,K),
 * summed over classes, and its gradient into d. log(1 + e^-|z|) keeps it finite for large |z|. */
static sal_status sigmoid_bce(const sal_tensor *logits, const float *t, sal_tensor *d, double *loss) {
    if (logits->ndim != 2) return sal_fail(SAL_ERR_SHAPE, "training needs (batch, classes) logits");
    int64_t B = logits->dim[0], K = logits->dim[1];
    SAL_TRY(sal_tensor_alloc(d, SAL_F32, 2, logits->dim));
    double total = 0;
    for (int64_t i = 0; i < B * K; i++) {
        double z = sal_f32(logits)[i];
        /* -t log s(z) - (1 - t) log(1 - s(z)) = max(z, 0) - t z + log(1 + e^-|z|) */
        total += fmax(z, 0) - t[i] * z + log1p(exp(-fabs(z)));
        sal_f32(d)[i] = (float)((1 / (1 + exp(-z)) - t[i]) / (double)B);
    }
    *loss = total / (double)B;
    return SAL_OK;
}

/* The progress callback: "epoch E/EPOCHS", samples done of the epoch's, the mean loss so far. */
static void progress(const sal_train_opts *o, int epoch, int64_t done, int64_t total, double loss) {
    char what[48], detail[48];
    snprintf(what, sizeof what, "epoch %d/%d", epoch, o->epochs);
    snprintf(detail, sizeof detail, "loss %.4f", loss);
    o->progress(o->progress_user, what, done, total, detail);
}

sal_status sal_train(sal_model *m, const sal_tensor *x, const sal_tensor *y, const sal_train_opts *o) {
    int64_t ncls, N = x->dim[0];
    SAL_TRY(check_data(m, x, y, &ncls));
    if (o->batch < 1 || o->epochs < 0 || !(o->lr > 0))
        return sal_fail(SAL_ERR_ARG, "bad training options (batch %d, epochs %d, lr %g)", o->batch, o->epochs, (double)o->lr);
    bool bce = o->loss == SAL_LOSS_BCE;
    if (o->loss != SAL_LOSS_SOFTMAX && !bce) return sal_fail(SAL_ERR_ARG, "unknown loss %d", (int)o->loss);
    if (bce != multi_label(y))
        return sal_fail(SAL_ERR_ARG, bce ? "binary cross-entropy needs float32 multi-hot labels (N, K)"
                                         : "softmax cross-entropy needs int64 class labels (N); use the bce loss for "
                                           "multi-hot labels");
    sal_session *s = NULL;
    sal_tensor xb = {0}, yb = {0}, dlog = {0}, *m1 = NULL, *m2 = NULL;
    int64_t *perm = NULL, *lab = NULL;
    bool *wrt = NULL;
    float *tmp = NULL;
    sal_status st = sal_session_new(m, &s);
    if (st != SAL_OK) return st;
    perm = sal_malloc((size_t)(N ? N : 1) * sizeof *perm);
    lab = sal_malloc((size_t)o->batch * sizeof *lab);
    wrt = sal_calloc((size_t)m->nval, sizeof *wrt);
    m1 = sal_calloc((size_t)m->nval, sizeof *m1);
    m2 = sal_calloc((size_t)m->nval, sizeof *m2);
    int64_t row = sal_row_size(x);
    tmp = sal_malloc((size_t)row * sizeof *tmp);
    if (!perm || !lab || !wrt || !m1 || !m2 || !tmp) {
        st = sal_fail(SAL_ERR_NOMEM, "out of memory preparing training");
        goto done;
    }
    for (int v = 0; v < m->nval && st == SAL_OK; v++) {
        if (!(wrt[v] = m->val[v].param)) continue;
        st = sal_tensor_alloc(&m1[v], SAL_F32, m->val[v].t.ndim, m->val[v].t.dim);
        if (st == SAL_OK && o->opt == SAL_OPT_ADAM) st = sal_tensor_alloc(&m2[v], SAL_F32, m->val[v].t.ndim, m->val[v].t.dim);
    }
    sal_rng rng;
    sal_rng_seed(&rng, o->seed);
    for (int64_t i = 0; i < N; i++) perm[i] = i;
    float lr = o->lr;
    int64_t step = 0;
    const int64_t *labels = bce ? NULL : y->data;
    for (int ep = 1; ep <= o->epochs && st == SAL_OK; ep++) {
        for (int64_t i = N - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = (int64_t)(sal_rng_u64(&rng) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double sum = 0;
        int64_t nb = 0;
        for (int64_t b0 = 0; b0 < N && st == SAL_OK; b0 += o->batch, nb++) {
            int64_t b = N - b0 < o->batch ? N - b0 : o->batch;
            if (!bce)
                for (int64_t i = 0; i < b; i++) lab[i] = labels[perm[b0 + i]];
            else if ((st = gather(y, perm + b0, b, &yb)) != SAL_OK)
                break;
            double loss = 0;
            int out = m->output[0];
            if ((st = gather(x, perm + b0, b, &xb)) != SAL_OK) break;
            augment_shift(&xb, o->shift, &rng, tmp);
            if ((st = sal_exec_forward(s, &xb)) != SAL_OK) break;
            if (bce && s->act[out].ndim == 2 && s->act[out].dim[1] != y->dim[1]) {
                st = sal_fail(SAL_ERR_SHAPE, "the labels have %lld classes; the model has %lld outputs",
                              (long long)y->dim[1], (long long)s->act[out].dim[1]);
                break;
            }
            st = bce ? sigmoid_bce(&s->act[out], sal_f32(&yb), &dlog, &loss) : softmax_xent(&s->act[out], lab, &dlog, &loss);
            if (st != SAL_OK) break;
            sal_backward_opts bo = {.wrt = wrt};
            if ((st = sal_exec_backward(s, 1, &out, &dlog, &bo)) != SAL_OK) break;
            if (!isfinite(loss)) {
                st = sal_fail(SAL_ERR_NUMERIC, "training diverged (loss %g at epoch %d); lower the learning rate", loss, ep);
                break;
            }
            sum += loss;
            step++;
            double bc1 = 1 - pow(0.9, (double)step), bc2 = 1 - pow(0.999, (double)step);
            sal_model_weights_changed(m);
            for (int v = 0; v < m->nval; v++) {
                if (!wrt[v]) continue;
                float *p = sal_f32(&m->val[v].t), *g = sal_f32(&s->grad[v]), *a = sal_f32(&m1[v]);
                int64_t n = sal_tensor_numel(&m->val[v].t);
                if (o->opt == SAL_OPT_SGD) {
                    for (int64_t k = 0; k < n; k++) {
                        a[k] = o->momentum * a[k] + g[k] + o->weight_decay * p[k];
                        p[k] -= lr * a[k];
                    }
                } else {
                    float *q = sal_f32(&m2[v]);
                    for (int64_t k = 0; k < n; k++) {
                        float gk = g[k] + o->weight_decay * p[k];
                        a[k] = 0.9f * a[k] + 0.1f * gk;
                        q[k] = 0.999f * q[k] + 0.001f * gk * gk;
                        p[k] -= (float)(lr * (a[k] / bc1) / (sqrt(q[k] / bc2) + 1e-8));
                    }
                }
            }
            if (o->progress && (nb % 8 == 0 || b0 + b == N)) progress(o, ep, b0 + b, N, sum / (double)(nb + 1));
        }
        if (st == SAL_OK && o->on_epoch) o->on_epoch(o->user, ep, nb ? sum / (double)nb : 0);
        lr *= o->lr_decay;
    }
done:
    for (int v = 0; v < m->nval; v++) {
        if (m1) sal_tensor_free(&m1[v]);
        if (m2) sal_tensor_free(&m2[v]);
    }
    sal_free(m1);
    sal_free(m2);
    sal_free(wrt);
    sal_free(tmp);
    sal_free(perm);
    sal_free(lab);
    sal_tensor_free(&xb);
    sal_tensor_free(&yb);
    sal_tensor_free(&dlog);
    sal_session_free(s);
    return st;
}

sal_status sal_accuracy(const sal_model *m, const sal_tensor *x, const sal_tensor *y, double *acc) {
    int64_t ncls, N = x->dim[0], right = 0, total = N, chunk = 256;
    *acc = 0;
    SAL_TRY(check_data(m, x, y, &ncls));
    sal_session *s;
    SAL_TRY(sal_session_new(m, &s));
    sal_tensor xb = {0};
    int64_t *idx = sal_malloc((size_t)chunk * sizeof *idx);
    sal_status st = idx ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    const int64_t *lab = y->data; /* int64 labels only; multi-hot ones are read as floats */
    for (int64_t b0 = 0; b0 < N && st == SAL_OK; b0 += chunk) {
        int64_t b = N - b0 < chunk ? N - b0 : chunk;
        for (int64_t i = 0; i < b; i++) idx[i] = b0 + i;
        if ((st = gather(x, idx, b, &xb)) != SAL_OK) break;
        if ((st = sal_exec_forward(s, &xb)) != SAL_OK) break;
        const sal_tensor *z = &s->act[m->output[0]];
        int64_t K = z->dim[z->ndim - 1];
        if (multi_label(y)) { /* each (sample, class) entry: output > 0 iff label >= 0.5 */
            if (K != y->dim[1]) {
                st = sal_fail(SAL_ERR_SHAPE, "the labels have %lld classes; the model has %lld outputs",
                              (long long)y->dim[1], (long long)K);
                break;
            }
            for (int64_t i = 0; i < b * K; i++) right += (sal_f32(z)[i] > 0) == (sal_f32(y)[b0 * K + i] >= 0.5f);
            total = N * K;
            continue;
        }
        for (int64_t i = 0; i < b; i++) {
            const float *r = sal_f32(z) + i * K;
            int64_t best = 0;
            for (int64_t k = 1; k < K; k++)
                if (r[k] > r[best]) best = k;
            right += best == lab[b0 + i];
        }
    }
    if (st == SAL_OK) *acc = total ? (double)right / (double)total : 0;
    sal_free(idx);
    sal_tensor_free(&xb);
    sal_session_free(s);
    return st;
}
