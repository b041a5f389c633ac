"""PyTorch twin of `gan-step`: the same DCGAN as genlab's configs/mnist-dcgan.toml (latent 64;
G: Linear -> 128x7x7, BatchNorm, ReLU, ConvTranspose 128->64 (4x4, stride 2), BatchNorm, ReLU,
ConvTranspose 64->1, tanh; D: Conv 1->64 and 64->128 (4x4, stride 2), LeakyReLU 0.2, Linear -> 1;
the networks of `cgan_recipes.py`'s "dcgan" recipe),
the non-saturating loss, batch 64 of the first MNIST training images in [-1, 1], two Adam
optimisers (lr 2e-4, betas 0.5/0.999). One step: the discriminator on real and generated images in
one pass and its update, then the generator's update against the updated discriminator, as
genlab's step does. Prints one RESULT line in the format genlab's `gan-step` prints."""
import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from cgan_recipes import RECIPES, Discriminator, Generator
from step_timing import mnist_train_images, parse_args, time_loop


class Gan(nn.Module):
    """Both networks and their optimisers."""

    def __init__(self):
        super().__init__()
        self.g, self.d = Generator(RECIPES["dcgan"]), Discriminator(RECIPES["dcgan"])
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)

    def step(self, x):
        n = x.shape[0]
        fake = self.g(torch.randn(n, 64), None)
        logits = self.d(torch.cat([x, fake.detach()]), None, True)
        d_loss = F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = F.softplus(-self.d(fake, None, False)).mean()
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
