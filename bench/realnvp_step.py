"""PyTorch twin of `realnvp-step`: the same RealNVP as genlab's (configs/mnist-realnvp.toml):
1x28x28, uniform dequantisation and the logit transform (alpha 0.05), two scales: three
checkerboard couplings, squeeze, three channel couplings, half the channels factored out, four
checkerboard couplings. Each coupling's network is conv3x3 -> ReLU -> conv3x3 -> ReLU -> conv3x3
(32 hidden filters, the last zero-initialised) giving a tanh-bounded log-scale (times a learned
per-channel scale) and a shift. Batch 64 of the first MNIST training images, fresh noise each
step, Adam (lr 1e-3, eps 1e-8), loss in bits/dim.
Prints one RESULT line in the format genlab's `realnvp-step` prints."""
import math

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from step_timing import mnist_train_images, parse_args, time_steps


def mask(kind, flip, c, h, w):
    if kind == "checkerboard":
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        keep = ((yy + xx) % 2 == 0).expand(c, h, w)
    else:
        keep = (torch.arange(c) < c // 2).view(c, 1, 1).expand(c, h, w)
    return (keep != flip).float().unsqueeze(0)


class Coupling(nn.Module):
    def __init__(self, c, h, w, kind, flip, hidden):
        super().__init__()
        self.c1 = nn.Conv2d(c, hidden, 3, padding=1)
        self.c2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.c3 = nn.Conv2d(hidden, 2 * c, 3, padding=1)
        nn.init.zeros_(self.c3.weight)
        nn.init.zeros_(self.c3.bias)
        self.scale = nn.Parameter(torch.ones(c))
        self.register_buffer("b", mask(kind, flip, c, h, w))

    def forward(self, x):
        n, c, h, w = x.shape
        xb = x * self.b
        raw = self.c3(F.relu(self.c2(F.relu(self.c1(xb))))).view(n, 2, c, h, w)
        free = 1 - self.b
        s = torch.tanh(raw[:, 0]) * self.scale.view(1, c, 1, 1) * free
        t = raw[:, 1] * free
        return xb + (x * s.exp() + t) * free, s.flatten(1).sum(1)


def squeeze(x):
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


class RealNvp(nn.Module):
    def __init__(self, hidden=32, steps=3):
        super().__init__()
        alt = lambda i: i % 2 == 1
        self.l0 = nn.ModuleList([Coupling(1, 28, 28, "checkerboard", alt(i), hidden) for i in range(steps)])
        self.l0b = nn.ModuleList([Coupling(4, 14, 14, "channel", alt(i), hidden) for i in range(steps)])
        self.l1 = nn.ModuleList([Coupling(2, 14, 14, "checkerboard", alt(i), hidden) for i in range(steps + 1)])

    def bits_per_dim(self, x, u, alpha=0.05):
        d = x[0].numel()
        p = alpha + (1 - 2 * alpha) * (x + u) / 256.0
        h = p.log() - (-p).log1p()
        log_det = (F.softplus(h) + F.softplus(-h) + math.log(1 - 2 * alpha)).flatten(1).sum(1) - d * math.log(256)
        for m in self.l0:
            h, ld = m(h)
            log_det = log_det + ld
        h = squeeze(h)
        for m in self.l0b:
            h, ld = m(h)
            log_det = log_det + ld
        z0, h = h[:, :2], h[:, 2:]
        for m in self.l1:
            h, ld = m(h)
            log_det = log_det + ld
        prior = sum((-0.5 * (z.pow(2) + math.log(2 * math.pi))).flatten(1).sum(1) for z in (z0, h))
        return (-(prior + log_det) / (d * math.log(2))).mean()


def main():
    a = parse_args()
    model = RealNvp()
    x = torch.from_numpy(mnist_train_images(64).astype(np.float32)).view(64, 1, 28, 28)
    time_steps(model, lambda: model.bits_per_dim(x, torch.rand_like(x)), a)


if __name__ == "__main__":
    main()
