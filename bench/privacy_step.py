"""PyTorch twin of `privacy-step`: the same networks and fixed batch (256 MNIST training digits),
one Adam step (lr 1e-3, eps 1e-8) without privacy, or with Opacus 1.6's DP-SGD (GradSampleModule's
per-sample gradients from activations and output gradients, clipping to norm 1, noise multiplier 1).
    privacy_step.py --model lenet|vae [--private] [--warmup N] [--steps N] [--threads N]
Prints one RESULT line in the format genlab's `privacy-step` prints."""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from step_timing import parse_args, read_mnist, time_loop

BATCH = 256


class LeNet(nn.Module):
    """configs/mnist-lenet-dp.toml's classifier: unpadded 5x5 convolutions 16 and 32, each with ReLU
    and 2x2 max pooling, a hidden layer of 64, 10 logits."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 5), nn.Conv2d(16, 32, 5)
        self.fc, self.out = nn.Linear(32 * 4 * 4, 64), nn.Linear(64, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        h = F.max_pool2d(F.relu(self.c2(h)), 2)
        return self.out(F.relu(self.fc(h.flatten(1))))


class Vae(nn.Module):
    """configs/mnist-vae-dp.toml's VAE: conv 16/32 (4x4, stride 2), latent 16, transposed-conv
    decoder; forward returns the negative ELBO, mean over the batch."""

    def __init__(self, c=(16, 32), latent=16):
        super().__init__()
        self.c = c
        self.c1, self.c2 = nn.Conv2d(1, c[0], 4, 2, 1), nn.Conv2d(c[0], c[1], 4, 2, 1)
        self.mu, self.lv = nn.Linear(c[1] * 49, latent), nn.Linear(c[1] * 49, latent)
        self.fc = nn.Linear(latent, c[1] * 49)
        self.t1, self.t2 = nn.ConvTranspose2d(c[1], c[0], 4, 2, 1), nn.ConvTranspose2d(c[0], 1, 4, 2, 1)

    def forward(self, x):
        b = x.shape[0]
        h = F.relu(self.c2(F.relu(self.c1(x)))).flatten(1)
        mu, lv = self.mu(h), self.lv(h)
        z = mu + (0.5 * lv).exp() * torch.randn_like(mu)
        logits = self.t2(F.relu(self.t1(F.relu(self.fc(z)).view(b, self.c[1], 7, 7))))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / b
        kl = 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).sum() / b
        return rec + kl


def main():
    model_name = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "lenet"
    private = "--private" in sys.argv
    sys.argv = [a for i, a in enumerate(sys.argv) if a not in ("--private", "--model") and sys.argv[i - 1] != "--model"]
    a = parse_args()
    images = read_mnist("train-images-idx3-ubyte.gz")[:BATCH].reshape(BATCH, 1, 28, 28)
    if model_name == "lenet":
        model = LeNet()
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        y = torch.from_numpy(read_mnist("train-labels-idx1-ubyte.gz")[:BATCH].astype(np.int64))
        loss_of = lambda m: F.cross_entropy(m(x), y)
    else:
        model = Vae()
        x = torch.from_numpy((images >= 128).astype(np.float32))
        loss_of = lambda m: m(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    if private:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        model = GradSampleModule(model)
        opt = DPOptimizer(opt, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=BATCH)

    def step():
        loss = loss_of(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    time_loop(step, a)


if __name__ == "__main__":
    main()
