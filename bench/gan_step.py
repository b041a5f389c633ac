"""PyTorch twin of `gan-step`: the same DCGAN as genlab's configs/mnist-dcgan.toml (latent 64;
G: Linear -> 128x7x7, BatchNorm, ReLU, ConvTranspose 128->64 (4x4, stride 2), BatchNorm, ReLU,
ConvTranspose 64->1, tanh; D: Conv 1->64 and 64->128 (4x4, stride 2), LeakyReLU 0.2, Linear -> 1),
the non-saturating loss, batch 64 of the first MNIST training images in [-1, 1], two Adam
optimisers (lr 2e-4, betas 0.5/0.999). One step: the discriminator on real and generated images in
one pass and its update, then the generator's update against the updated discriminator, as
genlab's step does. Prints one RESULT line in the format genlab's `gan-step` prints."""
import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from step_timing import mnist_train_images, parse_args, time_loop


class Generator(nn.Module):
    def __init__(self, latent=64):
        super().__init__()
        self.project = nn.Linear(latent, 128 * 7 * 7)
        self.n0 = nn.BatchNorm2d(128)
        self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.n1 = nn.BatchNorm2d(64)
        self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, z):
        h = F.relu(self.n0(self.project(z).view(-1, 128, 7, 7)))
        return torch.tanh(self.up2(F.relu(self.n1(self.up1(h)))))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 64, 4, 2, 1)
        self.c2 = nn.Conv2d(64, 128, 4, 2, 1)
        self.out = nn.Linear(128 * 7 * 7, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c2(F.leaky_relu(self.c1(x), 0.2)), 0.2)
        return self.out(h.flatten(1)).view(-1)


class Gan(nn.Module):
    """Both networks and their optimisers."""

    def __init__(self):
        super().__init__()
        self.g, self.d = Generator(), Discriminator()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)

    def step(self, x):
        n = x.shape[0]
        fake = self.g(torch.randn(n, 64))
        logits = self.d(torch.cat([x, fake.detach()]))
        d_loss = F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = F.softplus(-self.d(fake)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return d_loss.detach()


def main():
    a = parse_args()
    gan = Gan()
    x = torch.from_numpy(mnist_train_images(64).astype(np.float32) / 127.5 - 1.0).view(64, 1, 28, 28)
    time_loop(lambda: gan.step(x).item(), a)


if __name__ == "__main__":
    main()
