#!/usr/bin/python3
"""Explaining modern architectures through the CLI, against PyTorch 1.13 and torchvision 0.14:
small seeded ViT (opset 17, and opset 14 with LayerNorm decomposed), Swin and a two-output U-Net
from tests/torch/export_explain.py (nothing downloaded).
  - ViT: the gradient equals autograd's; LRP-0 equals gradient x input of the same network with the
    statistics of every LayerNorm, the GELU gates and the attention weights detached
    (attention=constant, CP-LRP), or with the products of activations halved per operand and the
    softmax left as it is (attention=attnlrp: AttnLRP's uniform and softmax rules), as Ali et al. 2022
    and Achtibat et al. 2024 implement them; fused and decomposed LayerNorm give the same map;
    attention rollout equals its definition on the attention weights PyTorch computes;
  - ViT and Swin: Grad-CAM (tokens=auto) gives a map of the patch grid's size; gradient,
    integrated_gradients, gradcam, lrp_epsilon_plus and occlusion run; methods without a rule refuse
    naming the node and its op; rollout refuses Swin's windowed attention naming the node;
  - every method of `saliency methods` on every model either gives a finite map or refuses in one
    line naming the node and its op (never a silent skip);
  - U-Net: --target sum and --target-mask give autograd's gradients of sum(y) and sum(M y) for
    either output (--output-name); a mask over the whole map equals --target sum; targets that do not
    fit fail with one line naming the argument;
  - saliency info --rules lists what each node gets.
Run with Debian's /usr/bin/python3; SAL_BUILD names the build folder. Prints "N passed, M failed"."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "torch"))
import export_explain  # noqa: E402

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", msg)


def cli(*args):
    exe = os.path.join(ROOT, os.environ.get("SAL_BUILD", "build"), "saliency")
    r = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr.strip()


def close(a, b, tol=1e-4):
    return np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max())


# ---- PyTorch references for the ViT ----

def ln(mod, h):
    """LayerNorm with its deviation detached (the statistics held constant)."""
    mu = h.mean(-1, keepdim=True)
    sd = ((h - mu) ** 2).mean(-1, keepdim=True).add(mod.eps).sqrt().detach()
    return (h - mu) / sd * mod.weight + mod.bias


def half(a, b, op):
    """op(a, b) with each operand's gradient halved: AttnLRP's uniform rule as gradient x input."""
    return 0.5 * op(a, b.detach()) + 0.5 * op(a.detach(), b)


def mha(mod, y, attnlrp):
    n, t, e = y.shape
    hds = mod.num_heads
    q, k, v = F.linear(y, mod.in_proj_weight, mod.in_proj_bias).chunk(3, -1)
    q, k, v = (z.reshape(n, t, hds, e // hds).transpose(1, 2) for z in (q, k, v))
    q = q / (e // hds) ** 0.5
    if attnlrp:
        a = torch.softmax(half(q, k.transpose(-2, -1), torch.matmul), -1)
        o = half(a, v, torch.matmul)
    else:
        o = torch.softmax(q @ k.transpose(-2, -1), -1).detach() @ v
    return mod.out_proj(o.transpose(1, 2).reshape(n, t, e))


def vit_forward(m, x, lrp, attnlrp=False):
    """torchvision's VisionTransformer forward; with lrp, the statistics, gates and (CP-LRP) the
    attention weights detached."""
    n = x.shape[0]
    h = torch.cat([m.class_token.expand(n, -1, -1), m._process_input(x)], 1) + m.encoder.pos_embedding
    for layer in m.encoder.layers:
        if not lrp:
            y = layer.ln_1(h)
            h = h + layer.self_attention(y, y, y, need_weights=False)[0]
            h = h + layer.mlp(layer.ln_2(h))
            continue
        h = h + mha(layer.self_attention, ln(layer.ln_1, h), attnlrp)
        y = layer.mlp[0](ln(layer.ln_2, h))
        y = y * (F.gelu(y) / y).detach()  # the gate held constant: identity for relevance
        h = h + layer.mlp[3](y)
    return m.heads((ln(m.encoder.ln, h) if lrp else m.encoder.ln(h))[:, 0])


def grad_x_input(m, x, t, **kw):
    x = x.clone().requires_grad_(True)
    y = vit_forward(m, x, **kw)
    y[torch.arange(len(t)), t].sum().backward()
    return x.grad, x.detach() * x.grad


def rollout(m, x):
    """Abnar & Zuidema: the class token's row of prod_l (A_l + I) / 2 over the patch tokens."""
    n = x.shape[0]
    with torch.no_grad():
        h = torch.cat([m.class_token.expand(n, -1, -1), m._process_input(x)], 1) + m.encoder.pos_embedding
        r = torch.eye(h.shape[1], dtype=torch.float64).expand(n, -1, -1)
        for layer in m.encoder.layers:
            y = layer.ln_1(h)
            out, a = layer.self_attention(y, y, y, need_weights=True, average_attn_weights=False)
            a = 0.5 * a.double().mean(1) + 0.5 * torch.eye(h.shape[1], dtype=torch.float64)
            r = a / a.sum(-1, keepdim=True) @ r
            h = h + out
            h = h + layer.mlp(layer.ln_2(h))
    g = int(round((h.shape[1] - 1) ** 0.5))
    return r[:, 0, 1:].reshape(n, g, g).numpy()


def main():
    tmp = tempfile.mkdtemp(prefix="sal_modern_")
    try:
        r = subprocess.run([sys.executable, os.path.join(HERE, "torch", "export_explain.py"), tmp], capture_output=True,
                           text=True)
        if r.returncode:
            print(r.stderr[-2000:])
            raise SystemExit("export failed")
        P = lambda *a: os.path.join(tmp, *a)  # noqa: E731
        run_tests(P)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def explain(P, model, method, *extra, out="a.npy"):
    rc, _, err = cli("explain", P(model + ".onnx"), "--input", P(model + "_x.npy"), "--method", method, "--out",
                     P(out), "--json", P("a.json"), "--chunk", 2, *extra)
    js = json.load(open(P("a.json"))) if rc == 0 else None
    return rc, err, (np.load(P(out)) if rc == 0 else None), js


def sweep(P):
    """Every method on every model (the U-Net with --target-mask) gives a finite map, or refuses in one line: naming the node and its op when it has no rule for it, or,
    for attention rollout without attention, the model; the sequence methods refuse inputs that are not
    one-hot DNA. Never a silent skip."""
    rc, out, err = cli("methods")
    names = [ln_ for ln_ in out.splitlines() if ln_ and not ln_.startswith(" ")]
    check(rc == 0 and len(names) > 30 and "attention_rollout" in names, "saliency methods: %s" % err)
    patterns = {}
    for model in ("vit", "vit14", "swin", "unet"):
        rc, _, err = cli("patterns", P(model + ".onnx"), "--data", P(model + "_x.npy"), "--out", P(model + "_p.npz"))
        patterns[model] = rc == 0
        check(rc == 0 or ("node '" in err and "(MatMul)" in err), "%s patterns: %s" % (model, err))
    ran = {}
    for model, tg in (("vit", ()), ("vit14", ()), ("swin", ()), ("unet", ("--target-mask", P("unet_mask.npy")))):
        for method in names:
            extra = ()
            if method in ("smoothgrad", "gradient_shap"):
                extra = ("--param", "samples=2", "--data", P(model + "_x.npy"))
            if method in ("patternnet", "pattern_attribution"):
                if not patterns[model]:
                    continue  # refused above, naming the node
                extra = ("--param", "patterns=" + P(model + "_p.npz"))
            rc, err, a, _ = explain(P, model, method, *extra, *tg)
            ok = rc == 0 and a.shape == np.load(P(model + "_x.npy")).shape and np.isfinite(a).all()
            refused = rc != 0 and "\n" not in err and (
                re.search(r"node '[^']+' \([A-Za-z]+\)", err) is not None
                or (method == "attention_rollout" and "has no softmax attention" in err)
                or (method in ("ism", "deeplift_shap", "hypothetical") and "needs one-hot sequences" in err))
            check(ok or refused, "%s %s: neither a map nor a refusal naming the node: %s" % (model, method, err))
            ran[model] = ran.get(model, 0) + ok
    # most methods run on each model (the ReLU-rule methods and DeepLIFT refuse LayerNorm)
    want = {"vit": 26, "vit14": 26, "swin": 25, "unet": 33}
    check(all(ran.get(k, 0) >= v for k, v in want.items()), "methods that ran: %s, want %s" % (ran, want))


def run_tests(P):
    # ---- ViT against PyTorch ----
    m = export_explain.make("vit")[0]
    x = torch.from_numpy(np.load(P("vit_x.npy")))
    logits = vit_forward(m, x, lrp=False).detach()
    check(close(logits.numpy(), np.load(P("vit_y_logits.npy")), 1e-5), "the reference forward is not the model's")
    t = logits.argmax(1)
    g, _ = grad_x_input(m, x, t, lrp=False)
    rc, err, a, _ = explain(P, "vit", "gradient")
    check(rc == 0 and close(a, g.numpy()), "vit gradient: %s" % (err or np.abs(a - g.numpy()).max()))
    for mode in ("constant", "attnlrp"):
        _, ref = grad_x_input(m, x, t, lrp=True, attnlrp=mode == "attnlrp")
        for model in ("vit", "vit14"):
            rc, err, a, js = explain(P, model, "lrp_0", "--param", "attention=" + mode, "--param", "stabilizer=1e-9")
            check(rc == 0 and close(a, ref.numpy(), 2e-4),
                  "%s lrp_0 attention=%s vs gradient x input of the detached network: %s"
                  % (model, mode, err or np.abs(a - ref.numpy()).max() / np.abs(ref.numpy()).max()))
    ref = rollout(m, x)
    for model in ("vit", "vit14"):
        rc, err, a, js = explain(P, model, "attention_rollout", "--param", "upsample=none")
        check(rc == 0 and a.shape == (2, 1, 4, 4) and close(a[:, 0], ref, 1e-5),
              "%s attention rollout vs its definition: %s" % (model, err or np.abs(a[:, 0] - ref).max()))

    # ---- every model: the methods of the list run; Grad-CAM maps the patch grid ----
    for model, grid in (("vit", (4, 4)), ("vit14", (4, 4)), ("swin", (4, 4))):
        for method in ("gradient", "integrated_gradients", "gradcam", "lrp_epsilon_plus", "occlusion"):
            rc, err, a, js = explain(P, model, method, *(("--layer-out", P("l.npy")) if method == "gradcam" else ()))
            check(rc == 0 and a.shape == (2, 3, 32, 32) and np.isfinite(a).all(), "%s %s: %s" % (model, method, err))
            if method == "gradcam" and rc == 0:
                lm = np.load(P("l.npy"))
                check(lm.shape == (2, 1) + grid and np.abs(lm).max() > 0,
                      "%s gradcam tokens=auto: layer map %s on layer %s" % (model, lm.shape, js.get("layer")))
        # vit14's opset-14 export decomposes its LayerNorms: they load as LayerNormalization too
        # (src/io/onnx_fuse.c)
        for method, node, op in (("guided_backprop", "LayerNormalization", "LayerNormalization"),
                                 ("deeplift", "LayerNormalization", "LayerNormalization")):
            rc, err, _, _ = explain(P, model, method)
            check(rc != 0 and "node '" in err and node in err and "(%s)" % op in err,
                  "%s %s should refuse naming the node: %s" % (model, method, err))
    sweep(P)
    rc, err, _, _ = explain(P, "swin", "attention_rollout")
    check(rc != 0 and "attn/Softmax' (Softmax)" in err and "windows" in err, "swin rollout: %s" % err)
    rc, out, err = cli("info", P("vit.onnx"), "--rules", "lrp_epsilon_plus")
    rules = {ln_.split()[1]: " ".join(ln_.split()[3:]) for ln_ in out.splitlines()[1:] if ln_.strip()}
    check(rc == 0 and any("statistics held constant" in v for k, v in rules.items() if "ln_1" in k)
          and any("attention weights (CP-LRP)" in v for v in rules.values())
          and any(k.endswith("/Softmax") and v.startswith("none") for k, v in rules.items()),
          "info --rules: %s" % (err or out[:2000]))
    rc, out, err = cli("info", P("vit.onnx"), "--rules", "integrated_gradients")
    check(rc != 0 and "decides no rules per node" in err, "info --rules integrated_gradients: %s" % err)

    # ---- U-Net: region targets against autograd ----
    ux = P("unet_x.npy")
    for outname in ("seg", "prob"):
        rc, err, a, js = explain(P, "unet", "gradient", "--target", "sum", "--output-name", outname)
        want = np.load(P("unet_gsum_%s.npy" % outname))
        check(rc == 0 and close(a, want) and js["target"] == "sum" and js["output_name"] == outname,
              "unet gradient of sum(%s): %s" % (outname, err or np.abs(a - want).max()))
        ysum = np.load(P("unet_y_%s.npy" % outname)).reshape(2, -1).sum(1)
        check(rc == 0 and np.allclose(js["outputs"], ysum, rtol=1e-4, atol=1e-4), "unet sum(%s) value" % outname)
    rc, err, a, js = explain(P, "unet", "gradient", "--target-mask", P("unet_mask.npy"))
    check(rc == 0 and close(a, np.load(P("unet_gmask.npy"))) and js["target"] == "mask",
          "unet gradient of sum(M seg): %s" % err)
    np.save(P("ones.npy"), np.ones((3, 16, 16), np.float32))
    for method in ("gradient", "integrated_gradients", "gradcam", "lrp_epsilon_plus", "occlusion"):
        rc1, err1, a1, _ = explain(P, "unet", method, "--target", "sum", out="s.npy")
        rc2, err2, a2, _ = explain(P, "unet", method, "--target-mask", P("ones.npy"), out="m.npy")
        check(rc1 == 0 and rc2 == 0 and np.array_equal(a1, a2), "unet %s: a whole-map mask differs from the sum: %s %s"
              % (method, err1, err2))
    np.save(P("bad.npy"), np.ones((5, 16), np.float32))
    for extra, needle in (((), "target max: output 'seg'"),
                          (("--target-mask", P("bad.npy")), "target mask of shape (5,16) does not fit output 'seg'"),
                          (("--target", "sum", "--output-name", "nope"), "output name 'nope' is not an output"),
                          (("--target", "sum", "--output", "prob"), "target sum: probabilities are of classes")):
        rc, err, _, _ = explain(P, "unet", "gradient", *extra)
        check(rc != 0 and needle in err and "\n" not in err, "unet %s: %s" % (" ".join(extra), err))
    rc, err, _, _ = explain(P, "vit", "gradient", "--target", "7")
    check(rc != 0 and "target class 7 is out of range of output 'logits'" in err, "vit --target 7: %s" % err)
    del ux


if __name__ == "__main__":
    main()
