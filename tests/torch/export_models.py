#!/usr/bin/python3
"""Exports small PyTorch models with random (seeded) weights as ONNX, with reference results.

For each model it writes, into OUT/<name>/:
  model.onnx   torch.onnx.export, opset 13, dynamic batch axis
  x.npy        input batch (3 samples), float32
  logits.npy   PyTorch's output for x, float32
  targets.npy  one class per sample, int64
  grad.npy     d(sum_i logits[i, targets[i]]) / dx, float32

Usage: export_models.py OUT [NAME ...]   (default: every model)

Runs with Debian's python3 and torch 1.13. The reference is PyTorch itself, so the C library
must reproduce these numbers (tests/tools/torch_compare.c checks it).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 13
BATCH = 3


def randomize_bn(model, gen):
    """BatchNorm with identity statistics would hide a wrong formula: give every BN layer
    non-trivial running mean/variance and affine parameters."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)


class MLP(nn.Module):
    """784-64-32-10. The view() flatten exports as Shape/Gather/Unsqueeze/Concat/Reshape."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    """(Conv, BatchNorm, ReLU, MaxPool) x 2, then Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.b1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 12, 3, padding=1)
        self.b2 = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)
        return self.fc(x.view(x.size(0), -1))


class Block(nn.Module):
    """Basic residual block; a strided 1x1 conv shortcut when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet(nn.Module):
    """Stem, an identity block, a downsampling block, global average pooling via mean (ReduceMean)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.l1 = Block(8, 8, 1)
        self.l2 = Block(8, 16, 2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.l2(self.l1(x))
        return self.fc(x.mean((2, 3)))


class SeqCNN(nn.Module):
    """1-D convolutions over one-hot sequences (N,4,L), as for DNA."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 5, padding=2)
        self.c2 = nn.Conv1d(8, 16, 3)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.max_pool1d(F.relu(self.c1(x)), 2)
        x = self.pool(F.relu(self.c2(x)))
        return self.fc(x.view(x.size(0), -1))


def image_input(gen, c, h, w):
    return torch.rand(BATCH, c, h, w, generator=gen)


def onehot_input(gen, length):
    idx = torch.randint(0, 4, (BATCH, length), generator=gen)
    return F.one_hot(idx, 4).permute(0, 2, 1).float().contiguous()


# name: (constructor, input maker, targets, keep BatchNormalization nodes)
MODELS = {
    "mlp": (MLP, lambda g: image_input(g, 1, 28, 28), [3, 7, 1], False),
    # exported without the eval-mode Conv+BN fusion, so BatchNormalization itself is tested
    "cnn": (CNN, lambda g: image_input(g, 1, 28, 28), [0, 9, 4], True),
    # exported with the fusion PyTorch applies by default
    "resnet": (ResNet, lambda g: image_input(g, 3, 16, 16), [2, 5, 8], False),
    "seq": (SeqCNN, lambda g: onehot_input(g, 40), [0, 2, 4], False),
}


def pool_ties(t, nd, k):
    """Number of k-wide (non-overlapping) max-pool windows of t whose non-zero maximum is shared."""
    w = t.unfold(2, k, k)
    if nd == 2:
        w = w.unfold(3, k, k).flatten(-2)
    mx = w.max(-1, keepdim=True).values
    return int(((((w == mx) & (mx != 0)).sum(-1)) > 1).sum())


def check_no_pool_ties(model, x):
    """A max-pool window whose maximum is shared by several inputs has no single gradient: PyTorch
    and the C library may route it differently. Refuse inputs that produce such ties (at non-zero
    values; ties of zeros after ReLU get no gradient anyway). The models call F.max_pool*d with
    stride = kernel, so wrapping those two functions sees every pool input."""
    ties = [0]
    orig1, orig2 = F.max_pool1d, F.max_pool2d

    def mp1(t, k, *a, **kw):
        ties[0] += pool_ties(t, 1, k)
        return orig1(t, k, *a, **kw)

    def mp2(t, k, *a, **kw):
        ties[0] += pool_ties(t, 2, k)
        return orig2(t, k, *a, **kw)

    F.max_pool1d, F.max_pool2d = mp1, mp2
    try:
        with torch.no_grad():
            model(x)
    finally:
        F.max_pool1d, F.max_pool2d = orig1, orig2
    if ties[0]:
        raise SystemExit("%d max-pool ties in the reference input: pick another seed" % ties[0])


def export(name, out_root, seed=1234):
    ctor, make_input, targets, keep_bn = MODELS[name]
    gen = torch.Generator().manual_seed(seed + sum(map(ord, name)))
    torch.manual_seed(seed + sum(map(ord, name)))
    model = ctor()
    randomize_bn(model, gen)
    model.eval()
    x = make_input(gen)
    check_no_pool_ties(model, x)
    t = torch.tensor(targets, dtype=torch.int64)

    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    logits.gather(1, t[:, None]).sum().backward()

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(
        model, x, os.path.join(d, "model.onnx"),
        input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        # PRESERVE exports the eval-mode model as is; EVAL also folds BatchNorm into the Conv before it
        training=torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL,
        do_constant_folding=not keep_bn,  # folding is meant for EVAL exports (torch warns otherwise)
    )
    np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "logits.npy"), logits.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, "targets.npy"), t.numpy().astype(np.int64))
    np.save(os.path.join(d, "grad.npy"), xg.grad.numpy().astype(np.float32))
    return d


def op_types(path):
    """Op types in an exported model (for the log); None when the onnx module is missing."""
    try:
        import onnx
    except ImportError:
        return None
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return sorted({n.op_type for n in m.graph.node})


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out = argv[1]
    names = argv[2:] or list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.stderr.write("unknown model %r (have: %s)\n" % (n, ", ".join(MODELS)))
            return 2
    torch.set_num_threads(1)
    for n in names:
        d = export(n, out)
        ops = op_types(os.path.join(d, "model.onnx"))
        print("exported %s -> %s%s" % (n, d, "" if ops is None else "  ops: " + " ".join(ops)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
