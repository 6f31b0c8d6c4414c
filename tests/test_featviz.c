/* Feature visualization: objective parsing and gradients, the closed-form optimum of a linear unit
 * under a norm constraint, invertibility and adjoints of the Fourier parameterization and of the
 * resampling transforms, diversity, inversion of an invertible linear layer, sequence PPMs, and
 * failures that name what is wrong. */
#include "featviz/featviz.h"
#include "testutil.h"
#include <unistd.h>

/* ---- small models built in memory ---- */

static void add_rand(sal_model *g, sal_rng *r, const char *name, int ndim, const int64_t *dim, float sd) {
    sal_tensor t = t_rand(r, ndim, dim, sd);
    SAL_ASSERT(sal_graph_add_const(g, name, &t) == SAL_OK);
}

static void add_node(sal_model *g, const char *op, const char *name, int nin, const char *const *in,
                     const char *out, int nattr, sal_attr *at) {
    sal_status st = sal_graph_add_node(g, op, name, nin, in, 1, (const char *[]){out}, nattr, at);
    if (st != SAL_OK) fprintf(stderr, "building a test model: %s\n", sal_last_error());
    SAL_ASSERT(st == SAL_OK);
}

/* x (N,C,H,W) -> conv k x k (F filters, no padding) "conv" -> relu -> flatten -> Gemm "fc" (K) */
static sal_model *conv_net(int C, int H, int W, int F, int k, int K, uint64_t seed) {
    sal_model *g;
    sal_rng r;
    sal_rng_seed(&r, seed);
    SAL_ASSERT(sal_graph_create("<conv_net>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, W}) == SAL_OK);
    add_rand(g, &r, "cw", 4, (int64_t[]){F, C, k, k}, 0.5f);
    add_rand(g, &r, "cb", 1, (int64_t[]){F}, 0.1f);
    sal_attr at[1] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){k, k})};
    add_node(g, "Conv", "conv", 3, (const char *[]){"x", "cw", "cb"}, "c", 1, at);
    add_node(g, "Relu", "relu", 1, (const char *[]){"c"}, "a", 0, NULL);
    add_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
    int64_t D = (int64_t)F * (H - k + 1) * (W - k + 1);
    add_rand(g, &r, "fw", 2, (int64_t[]){K, D}, 0.3f);
    add_rand(g, &r, "fb", 1, (int64_t[]){K}, 0.1f);
    sal_attr at2[1] = {sal_attr_make_int("transB", 1)};
    add_node(g, "Gemm", "fc", 3, (const char *[]){"f", "fw", "fb"}, "logits", 1, at2);
    return t_finish(g, "logits");
}

/* ---- objectives: parsing, and gradients against finite differences ---- */

static void test_parse(void) {
    sal_model *m = conv_net(1, 6, 6, 3, 3, 4, 1);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, "0.5*channel:conv:1 + 0.5*channel:conv:2", &o));
    CHECK(o && !strcmp(sal_objective_text(o), "0.5*channel:conv:1 + 0.5*channel:conv:2"), "text '%s'",
          sal_objective_text(o));
    sal_objective_free(o);
    CHECK_OK(sal_objective_parse(m, "layer:a - 2 * unit:c:0:1:1 + -logit:3", &o)); /* value names work too */
    CHECK(o && o->n == 3 && o->t[0].kind == FV_LAYER && o->t[1].w == -2 && o->t[1].kind == FV_UNIT &&
              o->t[1].nidx == 3 && o->t[2].w == -1 && o->t[2].kind == FV_LOGIT,
          "terms of 'layer:a - 2 * unit:c:0:1:1 + -logit:3': %s", o ? sal_objective_text(o) : "?");
    sal_objective_free(o);
    o = NULL;
    CHECK_FAILS(sal_objective_parse(m, "channel:nosuch:3", &o), SAL_ERR_ARG, "'nosuch'");
    CHECK(o == NULL, "failed parse returned an objective");
    CHECK_FAILS(sal_objective_parse(m, "unit:ghost:1:2:3", &o), SAL_ERR_ARG, "'ghost'");
    CHECK_FAILS(sal_objective_parse(m, "neurons:conv:1", &o), SAL_ERR_ARG, "unknown kind 'neurons'");
    CHECK_FAILS(sal_objective_parse(m, "x*channel:conv:1", &o), SAL_ERR_ARG, "weight 'x'");
    CHECK_FAILS(sal_objective_parse(m, "channel:conv:1 +", &o), SAL_ERR_ARG, "empty term");
    CHECK_FAILS(sal_objective_parse(m, "channel:conv:one", &o), SAL_ERR_ARG, "integer");
    CHECK_FAILS(sal_objective_parse(m, "direction:conv:/nonexistent/v.npy", &o), SAL_ERR_IO, "v.npy");
    /* indices are checked against the activation's shape at the first pass */
    CHECK_OK(sal_objective_parse(m, "channel:conv:7", &o));
    sal_tensor x = {0};
    float v[2];
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){2, 1, 6, 6}) == SAL_OK);
    CHECK_FAILS(sal_objective_values(m, o, &x, 0, v), SAL_ERR_SHAPE, "channel:conv:7");
    sal_objective_free(o);
    CHECK_OK(sal_objective_parse(m, "unit:conv:0:1", &o));
    CHECK_FAILS(sal_objective_values(m, o, &x, 0, v), SAL_ERR_SHAPE, "needs 3 indices");
    sal_objective_free(o);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* d objective / d input from the seeds equals central differences, for every kind of term. */
static void test_gradients(const char *dir) {
    sal_model *m = conv_net(2, 6, 6, 3, 3, 4, 2);
    sal_rng r;
    sal_rng_seed(&r, 3);
    char vpath[512], spec[1024];
    snprintf(vpath, sizeof vpath, "%s/dir.npy", dir);
    sal_tensor v = t_rand(&r, 1, (int64_t[]){3}, 1.0f);
    CHECK_OK(sal_npy_write(vpath, &v));
    snprintf(spec, sizeof spec,
             "0.5*unit:conv:1:2:3 + channel:conv:0 - 0.3*layer:relu + 2*prob:2 + logit:1 + 0.7*direction:conv:%s",
             vpath);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, spec, &o));
    if (!o) goto done;
    const int64_t B = 2;
    sal_tensor x = t_rand(&r, 4, (int64_t[]){B, 2, 6, 6}, 1.0f);
    sal_session *s = NULL;
    fv_seeds sd = {0};
    double val[2];
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_exec_forward(s, &x));
    CHECK_OK(fv_eval(o, s, B, 0, val, &sd));
    CHECK_OK(sal_exec_backward(s, sd.n, sd.val, sd.seed, NULL));
    sal_tensor g = {0};
    CHECK_OK(sal_tensor_copy(&g, &s->grad[m->input[0]]));
    int bad = 0, checked = 0;
    float *px = sal_f32(&x);
    for (int64_t e = 0; e < sal_tensor_numel(&x); e += 5) {
        double fd[2];
        for (int q = 0; q < 2; q++) {
            double h = 1e-2 / (1 << q), vp[2], vm[2];
            float x0 = px[e];
            px[e] = (float)(x0 + h);
            SAL_ASSERT(sal_exec_forward(s, &x) == SAL_OK && fv_eval(o, s, B, 0, vp, NULL) == SAL_OK);
            px[e] = (float)(x0 - h);
            SAL_ASSERT(sal_exec_forward(s, &x) == SAL_OK && fv_eval(o, s, B, 0, vm, NULL) == SAL_OK);
            px[e] = x0;
            fd[q] = (vp[0] + vp[1] - vm[0] - vm[1]) / (2 * h);
        }
        if (fabs(fd[0] - fd[1]) > 1e-3 + 1e-2 * fabs(fd[1])) continue; /* a ReLU kink */
        checked++;
        double a = sal_f32(&g)[e];
        if (fabs(a - fd[1]) > 2e-3 + 2e-2 * fabs(fd[1]) && bad++ < 5)
            fprintf(stderr, "objective gradient at %lld: analytic %g, finite difference %g\n", (long long)e, a, fd[1]);
    }
    CHECK(bad == 0 && checked > 20, "objective gradients: %d mismatches of %d checked", bad, checked);
    /* sal_objective_values agrees with the session's values, in chunks of one */
    float pv[2];
    CHECK_OK(sal_objective_values(m, o, &x, 1, pv));
    CHECK(fabs(pv[0] - val[0]) < 1e-4 * (1 + fabs(val[0])) && fabs(pv[1] - val[1]) < 1e-4 * (1 + fabs(val[1])),
          "values %g %g vs %g %g", (double)pv[0], (double)pv[1], val[0], val[1]);
    fv_seeds_free(&sd);
    sal_tensor_free(&g);
    sal_tensor_free(&x);
    sal_session_free(s);
done:
    sal_objective_free(o);
    sal_tensor_free(&v);
    unlink(vpath);
    sal_model_free(m);
}

/* ---- closed form: a linear first layer under ||x|| = rho is maximized by rho w / ||w|| ---- */

static void test_closed_form(void) {
    const int C = 2, H = 7, W = 7, k = 3, unit_c = 1, uy = 2, ux = 3;
    sal_model *m = conv_net(C, H, W, 4, k, 3, 11);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, "unit:conv:1:2:3", &o));
    sal_featviz_opts fo = sal_featviz_defaults();
    fo.opt = SAL_OPT_SGD;
    fo.lr = 0.5f;
    fo.steps = 60;
    fo.clip = 0;
    fo.norm = 2.0f;
    fo.init_sd = 0.5f;
    sal_featviz *f = NULL;
    CHECK_OK(sal_visualize(m, o, &fo, &f));
    if (f) {
        /* expected: the filter placed under the unit's receptive field, zero elsewhere, norm 2 */
        const float *w = sal_f32(&m->val[sal_graph_find(m, "cw")].t);
        double wn = 0, dot = 0, xn = 0, err = 0;
        for (int i = 0; i < C * k * k; i++) wn += (double)w[unit_c * C * k * k + i] * w[unit_c * C * k * k + i];
        wn = sqrt(wn);
        const float *x = sal_f32(sal_featviz_images(f));
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    bool in = y >= uy && y < uy + k && xx >= ux && xx < ux + k;
                    double want = in ? 2.0 * w[((unit_c * C + c) * k + (y - uy)) * k + (xx - ux)] / wn : 0;
                    double got = x[(c * H + y) * W + xx];
                    err = fmax(err, fabs(got - want));
                    dot += got * want;
                    xn += got * got;
                }
        CHECK(err < 1e-4, "unit optimum differs from 2 w/||w|| by %g", err);
        CHECK(fabs(sqrt(xn) - 2) < 1e-4 && dot / (2 * sqrt(xn)) > 0.99999, "norm %g, cosine %g", sqrt(xn),
              dot / (2 * sqrt(xn)));
        CHECK(sal_featviz_after(f)[0] > sal_featviz_before(f)[0], "objective did not grow: %g -> %g",
              (double)sal_featviz_before(f)[0], (double)sal_featviz_after(f)[0]);
        /* the optimum's value: rho ||w|| + bias */
        double want = 2 * wn + sal_f32(&m->val[sal_graph_find(m, "cb")].t)[unit_c];
        CHECK(fabs(sal_featviz_after(f)[0] - want) < 1e-3, "optimum value %g, closed form %g",
              (double)sal_featviz_after(f)[0], want);
    }
    sal_featviz_free(f);
    /* Adam also gets there (its second moment is shared over the image under the norm constraint),
     * to a looser tolerance: its steps do not shrink to zero on their own */
    fo.opt = SAL_OPT_ADAM;
    fo.lr = 0.02f;
    fo.steps = 300;
    f = NULL;
    CHECK_OK(sal_visualize(m, o, &fo, &f));
    if (f) {
        const float *w = sal_f32(&m->val[sal_graph_find(m, "cw")].t), *x = sal_f32(sal_featviz_images(f));
        double dot = 0, wn = 0, xn = 0;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    bool in = y >= uy && y < uy + k && xx >= ux && xx < ux + k;
                    double wv = in ? w[((unit_c * C + c) * k + (y - uy)) * k + (xx - ux)] : 0, xv = x[(c * H + y) * W + xx];
                    dot += wv * xv, wn += wv * wv, xn += xv * xv;
                }
        CHECK(dot / sqrt(wn * xn) > 0.999, "Adam: cosine with the filter %g", dot / sqrt(wn * xn));
    }
    sal_featviz_free(f);
    sal_objective_free(o);
    sal_model_free(m);
}

/* ---- the Fourier parameterization ---- */

static double maxdiff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_fourier(void) {
    struct {
        int rank;
        int64_t C, sp[2];
        bool colour, squash;
    } cases[] = {{2, 3, {8, 10}, true, true}, {2, 1, {7, 9}, false, false}, {2, 3, {5, 6}, true, false},
                 {1, 4, {13, 1}, false, true}, {1, 2, {16, 1}, false, false}};
    const float chol[9] = {1, 0, 0, 0.5f, 0.8f, 0, 0.3f, 0.2f, 0.6f};
    sal_rng r;
    sal_rng_seed(&r, 9);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        fv_param p;
        const int64_t N = 2;
        CHECK_OK(fv_param_init(&p, FV_FOURIER, N, cases[ci].C, cases[ci].rank, cases[ci].sp, 1.0,
                               cases[ci].colour ? chol : NULL, cases[ci].squash, 0.0f, 1.0f));
        const int64_t nx = N * cases[ci].C * p.S;
        float *x = malloc((size_t)nx * sizeof *x), *x2 = malloc((size_t)nx * sizeof *x), *g = malloc((size_t)nx * sizeof *x);
        float *P = malloc((size_t)p.np * sizeof *P), *P2 = malloc((size_t)p.np * sizeof *P), *dP = malloc((size_t)p.np * sizeof *P);
        float *gP = malloc((size_t)p.np * sizeof *P);
        for (int64_t i = 0; i < nx; i++) x[i] = cases[ci].squash ? 0.05f + 0.9f * (float)sal_rng_uniform(&r) : (float)sal_rng_normal(&r);
        /* image -> parameters -> image */
        fv_param_inverse(&p, x, P);
        fv_param_image(&p, P, x2);
        double e1 = maxdiff(x, x2, nx);
        CHECK(e1 < 1e-4, "case %zu: image -> Fourier -> image differs by %g", ci, e1);
        /* parameters -> image -> parameters (any Hermitian spectrum, here of a random image) */
        fv_param_image(&p, P, x2);
        fv_param_inverse(&p, x2, P2);
        double pm = 0;
        for (int64_t i = 0; i < p.np; i++) pm = fmax(pm, fabs(P[i]));
        double e2 = maxdiff(P, P2, p.np);
        CHECK(e2 < 1e-4 * (1 + pm), "case %zu: Fourier -> image -> Fourier differs by %g (max %g)", ci, e2, pm);
        /* the gradient: d<g, x(P + h dP)>/dh equals <dP, J^T g> counted over the full spectrum, where
         * an interior column of the half spectrum stands for itself and its mirror */
        for (int64_t i = 0; i < nx; i++) x2[i] = (float)sal_rng_normal(&r);
        fv_param_inverse(&p, x2, dP); /* a Hermitian direction */
        for (int64_t i = 0; i < nx; i++) g[i] = (float)sal_rng_normal(&r);
        fv_param_image(&p, P, x);
        memcpy(x2, g, (size_t)nx * sizeof *g);
        fv_param_grad(&p, x, x2, gP);
        const int64_t last = cases[ci].sp[cases[ci].rank - 1], half = last / 2 + 1;
        double an = 0;
        for (int64_t i = 0; i < p.np; i++) {
            int64_t kx = (i / 2) % half;
            double wgt = kx == 0 || (last % 2 == 0 && kx == last / 2) ? 1 : 2;
            an += wgt * (double)dP[i] * gP[i];
        }
        double h = cases[ci].squash ? 1e-2 : 1e-3, fp = 0, fm = 0;
        for (int64_t i = 0; i < p.np; i++) P2[i] = P[i] + (float)h * dP[i];
        fv_param_image(&p, P2, x);
        for (int64_t i = 0; i < nx; i++) fp += (double)g[i] * x[i];
        for (int64_t i = 0; i < p.np; i++) P2[i] = P[i] - (float)h * dP[i];
        fv_param_image(&p, P2, x);
        for (int64_t i = 0; i < nx; i++) fm += (double)g[i] * x[i];
        double fd = (fp - fm) / (2 * h);
        CHECK(fabs(fd - an) < 5e-3 * (1 + fabs(fd)), "case %zu: Fourier gradient %g, finite difference %g", ci, an, fd);
        /* white parameters give about unit-variance pixels (frequencies scaled to equal energy) */
        if (!cases[ci].squash && !cases[ci].colour) {
            memset(P2, 0, (size_t)p.np * sizeof *P2);
            fv_param_noise(&p, P2, 1.0f, &r);
            fv_param_image(&p, P2, x);
            double v = 0;
            for (int64_t i = 0; i < nx; i++) v += (double)x[i] * x[i];
            v /= (double)nx;
            CHECK(v > 0.3 && v < 3, "case %zu: white spectrum gives pixel variance %g", ci, v);
        }
        free(x), free(x2), free(g), free(P), free(P2), free(dP), free(gP);
        fv_param_free(&p);
    }
    /* the colour factor of data with known covariance */
    sal_tensor d = {0};
    SAL_ASSERT(sal_tensor_alloc(&d, SAL_F32, 4, (int64_t[]){50, 3, 8, 8}) == SAL_OK);
    float *pd = sal_f32(&d);
    for (int64_t n = 0; n < 50; n++)
        for (int64_t i = 0; i < 64; i++) {
            double a = sal_rng_normal(&r), b = sal_rng_normal(&r), c = sal_rng_normal(&r);
            pd[(n * 3 + 0) * 64 + i] = (float)(2 * a);
            pd[(n * 3 + 1) * 64 + i] = (float)(a + b);
            pd[(n * 3 + 2) * 64 + i] = (float)(0.5 * c);
        }
    float L[9];
    CHECK_OK(fv_colour_factor(&d, L));
    /* covariance [[4,2,0],[2,2,0],[0,0,.25]] -> L = [[2,0,0],[1,1,0],[0,0,.5]], / 2 */
    const float want[9] = {1, 0, 0, 0.5f, 0.5f, 0, 0, 0, 0.25f};
    CHECK(maxdiff(L, want, 9) < 0.06, "colour Cholesky factor off by %g", maxdiff(L, want, 9));
    sal_tensor_free(&d);
}

/* ---- resampling: exact adjoint, integer shifts ---- */

static void test_resample(void) {
    sal_rng r;
    sal_rng_seed(&r, 4);
    for (int rank = 1; rank <= 2; rank++)
        for (int rep = 0; rep < 2; rep++) {
            const int64_t C = 2, sp[2] = {9, rank == 2 ? 11 : 1}, S = sp[0] * sp[1];
            float x[2 * 99], y[2 * 99], gy[2 * 99], gx[2 * 99] = {0};
            for (int i = 0; i < C * S; i++) x[i] = (float)sal_rng_normal(&r), gy[i] = (float)sal_rng_normal(&r);
            fv_affine T;
            double th = 0.3, s = 1.1;
            T.A[0][0] = cos(th) / s, T.A[0][1] = sin(th) / s, T.A[1][0] = -sin(th) / s, T.A[1][1] = cos(th) / s;
            if (rank == 1) T.A[0][0] = 1 / s;
            T.t[0] = 0.7, T.t[1] = -1.3;
            fv_resample(x, y, C, rank, sp, &T, 0.0f, rep);
            fv_resample_adjoint(gy, gx, C, rank, sp, &T, rep);
            double a = 0, b = 0;
            for (int i = 0; i < C * S; i++) a += (double)y[i] * gy[i], b += (double)x[i] * gx[i];
            CHECK(fabs(a - b) < 1e-4 * (1 + fabs(a)), "rank %d replicate %d: <Rx, y> %g != <x, R^T y> %g", rank, rep, a, b);
        }
    /* an integer shift moves pixels exactly and fills the border */
    const int64_t sp[2] = {4, 5};
    float x[20], y[20];
    for (int i = 0; i < 20; i++) x[i] = (float)i;
    fv_affine T = {.A = {{1, 0}, {0, 1}}, .t = {-1, 2}}; /* output (i, j) reads (i - 1, j + 2) */
    fv_resample(x, y, 1, 2, sp, &T, -1.0f, false);
    int bad = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            int si = i - 1, sj = j + 2;
            float want = si >= 0 && si < 4 && sj < 5 ? x[si * 5 + sj] : -1.0f;
            bad += y[i * 5 + j] != want;
        }
    CHECK(bad == 0, "integer shift: %d pixels wrong", bad);
    /* the probability simplex projection */
    float v[4] = {0.9f, 0.6f, -0.3f, 0.1f}, tmp[4];
    fv_simplex(v, 4, 1, tmp);
    CHECK(fabsf(v[0] - 0.65f) < 1e-6f && fabsf(v[1] - 0.35f) < 1e-6f && v[2] == 0 && v[3] == 0,
          "simplex projection gave %g %g %g %g", (double)v[0], (double)v[1], (double)v[2], (double)v[3]);
    /* total variation's gradient */
    float im[2 * 12], gi[2 * 12] = {0};
    const int64_t tsp[2] = {3, 4};
    for (int i = 0; i < 24; i++) im[i] = (float)sal_rng_normal(&r);
    for (double beta = 1; beta <= 2; beta += 1) {
        memset(gi, 0, sizeof gi);
        fv_tv(im, gi, 1.0, 2, 2, tsp, beta);
        int wrong = 0;
        for (int e = 0; e < 24; e++) {
            float x0 = im[e];
            im[e] = x0 + 1e-3f;
            double p = fv_tv(im, NULL, 0, 2, 2, tsp, beta);
            im[e] = x0 - 1e-3f;
            double q = fv_tv(im, NULL, 0, 2, 2, tsp, beta);
            im[e] = x0;
            wrong += fabs((p - q) / 2e-3 - gi[e]) > 1e-2 * (1 + fabs(gi[e]));
        }
        CHECK(wrong == 0, "total variation (beta %g): %d gradient entries wrong", beta, wrong);
    }
}

/* ---- diversity and the full recipe ---- */

static double mean_pair_dist(const sal_tensor *x) {
    const int64_t B = x->dim[0], E = sal_tensor_numel(x) / B;
    double s = 0;
    for (int64_t a = 0; a < B; a++)
        for (int64_t b = a + 1; b < B; b++) {
            double d = 0;
            for (int64_t i = 0; i < E; i++) {
                double t = (double)sal_f32(x)[a * E + i] - sal_f32(x)[b * E + i];
                d += t * t;
            }
            s += sqrt(d);
        }
    return s / (double)(B * (B - 1) / 2);
}

static void test_diversity(void) {
    sal_model *m = conv_net(1, 10, 10, 6, 3, 3, 21);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, "channel:conv:2", &o));
    sal_featviz_opts fo = sal_featviz_defaults();
    fo.batch = 4;
    fo.steps = 80;
    fo.seed = 3;
    fo.init_sd = 0.05f;
    fo.diversity_node = "relu";
    sal_featviz *f0 = NULL, *f1 = NULL;
    CHECK_OK(sal_visualize(m, o, &fo, &f0));
    fo.diversity = 5.0f;
    CHECK_OK(sal_visualize(m, o, &fo, &f1));
    if (f0 && f1) {
        double d0 = mean_pair_dist(sal_featviz_images(f0)), d1 = mean_pair_dist(sal_featviz_images(f1));
        CHECK(d1 > 1.5 * d0, "diversity: mean pairwise distance %g without, %g with", d0, d1);
        char *j0 = NULL, *j1 = NULL;
        CHECK_OK(sal_featviz_json(f0, &j0));
        CHECK_OK(sal_featviz_json(f1, &j1));
        const char *k = "\"gram_cosine_after\": ";
        double c0 = j0 && strstr(j0, k) ? atof(strstr(j0, k) + strlen(k)) : 2;
        double c1 = j1 && strstr(j1, k) ? atof(strstr(j1, k) + strlen(k)) : 2;
        CHECK(c1 < c0, "diversity: Gram cosine %g without, %g with", c0, c1);
        free(j0);
        free(j1);
    }
    sal_featviz_free(f0);
    sal_featviz_free(f1);
    sal_objective_free(o);
    sal_model_free(m);
}

static void test_recipe(void) {
    /* Fourier space, colour data, jitter, scale, rotation, blur, TV, L1: runs, stays in range, grows
     * the objective, and is deterministic */
    sal_model *m = conv_net(3, 12, 12, 4, 3, 5, 31);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, "logit:2 + 0.1*layer:conv", &o));
    sal_rng r;
    sal_rng_seed(&r, 8);
    sal_tensor data = {0};
    SAL_ASSERT(sal_tensor_alloc(&data, SAL_F32, 4, (int64_t[]){6, 3, 12, 12}) == SAL_OK);
    for (int64_t i = 0; i < sal_tensor_numel(&data); i++) sal_f32(&data)[i] = (float)sal_rng_uniform(&r);
    for (int64_t i = 0; i < 6 * 144; i++) /* correlate green with red */
        sal_f32(&data)[(i / 144) * 432 + 144 + i % 144] = 0.5f * sal_f32(&data)[(i / 144) * 432 + i % 144] + 0.25f;
    static const float scales[] = {1, 0.975f, 1.025f, 0.95f, 1.05f}, angles[] = {-5, -2, 0, 2, 5};
    sal_featviz_opts fo = sal_featviz_defaults();
    fo.space = SAL_SPACE_FOURIER;
    fo.data = &data;
    fo.batch = 2;
    fo.steps = 40;
    fo.pad = 2, fo.jitter = 2, fo.jitter2 = 1;
    fo.scales = scales, fo.nscales = 5, fo.angles = angles, fo.nangles = 5;
    fo.blur_every = 8, fo.tv = 0.05f, fo.l1 = 0.01f, fo.center = 0.5;
    fo.snapshots = 3;
    sal_featviz *f = NULL, *g = NULL;
    CHECK_OK(sal_visualize(m, o, &fo, &f));
    CHECK_OK(sal_visualize(m, o, &fo, &g));
    if (f && g) {
        const sal_tensor *x = sal_featviz_images(f);
        float lo = 1e9f, hi = -1e9f;
        for (int64_t i = 0; i < sal_tensor_numel(x); i++) lo = fminf(lo, sal_f32(x)[i]), hi = fmaxf(hi, sal_f32(x)[i]);
        CHECK(lo >= 0 && hi <= 1, "Fourier image outside the data range: [%g, %g]", (double)lo, (double)hi);
        CHECK(sal_featviz_after(f)[0] > sal_featviz_before(f)[0] + 0.5 && sal_featviz_after(f)[1] > sal_featviz_before(f)[1] + 0.5,
              "objective %g -> %g, %g -> %g", (double)sal_featviz_before(f)[0], (double)sal_featviz_after(f)[0],
              (double)sal_featviz_before(f)[1], (double)sal_featviz_after(f)[1]);
        CHECK(!memcmp(x->data, sal_featviz_images(g)->data, (size_t)sal_tensor_numel(x) * 4),
              "the same seed gave different images");
        const sal_tensor *sn = sal_featviz_snapshots(f);
        CHECK(sn && sn->ndim == 5 && sn->dim[0] == 3 && sal_featviz_snapshot_steps(f)[2] == 40 &&
                  !memcmp(sal_f32(sn) + 2 * sal_tensor_numel(x), x->data, (size_t)sal_tensor_numel(x) * 4),
              "snapshots: the last is not the result");
        char *js = NULL;
        CHECK_OK(sal_featviz_json(f, &js));
        CHECK(js && strstr(js, "\"before\": [") && strstr(js, "\"decorrelated\": true") &&
                  strstr(js, "\"space\": \"fourier\""),
              "json: %s", js ? js : "(none)");
        free(js);
    }
    sal_featviz_free(f);
    sal_featviz_free(g);
    /* every allocation failure is reported and frees what it took (ASan checks the frees) */
    fo.steps = 2;
    int failures = 0, k;
    for (k = 1; k < 400; k++) {
        sal_featviz *h = NULL;
        sal_alloc_fail_after(k);
        sal_status st = sal_visualize(m, o, &fo, &h);
        sal_alloc_fail_after(0);
        sal_featviz_free(h);
        if (st == SAL_OK) break;
        failures += st == SAL_ERR_NOMEM;
        if (st != SAL_ERR_NOMEM) {
            CHECK(0, "allocation failure %d gave %s: %s", k, sal_status_string(st), sal_last_error());
            break;
        }
    }
    CHECK(k < 400 && failures > 5, "allocation failures: %d reported before success at %d", failures, k);
    sal_tensor_free(&data);
    sal_objective_free(o);
    sal_model_free(m);
}

/* ---- inversion of an invertible linear layer ---- */

static void test_inversion(void) {
    const int D = 12;
    sal_model *g;
    sal_rng r;
    sal_rng_seed(&r, 5);
    SAL_ASSERT(sal_graph_create("<linear>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
    sal_tensor w = t_rand(&r, 2, (int64_t[]){D, D}, 0.1f);
    for (int i = 0; i < D; i++) sal_f32(&w)[i * D + i] += 1.0f; /* well conditioned */
    SAL_ASSERT(sal_graph_add_const(g, "W", &w) == SAL_OK);
    add_rand(g, &r, "b", 1, (int64_t[]){D}, 0.5f);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    add_node(g, "Gemm", "lin", 3, (const char *[]){"x", "W", "b"}, "h", 1, at);
    add_node(g, "Relu", "relu", 1, (const char *[]){"h"}, "y", 0, NULL);
    sal_model *m = t_finish(g, "y");
    sal_tensor x0 = {0};
    SAL_ASSERT(sal_tensor_alloc(&x0, SAL_F32, 2, (int64_t[]){3, D}) == SAL_OK);
    for (int i = 0; i < 3 * D; i++) sal_f32(&x0)[i] = (float)sal_rng_uniform(&r);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_inversion(m, "lin", &x0, &o));
    sal_featviz_opts fo = sal_featviz_defaults();
    fo.opt = SAL_OPT_SGD; /* a quadratic: plain gradient descent converges linearly */
    fo.steps = 400;
    fo.lr = 1.0f;
    sal_featviz *f = NULL;
    CHECK_OK(sal_visualize(m, o, &fo, &f));
    if (f) {
        const sal_tensor *x = sal_featviz_images(f);
        double e = maxdiff(sal_f32(x), sal_f32(&x0), 3 * D);
        CHECK(x->dim[0] == 3 && e < 5e-3, "inversion: batch %lld, recovered input off by %g", (long long)x->dim[0], e);
        CHECK(sal_featviz_after(f)[0] > -1e-5 && sal_featviz_before(f)[0] < -1e-2, "inversion loss %g -> %g",
              (double)sal_featviz_before(f)[0], (double)sal_featviz_after(f)[0]);
    }
    sal_featviz_free(f);
    /* the batch must match the inputs inverted */
    fo.batch = 2;
    f = NULL;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_ARG, "inverts 3 samples");
    sal_objective *o2 = NULL;
    CHECK_FAILS(sal_objective_inversion(m, "nowhere", &x0, &o2), SAL_ERR_ARG, "'nowhere'");
    CHECK(o2 == NULL, "a failed inversion returned an objective");
    sal_objective_free(o);
    sal_tensor_free(&x0);
    sal_model_free(m);
}

/* ---- sequences: a position probability matrix ---- */

static void test_sequence(void) {
    const int A = 4, L = 12, k = 5;
    sal_model *g;
    sal_rng r;
    sal_rng_seed(&r, 6);
    SAL_ASSERT(sal_graph_create("<seq>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "seq", SAL_F32, 3, (int64_t[]){-1, A, L}) == SAL_OK);
    add_rand(g, &r, "w", 3, (int64_t[]){2, A, k}, 1.0f);
    add_rand(g, &r, "b", 1, (int64_t[]){2}, 0.1f);
    sal_attr at[1] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){k})};
    add_node(g, "Conv", "conv1d", 3, (const char *[]){"seq", "w", "b"}, "c", 1, at);
    add_node(g, "Relu", "relu", 1, (const char *[]){"c"}, "a", 0, NULL);
    sal_model *m = t_finish(g, "a");
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, "unit:conv1d:1:3", &o));
    sal_featviz_opts fo = sal_featviz_defaults();
    fo.ppm = 1;
    fo.steps = 150;
    fo.lr = 0.05f;
    sal_featviz *f = NULL;
    CHECK_OK(sal_visualize(m, o, &fo, &f));
    if (f) {
        const float *x = sal_f32(sal_featviz_images(f)), *w = sal_f32(&m->val[sal_graph_find(m, "w")].t);
        int bad = 0, wrong = 0;
        for (int l = 0; l < L; l++) {
            double s = 0;
            for (int a = 0; a < A; a++) {
                s += x[a * L + l];
                bad += x[a * L + l] < 0;
            }
            bad += fabs(s - 1) > 1e-5;
        }
        /* within the unit's window the optimum is one-hot at each column's largest weight */
        for (int p = 0; p < k; p++) {
            int best = 0;
            for (int a = 1; a < A; a++)
                if (w[(1 * A + a) * k + p] > w[(1 * A + best) * k + p]) best = a;
            wrong += x[best * L + 3 + p] < 0.99f;

        }
        CHECK(bad == 0, "ppm: %d entries negative or positions not summing to 1", bad);
        CHECK(wrong == 0, "ppm: %d window positions not one-hot at the filter's best letter", wrong);
    }
    sal_featviz_free(f);
    sal_objective_free(o);
    sal_model_free(m);
}

/* ---- options and inputs that are refused ---- */

static void test_refusals(void) {
    sal_model *m = conv_net(1, 6, 6, 3, 3, 4, 1);
    sal_objective *o = NULL;
    CHECK_OK(sal_objective_parse(m, "logit:1", &o));
    sal_featviz_opts fo = sal_featviz_defaults();
    sal_featviz *f = NULL;
    fo.steps = 1;
    fo.diversity = 1;
    fo.batch = 1;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_ARG, "batch of 2");
    fo.batch = 2;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_ARG, "reads no layer");
    fo.diversity_node = "nope";
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_ARG, "'nope'");
    fo = sal_featviz_defaults();
    fo.ppm = 1;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_UNSUPPORTED, "ppm");
    fo = sal_featviz_defaults();
    fo.lr = -1;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_ARG, "lr");
    fo = sal_featviz_defaults();
    fo.space = SAL_SPACE_FOURIER;
    fo.norm = 1;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_UNSUPPORTED, "norm");
    fo = sal_featviz_defaults();
    sal_tensor init = {0};
    SAL_ASSERT(sal_tensor_alloc(&init, SAL_F32, 4, (int64_t[]){1, 1, 5, 6}) == SAL_OK);
    fo.init = &init;
    CHECK_FAILS(sal_visualize(m, o, &fo, &f), SAL_ERR_SHAPE, "start image");
    sal_tensor_free(&init);
    CHECK(f == NULL, "a refused run returned a result");
    sal_objective_free(o);
    sal_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/test_featviz_XXXXXX";
    if (!mkdtemp(dir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    test_parse();
    test_gradients(dir);
    test_closed_form();
    test_fourier();
    test_resample();
    test_diversity();
    test_recipe();
    test_inversion();
    test_sequence();
    test_refusals();
    rmdir(dir);
    return t_done("test_featviz");
}
