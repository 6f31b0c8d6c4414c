#!/usr/bin/python3
"""Models written by sal_model_save must satisfy the onnx package itself.

The save_model tool ($SAL_BUILD/tools/save_model) writes the built-in architectures, a small hand-built
graph and every ONNX node-test model we load, saved again; then the same for the models that
tests/torch/export_models.py exports from PyTorch (when torch is there). Each file must pass onnx.checker with
full_check (which includes strict shape inference), carry the producer and opset we promise, and, for
re-saved models, keep the source's input/output names and shapes and its initializer values.

Run with Debian's python (/usr/bin/python3, which has onnx). Prints "N passed, M failed".
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:  # the wrong interpreter: say so instead of failing obscurely
    print(f"test_onnx_export: needs the onnx package ({e}); run with /usr/bin/python3")
    print("0 passed, 1 failed")
    sys.exit(1)

BUILD = os.environ.get("SAL_BUILD", "build")
TOOL = os.path.join(BUILD, "tools", "save_model")
TORCH_EXPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch", "export_models.py")

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")


def dims(vi):
    """Shape of a ValueInfo: ints for fixed axes, '?' for symbolic ones."""
    return [d.dim_value if d.HasField("dim_value") else "?" for d in vi.type.tensor_type.shape.dim]


def compare_with_source(name, ours, src):
    g, s = ours.graph, src.graph
    inits = {t.name for t in s.initializer}
    src_inputs = [i for i in s.input if i.name not in inits]
    check([i.name for i in g.input] == [i.name for i in src_inputs], f"{name}: input names")
    check([o.name for o in g.output] == [o.name for o in s.output], f"{name}: output names")
    for a, b in zip(g.input, src_inputs):
        check(dims(a) == dims(b), f"{name}: input '{a.name}' shape {dims(a)}, source {dims(b)}")
    for a, b in zip(g.output, s.output):
        if b.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in b.type.tensor_type.shape.dim):
            check(dims(a) == dims(b), f"{name}: output '{a.name}' shape {dims(a)}, source {dims(b)}")
    mine = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for t in s.initializer:
        if t.name not in mine:  # folded away, or unused
            continue
        want = numpy_helper.to_array(t)
        got = mine[t.name]
        check(got.shape == want.shape and np.array_equal(got, want.astype(got.dtype)),
              f"{name}: initializer '{t.name}' changed")


def main():
    if not os.access(TOOL, os.X_OK):
        print(f"test_onnx_export: {TOOL} is missing (build with make BUILD={BUILD})")
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory(prefix="sal_export_") as out:
        run = subprocess.run([TOOL, out], capture_output=True, text=True)
        sys.stderr.write(run.stderr)
        check(run.returncode == 0, f"save_model exited with {run.returncode}")
        files = [line.split("\t") for line in run.stdout.splitlines() if "\t" in line]
        check(len(files) >= 3, f"save_model wrote {len(files)} models")
        # real exporter output too: PyTorch's models (dynamic batch, Shape/Gather chains), re-saved
        if os.path.exists(TORCH_EXPORT):
            tdir, tout = os.path.join(out, "torch"), os.path.join(out, "torch_saved")
            os.mkdir(tout)
            exp = subprocess.run([sys.executable, TORCH_EXPORT, tdir], capture_output=True, text=True)
            if exp.returncode != 0:
                print(f"note: PyTorch models not exported, skipping them: {exp.stderr.strip().splitlines()[-1:]}")
            else:
                run = subprocess.run([TOOL, tout, tdir], capture_output=True, text=True)
                sys.stderr.write(run.stderr)
                got = [line.split("\t") for line in run.stdout.splitlines() if "\t" in line]
                got = [(p, src) for p, src in got if src != "-"]
                check(run.returncode == 0 and len(got) == len(os.listdir(tdir)),
                      f"re-saving PyTorch's models: {len(got)} of {len(os.listdir(tdir))} saved")
                files += got
        for path, src in files:
            name = os.path.basename(path)
            try:
                m = onnx.load(path)
                onnx.checker.check_model(m, full_check=True)
            except Exception as e:  # checker errors come as several exception types
                check(False, f"{name}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
                continue
            check(True, name)
            check(m.producer_name == "saliency", f"{name}: producer '{m.producer_name}'")
            if src == "-":
                # our own graphs: the batch axis stays symbolic on the way in and out
                check(dims(m.graph.input[0])[0] == "?" and m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N",
                      f"{name}: input batch axis is not 'N'")
                check(all(dims(o)[0] == "?" for o in m.graph.output), f"{name}: output batch axis is not symbolic")
            else:
                s = onnx.load(src)
                sv = [o.version for o in s.opset_import if o.domain in ("", "ai.onnx")]
                check([o.version for o in m.opset_import] == sv, f"{name}: opset {m.opset_import} vs source {sv}")
                compare_with_source(name, m, s)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
