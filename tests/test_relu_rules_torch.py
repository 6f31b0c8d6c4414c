#!/usr/bin/python3
"""Guided backprop, deconvnet and DeepLIFT (Rescale) of the CLI against PyTorch 1.13 computing the same
definitions with backward hooks on nn.ReLU:
  guided backprop   grad_in = relu'(x) * grad_out, kept where positive  -> grad_in.clamp(min=0)
  deconvnet         grad_in = grad_out.clamp(min=0), whatever the forward mask
  deeplift          grad_in = grad_out * (y - y0) / (x - x0), the gradient where |x - x0| < 1e-7;
                    attribution = d/dx * (x - x0) with x0 = 0
Seeded small CNNs are exported with torch.onnx.export (opset 13, dynamic batch); the CLI's maps must
match within 1e-4 of the largest reference magnitude. Run with Debian's /usr/bin/python3 (torch);
SAL_BUILD names the build folder (default build). Prints "N passed, M failed"; exits non-zero on failure."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = 3
TOL = 1e-4


class PoolNet(nn.Module):
    """Max pooling before the ReLU (the same function as after it), so no window of zeros ties."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.p1 = nn.MaxPool2d(2)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(4, 6, 3, padding=1)
        self.r2 = nn.ReLU()
        self.flat = nn.Flatten()
        self.f1 = nn.Linear(6 * 4 * 4, 16)
        self.r3 = nn.ReLU()
        self.f2 = nn.Linear(16, 5)

    def forward(self, x):
        h = self.r1(self.p1(self.c1(x)))
        h = self.flat(self.r2(self.c2(h)))
        return self.f2(self.r3(self.f1(h)))


class StrideNet(nn.Module):
    """Strided convolution instead of pooling: every node has a Rescale or linear rule."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.r2 = nn.ReLU()
        self.flat = nn.Flatten()
        self.f1 = nn.Linear(6 * 4 * 4, 16)
        self.r3 = nn.ReLU()
        self.f2 = nn.Linear(16, 5)

    def forward(self, x):
        h = self.r2(self.c2(self.r1(self.c1(x))))
        return self.f2(self.r3(self.f1(self.flat(h))))


def relus(model):
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


def input_grad(model, x):
    x = x.clone().requires_grad_(True)
    model(x)[:, TARGET].sum().backward()
    return x.grad.detach().numpy()


def guided(model, x):
    hs = [m.register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0),)) for m in relus(model)]
    try:
        return input_grad(model, x)
    finally:
        for h in hs:
            h.remove()


def deconvnet(model, x):
    hs = [m.register_full_backward_hook(lambda m, gi, go: (go[0].clamp(min=0),)) for m in relus(model)]
    try:
        return input_grad(model, x)
    finally:
        for h in hs:
            h.remove()


def deeplift(model, x, x0):
    """Rescale at every ReLU from the activations of a reference pass and of the input pass."""
    seen = {}
    record = lambda m, inp, out: seen.__setitem__(m, (inp[0].detach(), out.detach()))  # noqa: E731
    hs = [m.register_forward_hook(record) for m in relus(model)]
    with torch.no_grad():
        model(x0)
    ref = dict(seen)

    def rescale(m, gi, go):
        (a, y), (a0, y0) = seen[m], ref[m]
        d = a - a0
        mult = torch.where(d.abs() >= 1e-7, (y - y0) / torch.where(d == 0, torch.ones_like(d), d), (a > 0).float())
        return (go[0] * mult,)

    hs += [m.register_full_backward_hook(rescale) for m in relus(model)]
    try:
        g = input_grad(model, x)
    finally:
        for h in hs:
            h.remove()
    return g * (x - x0).numpy()


def cli(build, model, x, method, out, params=()):
    cmd = [os.path.join(build, "saliency"), "explain", model, "--input", x, "--method", method,
           "--target", str(TARGET), "--out", out, "--json", out + ".json"]
    for p in params:
        cmd += ["--param", p]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        return None, r.stdout.strip()
    with open(out + ".json") as f:
        return np.load(out), json.load(f)


def main():
    build = os.environ.get("SAL_BUILD", "build")
    build = build if os.path.isabs(build) else os.path.join(ROOT, build)
    if not os.access(os.path.join(build, "saliency"), os.X_OK):
        print("%s/saliency not found: build it first" % build)
        print("0 passed, 1 failed")
        return 1
    torch.set_num_threads(1)
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        passed += bool(ok)
        failed += not ok
        print("%s %s" % ("ok  " if ok else "FAIL", what))

    tmp = tempfile.mkdtemp(prefix="sal_relu_rules.")
    try:
        for name, cls in (("poolnet", PoolNet), ("stridenet", StrideNet)):
            torch.manual_seed(7)
            model = cls().eval()
            x = torch.randn(3, 1, 8, 8)
            path = os.path.join(tmp, name + ".onnx")
            torch.onnx.export(model, x, path, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
            xp = os.path.join(tmp, name + "_x.npy")
            np.save(xp, x.numpy())
            refs = {"guided_backprop": guided(model, x), "deconvnet": deconvnet(model, x)}
            if name == "stridenet":
                refs["deeplift"] = deeplift(model, x, torch.zeros_like(x))
                with torch.no_grad():
                    df = (model(x) - model(torch.zeros_like(x)))[:, TARGET].numpy()
                comp = np.abs(refs["deeplift"].reshape(3, -1).sum(1) - df).max()
                check(comp < 1e-4 * max(1, np.abs(df).max()),
                      "%s: the PyTorch DeepLIFT reference is complete (%.2g)" % (name, comp))
            # the comparison can tell the methods apart
            g = refs["guided_backprop"]
            sep = np.abs(g - refs["deconvnet"]).max() / np.abs(g).max()
            check(sep > 10 * TOL, "%s: guided backprop and deconvnet differ by %.2g of their scale" % (name, sep))
            for method, want in refs.items():
                got, info = cli(build, path, xp, method, os.path.join(tmp, "%s_%s.npy" % (name, method)))
                if got is None:
                    check(False, "%s %s: the CLI failed: %s" % (name, method, info))
                    continue
                scale = np.abs(want).max()
                err = np.abs(got - want).max() / scale if got.shape == want.shape else float("inf")
                extra = ""
                if method == "deeplift":
                    extra = ", completeness_delta %.2g" % info["checks"]["completeness_delta"]
                check(err <= TOL and scale > 0,
                      "%s %s: worst error %.2g of the largest magnitude %.3g%s" % (name, method, err, scale, extra))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
