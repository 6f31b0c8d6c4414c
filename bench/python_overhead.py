#!/usr/bin/python3
"""What a Python call of the package costs over the same C call: median microseconds per call of
Model.run and Model.explain against bench_call (the C program making the same calls with one
session reused), on a tiny MLP (where fixed costs show) and a small CNN, batch 1.

usage: /usr/bin/python3 bench/python_overhead.py [--build build] [--reps 200] [--threads 1]
Not part of make test (it times things); docs/python.md gives the figures of one run."""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="threads of both (default 1: an OpenMP barrier on a "
                    "busy machine costs more than the call)")
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build)
    os.environ["SALIENCY_LIB"] = sorted(glob.glob(os.path.join(build, "libsaliency.so.0*")))[-1]
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import numpy as np
    import saliency
    import torch
    torch.manual_seed(0)
    saliency.set_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    nets = {
        "mlp 64-32-10": (torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)),
                         (1, 64)),
        "cnn 1x28x28": (torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                            torch.nn.Linear(16 * 14 * 14, 10)), (1, 1, 28, 28)),
    }
    print("%-14s %-10s %10s %10s %10s" % ("model", "call", "C us", "Python us", "overhead"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (net, shape) in nets.items():
            onnx, xp = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "x.npy")
            model = saliency.from_torch(net.eval(), torch.zeros(shape), path=onnx)
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            np.save(xp, x)
            out = subprocess.run([os.path.join(build, "bench", "bench_call"), onnx, xp, "gradient", str(args.reps)],
                                 capture_output=True, text=True, check=True, env=env).stdout
            c = {k: float(v) for k, v in (line.split() for line in out.splitlines())}
            for call, fn in (("run", lambda: model.run(x)), ("explain", lambda: model.explain(x, "gradient"))):
                fn()
                t = []
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    fn()
                    t.append((time.perf_counter() - t0) * 1e6)
                py = statistics.median(t)
                print("%-14s %-10s %10.1f %10.1f %10.1f" % (name, call, c[call], py, py - c[call]))


if __name__ == "__main__":
    main()
