#!/usr/bin/env bash
# The CLI end to end: train, info, run; and bad input of every kind gives a one-line message naming
# the file or argument, exit code 1, and no output file.
set -u
. "$(dirname "$0")/lib.sh"

# --help on every command
for c in info run train; do
    if "$bin" $c --help | grep -q "usage: saliency $c"; then ok; else bad "$c --help"; fi
done
"$bin" --help | grep -q "commands:" && ok || bad "saliency --help"
expect_fail "unknown command" "$bin" frobnicate
expect_fail "unknown option --bogus" "$bin" info --bogus
expect_fail "needs a value" "$bin" train --epochs

# a small trained model
"$bin" train --arch mlp --data mnist --epochs 1 --limit 500 --seed 3 --out "$tmp/m.onnx" > "$tmp/train.txt" 2>&1 \
    && ok || { bad "train"; cat "$tmp/train.txt"; }
grep -q "test accuracy" "$tmp/train.txt" && ok || bad "train prints test accuracy"
"$bin" info "$tmp/m.onnx" > "$tmp/info.txt" && grep -q "Gemm" "$tmp/info.txt" && grep -q "(1,1024)" "$tmp/info.txt" \
    && ok || bad "info lists nodes with shapes"

# run: logits equal an independent numpy forward pass of the saved weights
"$PY" - "$tmp" <<'PYEOF' && ok || bad "make inputs"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
np.save(d + '/x.npy', rng.random((5, 1, 28, 28), dtype=np.float32))
np.save(d + '/x1.npy', rng.random((1, 28, 28), dtype=np.float32))
np.save(d + '/xbad.npy', rng.random((5, 1, 27, 28), dtype=np.float32))
x = rng.random((2, 1, 28, 28), dtype=np.float32); x[1, 0, 3, 4] = np.nan
np.save(d + '/xnan.npy', x)
np.save(d + '/xi.npy', np.zeros((2, 1, 28, 28), dtype=np.int16))
PYEOF
"$bin" run "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/y.npy" && ok || bad "run"
"$PY" - "$tmp" <<'PYEOF' && ok || bad "run output equals numpy forward pass"
import sys, numpy as np, onnx
from onnx import numpy_helper
d = sys.argv[1]
m = onnx.load(d + '/m.onnx')
w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
h = np.load(d + '/x.npy').reshape(5, -1).astype(np.float64)
for i in range(1, 5):
    h = h @ w['fc%d.weight' % i].T + w['fc%d.bias' % i]
    if i < 4: h = np.maximum(h, 0)
y = np.load(d + '/y.npy')
err = np.abs(y - h).max() / np.abs(h).max()
print('max relative error', err)
sys.exit(0 if y.shape == (5, 10) and err < 1e-5 else 1)
PYEOF
"$bin" run "$tmp/m.onnx" --input "$tmp/x1.npy" --out "$tmp/y1.npy" && ok || bad "run on a single sample without batch dimension"

# bad input
expect_fail "$tmp/missing.onnx" "$bin" run "$tmp/missing.onnx" --input "$tmp/x.npy" --out "$tmp/o1.npy"
head -c 3000 "$tmp/m.onnx" > "$tmp/trunc.onnx"
expect_fail "$tmp/trunc.onnx" "$bin" run "$tmp/trunc.onnx" --input "$tmp/x.npy" --out "$tmp/o2.npy"
head -c 100 /dev/urandom > "$tmp/garbage.onnx"
expect_fail "$tmp/garbage.onnx" "$bin" info "$tmp/garbage.onnx"
expect_fail "input 'input'" "$bin" run "$tmp/m.onnx" --input "$tmp/xbad.npy" --out "$tmp/o3.npy"
expect_fail "non-finite" "$bin" run "$tmp/m.onnx" --input "$tmp/xnan.npy" --out "$tmp/o4.npy"
expect_fail "xi.npy" "$bin" run "$tmp/m.onnx" --input "$tmp/xi.npy" --out "$tmp/o5.npy"
head -c 90 "$tmp/x.npy" > "$tmp/xtrunc.npy"
expect_fail "xtrunc.npy" "$bin" run "$tmp/m.onnx" --input "$tmp/xtrunc.npy" --out "$tmp/o6.npy"
expect_fail "$tmp/nodir/y.npy" "$bin" run "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/nodir/y.npy"
expect_fail "unknown data set" "$bin" train --arch mlp --data imagenet --out "$tmp/o7.onnx"
expect_fail "unknown architecture" "$bin" train --arch resnet --data mnist --out "$tmp/o8.onnx"
expect_fail "--lr" "$bin" train --arch mlp --data mnist --lr abc --out "$tmp/o9.onnx"
for i in 1 2 3 4 5 6 7 8 9; do
    if ls "$tmp"/o$i.* >/dev/null 2>&1; then bad "partial output o$i left behind"; else ok; fi
done
if ls "$tmp"/*.tmp.* >/dev/null 2>&1; then bad "temporary files left behind"; else ok; fi

finish test_cli
