#!/usr/bin/python3
"""The library against PyTorch: exports the reference models of tests/torch/export_models.py into
a temporary folder, then runs $SAL_BUILD/tools/torch_compare on each (logits and input gradients).
A last check feeds the tool a deliberately wrong reference, so a tool that passes everything fails.
Prints one line per check and a final "N passed, M failed"; exits non-zero on any failure."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "torch"))


def main():
    build = os.environ.get("SAL_BUILD", "build")
    tool = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build), "tools", "torch_compare")
    if not os.access(tool, os.X_OK):
        print("%s not found: build it first (make BUILD=%s)" % (tool, build))
        print("0 passed, 1 failed")
        return 1
    import export_models  # noqa: E402  (needs torch: run with Debian's /usr/bin/python3)
    import numpy as np

    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="sal_torch.")
    try:
        export = subprocess.run([sys.executable, os.path.join(HERE, "torch", "export_models.py"), tmp],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        print(export.stdout.rstrip())
        if export.returncode != 0:
            print("FAIL export (exit %d)" % export.returncode)
            print("0 passed, 1 failed")
            return 1
        for name in export_models.MODELS:
            r = subprocess.run([tool, os.path.join(tmp, name)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            ok = r.returncode == 0
            passed += ok
            failed += not ok
            print("%s %s" % ("ok  " if ok else "FAIL", name))
            print("    " + r.stdout.rstrip().replace("\n", "\n    "))

        # negative control: logits off by 1e-3 of their scale and a gradient off by 1e-2 must both fail
        for what, rel in (("logits", 1e-3), ("grad", 1e-2)):
            bad = os.path.join(tmp, "bad_" + what)
            shutil.copytree(os.path.join(tmp, "mlp"), bad)
            f = os.path.join(bad, what + ".npy")
            a = np.load(f)
            a.flat[0] += np.float32(rel * np.abs(a).max())
            np.save(f, a)
            r = subprocess.run([tool, bad], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            ok = r.returncode == 1 and "FAIL" in r.stdout
            passed += ok
            failed += not ok
            print("%s a perturbed %s reference is caught (exit %d)" % ("ok  " if ok else "FAIL", what, r.returncode))
            if not ok:
                print("    " + r.stdout.rstrip().replace("\n", "\n    "))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
