/* saliency visualize / topk / invert: feature visualization, data set examples, model inversion. */
#include "cli.h"
#include <math.h>

static const char k_opts_help[] =
    "Optimizer:\n"
    "  --steps N            default 256\n"
    "  --lr X               default 0.05\n"
    "  --opt adam|gd        Adam (default) or plain gradient ascent\n"
    "  --seed N             start image and random transforms; the same seed gives the same bytes\n"
    "Parameterization:\n"
    "  --space pixel|fourier|softmax  pixels (default), or a decorrelated Fourier space: frequencies scaled to\n"
    "                       equal energy, colours (3 channels) decorrelated by a Cholesky factor of --data\n"
    "                       softmax: sequence models (N,C,L): each position the softmax of free logits\n"
    "                       over the letters, a position probability matrix at every step\n"
    "  --decay X            Fourier amplitude 1/f^X, default 1\n"
    "  --no-decorrelate     keep the colours as they are in Fourier space\n"
    "  --data D             samples (D.npy, mnist, fashion-mnist): range, colour statistics, input size\n"
    "  --init X.npy         start from these inputs (one, or one per image) instead of the mid-range\n"
    "  --init-sd X          noise added to the start, a fraction of the range (default 0.01)\n"
    "  --range LO,HI        input range (default: from --data, else 0,1)\n"
    "  --no-clip            let values leave the range (pixels are clipped, Fourier squashed by a sigmoid)\n"
    "Regularizers (penalties are means over the input's elements):\n"
    "  --l1 W  --l2 W       weights of |x - center| and (x - center)^2\n"
    "  --center C           default 0\n"
    "  --tv W               total variation (dx^2 + dy^2)^(beta/2)\n"
    "  --tv-beta B          default 2\n"
    "  --norm RHO           keep ||x - center|| = RHO (Erhan et al.; instead of the range clip)\n"
    "  --blur-every K       blur the input every K steps ...\n"
    "  --blur-sigma S       ... with a Gaussian of S pixels (default 0.5)\n"
    "Transformation robustness (a random transform per image and step, differentiable):\n"
    "  --robust             Olah et al.'s recipe scaled to the input size: pad, jitter, scale 0.95..1.05,\n"
    "                       rotate -5..5 degrees, jitter again\n"
    "  --pad N              N > 0: what moves in from outside is --fill; 0: the nearest edge pixel\n"
    "  --fill V             default: the middle of the range\n"
    "  --jitter N           shift by up to N pixels, then scale and rotate, then ...\n"
    "  --jitter2 N          ... shift again by up to N pixels\n"
    "  --scales A,B,...     scale factors to pick from\n"
    "  --angles A,B,...     rotations in degrees to pick from\n";

static const char k_vis_help[] =
    "usage: saliency visualize MODEL.onnx --objective OBJ [options]\n\n"
    "Optimizes inputs that maximize an objective (activation maximization, feature visualization).\n"
    "  --objective OBJ      unit:NODE:C[:Y[:X]], channel:NODE:C, layer:NODE (DeepDream), logit:K,\n"
    "                       prob:K, direction:NODE:V.npy, or a weighted sum of them:\n"
    "                       \"0.5*channel:conv2:3 + 0.5*channel:conv2:7\"  (NODE: a node or value name)\n"
    "  --batch N            images optimized together (default 1)\n"
    "  --diversity W        Gram-matrix cosine diversity between the images of the batch\n"
    "  --diversity-node N   the layer whose Gram matrices differ (default: the objective's)\n"
    "  --ppm                sequence models on one-hot (N,C,L) input: keep each position a probability\n"
    "                       vector (position probability matrix)\n"
    "  --entropy W          --ppm or --space softmax: penalize the mean entropy of the positions'\n"
    "                       letter distributions (nats), pushing each toward one letter\n";

static const char k_out_help[] =
    "Outputs:\n"
    "  --out X.npy          the optimized inputs\n"
    "  --png X.png          a grid of them (rows: the steps of --sweep)\n"
    "  --sweep K            keep K snapshots spread over the run (rows of the PNG)\n"
    "  --json F.json        objective and options, the objective per image before and after\n"
    "  --csv F.csv          --ppm: the matrices, one row per position, for a sequence logo\n"
    "  --alphabet ACGT      column names of the CSV, one letter per channel\n"
    "  --meme F.meme        --ppm or --space softmax with 4 channels: the matrices as MEME motifs\n"
    "                       (ACGT, one motif per image), for FIMO, Tomtom or a logo tool\n"
    "  --scale N            PNG pixels per input pixel (default: about 112 pixels a side)\n";

static const char k_inv_help[] =
    "usage: saliency invert MODEL.onnx --input X.npy --node NODE [options]\n\n"
    "Model inversion (Mahendran & Vedaldi 2015): reconstructs inputs whose representation at NODE\n"
    "matches that of X, minimizing ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 plus the priors below\n"
    "(total variation 0.01 by default). What the reconstruction lost, the representation ignores.\n"
    "  --input X.npy        inputs to invert (N, ...) or one without the batch dimension\n"
    "  --node NODE          the representation: a node or value name\n";

static const char k_topk_help[] =
    "usage: saliency topk MODEL.onnx --data D --objective OBJ [-k N] [--png tiles.png] [--json F]\n\n"
    "Data set examples: the samples of D with the highest and the lowest objective values.\n"
    "  --data D             D.npy (N, ...), mnist or fashion-mnist (the held-out part)\n"
    "  --objective OBJ      as for saliency visualize\n"
    "  -k N, --k N          how many of each (default 8)\n"
    "  --png F.png          tiles: the top samples in the first row, the bottom ones in the second\n"
    "  --json F.json        indices and values\n"
    "  --scale N            PNG pixels per input pixel\n"
    "  --chunk N            samples per forward pass (default 64)\n";

typedef struct {
    sal_featviz_opts o;
    const char *objective, *data, *init, *out, *png, *json, *csv, *alphabet, *range, *node, *input, *meme;
    float scales[32], angles[64];
    int robust, sweep, scale;
} vis_cli;

/* "a,b,c" into v (at most n); false when malformed. */
static bool parse_list(const char *s, float *v, int n, int *count) {
    *count = 0;
    while (*s) {
        char *end;
        double x = strtod(s, &end);
        if (end == s || (*end && *end != ',') || *count == n) return false;
        v[(*count)++] = (float)x;
        s = *end ? end + 1 : end;
    }
    return *count > 0;
}

/* Options shared by visualize and invert: 1 consumed, 0 not ours, -1 error (printed). */
static int common_option(cli_args *a, vis_cli *v, const char *cmd) {
    sal_featviz_opts *o = &v->o;
    if (cli_is(a, "--steps")) o->steps = (int)cli_long(a, 0, 10000000);
    else if (cli_is(a, "--lr")) o->lr = (float)cli_double(a);
    else if (cli_is(a, "--seed")) o->seed = (uint64_t)cli_long(a, 0, 0x7fffffffL);
    else if (cli_is(a, "--decay")) o->decay = (float)cli_double(a);
    else if (cli_is(a, "--no-decorrelate")) o->decorrelate = 0;
    else if (cli_is(a, "--data")) v->data = cli_value(a);
    else if (cli_is(a, "--init")) v->init = cli_value(a);
    else if (cli_is(a, "--init-sd")) o->init_sd = (float)cli_double(a);
    else if (cli_is(a, "--range")) v->range = cli_value(a);
    else if (cli_is(a, "--no-clip")) o->clip = 0;
    else if (cli_is(a, "--l1")) o->l1 = (float)cli_double(a);
    else if (cli_is(a, "--l2")) o->l2 = (float)cli_double(a);
    else if (cli_is(a, "--center")) o->center = cli_double(a);
    else if (cli_is(a, "--tv")) o->tv = (float)cli_double(a);
    else if (cli_is(a, "--tv-beta")) o->tv_beta = (float)cli_double(a);
    else if (cli_is(a, "--norm")) o->norm = (float)cli_double(a);
    else if (cli_is(a, "--blur-every")) o->blur_every = (int)cli_long(a, 0, 1000000);
    else if (cli_is(a, "--blur-sigma")) o->blur_sigma = (float)cli_double(a);
    else if (cli_is(a, "--robust")) v->robust = 1;
    else if (cli_is(a, "--pad")) o->pad = (int)cli_long(a, 0, 4096);
    else if (cli_is(a, "--fill")) o->fill = cli_double(a);
    else if (cli_is(a, "--jitter")) o->jitter = (int)cli_long(a, 0, 4096);
    else if (cli_is(a, "--jitter2")) o->jitter2 = (int)cli_long(a, 0, 4096);
    else if (cli_is(a, "--out")) v->out = cli_value(a);
    else if (cli_is(a, "--png")) v->png = cli_value(a);
    else if (cli_is(a, "--json")) v->json = cli_value(a);
    else if (cli_is(a, "--sweep")) v->sweep = (int)cli_long(a, 2, 64);
    else if (cli_is(a, "--scale")) v->scale = (int)cli_long(a, 1, 64);
    else if (cli_is(a, "--scales") || cli_is(a, "--angles")) {
        bool sc = cli_is(a, "--scales");
        const char *s = cli_value(a);
        if (a->error) return -1;
        if (!(sc ? parse_list(s, v->scales, 32, &o->nscales) : parse_list(s, v->angles, 64, &o->nangles))) {
            cli_error(cmd, "%s must be a list of numbers like %s, not '%s'", sc ? "--scales" : "--angles",
                      sc ? "0.95,1,1.05" : "-5,0,5", s);
            return -1;
        }
    } else if (cli_is(a, "--opt")) {
        const char *s = cli_value(a);
        if (!strcmp(s, "adam")) o->opt = SAL_OPT_ADAM;
        else if (!strcmp(s, "gd") || !strcmp(s, "sgd")) o->opt = SAL_OPT_SGD;
        else if (!a->error) {
            cli_error(cmd, "--opt must be adam or gd, not '%s'", s);
            return -1;
        }
    } else if (cli_is(a, "--space")) {
        const char *s = cli_value(a);
        if (!strcmp(s, "pixel")) o->space = SAL_SPACE_PIXEL;
        else if (!strcmp(s, "fourier")) o->space = SAL_SPACE_FOURIER;
        else if (!strcmp(s, "softmax")) o->space = SAL_SPACE_SOFTMAX;
        else if (!a->error) {
            cli_error(cmd, "--space must be pixel, fourier or softmax, not '%s'", s);
            return -1;
        }
    } else return 0;
    return a->error ? -1 : 1;
}

/* D.npy, or a data set name (its held-out part when it has one). */
static sal_status load_data(const char *spec, sal_tensor *out) {
    size_t n = strlen(spec);
    if (n > 4 && !strcmp(spec + n - 4, ".npy")) return sal_npy_read(spec, out);
    sal_dataset d;
    sal_status st = sal_dataset_load(spec, &d);
    if (st != SAL_OK) return st;
    sal_tensor *x = d.test_x.data ? &d.test_x : &d.train_x;
    *out = *x;
    memset(x, 0, sizeof *x); /* moved out */
    sal_dataset_free(&d);
    return SAL_OK;
}

/* A single sample without the batch dimension gets one. */
static void add_batch(const sal_model *m, sal_tensor *x) {
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_model_input_shape(m, 0, &nd, dim);
    if (x->ndim == nd - 1 && nd > 1 && x->ndim >= 1) {
        memmove(x->dim + 1, x->dim, sizeof(int64_t) * (size_t)x->ndim);
        x->dim[0] = 1;
        x->ndim++;
    }
}

/* A view of sample i of x (N, ...) shaped as a picture: (C,H,W) for images, (C,L) for sequences
 * (letters as rows), (1,D) for vectors. */
static sal_tensor tile_of(const sal_tensor *x, int64_t i) {
    sal_tensor t = *x;
    t.cap = 0; /* borrowed */
    const int64_t row = sal_tensor_numel(x) / x->dim[0];
    t.data = sal_f32(x) + i * row;
    if (x->ndim == 4) {
        t.ndim = 3;
        memmove(t.dim, x->dim + 1, 3 * sizeof *t.dim);
    } else if (x->ndim == 3) {
        t.ndim = 2;
        t.dim[0] = x->dim[1], t.dim[1] = x->dim[2];
    } else {
        t.ndim = 2;
        t.dim[0] = 1, t.dim[1] = row;
    }
    return t;
}

static int auto_scale(const sal_tensor *x, int scale) {
    if (scale > 0) return scale;
    int64_t side = x->ndim == 4 ? (x->dim[2] > x->dim[3] ? x->dim[2] : x->dim[3]) : x->ndim == 3 ? x->dim[2] : 1;
    int64_t s = side > 0 ? 112 / side : 1;
    return s < 1 ? 1 : s > 16 ? 16 : (int)s;
}

/* rows x cols tiles of samples idx (NULL: 0, 1, ...) of x; missing ones (-1) stay blank. */
static sal_status grid_png(const char *path, const sal_tensor *x, int rows, int cols, const int64_t *idx,
                           const char *const *row_labels, int scale) {
    sal_grid_tile *tiles = calloc((size_t)(rows * cols), sizeof *tiles);
    sal_tensor *views = calloc((size_t)(rows * cols), sizeof *views);
    if (!tiles || !views) {
        free(tiles), free(views);
        fprintf(stderr, "saliency: out of memory\n");
        return SAL_ERR_NOMEM;
    }
    for (int k = 0; k < rows * cols; k++) {
        int64_t i = idx ? idx[k] : k;
        if (i < 0 || i >= x->dim[0]) continue;
        views[k] = tile_of(x, i);
        tiles[k].image = &views[k];
    }
    sal_grid_opts go = {.heat = {.scale = auto_scale(x, scale)}, .row_labels = row_labels};
    sal_status st = sal_png_grid(path, rows, cols, tiles, &go);
    free(tiles);
    free(views);
    return st;
}

static sal_status write_ppm_csv(const char *path, const sal_tensor *x, const char *alphabet) {
    const int64_t N = x->dim[0], C = x->dim[1], L = x->dim[2];
    size_t cap = (size_t)(N * L * (C + 2)) * 16 + (size_t)C * 16 + 64, len = 0;
    char *buf = malloc(cap);
    if (!buf) return SAL_ERR_NOMEM;
    len += (size_t)snprintf(buf + len, cap - len, "image,position");
    for (int64_t c = 0; c < C; c++)
        len += alphabet ? (size_t)snprintf(buf + len, cap - len, ",%c", alphabet[c])
                        : (size_t)snprintf(buf + len, cap - len, ",c%lld", (long long)c);
    len += (size_t)snprintf(buf + len, cap - len, "\n");
    for (int64_t n = 0; n < N; n++)
        for (int64_t l = 0; l < L; l++) {
            len += (size_t)snprintf(buf + len, cap - len, "%lld,%lld", (long long)n, (long long)l);
            for (int64_t c = 0; c < C; c++)
                len += (size_t)snprintf(buf + len, cap - len, ",%.6f", (double)sal_f32(x)[(n * C + c) * L + l]);
            len += (size_t)snprintf(buf + len, cap - len, "\n");
        }
    sal_status st = sal_write_file(path, buf, len);
    free(buf);
    return st;
}

static void on_step(void *user, int step, double objective, double loss) {
    int every = *(int *)user;
    if (every > 0 && step % every == 0) printf("step %d  objective %.6g  loss %.6g\n", step, objective, loss);
}

/* Applies --robust and --range, loads --data and --init; returns 0 or 1 after printing. */
static int prepare(const char *cmd, vis_cli *v, const sal_model *m, sal_tensor *data, sal_tensor *init) {
    sal_featviz_opts *o = &v->o;
    o->scales = v->scales;
    o->angles = v->angles;
    if (v->range) {
        char *end;
        o->lo = strtod(v->range, &end);
        if (*end != ',' || (o->hi = strtod(end + 1, &end), *end) || !(o->hi > o->lo))
            return cli_error(cmd, "--range must be LO,HI with LO < HI: '%s'", v->range);
    }
    sal_status st;
    if (v->data && (st = load_data(v->data, data)) != SAL_OK) return cli_fail(cmd, st);
    if (v->init) {
        if ((st = sal_npy_read(v->init, init)) != SAL_OK) return cli_fail(cmd, st);
        add_batch(m, init);
    }
    o->data = v->data ? data : NULL;
    o->init = v->init ? init : NULL;
    if (v->robust) { /* Olah et al.: pad 16, jitter 16, scale, rotate, jitter 8, on 224-pixel images */
        int nd;
        int64_t dim[SAL_MAX_DIMS];
        sal_model_input_shape(m, 0, &nd, dim);
        int64_t side = nd == 4 ? dim[2] : nd == 3 ? dim[2] : 0;
        if (side <= 0 && data->ndim == nd && nd >= 3) side = data->dim[2];
        if (side <= 0) return cli_error(cmd, "--robust needs (N,C,L) or (N,C,H,W) inputs of a known size");
        o->pad = (int)(side / 14 > 1 ? side / 14 : 1);
        o->jitter = o->pad;
        o->jitter2 = (int)(side / 28 > 1 ? side / 28 : 1);
        if (nd == 4) {
            static const float sc[] = {1, 0.975f, 1.025f, 0.95f, 1.05f};
            memcpy(v->scales, sc, sizeof sc);
            o->nscales = 5;
            for (int i = 0; i < 11; i++) v->angles[i] = (float)(i - 5);
            o->nangles = 11;
        }
    }
    if (v->sweep) o->snapshots = v->sweep;
    return 0;
}

/* Prints the values, writes --out, --png, --json, --csv. */
static int outputs(const char *cmd, const vis_cli *v, const sal_featviz *f, const char *what) {
    const sal_tensor *x = sal_featviz_images(f);
    const float *b = sal_featviz_before(f), *a = sal_featviz_after(f);
    double mb = 0, ma = 0;
    for (int64_t i = 0; i < x->dim[0]; i++) mb += b[i], ma += a[i];
    printf("%s: before %.6g, after %.6g (mean of %lld)\n", what, mb / (double)x->dim[0], ma / (double)x->dim[0],
           (long long)x->dim[0]);
    for (int64_t i = 0; x->dim[0] > 1 && i < x->dim[0] && i < 16; i++)
        printf("  image %lld: %.6g -> %.6g\n", (long long)i, (double)b[i], (double)a[i]);
    sal_status st;
    if (v->out) {
        if ((st = sal_npy_write(v->out, x)) != SAL_OK) return cli_fail(cmd, st);
        printf("wrote %s\n", v->out);
    }
    if (v->meme) {
        if ((st = sal_meme_write(v->meme, x, NULL)) != SAL_OK) return cli_fail(cmd, st);
        printf("wrote %s\n", v->meme);
    }
    if (v->csv) {
        if (x->ndim != 3) return cli_error(cmd, "--csv writes sequence inputs (N,C,L); this input has rank %d", x->ndim);
        if ((st = write_ppm_csv(v->csv, x, v->alphabet)) != SAL_OK) return cli_fail(cmd, st);
        printf("wrote %s\n", v->csv);
    }
    if (v->png) {
        const sal_tensor *sn = sal_featviz_snapshots(f);
        if (sn) { /* rows: snapshots, columns: images */
            const int S = (int)sn->dim[0], B = (int)x->dim[0];
            sal_tensor all = *sn; /* (S*B, ...), borrowed */
            all.cap = 0;
            all.ndim = sn->ndim - 1;
            memmove(all.dim + 1, sn->dim + 2, sizeof(int64_t) * (size_t)(sn->ndim - 2));
            all.dim[0] = (int64_t)S * B;
            char labels[64][24];
            const char *lab[64];
            for (int k = 0; k < S && k < 64; k++) {
                snprintf(labels[k], sizeof labels[k], "%d", sal_featviz_snapshot_steps(f)[k]);
                lab[k] = labels[k];
            }
            st = grid_png(v->png, &all, S, B, NULL, lab, v->scale);
        } else {
            const int B = (int)x->dim[0], cols = B < 8 ? B : 8, rows = (B + cols - 1) / cols;
            st = grid_png(v->png, x, rows, cols, NULL, NULL, v->scale);
        }
        if (st != SAL_OK) return cli_fail(cmd, st);
        printf("wrote %s\n", v->png);
    }
    if (v->json) {
        char *js = NULL;
        if ((st = sal_featviz_json(f, &js)) == SAL_OK) st = sal_write_file(v->json, js, strlen(js));
        free(js);
        if (st != SAL_OK) return cli_fail(cmd, st);
        printf("wrote %s\n", v->json);
    }
    return 0;
}

static void vis_defaults(vis_cli *v) {
    memset(v, 0, sizeof *v);
    v->o = sal_featviz_defaults();
}

int cmd_visualize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return printf("%s%s%s", k_vis_help, k_opts_help, k_out_help), 0;
    const char *path = NULL;
    vis_cli v;
    vis_defaults(&v);
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        int r = a.opt ? common_option(&a, &v, "visualize") : 0;
        if (r < 0) return 1;
        if (r > 0) continue;
        if (cli_is(&a, "--objective")) v.objective = cli_value(&a);
        else if (cli_is(&a, "--batch")) v.o.batch = (int)cli_long(&a, 1, 4096);
        else if (cli_is(&a, "--diversity")) v.o.diversity = (float)cli_double(&a);
        else if (cli_is(&a, "--diversity-node")) v.o.diversity_node = cli_value(&a);
        else if (cli_is(&a, "--ppm")) v.o.ppm = 1;
        else if (cli_is(&a, "--entropy")) v.o.entropy = (float)cli_double(&a);
        else if (cli_is(&a, "--meme")) v.meme = cli_value(&a);
        else if (cli_is(&a, "--csv")) v.csv = cli_value(&a);
        else if (cli_is(&a, "--alphabet")) v.alphabet = cli_value(&a);
        else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "visualize");
    }
    if (a.error) return 1;
    if (!path) return cli_error("visualize", "missing MODEL.onnx (see saliency visualize --help)");
    if (!v.objective) return cli_error("visualize", "missing --objective (see saliency visualize --help)");
    bool ppm = v.o.ppm || v.o.space == SAL_SPACE_SOFTMAX;
    if (v.csv && !ppm) return cli_error("visualize", "--csv writes position probability matrices: add --ppm or --space softmax");
    if (v.meme && !ppm) return cli_error("visualize", "--meme writes position probability matrices: add --ppm or --space softmax");
    sal_model *m = NULL;
    sal_objective *obj = NULL;
    sal_featviz *f = NULL;
    sal_tensor data = {0}, init = {0};
    int rc = 1, every = v.o.steps >= 4 ? v.o.steps / 4 : 0;
    sal_status st = sal_model_load(path, &m);
    if (st == SAL_OK) st = sal_objective_parse(m, v.objective, &obj);
    if (st != SAL_OK) {
        cli_fail("visualize", st);
        goto done;
    }
    if (v.alphabet) { /* checked before the run where the input declares its channels */
        int nd;
        int64_t dim[SAL_MAX_DIMS];
        sal_model_input_shape(m, 0, &nd, dim);
        if (!*v.alphabet || (nd == 3 && dim[1] > 0 && (int64_t)strlen(v.alphabet) != dim[1])) {
            cli_error("visualize", "--alphabet '%s' has %zu letters; the input has %lld channels", v.alphabet,
                      strlen(v.alphabet), nd == 3 ? (long long)dim[1] : 0LL);
            goto done;
        }
    }
    if (prepare("visualize", &v, m, &data, &init)) goto done;
    v.o.on_step = on_step;
    v.o.user = &every;
    if ((st = sal_visualize(m, obj, &v.o, &f)) != SAL_OK) {
        cli_fail("visualize", st);
        goto done;
    }
    const sal_tensor *x = sal_featviz_images(f);
    if (v.alphabet && x->ndim == 3 && (int64_t)strlen(v.alphabet) != x->dim[1]) {
        cli_error("visualize", "--alphabet '%s' has %zu letters; the input has %lld channels", v.alphabet,
                  strlen(v.alphabet), (long long)x->dim[1]);
        goto done;
    }
    rc = outputs("visualize", &v, f, sal_objective_text(obj));
done:
    sal_featviz_free(f);
    sal_objective_free(obj);
    sal_tensor_free(&data);
    sal_tensor_free(&init);
    sal_model_free(m);
    return rc;
}

int cmd_invert(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return printf("%s%s%s", k_inv_help, k_opts_help, k_out_help), 0;
    const char *path = NULL;
    vis_cli v;
    vis_defaults(&v);
    v.o.tv = 0.01f;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        int r = a.opt ? common_option(&a, &v, "invert") : 0;
        if (r < 0) return 1;
        if (r > 0) continue;
        if (cli_is(&a, "--input")) v.input = cli_value(&a);
        else if (cli_is(&a, "--node")) v.node = cli_value(&a);
        else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "invert");
    }
    if (a.error) return 1;
    if (!path) return cli_error("invert", "missing MODEL.onnx (see saliency invert --help)");
    if (!v.input) return cli_error("invert", "missing --input X.npy");
    if (!v.node) return cli_error("invert", "missing --node NODE");
    sal_model *m = NULL;
    sal_objective *obj = NULL;
    sal_featviz *f = NULL;
    sal_tensor x0 = {0}, data = {0}, init = {0};
    int rc = 1, every = v.o.steps >= 4 ? v.o.steps / 4 : 0;
    sal_status st = sal_model_load(path, &m);
    if (st == SAL_OK) st = sal_npy_read(v.input, &x0);
    if (st == SAL_OK) {
        add_batch(m, &x0);
        st = sal_objective_inversion(m, v.node, &x0, &obj);
    }
    if (st != SAL_OK) {
        cli_fail("invert", st);
        goto done;
    }
    if (prepare("invert", &v, m, &data, &init)) goto done;
    if (!v.data && !v.range) { /* the range of the inputs themselves */
        v.o.lo = INFINITY, v.o.hi = -INFINITY;
        for (int64_t i = 0; i < sal_tensor_numel(&x0); i++)
            v.o.lo = fmin(v.o.lo, sal_f32(&x0)[i]), v.o.hi = fmax(v.o.hi, sal_f32(&x0)[i]);
        if (!(v.o.hi > v.o.lo)) v.o.hi = v.o.lo + 1;
    }
    v.o.on_step = on_step;
    v.o.user = &every;
    if ((st = sal_visualize(m, obj, &v.o, &f)) != SAL_OK) {
        cli_fail("invert", st);
        goto done;
    }
    /* relative error of the representation, and of the input itself */
    const sal_tensor *x = sal_featviz_images(f);
    double num = 0, den = 0;
    for (int64_t i = 0; i < sal_tensor_numel(x); i++) {
        double d = (double)sal_f32(x)[i] - sal_f32(&x0)[i];
        num += d * d, den += (double)sal_f32(&x0)[i] * sal_f32(&x0)[i];
    }
    printf("input relative error %.6g\n", sqrt(num / (den > 0 ? den : 1)));
    rc = outputs("invert", &v, f, "representation match (-relative squared error)");
done:
    sal_featviz_free(f);
    sal_objective_free(obj);
    sal_tensor_free(&x0);
    sal_tensor_free(&data);
    sal_tensor_free(&init);
    sal_model_free(m);
    return rc;
}

/* ---- topk ---- */

static const float *g_vals;
static int by_value_desc(const void *a, const void *b) {
    float x = g_vals[*(const int64_t *)a], y = g_vals[*(const int64_t *)b];
    if (x != y) return (x < y) - (x > y);
    return (*(const int64_t *)a > *(const int64_t *)b) - (*(const int64_t *)a < *(const int64_t *)b);
}

int cmd_topk(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_topk_help, stdout), 0;
    const char *path = NULL, *data = NULL, *objective = NULL, *png = NULL, *json = NULL;
    long k = 8, chunk = 64, scale = 0;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (!a.opt && !strcmp(a.pos, "-k")) { /* the one short option */
            a.opt = "-k";
            k = cli_long(&a, 1, 1 << 20);
        } else if (cli_is(&a, "--k")) k = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--data")) data = cli_value(&a);
        else if (cli_is(&a, "--objective")) objective = cli_value(&a);
        else if (cli_is(&a, "--png")) png = cli_value(&a);
        else if (cli_is(&a, "--json")) json = cli_value(&a);
        else if (cli_is(&a, "--chunk")) chunk = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--scale")) scale = cli_long(&a, 1, 64);
        else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "topk");
    }
    if (a.error) return 1;
    if (!path) return cli_error("topk", "missing MODEL.onnx (see saliency topk --help)");
    if (!data) return cli_error("topk", "missing --data D.npy");
    if (!objective) return cli_error("topk", "missing --objective (see saliency visualize --help)");
    sal_model *m = NULL;
    sal_objective *obj = NULL;
    sal_tensor x = {0};
    float *vals = NULL;
    int64_t *order = NULL, *idx = NULL;
    char *js = NULL;
    int rc = 1;
    sal_status st = sal_model_load(path, &m);
    if (st == SAL_OK) st = sal_objective_parse(m, objective, &obj);
    if (st == SAL_OK) st = load_data(data, &x);
    if (st != SAL_OK) goto fail;
    add_batch(m, &x);
    const int64_t N = x.ndim >= 1 ? x.dim[0] : 0;
    if (N < 1) {
        cli_error("topk", "%s holds no samples", data);
        goto done;
    }
    if (k > N) k = (long)N;
    vals = malloc((size_t)N * sizeof *vals);
    order = malloc((size_t)N * sizeof *order);
    idx = malloc((size_t)(2 * k) * sizeof *idx);
    if (!vals || !order || !idx) {
        cli_error("topk", "out of memory for %lld samples", (long long)N);
        goto done;
    }
    if ((st = sal_objective_values(m, obj, &x, chunk, vals)) != SAL_OK) goto fail;
    for (int64_t i = 0; i < N; i++) order[i] = i;
    g_vals = vals;
    qsort(order, (size_t)N, sizeof *order, by_value_desc);
    printf("objective %s over %lld samples of %s\ntop %ld:\n", sal_objective_text(obj), (long long)N, data, k);
    for (long i = 0; i < k; i++) {
        idx[i] = order[i];
        printf("  %3ld  sample %6lld  %.6g\n", i + 1, (long long)order[i], (double)vals[order[i]]);
    }
    printf("bottom %ld:\n", k);
    for (long i = 0; i < k; i++) {
        int64_t s = order[N - 1 - i];
        idx[k + i] = s;
        printf("  %3ld  sample %6lld  %.6g\n", i + 1, (long long)s, (double)vals[s]);
    }
    if (png) {
        static const char *const lab[2] = {"top", "bottom"};
        if ((st = grid_png(png, &x, 2, (int)k, idx, lab, (int)scale)) != SAL_OK) goto fail;
        printf("wrote %s\n", png);
    }
    if (json) {
        size_t cap = (size_t)k * 2 * 64 + strlen(sal_objective_text(obj)) * 2 + 256, len = 0;
        if (!(js = malloc(cap))) {
            cli_error("topk", "out of memory");
            goto done;
        }
        len += (size_t)snprintf(js + len, cap - len, "{\n  \"objective\": \"");
        for (const char *p = sal_objective_text(obj); *p && len + 4 < cap; p++) { /* JSON string */
            if (*p == '"' || *p == '\\') js[len++] = '\\';
            js[len++] = (unsigned char)*p < 0x20 ? ' ' : *p;
        }
        len += (size_t)snprintf(js + len, cap - len, "\",\n  \"samples\": %lld,\n  \"top\": [", (long long)N);
        for (long i = 0; i < 2 * k; i++) {
            if (i == k) len += (size_t)snprintf(js + len, cap - len, "],\n  \"bottom\": [");
            len += (size_t)snprintf(js + len, cap - len, "%s{\"index\": %lld, \"value\": %.9g}", i % k ? ", " : "",
                                    (long long)idx[i], (double)vals[idx[i]]);
        }
        len += (size_t)snprintf(js + len, cap - len, "]\n}\n");
        if ((st = sal_write_file(json, js, len)) != SAL_OK) goto fail;
        printf("wrote %s\n", json);
    }
    rc = 0;
    goto done;
fail:
    cli_fail("topk", st);
done:
    free(js);
    free(vals);
    free(order);
    free(idx);
    sal_tensor_free(&x);
    sal_objective_free(obj);
    sal_model_free(m);
    return rc;
}
