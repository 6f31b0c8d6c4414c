#!/usr/bin/env bash
# Kindermans et al., "The (un)reliability of saliency methods", sections 2-4, on real data: train the
# paper's MLP (784-1024-1024-1024-10 ReLU) on MNIST digits in [0,1], shift the input by m = -1 (the
# paper's [0,1] -> [-1,0] encoding), and check the paper's verdicts:
#   invariant:      gradient, guided backprop, integrated gradients with the black baseline (the
#                   minimum of the shifted data), SmoothGrad over the gradient, PatternNet,
#                   PatternAttribution, Deep Taylor with the PatternAttribution root point
#   not invariant:  gradient x input, integrated gradients with the zero baseline, SmoothGrad over
#                   gradient x input, LRP-0, Deep Taylor with the zero root point
# Methods not in the method table are reported as not checked. Training: SAL_PAPER_EPOCHS epochs
# (default 2) on the 8000 training digits (the paper trains longer; the verdicts do not need it).
set -u
BUILD=${SAL_BUILD:-build}
PY=${SAL_PY:-/usr/bin/python3}
bin=$BUILD/saliency
epochs=${SAL_PAPER_EPOCHS:-2}
samples=${SAL_PAPER_SAMPLES:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" train --arch mlp --data mnist --epochs "$epochs" --seed 1 --out "$tmp/mlp.onnx" > "$tmp/train.txt" 2>&1 \
    || { echo "FAIL: training"; cat "$tmp/train.txt"; exit 1; }
grep "accuracy" "$tmp/train.txt"

have() { "$bin" methods | grep -qx "$1"; }
# method label, expected verdict, arguments for saliency audit
args=() expect=()
add() { # NAME EXPECT [PARAM...]
    local name=$1 want=$2; shift 2
    if ! have "$name"; then echo "not checked (not in the method table): $name $*"; return; fi
    args+=(--method "$name")
    for p in "$@"; do args+=(--param "$p"); done
    local label=$name
    [ $# -gt 0 ] && label="$name($(IFS=,; echo "$*"))"
    expect+=("$label=$want")
}
add gradient invariant
add guided_backprop invariant
add integrated_gradients invariant baseline=black
add smoothgrad invariant inner=gradient
add patternnet invariant
add pattern_attribution invariant
add gradient_x_input "not invariant"
add integrated_gradients "not invariant" baseline=zero
add smoothgrad "not invariant" inner=gradient_x_input
add lrp_0 "not invariant"
if have deep_taylor && "$bin" methods | grep -A20 -x deep_taylor | grep -q "param root="; then
    add deep_taylor "not invariant" root=zero
    add deep_taylor invariant root=pattern
else
    echo "not checked (no deep_taylor with a root parameter): deep_taylor root=zero, root=pattern"
fi

# --data mnist: the training digits give the data range (the black baseline) and the patterns
"$bin" audit invariance "$tmp/mlp.onnx" --input mnist --limit "$samples" --data mnist --shift -1 "${args[@]}" \
    --json "$tmp/inv.json" --csv "$tmp/inv.csv" --figure "$tmp/inv.png" > "$tmp/audit.txt" 2> "$tmp/audit.err"
rc=$?
cat "$tmp/audit.txt"
[ $rc -eq 0 ] || { echo "FAIL: audit exit $rc"; cat "$tmp/audit.err"; exit 1; }

"$PY" - "$tmp/inv.json" "$tmp/inv.png" "${expect[@]}" <<'PYEOF'
import json, sys
rep = json.load(open(sys.argv[1]))
fails = 0
def check(ok, msg):
    global fails
    print(("ok    " if ok else "FAIL  ") + msg)
    fails += not ok
mc = rep["model_check"]["max_abs_diff"]
check(mc < 1e-3, "model check: max |f2(x - 1) - f1(x)| = %g" % mc)
check(rep["model_check"]["same_predictions"] == rep["model_check"]["samples"], "f1 and f2 predict alike")
check(open(sys.argv[2], "rb").read(8) == b"\x89PNG\r\n\x1a\n", "figure grid written")
res = {r["label"]: r for r in rep["results"]}
print("\n%-40s %-14s %-14s %s" % ("method", "paper", "observed", "max_norm_diff"))
for e in sys.argv[3:]:
    label, want = e.rsplit("=", 1)
    r = res.get(label)
    if r is None or r["skipped"]:
        check(False, "%s did not run: %s" % (label, r["verdict"] if r else "missing"))
        continue
    got = "invariant" if r["invariant"] else "not invariant"
    print("%-40s %-14s %-14s %.3g" % (label, want, got, r["max_norm_diff"]))
    check(got == want, "%s: paper says %s, observed %s" % (label, want, r["verdict"]))
print("%d checks failed" % fails)
sys.exit(1 if fails else 0)
PYEOF
