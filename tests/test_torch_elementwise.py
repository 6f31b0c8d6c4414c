#!/usr/bin/python3
"""The activations, math, comparison and Where ops against PyTorch: exports the models of
tests/torch/export_elementwise.py (PyTorch exports at opsets 9 to 17, and onnx.helper graphs at
opset 20 for Gelu, Mish, Sum, Mean and three-input Max/Min) into a temporary folder, then runs
$SAL_BUILD/tools/torch_compare on each (logits within 1e-4, input gradients within 1e-3, relative to
the largest reference value). A deliberately perturbed reference must fail.
Prints one line per check and a final "N passed, M failed"; exits non-zero on any failure."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    build = os.environ.get("SAL_BUILD", "build")
    tool = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build), "tools", "torch_compare")
    if not os.access(tool, os.X_OK):
        print("%s not found: build it first (make BUILD=%s)" % (tool, build))
        print("0 passed, 1 failed")
        return 1
    import numpy as np

    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="sal_torch_elem.")
    try:
        script = os.path.join(HERE, "torch", "export_elementwise.py")
        export = subprocess.run([sys.executable, script, tmp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
        print(export.stdout.rstrip())
        if export.returncode != 0:
            print("FAIL export (exit %d)" % export.returncode)
            print("0 passed, 1 failed")
            return 1
        names = sorted(n for n in os.listdir(tmp) if os.path.isfile(os.path.join(tmp, n, "model.onnx")))
        for name in names:
            r = subprocess.run([tool, os.path.join(tmp, name)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            ok = r.returncode == 0
            passed += ok
            failed += not ok
            print("%s %s" % ("ok  " if ok else "FAIL", name))
            print("    " + r.stdout.rstrip().replace("\n", "\n    "))
        if len(names) < 10:
            failed += 1
            print("FAIL only %d models were exported" % len(names))

        # negative control: an input gradient off by 1e-2 of its scale must fail
        bad = os.path.join(tmp, "bad_grad")
        shutil.copytree(os.path.join(tmp, "helper_opset20"), bad)
        f = os.path.join(bad, "grad.npy")
        a = np.load(f)
        a.flat[0] += np.float32(1e-2 * np.abs(a).max())
        np.save(f, a)
        r = subprocess.run([tool, bad], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        ok = r.returncode == 1 and "FAIL" in r.stdout
        passed += ok
        failed += not ok
        print("%s a perturbed gradient reference is caught (exit %d)" % ("ok  " if ok else "FAIL", r.returncode))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
