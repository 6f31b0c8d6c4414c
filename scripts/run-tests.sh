#!/usr/bin/env bash
# Runs every test program, test script and Python test; prints one closing line
# "N passed, M failed" and exits non-zero if anything failed.
set -u
BUILD=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
export SAL_BUILD=$BUILD SAL_PY=$PY
pass=0 fail=0 failed=()
run() { # name, command...
    local name=$1; shift
    local t0=$SECONDS
    if "$@" > "$BUILD/logs/$name.log" 2>&1; then
        pass=$((pass + 1)); echo "ok   $name ($((SECONDS - t0))s)"
    else
        fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name ($((SECONDS - t0))s)"
        tail -n 30 "$BUILD/logs/$name.log" | sed 's/^/    /'
    fi
}
mkdir -p "$BUILD/logs"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] && [[ "$t" != *.d ]] && run "$(basename "$t")" "$t"
done
# oneDNN capped at AVX2: activations blocked by 8 channels (nChw8c) where AVX-512 machines block by 16
for t in test_conv_dnnl test_exec; do run "$t-avx2" env DNNL_MAX_CPU_ISA=AVX2 "$BUILD/tests/$t"; done
for t in tests/test_*.sh; do [ -f "$t" ] && run "$(basename "$t")" bash "$t"; done
for t in tests/test_*.py; do [ -f "$t" ] && run "$(basename "$t")" "$PY" "$t"; done
# every 3x3 layer that fits through our Winograd (conv_wino.c; by default on AVX2 machines only),
# against PyTorch on ResNet-18, in this machine's blocks
run test_zoo.py-wino env SAL_WINO=all "$PY" tests/test_zoo.py resnet18
echo "logs in $BUILD/logs"
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
