#!/usr/bin/env bash
# The main job (`make demo`, after the build): `saliency demo` trains the paper's MLP on MNIST, a CNN
# on Fashion-MNIST and a multi-label CNN on composite images (or reuses them when their recorded
# hash still matches), runs every audit over every method, writes the HTML report and prints a
# summary table with the report's path. docs/report.md describes it. SAL_OUT sets the output folder
# (default out); SAL_DEMO_ARGS passes more options (--quick, --retrain, --methods A,B).
set -euo pipefail
BUILD=${BUILD:-build}
OUT=${SAL_OUT:-out}
t0=$SECONDS
# shellcheck disable=SC2086
"$BUILD/saliency" demo --out "$OUT" ${SAL_DEMO_ARGS:-}
echo "make demo: $((SECONDS - t0)) s. Open $OUT/report/index.html in a browser."
