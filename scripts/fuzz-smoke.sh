#!/usr/bin/env bash
# Builds the fuzz targets (make fuzz), makes their seed corpora (fuzz/make-corpus.sh) and runs each
# target for SECONDS seconds, one after another:
#
#   scripts/fuzz-smoke.sh SECONDS [TARGET ...]     (targets: onnx npy idx mnist_json png fasta; default all)
#
# Environment: FUZZ_BUILD (default build-fuzz), BUILD (a normal build whose tools make the ONNX
# seeds; default build), FUZZ_JOBS (make -j, default 2), FUZZ_NICE (nice level, default 0),
# FUZZ_TIMEOUT (seconds one input may run before it counts as a hang, default 30: wall-clock time,
# so raise it on a loaded machine).
# Inputs the fuzzer finds interesting accumulate in $FUZZ_BUILD/work/TARGET, crashes in
# $FUZZ_BUILD/artifacts/TARGET; replay one with `$FUZZ_BUILD/fuzz/fuzz_TARGET FILE`.
# Prints one line per target with its executions; exits 1 if any target found a crash, leak,
# timeout or out-of-memory.
set -uo pipefail
secs=${1:?usage: scripts/fuzz-smoke.sh SECONDS [TARGET ...]}
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(onnx npy idx mnist_json png fasta)
cd "$(dirname "$0")/.."
root=$PWD
fb=${FUZZ_BUILD:-build-fuzz}
build=${BUILD:-build}
nicelvl=${FUZZ_NICE:-0}

mkdir -p "$fb"
make --no-print-directory FUZZ_BUILD="$fb" -j"${FUZZ_JOBS:-2}" fuzz > "$fb/make.log" 2>&1 || {
    tail -n 30 "$fb/make.log"
    echo "fuzz-smoke: make fuzz failed"
    exit 1
}
if [ ! -d "$fb/corpus" ]; then
    fuzz/make-corpus.sh "$fb/corpus.tmp" "$build" > /dev/null && mv "$fb/corpus.tmp" "$fb/corpus" || {
        echo "fuzz-smoke: fuzz/make-corpus.sh failed"
        exit 1
    }
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS="suppressions=$root/.ci/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for t in "${targets[@]}"; do
    bin=$fb/fuzz/fuzz_$t
    [ -x "$bin" ] || { echo "fuzz-smoke: no target $bin"; failed=1; continue; }
    mkdir -p "$fb/work/$t" "$fb/artifacts/$t"
    log=$fb/artifacts/$t/last.log
    # -timeout: a single input running that long is a finding (a hang), as is 2 GB of memory
    # inputs that once crashed a target (fuzz/regressions/TARGET) join the seeds
    regress=()
    [ -d "fuzz/regressions/$t" ] && regress=("fuzz/regressions/$t")
    dict=()
    [ -f "fuzz/$t.dict" ] && dict=("-dict=fuzz/$t.dict")
    nice -n "$nicelvl" "$bin" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-30}" -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$fb/artifacts/$t/" "$fb/work/$t" "$fb/corpus/$t" "${regress[@]}" > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        failed=1
        echo "FAIL fuzz_$t after ${execs:-?} executions (exit $rc); log: $log"
        grep -m 3 -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | sed 's/^/    /'
    else
        echo "ok   fuzz_$t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, $(find "$fb/work/$t" -type f | wc -l) inputs in the working corpus"
    fi
done
exit $failed
