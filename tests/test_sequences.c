/* Biological sequences: simulated data and its ground truth, FASTA, the dinucleotide shuffle, and
 * the sequence methods: incremental ISM against full passes (bit for bit) and the model's own
 * forward passes, hypothetical contributions and DeepLIFT-SHAP against their identities. */
#include "testutil.h"
#include "io/io.h"
#include "featviz/featviz.h"

static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, int np,
                                const char *const *params) {
    sal_explain_opts o = {.method = method, .nparams = np, .params = params};
    sal_explanation *e = NULL;
    sal_status s = sal_explain(m, x, &o, &e);
    CHECK(s == SAL_OK, "explain %s: %s", method, sal_last_error());
    return e;
}

static double max_abs_diff(const sal_tensor *a, const sal_tensor *b, double *scale) {
    double d = 0, s = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++) {
        d = fmax(d, fabs((double)sal_f32(a)[i] - sal_f32(b)[i]));
        s = fmax(s, fabs((double)sal_f32(b)[i]));
    }
    if (scale) *scale = s;
    return d;
}

/* Base of column p of a (4, L) one-hot sequence, 4 for N. */
static int base(const float *x, int64_t L, int64_t p) {
    for (int b = 0; b < 4; b++)
        if (x[b * L + p] == 1) return b;
    return 4;
}

static void test_simulation(void) {
    int ids[2] = {sal_dna_motif_lookup("ctcf"), sal_dna_motif_lookup("SPI1")};
    CHECK(ids[0] >= 0 && ids[1] >= 0 && sal_dna_motif_lookup("nope") == -1, "motif lookup");
    sal_dna_opts o = {.count = 400, .length = 300, .gc = 0.6, .cpg = 0.25, .nmotifs = 2, .motifs = ids, .seed = 3};
    for (int task = 0; task < 3; task++) {
        o.task = (sal_dna_task)task;
        sal_tensor x = {0}, y = {0}, mk = {0}, x2 = {0}, y2 = {0}, mk2 = {0};
        CHECK_OK(sal_dna_simulate(&o, &x, &y, &mk));
        CHECK_OK(sal_dna_simulate(&o, &x2, &y2, &mk2));
        CHECK(!memcmp(x.data, x2.data, (size_t)sal_tensor_numel(&x) * 4) && !memcmp(mk.data, mk2.data, (size_t)sal_tensor_numel(&mk) * 8),
              "task %d: the same seed gives the same sequences", task);
        int64_t N = o.count, L = o.length, bad = 0, gc = 0, c = 0, g = 0, cg = 0, labels_bad = 0, nbg = 0, npair = 0;
        for (int64_t i = 0; i < N; i++) {
            const float *xi = sal_f32(&x) + i * 4 * L;
            const int64_t *m = (const int64_t *)mk.data + i * L;
            int present[3] = {0};
            for (int64_t p = 0; p < L; p++) {
                double s = xi[p] + xi[L + p] + xi[2 * L + p] + xi[3 * L + p];
                bad += s != 1 || base(xi, L, p) == 4;
                int b = base(xi, L, p);
                if (!m[p]) { /* the background's composition */
                    nbg++, gc += b == 1 || b == 2, c += b == 1, g += b == 2;
                    npair += p + 1 < L && !m[p + 1];
                    cg += p + 1 < L && !m[p + 1] && b == 1 && base(xi, L, p + 1) == 2;
                }
                present[m[p]] = 1;
            }
            /* the planted instances cover whole motifs */
            int64_t cover[3] = {0};
            for (int64_t p = 0; p < L; p++) cover[m[p]]++;
            for (int k = 1; k <= 2; k++)
                labels_bad += present[k] && cover[k] != sal_dna_motif_width(ids[k - 1]);
            if (task == SAL_DNA_TASK_CLASS) {
                int64_t cls = ((int64_t *)y.data)[i];
                labels_bad += present[1] != (cls == 1) || present[2] != (cls == 2);
            } else if (task == SAL_DNA_TASK_MULTI) {
                labels_bad += present[1] != (sal_f32(&y)[2 * i] == 1) || present[2] != (sal_f32(&y)[2 * i + 1] == 1);
            } else {
                labels_bad += (((int64_t *)y.data)[i] == 1) != (present[1] && present[2]);
            }
        }
        CHECK(!bad, "task %d: %lld columns are not one-hot", task, (long long)bad);
        CHECK(!labels_bad, "task %d: %lld samples whose labels or masks disagree with what was planted", task,
              (long long)labels_bad);
        /* the chain's stationary distribution, by power iteration on P(b | a) ~ pi(b) (cpg for C -> G) */
        double pi[4] = {0.2, 0.3, 0.3, 0.2}, tr[4][4], st[4] = {0.25, 0.25, 0.25, 0.25};
        for (int a = 0; a < 4; a++) {
            double z = 0;
            for (int b = 0; b < 4; b++) z += tr[a][b] = pi[b] * (a == 1 && b == 2 ? 0.25 : 1);
            for (int b = 0; b < 4; b++) tr[a][b] /= z;
        }
        for (int it = 0; it < 200; it++) {
            double nx[4] = {0};
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) nx[b] += st[a] * tr[a][b];
            memcpy(st, nx, sizeof st);
        }
        double fgc = (double)gc / (double)nbg, fc = (double)c / (double)nbg, fg = (double)g / (double)nbg;
        double ratio = (double)cg / (double)npair / (fc * fg), want = st[1] * tr[1][2] / (st[1] * st[2]);
        CHECK(fabs(fgc - (st[1] + st[2])) < 0.01, "task %d: GC content %.3f, the chain's %.3f", task, fgc, st[1] + st[2]);
        CHECK(fabs(ratio - want) < 0.05, "task %d: CpG observed/expected %.3f, the chain's %.3f", task, ratio, want);
        sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk);
        sal_tensor_free(&x2), sal_tensor_free(&y2), sal_tensor_free(&mk2);
    }
    sal_tensor x = {0}, y = {0}, mk = {0};
    o.task = SAL_DNA_TASK_AND, o.nmotifs = 1;
    CHECK_FAILS(sal_dna_simulate(&o, &x, &y, &mk), SAL_ERR_ARG, "exactly two motifs");
    o.task = SAL_DNA_TASK_CLASS, o.nmotifs = 2, o.length = 20;
    CHECK_FAILS(sal_dna_simulate(&o, &x, &y, &mk), SAL_ERR_ARG, "cannot hold");
    o.length = 100, o.gc = 1.5;
    CHECK_FAILS(sal_dna_simulate(&o, &x, &y, &mk), SAL_ERR_ARG, "GC content");
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk);
    sal_tensor ppm = {0};
    CHECK_OK(sal_dna_motif_ppm(ids[0], &ppm));
    double worst = 0;
    for (int64_t p = 0; p < ppm.dim[0]; p++)
        worst = fmax(worst, fabs(sal_f32(&ppm)[4 * p] + sal_f32(&ppm)[4 * p + 1] + sal_f32(&ppm)[4 * p + 2] +
                                 sal_f32(&ppm)[4 * p + 3] - 1));
    CHECK(worst < 1e-6 && ppm.dim[0] == 14, "CTCF's PPM: 14 rows summing to 1 (off by %g)", worst);
    sal_tensor_free(&ppm);
}

static void count_dinucs(const uint8_t *s, int64_t L, int64_t *cnt) {
    memset(cnt, 0, 25 * sizeof *cnt);
    for (int64_t p = 0; p + 1 < L; p++) cnt[s[p] * 5 + s[p + 1]]++;
}

static void test_shuffle(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    int64_t L = 500, work[500], a[25], b[25];
    uint8_t s[500], o[500];
    for (int trial = 0; trial < 50; trial++) {
        int letters = trial % 2 ? 5 : 4; /* odd trials hold N (4) as a fifth letter */
        for (int64_t p = 0; p < L; p++) s[p] = (uint8_t)(sal_rng_u64(&r) % (uint64_t)(trial % 3 == 2 ? 2 : letters));
        sal_dinuc_shuffle(s, L, &r, o, work);
        count_dinucs(s, L, a);
        count_dinucs(o, L, b);
        CHECK(!memcmp(a, b, sizeof a) && o[0] == s[0] && o[L - 1] == s[L - 1],
              "trial %d: the shuffle keeps dinucleotide counts, first and last letter", trial);
        CHECK(memcmp(s, o, (size_t)L), "trial %d: the shuffle moved something", trial);
    }
    /* every Eulerian walk is reachable: ACAGA has two (ACAGA, AGACA); both appear, about equally */
    uint8_t t[5] = {0, 1, 0, 2, 0}, u[5];
    int64_t w5[5];
    int seen[2] = {0};
    for (int k = 0; k < 2000; k++) {
        sal_dinuc_shuffle(t, 5, &r, u, w5);
        seen[u[1] == 2]++;
    }
    CHECK(seen[0] > 850 && seen[1] > 850, "ACAGA shuffles: %d ACAGA, %d AGACA of 2000", seen[0], seen[1]);
    /* the tensor version: copies per sample, same counts, N columns keep their encoding */
    sal_tensor x = {0}, out = {0};
    int64_t dim[3] = {2, 4, 40};
    CHECK_OK(sal_tensor_alloc(&x, SAL_F32, 3, dim));
    for (int64_t i = 0; i < 2; i++)
        for (int64_t p = 0; p < 40; p++) {
            int bb = (int)(sal_rng_u64(&r) % 5);
            for (int c = 0; c < 4; c++) sal_f32(&x)[i * 160 + c * 40 + p] = bb == 4 ? 0.25f : (float)(c == bb);
        }
    CHECK_OK(sal_dna_shuffle(&x, 1, 3, 7, &out));
    CHECK(out.dim[0] == 6, "three copies of each of two samples: %lld rows", (long long)out.dim[0]);
    bool same = true;
    for (int64_t k = 0; k < 6 && out.dim[0] == 6; k++) {
        uint8_t s0[40], s1[40];
        for (int64_t p = 0; p < 40; p++) {
            s0[p] = (uint8_t)base(sal_f32(&x) + (k / 3) * 160, 40, p);
            s1[p] = (uint8_t)base(sal_f32(&out) + k * 160, 40, p);
            same &= s1[p] != 4 || sal_f32(&out)[k * 160 + p] == 0.25f;
        }
        count_dinucs(s0, 40, a);
        count_dinucs(s1, 40, b);
        same &= !memcmp(a, b, sizeof a);
    }
    CHECK(same, "tensor shuffles keep each sample's dinucleotide counts and N encoding");
    sal_tensor_free(&x), sal_tensor_free(&out);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    SAL_ASSERT(f);
    fputs(s, f);
    fclose(f);
}

static void test_fasta(void) {
    const char *p = t_tmp("a.fa");
    write_text(p, ">one first\nACGTN\nacg\n>two\r\nTTTTTGGG\r\n");
    sal_tensor x = {0};
    char **names = NULL;
    int64_t n = 0;
    CHECK_OK(sal_fasta_read(p, NULL, &x, &names, &n));
    CHECK(n == 2 && x.ndim == 3 && x.dim[1] == 4 && x.dim[2] == 8 && names && !strcmp(names[0], "one") &&
              !strcmp(names[1], "two"),
          "two records of 8 bases, named");
    if (n == 2) {
        const float *x0 = sal_f32(&x);
        CHECK(x0[0 * 8 + 0] == 1 && x0[1 * 8 + 1] == 1 && x0[3 * 8 + 3] == 1 && x0[0 * 8 + 4] == 0 &&
                  x0[1 * 8 + 4] == 0 && x0[2 * 8 + 4] == 0 && x0[3 * 8 + 4] == 0 && x0[2 * 8 + 7] == 1,
              "one-hot A C G T, N all zero, lower case read");
        const char *q = t_tmp("b.fa");
        CHECK_OK(sal_fasta_write(q, &x, 1, NULL));
        sal_tensor y = {0};
        int64_t m = 0;
        CHECK_OK(sal_fasta_read(q, NULL, &y, NULL, &m));
        CHECK(m == 2 && sal_tensor_same_shape(&x, &y) && !memcmp(x.data, y.data, 64 * sizeof(float)),
              "written FASTA reads back the same");
        sal_tensor_free(&y);
        sal_fasta_opts fo = {.n_uniform = 1, .length_last = 1};
        CHECK_OK(sal_fasta_read(p, &fo, &y, NULL, &m));
        CHECK(y.dim[1] == 8 && y.dim[2] == 4 && sal_f32(&y)[4 * 4 + 2] == 0.25f && sal_f32(&y)[1 * 4 + 1] == 1,
              "--n uniform and (N, L, 4)");
        sal_tensor_free(&y);
        sal_f32(&x)[5] = 0.5f;
        CHECK_FAILS(sal_fasta_write(q, &x, 1, NULL), SAL_ERR_FORMAT, "not one-hot");
    }
    sal_fasta_names_free(names, n);
    sal_tensor_free(&x);
    write_text(p, ">a\nACGT\n>b\nACXT\n");
    CHECK_FAILS(sal_fasta_read(p, NULL, &x, NULL, &n), SAL_ERR_FORMAT, ":4: letter 'X'");
    write_text(p, ">a\nACGT\n>b\nACG\n");
    CHECK_FAILS(sal_fasta_read(p, NULL, &x, NULL, &n), SAL_ERR_FORMAT, "the same length");
    write_text(p, "ACGT\n");
    CHECK_FAILS(sal_fasta_read(p, NULL, &x, NULL, &n), SAL_ERR_FORMAT, "before the first '>'");
    write_text(p, "");
    CHECK_FAILS(sal_fasta_read(p, NULL, &x, NULL, &n), SAL_ERR_FORMAT, "no FASTA records");
    CHECK_FAILS(sal_fasta_read(t_tmp("missing.fa"), NULL, &x, NULL, &n), SAL_ERR_IO, "missing.fa");
}

/* A chain with strides, dilation, asymmetric pads and an output softmax, to exercise the windows. */
static sal_model *odd_chain(sal_rng *r, int64_t L) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, (int64_t[]){-1, 4, L}) == SAL_OK);
    float w1[6 * 4 * 5], b1[6], w2[5 * 6 * 3], b2[5], w3[7 * 200], b3[7], w4[3 * 7], b4[3];
    t_randv(r, w1, 120, 0.5f), t_randv(r, b1, 6, 0.1f), t_randv(r, w2, 90, 0.4f), t_randv(r, b2, 5, 0.1f);
    t_randv(r, w3, 7 * 200, 0.3f), t_randv(r, b3, 7, 0.1f), t_randv(r, w4, 21, 0.5f), t_randv(r, b4, 3, 0.1f);
    /* conv k5 s2 d2 pads (3,1): L1 = (L + 4 - 9) / 2 + 1; pool k3 s2 pads (1,1): L2 = (L1 + 2 - 3) / 2 + 1;
     * conv k3 pads (1,1): L2 */
    int64_t L1 = (L + 4 - 9) / 2 + 1, L2 = (L1 - 1) / 2 + 1, F = 5 * L2;
    SAL_ASSERT(F <= 200);
    t_const(g, "w1", 3, (int64_t[]){6, 4, 5}, w1), t_const(g, "b1", 1, (int64_t[]){6}, b1);
    t_const(g, "w2", 3, (int64_t[]){5, 6, 3}, w2), t_const(g, "b2", 1, (int64_t[]){5}, b2);
    t_const(g, "w3", 2, (int64_t[]){7, F}, w3), t_const(g, "b3", 1, (int64_t[]){7}, b3);
    t_const(g, "w4", 2, (int64_t[]){3, 7}, w4), t_const(g, "b4", 1, (int64_t[]){3}, b4);
    sal_attr c1[4] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){5}), sal_attr_make_ints("strides", 1, (int64_t[]){2}),
                      sal_attr_make_ints("dilations", 1, (int64_t[]){2}), sal_attr_make_ints("pads", 2, (int64_t[]){3, 1})};
    t_node(g, "Conv", "conv1", 3, (const char *[]){"x", "w1", "b1"}, "c1", 4, c1);
    t_node(g, "Relu", "relu1", 1, (const char *[]){"c1"}, "a1", 0, NULL);
    sal_attr pl[3] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){3}), sal_attr_make_ints("strides", 1, (int64_t[]){2}),
                      sal_attr_make_ints("pads", 2, (int64_t[]){1, 1})};
    t_node(g, "MaxPool", "pool1", 1, (const char *[]){"a1"}, "p1", 3, pl);
    sal_attr c2[2] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){3}), sal_attr_make_ints("pads", 2, (int64_t[]){1, 1})};
    t_node(g, "Conv", "conv2", 3, (const char *[]){"p1", "w2", "b2"}, "c2", 2, c2);
    t_node(g, "Relu", "relu2", 1, (const char *[]){"c2"}, "a2", 0, NULL);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a2"}, "f", 0, NULL);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "fc1", 3, (const char *[]){"f", "w3", "b3"}, "h", 1, tb);
    t_node(g, "Relu", "relu3", 1, (const char *[]){"h"}, "a3", 0, NULL);
    sal_attr tb2[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "fc2", 3, (const char *[]){"a3", "w4", "b4"}, "z", 1, tb2);
    t_node(g, "Softmax", "soft", 1, (const char *[]){"z"}, "y", 0, NULL);
    return t_finish(g, "y");
}

static void test_ism(void) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    int ids[2] = {2, 3};
    sal_dna_opts o = {.count = 3, .length = 96, .gc = 0.42, .cpg = 0.25, .nmotifs = 2, .motifs = ids, .seed = 9};
    sal_tensor x = {0}, y = {0}, mk = {0};
    CHECK_OK(sal_dna_simulate(&o, &x, &y, &mk));
    for (int c = 0; c < 4; c++) sal_f32(&x)[c * 96 + 11] = 0; /* an N (odd: the strided chain reads odd positions) */
    sal_model *models[2] = {NULL, odd_chain(&r, 96)};
    CHECK_OK(sal_model_build("seqcnn:4x96", 3, 3, &models[0]));
    for (int k = 0; k < 2 && models[0]; k++) {
        const sal_model *m = models[k];
        sal_explanation *inc = explain(m, &x, "ism", 0, NULL);
        sal_explanation *full = explain(m, &x, "ism", 1, (const char *[]){"mode=full"});
        sal_explanation *naive = explain(m, &x, "ism", 1, (const char *[]){"mode=naive"});
        if (!inc || !full || !naive) continue;
        const sal_tensor *a = sal_explanation_map(inc), *b = sal_explanation_map(full), *c = sal_explanation_map(naive);
        CHECK(sal_explanation_metric(inc, "ism_incremental") == 1 && sal_explanation_metric(naive, "ism_incremental") == 0,
              "model %d: the incremental path ran", k);
        CHECK(!memcmp(a->data, b->data, (size_t)sal_tensor_numel(a) * sizeof(float)),
              "model %d: incremental ISM equals full passes through the same kernels bit for bit (max diff %g)", k,
              max_abs_diff(a, b, NULL));
        /* against the model's own forward passes (BLAS / oneDNN convolutions sum in another order):
         * float32 rounding of sums of a few hundred terms, far below the deltas themselves */
        double scale, d = max_abs_diff(a, c, &scale);
        CHECK(d <= 1e-5 * fmax(scale, 1) + 1e-6, "model %d: incremental vs naive ISM differ by %g (scale %g)", k, d, scale);
        CHECK(scale > 1e-3, "model %d: the substitutions change the output (%g)", k, scale);
        /* zero at the sequence's own base; the N column gets four substitutions */
        int64_t L = 96, zero_bad = 0, n_nonzero = 0;
        for (int64_t i = 0; i < 3; i++)
            for (int64_t p = 0; p < L; p++) {
                int bb = base(sal_f32(&x) + i * 4 * L, L, p);
                if (bb < 4) zero_bad += sal_f32(a)[i * 4 * L + bb * L + p] != 0;
                else
                    for (int q = 0; q < 4; q++) n_nonzero += sal_f32(a)[i * 4 * L + q * L + p] != 0;
            }
        CHECK(!zero_bad, "model %d: %lld nonzero deltas at the sequence's own base", k, (long long)zero_bad);
        CHECK(n_nonzero > 0, "model %d: the N column's substitutions are computed", k);
        /* one substitution by hand through sal_forward */
        sal_session *s;
        CHECK_OK(sal_session_new(m, &s));
        sal_tensor one = {0};
        CHECK_OK(sal_tensor_alloc(&one, SAL_F32, 3, (int64_t[]){1, 4, L}));
        memcpy(one.data, sal_f32(&x) + 4 * L, (size_t)(4 * L) * sizeof(float)); /* sample 1 */
        const sal_tensor *out;
        CHECK_OK(sal_forward(s, 1, &one, &out));
        int64_t t = sal_explanation_targets(inc)[1];
        double f0 = sal_f32(out)[t];
        int64_t p = 40;
        int bb = (base(sal_f32(&one), L, p) + 1) % 4;
        for (int q = 0; q < 4; q++) sal_f32(&one)[q * L + p] = (float)(q == bb);
        CHECK_OK(sal_forward(s, 1, &one, &out));
        double want = sal_f32(out)[t] - f0, got = sal_f32(a)[4 * L + bb * L + p];
        CHECK(fabs(want - got) <= 1e-5 * fmax(fabs(want), 1), "model %d: ISM at (%d, 40) %g, by hand %g", k, bb, got, want);
        sal_tensor_free(&one);
        sal_session_free(s);
        sal_explanation_free(inc), sal_explanation_free(full), sal_explanation_free(naive);
    }
    /* a graph the incremental path cannot take: a Sigmoid first; it falls back to naive passes */
    {
        sal_model *g;
        SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, (int64_t[]){-1, 4, 96}) == SAL_OK);
        float w[3 * 384];
        t_randv(&r, w, 3 * 384, 0.2f);
        t_const(g, "w", 2, (int64_t[]){384, 3}, w);
        t_node(g, "Sigmoid", "sig", 1, (const char *[]){"x"}, "s", 0, NULL);
        t_node(g, "Flatten", "flat", 1, (const char *[]){"s"}, "f", 0, NULL);
        t_node(g, "MatMul", "mm", 2, (const char *[]){"f", "w"}, "z", 0, NULL);
        sal_model *m = t_finish(g, "z");
        sal_explanation *inc = explain(m, &x, "ism", 0, NULL);
        sal_explanation *naive = explain(m, &x, "ism", 1, (const char *[]){"mode=naive"});
        if (inc && naive) {
            CHECK(sal_explanation_metric(inc, "ism_incremental") == 0 &&
                      !memcmp(sal_explanation_map(inc)->data, sal_explanation_map(naive)->data, 3 * 384 * sizeof(float)),
                  "an unsupported graph falls back to naive passes and says so");
        }
        sal_explain_opts eo = {.method = "ism", .nparams = 1, .params = (const char *[]){"mode=full"}};
        sal_explanation *e = NULL;
        CHECK_FAILS(sal_explain(m, &x, &eo, &e), SAL_ERR_UNSUPPORTED, "Sigmoid");
        sal_explanation_free(inc), sal_explanation_free(naive);
        sal_model_free(m);
    }
    /* naive passes through a first product (Flatten, Gemm; a Tanh keeps the incremental path
     * away): each substitution's row starts at the product's output (rows_from_front), against the
     * same function with an Add of zeros before the Flatten, which makes the head no product */
    {
        sal_model *ms[2];
        float w[16 * 384], b[16], w2[3 * 16], zero[1] = {0};
        t_randv(&r, w, 16 * 384, 0.2f), t_randv(&r, b, 16, 0.1f), t_randv(&r, w2, 48, 0.5f);
        for (int k = 0; k < 2; k++) {
            sal_model *g;
            SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
            SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, (int64_t[]){-1, 4, 96}) == SAL_OK);
            t_const(g, "w", 2, (int64_t[]){16, 384}, w), t_const(g, "b", 1, (int64_t[]){16}, b);
            t_const(g, "w2", 2, (int64_t[]){16, 3}, w2), t_const(g, "zero", 1, (int64_t[]){1}, zero);
            if (k) t_node(g, "Add", "add", 2, (const char *[]){"x", "zero"}, "x0", 0, NULL);
            t_node(g, "Flatten", "flat", 1, (const char *[]){k ? "x0" : "x"}, "f", 0, NULL);
            sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
            t_node(g, "Gemm", "fc", 3, (const char *[]){"f", "w", "b"}, "h", 1, tb);
            t_node(g, "Tanh", "tanh", 1, (const char *[]){"h"}, "a", 0, NULL);
            t_node(g, "MatMul", "mm", 2, (const char *[]){"a", "w2"}, "z", 0, NULL);
            ms[k] = t_finish(g, "z");
        }
        sal_explanation *near = explain(ms[0], &x, "ism", 1, (const char *[]){"mode=naive"});
        sal_explanation *full = explain(ms[1], &x, "ism", 1, (const char *[]){"mode=naive"});
        if (near && full) {
            double scale, d = max_abs_diff(sal_explanation_map(near), sal_explanation_map(full), &scale);
            CHECK(d <= 1e-5 * fmax(scale, 1), "ISM from the first product differs from full passes by %g (scale %g)",
                  d, scale);
            /* every row: 3 sequences of 1 + 3 x 96 substitutions and one more at the N base (4) */
            CHECK(sal_explanation_metric(near, "rows_from_front") == 3 * (2 + 3 * 96) &&
                      sal_explanation_metric(full, "rows_from_front") == 0,
                  "rows from the front: %g through the product, %g through the Add",
                  sal_explanation_metric(near, "rows_from_front"), sal_explanation_metric(full, "rows_from_front"));
        }
        sal_explanation_free(near), sal_explanation_free(full);
        sal_model_free(ms[0]), sal_model_free(ms[1]);
    }
    sal_model_free(models[0]), sal_model_free(models[1]);
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk);
}

/* The same small Conv1D model on (N, 4, L), and on (N, L, 4) through a Transpose. */
static sal_model *tiny_seq(bool last, int64_t L, const float *w1, const float *w2) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, last ? (int64_t[]){-1, L, 4} : (int64_t[]){-1, 4, L}) == SAL_OK);
    t_const(g, "w1", 3, (int64_t[]){3, 4, 5}, w1);
    t_const(g, "w2", 2, (int64_t[]){3 * L, 2}, w2);
    if (last) {
        sal_attr perm[1] = {sal_attr_make_ints("perm", 3, (int64_t[]){0, 2, 1})};
        t_node(g, "Transpose", "tr", 1, (const char *[]){"x"}, "xt", 1, perm);
    }
    sal_attr c1[2] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){5}), sal_attr_make_ints("pads", 2, (int64_t[]){2, 2})};
    t_node(g, "Conv", "conv", 2, (const char *[]){last ? "xt" : "x", "w1"}, "c", 2, c1);
    t_node(g, "Relu", "relu", 1, (const char *[]){"c"}, "a", 0, NULL);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
    t_node(g, "MatMul", "mm", 2, (const char *[]){"f", "w2"}, "z", 0, NULL);
    return t_finish(g, "z");
}

/* Bases on the last axis: the methods and the audit give the same numbers, transposed. */
static void test_layout(void) {
    sal_rng r;
    sal_rng_seed(&r, 33);
    int64_t L = 24;
    float w1[60], w2[3 * 24 * 2];
    t_randv(&r, w1, 60, 0.5f), t_randv(&r, w2, 144, 0.3f);
    sal_model *a = tiny_seq(false, L, w1, w2), *b = tiny_seq(true, L, w1, w2);
    int ids[1] = {3};
    sal_dna_opts o = {.count = 3, .length = L, .gc = 0.42, .cpg = 0.25, .nmotifs = 1, .motifs = ids, .seed = 5};
    sal_tensor x = {0}, y = {0}, mk = {0}, xt = {0};
    CHECK_OK(sal_dna_simulate(&o, &x, &y, &mk));
    CHECK_OK(sal_tensor_alloc(&xt, SAL_F32, 3, (int64_t[]){3, L, 4}));
    for (int64_t i = 0; i < 3; i++)
        for (int64_t c = 0; c < 4; c++)
            for (int64_t p = 0; p < L; p++) sal_f32(&xt)[(i * L + p) * 4 + c] = sal_f32(&x)[(i * 4 + c) * L + p];
    const char *methods[3] = {"ism", "deeplift_shap", "hypothetical"};
    for (int k = 0; k < 3; k++) {
        sal_explanation *ea = explain(a, &x, methods[k], 0, NULL), *eb = explain(b, &xt, methods[k], 0, NULL);
        if (!ea || !eb) continue;
        const float *ma = sal_f32(sal_explanation_map(ea)), *mb = sal_f32(sal_explanation_map(eb));
        double d = 0, s = 0;
        for (int64_t i = 0; i < 3; i++)
            for (int64_t c = 0; c < 4; c++)
                for (int64_t p = 0; p < L; p++) {
                    d = fmax(d, fabs((double)ma[(i * 4 + c) * L + p] - mb[(i * L + p) * 4 + c]));
                    s = fmax(s, fabs((double)ma[(i * 4 + c) * L + p]));
                }
        CHECK(d <= 1e-5 * fmax(s, 1) && s > 0, "%s: (N, L, 4) gives the (N, 4, L) map transposed (off by %g of %g)",
              methods[k], d, s);
        sal_explanation_free(ea), sal_explanation_free(eb);
    }
    sal_audit_method am[1] = {{.name = "gradient_x_input"}};
    sal_motif_opts mo = {.common = {.nmethods = 1, .methods = am}, .masks = &mk};
    sal_audit *aa = NULL, *ab = NULL;
    CHECK_OK(sal_audit_motif(a, &x, &mo, &aa));
    CHECK_OK(sal_audit_motif(b, &xt, &mo, &ab));
    if (aa && ab)
        CHECK(fabs(sal_audit_metric(aa, 0, "auroc") - sal_audit_metric(ab, 0, "auroc")) < 1e-6 &&
                  sal_audit_count(aa) == 3 && sal_audit_reference(aa, 1) && sal_audit_reference(aa, 2) &&
                  !sal_audit_reference(aa, 0) && sal_audit_metric(aa, 1, "auroc") == 1,
              "motif audit: the same AUROC on either layout, oracle and random rows marked as references");
    sal_audit_free(aa), sal_audit_free(ab);
    sal_model_free(a), sal_model_free(b);
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk), sal_tensor_free(&xt);
}

static void test_hypothetical(void) {
    int ids[2] = {2, 3};
    sal_dna_opts o = {.count = 2, .length = 64, .gc = 0.42, .cpg = 0.25, .nmotifs = 2, .motifs = ids, .seed = 4};
    sal_tensor x = {0}, y = {0}, mk = {0};
    CHECK_OK(sal_dna_simulate(&o, &x, &y, &mk));
    sal_model *m = NULL;
    CHECK_OK(sal_model_build("seqcnn:4x64", 3, 8, &m));
    if (!m) return;
    int64_t L = 64;
    /* the gradient, mean-centred: zero sum over the bases, differences between bases kept */
    sal_explanation *h = explain(m, &x, "hypothetical", 0, NULL), *g = explain(m, &x, "gradient", 0, NULL);
    if (h && g) {
        double sum = 0, diff = 0;
        const float *hv = sal_f32(sal_explanation_map(h)), *gv = sal_f32(sal_explanation_map(g));
        for (int64_t i = 0; i < 2; i++)
            for (int64_t p = 0; p < L; p++) {
                const float *hh = hv + i * 4 * L + p, *gg = gv + i * 4 * L + p;
                sum = fmax(sum, fabs((double)hh[0] + hh[L] + hh[2 * L] + hh[3 * L]));
                for (int b = 1; b < 4; b++)
                    diff = fmax(diff, fabs(((double)hh[b * L] - hh[0]) - ((double)gg[b * L] - gg[0])));
            }
        CHECK(sum < 1e-6 && diff < 1e-6, "gradient hypothetical: sums over bases %g, differences off by %g", sum, diff);
    }
    sal_explanation_free(h), sal_explanation_free(g);
    /* DeepLIFT-SHAP: contributions sum to f(x) - mean f(shuffles) computed here by forward passes;
     * hypothetical contributions at the sequence's own bases are those contributions */
    const char *prm[2] = {"references=6", "seed=3"};
    sal_explanation *d = explain(m, &x, "deeplift_shap", 2, prm);
    const char *hprm[3] = {"multipliers=deeplift_shap", "references=6", "seed=3"};
    sal_explanation *hd = explain(m, &x, "hypothetical", 3, hprm);
    sal_tensor refs = {0};
    CHECK_OK(sal_dna_shuffle(&x, 1, 6, 3, &refs));
    sal_session *s = NULL;
    CHECK_OK(sal_session_new(m, &s));
    if (d && hd && s && refs.data) {
        const sal_tensor *out;
        double worst = 0, own = 0;
        CHECK_OK(sal_forward(s, 1, &refs, &out));
        double fr[12];
        for (int k = 0; k < 12; k++) fr[k] = sal_f32(out)[k * 3 + sal_explanation_targets(d)[k / 6]];
        for (int64_t i = 0; i < 2; i++) {
            double want = sal_explanation_outputs(d)[i], sum = 0;
            for (int k = 0; k < 6; k++) want -= fr[i * 6 + k] / 6;
            const float *a = sal_f32(sal_explanation_map(d)) + i * 4 * L, *hh = sal_f32(sal_explanation_map(hd)) + i * 4 * L;
            const float *xi = sal_f32(&x) + i * 4 * L;
            for (int64_t e = 0; e < 4 * L; e++) sum += a[e];
            worst = fmax(worst, fabs(sum - want) / fmax(fabs(want), 1));
            for (int64_t p = 0; p < L; p++) {
                double at_base = 0, contrib = 0;
                for (int b = 0; b < 4; b++) at_base += xi[b * L + p] * hh[b * L + p], contrib += a[b * L + p];
                own = fmax(own, fabs(at_base - contrib));
            }
        }
        CHECK(worst < 1e-4, "deeplift_shap sums to f(x) - mean f(shuffled), off by %g (relative)", worst);
        CHECK(own < 1e-5, "hypothetical contributions at the own bases are DeepLIFT-SHAP's, off by %g", own);
    }
    sal_session_free(s);
    sal_tensor_free(&refs);
    sal_explanation_free(d), sal_explanation_free(hd);
    sal_explain_opts eo = {.method = "deeplift_shap"};
    sal_explanation *e = NULL;
    sal_tensor bad = {0};
    CHECK_OK(sal_tensor_alloc(&bad, SAL_F32, 3, (int64_t[]){1, 5, 64}));
    CHECK_FAILS(sal_explain(m, &bad, &eo, &e), SAL_ERR_SHAPE, "expects shape");
    sal_tensor_free(&bad);
    sal_model_free(m);
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk);
}

/* PPM optimization: the softmax parameterization's gradient against central differences, and on a
 * linear model (score = sum w[c, l] x[c, l]) the optimum puts each position on its best letter;
 * the MEME file holds the matrices. */
static void test_ppm(void) {
    sal_rng r;
    sal_rng_seed(&r, 21);
    fv_param p;
    int64_t sp[1] = {5};
    CHECK_OK(fv_param_init(&p, FV_SOFTMAX, 2, 4, 1, sp, 1, NULL, false, 0, 1));
    float P[40], x[40], g[40], gP[40], gcopy[40];
    t_randv(&r, P, 40, 1), t_randv(&r, g, 40, 1);
    fv_param_image(&p, P, x);
    memcpy(gcopy, g, sizeof g);
    fv_param_grad(&p, x, gcopy, gP);
    double worst = 0, colsum = 0;
    for (int i = 0; i < 40; i++) {
        double f[2];
        for (int k = 0; k < 2; k++) {
            float Q[40], y[40];
            memcpy(Q, P, sizeof Q);
            Q[i] += k ? -1e-3f : 1e-3f;
            fv_param_image(&p, Q, y);
            f[k] = 0;
            for (int e = 0; e < 40; e++) f[k] += (double)g[e] * y[e];
        }
        worst = fmax(worst, fabs((f[0] - f[1]) / 2e-3 - gP[i]));
    }
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 5; l++) colsum = fmax(colsum, fabs(x[n * 20 + l] + x[n * 20 + 5 + l] + x[n * 20 + 10 + l] + x[n * 20 + 15 + l] - 1));
    CHECK(worst < 2e-3 && colsum < 1e-6, "softmax parameterization: gradient off by %g, columns off 1 by %g", worst, colsum);
    fv_param_free(&p);

    sal_model *g0;
    SAL_ASSERT(sal_graph_create(NULL, &g0) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g0, "x", SAL_F32, 3, (int64_t[]){-1, 4, 12}) == SAL_OK);
    float w[48];
    t_randv(&r, w, 48, 1);
    t_const(g0, "w", 2, (int64_t[]){48, 1}, w);
    t_node(g0, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(g0, "MatMul", "mm", 2, (const char *[]){"f", "w"}, "z", 0, NULL);
    sal_model *m = t_finish(g0, "z");
    sal_objective *obj = NULL;
    CHECK_OK(sal_objective_parse(m, "logit:0", &obj));
    sal_featviz_opts o = sal_featviz_defaults();
    o.space = SAL_SPACE_SOFTMAX, o.entropy = 0.1f, o.steps = 300, o.lr = 0.2f;
    sal_featviz *f = NULL;
    CHECK_OK(sal_visualize(m, obj, &o, &f));
    if (f) {
        const sal_tensor *ppm = sal_featviz_images(f);
        int wrong = 0;
        double low = 1;
        for (int l = 0; l < 12; l++) {
            int best = 0, got = 0;
            for (int c = 1; c < 4; c++) {
                if (w[c * 12 + l] > w[best * 12 + l]) best = c;
                if (sal_f32(ppm)[c * 12 + l] > sal_f32(ppm)[got * 12 + l]) got = c;
            }
            wrong += best != got;
            low = fmin(low, sal_f32(ppm)[got * 12 + l]);
        }
        CHECK(!wrong && low > 0.8, "PPM optimization on a linear score: %d positions off their best letter, weakest %.3f", wrong, low);
        const char *path = t_tmp("m.meme");
        CHECK_OK(sal_meme_write(path, ppm, (const char *[]){"best"}));
        FILE *fp = fopen(path, "r");
        char line[256];
        int rows = 0;
        double err = 0;
        bool head = false, motif = false;
        while (fp && fgets(line, sizeof line, fp)) {
            head |= !strcmp(line, "MEME version 4\n");
            motif |= !strcmp(line, "MOTIF best\n");
            double v[4];
            if (sscanf(line, " %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3]) == 4 && line[0] == ' ') {
                for (int c = 0; c < 4 && rows < 12; c++) err = fmax(err, fabs(v[c] - sal_f32(ppm)[c * 12 + rows]));
                rows++;
            }
        }
        if (fp) fclose(fp);
        CHECK(head && motif && rows == 12 && err < 1e-5, "MEME: header, motif name, 12 rows equal to the matrix (off by %g)", err);
        sal_tensor bad = {0};
        CHECK_OK(sal_tensor_alloc(&bad, SAL_F32, 3, (int64_t[]){1, 4, 2}));
        CHECK_FAILS(sal_meme_write(path, &bad, NULL), SAL_ERR_NUMERIC, "sums to 0");
        sal_tensor_free(&bad);
    }
    sal_featviz_free(f);
    sal_objective_free(obj);
    sal_model_free(m);
}

/* Every allocation of a run failing in turn: an error with a message, every byte given back. */
typedef sal_status (*run_fn)(const void *u);

static void sweep(const char *what, run_fn fn, const void *u) {
    sal_status st = fn(u);
    CHECK(st == SAL_OK, "%s: clean run: %s", what, sal_last_error());
    size_t base = sal_memory_in_use();
    long k, bad = 0;
    for (k = 1; k < 200000 && st == SAL_OK; k++) {
        sal_alloc_fail_after(k);
        st = fn(u);
        sal_alloc_fail_after(0);
        if (st != SAL_OK && (!*sal_last_error() || st != SAL_ERR_NOMEM) && bad++ < 3)
            fprintf(stderr, "%s: allocation %ld: %s (%s)\n", what, k, sal_status_string(st), sal_last_error());
        if (sal_memory_in_use() != base && bad++ < 3)
            fprintf(stderr, "%s: allocation %ld leaks %zd bytes\n", what, k, (ssize_t)(sal_memory_in_use() - base));
        base = sal_memory_in_use();
        if (st != SAL_OK) st = SAL_OK;
        else break;
    }
    CHECK(!bad && k > 5, "%s: %ld allocations, each failure an out-of-memory error without leaks", what, k - 1);
}

typedef struct {
    const sal_model *m;
    const sal_tensor *x, *mk;
    const char *method;
    const char *const *params;
    int np;
} sweep_job;

static sal_status sweep_explain(const void *u) {
    const sweep_job *j = u;
    sal_explain_opts o = {.method = j->method, .nparams = j->np, .params = j->params};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(j->m, j->x, &o, &e);
    sal_explanation_free(e);
    return st;
}

static sal_status sweep_audit(const void *u) {
    const sweep_job *j = u;
    sal_audit_method am[2] = {{.name = "ism"}, {.name = "gradient"}};
    sal_motif_opts o = {.common = {.nmethods = 2, .methods = am}, .masks = j->mk};
    sal_audit *a = NULL;
    sal_status st = sal_audit_motif(j->m, j->x, &o, &a);
    sal_audit_free(a);
    return st;
}

static sal_status sweep_data(const void *u) {
    (void)u;
    int ids[2] = {0, 1};
    sal_dna_opts o = {.count = 4, .length = 40, .gc = 0.5, .cpg = 1, .nmotifs = 2, .motifs = ids, .task = SAL_DNA_TASK_AND};
    sal_tensor x = {0}, y = {0}, mk = {0}, sh = {0};
    sal_status st = sal_dna_simulate(&o, &x, &y, &mk);
    if (st == SAL_OK) st = sal_dna_shuffle(&x, 1, 2, 1, &sh);
    if (st == SAL_OK) st = sal_fasta_write(t_tmp("sweep.fa"), &x, 1, NULL);
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk), sal_tensor_free(&sh);
    char **names = NULL;
    int64_t n = 0;
    if (st == SAL_OK) st = sal_fasta_read(t_tmp("sweep.fa"), NULL, &x, &names, &n);
    sal_fasta_names_free(names, n);
    sal_tensor_free(&x);
    return st;
}

static void test_alloc_failures(void) {
    int ids[2] = {2, 3};
    sal_dna_opts o = {.count = 2, .length = 32, .gc = 0.42, .cpg = 0.25, .nmotifs = 2, .motifs = ids, .seed = 4};
    sal_tensor x = {0}, y = {0}, mk = {0};
    CHECK_OK(sal_dna_simulate(&o, &x, &y, &mk));
    sal_model *m = NULL;
    CHECK_OK(sal_model_build("seqcnn:4x32", 3, 8, &m));
    if (!m) return;
    sweep("data, shuffle, FASTA", sweep_data, NULL);
    sweep_job jobs[] = {
        {m, &x, &mk, "ism", NULL, 0},
        {m, &x, &mk, "ism", (const char *[]){"mode=full"}, 1},
        {m, &x, &mk, "ism", (const char *[]){"mode=naive"}, 1},
        {m, &x, &mk, "deeplift_shap", (const char *[]){"references=2"}, 1},
        {m, &x, &mk, "hypothetical", (const char *[]){"multipliers=deeplift_shap", "references=2"}, 2},
        {m, &x, &mk, "hypothetical", NULL, 0},
    };
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "%s %s", jobs[i].method, jobs[i].np ? jobs[i].params[0] : "");
        sweep(what, sweep_explain, &jobs[i]);
    }
    sweep("motif audit", sweep_audit, &jobs[0]);
    sal_model_free(m);
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&mk);
}

int main(void) {
    t_scratch_make("test_sequences");
    test_simulation();
    test_shuffle();
    test_fasta();
    test_ism();
    test_hypothetical();
    test_ppm();
    test_layout();
    test_alloc_failures();
    t_scratch_remove();
    return t_done("test_sequences");
}
