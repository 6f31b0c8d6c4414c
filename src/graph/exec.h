/* Running a graph: forward tape and the backward walker with per-node rules. */
#ifndef SAL_EXEC_H
#define SAL_EXEC_H

#include "graph.h"
#include "ops/ops.h"

/* A backward rule for one node: same contract as sal_op.backward. Attribution methods pass these
 * to replace the gradient at chosen nodes (guided backprop at ReLUs, LRP at linear nodes, ...). */
typedef sal_status (*sal_rule_fn)(sal_opctx *c, void *user);

/* sal_session.lean: what a forward pass keeps */
enum {
    SAL_LEAN_OFF,  /* every value */
    SAL_LEAN_GRAD, /* what a backward pass may read */
    SAL_LEAN_OUT,  /* the inputs and outputs only (sal_session_keep_values): no backward follows */
};

struct sal_session {
    const sal_model *m;
    sal_tensor *act;  /* per value: constants are views, inputs and node outputs owned */
    sal_tensor *grad; /* per value */
    bool *has_grad;   /* grad[v] holds a gradient from the last backward (zero when none reached v) */
    bool *reached;    /* scratch: a seed or a visited node's gradient arrived at v */
    bool *need;       /* scratch: value leads to a wanted gradient */
    bool forward_done;
    uint64_t fwd_version; /* the model's weights (sal_model.version) in the last forward pass */
    sal_scratch ws;
    /* m->twin set: a session of the twin, the twin's input and, per value, the twin value whose
     * activation replaces it (-1: none) */
    struct sal_session *twin;
    sal_tensor twin_in;
    int *twin_of;
    double *prof; /* per node: seconds in forward, then in backward (2 nnode); NULL: not timed */
    /* Blocked layouts: with `layouts` set, forward passes keep activations between convolutions in
     * oneDNN's nChw16c order (nChw8c below AVX-512: sal_blk_width, sal_blk_fits), which saves
     * converting each convolution's input and output and their gradients (a third of ResNet-50's
     * gradient time). Model inputs and outputs stay plain; only callers that read nothing else but
     * model-input gradients may set it.
     * sal_session_value, backward rules and wanted gradients see plain tensors regardless. */
    bool layouts;
    bool blk_used;           /* the last forward pass ran with layouts */
    unsigned char *blk;      /* per value: act (and grad) hold the blocked layout now */
    unsigned char *blk_cand; /* per value: every consumer could take it blocked (fixed per model) */
    sal_tensor spare;        /* the buffer a conversion to plain writes into, then swaps in */
    bool keep_grads;         /* keep every value's gradient after a backward pass, not only the
                              * wanted ones (tests of relevance at inner layers) */
    sal_tensor *pool;        /* gradient buffers no value holds now (exec.c: grad_release) */
    int npool, pool_cap;
    /* The affine front (sal_exec_front): its value or -1, and per node its part: 1 the head (affine
     * in the input, up to the front), 2 the tail (the rest that depends on the input), 0 neither. */
    int front;
    unsigned char *part;
    bool partial; /* the last forward pass ran one part only: its values are not one whole pass */
    /* ReLU fused into convolutions and Gemms: with `fuse` (and layouts), a Conv or Gemm whose
     * output h only a Relu reads writes max(h, 0) itself when its kernel can (oneDNN's post-op; a
     * Gemm in place after its product), and the Relu's output
     * becomes a view of h, which then holds the Relu's values: alike for the Relu's backward
     * (h > 0 where the ReLU passes) but not h's own. Only callers that read nothing but outputs and
     * input gradients may set it; sal_session_value gives NULL for such an h. */
    bool fuse, fuse_used;
    int *fuse_to;           /* per node: the Relu node a Conv or Gemm may take, or -1 (fixed per model) */
    int *relu_read;         /* per node: the Relu whose output only this MaxPool or Gemm (bwd_relu_in)
                             * reads, not a model output, or -1 (fixed per model; backward_node: relu_under) */
    /* With `fuse`, an Add or Sub whose input h (a MatMul's, Gemm's or Conv's output that it alone
     * reads) has as many elements as its output writes the output into h's buffer: a bias or
     * residual add then takes no buffer of its own, and h (viewed, as a fused ReLU's) is not handed
     * out. Neither op's backward reads h, nor does h's producer's. */
    int *inplace_in;        /* per node: that input of an Add or Sub, or -1 (fixed per model) */
    int *view_of;           /* per value: the value whose activation it views (-1: none) */
    int *viewed_by;         /* per value: the value viewing its activation (-1: none) */
    /* With `lean`, a forward pass gives an activation's buffer to the pool as soon as the pass is
     * done with it, unless a backward pass may read it (sal_op.bwd_known): a transformer's products,
     * sums and transposes, a CNN's convolution inputs. Such a value keeps its shape with data NULL,
     * and sal_session_value gives NULL for it. Only callers that read nothing but the outputs and
     * input gradients, through the ops' own gradients or rules that read what the ops' read (the
     * ReLU rules), may set it. Peak memory then follows the values a backward needs, and the
     * forward pass reuses buffers that are still in the cache. */
    unsigned char lean, lean_used; /* SAL_LEAN_* */
    bool keep_values;              /* sal_session_keep_values: sal_forward keeps every value */
    int *drop_after; /* per value: at an alias ring's root, the node after which it drops, or -1 */
    int *drop_out;   /* the same when only the outputs are kept (SAL_LEAN_OUT) */
    int *alias;      /* per value: the next value of its alias ring (values that may share a buffer) */
    int *alias_of;   /* per value: its ring's root */
    /* A second session of the model, kept with this one for methods that run a reference pass
     * beside the explained one (DeepLIFT): repeated calls against the same reference then reuse
     * its values (sal_exec_forward_reuse) and buffers. NULL until one asks (sal_exec_ref_session). */
    struct sal_session *ref;
};

/* Times every node of every later pass into s->prof (summed until switched off): where a model's
 * time goes, for benchmarks. */
sal_status sal_session_profile(sal_session *s, bool on);

/* Converts value v back to plain layout (its activation and, with grad, its gradient) if it is
 * blocked; a no-op otherwise. */
sal_status sal_exec_unblock(sal_session *s, int v, bool grad);

/* Runs one node on given tensors: infer, allocate outputs, forward. */
sal_status sal_run_node(const sal_model *g, const sal_node *n, sal_tensor *const *in,
                        sal_tensor *const *out, sal_scratch *ws);

/* Forward with inputs in model-input order; checks their shapes. */
sal_status sal_exec_forward(sal_session *s, const sal_tensor *inputs);
/* The same for a single-input model, skipped when the session's last forward pass ran on x already
 * (same shape and bytes, the same weights): sal_explain runs x forward to pick targets, and methods
 * then reuse it. */
sal_status sal_exec_forward_reuse(sal_session *s, const sal_tensor *x);
/* s->ref, made on first use. */
sal_status sal_exec_ref_session(sal_session *s, sal_session **ref);
/* Frees the buffers of every value's activation and gradient, the pool's and those of its twin and
 * reference sessions; the next pass allocates its own. Buffers otherwise keep the size of the
 * largest pass: a method whose passes take fewer rows than sal_explain's targets pass (integrated
 * gradients on VGG16 at batch 4, in chunks of 2) would hold that pass's buffers throughout. */
void sal_exec_release(sal_session *s);
/* After a forward pass: SAL_ERR_NUMERIC if a float model output holds NaN or Inf, naming the first
 * node (in execution order) that produced a non-finite value (after a lean pass, which dropped
 * values, the pass runs again keeping them to find it). */
sal_status sal_exec_check_outputs(sal_session *s);

/* The affine front of a single-input model: the value F such that every node between the input and
 * F is affine in the input (Conv, Gemm, BatchNormalization, sums, products with constants, routing
 * ops), and every other node that depends on the input reads F and nothing else before it. Then
 * F(x0 + a (x - x0)) = F(x0) + a (F(x) - F(x0)), and methods whose rows lie on one line through the
 * input space (integrated gradients) run the head twice instead of once per row. -1 when there is
 * no such value (the first node is not affine, the input also feeds elsewhere, a twin is set). */
int sal_exec_front(const sal_session *s);
/* Forward over the head only (the nodes up to the front, and those reading no input), from x. */
sal_status sal_exec_forward_head(sal_session *s, const sal_tensor *x);
/* The Relu that alone reads the front, when the session fuses ReLUs (sal_session.fuse); else -1.
 * A caller that writes the front's rows may apply it (max(f, 0)) in the same pass. */
int sal_exec_front_relu(const sal_session *s);
/* Forward over the tail only (every node but the head's), from f, a value of the front shaped as
 * the head's last pass made it but for the batch axis (or the session's value of the front itself,
 * written in place: then nothing is copied). relu_done: f holds max(F, 0) (sal_exec_front_relu),
 * whose Relu then only views it, as when fused. A backward pass after it reaches the front (wrt
 * it); one after sal_exec_forward_head reaches the input from a seed at the front. */
sal_status sal_exec_forward_tail(sal_session *s, const sal_tensor *f, bool relu_done);
/* The head as one product: when the head is a Gemm with constant weights (sal_gemm_rows) behind
 * ops that keep the input's elements in order (Flatten, Reshape: an MLP's first Linear), op(B) as
 * (K, N) rows for inputs of K elements per sample, and alpha; NULL otherwise. A row that differs
 * from a sample in a few elements then has the front F(sample) + alpha (row - sample) op(B) summed
 * over those elements alone (occlusion's windows, sal_batched.near). */
const float *sal_exec_front_product(sal_session *s, int64_t K, int64_t *N, float *alpha);
/* Gemm node's op(B) with its K rows summed in groups of S (sal_gemm_group_sums), kept in the
 * session; NULL when it does not apply. */
const float *sal_exec_gemm_group_sums(sal_session *s, int node, int64_t K, int64_t S, int64_t *N, float *alpha);

/* The pass-through rule: input 0's relevance is output 0's, unchanged (LRP at ReLUs and the other
 * activations). The walker hands the output's buffer over instead where it can, as for an op's
 * bwd_pass (no zeroed buffer, no pass adding it), and runs the rule where it cannot. */
sal_status sal_rule_pass(sal_opctx *c, void *user);

/* The rules of a Relu y = max(x, 0) that guided backprop (Springenberg et al.: the gradient, only
 * where it is positive) and deconvnet (Zeiler and Fergus: max(0, dy), whatever x did) give it. The
 * walker knows them: an op of bwd_relu_rules over the Relu applies them itself (sal_opctx.relu_rule)
 * where it would write the Relu's input gradient with the plain gradient's mask (relu_in). */
sal_status sal_rule_guided(sal_opctx *c, void *user);
sal_status sal_rule_deconv(sal_opctx *c, void *user);

typedef struct {
    const bool *wrt;         /* per value: gradient wanted. NULL: the model inputs */
    const sal_rule_fn *rule; /* per node (NULL entries: the op's gradient); the array may be NULL */
    void *user;              /* passed to rules */
    /* Every rule is indifferent to the order of elements within a sample (elementwise, a
     * per-sample percentile, or the op's own gradient), so rules may run on blocked tensors like
     * the ops; otherwise the walker converts a rule's values to plain first. */
    bool rules_any_layout;
} sal_backward_opts;

/* Backpropagates seeds[i] (shaped as value seed_val[i]) through the last forward pass. Afterwards
 * s->grad[v] holds the result for every wanted v (zero if no path reaches it); the gradients of
 * other node outputs are not kept (their buffers are reused within the pass). */
sal_status sal_exec_backward(sal_session *s, int nseed, const int *seed_val, const sal_tensor *seeds,
                             const sal_backward_opts *o);

#endif
