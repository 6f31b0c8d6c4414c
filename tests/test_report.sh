#!/usr/bin/env bash
# The demo and its report end to end: `saliency demo --quick` (models cached in $BUILD/demo-quick
# by their recorded hash), `saliency report` on its audit files (the same bytes), bad arguments,
# then the page in a real browser: Debian's headless Chromium loads it, every image must load, the
# console must stay clean, and a full-page screenshot must not be blank. The browser part is skipped
# (and says so) only when Chromium is missing and cannot be installed.
set -u
BUILD=${SAL_BUILD:-build}
PY=${SAL_PY:-/usr/bin/python3}
bin=$BUILD/saliency
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { # description, command...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$BUILD/demo-quick
# sanitizer builds run 2-3 times slower: there the demo audits four methods (every audit still runs)
few=()
case $BUILD in *asan* | *san*) few=(--methods gradient,gradient_x_input,integrated_gradients,gradcam) ;; esac

# ---- the quick demo ----
t0=$SECONDS
"$bin" demo --quick --out "$out" "${few[@]}" > "$tmp/demo.log" 2>&1
rc=$?
secs=$((SECONDS - t0))
check "saliency demo --quick exits 0 ($secs s)" test $rc -eq 0
[ $rc -eq 0 ] || tail -n 30 "$tmp/demo.log"
echo "     demo --quick took $secs s (the target is under 120 s on an idle 2-core machine)"
check "summary table printed" grep -q "^== summary" "$tmp/demo.log"
check "report path printed" grep -q "^report: $out/report/index.html" "$tmp/demo.log"
for a in invariance-constant invariance-checkerboard randomization-mlp randomization-cnn class-sensitivity-mlp \
         class-sensitivity-cnn pointing faithfulness-mlp faithfulness-cnn; do
    check "$a: JSON, CSV and report copy" test -s "$out/audits/$a.json" -a -s "$out/audits/$a.csv" -a -s "$out/report/$a.json"
    check "$a: audit named in the JSON" grep -q "\"audit\": \"${a%-*}\"\|\"audit\": \"$a\"" "$out/audits/$a.json"
done
if [ -f /usr/lib/python3/dist-packages/skimage/data/chelsea.png ]; then
    check "the cat: invariance-cat audit and highlight figure" test -s "$out/audits/invariance-cat.json" -a -s "$out/report/cat.png"
else
    echo "     chelsea.png missing (python3-skimage): the cat is skipped"
fi
html=$out/report/index.html
check "index.html written" test -s "$html"
check "no script, no network in the page" bash -c "! grep -qiE '<script|https?://[a-z]' '$html'"
check "every audit has a section" test "$(grep -c '<section id="a[0-9]' "$html")" -ge 9
check "trust matrix" grep -q 'id="matrix"' "$html"
check "verdict tables" test "$(grep -c '<h3>Verdicts</h3>' "$html")" -ge 9
check "randomization and deletion curves drawn as SVG" test -s "$out/report/randomization-mlp-curve0.svg" -a \
    -s "$out/report/faithfulness-cnn-curve0.svg"
check "colour bars" test -s "$out/report/legend-diverging.svg" -a -s "$out/report/legend-sequential.svg"
# every file the page refers to exists beside it
missing=0
for f in $(grep -oE '(src|href)="[^"#]+"' "$html" | sed -E 's/^(src|href)="//; s/"$//' | sort -u); do
    [ -f "$out/report/$f" ] || { echo "     missing: $f"; missing=$((missing + 1)); }
done
check "every referenced file exists beside index.html" test $missing -eq 0

# another run with the same models reuses them (only the gradient: quick)
mkdir -p "$tmp/d2" && cp -r "$out/models" "$tmp/d2/"
"$bin" demo --quick --out "$tmp/d2" --methods gradient > "$tmp/demo2.log" 2>&1
check "a second run reuses the models (hash matched)" test "$(grep -c 'reused (hash matched)' "$tmp/demo2.log")" -eq 4
echo corrupt >> "$tmp/d2/models/mlp-mnist.onnx"
"$bin" demo --quick --out "$tmp/d2" --methods gradient > "$tmp/demo3.log" 2>&1
check "a changed model file is retrained" grep -q "training mlp-mnist" "$tmp/demo3.log"

# ---- saliency report on the demo's files ----
"$bin" report --in "$out/audits" --out "$tmp/r" > "$tmp/report.log" 2>&1
check "saliency report exits 0" test $? -eq 0
check "saliency report: the same bytes as the demo's report" cmp -s "$tmp/r/index.html" "$html"
check "report --help" bash -c "'$bin' report --help | grep -q 'usage: saliency report'"
"$bin" report --out "$tmp/x" > /dev/null 2> "$tmp/err"
check "report without --in: exit 1 with a message" bash -c "[ $? -eq 1 ] && grep -q -- '--in' '$tmp/err'"
"$bin" report --in "$tmp/nowhere" --out "$tmp/x" > /dev/null 2> "$tmp/err"
check "report of a missing folder: exit 1" bash -c "[ $? -eq 1 ] && grep -q 'nowhere' '$tmp/err'"
mkdir -p "$tmp/empty"
"$bin" report --in "$tmp/empty" --out "$tmp/x" > /dev/null 2> "$tmp/err"
check "report of a folder without audits: exit 1" bash -c "[ $? -eq 1 ] && grep -q 'no audit results' '$tmp/err'"
"$bin" demo --quick --bogus > /dev/null 2> "$tmp/err"
check "demo with an unknown option: exit 1" test $? -eq 1
"$bin" demo --quick --out "$tmp/d4" --methods gradient,nosuch > /dev/null 2> "$tmp/err"
check "demo with an unknown method: exit 1 naming it" bash -c "[ $? -eq 1 ] && grep -q nosuch '$tmp/err'"

# ---- the browser ----
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ] && [ "$(id -u)" -eq 0 ]; then
    echo "     installing Debian's chromium for the browser test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium > "$tmp/apt.log" 2>&1 ||
        tail -n 5 "$tmp/apt.log"
    chrome=$(command -v chromium || true)
fi
if [ -z "$chrome" ]; then
    echo "SKIP browser test: chromium is not installed and cannot be installed here (apt-get install chromium as root)"
else
    "$PY" tests/tools/browser_check.py "$chrome" "$html" "$tmp/shot.png" > "$tmp/browser.log" 2>&1
    rc=$?
    sed 's/^/     /' "$tmp/browser.log"
    check "Chromium: every image loads, no console errors" test $rc -eq 0
    if [ -s "$tmp/shot.png" ]; then
        read -r w h mean sd nonwhite colours < <("$BUILD/tools/png_stats" "$tmp/shot.png")
        echo "     screenshot ${w}x${h}: mean $mean, sd $sd, non-white $nonwhite, colours $colours"
        check "screenshot is not blank" "$PY" -c "import sys; sys.exit(not ($h > 2000 and float('$sd') > 20 and float('$nonwhite') > 0.05 and int('$colours') > 200))"
    else
        bad "no screenshot"
    fi
fi
echo "test_report.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
