#!/usr/bin/env bash
# Heatmap PNGs from the CLI: `saliency heatmap` and `saliency explain --png`. Every PNG is checked
# by an independent reader (PIL when /usr/bin/python3 has it, else a chunk-by-chunk walk with CRC
# checks), colours are checked against the colormap's promises, and bad input gives exit 1, a
# message naming the file, and no output.
set -u
. "$(dirname "$0")/lib.sh"

# pngcheck FILE [WxH] [probe...]: a valid 8-bit RGB PNG (of that size); each probe "X,Y,cond" tests
# the pixel (r, g, b) at X,Y with a Python expression, e.g. "10,10,r>b".
pngcheck() {
    "$PY" - "$@" <<'PYEOF'
import struct, sys, zlib
path, rest = sys.argv[1], sys.argv[2:]
size = rest.pop(0) if rest and 'x' in rest[0] and ',' not in rest[0] else None
try:
    from PIL import Image
    with Image.open(path) as im:
        im.verify()                     # structure and CRCs
    im = Image.open(path)
    im.load()                           # decodes every pixel
    if im.mode != 'RGB': sys.exit('%s: mode %s, want RGB' % (path, im.mode))
    w, h = im.size
    pix = im.load()
except ImportError:                     # no PIL: walk the chunks ourselves
    d = open(path, 'rb').read()
    if d[:8] != b'\x89PNG\r\n\x1a\n': sys.exit(path + ': bad signature')
    p, idat, w = 8, b'', None
    while p < len(d):
        n, t = struct.unpack('>I4s', d[p:p + 8])
        body = d[p + 8:p + 8 + n]
        if zlib.crc32(t + body) != struct.unpack('>I', d[p + 8 + n:p + 12 + n])[0]: sys.exit(path + ': CRC')
        if t == b'IHDR':
            w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            if depth != 8 or ctype != 2: sys.exit(path + ': not 8-bit RGB')
        if t == b'IDAT': idat += body
        p += 12 + n
        if t == b'IEND': break
    raw = zlib.decompress(idat)
    if len(raw) != h * (3 * w + 1): sys.exit(path + ': wrong data size')
    pix = None
    if rest: sys.exit('pixel probes need PIL')
if size and size != '%dx%d' % (w, h): sys.exit('%s: %dx%d, want %s' % (path, w, h, size))
for probe in rest:
    x, y, cond = probe.split(',', 2)
    r, g, b = pix[int(x), int(y)]
    if not eval(cond): sys.exit('%s: pixel (%s,%s) = %s fails %s' % (path, x, y, (r, g, b), cond))
PYEOF
}

"$bin" heatmap --help | grep -q "usage: saliency heatmap" && ok || bad "heatmap --help"
"$bin" --help | grep -q "heatmap" && ok || bad "saliency --help lists heatmap"
"$bin" explain --help | grep -q -- "--png" && ok || bad "explain --help mentions --png"

# maps with known values: one sample (1,1,4,6) with +, -, 0 regions; a batch of 3; a non-negative one
"$PY" - "$tmp" <<'PYEOF' && ok || bad "make arrays"
import sys, numpy as np
d = sys.argv[1]
m = np.zeros((1, 1, 4, 6), np.float32)
m[0, 0, :, :2] = 1.0      # left: positive
m[0, 0, :, 4:] = -1.0     # right: negative, middle zero
np.save(d + '/m1.npy', m)
np.save(d + '/mabs.npy', np.abs(m))
rng = np.random.default_rng(0)
np.save(d + '/m3.npy', rng.standard_normal((3, 1, 10, 12)).astype(np.float32))
np.save(d + '/x3.npy', rng.random((3, 1, 10, 12), dtype=np.float32))
np.save(d + '/rgb.npy', rng.standard_normal((3, 8, 8)).astype(np.float32))
np.save(d + '/x.npy', rng.random((5, 1, 28, 28), dtype=np.float32))
np.save(d + '/x1.npy', rng.random((1, 28, 28), dtype=np.float32))
np.save(d + '/flat.npy', rng.standard_normal(784).astype(np.float32))
m = rng.standard_normal((2, 1, 5, 5)).astype(np.float32); m[1, 0, 2, 2] = np.nan
np.save(d + '/mnan.npy', m)
np.save(d + '/xwrong.npy', rng.random((3, 1, 9, 12), dtype=np.float32))
PYEOF

# colours: positive red, negative blue, zero neutral grey; sizes follow --scale and the colour bar
"$bin" heatmap "$tmp/m1.npy" --out "$tmp/h1.png" --scale 10 --no-colorbar && ok || bad "heatmap m1"
pngcheck "$tmp/h1.png" 60x40 "5,5,r>b+60" "55,35,b>r+60" "30,20,r==g==b and r>230" && ok || bad "diverging colours"
"$bin" heatmap "$tmp/m1.npy" --out "$tmp/h1b.png" --scale 10 && ok || bad "heatmap with colour bar"
pngcheck "$tmp/h1b.png" && "$PY" -c "
from PIL import Image; import sys
w, h = Image.open('$tmp/h1b.png').size; sys.exit(0 if w > 70 and h == 40 else 1)" && ok || bad "colour bar widens the picture"
"$bin" heatmap "$tmp/mabs.npy" --out "$tmp/habs.png" --scale 10 --no-colorbar && ok || bad "heatmap mabs"
pngcheck "$tmp/habs.png" 60x40 "5,5,r+g+b>600" "30,20,max(r,g,b)<50" && ok || bad "non-negative map: sequential, 0 dark"
"$bin" heatmap "$tmp/m1.npy" --out "$tmp/hseq.png" --scale 10 --no-colorbar --cmap sequential && ok || bad "--cmap sequential"
pngcheck "$tmp/hseq.png" 60x40 "5,5,r+g+b>600" "55,35,r+g+b>600" && ok || bad "sequential shows |value|"
# default scale: about 224 pixels a side
"$bin" heatmap "$tmp/m1.npy" --out "$tmp/hdef.png" --no-colorbar && pngcheck "$tmp/hdef.png" 222x148 && ok \
    || bad "default scale 37"
# determinism
"$bin" heatmap "$tmp/m1.npy" --out "$tmp/h1c.png" --scale 10 && cmp -s "$tmp/h1b.png" "$tmp/h1c.png" && ok \
    || bad "same input, same bytes"

# batches: a grid; inputs beside or under the maps; one sample; options
"$bin" heatmap "$tmp/m3.npy" --out "$tmp/g.png" && pngcheck "$tmp/g.png" && ok || bad "grid of 3"
"$bin" heatmap "$tmp/m3.npy" --input "$tmp/x3.npy" --out "$tmp/gp.png" --cols 1 && pngcheck "$tmp/gp.png" && ok \
    || bad "grid with inputs beside"
"$bin" heatmap "$tmp/m3.npy" --input "$tmp/x3.npy" --overlay --out "$tmp/go.png" --share all --clip 90 \
    --reduce max-abs --alpha 0.5 && pngcheck "$tmp/go.png" && ok || bad "overlay grid with options"
"$bin" heatmap "$tmp/m3.npy" --input "$tmp/x3.npy" --overlay --sample 2 --scale 3 --no-colorbar --out "$tmp/s2.png" \
    && pngcheck "$tmp/s2.png" 36x30 && ok || bad "--sample 2"
"$bin" heatmap "$tmp/rgb.npy" --single --reduce abs-sum --out "$tmp/rgb.png" --no-colorbar --scale 2 \
    && pngcheck "$tmp/rgb.png" 16x16 && ok || bad "--single (3,8,8)"

# a trained model: explain --png (grid of 5; one sample with overlay)
"$bin" train --arch mlp --data mnist --epochs 1 --limit 500 --seed 3 --out "$tmp/m.onnx" > "$tmp/train.txt" 2>&1 \
    && ok || { bad "train"; cat "$tmp/train.txt"; }
"$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradient --out "$tmp/a.npy" --png "$tmp/a.png" \
    && pngcheck "$tmp/a.png" && ok || bad "explain --png (grid)"
"$bin" explain "$tmp/m.onnx" --input "$tmp/x1.npy" --method gradient_x_input --out "$tmp/a1.npy" --png "$tmp/a1.png" \
    --overlay && pngcheck "$tmp/a1.png" && ok || bad "explain --png --overlay (one sample)"
"$PY" -c "
from PIL import Image; import sys
w, h = Image.open('$tmp/a1.png').size; W, H = Image.open('$tmp/a.png').size
sys.exit(0 if h == 224 and 224 < w < 400 and W > 2 * w else 1)" && ok || bad "one heatmap 224 high; the grid wider"
"$bin" heatmap "$tmp/a.npy" --input "$tmp/x.npy" --out "$tmp/a2.png" && pngcheck "$tmp/a2.png" && ok \
    || bad "heatmap of explain's output"

# bad input
expect_fail "$tmp/missing.npy" "$bin" heatmap "$tmp/missing.npy" --out "$tmp/o1.png"
head -c 100 "$tmp/m3.npy" > "$tmp/trunc.npy"
expect_fail "$tmp/trunc.npy" "$bin" heatmap "$tmp/trunc.npy" --out "$tmp/o2.png"
expect_fail "$tmp/mnan.npy" "$bin" heatmap "$tmp/mnan.npy" --out "$tmp/o3.png"
expect_fail "$tmp/flat.npy" "$bin" heatmap "$tmp/flat.npy" --out "$tmp/o4.png"
expect_fail "$tmp/xwrong.npy" "$bin" heatmap "$tmp/m3.npy" --input "$tmp/xwrong.npy" --out "$tmp/o5.png"
expect_fail "$tmp/nodir/o6.png" "$bin" heatmap "$tmp/m3.npy" --out "$tmp/nodir/o6.png"
expect_fail "$tmp/m3.npy: sample 7" "$bin" heatmap "$tmp/m3.npy" --sample 7 --out "$tmp/o7.png"
expect_fail "--clip" "$bin" heatmap "$tmp/m3.npy" --clip 0 --out "$tmp/o8.png"
expect_fail "--cmap" "$bin" heatmap "$tmp/m3.npy" --cmap rainbow --out "$tmp/o9.png"
expect_fail "--overlay needs --input" "$bin" heatmap "$tmp/m3.npy" --overlay --out "$tmp/o10.png"
expect_fail "missing --out" "$bin" heatmap "$tmp/m3.npy"
expect_fail "$tmp/nodir/o11.png" "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradient \
    --out "$tmp/o11.npy" --png "$tmp/nodir/o11.png"
expect_fail "--overlay needs --png" "$bin" explain "$tmp/m.onnx" --input "$tmp/x.npy" --method gradient \
    --out "$tmp/o12.npy" --overlay
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    if [ -e "$tmp/o$i.png" ]; then bad "output o$i.png left behind"; else ok; fi
done
[ -e "$tmp/nodir" ] && bad "folder nodir created" || ok
if ls "$tmp"/*.tmp.* >/dev/null 2>&1; then bad "temporary files left behind"; else ok; fi

finish test_heatmap
