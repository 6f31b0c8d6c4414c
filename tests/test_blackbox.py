#!/usr/bin/python3
"""The black-box methods end to end, against independent references:
  - the library's Sobol' points equal SciPy's Sobol(scramble=False) in 1024 dimensions;
  - `saliency explain --method lime|kernel_shap|rise|sobol` on PyTorch-exported models (the ResNet
    of tests/torch/export_models.py on (N,3,16,16), the 1-D sequence CNN on (N,4,40)): maps shaped
    as the input, finite, the JSON's method and checks; KernelSHAP over a --segments file sums, per
    sample, to f(x) - f(0) as PyTorch computes it;
  - the same on a model of the zoo, torchvision's SqueezeNet 1.1 (random weights, 64 x 64);
  - --fallback: LRP on an ONNX graph with Exp (built with onnx.helper) gives way to kernel_shap,
    said on stderr and in the JSON.
Prints one line per check and "N passed, M failed"; exits non-zero on any failure."""
import json
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "torch"))

passed = failed = 0


def check(ok, what):
    global passed, failed
    passed += bool(ok)
    failed += not ok
    print("%s %s" % ("ok  " if ok else "FAIL", what))


def main():
    import numpy as np
    build = os.environ.get("SAL_BUILD", "build")
    build = build if os.path.isabs(build) else os.path.join(ROOT, build)
    exe, tool = os.path.join(build, "saliency"), os.path.join(build, "tools", "sobol_points")

    # ---- Sobol' points ----
    from scipy.stats import qmc
    for d, n in ((3, 16), (1024, 128)):
        out = subprocess.run([tool, str(d), str(n)], stdout=subprocess.PIPE, universal_newlines=True, check=True)
        ours = np.array([[float(v) for v in line.split()] for line in out.stdout.splitlines()])
        ref = qmc.Sobol(d, scramble=False).random(n)
        check(ours.shape == ref.shape and np.abs(ours - ref).max() == 0,
              "Sobol' points in %d dimensions, %d points, equal SciPy's" % (d, n))

    import torch
    import export_models
    tmp = tempfile.mkdtemp(prefix="sal_blackbox.")
    atexit.register(shutil.rmtree, tmp, True)  # nothing left in /tmp, whatever fails

    def explain(model, x, method, *args):
        out, js = os.path.join(tmp, "a.npy"), os.path.join(tmp, "a.json")
        for f in (out, js):
            if os.path.exists(f):
                os.remove(f)
        r = subprocess.run([exe, "explain", model, "--input", x, "--method", method, "--out", out, "--json", js] +
                           list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            print("    " + r.stderr.strip())
            return None, None, r.stderr
        return np.load(out), json.load(open(js)), r.stderr

    params = {"lime": ["--param", "samples=300"], "kernel_shap": ["--param", "samples=300"],
              "rise": ["--param", "masks=300"], "sobol": ["--param", "designs=16"]}
    for name in ("resnet", "seq"):
        export_models.export(name, tmp)
        model = os.path.join(tmp, name, "model.onnx")
        x = np.load(os.path.join(tmp, name, "x.npy"))[:2]
        xp = os.path.join(tmp, name + "_x.npy")
        np.save(xp, x)
        for method, extra in params.items():
            a, j, _ = explain(model, xp, method, *extra)
            ok = a is not None and a.shape == x.shape and np.isfinite(a).all() and np.abs(a).max() > 0
            ok = ok and j["method"] == method and j["checks"]["all_finite"]
            if ok and method == "lime":
                ok = 0 < j["checks"]["r2_min"] <= 1
            check(ok, "%s on %s %s: map shaped as the input, finite, not all 0, JSON" % (method, name, x.shape))

    # KernelSHAP on the ResNet over 8 x 4 patches given as a file: per sample, the segment values
    # sum to f_t(x) - f_t(0) as PyTorch computes it (exact enumeration of the 8 segments) on the
    # module export_models built (rebuilt here from the same seeds)
    seed = 1234 + sum(map(ord, "resnet"))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = export_models.MODELS["resnet"][0]()
    export_models.randomize_bn(net, gen)
    net.eval()
    x = np.load(os.path.join(tmp, "resnet_x.npy"))
    lab = (np.arange(16)[:, None] // 8) * 4 + np.arange(16)[None, :] // 4
    np.save(os.path.join(tmp, "labels.npy"), lab.astype(np.int64))
    a, j, _ = explain(os.path.join(tmp, "resnet", "model.onnx"), os.path.join(tmp, "resnet_x.npy"), "kernel_shap",
                      "--segments", os.path.join(tmp, "labels.npy"), "--target", "3")
    if a is not None:
        with torch.no_grad():
            fx = net(torch.from_numpy(x))[:, 3].double().numpy()
            f0 = net(torch.zeros_like(torch.from_numpy(x)))[:, 3].double().numpy()
        seg = np.array([[a[i, 0][lab == s][0] for s in range(8)] for i in range(2)])
        same = all(np.all(a[i, c][lab == s] == seg[i, s]) for i in range(2) for c in range(3) for s in range(8))
        err = np.abs(seg.sum(1) - (fx - f0)).max()
        check(same and j["checks"]["exact_samples"] == 2 and err < 1e-4 * max(1, np.abs(fx - f0).max()),
              "KernelSHAP over a --segments file: one value per segment, summing to PyTorch's f(x) - f(0) "
              "(off by %.2g)" % err)
    else:
        check(False, "KernelSHAP over a --segments file on the ResNet")

    # ---- a model of the zoo: torchvision's SqueezeNet 1.1 (random weights, 10 classes, 64 x 64) ----
    # Every method on it; KernelSHAP from sampled coalitions (exact=false) over 8 patches given as a
    # file still sums, per sample, to f_t(x) - f_t(0) as PyTorch computes it.
    try:
        import torchvision
    except ImportError:
        torchvision = None
        print("skip SqueezeNet 1.1: python3-torchvision is not installed")
    if torchvision is not None:
        torch.manual_seed(7)
        net = torchvision.models.squeezenet1_1(weights=None, num_classes=10).eval()
        g = torch.Generator().manual_seed(7)
        xs = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 72, 72, generator=g), 9, 1)  # smooth: regions for SLIC
        zp, zx = os.path.join(tmp, "squeezenet.onnx"), os.path.join(tmp, "squeezenet_x.npy")
        torch.onnx.export(net, xs[:1], zp, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
        np.save(zx, xs.numpy())
        for method, extra in params.items():
            a, j, _ = explain(zp, zx, method, *extra)
            ok = a is not None and a.shape == tuple(xs.shape) and np.isfinite(a).all() and np.abs(a).max() > 0
            ok = ok and j["method"] == method and j["checks"]["all_finite"]
            check(ok, "%s on torchvision's SqueezeNet 1.1 (2, 3, 64, 64): map shaped as the input, finite, not all 0"
                  % method)
        lab = (np.arange(64)[:, None] // 32) * 4 + np.arange(64)[None, :] // 16
        np.save(os.path.join(tmp, "labels64.npy"), lab.astype(np.int64))
        a, j, _ = explain(zp, zx, "kernel_shap", "--segments", os.path.join(tmp, "labels64.npy"), "--target", "3",
                          "--param", "exact=false", "--param", "samples=64")
        if a is not None:
            with torch.no_grad():
                fx, f0 = net(xs)[:, 3].double().numpy(), net(torch.zeros_like(xs))[:, 3].double().numpy()
            seg = np.array([[a[i, 0][lab == s][0] for s in range(8)] for i in range(2)])
            err = np.abs(seg.sum(1) - (fx - f0)).max()
            check(j["checks"]["exact_samples"] == 0 and err < 1e-4 * max(1, np.abs(fx - f0).max()),
                  "KernelSHAP (sampled) on SqueezeNet sums to PyTorch's f(x) - f(0) (off by %.2g)" % err)
        else:
            check(False, "KernelSHAP over a --segments file on SqueezeNet")

    # ---- --fallback on a graph with Exp ----
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(0, 0.4, (8, 6)).astype(np.float32), rng.normal(0, 0.4, (3, 8)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1), helper.make_node("Exp", ["h"], ["e"]),
         helper.make_node("Gemm", ["e", "w2"], ["y"], transB=1)], "exp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    mp, xp = os.path.join(tmp, "exp.onnx"), os.path.join(tmp, "exp_x.npy")
    onnx.save(m, mp)
    np.save(xp, rng.normal(0, 1, (2, 6)).astype(np.float32))
    a, j, err = explain(mp, xp, "lrp_epsilon")
    check(a is None and "no rule for Exp" in err, "lrp_epsilon alone fails on Exp")
    a, j, err = explain(mp, xp, "lrp_epsilon", "--fallback", "kernel_shap", "--param", "fallback.exact=true")
    ok = a is not None and j["method"] == "kernel_shap" and j["fallback"]["replaced"] == "lrp_epsilon"
    ok = ok and "no rule for Exp" in j["fallback"]["reason"] and "explained with kernel_shap instead" in err
    ok = ok and j["params"]["exact"] == "true" and j["checks"]["exact_samples"] == 2
    check(ok, "--fallback kernel_shap explains instead, says so on stderr and in the JSON")
    if ok:  # and its map is the exact Shapley values of the features against a zero baseline
        from itertools import combinations
        from math import factorial
        xs = np.load(xp)
        f = lambda v: (np.exp(v @ w1.T) @ w2.T)
        t = j["targets"]
        worst = 0
        for i in range(2):
            phi = np.zeros(6)
            for k in range(6):
                others = [q for q in range(6) if q != k]
                for s in range(6):
                    for S in combinations(others, s):
                        z = np.zeros(6, np.float32)
                        z[list(S)] = xs[i, list(S)]
                        z2 = z.copy()
                        z2[k] = xs[i, k]
                        wgt = factorial(s) * factorial(5 - s) / factorial(6)
                        phi[k] += wgt * (f(z2)[t[i]] - f(z)[t[i]])
            worst = max(worst, np.abs(a[i] - phi).max() / max(1e-6, np.abs(phi).max()))
        check(worst < 1e-4, "the fallback's values are the Shapley values computed in NumPy (off by %.2g)" % worst)

    r = subprocess.run([exe, "explain", mp, "--input", xp, "--method", "lrp_epsilon", "--out", os.path.join(tmp, "n.npy"),
                        "--fallback", "gradient"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    check(r.returncode == 1 and "needs forward passes only" in r.stderr, "--fallback gradient is refused")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
