#!/usr/bin/python3
"""Small models for explaining modern architectures (tests/test_explain_modern.py), with random
seeded weights (nothing is downloaded):
  vit     torchvision's VisionTransformer: 32x32 images, 8x8 patches (a 4x4 grid and a class token),
          2 blocks, 2 heads, width 16; opset 17 (LayerNormalization)
  vit14   the same at opset 14 (LayerNorm decomposed into ReduceMean, Sub, Pow, Sqrt, Div)
  swin    torchvision's SwinTransformer: 32x32 images, 4x4 patches, windows of 4, stages of depth 2
          and 2 (grids 8x8 then 4x4), width 8
  unet    a small U-Net with two outputs: "seg" (N, 3, 16, 16) class scores per pixel and "prob"
          (N, 1, 16, 16) a sigmoid probability map, as a text detector gives
Each model is written to OUT/NAME.onnx with an input OUT/NAME_x.npy (2 samples), the outputs of
PyTorch in OUT/NAME_y*.npy, and for unet the input gradients of the sum of each output
(OUT/unet_gsum_seg.npy, OUT/unet_gsum_prob.npy) and of the masked sum (OUT/unet_gmask.npy for
mask OUT/unet_mask.npy over "seg").

Usage: export_explain.py OUT [NAME ...]"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm
import onnx
from onnx import helper, numpy_helper


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1)
        self.e2 = nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.d1 = nn.Conv2d(16, 8, 3, padding=1)
        self.seg = nn.Conv2d(8, 3, 1)
        self.det = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        a = F.relu(self.e1(x))
        b = F.relu(self.e2(F.max_pool2d(a, 2)))
        d = F.relu(self.d1(torch.cat([a, self.up(b)], 1)))
        return self.seg(d), torch.sigmoid(self.det(d))

# ---- constant folding for torchvision 0.14's Swin ----
# Its export computes window padding and attention masks with Mod and ScatterND on shapes, and keeps
# Dropout(ratio 0, training_mode true) nodes (torchvision passes no `training` flag). With static
# shapes all of that is constant: fold it here (NumPy), and turn ratio-0 dropouts into Identity, so
# the model needs only the ops the library implements.


def attr(n, name, default=None):
    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default

def run(n, x):
    op = n.op_type
    if op == "Constant": return [numpy_helper.to_array(attr(n, "value"))]
    if op == "Identity": return [x[0]]
    if op == "Cast": return [x[0].astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[attr(n, "to")])]
    if op == "Shape": return [np.array(x[0].shape, np.int64)]
    if op == "Gather": return [np.take(x[0], x[1], axis=attr(n, "axis", 0))]
    if op == "Unsqueeze":
        axes = attr(n, "axes") if len(x) == 1 else list(x[1]); y = x[0]
        for a in sorted(int(a) % (y.ndim + len(axes)) for a in axes): y = np.expand_dims(y, a)
        return [y]
    if op == "Squeeze":
        axes = attr(n, "axes") if len(x) == 1 else list(x[1])
        return [np.squeeze(x[0], axis=tuple(int(a) for a in axes)) if axes is not None else np.squeeze(x[0])]
    if op == "Concat": return [np.concatenate(x, axis=attr(n, "axis"))]
    if op == "Reshape":
        s = [d if d != 0 else x[0].shape[i] for i, d in enumerate(x[1])]
        return [x[0].reshape(s)]
    if op == "Slice":
        st, en = x[1], x[2]; axes = x[3] if len(x) > 3 else range(len(st)); steps = x[4] if len(x) > 4 else [1] * len(st)
        sl = [slice(None)] * x[0].ndim
        for s, e, a, p in zip(st, en, axes, steps): sl[int(a)] = slice(int(s), int(e), int(p))
        return [x[0][tuple(sl)]]
    if op == "Mod": return [np.fmod(x[0], x[1]) if attr(n, "fmod", 0) else np.mod(x[0], x[1])]
    if op in ("Add", "Sub", "Mul", "Div"):
        f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}.get(op)
        if op == "Div": return [(x[0] // x[1]) if x[0].dtype.kind == "i" else (x[0] / x[1]).astype(x[0].dtype)]
        return [f(x[0], x[1]).astype(np.result_type(x[0], x[1]))]
    if op == "Equal": return [np.equal(x[0], x[1])]
    if op == "Not": return [np.logical_not(x[0])]
    if op == "Where": return [np.where(x[0], x[1], x[2])]
    if op == "Range": return [np.arange(x[0], x[1], x[2]).astype(x[0].dtype)]
    if op == "ConstantOfShape":
        v = attr(n, "value"); v = numpy_helper.to_array(v) if v is not None else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in x[0]), v.reshape(-1)[0], v.dtype)]
    if op == "Expand": return [x[0] * np.ones(tuple(int(d) for d in x[1]), x[0].dtype)]
    if op == "Transpose": return [np.transpose(x[0], attr(n, "perm"))]
    if op == "ScatterND":
        y = x[0].copy(); idx = x[1]
        for i in np.ndindex(idx.shape[:-1]): y[tuple(idx[i])] = x[2][i]
        return [y]
    return None

def static_shapes(m):
    m = onnx.shape_inference.infer_shapes(m)
    shp = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shp[vi.name] = [d.dim_value for d in dims]
    return shp

def fold(path):
    m = onnx.load(path)
    for _ in range(8):
        if not fold_once(m): break
    onnx.save(m, path)

def fold_once(m):
    g = m.graph
    shp = static_shapes(m)
    known = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    keep = []
    changed = False
    for n in g.node:
        if n.op_type == "Dropout" and len(n.input) > 1 and n.input[1] in known and float(known[n.input[1]]) == 0:
            n.op_type = "Identity"  # ratio 0: identity, whatever training_mode says
            del n.input[1:]
            del n.output[1:]
            changed = True
        if n.op_type == "Shape" and n.input[0] in shp and n.input[0] not in known:
            known[n.output[0]] = np.array(shp[n.input[0]], np.int64)
            changed = True
            continue
        if all((i == "" or i in known) for i in n.input):
            try:
                ys = run(n, [known[i] if i else None for i in n.input])
            except Exception:
                ys = None
            if ys is not None:
                for o, y in zip(n.output, ys): known[o] = np.asarray(y)
                changed = True
                continue
        keep.append(n)
    used = {i for n in keep for i in n.input} | {o.name for o in g.output}
    del g.node[:]
    g.node.extend(keep)
    init = [numpy_helper.from_array(v, k) for k, v in known.items() if k in used]
    del g.initializer[:]
    g.initializer.extend(init)
    return changed


def build(name):
    torch.manual_seed(0)
    if name in ("vit", "vit14"):
        m = tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                  mlp_dim=32, num_classes=5)
        return m, (2, 3, 32, 32), 17 if name == "vit" else 14, ["logits"]
    if name == "swin":
        m = tvm.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[2, 2],
                                window_size=[4, 4], num_classes=5)
        return m, (2, 3, 32, 32), 17, ["logits"]
    if name == "unet":
        return UNet(), (2, 3, 16, 16), 17, ["seg", "prob"]
    raise SystemExit("unknown model " + name)


def make(name):
    """The model in eval mode with its weights, its input shape, opset and output names."""
    m, shape, opset, outs = build(name)
    m.eval()
    with torch.no_grad():  # zero-initialized parameters (ViT's head and class token, biases) drawn too
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    return m, shape, opset, outs


def export(out, name):
    m, shape, opset, outs = make(name)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g)
    path = os.path.join(out, name + ".onnx")
    # Swin's padding arithmetic (Mod) folds away only with static shapes
    dyn = None if name == "swin" else {"x": {0: "n"}, **{o: {0: "n"} for o in outs}}
    torch.onnx.export(m, x, path, opset_version=opset, input_names=["x"], output_names=outs, dynamic_axes=dyn)
    if name == "swin":
        fold(path)
    np.save(os.path.join(out, name + "_x.npy"), x.numpy())
    with torch.no_grad():
        y = m(x)
    ys = y if isinstance(y, tuple) else (y,)
    for o, t in zip(outs, ys):
        np.save(os.path.join(out, "%s_y_%s.npy" % (name, o)), t.numpy())
    if name == "unet":
        for k, o in enumerate(outs):
            xg = x.clone().requires_grad_(True)
            m(xg)[k].sum().backward()
            np.save(os.path.join(out, "unet_gsum_%s.npy" % o), xg.grad.numpy())
        mask = torch.zeros(3, 16, 16)
        mask[1, 4:12, 2:9] = 1.0
        mask[2, 0:3, :] = 0.5
        xg = x.clone().requires_grad_(True)
        (m(xg)[0] * mask).sum().backward()
        np.save(os.path.join(out, "unet_mask.npy"), mask.numpy())
        np.save(os.path.join(out, "unet_gmask.npy"), xg.grad.numpy())


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:] or ["vit", "vit14", "swin", "unet"]:
        export(out, name)


if __name__ == "__main__":
    main()
