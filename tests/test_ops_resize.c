/* Resize, Upsample and ConvTranspose: forward against direct loops written here (2-D bilinear and
 * nearest from their formulas, transposed convolution as a scatter), gradients against finite
 * differences, opset variants against each other, the adjoint identity between ConvTranspose and
 * Conv, ConvTranspose through linear_ops.h, and the refusals that must name the node. */
#include "opcheck.h"
#include "ops/linear_ops.h"

static sal_rng R;

static sal_tensor trand(int ndim, const int64_t *dim) { return t_rand(&R, ndim, dim, 1.0f); }

static void gc(int64_t opset, const char *op, int nin, sal_tensor *in, const bool *cst, int nattr, sal_attr *attr) {
    oc_gradcheck((oc_node){opset, op, nin, 1, in, cst, nattr, attr}, 11);
}

static sal_status run1(int64_t opset, const char *op, int nin, const sal_tensor *in, const bool *cst, int nattr,
                       sal_attr *attr, sal_tensor *y) {
    return oc_run((oc_node){opset, op, nin, 1, in, cst, nattr, attr}, y, NULL, 0, NULL);
}

static void free_all(sal_tensor **t, size_t n) {
    for (size_t i = 0; i < n; i++) sal_tensor_free(t[i]);
}
#define FREE(...) free_all((sal_tensor *[]){__VA_ARGS__}, sizeof((sal_tensor *[]){__VA_ARGS__}) / sizeof(sal_tensor *))

static double dot(const sal_tensor *a, const sal_tensor *b) {
    double s = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++) s += (double)sal_f32(a)[i] * sal_f32(b)[i];
    return s;
}

/* ---- Resize: direct 2-D formulas ---- */

typedef enum { HALF, PYHALF, ALIGN, ASYM } ctm;
static const char *const ctm_name[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"};

static double src_of(ctm m, int64_t j, int64_t in, int64_t out, double s) {
    switch (m) {
    case HALF: return (j + 0.5) / s - 0.5;
    case PYHALF: return out > 1 ? (j + 0.5) / s - 0.5 : 0;
    case ALIGN: return out > 1 ? (double)j * (double)(in - 1) / (double)(out - 1) : 0;
    case ASYM: return j / s;
    }
    return 0;
}

/* Bilinear over the last two axes of x (P, H, W) into (P, OH, OW), four corners at a time. */
static sal_tensor ref_bilinear(const sal_tensor *x, int64_t OH, int64_t OW, ctm m, double sh, double sw) {
    int64_t H = x->dim[x->ndim - 2], W = x->dim[x->ndim - 1], P = sal_tensor_numel(x) / (H * W);
    sal_tensor y = {0};
    int64_t od[8];
    memcpy(od, x->dim, sizeof od);
    od[x->ndim - 2] = OH, od[x->ndim - 1] = OW;
    y = tf32(x->ndim, od, NULL);
    for (int64_t p = 0; p < P; p++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                double u = fmin(fmax(src_of(m, i, H, OH, sh), 0), (double)(H - 1));
                double v = fmin(fmax(src_of(m, j, W, OW, sw), 0), (double)(W - 1));
                int64_t u0 = (int64_t)u, v0 = (int64_t)v, u1 = u0 + 1 < H ? u0 + 1 : u0, v1 = v0 + 1 < W ? v0 + 1 : v0;
                double a = u - (double)u0, b = v - (double)v0;
                const float *xp = sal_f32(x) + p * H * W;
                sal_f32(&y)[(p * OH + i) * OW + j] =
                    (float)((1 - a) * (1 - b) * xp[u0 * W + v0] + (1 - a) * b * xp[u0 * W + v1] +
                            a * (1 - b) * xp[u1 * W + v0] + a * b * xp[u1 * W + v1]);
            }
    return y;
}

/* Nearest over the last two axes with the given rounding of the source coordinate. */
static sal_tensor ref_nearest(const sal_tensor *x, int64_t OH, int64_t OW, ctm m, double sh, double sw,
                              double (*rnd)(double)) {
    int64_t H = x->dim[x->ndim - 2], W = x->dim[x->ndim - 1], P = sal_tensor_numel(x) / (H * W);
    int64_t od[8];
    memcpy(od, x->dim, sizeof od);
    od[x->ndim - 2] = OH, od[x->ndim - 1] = OW;
    sal_tensor y = tf32(x->ndim, od, NULL);
    for (int64_t p = 0; p < P; p++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                int64_t u = (int64_t)fmin(fmax(rnd(src_of(m, i, H, OH, sh)), 0), (double)(H - 1));
                int64_t v = (int64_t)fmin(fmax(rnd(src_of(m, j, W, OW, sw)), 0), (double)(W - 1));
                sal_f32(&y)[(p * OH + i) * OW + j] = sal_f32(x)[(p * H + u) * W + v];
            }
    return y;
}

static double prefer_floor(double x) { return ceil(x - 0.5); }
static double prefer_ceil(double x) { return floor(x + 0.5); }

/* Resize opset 13 on x with scales (4 entries) or sizes, against want. */
static void resize_case(const char *what, const sal_tensor *x, const float *scales, const int64_t *sizes,
                        const char *mode, const char *ct, const char *nm, const sal_tensor *want) {
    sal_tensor sc = scales ? tf32(1, DIMS(4), scales) : (sal_tensor){.ndim = -1};
    sal_tensor sz = sizes ? ti64(1, DIMS(4), sizes) : (sal_tensor){.ndim = -1}, y = {0};
    sal_attr at[3] = {sal_attr_make_string("mode", mode), sal_attr_make_string("coordinate_transformation_mode", ct),
                      sal_attr_make_string("nearest_mode", nm)};
    CHECK_OK(run1(13, "Resize", sizes ? 4 : 3, (sal_tensor[]){*x, OMITTED, sc, sz}, BOOLS(false, true, true, true), 3, at, &y));
    CHECK(max_diff(&y, want) < 1e-5, "Resize %s (max diff %g)", what, max_diff(&y, want));
    /* the same with scales or sizes as graph inputs rather than constants, and its gradient */
    sal_attr ag[3] = {sal_attr_make_string("mode", mode), sal_attr_make_string("coordinate_transformation_mode", ct),
                      sal_attr_make_string("nearest_mode", nm)};
    sal_tensor xx = {0};
    SAL_ASSERT(sal_tensor_copy(&xx, x) == SAL_OK);
    gc(13, "Resize", sizes ? 4 : 3, (sal_tensor[]){xx, OMITTED, sc, sz}, BOOLS(false, false, false, false), 3, ag);
    sal_tensor_free(&y);
}

static void test_resize_values(void) {
    sal_tensor x = trand(4, DIMS(2, 3, 4, 5));
    for (int m = 0; m < 4; m++) {
        /* enlarging by 2 x 1.6 with scales; shrinking to (3, 3) with sizes */
        sal_tensor w = ref_bilinear(&x, 8, 8, (ctm)m, 2, 1.6);
        char what[64];
        snprintf(what, sizeof what, "linear %s up", ctm_name[m]);
        resize_case(what, &x, (float[]){1, 1, 2, 1.6f}, NULL, "linear", ctm_name[m], "floor", &w);
        sal_tensor_free(&w);
        w = ref_bilinear(&x, 3, 3, (ctm)m, 3.0 / 4, 3.0 / 5);
        snprintf(what, sizeof what, "linear %s down", ctm_name[m]);
        resize_case(what, &x, NULL, DIMS(2, 3, 3, 3), "linear", ctm_name[m], "floor", &w);
        sal_tensor_free(&w);
    }
    struct {
        const char *nm;
        double (*f)(double);
    } nms[] = {{"round_prefer_floor", prefer_floor}, {"round_prefer_ceil", prefer_ceil}, {"floor", floor}, {"ceil", ceil}};
    for (int k = 0; k < 4; k++)
        for (int m = 0; m < 4; m += 3) { /* half_pixel and asymmetric */
            sal_tensor w = ref_nearest(&x, 9, 7, (ctm)m, 9.0 / 4, 7.0 / 5, nms[k].f);
            char what[80];
            snprintf(what, sizeof what, "nearest %s %s", nms[k].nm, ctm_name[m]);
            resize_case(what, &x, NULL, DIMS(2, 3, 9, 7), "nearest", ctm_name[m], nms[k].nm, &w);
            sal_tensor_free(&w);
        }
    sal_tensor_free(&x);
}

static void test_resize_opsets(void) {
    sal_tensor x = trand(4, DIMS(1, 2, 3, 4)), y1 = {0}, y2 = {0}, y3 = {0};
    sal_tensor sc = FVEC(1, 1, 2, 3), roi = tf32(1, DIMS(0), NULL);
    /* nearest 2 x 3: Upsample 9 (input), Upsample's attribute, Resize 10, Resize 13 asymmetric floor */
    CHECK_OK(run1(9, "Upsample", 2, (sal_tensor[]){x, sc}, BOOLS(false, true), 0, NULL, &y1));
    sal_attr us[1] = {{.name = sal_strdup("scales"), .type = SAL_ATTR_FLOATS, .n = 4, .floats = sal_malloc(16)}};
    memcpy(us[0].floats, (float[]){1, 1, 2, 3}, 16);
    CHECK_OK(run1(9, "Upsample", 1, &x, NULL, 1, us, &y2));
    CHECK_OK(run1(10, "Resize", 2, (sal_tensor[]){x, sc}, BOOLS(false, true), 0, NULL, &y3));
    sal_tensor w = ref_nearest(&x, 6, 12, ASYM, 2, 3, floor);
    CHECK(max_diff(&y1, &w) == 0 && max_diff(&y2, &w) == 0 && max_diff(&y3, &w) == 0,
          "nearest upsampling: Upsample input and attribute, Resize 10");
    sal_attr r13[2] = {sal_attr_make_string("coordinate_transformation_mode", "asymmetric"),
                       sal_attr_make_string("nearest_mode", "floor")};
    /* opset 11: roi and scales given (roi empty) */
    CHECK_OK(run1(11, "Resize", 3, (sal_tensor[]){x, roi, sc}, BOOLS(false, true, true), 2, r13, &y1));
    CHECK(max_diff(&y1, &w) == 0, "Resize 11 asymmetric floor");
    sal_tensor_free(&w);
    /* linear: Upsample ("linear" and old "bilinear") is Resize 10 is asymmetric */
    sal_attr ul[1] = {sal_attr_make_string("mode", "bilinear")}, rl[1] = {sal_attr_make_string("mode", "linear")};
    CHECK_OK(run1(9, "Upsample", 2, (sal_tensor[]){x, sc}, BOOLS(false, true), 1, ul, &y1));
    CHECK_OK(run1(10, "Resize", 2, (sal_tensor[]){x, sc}, BOOLS(false, true), 1, rl, &y2));
    w = ref_bilinear(&x, 6, 12, ASYM, 2, 3);
    CHECK(max_diff(&y1, &w) < 1e-6 && max_diff(&y2, &w) < 1e-6, "linear Upsample 9 and Resize 10");
    sal_tensor_free(&w);
    /* opset 18: axes, and keep_aspect_ratio_policy */
    sal_tensor s2 = FVEC(2, 3), z2 = VEC(6, 6);
    sal_attr ax[2] = {sal_attr_make_ints("axes", 2, DIMS(-2, 3)), sal_attr_make_string("mode", "linear")};
    CHECK_OK(run1(18, "Resize", 3, (sal_tensor[]){x, OMITTED, s2}, BOOLS(false, true, true), 2, ax, &y1));
    w = ref_bilinear(&x, 6, 12, HALF, 2, 3);
    CHECK(max_diff(&y1, &w) < 1e-6, "Resize 18 with axes");
    sal_tensor_free(&w);
    sal_attr kl[3] = {sal_attr_make_ints("axes", 2, DIMS(2, 3)), sal_attr_make_string("keep_aspect_ratio_policy", "not_larger"),
                      sal_attr_make_string("mode", "linear")};
    CHECK_OK(run1(18, "Resize", 4, (sal_tensor[]){x, OMITTED, OMITTED, z2}, BOOLS(false, true, true, true), 3, kl, &y1));
    w = ref_bilinear(&x, 5, 6, HALF, 1.5, 1.5); /* min(6/3, 6/4) = 1.5: (4.5 -> 5, 6) */
    CHECK(shape_is(&y1, 4, DIMS(1, 2, 5, 6)) && max_diff(&y1, &w) < 1e-6, "Resize 18 not_larger");
    sal_tensor_free(&w);
    sal_attr ks[2] = {sal_attr_make_ints("axes", 2, DIMS(2, 3)), sal_attr_make_string("keep_aspect_ratio_policy", "not_smaller")};
    CHECK_OK(run1(18, "Resize", 4, (sal_tensor[]){x, OMITTED, OMITTED, z2}, BOOLS(false, true, true, true), 2, ks, &y1));
    CHECK(shape_is(&y1, 4, DIMS(1, 2, 6, 8)), "Resize 18 not_smaller");
    /* opset 19: half_pixel_symmetric keeps the centre: resizing 4 -> 2 by sizes is half_pixel */
    sal_attr hs[2] = {sal_attr_make_string("coordinate_transformation_mode", "half_pixel_symmetric"),
                      sal_attr_make_string("mode", "linear")};
    sal_tensor z3 = VEC(1, 2, 3, 2);
    CHECK_OK(run1(19, "Resize", 4, (sal_tensor[]){x, OMITTED, OMITTED, z3}, BOOLS(false, true, true, true), 2, hs, &y1));
    w = ref_bilinear(&x, 3, 2, HALF, 1, 0.5);
    CHECK(max_diff(&y1, &w) < 1e-6, "Resize 19 half_pixel_symmetric on whole sizes");
    sal_tensor_free(&w);
    /* refusals at load, naming the node */
    static const char *const bad[][2] = {{"mode", "cubic"}, {"coordinate_transformation_mode", "tf_crop_and_resize"},
                                         {"nearest_mode", "round_half_even"}};
    for (int k = 0; k < 3; k++) {
        sal_attr b[1] = {sal_attr_make_string(bad[k][0], bad[k][1])};
        CHECK_FAILS(run1(13, "Resize", 3, (sal_tensor[]){x, OMITTED, sc}, BOOLS(false, true, true), 1, b, &y1),
                    SAL_ERR_UNSUPPORTED, "node 'n' (Resize)");
    }
    sal_attr aa[2] = {sal_attr_make_string("mode", "linear"), sal_attr_make_int("antialias", 1)};
    CHECK_FAILS(run1(18, "Resize", 3, (sal_tensor[]){x, OMITTED, sc}, BOOLS(false, true, true), 2, aa, &y1),
                SAL_ERR_UNSUPPORTED, "antialiased");
    sal_tensor z4 = VEC(1, 2, 6, 8);
    CHECK_FAILS(run1(13, "Resize", 4, (sal_tensor[]){x, OMITTED, sc, z4}, BOOLS(false, true, true, true), 0, NULL, &y1),
                SAL_ERR_ARG, "scales and sizes are both given");
    CHECK_FAILS(run1(13, "Resize", 3, (sal_tensor[]){x, OMITTED, s2}, BOOLS(false, true, true), 0, NULL, &y1),
                SAL_ERR_ARG, "scales must be 4 float values");
    FREE(&x, &y1, &y2, &y3, &sc, &roi, &s2, &z2, &z3, &z4);
}

static void test_resize_grads(void) {
    /* 1-D and 3-D, the first axis resized too, nearest and linear, with the accumulation check */
    sal_attr l[1] = {sal_attr_make_string("mode", "linear")};
    gc(13, "Resize", 3, (sal_tensor[]){trand(3, DIMS(2, 3, 5)), OMITTED, FVEC(1.5f, 1, 0.6f)}, BOOLS(false, true, true), 1, l);
    sal_attr l3[2] = {sal_attr_make_string("mode", "linear"), sal_attr_make_string("coordinate_transformation_mode", "align_corners")};
    gc(13, "Resize", 4, (sal_tensor[]){trand(5, DIMS(1, 2, 3, 2, 4)), OMITTED, OMITTED, VEC(1, 2, 5, 3, 3)},
       BOOLS(false, true, true, true), 2, l3);
    gc(13, "Resize", 3, (sal_tensor[]){trand(4, DIMS(2, 2, 3, 3)), OMITTED, FVEC(1, 1, 2.5f, 0.7f)}, BOOLS(false, true, true), 0, NULL);
    sal_tensor x = trand(4, DIMS(2, 3, 4, 4)), sc = FVEC(1, 1, 1.5f, 2);
    sal_attr al[1] = {sal_attr_make_string("mode", "linear")};
    oc_accumulates((oc_node){13, "Resize", 3, 1, (sal_tensor[]){x, OMITTED, sc}, BOOLS(false, true, true), 1, al}, 2);
    oc_accumulates((oc_node){13, "Resize", 3, 1, (sal_tensor[]){x, OMITTED, sc}, BOOLS(false, true, true), 0, NULL}, 2);
    sal_tensor s1 = FVEC(1, 1, 1, 1);
    oc_accumulates((oc_node){13, "Resize", 3, 1, (sal_tensor[]){x, OMITTED, s1}, BOOLS(false, true, true), 0, NULL}, 2);
    FREE(&x, &sc, &s1);
}

/* ---- ConvTranspose ---- */

typedef struct {
    int64_t N, Ci, Co, G, H, W, KH, KW, sh, sw, dh, dw, pt, pl, pb, pr, oph, opw;
    bool one_d, bias;
} tcfg;

static int64_t tout(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, int64_t op) {
    return s * (in - 1) + op + (k - 1) * d + 1 - p0 - p1;
}

/* y (N, Co, OH, OW) = the scatter of x (N, Ci, H, W) through w (Ci, Co/G, KH, KW), plus b. */
static sal_tensor ref_convt(const tcfg *c, const sal_tensor *x, const sal_tensor *w, const sal_tensor *b) {
    int64_t OH = tout(c->H, c->KH, c->sh, c->dh, c->pt, c->pb, c->oph), OW = tout(c->W, c->KW, c->sw, c->dw, c->pl, c->pr, c->opw);
    sal_tensor y = c->one_d ? tf32(3, DIMS(c->N, c->Co, OW), NULL) : tf32(4, DIMS(c->N, c->Co, OH, OW), NULL);
    int64_t Cig = c->Ci / c->G, Cog = c->Co / c->G;
    double *acc = calloc((size_t)(c->N * c->Co * OH * OW), sizeof *acc);
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t ci = 0; ci < c->Ci; ci++)
            for (int64_t co = 0; co < Cog; co++)
                for (int64_t ih = 0; ih < c->H; ih++)
                    for (int64_t iw = 0; iw < c->W; iw++)
                        for (int64_t kh = 0; kh < c->KH; kh++)
                            for (int64_t kw = 0; kw < c->KW; kw++) {
                                int64_t oh = ih * c->sh - c->pt + kh * c->dh, ow = iw * c->sw - c->pl + kw * c->dw;
                                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                                int64_t o = ci / Cig * Cog + co;
                                acc[((n * c->Co + o) * OH + oh) * OW + ow] +=
                                    (double)sal_f32(x)[((n * c->Ci + ci) * c->H + ih) * c->W + iw] *
                                    sal_f32(w)[((ci * Cog + co) * c->KH + kh) * c->KW + kw];
                            }
    for (int64_t i = 0; i < c->N * c->Co * OH * OW; i++)
        sal_f32(&y)[i] = (float)(acc[i] + (b ? sal_f32(b)[i / (OH * OW) % c->Co] : 0));
    free(acc);
    return y;
}

static int tattrs(const tcfg *c, sal_attr *at) {
    int n = 0, r = c->one_d ? 1 : 2;
    int64_t s[2] = {c->sh, c->sw}, d[2] = {c->dh, c->dw}, p[4] = {c->pt, c->pl, c->pb, c->pr}, p1[2] = {c->pl, c->pr};
    int64_t op[2] = {c->oph, c->opw};
    at[n++] = sal_attr_make_ints("strides", r, s + 2 - r);
    at[n++] = sal_attr_make_ints("dilations", r, d + 2 - r);
    at[n++] = sal_attr_make_ints("pads", 2 * r, c->one_d ? p1 : p);
    at[n++] = sal_attr_make_ints("output_padding", r, op + 2 - r);
    at[n++] = sal_attr_make_int("group", c->G);
    return n;
}

static void tinputs(const tcfg *c, sal_tensor in[3]) {
    in[0] = c->one_d ? trand(3, DIMS(c->N, c->Ci, c->W)) : trand(4, DIMS(c->N, c->Ci, c->H, c->W));
    in[1] = c->one_d ? trand(3, DIMS(c->Ci, c->Co / c->G, c->KW)) : trand(4, DIMS(c->Ci, c->Co / c->G, c->KH, c->KW));
    in[2] = c->bias ? trand(1, DIMS(c->Co)) : (sal_tensor){.ndim = -1};
}

static void test_convt_case(const tcfg *c, const char *what) {
    sal_tensor in[3], y = {0};
    tinputs(c, in);
    sal_attr at[8];
    int na = tattrs(c, at);
    CHECK_OK(run1(13, "ConvTranspose", 3, in, BOOLS(false, true, true), na, at, &y));
    sal_tensor w = ref_convt(c, &in[0], &in[1], c->bias ? &in[2] : NULL);
    CHECK(max_diff(&y, &w) < 1e-4, "ConvTranspose %s against direct loops (max diff %g)", what, max_diff(&y, &w));
    na = tattrs(c, at);
    oc_accumulates((oc_node){13, "ConvTranspose", 3, 1, in, BOOLS(false, true, true), na, at}, 5);
    na = tattrs(c, at);
    gc(13, "ConvTranspose", 3, in, BOOLS(false, false, false), na, at); /* frees in */
    FREE(&y, &w);
}

static void test_convt(void) {
    tcfg cs[] = {
        /* N Ci Co G  H  W KH KW sh sw dh dw pt pl pb pr oph opw */
        {1, 2, 3, 1, 1, 5, 1, 3, 1, 2, 1, 1, 0, 1, 0, 0, 0, 1, true, true},      /* 1-D, stride 2, output_padding */
        {2, 2, 4, 1, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, false, true},     /* plain */
        {1, 4, 6, 2, 3, 4, 2, 3, 2, 3, 1, 1, 1, 0, 0, 2, 1, 2, false, false},    /* groups, strides, pads */
        {1, 3, 3, 3, 4, 3, 3, 2, 2, 1, 2, 1, 1, 1, 1, 0, 1, 0, false, true},     /* depthwise, dilation */
        {2, 3, 2, 1, 3, 4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, false, true},     /* 1x1 */
        {2, 5, 1, 1, 6, 5, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2, 0, 0, false, true},     /* one output channel: conv33 */
        {1, 2, 2, 1, 2, 3, 3, 3, 3, 3, 2, 2, 0, 0, 0, 0, 2, 2, false, false},    /* dilation 2, output_padding 2 < s */
    };
    const char *names[] = {"1-D", "plain", "groups", "depthwise", "1x1", "one output channel", "dilated"};
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) test_convt_case(&cs[k], names[k]);
    gc(13, "ConvTranspose", 2, (sal_tensor[]){trand(5, DIMS(1, 2, 2, 2, 3)), trand(5, DIMS(2, 2, 2, 2, 2))},
       BOOLS(false, true), 1, (sal_attr[]){sal_attr_make_ints("strides", 3, DIMS(2, 1, 2))});

    /* auto_pad SAME_* and output_shape give out = in * stride with the pads ONNX prescribes */
    sal_tensor x = trand(4, DIMS(1, 2, 3, 4)), W = trand(4, DIMS(2, 3, 3, 3)), y = {0}, y2 = {0};
    struct {
        const char *ap;
        int64_t pads[4];
    } sm[] = {{"SAME_UPPER", {0, 0, 1, 1}}, {"SAME_LOWER", {1, 1, 0, 0}}};
    for (int k = 0; k < 2; k++) { /* total padding (3-1)*2 + 3 - 6 = 1 per axis */
        sal_attr a1[2] = {sal_attr_make_ints("strides", 2, DIMS(2, 2)), sal_attr_make_string("auto_pad", sm[k].ap)};
        sal_attr a2[2] = {sal_attr_make_ints("strides", 2, DIMS(2, 2)), sal_attr_make_ints("pads", 4, sm[k].pads)};
        sal_attr a3[2] = {sal_attr_make_ints("strides", 2, DIMS(2, 2)), sal_attr_make_ints("output_shape", 2, DIMS(6, 8))};
        CHECK_OK(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W}, BOOLS(false, true), 2, a1, &y));
        CHECK_OK(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W}, BOOLS(false, true), 2, a2, &y2));
        CHECK(shape_is(&y, 4, DIMS(1, 3, 6, 8)) && max_diff(&y, &y2) == 0, "ConvTranspose auto_pad %s", sm[k].ap);
        if (k == 1) {
            CHECK_OK(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W}, BOOLS(false, true), 2, a3, &y));
            CHECK(max_diff(&y, &y2) == 0, "ConvTranspose output_shape splits pads as SAME_LOWER");
        } else {
            oc_attr_free((oc_node){.nattr = 2, .attr = a3});
        }
    }
    /* an output_shape past the full size: the extra positions get the bias only */
    sal_tensor b = FVEC(0.5f, -1, 2);
    sal_attr a4[1] = {sal_attr_make_ints("output_shape", 2, DIMS(6, 7))};
    CHECK_OK(run1(13, "ConvTranspose", 3, (sal_tensor[]){x, W, b}, BOOLS(false, true, true), 1, a4, &y));
    tcfg full = {1, 2, 3, 1, 3, 4, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, false, true};
    sal_tensor wf = ref_convt(&full, &x, &W, &b); /* (1, 3, 5, 6) */
    bool ok = shape_is(&y, 4, DIMS(1, 3, 6, 7));
    for (int64_t c = 0; ok && c < 3; c++)
        for (int64_t i = 0; i < 6; i++)
            for (int64_t j = 0; j < 7; j++) {
                float got = sal_f32(&y)[(c * 6 + i) * 7 + j];
                ok &= i < 5 && j < 6 ? fabsf(got - sal_f32(&wf)[(c * 5 + i) * 6 + j]) < 1e-4f : got == sal_f32(&b)[c];
            }
    CHECK(ok, "ConvTranspose output_shape beyond the full size");
    /* shape errors name the node */
    sal_tensor Wb = trand(4, DIMS(3, 3, 3, 3));
    CHECK_FAILS(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, Wb}, BOOLS(false, true), 0, NULL, &y), SAL_ERR_SHAPE,
                "node 'n' (ConvTranspose): X (1,2,3,4) and W (3,3,3,3) do not fit group = 1");
    sal_attr kbad[1] = {sal_attr_make_ints("kernel_shape", 2, DIMS(2, 2))};
    CHECK_FAILS(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W}, BOOLS(false, true), 1, kbad, &y), SAL_ERR_SHAPE,
                "kernel_shape[0] = 2 but the weights have 3");
    sal_tensor W0 = trand(4, DIMS(2, 3, 0, 3)); /* an empty kernel axis (found by fuzzing) */
    CHECK_FAILS(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W0}, BOOLS(false, true), 0, NULL, &y), SAL_ERR_SHAPE,
                "node 'n' (ConvTranspose): the weights' kernel is empty along spatial dimension 0");
    /* an empty input declaring a huge length at a huge stride: refused, not overflowed */
    sal_tensor xe = trand(4, DIMS(0, 2, 3, (int64_t)1 << 40));
    sal_attr big[1] = {sal_attr_make_ints("strides", 2, DIMS(1, (int64_t)1 << 40))};
    CHECK_FAILS(run1(13, "ConvTranspose", 2, (sal_tensor[]){xe, W}, BOOLS(false, true), 1, big, &y), SAL_ERR_SHAPE,
                "spatial dimension 1: input 1099511627776 at stride 1099511627776 is too long");
    /* a dilated window past 2^40, refused by the check Conv shares (window.c: sal_win_check_kernel) */
    sal_attr dil[1] = {sal_attr_make_ints("dilations", 2, DIMS(1, (int64_t)1 << 40))};
    CHECK_FAILS(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W}, BOOLS(false, true), 1, dil, &y), SAL_ERR_SHAPE,
                "spatial dimension 1: dilated window of 3 taps spaced 1099511627776 is too large");
    FREE(&x, &W, &y, &y2, &b, &wf, &Wb, &W0, &xe);
}

/* <ConvTranspose(x; W), y> = <x, Conv(y; W)>: the two ops are each other's adjoint, on layers large
 * enough for the chunked, threaded paths. */
static void test_convt_adjoint(void) {
    struct {
        int64_t Ci, Co, G, H, K, s, p;
    } cs[] = {{16, 8, 1, 24, 3, 2, 1}, {12, 12, 12, 20, 3, 1, 1}, {32, 16, 2, 16, 1, 1, 0}};
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
        int64_t H = cs[k].H, OH = tout(H, cs[k].K, cs[k].s, 1, cs[k].p, cs[k].p, 0);
        sal_tensor x = trand(4, DIMS(2, cs[k].Ci, H, H)), W = trand(4, DIMS(cs[k].Ci, cs[k].Co / cs[k].G, cs[k].K, cs[k].K));
        sal_tensor yv = trand(4, DIMS(2, cs[k].Co, OH, OH)), a = {0}, b = {0};
        int64_t st[2] = {cs[k].s, cs[k].s}, pd[4] = {cs[k].p, cs[k].p, cs[k].p, cs[k].p};
        sal_attr t[3] = {sal_attr_make_ints("strides", 2, st), sal_attr_make_ints("pads", 4, pd), sal_attr_make_int("group", cs[k].G)};
        sal_attr cv[3] = {sal_attr_make_ints("strides", 2, st), sal_attr_make_ints("pads", 4, pd), sal_attr_make_int("group", cs[k].G)};
        CHECK_OK(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W}, BOOLS(false, true), 3, t, &a));
        CHECK_OK(run1(13, "Conv", 2, (sal_tensor[]){yv, W}, BOOLS(false, true), 3, cv, &b));
        double l = dot(&a, &yv), r = dot(&x, &b);
        CHECK(shape_is(&b, 4, x.dim) && fabs(l - r) <= 1e-4 * (fabs(l) + 1), "ConvTranspose is Conv's adjoint, case %zu: %g vs %g", k, l, r);
        FREE(&x, &W, &yv, &a, &b);
    }
}

/* ConvTranspose through linear_ops.h: roles, fan-in, apply, transposed and correlate. */
static void test_convt_linear_ops(void) {
    sal_model *g = NULL;
    SAL_ASSERT(sal_graph_create("<lin>", &g) == SAL_OK);
    /* x (2, 4, 3, 3), W (4, 3, 3, 3) with 2 groups, stride 2, output_padding 1 -> y (2, 6, 8, 8) */
    sal_tensor W = trand(4, DIMS(4, 3, 3, 3)), B = trand(1, DIMS(6));
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(2, 4, 3, 3)));
    t_const(g, "W", 4, W.dim, sal_f32(&W));
    t_const(g, "B", 1, B.dim, sal_f32(&B));
    sal_attr at[3] = {sal_attr_make_ints("strides", 2, DIMS(2, 2)), sal_attr_make_ints("output_padding", 2, DIMS(1, 1)),
                      sal_attr_make_int("group", 2)};
    t_node(g, "ConvTranspose", "up", 3, (const char *[]){"x", "W", "B"}, "y", 3, at);
    t_finish(g, "y");
    const sal_node *n = &g->node[0];
    sal_lin_roles r;
    CHECK_OK(sal_lin_roles_of(g, n, &r));
    CHECK(sal_lin_is_linear(n) && r.x == 0 && r.w == 1 && r.b == 2 && r.w_unit_axis == 1 && r.y_unit_axis == 1,
          "ConvTranspose roles");
    CHECK(sal_lin_fan_in(n, &W) == 2 * 9, "ConvTranspose fan-in: 2 input channels per group x 9 taps (got %lld)",
          (long long)sal_lin_fan_in(n, &W));
    sal_scratch ws = {0};
    sal_tensor x = trand(4, DIMS(2, 4, 3, 3)), W2 = trand(4, DIMS(4, 3, 3, 3)), z = {0}, zb = {0}, yref = {0};
    /* apply with other weights is the op's forward with them */
    CHECK_OK(sal_lin_apply(g, n, &r, &x, &W2, 0, NULL, &z, &ws));
    sal_attr at2[3] = {sal_attr_make_ints("strides", 2, DIMS(2, 2)), sal_attr_make_ints("output_padding", 2, DIMS(1, 1)),
                       sal_attr_make_int("group", 2)};
    CHECK_OK(run1(13, "ConvTranspose", 2, (sal_tensor[]){x, W2}, BOOLS(false, true), 3, at2, &yref));
    CHECK(shape_is(&z, 4, DIMS(2, 6, 8, 8)) && max_diff(&z, &yref) < 1e-5, "sal_lin_apply");
    CHECK_OK(sal_lin_apply(g, n, &r, &x, &W2, 0, &B, &zb, &ws));
    CHECK(fabsf(sal_f32(&zb)[64 + 7] - sal_f32(&z)[64 + 7] - sal_f32(&B)[1]) < 1e-5, "sal_lin_apply with a bias");
    /* transposed: <apply(x), rz> = <x, transposed(rz)>; correlate: <apply(x; V), rz> = <V, correlate(x, rz)> */
    sal_tensor rz = trand(4, DIMS(2, 6, 8, 8)), xt = tf32(4, x.dim, NULL), dW = tf32(4, W.dim, NULL);
    CHECK_OK(sal_lin_transposed(g, n, &r, &x, &W2, 0, &rz, &xt, &ws));
    CHECK(fabs(dot(&z, &rz) - dot(&x, &xt)) < 1e-3, "sal_lin_transposed is the adjoint");
    CHECK_OK(sal_lin_correlate(g, n, &r, &x, &W, &rz, &dW, &ws));
    CHECK(fabs(dot(&z, &rz) - dot(&W2, &dW)) < 1e-3, "sal_lin_correlate is the weight gradient");
    sal_scratch_free(&ws);
    sal_model_free(g);
    FREE(&W, &B, &x, &W2, &z, &zb, &yref, &rz, &xt, &dW);
}

int main(void) {
    SAL_ASSERT(sal_blas_init() == SAL_OK);
    sal_rng_seed(&R, 7);
    CHECK(sal_op_lookup("Resize")->traits == SAL_TR_ADDITIVE && sal_op_lookup("Resize")->lin_in == 0x1 &&
              sal_op_lookup("Upsample")->traits == SAL_TR_ADDITIVE &&
              sal_op_lookup("ConvTranspose")->traits == (SAL_TR_LINEAR | SAL_TR_MULTILINEAR) &&
              sal_op_lookup("ConvTranspose")->lin_in == 0x3 && sal_op_lookup("ConvTranspose")->bias_in == 0x4,
          "traits of Resize, Upsample and ConvTranspose");
    test_resize_values();
    test_resize_opsets();
    test_resize_grads();
    test_convt();
    test_convt_adjoint();
    test_convt_linear_ops();
    return t_done("test_ops_resize");
}
