#!/usr/bin/env bash
# The main job. For now: train the paper's MLP on MNIST digits and a CNN on Fashion-MNIST (or reuse
# them when the cached model was made by the same command and binary), then report their accuracy.
set -euo pipefail
BUILD=${BUILD:-build}
OUT=${SAL_OUT:-out}
bin=$BUILD/saliency
mkdir -p "$OUT/models"

# Reuses $OUT/models/NAME.onnx when its recorded hash (of the training command and the binary's
# training code) matches; otherwise trains anew.
train() { # name, args...
    local name=$1; shift
    local key; key=$( (echo "$@"; sha256sum < "$bin" | cut -c1-16) | sha256sum | cut -c1-16)
    local model=$OUT/models/$name.onnx stamp=$OUT/models/$name.hash
    if [ -f "$model" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
        echo "== $name: reusing $model (hash $key)"
        cat "$OUT/models/$name.log" | grep -E 'accuracy' || true
        return
    fi
    echo "== training $name: saliency train $*"
    "$bin" train "$@" --out "$model" | tee "$OUT/models/$name.log"
    echo "$key" > "$stamp"
}

train mlp-mnist --arch mlp --data mnist --epochs 10 --batch 64 --lr 1e-3 --lr-decay 0.75 --shift 2 --seed 1
train cnn-fashion --arch cnn --data fashion-mnist --epochs 3 --batch 64 --lr 1e-3 --lr-decay 0.5 --seed 1

echo
echo "== summary"
printf "%-14s %s\n" model "held-out accuracy"
for n in mlp-mnist cnn-fashion; do
    printf "%-14s %s\n" "$n" "$(grep 'test accuracy' "$OUT/models/$n.log" | awk '{print $3}')"
done
echo "models in $OUT/models/"
