#!/usr/bin/env bash
# make install into a temporary DESTDIR, as a C user would meet it: the tree, the shared library's
# soname and exports (only the header's functions), the examples built through pkg-config against
# the installed tree (shared and static) and checked against the installed CLI, every command's man
# page holding the options of its --help, and make uninstall leaving nothing behind.
set -u
. "$(dirname "$0")/lib.sh"
root=$tmp/root prefix=/opt/saliency
lib=$root$prefix/lib man1=$root$prefix/share/man/man1
${MAKE:-make} -s --no-print-directory install BUILD="$BUILD" DESTDIR="$root" PREFIX=$prefix > "$tmp/install.txt" 2>&1 \
    && ok || { bad "make install"; cat "$tmp/install.txt"; }

for f in bin/saliency include/saliency.h lib/libsaliency.a lib/libsaliency.so lib/libsaliency.so.0 \
         lib/pkgconfig/saliency.pc share/man/man1/saliency.1 share/man/man3/libsaliency.3; do
    [ -e "$root$prefix/$f" ] && ok || bad "not installed: $prefix/$f"
done
readelf -d "$lib/libsaliency.so.0" | grep -q 'SONAME.*\[libsaliency\.so\.0\]' && ok || bad "soname is not libsaliency.so.0"

# Exports: exactly the functions of the static library that the header names (the Makefile's version
# script reads the header through the preprocessor; this reads the library), and no internal sal_ one.
nm -D --defined-only "$lib/libsaliency.so.0" | awk '$2 ~ /^[TtWi]$/ {print $3}' | sort > "$tmp/exported.txt"
nm -D --defined-only "$lib/libsaliency.so.0" | awk '{print $3}' | grep -v '^sal_' > "$tmp/foreign.txt"
[ ! -s "$tmp/foreign.txt" ] && ok || bad "exported symbols outside the sal_ API: $(head -5 "$tmp/foreign.txt" | tr '\n' ' ')"
nm --defined-only "$lib/libsaliency.a" 2>/dev/null | awk '$2 == "T" {print $3}' | sort -u > "$tmp/static.txt"
grep -oE '\bsal_[a-z0-9_]+\(' "$root$prefix/include/saliency.h" | tr -d '(' | sort -u | grep -vx sal_f32 |
    comm -12 - "$tmp/static.txt" > "$tmp/public.txt"
diff "$tmp/public.txt" "$tmp/exported.txt" > "$tmp/exports.diff" && ok || { bad "exports differ from the header's API (< header, > .so)"; head "$tmp/exports.diff"; }
[ "$(wc -l < "$tmp/exported.txt")" -gt 100 ] && ok || bad "only $(wc -l < "$tmp/exported.txt") exports"
grep -qx sal_fail "$tmp/static.txt" && ! grep -qx sal_fail "$tmp/exported.txt" && ok || bad "internal sal_fail is exported (or gone)"

# The examples, built as the README says, against the installed tree only.
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
cflags=(-std=c11 -Wall -Wextra -Werror)
readelf -d "$lib/libsaliency.so.0" | grep -q 'NEEDED.*libasan' && cflags+=(-fsanitize=address,undefined) # SAN=1 builds
for e in integrated_gradients gradcam audit; do
    ${CC:-cc} "${cflags[@]}" examples/$e.c $(pkg-config --cflags --libs saliency) -o "$tmp/$e" 2> "$tmp/cc.txt" \
        && ok || { bad "build $e against the installed tree"; cat "$tmp/cc.txt"; }
done
static_libs=$(pkg-config --static --libs saliency | sed 's/-lsaliency /-l:libsaliency.a /')
${CC:-cc} "${cflags[@]}" examples/integrated_gradients.c $(pkg-config --cflags saliency) $static_libs -o "$tmp/ig_static" \
    2> "$tmp/cc.txt" && ok || { bad "link statically with pkg-config --static"; cat "$tmp/cc.txt"; }
readelf -d "$tmp/ig_static" | grep -q libsaliency && bad "the static example needs libsaliency.so" || ok
readelf -d "$tmp/integrated_gradients" | grep -q 'NEEDED.*\[libsaliency\.so\.0\]' && ok || bad "example not linked to libsaliency.so.0"

# A small CNN from the installed CLI, and inputs.
cli=$root$prefix/bin/saliency
"$cli" train --arch cnn --data mnist --epochs 1 --limit 300 --seed 3 --out "$tmp/m.onnx" > "$tmp/train.txt" 2>&1 \
    && ok || { bad "installed CLI: train"; tail -3 "$tmp/train.txt"; }
"$PY" -c "import numpy as np, sys; np.save(sys.argv[1] + '/x.npy', np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)); \
np.save(sys.argv[1] + '/zero.npy', np.zeros((3, 1, 28, 28), np.float32))" "$tmp"
"$cli" run "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/y.npy" && "$cli" run "$tmp/m.onnx" --input "$tmp/zero.npy" --out "$tmp/y0.npy" \
    && ok || bad "installed CLI: run"

export LD_LIBRARY_PATH=$lib
# Integrated gradients from a zero baseline: attributions sum to f(x) - f(0) for the predicted class.
for ig in integrated_gradients ig_static; do
    "$tmp/$ig" "$tmp/m.onnx" "$tmp/x.npy" "$tmp/$ig.npy" > "$tmp/$ig.txt" && ok || { bad "run $ig"; cat "$tmp/$ig.txt"; }
done
"$PY" - "$tmp" <<'EOF' && ok || bad "integrated gradients: completeness against the CLI's forward passes"
import sys, numpy as np
d = sys.argv[1]
a, y, y0 = np.load(d + '/integrated_gradients.npy'), np.load(d + '/y.npy'), np.load(d + '/y0.npy')
t = y.argmax(1)
total, diff = a.reshape(len(a), -1).sum(1), y[np.arange(len(t)), t] - y0[np.arange(len(t)), t]
print('sums', total, 'f(x) - f(0)', diff)
assert np.all(np.abs(total - diff) <= 1e-2 * np.maximum(1, np.abs(diff)))
assert np.array_equal(a, np.load(d + '/ig_static.npy')), 'static and shared builds differ'
EOF
cls=$("$PY" -c "import numpy as np, sys; print(np.load(sys.argv[1])[0].argmax())" "$tmp/y.npy")
grep -q "sample 0: class $cls," "$tmp/integrated_gradients.txt" && ok || bad "IG example: class (want $cls): $(cat "$tmp/integrated_gradients.txt")"

"$tmp/gradcam" "$tmp/m.onnx" "$tmp/x.npy" "$tmp/cam.png" > "$tmp/gradcam.txt" 2>&1 && ok || { bad "run gradcam"; cat "$tmp/gradcam.txt"; }
grep -qx "layer conv1" "$tmp/gradcam.txt" && grep -qx "class $cls, layer map 7x7" "$tmp/gradcam.txt" \
    && ok || bad "gradcam example output: $(cat "$tmp/gradcam.txt")"
[ "$(head -c 4 "$tmp/cam.png" | tail -c 3)" = PNG ] && ok || bad "gradcam example wrote no PNG"

# Kindermans et al.: the gradient is invariant to a constant input shift, gradient x input is not.
"$tmp/audit" "$tmp/m.onnx" "$tmp/x.npy" "$tmp/audit.json" > "$tmp/audit.txt" 2>&1 && ok || { bad "run audit"; cat "$tmp/audit.txt"; }
grep -q "^gradient  .* invariant" "$tmp/audit.txt" && grep -q "^gradient_x_input .* not invariant" "$tmp/audit.txt" \
    && ok || bad "audit example verdicts: $(cat "$tmp/audit.txt")"
grep -q '"verdict"' "$tmp/audit.json" && ok || bad "audit example wrote no JSON report"

# The Python package (not bundled, from the source tree) finds the installed library through the
# dynamic loader's search and gives the installed CLI's forward pass.
pyenv=(env -u SALIENCY_LIB SALIENCY_BUILD=no-such-build PYTHONPATH=python)
readelf -d "$lib/libsaliency.so.0" | grep -q 'NEEDED.*libasan' &&
    pyenv+=(LD_PRELOAD="$(gcc -print-file-name=libasan.so) libstdc++.so.6" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
"${pyenv[@]}" "$PY" -c "import saliency, sys, numpy as np
assert saliency._lib.path == 'libsaliency.so.0', saliency._lib.path
y = saliency.Model(sys.argv[1]).run(np.load(sys.argv[2]))
assert y.tobytes() == np.load(sys.argv[3]).tobytes()" "$tmp/m.onnx" "$tmp/x.npy" "$tmp/y.npy" > "$tmp/py.txt" 2>&1 \
    && ok || { bad "Python package with the installed library"; tail -5 "$tmp/py.txt"; }

# Man pages: one per command, holding every option of its --help; groff has nothing to say.
commands=$("$cli" --help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}')
[ "$(echo "$commands" | wc -w)" -ge 10 ] && ok || bad "commands: $commands"
for c in "" $commands; do
    page=$man1/saliency${c:+-$c}.1
    [ -f "$page" ] || { bad "no man page for '$c'"; continue; }
    "$cli" $c --help | grep -oE -- '--[a-z0-9-]+' | sort -u > "$tmp/help_opts.txt"
    sed 's/\\-/-/g' "$page" | grep -oE -- '--[a-z0-9-]+' | sort -u | comm -23 "$tmp/help_opts.txt" - > "$tmp/missing.txt"
    [ ! -s "$tmp/missing.txt" ] && ok || bad "saliency${c:+-$c}.1 lacks $(tr '\n' ' ' < "$tmp/missing.txt")"
    if command -v man > /dev/null; then
        warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 > /dev/null)
        [ -z "$warn" ] && ok || bad "man saliency${c:+-$c}: $warn"
    fi
done
while read -r s; do grep -q "$s" "$root$prefix/share/man/man3/libsaliency.3" || echo "$s"; done < "$tmp/exported.txt" > "$tmp/undoc.txt"
[ ! -s "$tmp/undoc.txt" ] && ok || bad "libsaliency.3 lacks $(head -5 "$tmp/undoc.txt" | tr '\n' ' ')"

${MAKE:-make} -s --no-print-directory uninstall BUILD="$BUILD" DESTDIR="$root" PREFIX=$prefix && ok || bad "make uninstall"
left=$(find "$root" ! -type d)
[ -z "$left" ] && ok || bad "make uninstall left: $left"

finish test_install
