#!/usr/bin/python3
"""The benchmark models: the paper's MLP, the small CNN, VGG16 and torchvision's ResNet-50,
MobileNetV2, ViT-B/16, ConvNeXt-T, MobileNetV3-Large and Swin-T (random weights, seeded), exported
once to ONNX with their weights beside them (NAME.pt), so that every PyTorch process times exactly
the network we time.

usage: bench/models.py OUT_DIR [--quick] [--models a,b,...] [--export-only]
Exports the missing OUT_DIR/NAME.{onnx,pt}, then (unless --export-only) times PyTorch's forward and
input gradient on them, one configuration per process (bench/torch_worker.py, in the environment of
bench/benchlib.py), and writes OUT_DIR/torch.txt ("NAME_bB_forward ms-per-image" lines) for
build/bench/bench. Default models: all nine.
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import torch
import torch.nn as nn


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


def torchvision_model(name):
    def make():
        import torchvision
        return getattr(torchvision.models, name)(weights=None)
    return make


# name: (builder, input shape without the batch, batches timed, large)
MODELS = {
    'mlp': (mlp, (1, 28, 28), (1, 16), False),
    'cnn': (cnn, (1, 28, 28), (1, 16), False),
    'vgg16': (vgg16, (3, 224, 224), (1, 4), True),
    'resnet50': (torchvision_model('resnet50'), (3, 224, 224), (1, 4), True),
    'mobilenet_v2': (torchvision_model('mobilenet_v2'), (3, 224, 224), (1, 4), False),
    'vit_b_16': (torchvision_model('vit_b_16'), (3, 224, 224), (1, 4), True),
    'convnext_tiny': (torchvision_model('convnext_tiny'), (3, 224, 224), (1, 4), False),
    'mobilenet_v3_large': (torchvision_model('mobilenet_v3_large'), (3, 224, 224), (1, 4), False),
    'swin_t': (torchvision_model('swin_t'), (3, 224, 224), (1, 4), False),
}


def build(name):
    """The architecture with its seeded initial weights, in eval mode."""
    torch.manual_seed(0)
    return MODELS[name][0]().eval()


def export(name, out):
    """Writes OUT/NAME.onnx and OUT/NAME.pt (the same weights) unless both exist."""
    onnx_path, pt_path = os.path.join(out, name + '.onnx'), os.path.join(out, name + '.pt')
    if os.path.exists(onnx_path) and os.path.exists(pt_path):
        return
    os.makedirs(out, exist_ok=True)
    model = build(name)
    shape = MODELS[name][1]
    tmp = onnx_path + '.tmp'  # a killed export leaves no half file behind
    torch.onnx.export(model, torch.zeros(1, *shape), tmp, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, opset_version=13)
    torch.save(model.state_dict(), pt_path + '.tmp')
    os.replace(tmp, onnx_path)
    os.replace(pt_path + '.tmp', pt_path)


def load(name, out):
    """The PyTorch model with the weights exported to OUT/NAME.onnx."""
    model = MODELS[name][0]()
    model.load_state_dict(torch.load(os.path.join(out, name + '.pt')))
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', help='folder of the exported models (build/bench/models)')
    ap.add_argument('--quick', action='store_true', help='3 timed calls per configuration')
    ap.add_argument('--models', default=','.join(MODELS), help='comma-separated names')
    ap.add_argument('--export-only', action='store_true', help='export, do not time PyTorch')
    a = ap.parse_args()
    out, names = a.out, a.models.split(',')
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit('models.py: unknown model %s (known: %s)' % (', '.join(unknown), ', '.join(MODELS)))
    for name in names:
        print('exporting %s' % name, file=sys.stderr)
        export(name, out)
    if a.export_only:
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchlib
    lines = []
    for name in names:
        for b in MODELS[name][2]:
            reps = 3 if a.quick else 10 if MODELS[name][3] else 30
            for what in ('forward', 'gradient'):
                r = benchlib.run_torch(out, name, what, b, reps, timeout=1800)
                key = '%s_b%d_%s' % (name, b, what)
                ms = r.get('ms_per_img', float('nan'))
                print('%s %.4f%s' % (key, ms, '  (' + r['error'] + ')' if 'error' in r else ''), file=sys.stderr)
                lines.append('%s %.4f' % (key, ms))
    with open(os.path.join(out, 'torch.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
