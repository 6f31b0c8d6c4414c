#!/usr/bin/python3
"""Our library against PyTorch, side by side in one run: milliseconds per image for the forward
pass, the input gradient, integrated gradients and guided backprop, with peak memory, on the paper's
MLP, the small CNN, VGG16, ResNet-50 and MobileNetV2 (224x224), at batch 1 (and 4 for the 224x224
models).

usage: bench/compare.py [--reps R] [--models a,b] [--methods a,b] [--batches 1,4] [--steps N] ...
       (make bench-compare runs it; --help lists every option)

Each configuration runs in a process of its own, ours (build/bench/bench_compare) then PyTorch's
(bench/torch_worker.py, 2 threads, in the environment of bench/benchlib.py: tcmalloc, the OpenMP
OpenBLAS), each with a timeout; a failure prints its error under the row and the run goes on.
Integrated gradients and guided backprop run through Captum when its source is on CAPTUM_SRC,
otherwise through the equivalent code of torch_worker.py, and the impl column says which. The
models are exported once into MODEL_DIR (bench/models.py) and reused.
"""
import argparse
import datetime
import os
import platform
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ALL_MODELS = ['mlp', 'cnn', 'vgg16', 'resnet50', 'mobilenet_v2', 'vit_b_16', 'convnext_tiny', 'mobilenet_v3_large',
              'swin_t']
LARGE = {'vgg16', 'resnet50', 'vit_b_16'}  # PyTorch's IG runs one sample's steps per pass (memory)
# 224x224: batch 4 too
IMAGE = {'vgg16', 'resnet50', 'mobilenet_v2', 'vit_b_16', 'convnext_tiny', 'mobilenet_v3_large', 'swin_t'}
METHODS = ['forward', 'gradient', 'integrated_gradients', 'guided_backprop']
SHORT = {'forward': 'forward', 'gradient': 'gradient', 'integrated_gradients': 'IG',
         'guided_backprop': 'guided backprop'}


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), platform.machine())
    except OSError:
        return platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument('--build', default='build', help='our build folder (bench/bench_compare in it)')
    ap.add_argument('--model-dir', default=None, help='exported models (default: BUILD/bench/models)')
    ap.add_argument('--models', default='mlp,cnn,vgg16,resnet50,mobilenet_v2',
                    help='comma-separated, of ' + ','.join(ALL_MODELS))
    ap.add_argument('--methods', default=','.join(METHODS), help='comma-separated, of ' + ','.join(METHODS))
    ap.add_argument('--batches', default='1,4', help='batch sizes; 4 and above only for the 224x224 models')
    ap.add_argument('--reps', type=int, default=10, help='timed calls per configuration (the median is shown)')
    ap.add_argument('--slow-reps', type=int, default=3, help='timed calls of IG on the --slow-models')
    ap.add_argument('--slow-models', default='vgg16,vit_b_16', help='models whose IG gets --slow-reps')
    ap.add_argument('--warmup', type=int, default=2, help='untimed calls first (1 for the slow ones)')
    ap.add_argument('--steps', type=int, default=50, help='integrated gradients steps (zero baseline)')
    ap.add_argument('--target', type=int, default=0, help='class explained, the same on both sides')
    ap.add_argument('--impl', default='auto', choices=['auto', 'plain', 'captum'],
                    help='PyTorch side of IG and guided backprop: Captum if found (auto), or ours in torch_worker.py')
    ap.add_argument('--timeout', type=int, default=3600, help='seconds per configuration and side')
    ap.add_argument('--settle', type=float, default=benchlib.SETTLE,
                    help='seconds to wait before each measured process (default %(default)s)')
    ap.add_argument('--rounds', type=int, default=1,
                    help='processes per configuration and side, ours and theirs in turn (the median is shown)')
    ap.add_argument('--verbose', action='store_true', help='print each command')
    a = ap.parse_args()
    benchlib.SETTLE = a.settle
    model_dir = a.model_dir or os.path.join(a.build, 'bench', 'models')
    models = a.models.split(',')
    methods = a.methods.split(',')
    batches = [int(b) for b in a.batches.split(',')]
    bad = [m for m in models if m not in ALL_MODELS] + [m for m in methods if m not in METHODS]
    if bad:
        sys.exit('compare.py: unknown %s' % ', '.join(bad))
    exe = os.path.join(a.build, 'bench', 'bench_compare')
    if not os.access(exe, os.X_OK):
        sys.exit('compare.py: %s missing (make %s)' % (exe, exe))

    captum, _ = benchlib.peer_paths()
    env, notes = benchlib.torch_env(captum=captum)
    if a.impl == 'captum' and not captum:
        sys.exit('compare.py: --impl captum needs CAPTUM_SRC (see bench/peers.py --help)')
    impl = 'plain' if a.impl == 'auto' and not captum else a.impl

    print('compare.py  %s  %s, %d CPUs' % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), cpu_name(),
                                            os.cpu_count() or 0))
    print('load average at start: %s' % benchlib.loadavg())
    print('PyTorch environment: %s' % '; '.join(notes))
    print('Captum: %s' % (captum or 'not found (CAPTUM_SRC unset): IG and guided backprop in plain PyTorch'))
    print('reps: %d (IG on %s: %d), warm-up: %d (those: 1), IG steps: %d, target class %d, rounds: %d' %
          (a.reps, a.slow_models, a.slow_reps, a.warmup, a.steps, a.target, a.rounds))
    failed = benchlib.export(model_dir, models)
    print()

    t = benchlib.Table([('model', 12, '<'), ('batch', 5, '>'), ('method', 15, '<'), ('ours ms', 9, '>'),
                        ('torch ms', 9, '>'), ('torch/ours', 10, '>'), ('ours lib MB', 11, '>'),
                        ('RSS MB ours/torch', 16, '>'), ('max RSS ours/torch', 17, '>'), ('torch impl', 10, '<')])
    blas = None
    for model in models:
        if model in failed:
            t.row([model, '', '', 'error', 'error'], [('export', failed[model])])
            continue
        for b in batches:
            if b > 1 and model not in IMAGE:
                continue
            for method in methods:
                slow = method == 'integrated_gradients' and model in a.slow_models.split(',')
                reps = a.slow_reps if slow else a.reps
                warm = min(a.warmup, 1) if slow else a.warmup
                params = ['steps=%d' % a.steps, 'baseline=zero', 'rule=gauss_legendre'] \
                    if method == 'integrated_gradients' else []
                extra = ['--steps', str(a.steps), '--target', str(a.target)]
                if method == 'integrated_gradients' and model in LARGE:
                    extra += ['--ig-internal-batch', str(a.steps)]  # batch x 50 VGG16 rows would need 18 GB
                m_impl = impl if method in ('integrated_gradients', 'guided_backprop') else 'plain'
                ours, theirs = benchlib.alternate(
                    lambda: benchlib.run_ours(a.build, model_dir, model, method, b, reps, warm, params, a.target,
                                              a.timeout, a.verbose),
                    lambda: benchlib.run_torch(model_dir, model, method, b, reps, warm, m_impl, env, a.timeout,
                                               extra, a.verbose), a.rounds)
                blas = blas or ours.get('blas')
                errors = [(who, r['error']) for who, r in (('ours', ours), ('torch', theirs)) if 'error' in r]
                t.row([model, b, SHORT[method], benchlib.fmt_ms(ours) or 'error', benchlib.fmt_ms(theirs) or 'error',
                       benchlib.ratio(ours, theirs), benchlib.fmt_mb(ours, 'lib_peak_mb'),
                       benchlib.fmt_pair(ours, theirs, 'call_rss_mb'), benchlib.fmt_pair(ours, theirs, 'maxrss_mb'),
                       str(theirs.get('impl', '-')).replace('_', ' ')], errors)
    print()
    print('load average at end: %s' % benchlib.loadavg())
    print('our BLAS: %s' % (blas or '?'))
    print('''
ms: median wall time per image of --reps calls after --warmup untimed ones, each configuration in a
fresh process (with --rounds R: the median of R such processes per side, the two sides in turn).
ours: sal_forward keeping only the outputs (as torch.no_grad), or sal_explain on a
reused session (its forward pass for the targets included); torch: PyTorch %s, 2 threads, the same
weights (MODEL_DIR/NAME.pt), the class given up front.
gradient: d logit / d input (torch.autograd.grad, as Captum's Saliency). IG: integrated gradients, zero
baseline, Gauss-Legendre steps (Captum's default rule). torch/ours: how many times faster we are.
ours lib MB: the most the library held during a call above the loaded model (session buffers
included). RSS MB: each process's resident peak during the calls (VmHWM, reset once the model is
loaded), weights and runtime included (a bare PyTorch process holds about 250 MB); max RSS: its peak
over its life (getrusage), the peak of loading the model included.''' % torch_version())
    return 0


def torch_version():
    try:
        import importlib.metadata
        return importlib.metadata.version('torch')
    except Exception:
        return '(Debian python3-torch)'


if __name__ == '__main__':
    sys.exit(main())
