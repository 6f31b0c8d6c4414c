#!/usr/bin/python3
"""Exports small PyTorch models built from the structural ops (ConvTranspose, Resize/Upsample,
Einsum, Split, Tile, CumSum, Layer/Instance/Group normalization, ReduceMax/Min/L2) with random
seeded weights, in the layout of export_models.py (model.onnx, x.npy, logits.npy, targets.npy,
grad.npy per model), so tools/torch_compare checks logits and input gradients against PyTorch.

Usage: export_struct.py OUT [NAME ...]   (default: every model)
Each model states the op types its export must contain: a PyTorch that exports them otherwise
fails here rather than leaving the ops untested."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 3


class UNet(nn.Module):
    """Encoder, ConvTranspose decoder with a skip connection, bilinear upsampling."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1)
        self.e2 = nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
        self.upg = nn.ConvTranspose2d(16, 8, 2, stride=2, groups=2, bias=False)
        self.d1 = nn.Conv2d(24, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4, 10)

    def forward(self, x):
        a = F.relu(self.e1(x))                      # (8, 16, 16)
        b = F.relu(self.e2(F.avg_pool2d(a, 2)))     # (16, 8, 8)
        u = torch.cat([a, self.up(b), self.upg(b)], 1)  # (24, 16, 16)
        d = F.relu(self.d1(u))
        d = F.interpolate(d, scale_factor=0.5, mode="bilinear", align_corners=False)  # (8, 8, 8)
        d = F.interpolate(d, size=(2, 2), mode="bilinear", align_corners=True)
        return self.fc(d.flatten(1))


class Up1d(nn.Module):
    """1-D transposed convolutions (dilated, strided) and nearest upsampling."""

    def __init__(self):
        super().__init__()
        self.t1 = nn.ConvTranspose1d(4, 6, 5, stride=3, padding=2, dilation=2, output_padding=1)
        self.c = nn.Conv1d(6, 4, 3)
        self.fc = nn.Linear(4 * 16, 5)

    def forward(self, x):                                       # (4, 10)
        y = F.relu(self.t1(x))                                  # (6, 32)
        y = F.interpolate(y, scale_factor=2, mode="nearest")    # (6, 64)
        y = F.max_pool1d(self.c(y), 4)                          # (4, 15)
        y = F.interpolate(y, size=16, mode="linear", align_corners=False)
        return self.fc(y.flatten(1))


class Nearest(nn.Module):
    """Nearest upsampling by an integer factor (Upsample at opset 9, Resize from 10)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 64, 6)

    def forward(self, x):                                        # (2, 4, 4)
        y = F.interpolate(torch.tanh(self.c(x)), scale_factor=2, mode="nearest")  # (4, 8, 8)
        return self.fc(y.flatten(1))


class Attention(nn.Module):
    """A ViT-style block: patches, LayerNorm, attention through einsum, chunked qkv."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads, self.dim, self.scale = heads, dim, (dim // heads) ** -0.5
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)  # torch 1.13 exports a LayerNorm without affine invalidly
        self.mlp = nn.Linear(dim, dim)
        self.fc = nn.Linear(dim, 7)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)            # (N, 16 tokens, dim)
        n, L, d = t.shape
        h = self.ln1(t)
        q, k, v = torch.split(self.qkv(h), [self.dim] * 3, dim=-1)
        q, k, v = (z.reshape(n, L, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = torch.einsum("bhid,bhjd->bhij", q, k) * self.scale
        o = torch.einsum("bhij,bhjd->bhid", a.softmax(-1), v).transpose(1, 2).reshape(n, L, d)
        t = t + self.proj(o)
        t = t + torch.einsum("bij,kj->bik", torch.tanh(self.ln2(t)), self.mlp.weight)
        return self.fc(t.mean(1))


class Norms(nn.Module):
    """Group and instance normalization, max/min/L2 reductions, cumulative sums, tiling."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(2, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.fc = nn.Linear(8 * 4 + 8, 6)

    def forward(self, x):                                        # (2, 6, 6)
        y = torch.tanh(self.gn(self.c(x)))
        y = self.inorm(y * 2 + 1)
        a = torch.amax(y, dim=(2, 3))                            # (8)
        b = torch.amin(y, dim=3).sum(2)                          # (8)
        c = y.norm(p=2, dim=(2, 3))                              # (8)
        e = torch.cumsum(y, dim=2)[:, :, -1].mean(2)             # (8)
        f = y.mean((2, 3)).repeat(1, 2)[:, 3:11]                 # (8)
        return self.fc(torch.cat([a, b, c, e, f], 1))


def image(gen, c, h, w):
    return torch.rand(BATCH, c, h, w, generator=gen) * 2 - 1


# name: (constructor, input, targets, opset, op types the export must contain)
MODELS = {
    "unet": (UNet, lambda g: image(g, 3, 16, 16), [1, 4, 9], 13, {"ConvTranspose", "Resize"}),
    "up1d": (Up1d, lambda g: torch.rand(BATCH, 4, 10, generator=g), [0, 2, 4], 11, {"ConvTranspose", "Resize"}),
    "nearest9": (Nearest, lambda g: image(g, 2, 4, 4), [0, 3, 5], 9, {"Upsample"}),
    "nearest10": (Nearest, lambda g: image(g, 2, 4, 4), [1, 2, 5], 10, {"Resize"}),
    "attention": (Attention, lambda g: image(g, 3, 16, 16), [0, 3, 6], 17,
                  {"Einsum", "LayerNormalization", "Split"}),
    "norms": (Norms, lambda g: image(g, 2, 6, 6), [2, 0, 5], 13,
              {"InstanceNormalization", "ReduceMax", "ReduceMin", "ReduceL2", "CumSum", "Tile"}),
}


def export(name, out_root, seed=99):
    ctor, make_input, targets, opset, _ = MODELS[name]
    torch.manual_seed(seed + sum(map(ord, name)))
    gen = torch.Generator().manual_seed(seed + sum(map(ord, name)))
    model = ctor().eval()
    for p in model.parameters():  # non-trivial affine parameters of the normalizations too
        with torch.no_grad():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    x = make_input(gen)
    t = torch.tensor(targets, dtype=torch.int64)
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    logits.gather(1, t[:, None]).sum().backward()
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(model, x, os.path.join(d, "model.onnx"), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
    np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "logits.npy"), logits.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, "targets.npy"), t.numpy().astype(np.int64))
    np.save(os.path.join(d, "grad.npy"), xg.grad.numpy().astype(np.float32))
    return d


def op_types(path):
    import onnx
    return {n.op_type for n in onnx.load(path).graph.node}


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    names = argv[2:] or list(MODELS)
    torch.set_num_threads(1)
    bad = 0
    for n in names:
        d = export(n, argv[1])
        ops = op_types(os.path.join(d, "model.onnx"))
        missing = MODELS[n][4] - ops
        print("exported %s (opset %d) -> %s  ops: %s" % (n, MODELS[n][3], d, " ".join(sorted(ops))))
        if missing:
            print("FAIL %s: the export lacks %s" % (n, " ".join(sorted(missing))))
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
