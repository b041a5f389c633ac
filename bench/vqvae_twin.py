"""PyTorch twin of genlab's VQ-VAE (configs/fashion-vqvae.toml), trained and scored as `genlab run`
does, so the reconstruction errors compare (README, issue 17).

The same layers (genlab-models' vqvae/networks.rs): two 4x4 stride-2 convolutions (1 -> 32 -> 64)
with ReLU, two residual blocks (ReLU, 3x3 conv 64 -> 32, ReLU, 1x1 conv 32 -> 64, added), ReLU,
a 1x1 convolution to the 32-wide codes; the decoder a 3x3 convolution 32 -> 64, the same residual
stack and ReLU, 4x4 stride-2 transposed convolutions 64 -> 32 (ReLU) -> 1. PyTorch's default
initialisation is genlab's (uniform +-1/sqrt(fan_in)).

The same quantiser (genlab-nn's codebook.rs): 256 codes drawn U(-1/K, 1/K), counts and sums
starting at zero; nearest code by squared distance; straight-through gradient; commitment weight
0.25; after each Adam step the moving averages (decay 0.99) of the batch's counts and sums, the
Laplace-smoothed counts (eps 1e-5), and every code whose average count is below 1 restarted at a
random encoder output of the batch with its count set to 1.

Training as genlab's trainer: 3,000 steps of 128 shuffled training images in [0, 1] (a new
permutation each epoch, the last partial batch dropped), loss = MSE + 0.25 x commitment, Adam
(lr 1e-3, betas 0.9/0.999, eps 1e-8) with 100 steps of linear warm-up then cosine decay to 0.05 of
the rate. Scored as genlab's evaluation: every test image encoded, quantised and decoded, the MSE
per pixel, the perplexity of the codes of all 490,000 grid cells, and the codes none of them use.
Prints the median step time of the run too.

Usage: /path/to/torch/venv/bin/python bench/vqvae_twin.py [--steps 3000] [--seed 0] [--threads 2]
Not part of CI."""
import argparse
import gzip
import math
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    rank = struct.unpack(">I", data[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def images(split):
    x = read_idx(f"{FASHION}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    return torch.from_numpy(x).unsqueeze(1)


class Residual(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.conv3 = nn.Conv2d(c, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, c, 1)

    def forward(self, x):
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


class VqVae(nn.Module):
    def __init__(self, codes=256, dim=32, decay=0.99, eps=1e-5, threshold=1.0):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1)
        self.enc_res = nn.ModuleList([Residual(64, 32) for _ in range(2)])
        self.pre = nn.Conv2d(64, dim, 1)
        self.post = nn.Conv2d(dim, 64, 3, padding=1)
        self.dec_res = nn.ModuleList([Residual(64, 32) for _ in range(2)])
        self.t1, self.t2 = nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ConvTranspose2d(32, 1, 4, 2, 1)
        self.register_buffer("codebook", torch.empty(codes, dim).uniform_(-1.0 / codes, 1.0 / codes))
        self.register_buffer("cluster", torch.zeros(codes))
        self.register_buffer("embed_sum", torch.zeros(codes, dim))
        self.decay, self.eps, self.threshold = decay, eps, threshold

    def encode(self, x):
        h = F.relu(self.c2(F.relu(self.c1(x))))
        for r in self.enc_res:
            h = r(h)
        z = self.pre(F.relu(h))  # [b, d, 7, 7]
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # cells image by image, row-major

    def nearest(self, z):
        e = self.codebook
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None, :]
        return d.argmin(1)

    def decode(self, q, b):
        h = q.reshape(b, 7, 7, -1).permute(0, 3, 1, 2)
        h = self.post(h)
        for r in self.dec_res:
            h = r(h)
        return self.t2(F.relu(self.t1(F.relu(h))))

    def forward(self, x):
        z = self.encode(x)
        idx = self.nearest(z.detach())
        q = self.codebook[idx]
        commit = (z - q).pow(2).mean()
        st = z + (q - z).detach()
        rec = self.decode(st, x.shape[0])
        return rec, F.mse_loss(rec, x), commit, z.detach(), idx

    @torch.no_grad()
    def ema_update(self, z, idx, gen):
        k = self.codebook.shape[0]
        onehot = F.one_hot(idx, k).float()
        counts = onehot.sum(0)
        self.cluster.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ z, alpha=1 - self.decay)
        total = self.cluster.sum()
        smoothed = (self.cluster + self.eps) / (total + k * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = (self.cluster < self.threshold).nonzero().flatten()
        if len(dead) > 0:
            rows = torch.randint(0, z.shape[0], (len(dead),), generator=gen)
            self.codebook[dead] = z[rows]
            self.embed_sum[dead] = z[rows] * self.threshold
            self.cluster[dead] = self.threshold
        p = counts / counts.sum()
        return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())), len(dead)


def lr_factor(step, total, warmup=100, min_ratio=0.05):
    if step <= warmup:
        return step / warmup
    progress = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    train, test = images("train"), images("t10k")
    model = VqVae()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    per_epoch = len(train) // a.batch
    order, times = None, []
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        i = (step - 1) % per_epoch
        if i == 0:
            order = torch.randperm(len(train), generator=gen)
        x = train[order[i * a.batch:(i + 1) * a.batch]]
        for g in opt.param_groups:
            g["lr"] = 1e-3 * lr_factor(step, a.steps)
        _, mse, commit, z, idx = model(x)
        loss = mse + 0.25 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        perplexity, restarts = model.ema_update(z, idx, gen)
        lv = loss.item()
        times.append((time.perf_counter() - t0) * 1e3)
        if step % 500 == 0 or step == 1:
            print(f"step {step}: loss {lv:.5f} mse {mse.item():.5f} perplexity {perplexity:.1f} restarts {restarts}", flush=True)
    usage = torch.zeros(256, dtype=torch.long)
    squared = 0.0
    with torch.no_grad():
        for s in range(0, len(test), 250):
            x = test[s:s + 250]
            rec, mse, _, _, idx = model(x)
            squared += mse.item() * len(x)
            usage += torch.bincount(idx, minlength=256)
    mse = squared / len(test)
    p = usage.double() / usage.sum()
    perplexity = math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())
    times.sort()
    print(f"RESULT impl=pytorch-{torch.__version__} steps={a.steps} test_mse={mse:.6f} psnr_db={10 * math.log10(1 / mse):.2f} "
          f"perplexity={perplexity:.1f} dead_codes={int((usage == 0).sum())} median_step_ms={times[len(times) // 2]:.2f}")


if __name__ == "__main__":
    main()
