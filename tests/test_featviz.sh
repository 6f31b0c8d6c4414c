#!/usr/bin/env bash
# visualize, topk and invert end to end on a small MNIST CNN and a 1-D sequence model: outputs exist
# and agree with independent computations (topk against `saliency run`), the objective grows, PPMs
# are probability matrices, and bad input fails with exit 1 and a message naming what is wrong.
set -u
. "$(dirname "$0")/lib.sh"

for c in visualize topk invert; do
    "$bin" $c --help | grep -q "usage: saliency $c" && ok || bad "$c --help"
done

"$bin" train --arch cnn --data mnist --epochs 1 --limit 1000 --out "$tmp/m.onnx" > "$tmp/train.txt" 2>&1 \
    && ok || { bad "train"; cat "$tmp/train.txt"; exit 1; }

"$PY" - "$tmp" <<'PYEOF' && ok || bad "make inputs"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
np.save(d + '/x.npy', rng.random((40, 1, 28, 28), dtype=np.float32))
np.save(d + '/one.npy', rng.random((1, 28, 28), dtype=np.float32))
np.save(d + '/dir.npy', rng.standard_normal(64).astype(np.float32))
PYEOF

# a channel, a linear combination with a direction, Fourier space with the robustness recipe
"$bin" visualize "$tmp/m.onnx" --objective channel:conv2:3 --steps 48 --batch 2 --tv 0.05 --blur-every 16 \
    --out "$tmp/v.npy" --png "$tmp/v.png" --json "$tmp/v.json" --sweep 3 > "$tmp/v.txt" 2>&1 \
    && ok || { bad "visualize channel"; cat "$tmp/v.txt"; }
"$bin" visualize "$tmp/m.onnx" --objective "0.5*channel:conv2:3 + 0.5*direction:relu2:$tmp/dir.npy - 0.1*layer:relu1" \
    --space fourier --robust --steps 32 --batch 3 --diversity 2 --seed 4 --out "$tmp/f.npy" --png "$tmp/f.png" \
    --json "$tmp/f.json" > "$tmp/f.txt" 2>&1 && ok || { bad "visualize combination, fourier"; cat "$tmp/f.txt"; }
"$bin" visualize "$tmp/m.onnx" --objective "0.5*channel:conv2:3 + 0.5*direction:relu2:$tmp/dir.npy - 0.1*layer:relu1" \
    --space fourier --robust --steps 32 --batch 3 --diversity 2 --seed 4 --out "$tmp/f2.npy" > /dev/null 2>&1 \
    && cmp -s "$tmp/f.npy" "$tmp/f2.npy" && ok || bad "the same seed gives the same bytes"
"$bin" visualize "$tmp/m.onnx" --objective prob:7 --steps 24 --opt gd --lr 0.5 --l2 0.1 --json "$tmp/p.json" \
    > "$tmp/p.txt" 2>&1 && ok || { bad "visualize prob, gd"; cat "$tmp/p.txt"; }
"$PY" - "$tmp" <<'PYEOF' && ok || bad "visualize outputs"
import sys, json, numpy as np
d = sys.argv[1]
for name, n in (('v', 2), ('f', 3)):
    x = np.load(f'{d}/{name}.npy')
    assert x.shape == (n, 1, 28, 28) and x.dtype == np.float32, x.shape
    assert x.min() >= 0 and x.max() <= 1, (x.min(), x.max())
    j = json.load(open(f'{d}/{name}.json'))
    assert len(j['before']) == n and len(j['after']) == n, j
    assert j['after_mean'] > j['before_mean'] + 0.1, (j['before_mean'], j['after_mean'])
    assert open(f'{d}/{name}.png', 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
j = json.load(open(d + '/v.json'))
assert j['snapshot_steps'] == [0, 24, 48], j['snapshot_steps']
assert abs(j['options']['tv'] - 0.05) < 1e-6 and j['options']['blur_every'] == 16
j = json.load(open(d + '/f.json'))
assert j['options']['space'] == 'fourier' and j['options']['angles'] == list(range(-5, 6))
assert j['objective'].startswith('0.5*channel:conv2:3 + 0.5*direction:relu2:') and j['objective'].endswith(' - 0.1*layer:relu1')
j = json.load(open(d + '/p.json'))
assert 0 <= j['before'][0] <= 1 and j['after'][0] > j['before'][0], j['after']
PYEOF

# topk on logits equals the ranking of `saliency run`'s outputs
"$bin" topk "$tmp/m.onnx" --data "$tmp/x.npy" --objective logit:3 -k 4 --png "$tmp/top.png" --json "$tmp/top.json" \
    > "$tmp/top.txt" 2>&1 && ok || { bad "topk"; cat "$tmp/top.txt"; }
"$bin" run "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/y.npy" > /dev/null 2>&1 && ok || bad "run"
"$PY" - "$tmp" <<'PYEOF' && ok || bad "topk agrees with run"
import sys, json, numpy as np
d = sys.argv[1]
y = np.load(d + '/y.npy')[:, 3]
j = json.load(open(d + '/top.json'))
order = np.argsort(-y, kind='stable')
assert [t['index'] for t in j['top']] == list(order[:4]), (j['top'], order[:4])
assert [t['index'] for t in j['bottom']] == list(order[::-1][:4]), (j['bottom'], order[-4:])
assert np.allclose([t['value'] for t in j['top']], y[order[:4]], rtol=1e-4, atol=1e-4)
assert open(d + '/top.png', 'rb').read(4) == b'\x89PNG'
PYEOF
grep -q "top 4:" "$tmp/top.txt" && grep -q "bottom 4:" "$tmp/top.txt" && ok || bad "topk prints both lists"

# inversion of one sample (no batch dimension) from a conv layer
"$bin" invert "$tmp/m.onnx" --input "$tmp/one.npy" --node conv1 --steps 64 --out "$tmp/inv.npy" --json "$tmp/inv.json" \
    > "$tmp/inv.txt" 2>&1 && ok || { bad "invert"; cat "$tmp/inv.txt"; }
"$PY" - "$tmp" <<'PYEOF' && ok || bad "invert outputs"
import sys, json, numpy as np
d = sys.argv[1]
x = np.load(d + '/inv.npy')
assert x.shape == (1, 1, 28, 28), x.shape
j = json.load(open(d + '/inv.json'))
assert j['after'][0] > j['before'][0] and j['after'][0] <= 0, j
x0 = np.load(d + '/one.npy')[None]
assert np.abs(x - x0).mean() < np.abs(0.5 - x0).mean(), 'no closer to the input than the start'
PYEOF

# a 1-D conv model on one-hot DNA: the optimized input is a position probability matrix
"$PY" - "$tmp" <<'PYEOF' && ok || bad "make a sequence model"
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
d = sys.argv[1]
rng = np.random.default_rng(1)
w = rng.standard_normal((3, 4, 5)).astype(np.float32)
b = np.zeros(3, np.float32)
g = helper.make_graph(
    [helper.make_node('Conv', ['seq', 'w', 'b'], ['c'], name='conv', kernel_shape=[5]),
     helper.make_node('Relu', ['c'], ['a'], name='relu'),
     helper.make_node('GlobalMaxPool', ['a'], ['p'], name='pool'),
     helper.make_node('Flatten', ['p'], ['out'], name='flat')],
    'seq', [helper.make_tensor_value_info('seq', TensorProto.FLOAT, ['N', 4, 20])],
    [helper.make_tensor_value_info('out', TensorProto.FLOAT, ['N', 3])],
    [numpy_helper.from_array(w, 'w'), numpy_helper.from_array(b, 'b')])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), d + '/seq.onnx')
np.save(d + '/w.npy', w)
PYEOF
"$bin" visualize "$tmp/seq.onnx" --objective unit:conv:1:6 --ppm --steps 200 --lr 0.1 --csv "$tmp/ppm.csv" --alphabet ACGT \
    --png "$tmp/ppm.png" --out "$tmp/ppm.npy" > "$tmp/ppm.txt" 2>&1 && ok || { bad "visualize --ppm"; cat "$tmp/ppm.txt"; }
"$PY" - "$tmp" <<'PYEOF' && ok || bad "ppm csv"
import sys, numpy as np
d = sys.argv[1]
lines = open(d + '/ppm.csv').read().split('\n')
assert lines[0] == 'image,position,A,C,G,T', lines[0]
m = np.array([[float(v) for v in l.split(',')] for l in lines[1:] if l])
assert m.shape == (20, 6), m.shape
p = m[:, 2:]
assert (p >= 0).all() and np.allclose(p.sum(1), 1, atol=1e-5), p
w = np.load(d + '/w.npy')[1]  # (4, 5): the unit sees positions 6..10
assert (p[6:11].argmax(1) == w.argmax(0)).all() and (p[6:11].max(1) > 0.99).all(), (p[6:11], w)
x = np.load(d + '/ppm.npy')
assert x.shape == (1, 4, 20) and np.allclose(x[0].T, p, atol=1e-5)
PYEOF

# bad input: exit 1, one line naming the culprit, no output file
expect_fail "'nosuch'" "$bin" visualize "$tmp/m.onnx" --objective channel:nosuch:3 --out "$tmp/no.npy"
[ ! -e "$tmp/no.npy" ] && ok || bad "an output file was written after a failure"
expect_fail "'ghost'" "$bin" visualize "$tmp/m.onnx" --objective "channel:conv2:1 + 0.5*unit:ghost:1:2:3"
expect_fail "'nosuch'" "$bin" topk "$tmp/m.onnx" --data "$tmp/x.npy" --objective layer:nosuch
expect_fail "'nosuch'" "$bin" invert "$tmp/m.onnx" --input "$tmp/one.npy" --node nosuch
expect_fail "unknown kind 'pixel'" "$bin" visualize "$tmp/m.onnx" --objective pixel:3
expect_fail "channel:conv2:99" "$bin" visualize "$tmp/m.onnx" --objective channel:conv2:99 --steps 2
expect_fail "class is out of range" "$bin" visualize "$tmp/m.onnx" --objective logit:10 --steps 2
expect_fail "ppm" "$bin" visualize "$tmp/m.onnx" --objective logit:1 --ppm --steps 2
expect_fail "--ppm" "$bin" visualize "$tmp/m.onnx" --objective logit:1 --csv "$tmp/x.csv"
expect_fail "batch of 2" "$bin" visualize "$tmp/m.onnx" --objective channel:conv2:1 --diversity 1 --steps 2
expect_fail "missing --objective" "$bin" visualize "$tmp/m.onnx"
expect_fail "--space must be pixel, fourier or softmax" "$bin" visualize "$tmp/m.onnx" --objective logit:1 --space wavelet
expect_fail "--scales" "$bin" visualize "$tmp/m.onnx" --objective logit:1 --scales 1,x
expect_fail "missing.npy" "$bin" topk "$tmp/m.onnx" --data "$tmp/missing.npy" --objective logit:1
expect_fail "not an integer" "$bin" topk "$tmp/m.onnx" --data "$tmp/x.npy" --objective logit:1 -k zero
expect_fail "has 3 letters" "$bin" visualize "$tmp/seq.onnx" --objective unit:conv:1:6 --ppm --steps 2 --csv "$tmp/a.csv" --alphabet ACG

finish test_featviz.sh
