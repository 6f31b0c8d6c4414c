#!/usr/bin/python3
"""Exporter idioms beyond PyTorch's, in small ONNX files built here with the onnx package: every
constant a `Constant` node (value, value_float(s), value_int(s)); Clip with min/max as inputs (or
one of them omitted) and as opset-9 attributes; Reshape with constant shapes holding 0 and -1;
Resize with constant scales or sizes (opsets 11 and 13), Resize-10 and opset-9 Upsample; the
attribute-vs-input forms of older opsets (Unsqueeze/Squeeze, ReduceSum, Slice, Pad, Softmax's 2-D
flattening before opset 13, Dropout's ratio); names full of dots, slashes and colons (tf2onnx,
paddle2onnx, keras2onnx) fed, explained and addressed by name through the CLI; and initializers
also listed as graph inputs (IR 3 exporters), which stay constants.

Each model runs through `saliency run` against a numpy float64 reference (1e-5 of the largest
magnitude) and `saliency explain --method gradient` against central finite differences of that
reference (1e-3). Run with Debian's /usr/bin/python3. Prints "N passed, M failed".
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("SAL_BUILD", "build")
CLI = os.path.join(BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD), "saliency")
passed = failed = 0
rng = np.random.default_rng(7)


def F(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const_node(out, arr=None, **attr):
    """A Constant node: value=<tensor> when arr is given, else one of the value_* attributes."""
    if arr is not None:
        return helper.make_node("Constant", [], [out], value=numpy_helper.from_array(arr, out + "_t"))
    return helper.make_node("Constant", [], [out], **attr)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits=(), opset=13, ir=None, list_inits_as_inputs=False):
    g = helper.make_graph(nodes, "idiom", inputs, outputs, list(inits))
    if list_inits_as_inputs:
        for t in inits:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="idiom-test")
    m.ir_version = ir or (3 if opset <= 8 else 4 if opset == 9 else 5 if opset == 10 else 6 if opset == 11 else 7)
    onnx.checker.check_model(m)
    return m


def fd_grad(f, x, target, h=1e-6):
    """Central differences of sum_i f(x)[i, target[i]] in float64."""
    x = x.astype(np.float64)
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    sel = lambda y: y[np.arange(len(target)), target].sum()  # noqa: E731
    for k in range(flat.size):
        v = flat[k]
        flat[k] = v + h
        up = sel(f(x))
        flat[k] = v - h
        dn = sel(f(x))
        flat[k] = v
        gf[k] = (up - dn) / (2 * h)
    return g


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def sh(args):
    r = subprocess.run([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return r.returncode, r.stdout.strip()


def report(name, ok, msg):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, msg))


def check(name, m, f, x, tmp, grad=True, feed=None, extra=None):
    """Runs model m on x through the CLI and compares with f(x); then the gradient of one target per
    sample through `explain` against finite differences of f. feed: the --input argument (default
    the file alone); extra(path) may run more CLI checks and returns an error message or None."""
    path = os.path.join(tmp, name + ".onnx")
    onnx.save(m, path)
    xf = os.path.join(tmp, name + "_x.npy")
    np.save(xf, x.astype(np.float32))
    yf = os.path.join(tmp, name + "_y.npy")
    rc, out = sh(["run", path, "--input", (feed + "=" + xf) if feed else xf, "--out", yf])
    if rc != 0:
        return report(name, False, "run: " + out.splitlines()[-1])
    want = f(x.astype(np.float64))
    got = np.load(yf)
    if got.shape != want.shape:
        return report(name, False, "output shape %s, numpy's %s" % (got.shape, want.shape))
    e = rel_err(got, want)
    if not e <= 1e-5:
        return report(name, False, "output differs from numpy by %.2g of its scale" % e)
    if grad:
        t = rng.integers(0, want.shape[1], len(x))
        af = os.path.join(tmp, name + "_a.npy")
        rc, out = sh(["explain", path, "--input", xf, "--method", "gradient", "--target", ",".join(map(str, t)),
                      "--out", af])
        if rc != 0:
            return report(name, False, "explain: " + out.splitlines()[-1])
        ge = rel_err(np.load(af), fd_grad(f, x, t))
        if not ge <= 1e-3:
            return report(name, False, "gradient differs from finite differences by %.2g of its scale" % ge)
    if extra:
        msg = extra(path)
        if msg:
            return report(name, False, msg)
    report(name, True, "")


# ---- numpy references ----

def relu(a):
    return np.maximum(a, 0)


def resize_nearest(x, oh, ow):
    """Nearest, asymmetric coordinates, floor (ONNX's defaults for Resize and opset-9 Upsample)."""
    h, w = x.shape[2:]
    iy = np.minimum(np.floor(np.arange(oh) * (h / oh)).astype(int), h - 1)
    ix = np.minimum(np.floor(np.arange(ow) * (w / ow)).astype(int), w - 1)
    return x[:, :, iy][:, :, :, ix]


def resize_linear_half_pixel(x, oh, ow):
    def axis_weights(n, m):
        c = np.clip((np.arange(m) + 0.5) * (n / m) - 0.5, 0, n - 1)
        lo = np.floor(c).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, c - lo
    h, w = x.shape[2:]
    y0, y1, fy = axis_weights(h, oh)
    x0, x1, fx = axis_weights(w, ow)
    rows = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return rows[:, :, :, x0] * (1 - fx) + rows[:, :, :, x1] * fx


def softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- cases ----

def case_constant_nodes(tmp):
    """Every constant from a Constant node, in each attribute form, and the dynamic-batch shape
    chain Shape -> Gather(value_int) -> Unsqueeze -> Concat(value_ints) -> Reshape."""
    W = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    s = np.float32(0.75)
    nodes = [
        const_node("W", W),
        const_node("b", value_floats=b.tolist()),
        const_node("s", value_float=float(s)),
        const_node("zero", value_int=0),
        const_node("tail", value_ints=[3, 2]),
        const_node("ax0", value_ints=[0]),
        const_node("ax2", np.array([2], np.int64)),
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["xwb"]),
        helper.make_node("Mul", ["xwb", "s"], ["z"]),
        helper.make_node("Relu", ["z"], ["r"]),
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Gather", ["xs", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "tail"], ["shape"], axis=0),
        helper.make_node("Reshape", ["r", "shape"], ["r3"]),
        helper.make_node("ReduceSum", ["r3", "ax2"], ["y"], keepdims=0),
    ]
    m = model(nodes, [F("x", ["N", 4])], [F("y", ["N", 3])])
    f = lambda x: relu((x @ W + b) * s).reshape(len(x), 3, 2).sum(2)  # noqa: E731
    check("constant_nodes", m, f, rng.standard_normal((3, 4)), tmp)


def case_clip(tmp):
    lo, hi = -0.3, 0.5
    x = rng.uniform(-1, 1, (3, 5))
    x[np.abs(x - lo) < 1e-3] += 0.01
    x[np.abs(x - hi) < 1e-3] += 0.01
    W = rng.standard_normal((5, 4)).astype(np.float32)
    cases = {
        # name: (opset, clip node inputs, constants made as nodes or initializers, numpy bounds)
        "clip_inputs_init_op11": (11, ["h", "lo", "hi"], "init", (lo, hi)),
        "clip_inputs_const_op13": (13, ["h", "lo", "hi"], "node", (lo, hi)),
        "clip_max_only_op13": (13, ["h", "", "hi"], "node", (None, hi)),
        "clip_min_only_op11": (11, ["h", "lo"], "init", (lo, None)),
        "clip_attrs_op9": (9, ["h"], "attr", (lo, hi)),
    }
    for name, (opset, ins, how, (a, b)) in cases.items():
        nodes, inits = [], [init("W", W)]
        attrs = {}
        if how == "attr":
            attrs = {"min": lo, "max": hi}
        for nm, v in (("lo", lo), ("hi", hi)):
            if nm in ins:
                if how == "init":
                    inits.append(init(nm, np.float32(v)))
                else:
                    nodes.append(const_node(nm, np.array(v, np.float32)))
        nodes += [helper.make_node("Identity", ["x"], ["h"]),
                  helper.make_node("Clip", ins, ["c"], **attrs),
                  helper.make_node("MatMul", ["c", "W"], ["y"])]
        m = model(nodes, [F("x", ["N", 5])], [F("y", ["N", 4])], inits, opset=opset)
        f = lambda x, a=a, b=b: np.clip(x, a, b) @ W  # noqa: E731
        check(name, m, f, x, tmp)


def case_reshape(tmp):
    x = rng.standard_normal((2, 3, 4))
    for opset in (9, 13):
        s2 = [0, 4, -1]  # value_ints exists from opset 12 on
        nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]),  # (0, -1): keep the batch, flatten
                 const_node("s2", value_ints=s2) if opset >= 12 else const_node("s2", np.array(s2, np.int64)),
                 helper.make_node("Reshape", ["a", "s2"], ["b"]),
                 helper.make_node("Flatten", ["b"], ["y"], axis=1)]
        m = model(nodes, [F("x", ["N", 3, 4])], [F("y", ["N", 12])], [init("s1", np.array([0, -1], np.int64))],
                  opset=opset)
        check("reshape_const_op%d" % opset, m, lambda x: x.reshape(len(x), -1), x, tmp)


def case_resize(tmp):
    x = rng.standard_normal((2, 2, 3, 4))
    W = rng.standard_normal((2 * 6 * 8, 3)).astype(np.float32)
    head = [helper.make_node("Flatten", ["u"], ["fl"], axis=1), helper.make_node("MatMul", ["fl", "W"], ["y"])]
    out = [F("y", ["N", 3])]
    empty = np.zeros(0, np.float32)
    scales = np.array([1, 1, 2, 2], np.float32)
    cases = {
        # PyTorch at opset 11: Resize(x, roi (empty constant), scales (constant))
        "resize_nearest_scales_op11": (11, [const_node("roi", empty), const_node("sc", scales),
                                            helper.make_node("Resize", ["x", "roi", "sc"], ["u"], mode="nearest",
                                                             coordinate_transformation_mode="asymmetric",
                                                             nearest_mode="floor")],
                                       [2, 2, 3, 4], resize_nearest),
        # sizes as an initializer, roi and scales omitted by empty names (fixed batch)
        "resize_nearest_sizes_op13": (13, [helper.make_node("Resize", ["x", "", "", "sz"], ["u"], mode="nearest",
                                                            coordinate_transformation_mode="asymmetric",
                                                            nearest_mode="floor")],
                                      [2, 2, 3, 4], resize_nearest),
        # F.interpolate(bilinear, align_corners=False) at opset 13
        "resize_linear_scales_op13": (13, [const_node("sc", scales),
                                           helper.make_node("Resize", ["x", "", "sc"], ["u"], mode="linear",
                                                            coordinate_transformation_mode="half_pixel")],
                                      ["N", 2, 3, 4], resize_linear_half_pixel),
        "resize_op10": (10, [const_node("sc", scales), helper.make_node("Resize", ["x", "sc"], ["u"], mode="nearest")],
                        ["N", 2, 3, 4], resize_nearest),
        "upsample_op9": (9, [const_node("sc", scales), helper.make_node("Upsample", ["x", "sc"], ["u"], mode="nearest")],
                         ["N", 2, 3, 4], resize_nearest),
    }
    for name, (opset, nodes, xshape, ref) in cases.items():
        inits = [init("W", W)]
        if "sizes" in name:
            inits.append(init("sz", np.array([2, 2, 6, 8], np.int64)))
        m = model(nodes + head, [F("x", xshape)], out, inits, opset=opset)
        f = lambda x, ref=ref: ref(x, 6, 8).reshape(len(x), -1) @ W  # noqa: E731
        check(name, m, f, x, tmp)


def case_opset_forms(tmp):
    """The same computation in the attribute forms of opset 11 and the input forms of 13:
    Pad -> Slice -> Unsqueeze -> Squeeze -> ReduceSum -> Dropout -> Softmax (2-D flattening before 13)."""
    x = rng.standard_normal((2, 3, 4))

    def f(x, opset):
        p = np.pad(x, ((0, 0), (0, 0), (1, 2)))  # (N,3,7)
        s = p[:, 1:3, 0:6:2]  # (N,2,3)
        r = s.sum(axis=2)  # (N,2)
        if opset < 13:  # axis 1 of a 2-D input: the same
            return softmax(r, 1)
        return softmax(r, -1)

    for opset in (9, 11, 13):
        nodes, inits = [], []
        if opset < 11:
            nodes.append(helper.make_node("Pad", ["x"], ["p"], pads=[0, 0, 1, 0, 0, 2]))
        else:
            inits.append(init("pads", np.array([0, 0, 1, 0, 0, 2], np.int64)))
            nodes.append(helper.make_node("Pad", ["x", "pads"], ["p"]))
        if opset < 10:
            nodes.append(helper.make_node("Slice", ["p"], ["s"], starts=[1, 0], ends=[3, 6], axes=[1, 2]))
            # opset 9 Slice has no steps: take every second element with a Gather instead
            nodes[-1] = helper.make_node("Slice", ["p"], ["s0"], starts=[1, 0], ends=[3, 6], axes=[1, 2])
            inits.append(init("idx", np.array([0, 2, 4], np.int64)))
            nodes.append(helper.make_node("Gather", ["s0", "idx"], ["s"], axis=2))
        else:
            for nm, v in (("st", [1, 0]), ("en", [3, 6]), ("ax", [1, 2]), ("step", [1, 2])):
                inits.append(init(nm, np.array(v, np.int64)))
            nodes.append(helper.make_node("Slice", ["p", "st", "en", "ax", "step"], ["s"]))
        if opset < 13:
            nodes += [helper.make_node("Unsqueeze", ["s"], ["u"], axes=[1]),
                      helper.make_node("Squeeze", ["u"], ["q"], axes=[1]),
                      helper.make_node("ReduceSum", ["q"], ["r"], axes=[2], keepdims=0)]
        else:
            inits += [init("a1", np.array([1], np.int64)), init("a2", np.array([2], np.int64))]
            nodes += [helper.make_node("Unsqueeze", ["s", "a1"], ["u"]),
                      helper.make_node("Squeeze", ["u", "a1"], ["q"]),
                      helper.make_node("ReduceSum", ["q", "a2"], ["r"], keepdims=0)]
        if opset < 12:
            nodes.append(helper.make_node("Dropout", ["r"], ["d"], ratio=0.3))
        else:
            inits.append(init("ratio", np.float32(0.3)))
            nodes.append(helper.make_node("Dropout", ["r", "ratio"], ["d"]))
        nodes.append(helper.make_node("Softmax", ["d"], ["y"], **({"axis": 1} if opset < 13 else {})))
        m = model(nodes, [F("x", ["N", 3, 4])], [F("y", ["N", 2])], inits, opset=opset)
        check("attr_vs_input_forms_op%d" % opset, m, lambda x, o=opset: f(x, o), x, tmp)

    # Softmax before opset 13 flattens at `axis` (default 1): over (C*L) for a (N,C,L) input
    x3 = rng.standard_normal((2, 2, 3))
    m = model([helper.make_node("Softmax", ["x"], ["s"]), helper.make_node("Flatten", ["s"], ["y"])],
              [F("x", ["N", 2, 3])], [F("y", ["N", 6])], opset=11)
    check("softmax_2d_flatten_op11", m, lambda x: softmax(x.reshape(len(x), -1), 1), x3, tmp)


def case_names(tmp):
    """A small NHWC conv net named the tf2onnx/keras2onnx way, with paddle2onnx-style weights."""
    conv_w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5
    conv_b = rng.standard_normal(4).astype(np.float32) * 0.1
    dense_w = rng.standard_normal((4, 5)).astype(np.float32)
    inp = "serving_default_input_1:0"
    conv = "StatefulPartitionedCall/sequential/conv2d/Conv2D"
    relu_out = "StatefulPartitionedCall/sequential/conv2d/Relu:0"
    nodes = [
        helper.make_node("Transpose", [inp], ["StatefulPartitionedCall/sequential/conv2d/Conv2D__6:0"],
                         perm=[0, 3, 1, 2], name="StatefulPartitionedCall/sequential/conv2d/Conv2D__6"),
        helper.make_node("Conv", ["StatefulPartitionedCall/sequential/conv2d/Conv2D__6:0", "conv2d_0.w_0", "conv2d_0.b_0"],
                         ["StatefulPartitionedCall/sequential/conv2d/BiasAdd:0"], pads=[1, 1, 1, 1], name=conv),
        helper.make_node("Relu", ["StatefulPartitionedCall/sequential/conv2d/BiasAdd:0"], [relu_out],
                         name="StatefulPartitionedCall/sequential/conv2d/Relu"),
        helper.make_node("GlobalAveragePool", [relu_out], ["gap.tmp_0"], name="pool2d_0.tmp_0"),
        helper.make_node("Flatten", ["gap.tmp_0"], ["flatten_0.tmp_0"], name="flatten_0"),
        helper.make_node("MatMul", ["flatten_0.tmp_0", "dense/kernel:0"], ["Identity:0"],
                         name="StatefulPartitionedCall/sequential/dense/MatMul"),
    ]
    inits = [init("conv2d_0.w_0", conv_w), init("conv2d_0.b_0", conv_b), init("dense/kernel:0", dense_w)]
    m = model(nodes, [F(inp, ["unk__12", 5, 5, 3])], [F("Identity:0", ["unk__13", 5])], inits, opset=13)

    def f(x):
        xc = x.transpose(0, 3, 1, 2)
        n, c, h, w = xc.shape
        xp = np.pad(xc, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros((n, 4, h, w))
        for i in range(3):
            for j in range(3):
                out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + w], conv_w[:, :, i, j])
        out += conv_b[None, :, None, None]
        return relu(out).mean((2, 3)) @ dense_w

    def extra(path):
        rc, out = sh(["info", path])
        if rc != 0 or inp not in out or conv not in out:
            return "info does not list the names: " + out[-300:]
        a = os.path.join(tmp, "names_cam.npy")
        rc, out = sh(["explain", path, "--input", os.path.join(tmp, "names_x.npy"), "--method", "gradcam",
                      "--param", "layer=" + relu_out, "--out", a])
        if rc != 0:
            return "gradcam at layer '%s': %s" % (relu_out, out)
        rc, out = sh(["explain", path, "--input", os.path.join(tmp, "names_x.npy"), "--method", "lrp_epsilon",
                      "--rule", conv + "=epsilon:1e-6", "--out", a])
        if rc != 0:
            return "an LRP rule for node '%s': %s" % (conv, out)
        return None

    check("names", m, f, rng.standard_normal((2, 5, 5, 3)), tmp, feed=inp, extra=extra)


def case_tf2onnx_shape_int32(tmp):
    """tf2onnx computes shapes in int32: Shape -> Cast(INT32) -> Slice -> Concat(int32 initializer)
    -> Cast(INT64) -> Reshape, with a 250-character value name."""
    long = "StatefulPartitionedCall/" + "functional_1/" * 17 + "flatten/Reshape:0"
    nodes = [helper.make_node("Shape", ["x:0"], ["shape:0"]),
             helper.make_node("Cast", ["shape:0"], ["shape_i32:0"], to=TensorProto.INT32),
             helper.make_node("Slice", ["shape_i32:0", "s0", "s1"], ["batch:0"]),
             helper.make_node("Concat", ["batch:0", "const_fold_opt__12"], ["newshape_i32:0"], axis=0),
             helper.make_node("Cast", ["newshape_i32:0"], ["newshape:0"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x:0", "newshape:0"], [long]),
             helper.make_node("Mul", [long, "w"], ["Identity:0"])]
    w = rng.standard_normal(6).astype(np.float32)
    inits = [init("s0", np.array([0], np.int32)), init("s1", np.array([1], np.int32)),
             init("const_fold_opt__12", np.array([-1], np.int32)), init("w", w)]
    m = model(nodes, [F("x:0", ["unk__5", 2, 3])], [F("Identity:0", ["unk__6", 6])], inits, opset=13)
    check("tf2onnx_shape_int32", m, lambda x: x.reshape(len(x), -1) * w, rng.standard_normal((2, 2, 3)), tmp)


def case_inits_as_inputs(tmp):
    """IR 3 / opset 9 as old exporters wrote it: every initializer also a graph input (here even
    before the real input). They stay constants: the model takes one input."""
    W1 = rng.standard_normal((4, 6)).astype(np.float32)
    b1 = rng.standard_normal(6).astype(np.float32)
    W2 = rng.standard_normal((6, 3)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "fc2.weight"], ["y"])]
    inits = [init("fc1.weight", W1.T.copy()), init("fc1.bias", b1), init("fc2.weight", W2)]
    g = helper.make_graph(nodes, "old", [], [F("y", ["N", 3])], inits)
    for t in inits:
        g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    g.input.append(F("x", ["N", 4]))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])
    m.ir_version = 3
    onnx.checker.check_model(m)

    def extra(path):
        rc, out = sh(["info", path])
        lines = [ln for ln in out.splitlines() if "fc1.weight" in ln and "input" in ln.lower()]
        if rc != 0 or lines:
            return "info lists a weight as an input: " + " | ".join(lines or [out[-200:]])
        return None

    check("inits_as_inputs_ir3", m, lambda x: relu(x @ W1 + b1) @ W2, rng.standard_normal((3, 4)), tmp,
          extra=extra)


def main():
    if not os.access(CLI, os.X_OK):
        print("%s not found: build it first (make BUILD=%s)" % (CLI, BUILD))
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory(prefix="sal_idioms.") as tmp:
        for case in (case_constant_nodes, case_clip, case_reshape, case_resize, case_opset_forms, case_names,
                     case_tf2onnx_shape_int32, case_inits_as_inputs):
            case(tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
