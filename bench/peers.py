#!/usr/bin/python3
"""Captum 0.7.0 and Zennit 0.5.1 side by side with us on the same models, for the methods of issue
16's targets: milliseconds per image, the ratio and peak memory, in one run.

usage: CAPTUM_SRC=DIR ZENNIT_SRC=DIR bench/peers.py [--reps R] [--models a,b] [--methods a,b] ...
       (make bench-peers runs it; --help lists every option)

Neither is a Debian package, and nothing in the build or the tests needs them. Their sources run on
Debian's python3-torch as they are; take the commits of the releases from their public repositories:
    git clone https://github.com/pytorch/captum && cd captum &&
      git archive 833d6aad27a921d2868ac0e248b4ab3ed50b13b9 captum | tar x -C $CAPTUM_SRC
    git clone https://github.com/chr5tphr/zennit && cd zennit &&
      git archive 3121bb223061506834ca68abad3eefc792dea999 src | tar x -C $ZENNIT_SRC
CAPTUM_SRC is the folder holding captum/, ZENNIT_SRC the one holding zennit/ or src/zennit/. With
neither, the script says so and exits 0; with one, it runs that one's rows.

Rows: the MLP and the small CNN at batch 1 for gradient, gradient x input, guided backprop,
deconvnet, DeepLIFT, Grad-CAM (CNN only), the LRP composites epsilon-plus and epsilon-gamma-box
(Zennit), integrated gradients and occlusion (4x4 windows, stride 2); VGG16 and ResNet-50 at batch
1 and 4 for gradient and integrated gradients. Each configuration runs in a process of its own,
with a timeout; a failure prints its error under the row and the run goes on.
"""
import argparse
import datetime
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from compare import cpu_name  # noqa: E402

# method: (peer, our parameters, label)
METHODS = {
    'gradient': ('captum', [], 'gradient'),
    'gradient_x_input': ('captum', [], 'gradient x input'),
    'guided_backprop': ('captum', [], 'guided backprop'),
    'deconvnet': ('captum', [], 'deconvnet'),
    'deeplift': ('captum', ['baseline=zero', 'variant=rescale'], 'DeepLIFT'),
    'gradcam': ('captum', [], 'Grad-CAM'),
    'lrp_epsilon_plus': ('zennit', [], 'LRP eps-plus'),
    'lrp_epsilon_gamma_box': ('zennit', ['low=0', 'high=1'], 'LRP eps-gamma-box'),
    'integrated_gradients': ('captum', ['baseline=zero', 'rule=gauss_legendre'], 'IG'),
    'occlusion': ('captum', ['window=4', 'stride=2', 'fill=0'], 'occlusion 4x4/2'),
}
SMALL_METHODS = list(METHODS)
LARGE_METHODS = ['gradient', 'integrated_gradients', 'gradcam']
LARGE = {'vgg16', 'resnet50'}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument('--build', default='build', help='our build folder (bench/bench_compare in it)')
    ap.add_argument('--model-dir', default=None, help='exported models (default: BUILD/bench/models)')
    ap.add_argument('--models', default='mlp,cnn,vgg16,resnet50', help='comma-separated')
    ap.add_argument('--methods', default=','.join(METHODS), help='comma-separated, of ' + ','.join(METHODS))
    ap.add_argument('--batches', default='1,4', help='batch sizes of VGG16 and ResNet-50 (the MLP and CNN: 1)')
    ap.add_argument('--reps', type=int, default=10, help='timed calls per configuration (the median is shown)')
    ap.add_argument('--slow-reps', type=int, default=3, help='timed calls of IG on the --slow-models')
    ap.add_argument('--slow-models', default='vgg16', help='models whose IG gets --slow-reps')
    ap.add_argument('--warmup', type=int, default=2, help='untimed calls first (1 for the slow ones)')
    ap.add_argument('--small-reps', type=int, default=1000,
                    help='timed calls on the MLP and the CNN, whose calls take milliseconds')
    ap.add_argument('--small-warmup', type=int, default=10,
                    help="untimed calls first on the MLP and the CNN (a process's first calls run slower)")
    ap.add_argument('--steps', type=int, default=50, help='integrated gradients steps (zero baseline)')
    ap.add_argument('--target', type=int, default=0, help='class explained, the same on both sides')
    ap.add_argument('--occlusion-batch', type=int, default=64,
                    help="Captum's perturbations_per_eval (our occlusion runs up to 64 windows per pass)")
    ap.add_argument('--timeout', type=int, default=3600, help='seconds per configuration and side')
    ap.add_argument('--settle', type=float, default=benchlib.SETTLE,
                    help='seconds to wait before each measured process (default %(default)s)')
    ap.add_argument('--rounds', type=int, default=1,
                    help='processes per configuration and side, ours and theirs in turn (the median is shown)')
    ap.add_argument('--verbose', action='store_true', help='print each command')
    a = ap.parse_args()
    benchlib.SETTLE = a.settle
    model_dir = a.model_dir or os.path.join(a.build, 'bench', 'models')
    models, methods = a.models.split(','), a.methods.split(',')
    bad = [m for m in methods if m not in METHODS] + [m for m in models if m not in ('mlp', 'cnn') and m not in LARGE]
    if bad:
        sys.exit('peers.py: unknown %s' % ', '.join(bad))
    exe = os.path.join(a.build, 'bench', 'bench_compare')
    if not os.access(exe, os.X_OK):
        sys.exit('peers.py: %s missing (make %s)' % (exe, exe))
    captum, zennit = benchlib.peer_paths()
    if not captum and not zennit:
        print('peers.py: neither Captum nor Zennit found; set CAPTUM_SRC and/or ZENNIT_SRC:\n')
        print(__doc__[__doc__.index('Neither'):__doc__.index('Rows:')].rstrip())
        return 0
    env, notes = benchlib.torch_env(captum=captum, zennit=zennit)
    have = {'captum': captum, 'zennit': zennit}

    print('peers.py  %s  %s, %d CPUs' % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), cpu_name(),
                                          os.cpu_count() or 0))
    print('load average at start: %s' % benchlib.loadavg())
    print('PyTorch environment: %s' % '; '.join(notes))
    print('Captum: %s\nZennit: %s' % (captum or 'not found (CAPTUM_SRC)', zennit or 'not found (ZENNIT_SRC)'))
    print('reps: %d (IG on %s: %d; the MLP and CNN: %d), warm-up: %d (those: 1, %d), IG steps: %d, target class %d, '
          'rounds: %d' % (a.reps, a.slow_models, a.slow_reps, a.small_reps, a.warmup, a.small_warmup, a.steps,
                          a.target, a.rounds))
    sys.stdout.flush()
    failed = benchlib.export(model_dir, models)
    print()

    t = benchlib.Table([('model', 8, '<'), ('batch', 5, '>'), ('method', 18, '<'), ('ours ms', 9, '>'),
                        ('peer ms', 9, '>'), ('peer/ours', 9, '>'), ('ours lib MB', 11, '>'),
                        ('RSS MB ours/peer', 15, '>'), ('max RSS ours/peer', 16, '>'), ('peer impl', 9, '<')])
    for model in models:
        if model in failed:
            t.row([model, '', '', 'error', 'error'], [('export', failed[model])])
            continue
        large = model in LARGE
        for b in ([int(x) for x in a.batches.split(',')] if large else [1]):
            for method in methods:
                peer, params, label = METHODS[method]
                if method not in (LARGE_METHODS if large else SMALL_METHODS) or (method == 'gradcam' and model == 'mlp'):
                    continue
                if not have[peer]:
                    t.row([model, b, label, '', '', '', '', '', '', '%s not found' % peer])
                    continue
                slow = method == 'integrated_gradients' and model in a.slow_models.split(',')
                reps, warm = (a.slow_reps, min(a.warmup, 1)) if slow else (a.reps, a.warmup)
                if not large:
                    reps, warm = a.small_reps, a.small_warmup
                if method == 'integrated_gradients':
                    params = params + ['steps=%d' % a.steps]
                extra = ['--steps', str(a.steps), '--target', str(a.target), '--occlusion-batch',
                         str(a.occlusion_batch)]
                if large and method == 'integrated_gradients':
                    extra += ['--ig-internal-batch', str(a.steps)]  # batch x 50 VGG16 rows would need 18 GB
                ours, theirs = benchlib.alternate(
                    lambda: benchlib.run_ours(a.build, model_dir, model, method, b, reps, warm, params, a.target,
                                              a.timeout, a.verbose),
                    lambda: benchlib.run_torch(model_dir, model, method, b, reps, warm, peer, env, a.timeout,
                                               extra, a.verbose), a.rounds)
                errors = [(who, r['error']) for who, r in (('ours', ours), (peer, theirs)) if 'error' in r]
                t.row([model, b, label, benchlib.fmt_ms(ours) or 'error', benchlib.fmt_ms(theirs) or 'error',
                       benchlib.ratio(ours, theirs), benchlib.fmt_mb(ours, 'lib_peak_mb'),
                       benchlib.fmt_pair(ours, theirs, 'call_rss_mb'), benchlib.fmt_pair(ours, theirs, 'maxrss_mb'),
                       str(theirs.get('impl', '-')).replace('_', ' ')], errors)
    print()
    print('load average at end: %s' % benchlib.loadavg())
    print('''
ms: median wall time per image of --reps calls after --warmup untimed ones, each configuration in a
fresh process (with --rounds R: the median of R such processes per side, the two sides in turn).
ours: sal_explain on a reused session (its forward pass for the targets included);
peer: Captum or Zennit on PyTorch, 2 threads, the same weights, the class given up front, Captum's
objects and Zennit's hooks made once outside the timed calls. peer/ours: how many times faster we
are. Grad-CAM at the last spatial layer, upsampled bilinearly to the input; LRP epsilon-gamma-box
with low 0, high 1 (Zennit applies its box rule to the first convolution only, so on the MLP it is
epsilon everywhere).
ours lib MB: the most the library held during a call above the loaded model (session buffers
included). RSS MB: each process's resident peak during the calls (VmHWM, reset once the model is
loaded), weights and runtime included (a bare PyTorch process holds about 250 MB); max RSS: its peak
over its life (getrusage), the peak of loading the model included.''')
    return 0


if __name__ == '__main__':
    sys.exit(main())
