#!/usr/bin/env bash
# `saliency explain --method lime|kernel_shap|rise|sobol` on the trained MLP and CNN: maps shaped as
# the input and finite, the JSON's parameters and checks, --segments (the map is constant on each
# segment and KernelSHAP's values sum to f(x) - f(baseline), also for the summed output of
# --target sum), --fallback refused for a gradient method, and one-line messages for bad segment
# files.
set -u
. "$(dirname "$0")/lib.sh"

for arch in mlp cnn; do
    "$bin" train --arch $arch --data mnist --epochs 1 --limit 300 --seed 5 --out "$tmp/$arch.onnx" > "$tmp/train.txt" 2>&1 \
        && ok || { bad "train $arch"; cat "$tmp/train.txt"; }
done
"$PY" - "$tmp" <<'PYEOF' && ok || bad "make inputs"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(2)
np.save(d + '/x.npy', rng.random((2, 1, 28, 28), dtype=np.float32))
np.save(d + '/data.npy', rng.random((10, 1, 28, 28), dtype=np.float32))
lab = (np.arange(28)[:, None] // 14) * 2 + np.arange(28)[None, :] // 14   # 4 quadrants
np.save(d + '/quad.npy', lab.astype(np.int64))
np.save(d + '/frac.npy', np.full((28, 28), 0.5, np.float32))
PYEOF

check_map() { # file.npy file.json method: shape (2,1,28,28), finite, not all zero; the JSON's method, params
    "$PY" - "$@" <<'PYEOF'
import json, sys, numpy as np
a, j = np.load(sys.argv[1]), json.load(open(sys.argv[2]))
ok = a.shape == (2, 1, 28, 28) and np.isfinite(a).all() and np.abs(a).max() > 0
ok = ok and j["method"] == sys.argv[3] and j["checks"]["all_finite"]
ok = ok and ("segments" in j["params"] or sys.argv[3] == "rise") and j["params"]["baseline"] == "mean"
sys.exit(0 if ok else 1)
PYEOF
}

for arch in mlp cnn; do
    for spec in "lime samples=200" "kernel_shap samples=200" "rise masks=200" "sobol designs=16"; do
        set -- $spec
        "$bin" explain "$tmp/$arch.onnx" --input "$tmp/x.npy" --method "$1" --param "$2" --data "$tmp/data.npy" \
            --param baseline=mean --out "$tmp/a.npy" --json "$tmp/a.json" 2> "$tmp/err.txt" \
            && check_map "$tmp/a.npy" "$tmp/a.json" "$1" && ok || bad "$1 on the $arch: $(cat "$tmp/err.txt")"
    done
done

# --segments: four quadrants, exact Shapley values; constant per quadrant, summing to f(x) - f(0)
"$bin" explain "$tmp/cnn.onnx" --input "$tmp/x.npy" --method kernel_shap --segments "$tmp/quad.npy" \
    --out "$tmp/q.npy" --json "$tmp/q.json" 2> "$tmp/err.txt" || bad "kernel_shap --segments: $(cat "$tmp/err.txt")"
"$PY" - "$tmp" <<'PYEOF' && ok || bad "kernel_shap --segments: constant per segment, exact, efficient"
import json, sys, numpy as np
d = sys.argv[1]
a, j = np.load(d + '/q.npy'), json.load(open(d + '/q.json'))
lab = np.load(d + '/quad.npy')
const = all(np.ptp(a[i, 0][lab == s]) == 0 for i in range(2) for s in range(4))
sys.exit(0 if const and j["checks"]["exact_samples"] == 2 and j["checks"]["efficiency_delta"] < 1e-5
         and j["params"]["segments"].endswith("quad.npy") else 1)
PYEOF

# region targets (--target sum): exact Shapley values of the quadrants sum to the summed output's
# f(x) - f(0), f(0) read from another method's JSON on zeros
"$PY" -c "import sys, numpy as np; np.save(sys.argv[1], np.zeros((2, 1, 28, 28), np.float32))" "$tmp/zeros.npy"
"$bin" explain "$tmp/cnn.onnx" --input "$tmp/x.npy" --method kernel_shap --segments "$tmp/quad.npy" --target sum \
    --out "$tmp/s.npy" --json "$tmp/s.json" 2> "$tmp/err.txt" || bad "kernel_shap --target sum: $(cat "$tmp/err.txt")"
"$bin" explain "$tmp/cnn.onnx" --input "$tmp/zeros.npy" --method gradient --target sum --out "$tmp/g0.npy" \
    --json "$tmp/g0.json" 2> "$tmp/err.txt" || bad "gradient --target sum on zeros: $(cat "$tmp/err.txt")"
"$PY" - "$tmp" <<'PYEOF' && ok || bad "kernel_shap --target sum: the quadrants' values sum to f(x) - f(0)"
import json, sys, numpy as np
d = sys.argv[1]
a, j, j0, lab = np.load(d + '/s.npy'), json.load(open(d + '/s.json')), json.load(open(d + '/g0.json')), np.load(d + '/quad.npy')
phi = np.array([[a[i, 0][lab == s][0] for s in range(4)] for i in range(2)])
want = np.array(j["outputs"]) - np.array(j0["outputs"])
sys.exit(0 if j["target"] == "sum" and np.abs(phi.sum(1) - want).max() < 1e-4 * max(1, np.abs(want).max()) else 1)
PYEOF

# refusals: one line, exit 1, no output file
expect_fail "fallback 'gradient' must be a method that needs forward passes only" \
    "$bin" explain "$tmp/mlp.onnx" --input "$tmp/x.npy" --method gradient --fallback gradient --out "$tmp/never.npy"
expect_fail "element 0 is 0.5, not an integer label" \
    "$bin" explain "$tmp/mlp.onnx" --input "$tmp/x.npy" --method lime --segments "$tmp/frac.npy" --out "$tmp/never.npy"
expect_fail "segments" \
    "$bin" explain "$tmp/mlp.onnx" --input "$tmp/x.npy" --method lime --segments "$tmp/missing.npy" --out "$tmp/never.npy"
expect_fail "has no parameter 'fallback.samples'" \
    "$bin" explain "$tmp/mlp.onnx" --input "$tmp/x.npy" --method gradient --param fallback.samples=3 --out "$tmp/never.npy"
[ ! -e "$tmp/never.npy" ] && ok || bad "a failed explain left its output"
"$bin" explain --help | grep -q -- "--fallback NAME" && ok || bad "--help lists --fallback"
"$bin" methods | grep -q "^kernel_shap" && ok || bad "saliency methods lists kernel_shap"
finish test_blackbox_cli.sh
