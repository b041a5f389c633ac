"""PyTorch twin of `configs/mnist-vae-600s.toml` for the time-to-quality comparison: the conv VAE of
`configs/mnist-vae.toml` (bench/vae_step.py's network with latent 32), dynamically binarised MNIST batches of 128
shuffled each epoch, Adam (lr 1e-3, constant), trained until the first step that would begin after `--seconds` of
training; then the test NLL by the IWAE bound with k = 100 on the 10,000 test images binarised once with a fixed
seed, as genlab evaluates it.

Usage: /path/to/venv/bin/python bench/vae_twin.py --seconds 600 [--threads 2]
Not part of the test suite."""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from step_timing import read_mnist
from vae_step import Vae


def encode(model, x):
    h = F.relu(model.c2(F.relu(model.c1(x)))).flatten(1)
    return model.mu(h), model.lv(h)


def decode(model, z):
    h = F.relu(model.fc(z)).view(z.shape[0], 64, 7, 7)
    return model.t2(F.relu(model.t1(h)))


def iwae_nll(model, x, k, batch=50):
    """Mean over `x` of -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x): Burda et al.'s bound, in nats."""
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            b = xb.shape[0]
            mu, lv = encode(model, xb)
            std = (0.5 * lv).exp()
            eps = torch.randn(k, b, mu.shape[1])
            z = mu + std * eps  # [k, b, latent]
            logits = decode(model, z.reshape(k * b, -1)).view(k, b, -1)
            log_px = -F.binary_cross_entropy_with_logits(logits, xb.reshape(1, b, -1).expand(k, b, -1),
                                                         reduction="none").sum(-1)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + lv + math.log(2 * math.pi)).sum(-1)
            w = log_px + log_pz - log_qz
            total += -(torch.logsumexp(w, 0) - math.log(k)).sum().item()
    return total / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = torch.from_numpy(read_mnist("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)[:, None]
    test = torch.from_numpy(read_mnist("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0)[:, None]
    test = torch.bernoulli(test, generator=torch.Generator().manual_seed(1234))
    model = Vae(latent=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    steps, started, n = 0, time.perf_counter(), len(train)
    while True:
        order = torch.randperm(n)
        for i in range(0, n - a.batch + 1, a.batch):
            if time.perf_counter() - started >= a.seconds:
                break
            x = torch.bernoulli(train[order[i:i + a.batch]])
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        else:
            continue
        break
    trained = time.perf_counter() - started
    t0 = time.perf_counter()
    nll = iwae_nll(model.eval(), test, a.k)
    print(f"RESULT impl=pytorch-{torch.__version__} steps={steps} train_s={trained:.1f} steps_per_s={steps / trained:.2f} "
          f"nll_nats={nll:.2f} k={a.k} eval_s={time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    main()
