#!/usr/bin/env bash
# saliency metric end to end on a small CNN trained in a second: the table of metrics, JSON and CSV
# (their numbers against each other), the same values at another chunk and batch, the report's table
# of methods against metrics, and one-line errors that leave no output file behind.
set -u
. "$(dirname "$0")/lib.sh"

"$bin" metric --help | grep -q "usage: saliency metric NAME" && ok || bad "metric --help"
"$bin" metric --list > "$tmp/list.txt" && ok || bad "metric --list"
for f in faithfulness robustness localization complexity randomization axiomatic; do
    grep -q "^$f:" "$tmp/list.txt" && ok || bad "--list lacks the $f family"
done
grep -q "pixel_flipping" "$tmp/list.txt" && grep -q "      steps=0" "$tmp/list.txt" && ok || bad "--list lacks parameters"

"$PY" - "$tmp" <<'PYEOF' && ok || bad "make inputs"
import sys, numpy as np
d = sys.argv[1]
r = np.random.default_rng(0)
x = r.random((32, 1, 12, 12), dtype=np.float32)
np.save(d + '/x.npy', x)
np.save(d + '/y.npy', (x[:, 0, :6].sum((1, 2)) > x[:, 0, 6:].sum((1, 2))).astype(np.int64))
m = np.zeros((32, 12, 12), np.float32); m[:, 2:7, 3:9] = 1
np.save(d + '/m.npy', m)
PYEOF
"$bin" train --arch cnn:1x12x12 --data "$tmp/x.npy:$tmp/y.npy" --epochs 1 --seed 2 --out "$tmp/c.onnx" > /dev/null 2>&1 \
    && ok || bad "train"
m=$tmp/c.onnx x=$tmp/x.npy

expect_fail "unknown metric 'bogus'" "$bin" metric bogus "$m" --input "$x"
expect_fail "missing --input" "$bin" metric pixel_flipping "$m"
expect_fail "steps must be a number" "$bin" metric pixel_flipping "$m" --input "$x" --metric-param steps=x --json "$tmp/e.json"
expect_fail "its parameters (steps, baseline)" "$bin" metric pixel_flipping "$m" --input "$x" --metric-param step=3
expect_fail "needs masks" "$bin" metric auc "$m" --input "$x" --method gradient --json "$tmp/e.json"
expect_fail "unknown method 'nope'" "$bin" metric auc "$m" --input "$x" --method nope
expect_fail "must follow the --method" "$bin" metric auc "$m" --input "$x" --param steps=3
expect_fail "no_such.npy" "$bin" metric auc "$m" --input "$tmp/no_such.npy"
[ ! -e "$tmp/e.json" ] && ok || bad "an error left $tmp/e.json behind"

M="--methods gradient,gradient_x_input,occlusion"
"$bin" metric pixel_flipping "$m" --input "$x" --limit 5 $M --metric-param steps=12 --json "$tmp/pf.json" \
    --csv "$tmp/pf.csv" > "$tmp/pf.txt" && ok || bad "pixel_flipping"
grep -q "^gradient_x_input " "$tmp/pf.txt" && ok || bad "no table: $(cat "$tmp/pf.txt")"
"$bin" metric pixel_flipping "$m" --input "$x" --limit 5 $M --metric-param steps=12 --chunk 1 --batch 2 \
    --json "$tmp/pf1.json" --quiet && ok || bad "pixel_flipping at chunk 1"
"$bin" metric relevance_mass_accuracy "$m" --input "$x" --limit 5 $M --masks "$tmp/m.npy" --json "$tmp/rma.json" \
    --quiet && ok || bad "relevance_mass_accuracy"
"$bin" metric faithfulness_correlation "$m" --input "$x" --limit 5 $M --metric-param runs=20 --seed 3 \
    --json "$tmp/fc.json" --quiet && ok || bad "faithfulness_correlation"
"$PY" - "$tmp" <<'PYEOF' && ok || bad "JSON and CSV"
import sys, json, csv, math
d = sys.argv[1]
pf, pf1 = json.load(open(d + '/pf.json')), json.load(open(d + '/pf1.json'))
assert pf['metric'] == 'pixel_flipping' and pf['family'] == 'faithfulness' and pf['better'] == 'lower'
assert pf['samples'] == 5 and pf['params']['steps'] == '12' and pf['seed'] == 1
rows = list(csv.DictReader(open(d + '/pf.csv')))
assert len(rows) == 15, len(rows)
for r, r1 in zip(pf['results'], pf1['results']):
    v = r['per_sample']
    assert len(v) == 5 and len(r['curve']) == 13, r
    fin = [a for a in v if a is not None]
    assert abs(r['mean'] - sum(fin) / len(fin)) < 1e-9 * max(1, abs(r['mean'])), r
    assert r['defined'] == len(fin)
    # the curve is the mean of the per-sample curves; its trapezoid area is the mean value
    c = r['curve']
    assert abs(sum((c[k] + c[k + 1]) / 2 for k in range(12)) / 12 - r['mean']) < 1e-5 * max(1, abs(r['mean']))
    csv_v = [float(q['value']) for q in rows if q['label'] == r['label']]
    assert all(abs(a - b) < 1e-6 * max(1, abs(a)) for a, b in zip(csv_v, v)), (csv_v, v)
    # chunk 1 and batch 2: the same numbers up to rounding
    assert all(abs(a - b) <= 1e-4 * max(1, abs(a)) for a, b in zip(v, r1['per_sample'])), (v, r1['per_sample'])
rma = json.load(open(d + '/rma.json'))
for r in rma['results']:
    assert all(0 <= a <= 1 for a in r['per_sample']), r
fc = json.load(open(d + '/fc.json'))
assert fc['seed'] == 3 and fc['params']['runs'] == '20'
for r in fc['results']:
    assert all(a is None or -1 <= a <= 1 for a in r['per_sample']), r
PYEOF

mkdir -p "$tmp/in/metrics"
cp "$tmp/pf.json" "$tmp/pf.csv" "$tmp/rma.json" "$tmp/in/metrics/"
"$bin" report --in "$tmp/in" --out "$tmp/out" > /dev/null && ok || bad "report of metrics"
grep -q "Evaluation metrics" "$tmp/out/index.html" && grep -q "relevance_mass_accuracy &uarr;" "$tmp/out/index.html" \
    && grep -q '<td class="l">occlusion</td>' "$tmp/out/index.html" && [ -f "$tmp/out/pf.csv" ] && ok \
    || bad "the report's metric table"
finish test_metric_cli.sh
