#!/usr/bin/python3
"""One PyTorch configuration of the comparison, in a process of its own: times a method on one
model exported by bench/models.py (its saved weights) and prints one key=value line.

usage: torch_worker.py MODEL_DIR MODEL METHOD [--batch B] [--reps R] [--warmup W] [--warmup-s S] [--impl IMPL]
                       [--steps N] [--target C] [--threads T] [--ig-internal-batch K] [--occlusion-batch K]
METHOD: forward, gradient, gradient_x_input, integrated_gradients, guided_backprop, deconvnet,
        deeplift, gradcam, occlusion, lrp_epsilon_plus, lrp_epsilon_gamma_box
IMPL:   plain  (autograd and hooks written here; forward, gradient, gradient_x_input, integrated
               gradients, guided backprop, deconvnet)
        captum (needs the Captum source on PYTHONPATH), zennit (the LRP composites),
        auto   (captum when importable, else plain; zennit for the LRP composites)
Prints ms_per_img (median of the timed calls, per image), min_ms_per_img, reps, impl, load_rss_mb
(the process's resident peak once the model is loaded), call_rss_mb (its resident peak during the
calls, warm-up included, from VmHWM reset after loading) and maxrss_mb (its peak over its life, from
getrusage); or error=MESSAGE with exit status 1.

Every method explains class --target (default 0) for every sample, given up front, so PyTorch
needs no forward pass to pick it. The input is torch.rand (uniform in [0, 1)), seeded.
"""
import argparse
import os
import resource
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_rss_peak():
    """Restarts the resident peak (VmHWM) from the current size, so that the peak of the calls is not
    that of loading (the state dict and the initial weights held at once)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def rss_peak_mb():
    try:
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024
    except (OSError, StopIteration):
        return float('nan')


def relu_modules(model):
    return [m for m in model.modules() if type(m).__name__ == 'ReLU']


def not_inplace(model):
    """Hooks on ReLUs cannot see an in-place ReLU's input (torchvision's are in place); the
    methods that hook them get copies."""
    for m in relu_modules(model):
        m.inplace = False


def need_relu(model):
    """The ReLU modules, or an error: with none, guided backprop and deconvnet (Captum's too, which
    hook nn.ReLU only; ReLU6 is not one) would time a plain gradient under their name."""
    relus = relu_modules(model)
    if not relus:
        raise RuntimeError('no nn.ReLU module to hook (%s)' % ', '.join(
            sorted({type(m).__name__ for m in model.modules() if 'ReLU' in type(m).__name__ or
                    'Hardtanh' in type(m).__name__}) or ['no ReLU-like module']))
    return relus


def last_spatial_module(model, x):
    """The module Grad-CAM explains by default in our library: the last one, in call order, whose
    output is (N, C, H, W) with more than one position."""
    import torch
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, o)))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    spatial = [m for m, o in seen if isinstance(o, torch.Tensor) and o.dim() == 4 and o.shape[2] * o.shape[3] > 1]
    if not spatial:
        raise RuntimeError('no spatial layer for Grad-CAM')
    return spatial[-1]


def make_method(a, model, x, impl):
    """A function of no arguments that computes the attribution once, and the name of what it uses."""
    import torch
    t = a.target
    n_out = model(x[:1]).shape[1]

    def grad_of(xin):
        xi = xin.detach().requires_grad_(True)
        return torch.autograd.grad(model(xi)[:, t].sum(), xi)[0]

    if a.method == 'forward':
        def fwd():
            with torch.no_grad():
                model(x)
        return fwd, 'plain, no_grad'

    if impl == 'captum':
        import captum.attr as ca
        m = a.method
        if m == 'gradient':
            s = ca.Saliency(model)
            return lambda: s.attribute(x, target=t, abs=False), 'captum Saliency'
        if m == 'gradient_x_input':
            s = ca.InputXGradient(model)
            return lambda: s.attribute(x, target=t), 'captum InputXGradient'
        if m == 'integrated_gradients':
            s = ca.IntegratedGradients(model)
            ib = a.ig_internal_batch or None
            return (lambda: s.attribute(x, baselines=0.0, target=t, n_steps=a.steps, method='gausslegendre',
                                        internal_batch_size=ib),
                    'captum IntegratedGradients, %s rows/pass' % (ib or a.steps * x.shape[0]))
        if m in ('guided_backprop', 'deconvnet', 'deeplift'):
            if m != 'deeplift':
                need_relu(model)
            not_inplace(model)
            cls = {'guided_backprop': ca.GuidedBackprop, 'deconvnet': ca.Deconvolution, 'deeplift': ca.DeepLift}[m]
            s = cls(model)
            if m == 'deeplift':
                return lambda: s.attribute(x, baselines=0.0, target=t), 'captum DeepLift'
            return lambda: s.attribute(x, target=t), 'captum ' + cls.__name__
        if m == 'gradcam':
            not_inplace(model)
            layer = last_spatial_module(model, x)
            s = ca.LayerGradCam(model, layer)

            def gradcam():  # the map at the input's size, as ours by default
                cam = s.attribute(x, target=t, relu_attributions=True)
                return ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), 'bilinear')
            return gradcam, 'captum LayerGradCam + interpolate'
        if m == 'occlusion':
            s = ca.Occlusion(model)
            c = x.shape[1]
            ppe = a.occlusion_batch
            return (lambda: s.attribute(x, sliding_window_shapes=(c, 4, 4), strides=(c, 2, 2), baselines=0.0,
                                        target=t, perturbations_per_eval=ppe),
                    'captum Occlusion 4x4/2, %d windows/pass' % ppe)
        raise RuntimeError('no Captum method for %s' % m)

    if impl == 'zennit':
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonGammaBox, EpsilonPlus
        not_inplace(model)
        if a.method == 'lrp_epsilon_plus':
            comp = EpsilonPlus()
        elif a.method == 'lrp_epsilon_gamma_box':
            comp = EpsilonGammaBox(low=torch.zeros_like(x), high=torch.ones_like(x))
        else:
            raise RuntimeError('no Zennit method for %s' % a.method)
        attributor = Gradient(model, comp)
        attributor.__enter__()  # hooks registered once, like a reused session
        seed = torch.eye(n_out)[[t] * x.shape[0]]
        return lambda: attributor(x, seed), 'zennit Gradient + ' + type(comp).__name__

    # plain: autograd and backward hooks written here
    if a.method == 'gradient':
        return lambda: grad_of(x), 'plain, autograd.grad'
    if a.method == 'gradient_x_input':
        return lambda: grad_of(x) * x, 'plain, autograd.grad * x'
    if a.method in ('guided_backprop', 'deconvnet'):
        not_inplace(model)
        if a.method == 'guided_backprop':  # gradient through ReLU (its mask), then clipped at 0
            hook = lambda m, gin, gout: (torch.clamp(gin[0], min=0),)
        else:  # deconvnet: the output gradient clipped at 0, ignoring the forward mask
            hook = lambda m, gin, gout: (torch.clamp(gout[0], min=0),)
        relus = need_relu(model)
        for m in relus:
            m.register_full_backward_hook(hook)
        return lambda: grad_of(x), 'plain, hooks on %d nn.ReLU' % len(relus)
    if a.method == 'integrated_gradients':
        import numpy as np
        nodes, weights = np.polynomial.legendre.leggauss(a.steps)  # Captum's gausslegendre, on [0, 1]
        alpha = torch.tensor((nodes + 1) / 2, dtype=x.dtype)
        w = torch.tensor(weights / 2, dtype=x.dtype)
        shape = (-1,) + (1,) * x.dim()
        per = max(1, (a.ig_internal_batch or a.steps * x.shape[0]) // a.steps)  # samples per pass

        def ig():  # zero baseline: the path is alpha * x; all steps of `per` samples in one pass
            out = []
            for i in range(0, x.shape[0], per):
                xs = x[i:i + per]
                path = (alpha.view(shape) * xs.unsqueeze(0)).reshape(-1, *x.shape[1:])
                g = grad_of(path).view(a.steps, *xs.shape)
                out.append((g * w.view(shape)).sum(0) * xs)
            return torch.cat(out)
        return ig, 'plain batched, %d rows/pass' % (a.steps * per)
    raise RuntimeError('%s needs Captum or Zennit (--impl captum/zennit)' % a.method)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model_dir')
    ap.add_argument('model')
    ap.add_argument('method')
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--reps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--warmup-s', type=float, default=0.5,
                    help='the warm-up goes on past its calls until this many seconds have passed (bench_compare alike)')
    ap.add_argument('--impl', default='plain', choices=['plain', 'captum', 'zennit', 'auto'])
    ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--target', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--ig-internal-batch', type=int, default=0, help='rows per IG pass (0: all)')
    ap.add_argument('--occlusion-batch', type=int, default=64, help="Captum's perturbations_per_eval")
    a = ap.parse_args()
    try:
        import torch
        sys.path.insert(0, HERE)
        import models
        torch.set_num_threads(a.threads)
        torch.manual_seed(a.seed)
        impl = a.impl
        if impl == 'auto':
            if a.method.startswith('lrp_'):
                impl = 'zennit'
            else:
                try:
                    import captum.attr  # noqa: F401
                    impl = 'captum'
                except ImportError:
                    impl = 'plain'
        if a.method in ('forward',):
            impl = 'plain'
        model = models.load(a.model, a.model_dir)
        for p in model.parameters():
            p.requires_grad_(False)  # input gradients only, as the methods ask
        x = torch.rand(a.batch, *models.MODELS[a.model][1])
        load_rss = rss_mb()
        fn, what = make_method(a, model, x, impl)
        reset_rss_peak()
        w0 = time.perf_counter()
        k = 0
        while k < a.warmup or (a.warmup > 0 and time.perf_counter() - w0 < a.warmup_s):
            fn()
            k += 1
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        ts.sort()
    except Exception as e:  # one line for the table
        msg = ' '.join(('%s: %s' % (type(e).__name__, e)).split())
        print('error=' + msg[:300])
        return 1
    print('ms_per_img=%.4f min_ms_per_img=%.4f reps=%d load_rss_mb=%.1f call_rss_mb=%.1f maxrss_mb=%.1f impl=%s' %
          (1e3 * ts[len(ts) // 2] / a.batch, 1e3 * ts[0] / a.batch, a.reps, load_rss, rss_peak_mb(), rss_mb(),
           what.replace(' ', '_')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
