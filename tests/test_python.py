#!/usr/bin/python3
"""The Python package (python/saliency) against the CLI, PyTorch and a C compiler:
  - every ctypes structure has the size and field offsets gcc gives the header's struct;
  - a small PyTorch CNN through from_torch: run() equals PyTorch's forward, and the gradient
    (explain method=gradient, per-sample targets) equals autograd's in float64;
  - on the same ONNX file and inputs, byte for byte against the CLI: run's output, explain's maps
    (gradient, integrated_gradients with data, gradcam, lrp_epsilon) and their JSON, save_npy's
    file, heatmaps (one overlaid sample; a grid beside the inputs), the invariance, randomization
    and faithfulness audits (JSON text, CSV, figure), the HTML report of those files, methods()
    against `saliency methods`, composite() against `saliency data composite`, visualize() (plain, and robust with a
    diverse batch) against `saliency visualize`, invert() against `saliency invert`;
  - float64, Fortran-ordered, integer and torch inputs give the float32 map; one sample without
    the batch axis gives that sample's row;
  - bad arrays (strings, complex, objects, NaN), wrong shapes, unknown methods, bad targets,
    missing and corrupt files raise the expected exceptions carrying the library's message, and
    the model still works afterwards; a memory budget too small raises MemoryBudgetError;
  - set_threads applies to every Python thread; another Python thread runs while explain computes
    (the GIL is released);
  - a notebook-style script renders a heatmap through _repr_png_ and to_png;
  - at the end, with every object dropped, the library holds no memory (its own count).
Under a sanitizer build (the library needs libasan) it re-runs itself with libasan preloaded and
leak detection off (the interpreter keeps memory at exit by design). Prints "N passed, M failed"."""
import gc
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("SAL_BUILD", "build")
BUILD = BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD)
CLI = os.path.join(BUILD, "saliency")
LIBS = sorted(glob.glob(os.path.join(BUILD, "libsaliency.so.0*")))


def asan_reexec():
    """A sanitizer build's library loads only after libasan: preload it and start again."""
    if not LIBS or os.environ.get("SAL_PY_ASAN") or b"libasan.so" not in open(LIBS[-1], "rb").read():
        return
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    # libstdc++ loaded at start too: ASan finds __cxa_throw only then, and PyTorch throws
    env = dict(os.environ, SAL_PY_ASAN="1", LD_PRELOAD=asan + " libstdc++.so.6",
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def omp_reexec():
    """A clang build's library runs its loops on LLVM's OpenMP runtime and links OpenBLAS and oneDNN,
    which run on GCC's: set_threads reaches one runtime only, and the library's bytes then differ from
    the CLI's (OMP_NUM_THREADS=1 reaches both). Such a build's checks run on one thread throughout."""
    if not LIBS or os.environ.get("OMP_NUM_THREADS") or b"libomp.so" not in open(LIBS[-1], "rb").read():
        return
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, OMP_NUM_THREADS="1"))


asan_reexec()
omp_reexec()
if not LIBS:
    print("no %s/libsaliency.so.0*: run make shared first" % BUILD)
    print("0 passed, 1 failed")
    sys.exit(1)
os.environ["SALIENCY_LIB"] = LIBS[-1]
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import saliency  # noqa: E402
from saliency import _lib  # noqa: E402

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", msg)


def cli(*args):
    # one thread on both sides (saliency.set_threads(1) below): how a sum splits over threads decides
    # its last bits, and PyTorch, imported here, changes how the library's threads meet (docs/python.md)
    r = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode:
        print("CLI failed:", " ".join(map(str, args)), r.stderr.strip())
    return r.returncode


def same_file(path, data, what):
    with open(path, "rb") as f:
        b = f.read()
    check(b == (data.encode() if isinstance(data, str) else data), "%s differs from the CLI's %s" % (what, path))


def raises(exc, needle, fn, what):
    try:
        fn()
    except exc as e:
        check(needle in str(e), "%s: message %r lacks %r" % (what, str(e), needle))
        return
    except Exception as e:  # noqa: BLE001 (a wrong exception is a failure, reported)
        check(False, "%s: raised %s (%s), want %s" % (what, type(e).__name__, e, exc.__name__))
        return
    check(False, "%s: no exception, want %s" % (what, exc.__name__))


def layouts(tmp):
    """sizeof and offsetof of every mirrored structure, from gcc, against ctypes."""
    lines = ['#include "saliency.h"', "#include <stdio.h>", "#include <stddef.h>", "int main(void) {"]
    want = []
    for cls, cname in _lib.C_NAMES.items():
        lines.append('printf("%%zu\\n", sizeof(%s));' % cname)
        want.append(("sizeof " + cname, C_sizeof(cls)))
        for f in cls._fields_:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (cname, f[0]))
            want.append(("%s.%s" % (cname, f[0]), getattr(cls, f[0]).offset))
    src = os.path.join(tmp, "layout.c")
    with open(src, "w") as f:
        f.write("\n".join(lines + ["return 0; }"]))
    exe = os.path.join(tmp, "layout")
    r = subprocess.run(["gcc", "-std=c11", "-I" + os.path.join(ROOT, "include"), src, "-o", exe], capture_output=True,
                       text=True)
    check(r.returncode == 0, "layout program: %s" % r.stderr)
    got = subprocess.run([exe], capture_output=True, text=True).stdout.split()
    check(len(got) == len(want), "layout program printed %d numbers for %d" % (len(got), len(want)))
    for (name, w), g in zip(want, got):
        check(int(g) == w, "%s: C says %s, ctypes %d" % (name, g, w))


def C_sizeof(cls):
    import ctypes
    return ctypes.sizeof(cls)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6 * 6 * 6, 3)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc(torch.relu(self.conv2(x)).flatten(1))


def autograd(net, x, targets):
    xt = torch.from_numpy(x).double().requires_grad_()
    y = net.double()(xt)
    y[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    net.float()
    return xt.grad.numpy()


def main():
    tmp = tempfile.mkdtemp(prefix="sal_python.")
    try:
        run_checks(tmp)
        # every model, session, explanation and audit freed once Python drops them: none left counted
        gc.collect()
        check(saliency.memory_in_use() == 0, "the library still holds %d bytes" % saliency.memory_in_use())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def run_checks(tmp):
    layouts(tmp)
    saliency.set_threads(1)
    torch.manual_seed(0)
    net = Net().eval()
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 12, 12), dtype=np.float32)
    ref = rng.random((8, 1, 12, 12), dtype=np.float32)
    onnx = os.path.join(tmp, "m.onnx")
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    np.save(p("x.npy"), x)
    np.save(p("ref.npy"), ref)
    model = saliency.from_torch(net, torch.zeros(1, 1, 12, 12), path=onnx)
    check(model.input_shape() == (-1, 1, 12, 12), "dynamic batch: input shape %s" % (model.input_shape(),))
    info = model.info()
    check(info["outputs"][0]["shape"] == (1, 3) and info["opset"] >= 13 and info["cam_layers"],
          "info: %s" % {k: info[k] for k in ("outputs", "opset", "cam_layers")})

    # forward and gradient against PyTorch
    y = model.run(x)
    yt = net(torch.from_numpy(x)).detach().numpy()
    check(y.dtype == np.float32 and np.abs(y - yt).max() <= 1e-5, "run vs PyTorch: %g" % np.abs(y - yt).max())
    targets = [0, 2, 1]
    g = model.explain(x, "gradient", target=targets)
    ga = autograd(net, x, targets)
    err = np.abs(g - ga).max() / np.abs(ga).max()
    check(g.shape == x.shape and g.dtype == np.float32 and g.flags.c_contiguous and err <= 1e-5,
          "gradient vs autograd: relative error %g" % err)
    gmax = model.explain(x, "gradient")
    check(np.array_equal(gmax, model.explain(x, "gradient", target=list(yt.argmax(1)))), "target max = argmax")
    check(np.array_equal(model.gradient(x, np.eye(3, dtype=np.float32)[targets])[0], g), "Model.gradient = explain")

    # byte for byte against the CLI
    cli("run", onnx, "--input", p("x.npy"), "--out", p("y.npy"))
    check(np.load(p("y.npy")).tobytes() == y.tobytes(), "run differs from the CLI's")
    cases = [("gradient", {}, []),
             ("integrated_gradients", {"steps": 8, "baseline": "black"}, ["--data", p("ref.npy")]),
             ("gradcam", {}, []), ("lrp_epsilon", {"epsilon": 0.01}, [])]
    for method, params, extra in cases:
        args = ["explain", onnx, "--input", p("x.npy"), "--method", method, "--out", p("a.npy"), "--json", p("a.json"),
                "--target", "1"] + extra
        for k, v in params.items():
            args += ["--param", "%s=%s" % (k, v)]
        cli(*args)
        e = model.explain(x, method, target=1, details=True, data=ref if extra else None, **params)
        check(np.load(p("a.npy")).tobytes() == e.map.tobytes(), "%s: map differs from the CLI's" % method)
        same_file(p("a.json"), e.json, "%s: JSON" % method)
        if method == "gradcam":
            check(e.layer_map is not None and e.layer_map.shape[-2:] != x.shape[-2:], "gradcam: layer map")
        if method == "gradient":
            saliency.save_npy(p("mine.npy"), e.map)
            same_file(p("a.npy"), open(p("mine.npy"), "rb").read(), "save_npy")
            np.save(p("g.npy"), e.map)
            g1 = e.map
    # signal patterns: the file and PatternAttribution's map
    cli("patterns", onnx, "--data", p("ref.npy"), "--out", p("cli.pat"))
    cli("explain", onnx, "--input", p("x.npy"), "--method", "pattern_attribution", "--param",
        "patterns=" + p("cli.pat"), "--out", p("pa.npy"))
    model.estimate_patterns(ref, p("py.pat"), source=p("ref.npy"))
    same_file(p("cli.pat"), open(p("py.pat"), "rb").read(), "patterns file")
    pa = model.explain(x, "pattern_attribution", patterns=p("py.pat"))
    check(np.load(p("pa.npy")).tobytes() == pa.tobytes(), "pattern_attribution differs from the CLI's")
    # heatmaps: one sample overlaid, and a grid of maps beside their inputs
    cli("heatmap", p("g.npy"), "--input", p("x.npy"), "--sample", 1, "--overlay", "--out", p("h1.png"))
    same_file(p("h1.png"), saliency.heatmap(g1[1], x[1], overlay=True).png, "heatmap (overlay)")
    cli("heatmap", p("g.npy"), "--input", p("x.npy"), "--cmap", "diverging", "--out", p("h2.png"))
    same_file(p("h2.png"), saliency.heatmap(g1, x, cmap="diverging")._repr_png_(), "heatmap grid")
    # audits, and the report of their files
    meths = ["gradient", "gradient_x_input"]
    audits = {
        "invariance": (["--shift", "-1"], lambda: saliency.audit_invariance(model, x, -1, methods=meths, **names)),
        "randomization": (["--mode", "cascading"],
                          lambda: saliency.audit_randomization(model, x, mode="cascading", methods=meths, **names)),
        "faithfulness": (["--steps", "4"],
                         lambda: saliency.audit_faithfulness(model, x, steps=4, methods=meths, **names)),
    }
    names = {"model_name": onnx, "data_name": p("x.npy")}
    os.makedirs(p("cli_audits"))
    os.makedirs(p("py_audits"))
    for name, (args, fn) in audits.items():
        base = p("cli_audits/" + name)
        cli("audit", name, onnx, "--input", p("x.npy"), "--methods", ",".join(meths), "--json", base + ".json",
            "--csv", base + ".csv", "--figure", base + ".png", "--quiet", *args)
        r = fn()
        check(isinstance(r, dict) and r == json.load(open(base + ".json")), "%s: dict differs from the JSON" % name)
        same_file(base + ".json", r.json, name + " JSON")
        same_file(base + ".csv", r.csv, name + " CSV")
        same_file(base + ".png", r.figure().png, name + " figure")
        r.save(p("py_audits/" + name))
    calls = []
    saliency.audit_class_sensitivity(model, x, methods=["gradient"], progress=lambda *a: calls.append(a))
    check(calls and calls[-1][1] == calls[-1][2] > 0 and isinstance(calls[-1][0], str), "progress: %s" % calls[-3:])
    cli("report", "--in", p("cli_audits"), "--out", p("cli_report"))
    page = saliency.report(p("py_report"), in_dir=p("py_audits"))
    same_file(p("cli_report/index.html"), open(page, "rb").read(), "report index.html")
    # methods
    listing = subprocess.run([CLI, "methods"], capture_output=True, text=True).stdout
    table = saliency.methods()
    check(re.findall(r"^(\w+)$", listing, re.M) == list(table), "methods() names differ from saliency methods")
    check(sorted(re.findall(r"--param (\w+)=", listing)) == sorted(k for v in table.values() for k in v["params"]),
          "methods() parameters differ from saliency methods")
    check(all(d["help"] for v in table.values() for d in v["params"].values()), "a parameter without a description")
    # data builders
    items = (rng.random((20, 1, 8, 8)) > 0.6).astype(np.float32)
    labels = np.arange(20, dtype=np.int64) % 5
    np.save(p("items.npy"), items)
    np.save(p("labels.npy"), labels)
    cli("data", "composite", "--source", p("items.npy") + ":" + p("labels.npy"), "--count", 5, "--size", "24x20",
        "--items", "2-3", "--seed", 4, "--out", p("comp"))
    mine = saliency.composite(items, labels, count=5, size=(24, 20), items=2, items_max=3, seed=4)
    for k, arr in zip(("x", "y", "masks"), mine):
        check(np.load(p("comp_%s.npy" % k)).tobytes() == arr.tobytes(), "composite %s differs from the CLI's" % k)
    ds = saliency.dataset(p("items.npy") + ":" + p("labels.npy"))
    check(np.array_equal(ds["train_x"], items) and np.array_equal(ds["train_y"], labels) and ds["test_x"] is None,
          "dataset(X.npy:Y.npy)")
    cli("visualize", onnx, "--objective", "logit:2", "--steps", 6, "--seed", 3, "--out", p("v.npy"))
    v = saliency.visualize(model, "logit:2", steps=6, seed=3)
    check(np.load(p("v.npy")).tobytes() == v.images.tobytes() and v.after[0] > v.before[0] and v.png,
          "visualize differs from the CLI's (or did not raise the logit)")

    cli("invert", onnx, "--input", p("x.npy"), "--node", info["cam_layers"][-1], "--steps", 5, "--out", p("inv.npy"))
    inv = saliency.invert(model, x, info["cam_layers"][-1], steps=5)
    check(np.load(p("inv.npy")).tobytes() == inv.images.tobytes(), "invert differs from the CLI's")
    cli("visualize", onnx, "--objective", "channel:%s:1" % info["cam_layers"][0], "--steps", 4, "--robust", "--batch", 2,
        "--diversity", 0.5, "--out", p("rob.npy"))
    rob = saliency.visualize(model, "channel:%s:1" % info["cam_layers"][0], steps=4, robust=True, batch=2,
                             diversity=0.5)
    check(np.load(p("rob.npy")).tobytes() == rob.images.tobytes(), "visualize robust=True differs from the CLI's")

    conversions(model, x, gmax, net)
    errors(model, x, p)
    threads_and_gil(model, x)
    notebook(tmp)


def conversions(model, x, gmax, net):
    check(np.array_equal(model.explain(x.astype(np.float64), "gradient"), gmax), "float64 input")
    xf = np.asfortranarray(x)
    check(not xf.flags.c_contiguous and np.array_equal(model.explain(xf, "gradient"), gmax), "Fortran-ordered input")
    check(np.array_equal(model.explain(torch.from_numpy(x).requires_grad_(), "gradient"), gmax), "torch tensor input")
    xi = (x * 4).astype(np.int32)
    check(np.array_equal(model.explain(xi, "gradient"), model.explain(xi.astype(np.float32), "gradient")),
          "integer input")
    check(np.array_equal(model.explain(x[2], "gradient"), gmax[2:3]), "one sample without the batch axis")
    check(np.array_equal(model.run(x[:1].tolist()), model.run(x[:1])), "nested lists")


def errors(model, x, p):
    raises(saliency.ArgumentError, "unknown method 'no_such_method'", lambda: model.explain(x, "no_such_method"),
           "unknown method")
    check(issubclass(saliency.ArgumentError, ValueError), "ArgumentError is a ValueError")
    raises(saliency.ShapeError, "input", lambda: model.explain(x[:, :, :6], "gradient"), "wrong shape")
    raises(saliency.ShapeError, "input", lambda: model.run(np.zeros((2, 3, 12, 12), np.float32)), "wrong channels")
    raises(TypeError, "cannot be converted", lambda: model.explain(np.array([["a"]]), "gradient"), "string array")
    raises(TypeError, "complex", lambda: model.explain(x.astype(np.complex64), "gradient"), "complex array")
    raises(TypeError, "object", lambda: model.run(np.array([None, 1], dtype=object)), "object array")
    xn = x.copy()
    xn[0, 0, 3, 4] = np.nan
    raises(saliency.NumericError, "non-finite", lambda: model.explain(xn, "gradient"), "NaN input")
    raises(saliency.ArgumentError, "class", lambda: model.explain(x, "gradient", target=7), "class out of range")
    raises(TypeError, "target", lambda: model.explain(x, "gradient", target=1.5), "float target")
    raises(ValueError, "target must be", lambda: model.explain(x, "gradient", target="best"), "unknown target word")
    raises(saliency.ArgumentError, "steps", lambda: model.explain(x, "integrated_gradients", steps="many"),
           "bad parameter value")
    raises(saliency.ArgumentError, "unknown method 'nope'", lambda: saliency.audit_class_sensitivity(
        model, x, methods=["nope"]), "unknown method in an audit")
    raises(ValueError, "model takes 1 inputs", lambda: model.run(x, x), "too many inputs")
    raises(saliency.FileError, p("missing.onnx"), lambda: saliency.Model(p("missing.onnx")), "missing file")
    check(issubclass(saliency.FileError, OSError), "FileError is an OSError")
    with open(p("junk.onnx"), "wb") as f:
        f.write(b"\x08\x07junk" * 10)
    raises(saliency.SaliencyError, "junk.onnx", lambda: saliency.Model(p("junk.onnx")), "corrupt ONNX")
    raises(saliency.ShapeError, "does not fit", lambda: saliency.heatmap(x[0], x[0, :, :5]), "heatmap shapes")
    raises(ValueError, "cmap", lambda: saliency.heatmap(x[0], cmap="rainbow"), "heatmap cmap")
    raises(saliency.ArgumentError, "objective", lambda: saliency.visualize(model, "nonsense:1", steps=2),
           "bad objective")
    saliency.set_memory_budget(4096)
    raises(saliency.MemoryBudgetError, "", lambda: model.explain(x, "integrated_gradients"), "memory budget")
    saliency.set_memory_budget(0)
    check(saliency.memory_budget() == _lib.lib.sal_memory_default_budget(), "memory budget restored")
    check(model.explain(x, "gradient").shape == x.shape, "the model works after the errors")
    m2 = saliency.Model(model.path)
    m2.close()
    raises(ValueError, "closed", lambda: m2.run(x), "closed model")


def threads_and_gil(model, x):
    torch_threads = torch.get_num_threads()
    saliency.set_threads(1)
    seen = []
    t = threading.Thread(target=lambda: seen.append(saliency.threads()))
    t.start()
    t.join()
    check(saliency.threads() == 1 and seen == [1], "set_threads(1): %d here, %s in another thread" %
          (saliency.threads(), seen))
    # calls run with it (and leave PyTorch's own count as it was)
    model.explain(x, "gradient")
    check(torch.get_num_threads() == torch_threads, "PyTorch's thread count changed")
    # The main thread keeps running while another one is inside a long call: its largest pause is
    # far shorter than the call (ctypes holds no GIL during it).
    big = np.random.default_rng(2).random((256, 1, 12, 12), dtype=np.float32)
    span = {}

    def work():
        span["t0"] = time.perf_counter()
        model.explain(big, "occlusion", window=2, stride=1)
        span["t1"] = time.perf_counter()
    w = threading.Thread(target=work)
    ticks = []
    w.start()
    while w.is_alive():
        ticks.append(time.perf_counter())
        sum(range(200))
    w.join()
    inside = [t for t in ticks if span["t0"] <= t <= span["t1"]]
    dur = span["t1"] - span["t0"]
    gap = max(np.diff([span["t0"]] + inside + [span["t1"]]))
    check(dur > 0.05 and gap < dur / 2, "GIL: main thread paused %.3f s of a %.3f s call" % (gap, dur))
    saliency.set_threads(0)


NOTEBOOK = r'''
import numpy as np, torch, saliency
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                          torch.nn.Linear(4 * 10 * 10, 5)).eval()
model = saliency.from_torch(net, torch.zeros(1, 1, 10, 10))
x = torch.rand(2, 1, 10, 10)
attr = model.explain(x, method="integrated_gradients", target=3, steps=16)
h = saliency.heatmap(attr[0], x[0].numpy(), overlay=True)
png = h._repr_png_()          # what a notebook displays
h.to_png("cell.png")
print(len(png), attr.shape)
'''


def notebook(tmp):
    with open(os.path.join(tmp, "nb.py"), "w") as f:
        f.write(NOTEBOOK)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    r = subprocess.run([sys.executable, "nb.py"], cwd=tmp, capture_output=True, text=True, env=env)
    check(r.returncode == 0, "notebook script: %s" % r.stderr[-2000:])
    png = os.path.join(tmp, "cell.png")
    if r.returncode or not os.path.exists(png):
        return check(False, "notebook script wrote no PNG")
    data = open(png, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n" and r.stdout.split()[0] == str(len(data)),
          "notebook: _repr_png_ and to_png differ (%s)" % r.stdout.strip())
    img = saliency.read_png(png)
    check(img.shape[0] == 3 and img.shape[1] >= 10 * 22 and img.std() > 0.01,
          "notebook heatmap: shape %s, spread %g" % (img.shape, img.std()))


if __name__ == "__main__":
    sys.exit(main())
