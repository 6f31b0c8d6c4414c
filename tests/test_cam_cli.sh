#!/usr/bin/env bash
# `saliency explain` and `saliency info` for the layer methods (gradcam and relatives, FullGrad) on
# a small trained CNN: the candidate layers listed with shapes, maps shaped as the input, the layer
# used in the JSON, --layer-out at the layer's resolution, FullGrad's completeness, and bad layers
# refused with a one-line message naming them.
set -u
. "$(dirname "$0")/lib.sh"

py_check() { # what python-code: the code (with numpy as np, json, d = the temp dir) must exit 0
    local what=$1
    if "$PY" -c "import sys, json, numpy as np; d = sys.argv[1]; $2" "$tmp" > "$tmp/py.txt" 2>&1; then ok
    else bad "$what: $(cat "$tmp/py.txt")"; fi
}

"$bin" train --arch cnn --data mnist --epochs 1 --limit 300 --seed 3 --out "$tmp/m.onnx" > "$tmp/train.txt" 2>&1 \
    && ok || { bad "train"; cat "$tmp/train.txt"; }
"$PY" -c "import numpy as np; np.save('$tmp/x.npy', np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32))"

# info: the candidates with shapes, the last marked as the default
"$bin" info "$tmp/m.onnx" > "$tmp/info.txt" 2>&1
grep -q "layers for gradcam" "$tmp/info.txt" && grep -q "relu1 .*(1,32,28,28)" "$tmp/info.txt" \
    && grep -q "pool2 .*(1,64,7,7)  (default)" "$tmp/info.txt" && ! grep -q "^  fc3 " "$tmp/info.txt" \
    && ok || bad "info lists the CAM layers: $(cat "$tmp/info.txt")"

for m in gradcam gradcam_pp guided_gradcam layercam xgradcam scorecam gradcam_pos gradmid; do
    "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method $m --out "$tmp/$m.npy" --json "$tmp/$m.json" \
        --layer-out "$tmp/$m.layer.npy" 2> "$tmp/err.txt" || { bad "$m: $(cat "$tmp/err.txt")"; continue; }
    py_check "$m outputs" "
a = np.load(d + '/$m.npy'); l = np.load(d + '/$m.layer.npy'); j = json.load(open(d + '/$m.json'))
assert a.shape == (2, 1, 28, 28) and np.isfinite(a).all(), a.shape
assert l.shape == (2, 1, 7, 7), l.shape
assert j['layer'] == 'pool2' and j['params']['layer'] == 'auto', j"
done
for m in fullgrad cumulative_gradcam cumulative_gradmid; do
    "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method $m --out "$tmp/$m.npy" --json "$tmp/$m.json" \
        2> "$tmp/err.txt" || { bad "$m: $(cat "$tmp/err.txt")"; continue; }
    py_check "$m outputs" "
a = np.load(d + '/$m.npy'); assert a.shape == (2, 1, 28, 28) and np.isfinite(a).all() and a.min() >= 0, a.shape"
done
py_check "FullGrad completeness" "
j = json.load(open(d + '/fullgrad.json')); c = j['checks']
assert c['completeness_delta'] < 1e-4 * max(1, max(abs(v) for v in j['outputs'])) and c['bias_terms'] == 4, c"

# a chosen layer, by node or output name; no upsampling
"$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradcam --param layer=a1 --param upsample=none \
    --out "$tmp/g1.npy" --json "$tmp/g1.json" --layer-out "$tmp/g1.layer.npy" && ok || bad "gradcam layer=a1"
py_check "layer by output name, upsample=none" "
a = np.load(d + '/g1.npy'); l = np.load(d + '/g1.layer.npy'); j = json.load(open(d + '/g1.json'))
assert a.shape == (2, 1, 28, 28) and (a == l).all() and a.min() >= 0 and j['layer'] == 'relu1', (a.shape, j)"
"$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradcam --param upsample=none --out "$tmp/g2.npy" \
    && py_check "upsample=none at the default layer" "assert np.load(d + '/g2.npy').shape == (2, 1, 7, 7)" \
    || bad "gradcam upsample=none"

expect_fail "layer 'fc3' has output shape (2,128)" "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" \
    --method gradcam --param layer=fc3 --out "$tmp/bad.npy"
expect_fail "candidates: conv1, relu1, pool1, conv2, relu2, pool2" "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" \
    --method layercam --param layer=conv9 --out "$tmp/bad.npy"
expect_fail "upsample=cubic must be one of: bilinear, none" "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" \
    --method gradcam --param upsample=cubic --out "$tmp/bad.npy"
expect_fail "gives no layer map" "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method fullgrad \
    --out "$tmp/fg.npy" --layer-out "$tmp/bad.npy"
[ ! -e "$tmp/bad.npy" ] && ok || bad "a failed run left bad.npy"

finish test_cam_cli
