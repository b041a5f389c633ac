"""PyTorch twin of `diffusion-step`: the UNet of configs/mnist-ddpm.toml (`diffusion_twin.Unet`,
layer for layer genlab's), the cosine schedule of 1,000 steps, v prediction with min-SNR-5
weighting, batch `--batch`
(64) of the first MNIST training images in [-1, 1] with their labels (dropped to the "no class"
token with probability 0.1), a uniform timestep and fresh noise per image, Adam (lr 2e-4). One
step: forward, backward, the Adam update and reading the loss. Prints one RESULT line in the
format genlab's `diffusion-step` prints. Accepts the same `--base`, `--mults`, `--blocks` and
`--attention` as `diffusion-step`; with `--forward`, one forward pass without gradients (a sampling
step's network) instead, as `diffusion-step --forward`."""
import sys

import numpy as np
import torch

from diffusion_twin import Unet, alphas_cumprod, target_and_weight
from step_timing import read_mnist, time_loop


def take(name, default):
    if name in sys.argv:
        i = sys.argv.index(name)
        value = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return value
    return default


def counts(s):
    return tuple(int(v) for v in s.split(",") if v)


def main():
    base, mults = int(take("--base", "16")), counts(take("--mults", "1,2,4"))
    blocks, attention = int(take("--blocks", "1")), counts(take("--attention", "7"))
    batch = int(take("--batch", "64"))
    forward = "--forward" in sys.argv
    if forward:
        sys.argv.remove("--forward")
    from step_timing import parse_args
    a = parse_args()
    x0 = torch.from_numpy(read_mnist("train-images-idx3-ubyte.gz")[:batch].astype(np.float32) / 127.5 - 1)[:, None]
    labels = torch.from_numpy(read_mnist("train-labels-idx1-ubyte.gz")[:batch].astype(np.int64))
    model = Unet(base=base, mults=mults, blocks=blocks, attention=attention)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, eps=1e-8)
    if forward:
        model.eval()
        t = torch.tensor([i * 997 % 1000 for i in range(batch)])

        def forward_pass():
            with torch.no_grad():
                return model(x0, t, labels).sum().item()

        time_loop(forward_pass, a)
        return
    ac = alphas_cumprod(schedule="cosine").float()

    def step():
        y = torch.where(torch.rand(batch) < 0.1, torch.full_like(labels, 10), labels)
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(x0)
        abar = ac[t][:, None, None, None]
        target, weight = target_and_weight("v", 5.0, x0, eps, abar)
        loss = (((model(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, t, y) - target) ** 2) * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    time_loop(step, a)


if __name__ == "__main__":
    main()
