#!/usr/bin/python3
"""The model zoo: torchvision's architectures and a few hand-built dense models, exported to ONNX
with seeded random weights, with PyTorch's outputs and input gradients as references (computed in
float64 on the float32 weights and inputs).

For each model it writes, into OUT/<name>/:
  model.onnx   torch.onnx.export in eval mode, the opset of the table (13 unless the name says
               _op9/_op11/_op17), dynamic batch axis on the input and the output
  x.npy        a batch of 2 or 3 inputs, float32, ImageNet-normalized scale
  logits.npy   PyTorch's output for x: (N, classes), or (N, C, H, W) for dense models
  targets.npy  one class (or, for dense models, one output channel) per sample, int64
  grad.npy     input gradient from autograd, float32:
                 classification: d(sum_i out[i, targets[i]]) / dx
                 dense outputs:  d(sum_i sum_{h,w} out[i, targets[i], h, w]) / dx
               (tests/tools/torch_compare.c seeds the same: a one-hot row, or a one-hot channel
               over every position)
  meta.json    what was exported: opset, input shape, kind, node and op counts, parameters, the
               near-ties of the reference pass (see below), how far PyTorch's own float32
               output and gradient are from the float64 reference (torch_f32_*_rel), export
               time, and the hash of this script; or export_error when PyTorch cannot export it.

Usage: export_zoo.py OUT [--force] [NAME ...]   (default: every model; --list prints the table)
A model whose meta.json carries this script's hash (of its code: docstrings and comments aside)
is not exported again unless --force.

Near-ties: where the two largest inputs of a max-pool window differ by less than TIE_REL of the
largest magnitude in that tensor, or an activation's input lies that close to a kink (ReLU at 0,
ReLU6 and Hardtanh at their bounds, Hardswish/Hardsigmoid at +-3), a float32 computation can
fall on the other side and send the gradient elsewhere (a deep float32 network computes its
activations to a few 1e-5 of their scale; PyTorch's own float32 gradient of mobilenet_v2 moved
by 7 % of its scale between one and two threads). The reference pass counts them
(`near_ties` for max-pools, `near_kinks` for activations); the comparison then accepts a
per-sample correlation >= 0.999 when the element-wise gradient check fails, and says so.
Exact ties are not counted: they are copies of one value (an earlier overlapping max-pool or a
nearest upsampling hands the same element to neighbouring positions), and either choice sends the
gradient to the same source.

Run with Debian's python3 (torch 1.13, torchvision 0.14).
"""
import ast
import copy
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TIE_REL = 1e-4


def code_hash():
    """Hash of this file's syntax tree without docstrings, so editing the text leaves the cache."""
    tree = ast.parse(open(os.path.abspath(__file__)).read())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body[0] = ast.Pass()
    return hashlib.sha1(ast.dump(tree).encode()).hexdigest()[:12]


SCRIPT_HASH = code_hash()


# ---- hand-built dense models ----

def conv_bn(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """A two-level U-Net: MaxPool down, ConvTranspose up on one level and F.interpolate on the
    other (bilinear, or nearest for opset 9, whose Upsample has no half-pixel mode), skip
    connections by Concat, 3 output channels per pixel."""

    def __init__(self, mode="bilinear"):
        super().__init__()
        self.mode = mode
        self.e1 = nn.Sequential(conv_bn(3, 8), conv_bn(8, 8))
        self.e2 = nn.Sequential(conv_bn(8, 16), conv_bn(16, 16))
        self.mid = nn.Sequential(conv_bn(16, 32), conv_bn(32, 32))
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.d2 = conv_bn(32, 16)
        self.red1 = nn.Conv2d(16, 8, 1)
        self.d1 = conv_bn(16, 8)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.mid(F.max_pool2d(b, 2))
        u2 = self.d2(torch.cat([self.up2(c), b], 1))
        up = F.interpolate(u2, scale_factor=2.0, mode=self.mode,
                           **({} if self.mode == "nearest" else {"align_corners": False}))
        u1 = self.d1(torch.cat([self.red1(up), a], 1))
        return self.head(u1)


class DBHead(nn.Module):
    """A DB-style text detector (Liao et al. 2020) in small: strided conv stages at 1/4..1/32, an
    FPN with nearest upsampling (Resize by scale 2, 4, 8) and Add, the fused map, and the
    probability and threshold branches, each Conv-BN-ReLU then two ConvTranspose (one with
    padding and output_padding) and a Sigmoid; the approximate binary map is
    sigmoid(50 (P - T)). Output (N, 3, H, W): probability, threshold, binary."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 8, 3, 2), conv_bn(8, 16, 3, 2))  # 1/4
        self.c3 = conv_bn(16, 24, 3, 2)  # 1/8
        self.c4 = conv_bn(24, 32, 3, 2)  # 1/16
        self.c5 = conv_bn(32, 48, 3, 2)  # 1/32
        self.lat = nn.ModuleList([nn.Conv2d(c, 16, 1, bias=False) for c in (16, 24, 32, 48)])
        self.smooth = nn.ModuleList([nn.Conv2d(16, 8, 3, padding=1, bias=False) for _ in range(4)])

        def branch():
            return nn.Sequential(
                nn.Conv2d(32, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                nn.ConvTranspose2d(8, 1, 2, stride=2), nn.Sigmoid())

        self.prob = branch()
        self.thresh = branch()

    def forward(self, x):
        c2 = self.stem(x)
        c3 = self.c3(c2)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p5 = self.lat[3](c5)
        p4 = self.lat[2](c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lat[1](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        p2 = self.lat[0](c2) + F.interpolate(p3, scale_factor=2.0, mode="nearest")
        fused = torch.cat([
            self.smooth[0](p2),
            F.interpolate(self.smooth[1](p3), scale_factor=2.0, mode="nearest"),
            F.interpolate(self.smooth[2](p4), scale_factor=4.0, mode="nearest"),
            F.interpolate(self.smooth[3](p5), scale_factor=8.0, mode="nearest")], 1)
        p = self.prob(fused)
        t = self.thresh(fused)
        return torch.cat([p, t, torch.sigmoid(50.0 * (p - t))], 1)


class HeatmapHead(nn.Module):
    """A CenterNet-style heat-map head without upsampling: (N, 4, H/4, W/4) from Conv, BatchNorm
    (kept as a node: a 1x1 conv on a residual sum is not fused), ReLU, MaxPool and a strided conv."""

    def __init__(self):
        super().__init__()
        self.a = conv_bn(3, 8)
        self.b = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.skip = nn.Conv2d(8, 16, 1, 2)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        a = F.max_pool2d(self.a(x), 2)
        return self.head(F.relu(self.bn(self.b(a) + self.skip(a))))


class DenseOut(nn.Module):
    """torchvision's segmentation models return a dict; export its 'out' entry."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


# ---- the table ----

def tv(name, **kw):
    def build():
        import torchvision.models as M
        return M.get_model(name, weights=None, **kw)
    return build


def tv_seg(name, **kw):
    def build():
        import torchvision.models.segmentation as S
        return DenseOut(getattr(S, name)(weights=None, weights_backbone=None, aux_loss=False, **kw))
    return build


def vit_small_image(size):
    """vit_b_16's width and depth (12 layers, 12 heads, 768 wide, MLP 3072), patch 16, on a small image."""
    def build():
        from torchvision.models import VisionTransformer
        return VisionTransformer(image_size=size, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                                 mlp_dim=3072)
    return build


def vit_tiny():
    from torchvision.models import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                             num_classes=10)


def swin_tiny():
    from torchvision.models import SwinTransformer
    return SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                           num_classes=10, stochastic_depth_prob=0.0)


def maxvit_small_image():
    """maxvit_t's widths and depths with partition 2, so 64x64 inputs fit (its 7 needs 224)."""
    from torchvision.models import MaxVit
    return MaxVit(input_size=(64, 64), stem_channels=64, partition_size=2, block_channels=[64, 128, 256, 512],
                  block_layers=[2, 2, 5, 2], head_dim=32, stochastic_depth_prob=0.0)


def spec(build, size=64, opset=13, dense=False, batch=3, note=""):
    return {"build": build, "size": size, "opset": opset, "dense": dense, "batch": batch, "note": note}


# Every torchvision 0.14 classification family, the larger variants where they add something
# (bottleneck blocks, grouped convs, SE blocks, v2 blocks); the rest differ only in width and
# depth. Sizes: 64x64 unless a fixed pooling geometry needs more (AlexNet and VGG end in a 6x6 or
# 7x7 AdaptiveAvgPool whose exported form needs the map to be a multiple of it; Inception v3 needs 75).
MODELS = {
    # classification, opset 13
    "alexnet": spec(tv("alexnet"), 224, batch=2),
    "vgg11_bn": spec(tv("vgg11_bn"), 224, batch=2),
    "resnet18": spec(tv("resnet18")),
    "resnet50": spec(tv("resnet50")),
    "resnext50_32x4d": spec(tv("resnext50_32x4d")),
    "wide_resnet50_2": spec(tv("wide_resnet50_2"), batch=2),
    "densenet121": spec(tv("densenet121")),
    "squeezenet1_0": spec(tv("squeezenet1_0")),
    "squeezenet1_1": spec(tv("squeezenet1_1")),
    "googlenet": spec(tv("googlenet", aux_logits=False, init_weights=True)),
    "inception_v3": spec(tv("inception_v3", aux_logits=False, init_weights=True), 96),
    "mobilenet_v2": spec(tv("mobilenet_v2")),
    "mobilenet_v3_small": spec(tv("mobilenet_v3_small")),
    "mobilenet_v3_large": spec(tv("mobilenet_v3_large")),
    "mnasnet0_5": spec(tv("mnasnet0_5")),
    "mnasnet1_0": spec(tv("mnasnet1_0")),
    "shufflenet_v2_x1_0": spec(tv("shufflenet_v2_x1_0")),
    "efficientnet_b0": spec(tv("efficientnet_b0")),
    "efficientnet_v2_s": spec(tv("efficientnet_v2_s")),
    "regnet_x_400mf": spec(tv("regnet_x_400mf")),
    "regnet_y_400mf": spec(tv("regnet_y_400mf")),
    "convnext_tiny": spec(tv("convnext_tiny")),
    "vit_b_16": spec(vit_small_image(64), note="vit_b_16 layers at image_size 64"),
    "swin_t": spec(tv("swin_t")),
    "swin_v2_t": spec(tv("swin_v2_t")),
    "maxvit_t": spec(maxvit_small_image, note="maxvit_t widths, partition 2 at 64x64"),
    # small transformer configurations (the make-test subset)
    "vit_tiny": spec(vit_tiny, 32, note="VisionTransformer 32x32, patch 8, 2 layers, 64 wide"),
    "swin_tiny": spec(swin_tiny, 32, note="SwinTransformer 32x32, window 4, depths 2,2, 24 wide"),
    # dense outputs
    "fcn_resnet50": spec(tv_seg("fcn_resnet50"), dense=True, batch=2),
    "deeplabv3_mobilenet_v3_large": spec(tv_seg("deeplabv3_mobilenet_v3_large"), dense=True, batch=2),
    "lraspp_mobilenet_v3_large": spec(tv_seg("lraspp_mobilenet_v3_large"), dense=True, batch=2),
    "heatmap": spec(HeatmapHead, 32, dense=True),
    "unet": spec(UNet, 32, dense=True),
    "dbnet": spec(DBHead, 64, dense=True),
    # exporter idioms of other opsets
    "resnet18_op9": spec(tv("resnet18"), opset=9),
    "unet_op9": spec(lambda: UNet("nearest"), 32, opset=9, dense=True, note="Upsample (opset 9), nearest"),
    "mobilenet_v2_op11": spec(tv("mobilenet_v2"), opset=11, note="Clip with min/max inputs"),
    "unet_op11": spec(UNet, 32, opset=11, dense=True, note="Resize-11 with constant scales"),
    "dbnet_op11": spec(DBHead, 64, opset=11, dense=True),
    "vit_tiny_op17": spec(vit_tiny, 32, opset=17, note="LayerNormalization (opset 17)"),
    "convnext_tiny_op17": spec(tv("convnext_tiny"), opset=17, note="LayerNormalization (opset 17)"),
}


# ---- weights ----

def randomize(model, gen, xcal):
    """Random weights beyond the constructors' own. BatchNorm layers get random affine parameters,
    then the statistics of the batch xcal (BatchNorm alone in training mode), mildly shifted and
    scaled: statistics left at identity would hide a wrong formula, and statistics unrelated to
    the activations would drown the signal (GoogLeNet's 0.01-std convolutions then give
    near-constant maps, whose max-pools nearly tie everywhere) or let it grow without bound
    through deep stacks (EfficientNet's logits reached 1e5, where float32 rounding alone moved
    them by 0.5 %). Every parameter the constructor
    made constant (zero classifier heads, class tokens, LayerNorm's ones, ConvNeXt's 1e-6 layer
    scales) is drawn too, so no formula hides behind an identity or a zero."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            if m.affine:
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
        for p in model.parameters():
            if p.numel() > 1 and float(p.std()) == 0.0:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        if bns:
            # in float64, so the weights do not depend on the thread count: the reference
            # gradient can sit within 1e-7 of a kink (see near-ties below)
            m64 = copy.deepcopy(model).double().eval()
            bn64 = [m for m in m64.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for m in bn64:  # batch statistics in BatchNorm alone; dropout and stochastic depth stay off
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: one pass gives that batch's statistics
                m.train()
            m64(xcal.double())
            for m, m6 in zip(bns, bn64):
                m.running_mean.copy_(m6.running_mean)
                m.running_var.copy_(m6.running_var)
            for m in bns:  # mild: the layers after each were calibrated on its output
                c = m.num_features
                m.running_mean.add_(torch.randn(c, generator=gen) * 0.1 * m.running_var.sqrt())
                m.running_var.mul_(torch.rand(c, generator=gen) * 0.45 + 0.8)
    model.eval()


# ---- near-ties: where float rounding alone can move the gradient ----

def window_near_ties(t, out, k, s, p):
    """Windows of a 2-D max-pool over t (output out) whose two largest values nearly tie."""
    k = (k, k) if isinstance(k, int) else tuple(k)
    s = k if s is None or (not isinstance(s, int) and len(s) == 0) else ((s, s) if isinstance(s, int) else tuple(s))
    p = (p, p) if isinstance(p, int) else tuple(p)
    oh, ow = out.shape[-2], out.shape[-1]
    need_h, need_w = (oh - 1) * s[0] + k[0], (ow - 1) * s[1] + k[1]
    eh, ew = max(0, need_h - t.shape[-2] - 2 * p[0]), max(0, need_w - t.shape[-1] - 2 * p[1])
    x = F.pad(t, (p[1], p[1] + ew, p[0], p[0] + eh), value=float("-inf"))
    w = x.unfold(-2, k[0], s[0]).unfold(-2, k[1], s[1])[..., :oh, :ow, :, :].flatten(-2)
    if w.shape[-1] < 2:
        return 0
    top = w.topk(2, dim=-1).values
    gap = top[..., 0] - top[..., 1]
    return int(((gap > 0) & (gap <= TIE_REL * float(t.abs().max()))).sum())


def near_kinks(t, kinks):
    """Elements of t within TIE_REL of its largest magnitude from a kink of an activation."""
    scale = TIE_REL * float(t.abs().max())
    n = 0
    for k in kinks:
        gap = (t - k).abs()
        n += int(((gap > 0) & (gap <= scale)).sum())
    return n


def reference(model, x, t):
    """output_and_grad with the non-smooth functions wrapped (the modules call them too): also
    counts the max-pool windows and the activation inputs that nearly tie."""
    ties, kinks = [0], [0]
    orig = {k: getattr(F, k) for k in ("max_pool2d", "relu", "relu6", "hardtanh", "leaky_relu", "hardsigmoid",
                                       "hardswish")}

    def mp2(t, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        out = orig["max_pool2d"](t, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        if dilation in (1, (1, 1)) and t.dim() == 4:
            with torch.no_grad():
                ties[0] += window_near_ties(t, out[0] if return_indices else out, kernel_size, stride, padding)
        return out

    def kinked(name, kinks_of):
        def f(t, *a, **kw):
            with torch.no_grad():
                kinks[0] += near_kinks(t, kinks_of(*a, **kw))  # before an in-place version changes t
            return orig[name](t, *a, **kw)
        return f

    F.max_pool2d = mp2
    F.relu = kinked("relu", lambda *a, **kw: [0.0])
    F.relu6 = kinked("relu6", lambda *a, **kw: [0.0, 6.0])
    F.hardtanh = kinked("hardtanh", lambda min_val=-1.0, max_val=1.0, *a, **kw: [min_val, max_val])
    F.leaky_relu = kinked("leaky_relu", lambda *a, **kw: [0.0])
    F.hardsigmoid = kinked("hardsigmoid", lambda *a, **kw: [-3.0, 3.0])
    F.hardswish = kinked("hardswish", lambda *a, **kw: [-3.0, 3.0])
    try:
        y, g = output_and_grad(model, x, t)
    finally:
        for k, v in orig.items():
            setattr(F, k, v)
    return y, g, ties[0], kinks[0]


# ---- export ----

def op_counts(path):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    counts = {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def output_and_grad(model, x, t):
    """The output for x and d(sum_i out[i, t_i]) / dx (summed over positions for dense outputs)."""
    xg = x.clone().requires_grad_(True)
    y = model(xg)
    y[torch.arange(len(t)), t].sum().backward()
    return y.detach(), xg.grad.detach()


def export(name, out_root, seed=1234):
    sp = MODELS[name]
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    meta = {"name": name, "opset": sp["opset"], "dense": sp["dense"], "note": sp["note"],
            "script_hash": SCRIPT_HASH, "torch": torch.__version__}
    for f in ("model.onnx", "x.npy", "logits.npy", "targets.npy", "grad.npy", "meta.json"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    t0 = time.time()
    try:
        base = seed + sum(map(ord, name.split("_op")[0]))  # opset variants share weights and inputs
        torch.manual_seed(base)
        gen = torch.Generator().manual_seed(base)
        model = sp["build"]()
        n, size = sp["batch"], sp["size"]
        x = (torch.rand(n, 3, size, size, generator=gen) - 0.45) / 0.225
        # BatchNorm statistics from x and as many other images (in a trained network they fit
        # its inputs; drawn from another batch, 2x2 maps of deep stages stay unnormalized)
        randomize(model, gen, torch.cat([x, (torch.rand(n, 3, size, size, generator=gen) - 0.45) / 0.225]))
        meta["input_shape"] = list(x.shape)
        meta["params"] = sum(p.numel() for p in model.parameters())
        # the reference: autograd in float64 on the float32 weights and input. PyTorch's own
        # float32 result is no better a reference than ours: where an activation sits next to a
        # kink its gradient depends on the summation order (even on the thread count)
        with torch.no_grad():
            y32 = model(x)
        t = torch.randint(0, y32.shape[1], (n,), generator=gen)
        y, g, meta["near_ties"], meta["near_kinks"] = reference(copy.deepcopy(model).double(), x.double(), t)
        g32 = output_and_grad(model, x, t)[1].double()
        meta["output_shape"] = list(y.shape)
        meta["torch_f32_output_rel"] = float((y32.double() - y).abs().max() / y.abs().max())
        meta["torch_f32_grad_rel"] = float((g32 - g).abs().max() / g.abs().max())

        path = os.path.join(d, "model.onnx")
        torch.onnx.export(model, x, path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=sp["opset"],
                          training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
        counts = op_counts(path)
        meta["ops"] = counts
        meta["nodes"] = sum(counts.values())
        np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(d, "logits.npy"), y.numpy().astype(np.float32))
        np.save(os.path.join(d, "targets.npy"), t.numpy().astype(np.int64))
        np.save(os.path.join(d, "grad.npy"), g.numpy().astype(np.float32))
    except Exception as e:  # noqa: BLE001  (the table reports what PyTorch cannot export)
        meta["export_error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:300]
    meta["export_seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    return meta


def cached(out_root, name):
    """meta.json of an export made by this very script, or None."""
    try:
        with open(os.path.join(out_root, name, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if meta.get("script_hash") == SCRIPT_HASH else None


def main(argv):
    args = argv[1:]
    if args[:1] == ["--list"]:
        for k, v in MODELS.items():
            print("%-30s %3dx%-3d opset %-2d %s %s" % (k, v["size"], v["size"], v["opset"],
                                                       "dense" if v["dense"] else "cls  ", v["note"]))
        return 0
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    if not args:
        sys.stderr.write(__doc__)
        return 2
    out, names = args[0], args[1:] or list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.stderr.write("unknown model %r (have: %s)\n" % (n, ", ".join(MODELS)))
            return 2
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    import warnings
    warnings.filterwarnings("ignore")
    for n in names:
        meta = None if force else cached(out, n)
        if meta is not None:
            print("cached   %s" % n, flush=True)
            continue
        meta = export(n, out)
        if "export_error" in meta:
            print("NOEXPORT %s (%.1fs): %s" % (n, meta["export_seconds"], meta["export_error"]), flush=True)
        else:
            print("exported %s (%.1fs, %d nodes, near-ties %d + %d): %s" % (
                n, meta["export_seconds"], meta["nodes"], meta["near_ties"], meta["near_kinks"],
                " ".join(sorted(meta["ops"]))),
                flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
