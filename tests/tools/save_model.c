/* Writes ONNX files with sal_model_save for tests/test_onnx_export.py to check with the onnx
 * package: the built-in architectures, a small hand-built graph, and every ONNX node-test model
 * that we load, saved again.
 *
 *   save_model OUTDIR [NODE_TEST_DIR]
 *
 * Prints one line per file written: "<path>\t<source>" (source: "-" or the model it came from).
 * Models that do not load are left out silently: the conformance test reports on those. */
#include "../testutil.h"
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>

static int nbad;

static void fmt(char *buf, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t n, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, n, f, ap);
    va_end(ap);
}

static void save(sal_model *m, const char *path, const char *src) {
    if (sal_model_save(m, path) != SAL_OK) {
        fprintf(stderr, "save_model: %s\n", sal_last_error());
        nbad++;
        return;
    }
    printf("%s\t%s\n", path, src);
}

/* Gemm (transB, alpha) -> Relu -> Gemm with a dynamic batch, two outputs. */
static sal_status small_model(sal_model **out) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    sal_model *g;
    SAL_TRY(sal_graph_create(NULL, &g));
    sal_tensor W = t_rand(&r, 2, (int64_t[]){6, 4}, 1), b = t_rand(&r, 1, (int64_t[]){6}, 1),
               W2 = t_rand(&r, 2, (int64_t[]){6, 3}, 1);
    sal_attr at[2] = {sal_attr_make_int("transB", 1), sal_attr_make_float("alpha", 0.5f)};
    sal_status st = sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4});
    if (st == SAL_OK) st = sal_graph_add_const(g, "W", &W);
    if (st == SAL_OK) st = sal_graph_add_const(g, "b", &b);
    if (st == SAL_OK) st = sal_graph_add_const(g, "W2", &W2);
    if (st == SAL_OK)
        st = sal_graph_add_node(g, "Gemm", "fc1", 3, (const char *[]){"x", "W", "b"}, 1, (const char *[]){"h1"}, 2, at);
    if (st == SAL_OK)
        st = sal_graph_add_node(g, "Relu", "relu1", 1, (const char *[]){"h1"}, 1, (const char *[]){"a1"}, 0, NULL);
    if (st == SAL_OK)
        st = sal_graph_add_node(g, "Gemm", "fc2", 2, (const char *[]){"a1", "W2"}, 1, (const char *[]){"y"}, 0, NULL);
    if (st == SAL_OK) st = sal_graph_add_output(g, "y");
    if (st == SAL_OK) st = sal_graph_add_output(g, "a1");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    sal_tensor_free(&W);
    sal_tensor_free(&b);
    sal_tensor_free(&W2);
    if (st != SAL_OK) {
        sal_model_free(g);
        return st;
    }
    *out = g;
    return SAL_OK;
}

static int cmp_names(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: save_model OUTDIR [NODE_TEST_DIR]\n");
        return 2;
    }
    const char *outdir = argv[1], *nodes = argc > 2 ? argv[2] : "/usr/share/libonnx-testdata/data/node";
    char path[4096], src[4096];
    sal_model *m = NULL;
    if (small_model(&m) == SAL_OK) {
        fmt(path, sizeof path, "%s/small.onnx", outdir);
        save(m, path, "-");
        sal_model_free(m);
    } else {
        fprintf(stderr, "save_model: small: %s\n", sal_last_error());
        nbad++;
    }
    const char *arch[] = {"mlp", "cnn"};
    for (int i = 0; i < 2; i++) {
        if (sal_model_build(arch[i], 10, 1, &m) != SAL_OK) {
            fprintf(stderr, "save_model: %s: %s\n", arch[i], sal_last_error());
            nbad++;
            continue;
        }
        fmt(path, sizeof path, "%s/%s.onnx", outdir, arch[i]);
        save(m, path, "-");
        sal_model_free(m);
    }
    struct dirent **ents = NULL;
    int ne = scandir(nodes, &ents, NULL, cmp_names);
    for (int i = 0; i < ne; i++) {
        fmt(src, sizeof src, "%s/%s/model.onnx", nodes, ents[i]->d_name);
        if (ents[i]->d_name[0] != '.' && sal_model_load(src, &m) == SAL_OK) {
            fmt(path, sizeof path, "%s/%s.onnx", outdir, ents[i]->d_name);
            save(m, path, src);
            sal_model_free(m);
        }
        free(ents[i]);
    }
    free(ents);
    return nbad ? 1 : 0;
}
