/* Convolution through oneDNN (conv_dnnl.c), used by conv.c for layers large enough to pay for it. */
#ifndef SAL_CONV_DNNL_H
#define SAL_CONV_DNNL_H

#include "ops.h"

/* One convolution's shape; zero it before filling (it is compared bytewise). Spatial arrays are
 * right-aligned in 3 entries like sal_win's; nsp is the real spatial rank. */
typedef struct {
    int nsp;
    bool bias;
    bool ties; /* the forward keeps max pooling's ties (sal_conv_ties): no Winograd (state keys only) */
    int64_t N, C, M, G;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} sal_conv_shape;

typedef struct sal_conv_dnnl sal_conv_dnnl;

/* Which convolutions oneDNN runs: none, the large ones (the default), all it accepts (tests). */
enum { SAL_DNNL_OFF, SAL_DNNL_AUTO, SAL_DNNL_ALL };
/* Sets the mode (mode < 0: leaves it) and returns the previous one. Not thread-safe: for tests and
 * benchmarks. The environment variable SAL_DNNL=0 or SAL_DNNL=all sets it at the first use. */
int sal_conv_dnnl_mode(int mode);
/* Number of oneDNN convolution primitives run so far (forward and backward), for tests. */
long sal_conv_dnnl_calls(void);
/* Those of them that were forwards by Winograd's algorithm (AVX-512 only), for tests. */
long sal_conv_dnnl_wino_calls(void);
/* The channel block of oneDNN's f32 convolution layouts on the ISA it runs (which the environment's
 * DNNL_MAX_CPU_ISA may cap): 16 from AVX-512 on, 8 below. */
int sal_conv_dnnl_blk_width(void);

/* Whether oneDNN should run this convolution: it loaded, SAL_DNNL is not 0, and the layer is large. */
bool sal_conv_dnnl_wanted(const sal_conv_shape *k);
/* Whether its backward of k, when it computes the input gradient alone, should run through oneDNN */
bool sal_conv_dnnl_wanted_dx(const sal_conv_shape *k);
/* Whether it is tried first with Winograd's algorithm (3x3, stride 1, enough output tiles), else direct. */
bool sal_conv_dnnl_winograd(const sal_conv_shape *k);
/* Whether node c's output reaches an op that breaks ties by position (max pooling, maxima, their
 * indices) directly or through up to 3 monotone activations, kept in its state: 1 or 0, -1 when out
 * of memory (a message set); 0 in a forward pass that no backward follows (sal_opctx.fwd_only). A
 * direct convolution's outputs over a flat receptive field come out bit for bit alike, so max
 * pooling breaks their ties by position as PyTorch's does; Winograd F(4x4) mixes a 6 x 6 patch and
 * breaks them by rounding (oneDNN's on AVX-512, ours: conv_wino.h), which moved the paper CNN's
 * gradients in flat regions by 0.34 of their largest value. Such forwards take a direct kernel or
 * our F(2x2), which keeps the ties. */
int sal_conv_ties(const sal_opctx *c);

/* Y = conv(X, W) + B (B may be NULL). *done false (and SAL_OK): oneDNN has no kernel for it, run
 * our own. Keeps primitives in the node's state in c->ws. X is blocked when bit 0 of c->blk_in is
 * set; Y is written blocked (*y_blk) when bit 0 of c->blk_want is set and oneDNN's kernels, forward
 * and backward, work in that layout. *relu true on entry asks for max(Y, 0) instead, and on return
 * says whether it was done. */
sal_status sal_conv_dnnl_forward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                 const float *B, float *Y, bool *done, bool *y_blk, bool *relu);
/* Whether oneDNN runs this convolution, forward and backward, on a blocked X (sal_op.blk_takes). */
bool sal_conv_dnnl_takes_blocked(const sal_opctx *c, const sal_conv_shape *k, bool bias);
/* dX, dW, dB (each may be NULL) += the gradients for dY; with dx_fresh, dX = its gradient (dX's
 * old contents are not read). X and dX are blocked when bit 0 of c->blk_in is set, dY when bit 0
 * of c->blk_out is. */
sal_status sal_conv_dnnl_backward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                  bool bias, const float *dY, float *dX, bool dx_fresh, float *dW, float *dB,
                                  bool *done);

/* A weight derived from a node's constant (its input 1) and kept while the model's weights do not
 * change: from the constant itself (key 0) or from a fixed function of it that the caller names
 * (sal_opctx.wkey: LRP's w+), in one form that the caller numbers (oneDNN's: the direction;
 * Winograd's: the direction and the tile). oneDNN's layouts and Winograd's transforms (conv_wino.c)
 * keep theirs so. */
typedef struct {
    void *buf;
    size_t cap;
    const void *own; /* the node's constant it came from */
    uint64_t key, version, used;
    unsigned form;
    bool valid;
} sal_wcache;
/* The entry of es[0..n) for W (c's node's weight) in the given form, of need bytes: *hit when it
 * holds W's derivation already; else the free or least recently used entry, its buffer grown to
 * need, for the caller to fill and then mark valid. NULL when W is not kept (neither the node's
 * constant nor, up to keyed_max bytes, named by c->wkey), or with *nomem and a message set when out
 * of memory. */
sal_wcache *sal_wcache_get(sal_wcache *es, int n, uint64_t *tick, const sal_opctx *c, const float *W, unsigned form,
                           size_t need, size_t keyed_max, bool *hit, bool *nomem);
/* The node's constant when sal_wcache_get keeps W's derivation of need bytes (W is that constant, or
 * up to keyed_max bytes named by c->wkey); else NULL. */
const void *sal_wcache_source(const sal_opctx *c, const float *W, size_t need, size_t keyed_max);

/* The node's slot for another kernel's state (conv_wino.c's weights), kept beside the primitives
 * and freed with free_fn; NULL with a message set when out of memory. */
void **sal_conv_dnnl_aux(const sal_opctx *c, void (*free_fn)(void *));

/* Y (M, N) = A (M, K) B through oneDNN's matrix product, B the node's constant weight W (trans: W
 * is (N, K) and B its transpose, else B = W, (K, N)) kept packed in the primitive's layout in *state
 * (made on first use; free it with sal_mm_state_free) while the model's weights do not change.
 * sgemm packs B on every call: for a batch of rows of a dense layer that is half the product's time
 * on this machine's 2 MiB caches. *done false (and SAL_OK): not run, use sgemm. Y is overwritten. */
typedef struct sal_mm_state sal_mm_state;
sal_status sal_dnnl_matmul(const sal_opctx *c, sal_mm_state **state, bool trans, int64_t M, int64_t K, int64_t N,
                           const float *A, const float *W, float *Y, bool *done);
void sal_mm_state_free(sal_mm_state *mm);

#endif
