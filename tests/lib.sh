# Shared by the shell tests (source it after `set -u`): the binary under test, a temporary folder
# removed on exit, pass/fail counters, expect_fail, and finish for the summary line.
BUILD=${SAL_BUILD:-build}
PY=${SAL_PY:-/usr/bin/python3}
bin=$BUILD/saliency
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_fail NEEDLE CMD...: exit code 1 (no crash) and a message of one or two lines containing NEEDLE
expect_fail() {
    local needle=$1; shift
    "$@" > "$tmp/out.txt" 2> "$tmp/err.txt"
    local rc=$?
    if [ $rc -ne 1 ]; then bad "exit $rc (want 1): $*"; cat "$tmp/err.txt"; return; fi
    if ! grep -qF -- "$needle" "$tmp/err.txt"; then bad "message lacks '$needle': $*: $(cat "$tmp/err.txt")"; return; fi
    [ "$(wc -l < "$tmp/err.txt")" -le 2 ] || { bad "message longer than 2 lines: $*"; cat "$tmp/err.txt"; return; }
    ok
}

# finish NAME: prints the summary line; the status is 0 only when every check passed
finish() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
