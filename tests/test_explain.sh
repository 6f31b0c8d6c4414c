#!/usr/bin/env bash
# `saliency explain` end to end for the gradient family (integrated_gradients, smoothgrad,
# occlusion, gradient_shap) on a small trained MLP: maps shaped as the input, JSON with every
# parameter and its default, IG's completeness check, determinism, chunk independence, and bad
# parameters refused with a one-line message, exit code 1 and no output file.
set -u
. "$(dirname "$0")/lib.sh"

# json_check FILE PYTHON-EXPR: the expression, over the parsed JSON `j`, must be true
json_check() {
    "$PY" - "$1" "$2" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2])
if not ok:
    print('JSON check failed:', sys.argv[2]); print(json.dumps(j, indent=1))
sys.exit(0 if ok else 1)
PYEOF
}

"$bin" train --arch mlp --data mnist --epochs 1 --limit 500 --seed 3 --out "$tmp/m.onnx" > "$tmp/train.txt" 2>&1 \
    && ok || { bad "train"; cat "$tmp/train.txt"; }
"$PY" - "$tmp" <<'PYEOF' && ok || bad "make inputs"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(1)
np.save(d + '/x.npy', rng.random((2, 1, 28, 28), dtype=np.float32))
np.save(d + '/data.npy', rng.random((20, 1, 28, 28), dtype=np.float32))
np.save(d + '/minus1.npy', np.full((1, 28, 28), -1, dtype=np.float32))
PYEOF

# every method with its defaults: a map shaped as x and the parameters in the JSON
explain() { # name, extra args...
    local name=$1; shift
    "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/$name.npy" --json "$tmp/$name.json" "$@" \
        2> "$tmp/err.txt" && ok || { bad "explain $name $*: $(cat "$tmp/err.txt")"; return 1; }
}
shape_ok() { "$PY" -c "import numpy as np, sys; a = np.load(sys.argv[1]); sys.exit(0 if a.shape == (2, 1, 28, 28) and np.isfinite(a).all() else 1)" "$1"; }

explain ig --method integrated_gradients && {
    shape_ok "$tmp/ig.npy" && ok || bad "IG map shape"
    json_check "$tmp/ig.json" "j['method'] == 'integrated_gradients' and j['params'] == {'baseline': 'zero', 'steps': '50', 'rule': 'gauss_legendre', 'sigma': '3', 'seed': '0'}" \
        && ok || bad "IG JSON parameters with defaults"
    # completeness: sum of attributions vs f(x) - f(0), within 1% with 50 Gauss-Legendre points
    json_check "$tmp/ig.json" "j['checks']['all_finite'] and 0 <= j['checks']['completeness_delta'] and j['checks']['completeness_rel'] < 0.01" \
        && ok || bad "IG JSON completeness"
}
explain sg --method smoothgrad && {
    shape_ok "$tmp/sg.npy" && ok || bad "smoothgrad map shape"
    json_check "$tmp/sg.json" "j['params'] == {'inner': 'gradient', 'samples': '50', 'noise': '0.15', 'variant': 'mean', 'seed': '0'}" \
        && ok || bad "smoothgrad JSON parameters with defaults"
}
explain occ --method occlusion && {
    shape_ok "$tmp/occ.npy" && ok || bad "occlusion map shape"
    json_check "$tmp/occ.json" "j['params'] == {'window': '4', 'stride': '2', 'fill': '0'}" && ok || bad "occlusion JSON defaults"
}
explain gs --method gradient_shap --data "$tmp/data.npy" && {
    shape_ok "$tmp/gs.npy" && ok || bad "gradient_shap map shape"
    json_check "$tmp/gs.json" "j['params'] == {'samples': '50', 'noise': '0', 'seed': '0'}" && ok || bad "gradient_shap JSON defaults"
}

# smoothgrad around IG: inner options reach the inner method and the JSON, and IG's check comes along
explain sgig --method smoothgrad --param inner=integrated_gradients --param inner.steps=8 --param samples=4 && \
    json_check "$tmp/sgig.json" "j['params']['inner.steps'] == '8' and j['params']['inner'] == 'integrated_gradients' and 'inner.completeness_delta' in j['checks']" \
    && ok || bad "smoothgrad(IG) JSON"

# determinism: the same seed gives the same bytes
explain sg2 --method smoothgrad && { cmp -s "$tmp/sg.npy" "$tmp/sg2.npy" && ok || bad "smoothgrad is not deterministic"; }
explain gs2 --method gradient_shap --data "$tmp/data.npy" && { cmp -s "$tmp/gs.npy" "$tmp/gs2.npy" && ok || bad "gradient_shap is not deterministic"; }
explain sg3 --method smoothgrad --param seed=1 && { cmp -s "$tmp/sg.npy" "$tmp/sg3.npy" && bad "smoothgrad ignores its seed" || ok; }

# --chunk bounds memory, not the result
explain ig1 --method integrated_gradients --chunk 1 && \
    "$PY" -c "import numpy as np, sys; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); sys.exit(0 if np.abs(a - b).max() <= 1e-5 * (1 + np.abs(a).max()) else 1)" \
        "$tmp/ig.npy" "$tmp/ig1.npy" && ok || bad "IG with --chunk 1 differs from the default chunk"

# black = the low end of --range: the same as an NPY baseline of that constant
explain igb --method integrated_gradients --param baseline=black --range -1,1 && \
explain igf --method integrated_gradients --param baseline="$tmp/minus1.npy" && \
    "$PY" -c "import numpy as np, sys; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); sys.exit(0 if np.abs(a - b).max() <= 1e-6 * (1 + np.abs(a).max()) else 1)" \
        "$tmp/igb.npy" "$tmp/igf.npy" && ok || bad "baseline=black with --range -1,1 differs from a baseline file of -1"

# bad parameters
ex() { "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/o$1.npy" "${@:2}"; }
expect_fail "baseline=grey must be zero, black, uniform, blur" ex 1 --method integrated_gradients --param baseline=grey
expect_fail "steps=0 must be an integer" ex 2 --method integrated_gradients --param steps=0
expect_fail "inner=unknown_method is not a method" ex 3 --method smoothgrad --param inner=unknown_method
expect_fail "needs reference data" ex 4 --method gradient_shap
expect_fail "inner method gradient has no parameter 'bogus'" ex 5 --method smoothgrad --param inner.bogus=1
expect_fail "does not fit" ex 6 --method occlusion --param window=29
expect_fail "$tmp/none.npy" ex 7 --method integrated_gradients --param baseline="$tmp/none.npy"
for i in 1 2 3 4 5 6 7; do
    if [ -e "$tmp/o$i.npy" ]; then bad "output o$i.npy written despite the error"; else ok; fi
done

finish test_explain
