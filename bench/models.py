#!/usr/bin/python3
"""Exports the benchmark models (the paper's MLP, the small CNN, a VGG16-shaped network) to ONNX
and times PyTorch on them (2 threads), so bench.c can compare on the same models and machine.

usage: bench/models.py OUT_DIR [--quick]
Writes OUT_DIR/{mlp,cnn,vgg16}.onnx and OUT_DIR/torch.txt ("key milliseconds-per-image" lines).
"""
import os
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
torch.manual_seed(0)


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def cnn():  # the same shape as `saliency train --arch cnn`
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def vgg16():
    cfg = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']
    layers, c = [], 3
    for v in cfg:
        if v == 'M':
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


def timeit(fn, reps):
    fn()  # warm up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    out = sys.argv[1]
    quick = '--quick' in sys.argv
    os.makedirs(out, exist_ok=True)
    specs = [('mlp', mlp, (1, 28, 28), [1, 16]), ('cnn', cnn, (1, 28, 28), [1, 16]),
             ('vgg16', vgg16, (3, 224, 224), [1, 4])]
    lines = []
    for name, make, shape, batches in specs:
        model = make().eval()
        path = os.path.join(out, name + '.onnx')
        if not os.path.exists(path):
            torch.onnx.export(model, torch.zeros(1, *shape), path, input_names=['input'], output_names=['logits'],
                              dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, opset_version=13)
        for b in batches:
            x = torch.rand(b, *shape)
            reps = 3 if name == 'vgg16' or quick else 30

            def fwd():
                with torch.no_grad():
                    model(x)

            def grad():  # the input gradient only, as Captum's Saliency asks for it
                xi = x.clone().requires_grad_(True)
                torch.autograd.grad(model(xi)[:, 0].sum(), xi)

            lines.append('%s_b%d_forward %.4f' % (name, b, 1e3 * timeit(fwd, reps) / b))
            lines.append('%s_b%d_gradient %.4f' % (name, b, 1e3 * timeit(grad, reps) / b))
            print(lines[-2], file=sys.stderr)
            print(lines[-1], file=sys.stderr)
    with open(os.path.join(out, 'torch.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
