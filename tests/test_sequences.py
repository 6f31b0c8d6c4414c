#!/usr/bin/python3
"""Sequences end to end through the CLI, against independent references:
  - `saliency data dna`: NPY, masks and FASTA agree (the FASTA letters are the one-hot columns,
    the headers hold the labels); FASTA input with a bad letter fails naming file and line and
    writes nothing; N reads as zero or uniform;
  - `saliency train --arch seqcnn` learns the planted motifs (held-out accuracy well above chance);
  - `saliency audit motif`: every method's AUROC and average precision equal SciPy's Mann-Whitney
    AUROC and a NumPy average precision computed here from the maps `saliency explain` writes; the
    planted-mask oracle ranks first with 1.0, the random map near 0.5;
  - logos: `saliency heatmap --out F.svg` and `--logos` write well-formed SVG with the four colours;
    the report shows the motif section and its logos.
Prints one line per check and "N passed, M failed"; exits non-zero on any failure."""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
passed = failed = 0


def check(ok, what):
    global passed, failed
    passed += bool(ok)
    failed += not ok
    print("%s %s" % ("ok  " if ok else "FAIL", what))


def auroc(s, y):
    from scipy.stats import mannwhitneyu
    return mannwhitneyu(s[y], s[~y], alternative="two-sided").statistic / (y.sum() * (~y).sum())


def average_precision(s, y):
    """Precision at each distinct threshold, weighted by the recall it adds."""
    import numpy as np
    thr = np.unique(s)[::-1]
    ap, prev = 0.0, 0.0
    for t in thr:
        sel = s >= t
        tp = (y & sel).sum()
        rec, prec = tp / y.sum(), tp / sel.sum()
        ap += (rec - prev) * prec
        prev = rec
    return ap


def main():
    import numpy as np
    build = os.environ.get("SAL_BUILD", "build")
    build = build if os.path.isabs(build) else os.path.join(ROOT, build)
    exe = os.path.join(build, "saliency")
    tmp = tempfile.mkdtemp(prefix="test_sequences_")

    def run(*args, ok=True):
        r = subprocess.run([exe] + list(args), cwd=tmp, capture_output=True, text=True)
        if ok and r.returncode:
            print(r.stdout, r.stderr)
        return r

    # ---- data ----
    r = run("data", "dna", "--out", "tr", "--count", "1200", "--length", "100", "--seed", "1")
    run("data", "dna", "--out", "te", "--count", "48", "--length", "100", "--seed", "2")
    check(r.returncode == 0, "data dna writes a training set")
    x, y, m = (np.load(os.path.join(tmp, "te_%s.npy" % k)) for k in ("x", "y", "masks"))
    check(x.shape == (48, 4, 100) and y.shape == (48,) and m.shape == (48, 100), "shapes (N,4,L), (N), (N,L)")
    with open(os.path.join(tmp, "te.fa")) as f:
        recs = f.read().split(">")[1:]
    seqs = ["".join(r.splitlines()[1:]) for r in recs]
    want = ["".join("ACGT"[b] for b in xi.argmax(0)) for xi in x]
    check(seqs == want, "the FASTA letters are the one-hot columns")
    check(all(r.splitlines()[0].endswith("label=%d" % c) for r, c in zip(recs, y)), "FASTA headers hold the labels")
    # classes: 0 none, 1 CTCF, 2 SPI1, and the mask holds exactly that motif
    check(all(set(np.unique(mi)) == ({0} if c == 0 else {0, int(c)}) for mi, c in zip(m, y)), "masks match the labels")

    with open(os.path.join(tmp, "bad.fa"), "w") as f:
        f.write(">a\nACGT\n>b\nAC\nGZ\n")
    r = run("data", "dna", "--input", "bad.fa", "--out", "bad", ok=False)
    check(r.returncode != 0 and "bad.fa:5" in r.stderr and "'Z'" in r.stderr and not os.path.exists(os.path.join(tmp, "bad_x.npy")),
          "a bad letter fails naming the file and line, and writes nothing: " + r.stderr.strip())
    with open(os.path.join(tmp, "n.fa"), "w") as f:
        f.write(">a\nACGN\n>b\nnnTT\n")
    run("data", "dna", "--input", "n.fa", "--out", "n", "--n", "uniform")
    xn = np.load(os.path.join(tmp, "n_x.npy"))
    check(xn.shape == (2, 4, 4) and np.allclose(xn[0, :, 3], 0.25) and xn[1, 3, 2] == 1, "N as uniform columns")

    # ---- model ----
    r = run("train", "--arch", "seqcnn", "--data", "tr_x.npy:tr_y.npy", "--test", "te_x.npy:te_y.npy",
            "--out", "seq.onnx", "--epochs", "6", "--lr", "3e-3", "--seed", "1")
    acc = [float(l.split()[2]) for l in r.stdout.splitlines() if l.startswith("test accuracy")]
    check(r.returncode == 0 and acc and acc[0] > 0.6, "seqcnn learns the motifs: held-out accuracy %s" % acc)

    # ---- motif audit against maps computed here ----
    methods = ["gradient_x_input", "ism"]
    r = run("audit", "motif", "seq.onnx", "--input", "te_x.npy", "--masks", "te_masks.npy", "--limit", "16",
            "--methods", ",".join(methods), "--json", "motif.json", "--logos", "motif-logos.svg", "--quiet")
    check(r.returncode == 0, "audit motif runs")
    rep = json.load(open(os.path.join(tmp, "motif.json")))
    res = {q["label"]: q for q in rep["results"]}
    for meth in methods:
        run("explain", "seq.onnx", "--input", "te_x.npy", "--method", meth, "--out", meth + ".npy")
        a = np.load(os.path.join(tmp, meth + ".npy"))[:16]
        score = np.abs(a.astype(np.float64)).sum(1).astype(np.float32)
        rocs, aps = [], []
        for i in range(16):
            yy = m[i] != 0
            if yy.any() and not yy.all():
                rocs.append(auroc(score[i], yy))
                aps.append(average_precision(score[i], yy))
        got = res[meth]["metrics"] if "metrics" in res[meth] else res[meth]
        check(abs(got["auroc"] - np.mean(rocs)) < 1e-6 and abs(got["auprc"] - np.mean(aps)) < 1e-6,
              "%s: AUROC %.6f / AUPRC %.6f, here %.6f / %.6f" % (meth, got["auroc"], got["auprc"], np.mean(rocs), np.mean(aps)))
    o = res["planted positions (oracle)"]
    o = o.get("metrics", o)
    rnd = res["random map (reference)"]
    rnd = rnd.get("metrics", rnd)
    best = max(res.values(), key=lambda q: q.get("metrics", q)["auroc"])
    check(o["auroc"] == 1 and o["auprc"] == 1 and best["label"] == "planted positions (oracle)", "the oracle ranks first")
    check(0.35 < rnd["auroc"] < 0.65, "the random map sits near 0.5 (%.3f)" % rnd["auroc"])

    # ---- logos ----
    run("heatmap", "ism.npy", "--out", "ism.svg", "--sample", "1", "--window", "10:60")
    for f in ("ism.svg", "motif-logos.svg"):
        try:
            root = ET.parse(os.path.join(tmp, f)).getroot()
            fills = {e.get("fill") for e in root.iter() if e.get("fill")}
            check(root.tag.endswith("svg") and {"#109648", "#255c99", "#f7b32b", "#d62839"} <= fills, f + ": SVG with the four letters")
        except ET.ParseError as e:
            check(False, f + ": " + str(e))
    r = run("heatmap", "ism.npy", "--out", "x.svg", "--window", "50:10", ok=False)
    check(r.returncode != 0 and "--window" in r.stderr and not os.path.exists(os.path.join(tmp, "x.svg")), "a bad window fails")
    os.makedirs(os.path.join(tmp, "rep"))
    for f in ("motif.json", "motif-logos.svg"):
        os.rename(os.path.join(tmp, f), os.path.join(tmp, "rep", f))
    r = run("report", "--in", "rep", "--out", "out")
    page = open(os.path.join(tmp, "out", "index.html")).read() if r.returncode == 0 else ""
    check("Motif recovery" in page and "motif-logos.svg" in page and os.path.exists(os.path.join(tmp, "out", "motif-logos.svg")),
          "the report shows the motif audit and its logos")
    subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
