/* Winograd F(4x4, 3x3) and F(2x2, 3x3) convolutions in blocked layouts (conv_wino.c), for 3x3 layers of stride 1
 * and padding 1 where oneDNN has no Winograd kernel (its f32 one needs AVX-512). */
#ifndef SAL_CONV_WINO_H
#define SAL_CONV_WINO_H

#include "conv_dnnl.h"

/* Which convolutions run here: none, those it pays for on this machine (the default), all that fit
 * (tests). Sets the mode (mode < 0: leaves it), returns the previous one; not thread-safe. The
 * environment variable SAL_WINO=0 or SAL_WINO=all sets it at the first use. */
enum { SAL_WINO_OFF, SAL_WINO_AUTO, SAL_WINO_ALL };
int sal_conv_wino_mode(int mode);
/* The tile, F(m x m, 3 x 3): m = 2 has 16 products for 4 outputs (4 a pixel, within about 5e-7 of
 * the largest output), m = 4 36 for 16 (2.25 a pixel, within about 1e-5). An output of F(2x2) whose
 * receptive field is flat comes out bit for bit as a direct convolution's, so max pooling breaks its
 * ties in flat regions (black backgrounds) as PyTorch's does; F(4x4) mixes each output with the
 * pixels of a 6 x 6 patch and breaks them by rounding, which moved the gradients of the paper CNN's
 * flat regions (0.34 of the largest) and failed its invariance audit. So by default (0) a forward
 * whose output reaches max pooling takes F(2x2), other forwards and every input gradient (linear in
 * dY, no decisions) F(4x4) by the layer; 2 or 4 take that one everywhere. Sets it (0, 2 or 4;
 * anything else leaves it), returns the previous setting; not thread-safe. The environment variable
 * SAL_WINO_TILE=2 or 4 sets it at the first use. */
int sal_conv_wino_tile(int tile);
/* The tile layer k runs with, ties: whether its values reach max pooling (a forward's output): 2
 * when set, or by default where ties; else F(4x4) but for wide layers on few tiles. */
int sal_conv_wino_tile_for(const sal_conv_shape *k, bool ties);
/* Convolutions run here so far (forward and backward), for tests. */
long sal_conv_wino_calls(void);
/* Those of them with F(4x4). */
long sal_conv_wino_calls4(void);
/* Whether shape k is one this code computes: 2-D, one group, 3x3, stride 1, no dilation, padding 1
 * on every side, channels in whole blocks (sal_blk_width). */
bool sal_conv_wino_fits(const sal_conv_shape *k);
/* Whether it should run node c's layer k, forward or backward into the data (bwd): the mode, and in
 * SAL_WINO_AUTO the measured choice against oneDNN, sal_conv_wino_pays with the tile it would take. */
bool sal_conv_wino_wanted(const sal_opctx *c, const sal_conv_shape *k, bool bwd);
/* SAL_WINO_AUTO's choice for layer k at tile m, ties: a forward whose output reaches max pooling
 * (sal_conv_ties), by the machine: blocks of 8 (AVX2: oneDNN has no Winograd there), or blocks of
 * 16 on AVX-512 in 256-bit halves (halves: oneDNN's 512-bit kernels then do no more multiply-adds a
 * cycle than ours); on other AVX-512 machines oneDNN's. */
bool sal_conv_wino_pays(const sal_conv_shape *k, int m, bool ties, int width, bool halves);

/* The (t + 2)^2 transformed 3x3 kernels of W (M, C, 3, 3) for tile t: U[xi][c][m] = (G W[m][c]
 * G^T)[xi], or for the backward into the data (bwd) U[xi][m][c] of W[m][c] turned by 180 degrees. */
void sal_wino_weights(float *U, const float *W, int64_t M, int64_t C, int t, bool bwd);
/* Y (N, Co, H, W) = the convolution of X (N, Ci, H, W) with the kernels U (sal_wino_weights of
 * tile t, [(t + 2)^2][Ci][Co]) in tiles of t x t outputs, both tensors blocked (sal_blk_width),
 * padding 1; plus B[co] (B may be NULL), then max(., 0) when relu; added to Y when add. Scratch
 * slot 0 of ws holds the transformed tiles. */
sal_status sal_wino_conv(sal_scratch *ws, int t, int64_t N, int64_t Ci, int64_t Co, int64_t H, int64_t W,
                         const float *X, const float *U, const float *B, bool relu, bool add, float *Y);

/* A Conv node's forward (Y = conv(X, W) + B, max(., 0) when relu) and its input gradient (dX =,
 * or += unless fresh), X, Y, dY and dX blocked; the transformed weights kept in the node's state. */
sal_status sal_conv_wino_forward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                 const float *B, float *Y, bool relu);
sal_status sal_conv_wino_backward(const sal_opctx *c, const sal_conv_shape *k, const float *W, const float *dY,
                                  float *dX, bool fresh);

#endif
