#!/usr/bin/python3
"""LRP composites, user rule assignments, PatternNet and PatternAttribution of the CLI against a PyTorch
reference written here, on seeded small networks exported with torch.onnx.export (opset 13):
  BNNet   conv - relu - maxpool - conv - batchnorm - relu - avgpool - linear - relu - linear
  ResNet  conv - relu - conv - relu - residual add - strided conv - relu - linear
The reference propagates relevance layer by layer in float64 with autograd: for a linear layer with
modified weights W_t applied to modified inputs x_t (one term per (W_t, x_t) pair of the rule),
    z = sum_t layer(x_t; W_t) (+ bias),  s = coef * R / (z + eps sign z),  R_in = sum_t x_t * (d z / d x_t)^T s
with rules 0/epsilon (W, x), gamma (W + g W+, x; bias b + g b+), alpha-beta (alpha over (W+, x+), (W-, x-);
-beta over (W-, x+), (W+, x-); no bias), zb (W, x), (W+, -low), (W-, -high), w^2 (W^2, 1), flat (1, 1);
the composites' default variant uses Zennit's rules.py instead: alpha-beta / z+ with b+ in the positive and
b- in the negative group, and gamma as (W + g W+, x+), (W + g W-, x-) with b + g b+ where the output is > 0,
(W + g W-, x+), (W + g W+, x-) with b + g b- where it is < 0 (its first convolution gets zb);
ReLU passes relevance, max pooling sends it to the window's maximum, average pooling and the residual
Add share it by the z-rule, and BatchNorm is folded into the conv before it. Patterns are read from the
file `saliency patterns` writes (parsing its documented layout and checking its checksum), and PatternNet
/ PatternAttribution are computed as backward passes through a (or w * a) gated by the forward ReLU
states. Maps must match within 2e-4 of the largest reference magnitude.
Run with Debian's /usr/bin/python3 (torch); SAL_BUILD names the build folder (default build). Prints
"N passed, M failed"; exits non-zero on failure."""
import copy
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOL = 2e-4
STAB = 1e-6


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.f1 = nn.Linear(6 * 4 * 4, 16)
        self.f2 = nn.Linear(16, 5)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        h = F.avg_pool2d(F.relu(self.bn(self.c2(h))), 2)
        return self.f2(F.relu(self.f1(torch.flatten(h, 1))))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 4, 3, padding=1, stride=2)
        self.f = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        h = F.relu(self.c1(x))
        s = h + F.relu(self.c2(h))
        return self.f(torch.flatten(F.relu(self.c3(s)), 1))


def stab(z, eps):
    return z + eps * torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


def lrp_linear(fwd, W, b, x, R, rule, lo=0.0, hi=1.0):
    """Relevance into x of layer z = fwd(x, W, b) under rule (name, params...)."""
    kind = rule[0]
    pos, neg = W.clamp(min=0), W.clamp(max=0)
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    one = torch.ones_like(x)
    eps = STAB
    if kind in ("0", "epsilon"):
        groups = [([(W, x)], b, 1.0)]
        if kind == "epsilon":
            eps = rule[1]
    elif kind == "gamma" and "zennit" in rule:
        g = rule[1]
        up, un = W + g * pos, W + g * neg
        with torch.no_grad():
            y = fwd(x, W, b)
        groups = [([(up, xp), (un, xn)], b + g * b.clamp(min=0), 1.0, (y > 0).to(y)),
                  ([(un, xp), (up, xn)], b + g * b.clamp(max=0), 1.0, (y < 0).to(y))]
    elif kind == "gamma":
        g = rule[1]
        groups = [([(W + g * pos, x)], None if b is None else b + g * b.clamp(min=0), 1.0)]
    elif kind == "alpha_beta":
        a, bt = rule[1], rule[2]
        zen = "zennit" in rule
        groups = [([(pos, xp), (neg, xn)], b.clamp(min=0) if zen else None, a)]
        if bt > 0:
            groups.append(([(neg, xp), (pos, xn)], b.clamp(max=0) if zen else None, -bt))
    elif kind == "zb":
        groups = [([(W, x), (pos, -lo * one), (neg, -hi * one)], None, 1.0)]
    elif kind == "wsquare":
        groups = [([(W * W, one)], None, 1.0)]
    elif kind == "flat":
        groups = [([(torch.ones_like(W), one)], None, 1.0)]
    else:
        raise ValueError(kind)
    rin = torch.zeros_like(x)
    for terms, bias, coef, *mask in groups:
        xs, z = [], 0
        for i, (wt, xt) in enumerate(terms):
            xt = xt.detach().clone().requires_grad_(True)
            xs.append(xt)
            z = z + fwd(xt, wt, bias if i == 0 else None)
        s = coef * R / stab(z.detach(), eps)
        if mask:
            s = s * mask[0]
        gs = torch.autograd.grad(z, xs, s)
        for xt, gr in zip(xs, gs):
            rin = rin + xt.detach() * gr
    return rin


def conv_fwd(stride=1):
    return lambda x, W, b: F.conv2d(x, W, b, padding=1, stride=stride)


def lin_fwd(x, W, b):
    return F.linear(x, W, b)


def zrule(fn, inputs, R):
    """The share of each input of z = fn(*inputs), linear in them: x_k * (d z/d x_k)^T (R / z)."""
    xs = [t.detach().clone().requires_grad_(True) for t in inputs]
    z = fn(*xs)
    gs = torch.autograd.grad(z, xs, R / stab(z.detach(), STAB))
    return [x.detach() * g for x, g in zip(xs, gs)]


def route(fn, x, R):
    """Relevance routed by the gradient (max pooling: to the window's maximum)."""
    xr = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(fn(xr), xr, R)[0]


def fold_bn(conv, bn):
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * a[:, None, None, None], (conv.bias - bn.running_mean) * a + bn.bias


def seed(y, t):
    R = torch.zeros_like(y)
    R[torch.arange(len(t)), t] = y[torch.arange(len(t)), t]
    return R


def ref_bnnet(m, x, t, rules, lo, hi):
    """rules: dict c1/c2/f1/f2 -> rule."""
    W2, b2 = fold_bn(m.c2, m.bn)
    with torch.no_grad():
        z1 = m.c1(x)
        a1 = F.relu(z1)
        p1 = F.max_pool2d(a1, 2)
        z2 = F.conv2d(p1, W2, b2, padding=1)
        a2 = F.relu(z2)
        p2 = F.avg_pool2d(a2, 2)
        f = torch.flatten(p2, 1)
        z3 = m.f1(f)
        a3 = F.relu(z3)
        y = m.f2(a3)
    R = seed(y, t)
    R = lrp_linear(lin_fwd, m.f2.weight, m.f2.bias, a3, R, rules["f2"])
    R = lrp_linear(lin_fwd, m.f1.weight, m.f1.bias, f, R, rules["f1"]).reshape(p2.shape)
    R = zrule(lambda v: F.avg_pool2d(v, 2), [a2], R)[0]
    R = lrp_linear(conv_fwd(), W2, b2, p1, R, rules["c2"])
    R = route(lambda v: F.max_pool2d(v, 2), a1, R)
    return lrp_linear(conv_fwd(), m.c1.weight, m.c1.bias, x, R, rules["c1"], lo, hi)


def ref_resnet(m, x, t, rules, lo, hi):
    with torch.no_grad():
        h = F.relu(m.c1(x))
        g = F.relu(m.c2(h))
        s = h + g
        a3 = F.relu(m.c3(s))
        f = torch.flatten(a3, 1)
        y = m.f(f)
    R = seed(y, t)
    R = lrp_linear(lin_fwd, m.f.weight, m.f.bias, f, R, rules["f"]).reshape(a3.shape)
    R = lrp_linear(conv_fwd(2), m.c3.weight, m.c3.bias, s, R, rules["c3"])
    Rh, Rg = zrule(lambda a, b: a + b, [h, g], R)
    Rh = Rh + lrp_linear(conv_fwd(), m.c2.weight, m.c2.bias, h, Rg, rules["c2"])
    return lrp_linear(conv_fwd(), m.c1.weight, m.c1.bias, x, Rh, rules["c1"], lo, hi)


EPS = ("epsilon", 1e-6)
ZPLUS = ("alpha_beta", 1.0, 0.0)
A2B1 = ("alpha_beta", 2.0, 1.0)
GAMMA = ("gamma", 0.25)
ZPLUS_Z, A2B1_Z, GAMMA_Z = ZPLUS + ("zennit",), A2B1 + ("zennit",), GAMMA + ("zennit",)
MONTAVON = ["--param", "variant=montavon"]
ZB = ("zb",)


def composites(convs, denses, first):
    """(method, CLI options, per-layer rules) for the composites and a user assignment."""
    def assign(conv_rule, dense_rule, first_rule=None):
        r = {c: conv_rule for c in convs}
        r.update({d: dense_rule for d in denses})
        if first_rule:
            r[first] = first_rule
        return r
    user = assign(("flat",), ("epsilon", 0.05))
    user["c2"] = ("gamma", 0.1)
    return [
        ("lrp_epsilon_plus", [], assign(ZPLUS_Z, EPS)),
        ("lrp_epsilon_gamma_box", [], assign(GAMMA_Z, EPS, ZB)),
        ("lrp_epsilon_alpha2_beta1", [], assign(A2B1_Z, EPS)),
        ("lrp_epsilon_plus", MONTAVON, assign(ZPLUS, EPS)),
        ("lrp_epsilon_gamma_box", MONTAVON, assign(GAMMA, EPS, ZB)),
        ("lrp_epsilon_alpha2_beta1", MONTAVON, assign(A2B1, EPS)),
        ("lrp_0", ["--rule", "/c2/*=gamma:0.1", "--rule", "Conv=flat", "--rule", "*=epsilon:0.05"], user),
        ("deep_taylor", [], assign(ZPLUS, ZPLUS, ZB)),
    ]


# ---- the patterns file ----

FNV_OFFSET, FNV_PRIME, MASK = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def fnv(h, b):
    """FNV-1a over 64-bit little-endian words as pattern.c hashes each piece it writes: a piece of 64
    bytes or more in four interleaved lanes (seeded h, h^1, h^2, h^3) folded into h, then the
    remaining words and bytes."""
    pos = 0
    if len(b) >= 64:
        lanes = [h, h ^ 1, h ^ 2, h ^ 3]
        n = len(b) // 32 * 32
        for k, (w,) in enumerate(struct.iter_unpack("<Q", b[:n])):
            lanes[k % 4] = ((lanes[k % 4] ^ w) * FNV_PRIME) & MASK
        for v in lanes:
            h = ((h ^ v) * FNV_PRIME) & MASK
        pos = n
    n = pos + (len(b) - pos) // 8 * 8
    for (w,) in struct.iter_unpack("<Q", b[pos:n]):
        h = ((h ^ w) * FNV_PRIME) & MASK
    for c in b[n:]:
        h = ((h ^ c) * FNV_PRIME) & MASK
    return h


def read_patterns(path):
    data = open(path, "rb").read()
    pos, h = 0, FNV_OFFSET

    def take(n):
        nonlocal pos, h
        b = data[pos:pos + n]
        assert len(b) == n, "truncated"
        pos += n
        h = fnv(h, b)
        return b

    assert take(8) == b"SALPATTN"
    version, = struct.unpack("<I", take(4))
    take(4)
    mhash, = struct.unpack("<Q", take(8))
    samples, = struct.unpack("<q", take(8))
    src = take(struct.unpack("<I", take(4))[0]).decode()
    count, = struct.unpack("<I", take(4))
    pats = {}
    for _ in range(count):
        name = take(struct.unpack("<I", take(4))[0]).decode()
        take(struct.unpack("<I", take(4))[0])
        nd, = struct.unpack("<I", take(4))
        dims = struct.unpack("<%dq" % nd, take(8 * nd))
        take(16)
        n = int(np.prod(dims))
        lin = np.frombuffer(take(4 * n), dtype="<f4").reshape(dims)
        relu = np.frombuffer(take(4 * n), dtype="<f4").reshape(dims)
        pats[name] = (lin, relu)
    want = h
    got, = struct.unpack("<Q", data[pos:pos + 8])
    assert pos + 8 == len(data), "junk after the checksum"
    return dict(version=version, hash=mhash, samples=samples, source=src, patterns=pats, checksum_ok=got == want)


def ref_pattern_bnnet(m, x, t, pats, attribution):
    """PatternNet / PatternAttribution of BNNet: the backward pass through a (or w * a), gated by the
    forward ReLU states and max-pooling switches of the (BatchNorm-folded) network."""
    W2, b2 = fold_bn(m.c2, m.bn)
    weights = {"/c1/Conv": m.c1.weight, "/c2/Conv": W2, "/f1/Gemm": m.f1.weight, "/f2/Gemm": m.f2.weight}
    eff = {}
    for k, w in weights.items():  # pattern=auto: two-component where a ReLU follows, linear at the output
        a = torch.from_numpy(pats[k][0 if k == "/f2/Gemm" else 1].astype(np.float64))
        eff[k] = w.detach() * a if attribution else a
    with torch.no_grad():
        z1 = m.c1(x)
        a1 = F.relu(z1)
        p1 = F.max_pool2d(a1, 2)
        z2 = F.conv2d(p1, W2, b2, padding=1)
        a2 = F.relu(z2)
        p2 = F.avg_pool2d(a2, 2)
        z3 = m.f1(torch.flatten(p2, 1))
        y = m.f2(F.relu(z3))
    r = seed(y, t)
    r = (r @ eff["/f2/Gemm"]) * (z3 > 0)
    r = (r @ eff["/f1/Gemm"]).reshape(p2.shape)
    r = route(lambda v: F.avg_pool2d(v, 2), a2, r) * (z2 > 0)
    r = F.conv_transpose2d(r, eff["/c2/Conv"], padding=1)
    r = route(lambda v: F.max_pool2d(v, 2), a1, r) * (z1 > 0)
    return F.conv_transpose2d(r, eff["/c1/Conv"], padding=1)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return r.returncode, r.stdout.strip()


def main():
    build = os.environ.get("SAL_BUILD", "build")
    build = build if os.path.isabs(build) else os.path.join(ROOT, build)
    exe = os.path.join(build, "saliency")
    if not os.access(exe, os.X_OK):
        print("%s not found: build it first" % exe)
        print("0 passed, 1 failed")
        return 1
    torch.set_num_threads(1)
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        passed += bool(ok)
        failed += not ok
        print("%s %s" % ("ok  " if ok else "FAIL", what))

    def compare(got, want, what):
        scale = float(np.abs(want).max())
        err = float(np.abs(got - want).max()) / scale if got.shape == want.shape else float("inf")
        check(err <= TOL and scale > 0, "%s: worst error %.2g of the largest magnitude %.3g" % (what, err, scale))

    tmp = tempfile.mkdtemp(prefix="sal_lrp_torch.")
    try:
        for name, cls, shape, ref, convs, denses in (
                ("resnet", ResNet, (1, 16, 16), ref_resnet, ["c1", "c2", "c3"], ["f"]),
                ("bnnet", BNNet, (1, 16, 16), ref_bnnet, ["c1", "c2"], ["f1", "f2"])):
            torch.manual_seed(3)
            model = cls().eval()
            if name == "bnnet":  # statistics far from the identity, so that folding matters
                with torch.no_grad():
                    model.bn.running_mean.uniform_(-0.3, 0.3)
                    model.bn.running_var.uniform_(0.5, 2.0)
                    model.bn.weight.uniform_(0.5, 1.5)
                    model.bn.bias.uniform_(-0.2, 0.2)
            x = torch.rand(4, *shape)
            path = os.path.join(tmp, name + ".onnx")
            # PRESERVE keeps BatchNormalization as a node (the exporter otherwise fuses it into the conv)
            torch.onnx.export(model, x, path, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13,
                              training=torch.onnx.TrainingMode.PRESERVE)
            xp = os.path.join(tmp, name + "_x.npy")
            np.save(xp, x.numpy())
            m64, x64 = copy.deepcopy(model).double(), x.double()
            with torch.no_grad():
                y64 = m64(x64)
                t = y64.argmax(1)
                yt = y64[torch.arange(len(t)), t].numpy()
            targets = ",".join(str(int(v)) for v in t)
            for method, opts, rules in composites(convs, denses, "c1"):
                want = ref(m64, x64, t, rules, 0.0, 1.0).numpy()
                out = os.path.join(tmp, "%s_%s.npy" % (name, method))
                rc, msg = run([exe, "explain", path, "--input", xp, "--method", method, "--target", targets,
                               "--range", "0,1", "--out", out, "--json", out + ".json"] + opts)
                if rc:
                    check(False, "%s %s: the CLI failed: %s" % (name, method, msg))
                    continue
                compare(np.load(out), want, "%s %s%s" % (name, method, " " + " ".join(opts) if opts else ""))
                with open(out + ".json") as f:
                    info = json.load(f)
                if name == "bnnet":
                    check(info["checks"].get("batchnorm_folded") == 1, "%s %s: one BatchNorm folded" % (name, method))
                # the reported conservation is the reference's sum(map) / explained output (units that only
                # their bias switches on lose their relevance under z+, so it is not 1 on random nets)
                ratio = float(np.mean(want.reshape(len(t), -1).sum(1) / yt))
                got = info["checks"]["relevance_conservation"]
                check(abs(got - ratio) < 1e-3 * max(1, abs(ratio)),
                      "%s %s: relevance_conservation %.6f, the reference's %.6f" % (name, method, got, ratio))

            if name != "bnnet":
                continue
            # patterns: estimate with the CLI, read the file here, compare both pattern methods
            data = os.path.join(tmp, "data.npy")
            np.save(data, torch.rand(300, *shape).double().numpy())  # float64: converted while streaming
            pat = os.path.join(tmp, "bnnet.pat")
            rc, msg = run([exe, "patterns", path, "--data", data, "--out", pat, "--batch", "64", "--quiet"])
            check(rc == 0, "saliency patterns: %s" % (msg.splitlines()[0] if msg else ""))
            if rc:
                continue
            pf = read_patterns(pat)
            check(pf["checksum_ok"] and pf["version"] == 1 and pf["samples"] == 300 and "data.npy" in pf["source"],
                  "patterns file: version %d, %d samples, source '%s', checksum %s"
                  % (pf["version"], pf["samples"], pf["source"], "ok" if pf["checksum_ok"] else "BAD"))
            check(sorted(pf["patterns"]) == ["/c1/Conv", "/c2/Conv", "/f1/Gemm", "/f2/Gemm"],
                  "patterns for %s" % sorted(pf["patterns"]))
            rc, msg = run([exe, "patterns", "--info", pat])
            check(rc == 0 and "%016x" % pf["hash"] in msg, "saliency patterns --info shows the model hash")
            for method, attribution in (("patternnet", False), ("pattern_attribution", True)):
                want = ref_pattern_bnnet(m64, x64, t, pf["patterns"], attribution).numpy()
                out = os.path.join(tmp, "bnnet_%s.npy" % method)
                rc, msg = run([exe, "explain", path, "--input", xp, "--method", method, "--target", targets,
                               "--param", "patterns=" + pat, "--out", out])
                if rc:
                    check(False, "bnnet %s: the CLI failed: %s" % (method, msg))
                    continue
                compare(np.load(out), want, "bnnet %s" % method)
            # another model's patterns are refused
            other = os.path.join(tmp, "resnet.onnx")
            rc, msg = run([exe, "explain", other, "--input", os.path.join(tmp, "resnet_x.npy"), "--method",
                           "patternnet", "--param", "patterns=" + pat, "--out", os.path.join(tmp, "o.npy")])
            check(rc != 0 and "another model" in msg, "patterns of another model are refused: %s" % msg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
