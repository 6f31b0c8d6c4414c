#!/usr/bin/env bash
# Runs small explain commands of the CLI under valgrind's memcheck: any invalid access, use of
# uninitialised memory or leak fails (exit 1). Runtime libraries' own allocations (OpenBLAS,
# libgomp's thread pool) are suppressed narrowly in .ci/valgrind.supp.
#
#   scripts/valgrind-explain.sh [BUILD]          (default build; needs BUILD/saliency)
set -euo pipefail
build=${1:-${BUILD:-build}}
py=${PY:-/usr/bin/python3}
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { echo "valgrind-explain: valgrind is not installed (apt-get install valgrind)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# a small CNN (conv, batch norm, relu, pool, dense) and a batch large enough that the kernels run on
# several OpenMP threads, made with Debian's onnx
"$py" - "$tmp" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import TensorProto as TP, helper as h, numpy_helper as nh
d = sys.argv[1]
r = np.random.default_rng(1)
f = lambda *s: r.standard_normal(s).astype(np.float32) * 0.5
inits = [nh.from_array(a, n) for n, a in [("W", f(4, 1, 3, 3)), ("b", f(4)), ("g", f(4) + 1), ("be", f(4)),
         ("mu", f(4)), ("var", np.abs(f(4)) + 0.5), ("W2", f(10, 64)), ("b2", f(10))]]
nodes = [h.make_node("Conv", ["x", "W", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         h.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["n"]),
         h.make_node("Relu", ["n"], ["r"]),
         h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         h.make_node("Flatten", ["p"], ["fl"]),
         h.make_node("Gemm", ["fl", "W2", "b2"], ["y"], transB=1)]
g = h.make_graph(nodes, "small", [h.make_tensor_value_info("x", TP.FLOAT, ["N", 1, 8, 8])],
                 [h.make_tensor_value_info("y", TP.FLOAT, ["N", 10])], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
m.ir_version = 7
onnx.save(m, d + "/m.onnx")
np.save(d + "/x.npy", r.random((512, 1, 8, 8), dtype=np.float32))
PYEOF

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
vg=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1
    --suppressions=.ci/valgrind.supp --gen-suppressions=all)
status=0
run() { # name, CLI arguments...
    local name=$1; shift
    if "${vg[@]}" "$build/saliency" "$@" > "$tmp/$name.log" 2>&1; then
        echo "ok   valgrind: saliency $name"
    else
        status=1
        echo "FAIL valgrind: saliency $name"
        sed 's/^/    /' "$tmp/$name.log" | head -n 80
    fi
}
run "explain gradient" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradient --out "$tmp/a1.npy"
run "explain integrated_gradients" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method integrated_gradients \
    --param steps=4 --out "$tmp/a2.npy" --json "$tmp/a2.json"
# an error path too: a refused budget must free everything as well
if "${vg[@]}" "$build/saliency" --max-memory 1K explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradient \
    --out "$tmp/a3.npy" > "$tmp/err.log" 2>&1; then
    status=1; echo "FAIL valgrind: a 1K budget should have been refused"
elif grep -q "needs" "$tmp/err.log" && ! grep -q "==[0-9]*==" "$tmp/err.log"; then
    echo "ok   valgrind: saliency --max-memory 1K explain (refused, clean)"
else
    status=1; echo "FAIL valgrind: saliency --max-memory 1K explain"; sed 's/^/    /' "$tmp/err.log" | head -n 80
fi
exit $status
