#!/usr/bin/python3
"""sal_hog against scikit-image's hog (Debian's python3-skimage) on the same images: random noise,
smooth blobs, hard edges at every angle (which put pixels on bin boundaries), images whose size is
not a multiple of the cell, and an all-zero image, with skimage's defaults (9 orientations, 8x8-pixel
cells, 3x3-cell blocks, L2-Hys) and with other parameters. Each descriptor must agree within 1e-5.
A last check feeds a shuffled reference, so a comparison that passes everything fails."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from skimage.feature import hog

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def images(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = [rng.random((h, w)), np.zeros((h, w))]
    for _ in range(3):  # smooth blobs, as attribution maps are
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 8)
        out.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)))
    for deg in (0, 20, 45, 60, 90, 135, 160):  # hard edges: gradients on and near bin edges
        t = np.deg2rad(deg)
        out.append((np.cos(t) * xx + np.sin(t) * yy > (h + w) / 4).astype(np.float64))
    m = np.abs(rng.standard_normal((h, w)))  # a sparse |map| in [0, 1], like the audits' planes
    m[m < 1.5] = 0
    out.append(m / max(m.max(), 1e-12))
    return np.stack(out).astype(np.float32)


def main():
    build = os.environ.get("SAL_BUILD", "build")
    tool = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build), "tools", "hog_dump")
    if not os.access(tool, os.X_OK):
        print("%s not found: build it first" % tool)
        print("0 passed, 1 failed")
        return 1
    rng = np.random.default_rng(7)
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="sal_hog.")
    atexit.register(shutil.rmtree, tmp, True)  # nothing left in /tmp, whatever fails
    cases = [  # (h, w, our options or None for the defaults, skimage's parameters)
        (28, 28, None, dict()),
        (32, 32, None, dict()),
        (40, 36, None, dict()),
        (61, 50, None, dict()),
        (64, 64, (16, 2, 9), dict(pixels_per_cell=(16, 16), cells_per_block=(2, 2))),
        (28, 28, (4, 2, 9), dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2))),
        (30, 30, (5, 1, 12), dict(orientations=12, pixels_per_cell=(5, 5), cells_per_block=(1, 1))),
        (28, 28, (-1, 2, 9), dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2))),  # cell adapted: 28 -> 4
    ]
    ref0 = None
    for h, w, ours, theirs in cases:
        x = images(rng, h, w)
        inp, out = os.path.join(tmp, "x.npy"), os.path.join(tmp, "f.npy")
        np.save(inp, x)
        args = [tool, inp, out] + ([str(v) for v in ours] if ours else [])
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode:
            print("FAIL %dx%d %s: hog_dump: %s" % (h, w, ours, r.stderr.strip()))
            failed += 1
            continue
        got = np.load(out)
        kw = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys")
        kw.update(theirs)
        want = np.stack([hog(img, feature_vector=True, **kw) for img in x])
        if ref0 is None:
            ref0 = (got, want)
        err = np.abs(got - want).max() if got.shape == want.shape else np.inf
        ok = err <= 1e-5
        print("%s %dx%d %s: %s features, max |ours - skimage| = %.3g" %
              ("ok  " if ok else "FAIL", h, w, ours or "defaults", got.shape, err))
        passed += ok
        failed += not ok
    got, want = ref0  # the check can fail: a shuffled reference differs
    bad = np.abs(got - np.roll(want, 1, axis=1)).max() > 1e-5
    print("%s a shuffled reference is told apart" % ("ok  " if bad else "FAIL"))
    passed += bad
    failed += not bad
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
