#!/usr/bin/python3
"""Small models built on the activations, math, comparison and Where ops, with PyTorch's results.

Two kinds, each written into OUT/<name>/ in the layout of export_models.py (model.onnx, x.npy,
logits.npy, targets.npy, grad.npy = d(sum_i logits[i, targets[i]]) / dx), checked by
tests/tools/torch_compare.c:
  - PyTorch modules exported by torch.onnx.export at opsets 9, 11, 13, 14 and 17, as models arrive
    from users: activations as single ops or as the patterns PyTorch writes for them (GELU as Erf,
    tanh-GELU as Pow/Tanh, Mish as Softplus/Tanh, Hardswish before opset 14 as HardSigmoid/Mul),
    LayerNorm decomposed into ReduceMean/Pow/Sqrt, masks as bool constants, comparisons and logic
    feeding Where;
  - graphs written with onnx.helper for ops PyTorch 1.13 cannot export (Gelu, opset 20; Mish,
    opset 18; Sum and Mean; three-input Max and Min), whose reference is PyTorch evaluating the
    same formula (F.gelu, F.mish, torch.maximum, ...) on the same weights.

Usage: export_elementwise.py OUT [NAME ...]   (default: every model)
Runs with Debian's python3, torch 1.13 and onnx 1.12.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

BATCH = 3
NIN = 12
NCLS = 10


class Acts(nn.Module):
    """The monotone activations and Hardswish between linear layers."""

    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(NIN, 24)] + [nn.Linear(24, 24) for _ in range(4)] + [nn.Linear(24, NCLS)])
        self.acts = [F.hardsigmoid, F.hardswish, lambda h: F.elu(h, 1.3), F.selu, F.softplus]

    def forward(self, x):
        h = x
        for fc, act in zip(self.fc[:-1], self.acts):
            h = act(fc(h) * 2.0)  # * 2: reach the saturated parts of HardSigmoid and Hardswish
        return self.fc[-1](h)


class Smooth(nn.Module):
    """PReLU and the smooth activations: GELU (erf), GELU (tanh), Mish, then a LayerNorm."""

    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(NIN, 24)] + [nn.Linear(24, 24) for _ in range(3)] + [nn.Linear(24, NCLS)])
        self.prelu = nn.PReLU(24, init=0.2)
        self.norm = nn.LayerNorm(24)
        with torch.no_grad():
            self.prelu.weight.uniform_(-0.5, 0.5)  # negative slopes too
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        h = self.prelu(self.fc[0](x))
        h = F.gelu(self.fc[1](h))
        h = F.gelu(self.fc[2](h), approximate="tanh")
        h = self.norm(F.mish(self.fc[3](h)))
        return self.fc[4](h)


class Math(nn.Module):
    """Exp, Log, Abs, Sqrt, Reciprocal, Neg, Erf, Pow with a learned exponent, maximum, minimum."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(NIN, 16)
        self.b = nn.Linear(NIN, 16)
        self.e = nn.Parameter(torch.rand(16) * 2 + 0.5)
        self.out = nn.Linear(16 * 4, NCLS)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        u = torch.exp(-a.abs()) + torch.log(b * b + 1.0) - torch.sqrt(a * a + 0.5)
        v = torch.reciprocal(1.0 + b * b) * -torch.erf(a)
        w = torch.pow(torch.sigmoid(a) + 0.5, self.e) + torch.pow(b, 2.0) + torch.pow(2.0, a)
        z = torch.maximum(a, b) - torch.minimum(a * 0.5, b)
        return self.out(torch.cat([u, v, w, z], 1))


class Masks(nn.Module):
    """Bool constants (a registered mask, as Swin's attention masks), comparisons, logic and Where,
    and masked_fill, as transformer exports use them."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(NIN, 16)
        self.fc2 = nn.Linear(16, 16)
        self.out = nn.Linear(16, NCLS)
        self.register_buffer("mask", torch.arange(16) % 3 == 0)
        self.register_buffer("mask2", torch.arange(16) % 2 == 0)

    def forward(self, x):
        h = self.fc1(x)
        keep = ((h > -0.3) & ~(h < -1.0)) | (self.mask == self.mask2)
        h = torch.where(keep, h, h * 0.1 - 0.5)
        g = self.fc2(h).masked_fill(self.mask, -1.0)
        g = torch.where(g.eq(g.clamp(-0.5, 0.5)), g * 2.0, g)  # float Equal, true inside the clamp
        return self.out(torch.relu(g) + torch.where(self.mask, h, torch.zeros(())))


# name: (module, opset)
EXPORTED = {
    "acts_opset9": (Acts, 9),
    "acts_opset14": (Acts, 14),
    "smooth_opset11": (Smooth, 11),
    "smooth_opset13": (Smooth, 13),
    "math_opset11": (Math, 11),
    "math_opset13": (Math, 13),
    "masks_opset9": (Masks, 9),
    "masks_opset13": (Masks, 13),
    "masks_opset17": (Masks, 17),
}


def save_refs(d, x, logits, t, grad):
    np.save(os.path.join(d, "x.npy"), x.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, "logits.npy"), logits.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, "targets.npy"), t.numpy().astype(np.int64))
    np.save(os.path.join(d, "grad.npy"), grad.numpy().astype(np.float32))


def export_module(name, out_root, seed):
    ctor, opset = EXPORTED[name]
    torch.manual_seed(seed)
    model = ctor().eval()
    x = torch.randn(BATCH, NIN)
    t = torch.randint(0, NCLS, (BATCH,))
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    logits.gather(1, t[:, None]).sum().backward()
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(model, x, os.path.join(d, "model.onnx"), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
    save_refs(d, x, logits, t, xg.grad)
    return d


def export_helper(name, out_root, seed):
    """x -> three Gemms h1, h2, h3 -> Sum(Gelu(h1), Mish(h2), Gelu_tanh(h3)), Max(h1, h2, h3),
    Min(h1, h2) -> Mean of the three -> Gemm -> logits, written node by node (opsets 18 and 20)."""
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(16, NIN, generator=g) * 0.5 for _ in range(3)]
    bs = [torch.randn(16, generator=g) * 0.1 for _ in range(3)]
    wo, bo = torch.randn(NCLS, 16, generator=g) * 0.3, torch.randn(NCLS, generator=g) * 0.1
    x = torch.randn(BATCH, NIN, generator=g)
    t = torch.randint(0, NCLS, (BATCH,), generator=g)

    def forward(x):
        h1, h2, h3 = (x @ w.T + b for w, b in zip(ws, bs))
        s = F.gelu(h1) + F.mish(h2) + F.gelu(h3, approximate="tanh")
        m = torch.maximum(torch.maximum(h1, h2), h3)
        n = torch.minimum(h1, h2)
        return ((s + m + n) / 3) @ wo.T + bo

    xg = x.clone().requires_grad_(True)
    logits = forward(xg)
    logits.gather(1, t[:, None]).sum().backward()

    inits, nodes = [], []
    for i in range(3):
        inits += [numpy_helper.from_array(ws[i].numpy(), "w%d" % i), numpy_helper.from_array(bs[i].numpy(), "b%d" % i)]
        nodes.append(helper.make_node("Gemm", ["x", "w%d" % i, "b%d" % i], ["h%d" % i], transB=1))
    inits += [numpy_helper.from_array(wo.numpy(), "wo"), numpy_helper.from_array(bo.numpy(), "bo")]
    nodes += [
        helper.make_node("Gelu", ["h0"], ["g0"]),
        helper.make_node("Mish", ["h1"], ["g1"]),
        helper.make_node("Gelu", ["h2"], ["g2"], approximate="tanh"),
        helper.make_node("Sum", ["g0", "g1", "g2"], ["s"]),
        helper.make_node("Max", ["h0", "h1", "h2"], ["m"]),
        helper.make_node("Min", ["h0", "h1"], ["n"]),
        helper.make_node("Mean", ["s", "m", "n"], ["avg"]),
        helper.make_node("Gemm", ["avg", "wo", "bo"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", NIN])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", NCLS])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="export_elementwise")
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(d, "model.onnx"))  # no checker: onnx 1.12 knows opsets up to 17
    save_refs(d, x, logits, t, xg.grad)
    return d


MODELS = list(EXPORTED) + ["helper_opset20"]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out = argv[1]
    names = argv[2:] or MODELS
    torch.set_num_threads(1)
    for i, n in enumerate(names):
        if n not in MODELS:
            sys.stderr.write("unknown model %r (have: %s)\n" % (n, ", ".join(MODELS)))
            return 2
        seed = 100 + MODELS.index(n)
        d = export_module(n, out, seed) if n in EXPORTED else export_helper(n, out, seed)
        ops = sorted({node.op_type for node in onnx.load(os.path.join(d, "model.onnx")).graph.node})
        print("exported %s -> %s  ops: %s" % (n, d, " ".join(ops)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
