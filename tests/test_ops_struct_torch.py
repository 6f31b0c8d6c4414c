#!/usr/bin/python3
"""The structural ops against PyTorch: exports the models of tests/torch/export_struct.py (U-Net
with ConvTranspose and bilinear Resize, 1-D transposed convolutions, nearest Upsample/Resize at
opsets 9 and 10, a ViT-style attention block with Einsum, Split and LayerNormalization at opset 17,
group/instance normalization with max/min/L2 reductions, CumSum and Tile) into a temporary folder
and runs $SAL_BUILD/tools/torch_compare on each: logits within 1e-4 and input gradients within
1e-3 of PyTorch autograd, on the batch and on one sample. Prints one line per model and a final
"N passed, M failed"; exits non-zero on any failure."""
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
    sys.path.insert(0, os.path.join(HERE, "torch"))
    import export_struct  # noqa: E402  (needs torch: run with Debian's /usr/bin/python3)

    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="sal_struct.")
    try:
        export = subprocess.run([sys.executable, os.path.join(HERE, "torch", "export_struct.py"), tmp],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        print("\n".join(l for l in export.stdout.splitlines() if l.startswith(("exported", "FAIL"))))
        if export.returncode != 0:
            print("FAIL export (exit %d)" % export.returncode)
            print(export.stdout[-3000:])
            print("%d passed, %d failed" % (passed, failed + 1))
            return 1
        for name in export_struct.MODELS:
            r = subprocess.run([tool, os.path.join(tmp, name)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            ok = r.returncode == 0
            passed += ok
            failed += not ok
            print("%s %s" % ("ok  " if ok else "FAIL", name))
            print("    " + r.stdout.rstrip().replace("\n", "\n    "))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
