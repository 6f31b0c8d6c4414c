#!/usr/bin/env bash
# The demo's audits under mpirun (docs/scaling.md): wall time of one rank and of two ranks with one
# thread each, against one process with two threads; then each audit's serial part and per-batch
# cost on one rank (from two sample counts) and the times they predict for more ranks.
# usage: make bench-mpi (or BUILD=build [REPS=3] bench/mpi_scaling.sh). Run it on a quiet machine:
# it prints the load average beside every figure; REPS runs of each, the fastest counted. The models are the demo's (saliency demo --quick trains
# them into $BUILD/demo-quick/models, the same architectures as make demo's, trained less).
set -eu
BUILD=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
bin=$(realpath "$BUILD/saliency")
models=$BUILD/demo-quick/models
[ -f "$models/mlp-mnist.onnx" ] && [ -f "$models/cnn-fashion.onnx" ] ||
    "$bin" demo --quick --out "$BUILD/demo-quick" > /dev/null
models=$(realpath "$models")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
export SAL_MNIST_DIR=${SAL_MNIST_DIR:-$(realpath data/mnist)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# the demo's reference data: 512 MNIST training digits
"$PY" - "$SAL_MNIST_DIR" <<'EOF'
import json, sys, numpy as np
d = [np.array(json.load(open(f"{sys.argv[1]}/{k}.json"))["data"], np.float32).reshape(-1, 1, 28, 28) for k in range(10)]
np.save("ref.npy", np.concatenate([x[:52] for x in d])[:512])
EOF
Q="gradient,gradient_x_input,integrated_gradients,smoothgrad,guided_backprop,deep_taylor,lrp_epsilon,pattern_attribution,gradcam"
# the demo's audits at its sample counts (16, 4, 12, 8); batches of 4 (2 for randomization's 4
# samples), so that there are batches to share
audits=(
    "invariance $models/mlp-mnist.onnx --input mnist --limit 16 --data ref.npy --shift -1 --batch 4"
    "randomization $models/mlp-mnist.onnx --input mnist --limit 4 --data ref.npy --batch 2"
    "class-sensitivity $models/cnn-fashion.onnx --input fashion-mnist --limit 12 --batch 4"
    "faithfulness $models/mlp-mnist.onnx --input mnist --limit 8 --data ref.npy --batch 4"
)
load() { cut -d' ' -f1 /proc/loadavg; }
calc() { awk "BEGIN { print $1 }"; }
secs() { # command...: the least wall seconds of REPS runs (default 1; REPS=3 on a quiet machine)
    local best="" t0 t1 t
    for _ in $(seq "${REPS:-1}"); do
        t0=$(date +%s.%N)
        "$@" > /dev/null 2> "$work/err.txt" || { cat "$work/err.txt" >&2; echo "failed: $*" >&2; exit 1; }
        t1=$(date +%s.%N)
        t=$(calc "$t1 - $t0")
        best=$(calc "($best+0 == 0 || $t < $best+0) ? $t : $best+0")
    done
    echo "$best"
}
printf "%-18s %10s %6s %10s %6s %10s %6s %8s %8s\n" audit "2 threads" load "1 rank" load "2 ranks" load speedup "vs 2thr"
tot_ref=0 tot_1=0 tot_2=0
for a in "${audits[@]}"; do
    set -- $a
    name=$1
    l0=$(load); tr=$(OMP_NUM_THREADS=2 secs "$bin" audit $a --methods $Q --quiet)
    l1=$(load); t1=$(OMP_NUM_THREADS=1 secs mpirun --quiet -np 1 "$bin" audit $a --methods $Q --quiet)
    l2=$(load); t2=$(OMP_NUM_THREADS=1 secs mpirun --quiet --oversubscribe -np 2 "$bin" audit $a --methods $Q --quiet)
    printf "%-18s %10.2f %6s %10.2f %6s %10.2f %6s %8.2f %8.2f\n" "$name" "$tr" "$l0" "$t1" "$l1" "$t2" "$l2" \
        "$(calc "$t1 / $t2")" "$(calc "$tr / $t2")"
    tot_ref=$(calc "$tot_ref + $tr") tot_1=$(calc "$tot_1 + $t1") tot_2=$(calc "$tot_2 + $t2")
done
printf "%-18s %10.2f %6s %10.2f %6s %10.2f %6s %8.2f %8.2f\n" all "$tot_ref" "" "$tot_1" "" "$tot_2" "" \
    "$(calc "$tot_1 / $tot_2")" "$(calc "$tot_ref / $tot_2")"

# Per audit on one rank, one thread: the whole set of samples and its first batch alone give the
# serial part s (loading, the replicated forward passes and pattern estimation) and the cost c of a
# batch; N ranks then take s + c * ceil(batches / N), plus the exchanges (milliseconds).
echo
printf "%-18s %8s %8s %8s   predicted seconds (speedup) for N ranks: 1 2 4 8 16\n" audit batches "s (s)" "c (s)"
for a in "${audits[@]}"; do
    set -- $a
    name=$1
    n=$(echo "$a" | sed 's/.*--limit \([0-9]*\).*/\1/') b=$(echo "$a" | sed 's/.*--batch \([0-9]*\).*/\1/')
    one=$(echo "$a" | sed "s/--limit $n/--limit $b/")
    tall=$(OMP_NUM_THREADS=1 secs "$bin" audit $a --methods $Q --quiet)
    tone=$(OMP_NUM_THREADS=1 secs "$bin" audit $one --methods $Q --quiet)
    nb=$(( (n + b - 1) / b ))
    c=$(calc "($tall - $tone) / ($nb - 1)") s=$(calc "$tone - $c")
    line=""
    for N in 1 2 4 8 16; do
        k=$(( (nb + N - 1) / N ))
        t=$(calc "$s + $c * $k")
        line="$line $(printf "%.2f (%.2f)" "$t" "$(calc "$tall / $t")")"
    done
    printf "%-18s %8d %8.2f %8.2f  %s\n" "$name" "$nb" "$s" "$c" "$line"
done
