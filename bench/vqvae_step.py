"""PyTorch twin of `vqvae-step`: the VQ-VAE of configs/fashion-vqvae.toml (bench/vqvae_twin.py's
model: two stride-2 convolutions, two residual blocks, 256 codes of 32, EMA codebook with
restarts), batch 128 of the first Fashion-MNIST training images in [0, 1], Adam (lr 1e-3, eps
1e-8); a step is the forward pass, the backward pass, the Adam step and the codebook's moving-average
update, as genlab's train_step. Prints one RESULT line in the format genlab's `vqvae-step` prints."""
import torch

from step_timing import parse_args, time_loop
from vqvae_twin import VqVae, images


def main():
    a = parse_args()
    model = VqVae()
    x = images("train")[:128]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    gen = torch.Generator().manual_seed(0)

    def step():
        _, mse, commit, z, idx = model(x)
        loss = mse + 0.25 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.ema_update(z, idx, gen)
        return loss.item()

    time_loop(step, a)


if __name__ == "__main__":
    main()
