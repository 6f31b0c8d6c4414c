#!/usr/bin/env bash
# The Python package installed as the README says (a venv that sees Debian's packages, pip offline
# without build isolation), then the README's Python example run from another folder: it must import
# the installed copy, which loads the library bundled beside it, and write its heatmap PNG.
set -u
. "$(dirname "$0")/lib.sh"
so=$(ls "$BUILD"/libsaliency.so.0* 2>/dev/null | tail -1)
[ -n "$so" ] || { bad "no $BUILD/libsaliency.so.0*: run make shared"; finish test_python_install; exit; }
"$PY" -m venv --system-site-packages --without-pip "$tmp/venv" && ok || bad "python3 -m venv"
# SALIENCY_LIB: bundle this build's library (a sanitizer build must not be relinked without its flags)
SALIENCY_LIB=$PWD/$so "$tmp/venv/bin/python" -m pip install --no-build-isolation --no-index --quiet ./python \
    > "$tmp/pip.txt" 2>&1 && ok || { bad "pip install ./python"; tail -20 "$tmp/pip.txt"; }
rm -rf python/build python/*.egg-info # pip builds in place; the tree stays clean
[ -f "$tmp/venv/lib/python3"*/site-packages/saliency/libsaliency.so.0 ] && ok || bad "library not bundled"

# the README's example: the first python block after "## Python"
awk '/^## Python/ {s = 1} s && /^```python/ {p = 1; next} p && /^```/ {exit} p' README.md > "$tmp/example.py"
[ "$(wc -l < "$tmp/example.py")" -ge 8 ] && ok || bad "no Python example in the README"
cat >> "$tmp/example.py" <<'PY'
import os
print("FROM", saliency.__file__, saliency._lib.path)
PY
env=(env -u SALIENCY_LIB -u PYTHONPATH)
if readelf -d "$so" | grep -q 'NEEDED.*libasan'; then # a sanitizer build: libasan first, the interpreter's leaks aside
    env+=(LD_PRELOAD="$(gcc -print-file-name=libasan.so) libstdc++.so.6" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
fi
(cd "$tmp" && "${env[@]}" "$tmp/venv/bin/python" example.py > out.txt 2>&1) && ok || { bad "README example"; tail -20 "$tmp/out.txt"; }
grep -q "^FROM $tmp/venv/.*/site-packages/saliency/__init__.py $tmp/venv/.*/saliency/libsaliency.so.0\$" "$tmp/out.txt" \
    && ok || bad "the example did not use the installed package and its library: $(grep FROM "$tmp/out.txt")"
grep -q "('gradient', 'invariant" "$tmp/out.txt" && grep -q "('gradient_x_input', 'not invariant" "$tmp/out.txt" \
    && ok || bad "example verdicts: $(head -3 "$tmp/out.txt")"
[ "$(head -c 4 "$tmp/ig.png" | tail -c 3)" = PNG ] && ok || bad "the example wrote no PNG"
finish test_python_install
