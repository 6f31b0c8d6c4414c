#!/usr/bin/python3
"""Float32 error of Winograd F(m x m, 3x3) at a set of interpolation points, against float64: the
model behind conv_wino.c's choice of F(4x4)'s points (0, +-3/4, +-3/2 and infinity).

usage: bench/wino_points.py [--seeds S]

For each set of points it builds A^T, G and B^T by Toom-Cook in exact fractions (the infinity point
last), then runs one 3x3 layer (64 output channels, 16 x 16, padding 1) the way conv_wino.c does:
the kernels' transforms in double rounded once to float32, the input and output transforms and the
products summed over the input channels in float32. It prints the largest error over the outputs as
a fraction of the largest output (mean over the seeds), for 32 and 256 input channels, inputs of
both signs and after a ReLU, beside a direct convolution's (im2col and one float32 product); then the
scale a of the points 0, +-a, +-2a from 1/2 to 1.
"""
import argparse
import sys
from fractions import Fraction as Fr

import numpy as np


def polymul(a, b):
    o = [Fr(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            o[i + j] += x * y
    return o


def toom_cook(m, pts, r=3):
    """A^T (m, n), G (n, r), B^T (n, n) of F(m, r) at the finite points pts (n - 1 of them) and infinity."""
    P = [Fr(p) for p in pts]
    AT = [[p ** k for p in P] + [Fr(k == m - 1)] for k in range(m)]
    G, BT = [], []
    for i, p in enumerate(P):
        d, c = Fr(1), [Fr(1)]
        for l, q in enumerate(P):
            if l != i:
                d *= p - q
                c = polymul(c, [-q, Fr(1)])
        G.append([p ** j / d for j in range(r)])
        BT.append(c + [Fr(0)])
    G.append([Fr(j == r - 1) for j in range(r)])
    c = [Fr(1)]
    for q in P:
        c = polymul(c, [-q, Fr(1)])
    BT.append(c)
    f = lambda M: np.array([[float(x) for x in row] for row in M])  # noqa: E731
    return f(AT), f(G), f(BT)


def layer(rng, C, relu, K=64, H=16):
    x = rng.standard_normal((C, H + 2, H + 2))
    x = (np.maximum(x, 0) if relu else x).astype(np.float32)
    x[:, 0, :] = x[:, -1, :] = x[:, :, 0] = x[:, :, -1] = 0  # the padding
    w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    ref = sum(np.einsum('kc,chw->khw', w[:, :, i, j].astype(np.float64), x[:, i:i + H, j:j + H].astype(np.float64))
              for i in range(3) for j in range(3))
    return x, w, ref


def direct(x, w, H=16):
    cols = np.stack([x[:, i:i + H, j:j + H] for i in range(3) for j in range(3)], 1).reshape(-1, H * H)
    return (w.reshape(w.shape[0], -1) @ cols).reshape(w.shape[0], H, H)


def winograd(x, w, m, pts, H=16):
    AT, G, BT = toom_cook(m, pts)
    n, T = m + 2, H // m
    U = np.einsum('ai,kcij,bj->abkc', G, w.astype(np.float64), G).astype(np.float32)
    BT32, AT32 = BT.astype(np.float32), AT.astype(np.float32)
    tiles = np.stack([x[:, a * m:a * m + n, b * m:b * m + n] for a in range(T) for b in range(T)])
    V = np.einsum('ai,tcij,bj->abtc', BT32, tiles, BT32).astype(np.float32)
    M = np.matmul(V, U.transpose(0, 1, 3, 2))  # float32 products over the input channels
    Y = np.einsum('ia,abtk,jb->tkij', AT32, M, AT32).astype(np.float32)
    return Y.reshape(T, T, -1, m, m).transpose(2, 0, 3, 1, 4).reshape(-1, H, H)


def err(y, ref):
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, default=8)
    a = ap.parse_args()
    SETS = [('F(2x2) 0 +-1', 2, [0, 1, -1]), ('F(4x4) 0 +-1 +-2', 4, [0, 1, -1, 2, -2]),
            ('F(4x4) 0 +-1 1/2 -2', 4, [0, 1, -1, Fr(1, 2), -2]),
            ('F(4x4) 0 +-3/4 +-3/2', 4, [0, Fr(3, 4), Fr(-3, 4), Fr(3, 2), Fr(-3, 2)])]
    print('%-22s %12s %12s %12s %12s' % ('points', 'C=32', 'C=256', 'C=32 ReLU', 'C=256 ReLU'))
    cases = [(C, relu) for relu in (False, True) for C in (32, 256)]
    data = {c: [layer(np.random.default_rng(s), *c) for s in range(a.seeds)] for c in cases}
    row = lambda f: ' '.join('%12.2e' % np.mean([err(f(x, w), r) for x, w, r in data[c]]) for c in cases)  # noqa: E731
    print('%-22s %s' % ('direct', row(direct)))
    for name, m, pts in SETS:
        print('%-22s %s' % (name, row(lambda x, w: winograd(x, w, m, pts))))
    print('\nF(4x4) at 0, +-a, +-2a, all four cases:')
    for s in [Fr(1, 2), Fr(5, 8), Fr(11, 16), Fr(3, 4), Fr(13, 16), Fr(7, 8), Fr(1)]:
        e = np.mean([err(winograd(x, w, 4, [0, s, -s, 2 * s, -2 * s]), r) for c in cases for x, w, r in data[c]])
        print('  a = %-6s %.2e' % (s, e))
    return 0


if __name__ == '__main__':
    sys.exit(main())
