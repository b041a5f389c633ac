"""PyTorch twin of `vae-step`: the same conv VAE (1x28x28, conv 32/64 4x4 stride 2, latent 16,
transposed-conv decoder, ReLU after the decoder's dense layer), batch 128, Adam (lr 1e-3, eps 1e-8),
Bernoulli likelihood (BCE with logits, summed per image, mean over the batch) plus analytic KL, on the
first 128 MNIST training images thresholded at 128.
Prints one RESULT line in the format genlab's `vae-step` prints."""
import argparse
import gzip
import os
import time

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F


class Vae(nn.Module):
    def __init__(self, latent=16):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 4, 2, 1)
        self.c2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.mu = nn.Linear(64 * 7 * 7, latent)
        self.lv = nn.Linear(64 * 7 * 7, latent)
        self.fc = nn.Linear(latent, 64 * 7 * 7)
        self.t1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.t2 = nn.ConvTranspose2d(32, 1, 4, 2, 1)

    def loss(self, x):
        b = x.shape[0]
        h = F.relu(self.c2(F.relu(self.c1(x)))).flatten(1)
        mu, lv = self.mu(h), self.lv(h)
        z = mu + (0.5 * lv).exp() * torch.randn_like(mu)
        h = F.relu(self.fc(z)).view(b, 64, 7, 7)
        logits = self.t2(F.relu(self.t1(h)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / b
        kl = 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).sum() / b
        return rec + kl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Vae()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    # The first 128 MNIST training images thresholded at 128, as genlab's vae-step uses.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist", "train-images-idx3-ubyte.gz")
    with gzip.open(path) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[: 128 * 784]
    x = torch.from_numpy((raw >= 128).astype(np.float32)).view(128, 1, 28, 28)
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = model.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = loss.item()
        ms = (time.perf_counter() - t0) * 1e3
        losses.append(lv)
        if i >= a.warmup:
            times.append(ms)
    times.sort()
    print(f"RESULT impl=pytorch-{torch.__version__} median_ms={times[len(times) // 2]:.3f} "
          f"min_ms={times[0]:.3f} max_ms={times[-1]:.3f} loss_first={losses[0]:.3f} loss_last={losses[-1]:.3f}")


if __name__ == "__main__":
    main()
