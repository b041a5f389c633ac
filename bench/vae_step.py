"""PyTorch twin of `vae-step`: the same conv VAE (1x28x28, conv 32/64 4x4 stride 2, latent 16,
transposed-conv decoder, ReLU after the decoder's dense layer), batch 128, Adam (lr 1e-3, eps 1e-8),
Bernoulli likelihood (BCE with logits, summed per image, mean over the batch) plus analytic KL, on the
first 128 MNIST training images thresholded at 128.
Prints one RESULT line in the format genlab's `vae-step` prints."""
import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from step_timing import mnist_train_images, parse_args, time_steps


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
    a = parse_args()
    model = Vae()
    # The first 128 MNIST training images thresholded at 128, as genlab's vae-step uses.
    x = torch.from_numpy((mnist_train_images(128) >= 128).astype(np.float32)).view(128, 1, 28, 28)
    time_steps(model, lambda: model.loss(x), a)


if __name__ == "__main__":
    main()
