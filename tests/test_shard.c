/* Sharding without MPI (sal_shard, docs/scaling.md): threads play the ranks through an in-memory
 * transport, so the library's side is tested on its own:
 *   - the class-sensitivity and faithfulness audits shared by 3 ranks (7 samples in batches of 2:
 *     2 + 1 + 1 batches) give every rank the JSON of one process, byte for byte, "ranks" aside;
 *   - sal_shard_agree: one failing rank ends every rank with its message and rank, a failure on
 *     every rank alike keeps the message as it is, and *ended says who;
 *   - explanations in batches (sal_explain_opts.first) joined equal the explanation of the whole:
 *     SmoothGrad's random draws identical, maps to rounding, targets and outputs exactly; the
 *     checks combine by their rule (completeness_delta: the largest); pack and unpack round-trip. */
#include "testutil.h"
#include "saliency.h"
#include <pthread.h>
#include <stdlib.h>

enum { R = 3, N = 7 };

/* ---- an in-memory transport: one barrier, each rank's buffer in turn ---- */
typedef struct {
    pthread_barrier_t bar;
    char rec[R][1024];
    void *buf[R];
} net;

typedef struct {
    net *n;
    int rank;
} peer;

static sal_status t_allgather(void *user, const void *mine, void *all, size_t size) {
    peer *p = user;
    if (size > sizeof p->n->rec[0]) return SAL_ERR_INTERNAL;
    memcpy(p->n->rec[p->rank], mine, size);
    pthread_barrier_wait(&p->n->bar);
    for (int r = 0; r < R; r++) memcpy((char *)all + (size_t)r * size, p->n->rec[r], size);
    pthread_barrier_wait(&p->n->bar);
    return SAL_OK;
}

static sal_status t_allgatherv(void *user, void *buf, const size_t *count, const size_t *offset) {
    peer *p = user;
    p->n->buf[p->rank] = buf;
    pthread_barrier_wait(&p->n->bar);
    for (int r = 0; r < R; r++)
        if (r != p->rank && count[r]) memcpy((char *)buf + offset[r], (char *)p->n->buf[r] + offset[r], count[r]);
    pthread_barrier_wait(&p->n->bar);
    return SAL_OK;
}

/* ---- one rank's job ---- */
typedef struct {
    peer p;
    int ended;
    sal_shard s;
    const sal_model *m;
    const sal_tensor *x;
    int which;        /* 0 class sensitivity, 1 faithfulness, 2 agreement (rank 1 fails), 3 all fail */
    char *json;       /* the audit's */
    sal_status st;
    char msg[1024];
} job;

static const char *const k_meth[] = {"samples=3"};

static sal_status run_audit(const sal_model *m, const sal_tensor *x, const sal_shard *s, int which, char **json) {
    sal_audit_method meth[2] = {{.name = "gradient"}, {.name = "smoothgrad", .nparams = 1, .params = k_meth}};
    sal_audit_common c = {.methods = meth, .nmethods = 2, .batch = 2, .seed = 3, .shard = s, .model_name = "m"};
    sal_audit *a = NULL;
    sal_status st = which == 0 ? sal_audit_class_sensitivity(m, x, &(sal_class_sensitivity_opts){.common = c}, &a)
                               : sal_audit_faithfulness(m, x, &(sal_faithfulness_opts){.common = c, .steps = 4}, &a);
    if (st == SAL_OK) st = sal_audit_json(a, json);
    sal_audit_free(a);
    return st;
}

static void *rank_main(void *arg) {
    job *j = arg;
    if (j->which <= 1) {
        j->st = run_audit(j->m, j->x, &j->s, j->which, &j->json);
    } else {
        bool fails = j->which == 3 || j->p.rank == 1;
        j->st = sal_shard_agree(&j->s, fails ? SAL_ERR_IO : SAL_OK, fails ? "boom" : NULL);
    }
    snprintf(j->msg, sizeof j->msg, "%s", sal_last_error());
    return NULL;
}

static void run_ranks(job *jobs, const sal_model *m, const sal_tensor *x, int which) {
    static net n;
    pthread_barrier_init(&n.bar, NULL, R);
    pthread_t th[R];
    for (int r = 0; r < R; r++) {
        jobs[r] = (job){.p = {&n, r}, .ended = -1, .m = m, .x = x, .which = which};
        jobs[r].s = (sal_shard){.rank = r, .nranks = R, .allgather = t_allgather, .allgatherv = t_allgatherv,
                                .user = &jobs[r].p, .ended = &jobs[r].ended};
        pthread_create(&th[r], NULL, rank_main, &jobs[r]);
    }
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&n.bar);
}

/* The JSON without its "ranks" line. */
static void drop_ranks(char *js) {
    char *p = strstr(js, "\n  \"ranks\": ");
    char *e = p ? strchr(p + 1, '\n') : NULL;
    if (e) memmove(p, e, strlen(e) + 1);
}

static void audits(const sal_model *m, const sal_tensor *x) {
    for (int which = 0; which < 2; which++) {
        char *one = NULL;
        CHECK_OK(run_audit(m, x, NULL, which, &one));
        CHECK(one && strstr(one, "\"ranks\": 1,"), "one process: \"ranks\": 1");
        job jobs[R];
        run_ranks(jobs, m, x, which);
        for (int r = 0; r < R; r++) {
            CHECK(jobs[r].st == SAL_OK, "audit %d, rank %d: %s", which, r, jobs[r].msg);
            if (!jobs[r].json || !one) continue;
            CHECK(strstr(jobs[r].json, "\"ranks\": 3,") != NULL, "audit %d, rank %d: \"ranks\": 3", which, r);
            drop_ranks(jobs[r].json);
            drop_ranks(one);
            CHECK(!strcmp(jobs[r].json, one), "audit %d, rank %d: the JSON differs from one process's", which, r);
            free(jobs[r].json);
        }
        free(one);
    }
}

static void agreement(void) {
    job jobs[R];
    run_ranks(jobs, NULL, NULL, 2);
    for (int r = 0; r < R; r++) {
        CHECK(jobs[r].st == SAL_ERR_IO && !strcmp(jobs[r].msg, "rank 1 of 3: boom"), "rank %d: %s", r, jobs[r].msg);
        CHECK(jobs[r].ended == 1, "rank %d: ended %d", r, jobs[r].ended);
    }
    run_ranks(jobs, NULL, NULL, 3);
    for (int r = 0; r < R; r++)
        CHECK(jobs[r].st == SAL_ERR_IO && !strcmp(jobs[r].msg, "boom") && jobs[r].ended == 0, "all failing, rank %d: %s",
              r, jobs[r].msg);
    CHECK(sal_shard_agree(NULL, SAL_ERR_ARG, NULL) == SAL_ERR_ARG, "no shard: the status as it is");
}

/* ---- explanations in batches, joined ---- */
static void joins(const sal_model *m, const sal_tensor *x) {
    const char *const meths[] = {"smoothgrad", "integrated_gradients"};
    const char *const params[] = {"samples=4", "steps=8"};
    for (int k = 0; k < 2; k++) {
        sal_explain_opts o = {.method = meths[k], .nparams = 1, .params = &params[k]};
        sal_explanation *whole = NULL, *part[3] = {0}, *joined = NULL, *back = NULL;
        CHECK_OK(sal_explain(m, x, &o, &whole));
        /* the range of the whole input, as one call takes it */
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < sal_tensor_numel(x); i++) lo = fmin(lo, sal_f32(x)[i]), hi = fmax(hi, sal_f32(x)[i]);
        o.data_lo = lo, o.data_hi = hi;
        const int64_t cut[4] = {0, 3, 6, N};
        for (int b = 0; b < 3; b++) {
            sal_tensor xb = sal_tensor_view(x);
            xb.dim[0] = cut[b + 1] - cut[b];
            xb.data = sal_f32(x) + cut[b] * sal_row_size(x);
            o.first = cut[b];
            CHECK_OK(sal_explain(m, &xb, &o, &part[b]));
        }
        if (!whole || !part[0] || !part[1] || !part[2]) continue;
        CHECK_OK(sal_explanation_join((const sal_explanation *const *)part, 3, &joined));
        if (!joined) continue;
        const sal_tensor *a = sal_explanation_map(whole), *j = sal_explanation_map(joined);
        double worst = 0, big = 0;
        for (int64_t i = 0; i < sal_tensor_numel(a); i++)
            worst = fmax(worst, fabs(sal_f32(a)[i] - sal_f32(j)[i])), big = fmax(big, fabs(sal_f32(a)[i]));
        CHECK(j->dim[0] == N && sal_tensor_numel(j) == sal_tensor_numel(a) && worst <= 1e-5 * big,
              "%s: joined maps differ from the whole by %g (scale %g)", meths[k], worst, big);
        CHECK(!memcmp(sal_explanation_targets(whole), sal_explanation_targets(joined), N * sizeof(int64_t)),
              "%s: targets", meths[k]);
        bool outs = true;
        for (int i = 0; i < N; i++) outs &= fabsf(sal_explanation_outputs(whole)[i] - sal_explanation_outputs(joined)[i]) <= 1e-5f;
        CHECK(outs, "%s: outputs", meths[k]);
        if (k == 1) {
            double d = 0;
            for (int b = 0; b < 3; b++) d = fmax(d, sal_explanation_metric(part[b], "completeness_delta"));
            CHECK(sal_explanation_metric(joined, "completeness_delta") == d, "completeness_delta: the largest of the parts");
        }
        /* packed and back: the same explanation */
        void *bytes = NULL;
        size_t size = 0;
        CHECK_OK(sal_explanation_pack(joined, &bytes, &size));
        CHECK_OK(sal_explanation_unpack(bytes, size, &back));
        sal_explanation *cut_short = NULL;
        CHECK_FAILS(sal_explanation_unpack(bytes, size / 2, &cut_short), SAL_ERR_FORMAT, "truncated");
        char *j1 = NULL, *j2 = NULL;
        if (back) {
            CHECK_OK(sal_explanation_json(joined, &j1));
            CHECK_OK(sal_explanation_json(back, &j2));
            CHECK(j1 && j2 && !strcmp(j1, j2), "%s: packed and unpacked, another JSON", meths[k]);
            CHECK(!memcmp(sal_explanation_map(back)->data, j->data, (size_t)sal_tensor_numel(j) * sizeof(float)),
                  "%s: packed and unpacked, another map", meths[k]);
        }
        free(j1);
        free(j2);
        free(bytes);
        sal_explanation_free(back);
        sal_explanation_free(joined);
        sal_explanation_free(whole);
        for (int b = 0; b < 3; b++) sal_explanation_free(part[b]);
    }
}

int main(void) {
    setenv("OMP_NUM_THREADS", "1", 1); /* before OpenMP starts: ranks of one thread each */
    /* convolutions on our own kernels: oneDNN keeps per-thread state that it frees only with
     * OpenMP's threads, not with the threads that play ranks here (LeakSanitizer would say so) */
    setenv("SAL_DNNL", "0", 1);
    sal_model *m = NULL;
    CHECK_OK(sal_model_build("cnn:1x8x8", 4, 6, &m));
    sal_rng r;
    sal_rng_seed(&r, 5);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){N, 1, 8, 8}, 1.0f);
    for (int64_t i = 0; i < sal_tensor_numel(&x); i++) sal_f32(&x)[i] = fabsf(sal_f32(&x)[i]);
    if (m) {
        joins(m, &x); /* also loads OpenBLAS before the threads start */
        audits(m, &x);
    }
    agreement();
    sal_tensor_free(&x);
    sal_model_free(m);
    return t_done("test_shard");
}
