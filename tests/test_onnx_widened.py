#!/usr/bin/python3
"""ONNX node tests that test_onnx_conformance skips only for their data type or an old opset, run
after widening: CumSum and Einsum test in float64 and InstanceNormalization (opset 6) and one
ConvTranspose test (opset 8) load in no opset we accept. This copies those tests into a temporary
folder with DOUBLE tensors as FLOAT, INT32 as INT64 and the opset raised to 9 (the ops' semantics
are the same there), then runs $SAL_BUILD/tests/test_onnx_conformance on the copy. Every test must
pass except the deliberate refusals listed in SKIPS. Prints the conformance lines and a final
"N passed, M failed"; exits non-zero on any failure."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

SRC = os.environ.get("SAL_ONNX_TESTDATA", "/usr/share/libonnx-testdata/data/node")
PATTERNS = ("test_cumsum_", "test_einsum_", "test_instancenorm_", "test_convtranspose_with_kernel")
# refused on purpose, with the reason the library gives
SKIPS = {}


def widen_type(tt):
    if tt.elem_type == TensorProto.DOUBLE:
        tt.elem_type = TensorProto.FLOAT
    elif tt.elem_type == TensorProto.INT32:
        tt.elem_type = TensorProto.INT64


def widen_tensor(path, out):
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    a = numpy_helper.to_array(t)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype == np.int32:
        a = a.astype(np.int64)
    with open(out, "wb") as f:
        f.write(numpy_helper.from_array(a, t.name).SerializeToString())


def widen(name, dst):
    d = os.path.join(dst, name)
    os.makedirs(d)
    m = onnx.load(os.path.join(SRC, name, "model.onnx"))
    for vi in list(m.graph.input) + list(m.graph.output):
        widen_type(vi.type.tensor_type)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx") and o.version < 9:
            o.version = 9
    onnx.save(m, os.path.join(d, "model.onnx"))
    for ds in glob.glob(os.path.join(SRC, name, "test_data_set_*")):
        dd = os.path.join(d, os.path.basename(ds))
        os.makedirs(dd)
        for f in glob.glob(os.path.join(ds, "*.pb")):
            widen_tensor(f, os.path.join(dd, os.path.basename(f)))


def main():
    build = os.environ.get("SAL_BUILD", "build")
    tool = os.path.join(build, "tests", "test_onnx_conformance")
    if not os.path.isdir(SRC):
        print("%s not found (Debian package libonnx-testdata); nothing to run\n0 passed, 0 failed" % SRC)
        return 0
    names = sorted(n for n in os.listdir(SRC) if n.startswith(PATTERNS))
    tmp = tempfile.mkdtemp(prefix="sal_widened.")
    passed = failed = 0
    try:
        for n in names:
            widen(n, tmp)
        r = subprocess.run([tool], env=dict(os.environ, SAL_ONNX_TESTDATA=tmp), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        print(r.stdout.rstrip())
        for line in r.stdout.splitlines():
            m = re.match(r"(ok  |FAIL|skip) (\S+?)(:| |$)", line)
            if not m:
                continue
            kind, name = m.group(1), m.group(2)
            want_skip = name in SKIPS
            ok = (kind == "ok  " and not want_skip) or (kind == "skip" and want_skip and SKIPS[name] in line)
            passed += ok
            failed += not ok
            if not ok:
                print("FAIL %s: %s" % (name, "expected a refusal" if want_skip else "expected to pass"))
        if passed + failed != len(names):
            print("FAIL %d tests widened, %d reported" % (len(names), passed + failed))
            failed += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
