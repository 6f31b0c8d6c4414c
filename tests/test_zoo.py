#!/usr/bin/python3
"""The model zoo against PyTorch: tests/torch/export_zoo.py exports torchvision's architectures and
a few hand-built dense models (seeded random weights, eval mode, dynamic batch) into a cache
folder; for each model, $SAL_BUILD/tools/torch_compare checks the outputs (1e-4 of the largest
reference magnitude) and the input gradients (1e-3) against autograd at batch N and batch 1, and
`saliency explain --method gradient` through the CLI must give autograd's gradient too (within
1e-3; dense outputs with --target-mask selecting channel targets[i] of sample i, the sum that
grad.npy differentiates).

  tests/test_zoo.py            the subset that `make test` runs (SUBSET below)
  tests/test_zoo.py --full     every model of export_zoo.py (`make test-zoo`)
  tests/test_zoo.py NAME ...   these models, with every check of the full run

Exports are cached in $SAL_ZOO_CACHE (default $SAL_BUILD/zoo) and made again only when
export_zoo.py changes. Prints a table (model, opset, nodes, op types, load, output error,
gradient error, CLI explain error, seconds, status) and "N passed, M failed". A model that cannot
load because the library lacks an op is a FAIL naming the ops it lacks (from src/ops/oplist.h).
Run with Debian's /usr/bin/python3.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "torch"))

# models of `make test`: different op families, small inputs
SUBSET = ["resnet18", "squeezenet1_1", "mobilenet_v2_op11", "heatmap", "mobilenet_v3_small", "vit_tiny",
          "vit_tiny_op17", "swin_tiny", "unet", "unet_op9", "dbnet"]
# subset models also checked through `saliency explain` (the full run checks every model)
EXPLAIN_SUBSET = {"resnet18", "heatmap", "swin_tiny", "unet"}
# subset models also put through the method sweep (the full run sweeps every model)
SWEEP_SUBSET = {"vit_tiny", "mobilenet_v3_small", "dbnet"}
# patch grid of the last token layer, from each model's configuration in export_zoo.py: ViT
# image / patch; Swin image / (patch * 2^(stages - 1)), one patch merging between stages
GRID = {"vit_tiny": (4, 4), "vit_tiny_op17": (4, 4), "vit_b_16": (4, 4), "swin_tiny": (4, 4), "swin_t": (2, 2)}

LOGIT_TOL, GRAD_TOL, CORR_MIN = 1e-4, 1e-3, 0.999


def registered_ops():
    """Op types the library runs: the registry plus Constant, which the importer folds."""
    with open(os.path.join(ROOT, "src", "ops", "oplist.h")) as f:
        return set(re.findall(r"^SAL_OP\((\w+)\)", f.read(), re.M)) | {"Constant"}


def explain_check(cli, d, meta, tmp):
    """Relative error and worst per-sample correlation of `saliency explain --method gradient`
    against grad.npy, or an error message. Dense outputs are explained with --target-mask: ones on
    channel targets[i] of sample i, the sum that grad.npy differentiates."""
    import numpy as np
    targets = np.load(os.path.join(d, "targets.npy"))
    out = os.path.join(tmp, "a.npy")
    if meta["dense"]:
        mask = np.zeros([len(targets)] + meta["output_shape"][1:], np.float32)
        mask[np.arange(len(targets)), targets] = 1
        np.save(os.path.join(tmp, "mask.npy"), mask)
        target = ["--target-mask", os.path.join(tmp, "mask.npy")]
    else:
        target = ["--target", ",".join(str(int(t)) for t in targets)]
    r = subprocess.run([cli, "explain", os.path.join(d, "model.onnx"), "--input", os.path.join(d, "x.npy"),
                        "--method", "gradient", "--out", out] + target,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        return None, None, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "exit %d" % r.returncode
    a = np.load(out).astype(np.float64)
    g = np.load(os.path.join(d, "grad.npy")).astype(np.float64)
    if a.shape != g.shape:
        return None, None, "explain wrote shape %s, autograd's is %s" % (a.shape, g.shape)
    rel = float(np.abs(a - g).max() / max(np.abs(g).max(), 1e-30))
    return rel, min(correlation(a[i].ravel(), g[i].ravel()) for i in range(len(g))), None


def target_args(d, meta, tmp):
    """CLI target arguments and the per-sample score weights: a one-hot row per sample, on channel
    targets[i] of a dense output (the --target-mask that explain_check uses), else on class targets[i]."""
    import numpy as np
    targets = np.load(os.path.join(d, "targets.npy"))
    w = np.zeros([len(targets)] + meta["output_shape"][1:], np.float32)
    w[np.arange(len(targets)), targets] = 1
    if meta["dense"]:
        np.save(os.path.join(tmp, "mask.npy"), w)
        return ["--target-mask", os.path.join(tmp, "mask.npy")], w
    return ["--target", ",".join(str(int(t)) for t in targets)], w


def sweep(cli, name, d, meta, tmp, sabotage=False):
    """The methods a user tries first, through the CLI: each must give a finite, non-zero map of the
    input's shape, with checks that can fail:
      - integrated_gradients (4 steps): equals the 4-node Gauss-Legendre sum of `explain --method
        gradient` at the scaled inputs, times x;
      - gradcam, tokens=auto, relu=false: the layer map of a transformer has the patch grid's size (GRID);
      - lrp_epsilon_plus: runs (its rules are checked against PyTorch on small graphs elsewhere);
      - occlusion with four quadrant windows: each quadrant's value equals f_t(x) - f_t(x with the
        quadrant zeroed), computed by `saliency run` on the occluded inputs;
      - attention_rollout: runs on ViTs; elsewhere refuses in one line naming the model (no
        attention) or the Softmax node whose attention it does not model (windows).
    sabotage runs IG with 3 steps and occlusion with fill 1 against the same references: the negative
    control, which must fail both. Returns (list of failure strings, list of notes)."""
    import numpy as np
    x = np.load(os.path.join(d, "x.npy"))
    tg, w = target_args(d, meta, tmp)
    n, hh, ww = x.shape[0], x.shape[2], x.shape[3]
    fails, notes = [], []

    def explain(method, *extra):
        out, js = os.path.join(tmp, "s.npy"), os.path.join(tmp, "s.json")
        r = subprocess.run([cli, "explain", os.path.join(d, "model.onnx"), "--input", os.path.join(d, "x.npy"),
                            "--method", method, "--out", out, "--json", js] + tg + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0:
            return None, None, r.stdout.strip()
        a = np.load(out)
        if a.shape != x.shape or not np.isfinite(a).all() or not np.abs(a).max() > 0:
            return None, None, "map of shape %s, finite %s, max |a| %g" % (
                a.shape, np.isfinite(a).all(), float(np.abs(a).max()))
        with open(js) as f:
            return a, json.load(f), None

    a, js, err = explain("integrated_gradients", "--param", "steps=%d" % (3 if sabotage else 4))
    if err:
        fails.append("integrated_gradients: " + err)
    else:
        # the 4-node Gauss-Legendre rule over gradients at the scaled inputs t x (zero baseline), the
        # gradients from `explain --method gradient` on all 4 N rows at once (gradients are checked
        # against autograd above)
        u, wl = np.polynomial.legendre.leggauss(4)
        t, wt = (u + 1) / 2, wl / 2
        np.save(os.path.join(tmp, "xs.npy"), np.concatenate([ti * x for ti in t]).astype(np.float32))
        tg4 = list(tg)
        if meta["dense"]:
            np.save(os.path.join(tmp, "mask4.npy"), np.concatenate([w] * 4))
            tg4[1] = os.path.join(tmp, "mask4.npy")
        else:
            tg4[1] = ",".join([tg[1]] * 4)
        r = subprocess.run([cli, "explain", os.path.join(d, "model.onnx"), "--input", os.path.join(tmp, "xs.npy"),
                            "--method", "gradient", "--out", os.path.join(tmp, "gs.npy")] + tg4,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0:
            fails.append("integrated_gradients reference: " + r.stdout.strip())
        else:
            g = np.load(os.path.join(tmp, "gs.npy")).astype(np.float64).reshape((4,) + x.shape)
            ref = np.tensordot(wt, g, 1) * x
            e = float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))
            notes.append("IG(4) completeness %.1e" % js["checks"]["completeness_rel"])
            # near max-pool ties and ReLU kinks, batches of other rows round differently and a few
            # elements take the other branch: there the correlation decides, as for the gradient, or
            # the model's own float32 spread (PyTorch's float32 gradient against float64): at ResNet-50's
            # 1334 near kinks IG came 4.6e-2 from the quadrature under oneDNN's convolutions (SAL_WINO=0;
            # 4.3e-2 and correlation 0.9988 under our former F(4x4)), PyTorch's own gradient 5.9e-2 off
            ties = meta.get("near_ties", 0) + meta.get("near_kinks", 0)
            corr = min(correlation(a[i].ravel(), ref[i].ravel()) for i in range(n))
            spread = meta.get("torch_f32_grad_rel", 0.0)
            if ties and not e <= GRAD_TOL and corr >= CORR_MIN:
                notes.append("IG by correlation %.5f" % corr)
            elif ties and not e <= GRAD_TOL and e <= spread:
                notes.append("IG %.1e from the quadrature, within PyTorch's own float32 spread %.1e" % (e, spread))
            elif not e <= GRAD_TOL:
                fails.append("integrated_gradients: %.1e from the quadrature of gradients" % e)

    lo = os.path.join(tmp, "l.npy")
    # without the final ReLU: a random network's CAM can be negative everywhere, and then zero
    a, js, err = explain("gradcam", "--param", "tokens=auto", "--param", "relu=false", "--layer-out", lo)
    if err:
        fails.append("gradcam: " + err)
    elif name in GRID and np.load(lo).shape[2:] != GRID[name]:
        fails.append("gradcam tokens=auto: layer map %s, patch grid %s" % (np.load(lo).shape[2:], GRID[name]))

    a, js, err = explain("lrp_epsilon_plus")
    if err:
        fails.append("lrp_epsilon_plus: " + err)

    h2, w2 = hh // 2, ww // 2
    a, js, err = explain("occlusion", "--param", "window=%dx%d" % (h2, w2), "--param", "stride=%dx%d" % (h2, w2),
                          "--param", "fill=%d" % sabotage)
    if err:
        fails.append("occlusion: " + err)
    else:
        quads = [(0, h2, 0, w2), (0, h2, w2, ww), (h2, hh, 0, w2), (h2, hh, w2, ww)]
        xs = [x]
        for r0, r1, c0, c1 in quads:
            xo = x.copy()
            xo[:, :, r0:r1, c0:c1] = 0
            xs.append(xo)
        np.save(os.path.join(tmp, "xo.npy"), np.concatenate(xs))
        r = subprocess.run([cli, "run", os.path.join(d, "model.onnx"), "--input", os.path.join(tmp, "xo.npy"),
                            "--out", os.path.join(tmp, "yo.npy")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0:
            fails.append("occlusion reference: " + r.stdout.strip())
        else:
            y = np.load(os.path.join(tmp, "yo.npy")).astype(np.float64)
            f = (y.reshape(5, n, -1) * w.reshape(1, n, -1)).sum(2)
            err_q = max(abs(float(a[i, 0, q[0], q[2]]) - (f[0, i] - f[k + 1, i]))
                        for i in range(n) for k, q in enumerate(quads))
            scale = max(1.0, float(np.abs(f).max()))
            if not err_q <= 1e-4 * scale:
                fails.append("occlusion: quadrant values differ from f(x) - f(occluded) by %.1e" % err_q)

    a, js, err = explain("attention_rollout")
    if name.startswith("vit"):
        if err:
            fails.append("attention_rollout: " + err)
    elif err is None:
        notes.append("rollout ran")
    elif "\n" in err or not (re.search(r"node '[^']+' \(Softmax\)", err) or "has no softmax attention" in err):
        fails.append("attention_rollout: neither a map nor a one-line refusal: " + err)
    else:
        notes.append("rollout refused (%s)" % ("windowed attention" if "node '" in err else "no attention"))
    return fails, notes


def correlation(a, b):
    """Pearson correlation as torch_compare computes it: 1 when both are constant, 0 when one is."""
    da, db = a - a.mean(), b - b.mean()
    saa, sbb = float((da * da).sum()), float((db * db).sum())
    if saa == 0 or sbb == 0:
        return 1.0 if saa == sbb else 0.0
    return float((da * db).sum()) / (saa * sbb) ** 0.5


def run_model(name, meta, d, tool, cli, missing, want_explain, want_sweep, tmp):
    """One row of the table: dict with the measures, ok (bool) and a note."""
    row = {"name": name, "opset": meta.get("opset"), "nodes": meta.get("nodes"), "types": len(meta.get("ops", {})),
           "load": "-", "logits": None, "grad": None, "explain": None, "ok": False, "note": ""}
    if "export_error" in meta:
        row["status"] = "NOEXPORT"
        row["note"] = "PyTorch 1.13 cannot export it: " + meta["export_error"]
        return row
    t0 = time.time()
    ties = meta.get("near_ties", 0) + meta.get("near_kinks", 0)
    args = [tool] + (["--near-ties"] if ties else []) + [d]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    row["log"] = r.stdout
    sm = re.search(r"^summary logits=(\S+) grad=(\S+) corr=(\S+) criterion=(\S+) result=(\S+)", r.stdout, re.M)
    if r.returncode == 2 or not sm:
        row["load"] = "FAIL"
        lines = r.stdout.strip().splitlines()
        row["note"] = ("lacks " + ", ".join(sorted(missing))) if missing else (lines[-1] if lines else "no output")
        if missing and lines:
            row["note"] += " (%s)" % lines[0].split(": ", 1)[-1]
        row["status"] = "FAIL"
        row["seconds"] = time.time() - t0
        return row
    row["load"] = "ok"
    row["logits"], row["grad"], corr = float(sm.group(1)), float(sm.group(2)), float(sm.group(3))
    ok = r.returncode == 0
    if sm.group(4) == "correlation":
        row["note"] = ("gradient by correlation %.5f: near-ties in the reference (%d max-pool, %d kink; "
                       "PyTorch's own float32 gradient is off by %.1e)" % (
                           corr, meta["near_ties"], meta["near_kinks"], meta.get("torch_f32_grad_rel", float("nan"))))
    elif not ok:
        row["note"] = "mismatch (gradient correlation %.5f)" % corr
    if want_explain:
        rel, ecorr, err = explain_check(cli, d, meta, tmp)
        if err:
            ok = False
            row["note"] += ("; " if row["note"] else "") + "explain: " + err
            row["explain"] = float("nan")
        else:
            row["explain"] = rel
            if not rel <= GRAD_TOL:
                if ties and ecorr >= CORR_MIN:
                    row["note"] += ("; " if row["note"] else "") + "explain by correlation %.5f" % ecorr
                else:
                    ok = False
                    row["note"] += ("; " if row["note"] else "") + "explain differs (corr %.5f)" % ecorr
    if want_sweep:
        fails, notes = sweep(cli, name, d, meta, tmp)
        row["sweep"] = "FAIL" if fails else "ok"
        ok = ok and not fails
        row["note"] += ("; " if row["note"] else "") + "; ".join(["sweep: " + f for f in fails] + notes)
    row["ok"] = ok
    row["status"] = "ok" if ok else "FAIL"
    row["seconds"] = time.time() - t0
    return row


def fmt(v):
    if v is None:
        return "-"
    return "%.1e" % v if v == v else "err"


def main(argv):
    full = "--full" in argv
    names = [a for a in argv[1:] if not a.startswith("--")]
    named = bool(names)  # models named on the command line get every check
    build = os.environ.get("SAL_BUILD", "build")
    build = build if os.path.isabs(build) else os.path.join(ROOT, build)
    tool = os.path.join(build, "tools", "torch_compare")
    cli = os.path.join(build, "saliency")
    cache = os.environ.get("SAL_ZOO_CACHE", os.path.join(build, "zoo"))
    for exe in (tool, cli):
        if not os.access(exe, os.X_OK):
            print("%s not found: build it first (make BUILD=%s)" % (exe, build))
            print("0 passed, 1 failed")
            return 1
    import export_zoo  # needs torch: Debian's /usr/bin/python3
    if names:
        unknown = [n for n in names if n not in export_zoo.MODELS]
        if unknown:
            print("unknown models: %s (have: %s)" % (" ".join(unknown), " ".join(export_zoo.MODELS)))
            return 2
    else:
        names = list(export_zoo.MODELS) if full else SUBSET
    have = registered_ops()
    os.makedirs(cache, exist_ok=True)

    # exports first (one torch process; cached ones are reused)
    metas = {}
    t0 = time.time()
    for n in names:
        meta = export_zoo.cached(cache, n)
        if meta is None:
            import torch
            torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
            meta = export_zoo.export(n, cache)
            print("exported %s in %.1fs%s" % (n, meta["export_seconds"],
                                               ": " + meta["export_error"] if "export_error" in meta else ""),
                  flush=True)
        metas[n] = meta
    print("exports ready in %.1fs (cache %s)" % (time.time() - t0, cache), flush=True)

    passed = failed = noexport = 0
    rows = []
    tmp = tempfile.mkdtemp(prefix="sal_zoo.")
    hdr = "%-30s %5s %5s %5s %-4s %8s %8s %8s %6s  %s" % ("model", "opset", "nodes", "types", "load", "output",
                                                         "gradient", "explain", "sec", "status")
    print(hdr)
    print("-" * len(hdr))
    try:
        for n in names:
            meta, d = metas[n], os.path.join(cache, n)
            missing = set(meta.get("ops", {})) - have
            want_explain = full or named or n in EXPLAIN_SUBSET
            row = run_model(n, meta, d, tool, cli, missing, want_explain, full or named or n in SWEEP_SUBSET, tmp)
            if row["status"] == "NOEXPORT":
                noexport += 1
            elif row["ok"]:
                passed += 1
            else:
                failed += 1
            rows.append(row)
            print("%-30s %5s %5s %5s %-4s %8s %8s %8s %6.1f  %-8s %s" % (
                n, row["opset"] or "-", row["nodes"] or "-", row["types"] or "-", row["load"], fmt(row["logits"]),
                fmt(row["grad"]), fmt(row["explain"]), row.get("seconds", 0.0), row["status"], row["note"]), flush=True)
            if row["status"] == "FAIL" and row["load"] == "ok":
                print("    " + row["log"].rstrip().replace("\n", "\n    "))

        # negative control: the tool and the explain check must catch a wrong seed (targets + 1),
        # on the first classifier and the first dense model that pass
        import numpy as np
        for dense in (False, True):
            ref = next((r for r in rows if r["ok"] and metas[r["name"]]["dense"] == dense), None)
            if ref is None:
                continue
            meta = metas[ref["name"]]
            src, bad = os.path.join(cache, ref["name"]), os.path.join(tmp, "bad_" + ref["name"])
            os.makedirs(bad)
            for f in ("model.onnx", "x.npy", "logits.npy", "grad.npy"):
                os.symlink(os.path.join(src, f), os.path.join(bad, f))
            t = np.load(os.path.join(src, "targets.npy"))
            np.save(os.path.join(bad, "targets.npy"), (t + 1) % meta["output_shape"][1])
            r = subprocess.run([tool, "--near-ties", bad], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            ok = r.returncode == 1 and "result=MISMATCH" in r.stdout
            rel, _, err = explain_check(cli, bad, meta, tmp)
            ok2 = err is None and rel > GRAD_TOL
            for good, what in ((ok, "torch_compare"), (ok2, "the explain check")):
                passed += good
                failed += not good
                print("%s %s catches a wrong target on %s" % ("ok  " if good else "FAIL", what, ref["name"]))
        # negative control of the sweep: a wrong IG step count and a wrong occlusion fill must fail
        ref = next((r for r in rows if r["ok"] and r.get("sweep") == "ok"), None)
        if ref is not None:
            fails, _ = sweep(cli, ref["name"], os.path.join(cache, ref["name"]), metas[ref["name"]], tmp, True)
            good = any(f.startswith("integrated_gradients: ") for f in fails) and any(
                f.startswith("occlusion: ") for f in fails)
            passed += good
            failed += not good
            print("%s the sweep catches a wrong IG rule and occlusion fill on %s" % ("ok  " if good else "FAIL",
                                                                                  ref["name"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lacking = {}
    for r in rows:
        if r["load"] == "FAIL":
            for op in set(metas[r["name"]].get("ops", {})) - have:
                lacking.setdefault(op, []).append(r["name"])
    if lacking:
        print("ops the failing models lack: " + "; ".join(
            "%s (%d: %s)" % (op, len(ms), " ".join(ms)) for op, ms in sorted(lacking.items())))
    print("zoo: %d models: %d ok, %d failed, %d not exportable by PyTorch"
          % (len(rows), sum(r["ok"] for r in rows), sum(r["status"] == "FAIL" for r in rows), noexport))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
