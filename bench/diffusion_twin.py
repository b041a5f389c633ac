"""PyTorch twin of genlab's class-conditional DDPM (configs/mnist-ddpm.toml), trained and scored
as genlab's `genlab run` does, so the two FIDs compare (README, issue 13).

The same UNet layer for layer (genlab-models' diffusion/unet.rs): sinusoidal time embedding of
`base` dims through Linear(base, 4 base), SiLU, Linear(4 base, 4 base); a class table of
`classes + 1` rows (the last the "no class" token) added to it; a 3x3 input convolution; per
level, residual blocks (GroupNorm, SiLU, 3x3 conv, + Linear(SiLU(emb)), GroupNorm, SiLU,
dropout, 3x3 conv, 1x1 skip when the width changes), self-attention (GroupNorm, 1x1 qkv, one
head, 1x1 out, residual) at the listed resolutions, a stride-2 3x3 convolution down; the middle
(block, attention, block); coming up, one block more per level on the concatenated skips, then
nearest doubling and a 3x3 convolution; GroupNorm, SiLU and a 3x3 output convolution. PyTorch's
default initialisation is genlab's (uniform +-1/sqrt(fan_in), embeddings N(0, 1)).

Training as genlab's trainer: batches of `--batch` shuffled training images in [-1, 1] (a new
permutation each epoch), a uniform timestep and fresh noise per image, the label replaced by the
"no class" token with probability 0.1, the schedule (`--schedule`: cosine or linear), the target
(`--prediction`: v or epsilon) and genlab's loss (the per-example squared error weighted by
min(SNR, gamma) / (SNR + 1) for v, / SNR for epsilon, `--min-snr`), Adam (lr 1e-3, betas 0.9/0.999,
eps 1e-8) with `--warmup` steps of linear warm-up then cosine decay to 0, and an EMA of the
weights with genlab's decay warm-up, min(decay, (1 + n) / (10 + n)).

Sampling with diffusers' own DPMSolverMultistepScheduler (DPM-Solver++(2M), the same schedule and
prediction type,
x0 clipped to [-1, 1] through `thresholding` with `sample_max_value = 1`), classifier-free
guidance in one batch, classes in turn; scored as genlab's evaluation: the samples quantised to 8
bits, features and predictions of genlab's installed MNIST LeNet (`--lenet`), FID against the
10,000 test images, and the fraction classified as the class asked for.

Usage: /path/to/torch/venv/bin/python bench/diffusion_twin.py --lenet DIR/mnist_lenet.safetensors
Not part of CI."""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cgan_recipes import Lenet, frechet
from step_timing import read_mnist


def timestep_embedding(t, dim):
    half = dim // 2
    scale = math.log(10000.0) / (max(half, 2) - 1)
    freqs = torch.exp(-scale * torch.arange(half, dtype=torch.float64))
    args = t.double()[:, None] * freqs[None, :]
    return torch.cat([args.sin(), args.cos()], 1).float()


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, emb, groups, dropout):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.embed = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        self.dropout = dropout

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embed(F.silu(emb))[:, :, None, None]
        h = F.dropout(F.silu(self.norm2(h)), self.dropout, self.training)
        h = self.conv2(h)
        return h + (self.skip(x) if self.skip is not None else x)


class SelfAttention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm, self.qkv, self.out = nn.GroupNorm(groups, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, c, h * w)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        scores = q.transpose(1, 2) @ k / math.sqrt(c)
        attended = scores.softmax(2) @ v.transpose(1, 2)
        return x + self.out(attended.transpose(1, 2).reshape(b, c, h, w))


class Unet(nn.Module):
    def __init__(self, base=16, mults=(1, 2, 4), blocks=1, attention=(7,), dropout=0.0, groups=8, classes=10,
                 channels=1, size=28):
        super().__init__()
        emb = 4 * base
        self.base = base
        self.time1, self.time2 = nn.Linear(base, emb), nn.Linear(emb, emb)
        self.class_embed = nn.Embedding(classes + 1, emb)
        self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
        res, skips, cur = size, [base], base
        self.down = nn.ModuleList()
        for i, m in enumerate(mults):
            c = m * base
            level = nn.Module()
            level.blocks, level.attention = nn.ModuleList(), nn.ModuleList()
            for _ in range(blocks):
                level.blocks.append(ResBlock(cur, c, emb, groups, dropout))
                cur = c
                level.attention.append(SelfAttention(c, groups) if res in attention else nn.Identity())
                skips.append(cur)
            level.resample = nn.Conv2d(cur, cur, 3, stride=2, padding=1) if i + 1 < len(mults) else None
            if level.resample is not None:
                res //= 2
                skips.append(cur)
            self.down.append(level)
        self.mid1 = ResBlock(cur, cur, emb, groups, dropout)
        self.mid_attention = SelfAttention(cur, groups)
        self.mid2 = ResBlock(cur, cur, emb, groups, dropout)
        self.up = nn.ModuleList()
        for i in reversed(range(len(mults))):
            c = mults[i] * base
            level = nn.Module()
            level.blocks, level.attention = nn.ModuleList(), nn.ModuleList()
            for _ in range(blocks + 1):
                level.blocks.append(ResBlock(cur + skips.pop(), c, emb, groups, dropout))
                cur = c
                level.attention.append(SelfAttention(c, groups) if res in attention else nn.Identity())
            level.resample = nn.Conv2d(cur, cur, 3, padding=1) if i > 0 else None
            if level.resample is not None:
                res *= 2
            self.up.append(level)
        self.out_norm, self.out_conv = nn.GroupNorm(groups, cur), nn.Conv2d(cur, channels, 3, padding=1)

    def forward(self, x, t, labels):
        emb = self.time2(F.silu(self.time1(timestep_embedding(t, self.base).to(x.device))))
        emb = emb + self.class_embed(labels)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for block, attn in zip(level.blocks, level.attention):
                h = attn(block(h, emb))
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)
        h = self.mid2(self.mid_attention(self.mid1(h, emb)), emb)
        for level in self.up:
            for block, attn in zip(level.blocks, level.attention):
                h = attn(block(torch.cat([h, skips.pop()], 1), emb))
            if level.resample is not None:
                h = level.resample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


def alphas_cumprod(timesteps=1000, beta_start=1e-4, beta_end=0.02, schedule="linear"):
    """genlab's schedules: "linear" (DDPM) or "cosine" (Nichol & Dhariwal, betas capped at 0.999,
    diffusers' "squaredcos_cap_v2")."""
    if schedule == "cosine":
        bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - bar((i + 1) / timesteps) / bar(i / timesteps), 0.999) for i in range(timesteps)],
                             dtype=torch.float64)
    else:
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


DIFFUSERS_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
DIFFUSERS_PREDICTION = {"epsilon": "epsilon", "v": "v_prediction"}


def target_and_weight(prediction, min_snr, x0, eps, abar):
    """The training target and each example's min-SNR weight (1 without), as genlab's loss."""
    if prediction == "v":
        target = abar.sqrt() * eps - (1 - abar).sqrt() * x0
    else:
        target = eps
    if min_snr is None:
        return target, torch.ones_like(abar)
    snr = abar / (1 - abar)
    clipped = snr.clamp(max=min_snr)
    return target, clipped / (snr + 1) if prediction == "v" else clipped / snr


@torch.no_grad()
def sample(model, n, classes, steps, scale, seed, device, schedule, prediction, chunk=250):
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                        beta_schedule=DIFFUSERS_SCHEDULE[schedule],
                                        prediction_type=DIFFUSERS_PREDICTION[prediction],
                                        algorithm_type="dpmsolver++", solver_order=2,
                                        thresholding=True, sample_max_value=1.0, dynamic_thresholding_ratio=0.995)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        y = torch.arange(s, s + k) % classes
        x = torch.randn(k, 1, 28, 28, generator=gen).to(device)
        sched.set_timesteps(steps)
        for t in sched.timesteps:
            both = model(torch.cat([x, x]), torch.full((2 * k,), int(t)), torch.cat([y, torch.full((k,), classes)]).to(device))
            cond, uncond = both[:k], both[k:]
            x = sched.step(uncond + scale * (cond - uncond), t, x).prev_sample
        out.append(x.cpu())
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lenet", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--schedule", choices=["linear", "cosine"], default="cosine")
    ap.add_argument("--prediction", choices=["epsilon", "v"], default="v")
    ap.add_argument("--min-snr", type=float, default=5.0, help="min-SNR gamma; 0 for none")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--sampling-steps", type=int, default=10)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = torch.from_numpy(read_mnist("train-images-idx3-ubyte.gz").astype(np.float32) / 127.5 - 1)[:, None]
    labels = torch.from_numpy(read_mnist("train-labels-idx1-ubyte.gz").astype(np.int64))
    model = Unet(dropout=a.dropout).to(device)
    ema = Unet(dropout=a.dropout).to(device)
    ema.load_state_dict(model.state_dict())
    ema.eval()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    ac = alphas_cumprod(schedule=a.schedule).float().to(device)
    min_snr = a.min_snr if a.min_snr > 0 else None
    perm, pos = torch.randperm(len(images)), 0
    t0 = time.time()
    for step in range(1, a.steps + 1):
        if pos + a.batch > len(images):
            perm, pos = torch.randperm(len(images)), 0
        idx = perm[pos:pos + a.batch]
        pos += a.batch
        x0, y = images[idx].to(device), labels[idx].to(device)
        y = torch.where(torch.rand(a.batch, device=device) < 0.1, torch.full_like(y, 10), y)
        t = torch.randint(0, 1000, (a.batch,), device=device)
        eps = torch.randn_like(x0)
        abar = ac[t][:, None, None, None]
        target, weight = target_and_weight(a.prediction, min_snr, x0, eps, abar)
        out = model(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, t, y)
        loss = (((out - target) ** 2) * weight).mean()
        factor = step / a.warmup if step <= a.warmup else 0.5 * (1 + math.cos(math.pi * (step - a.warmup) / max(a.steps - a.warmup, 1)))
        for g in opt.param_groups:
            g["lr"] = a.lr * factor
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(a.ema, (1 + step - 1) / (10 + step - 1))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        if step % 100 == 0 or step == a.steps:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    train_s = time.time() - t0
    t1 = time.time()
    x = sample(ema, a.samples, 10, a.sampling_steps, a.guidance, a.seed, device, a.schedule, a.prediction)
    sample_s = time.time() - t1
    x = torch.round((x.clamp(-1, 1) + 1) * 127.5) / 255.0
    lenet = Lenet(a.lenet, "cpu")
    test = torch.from_numpy(read_mnist("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255)[:, None]
    test_feats = lenet(test)[0]
    feats, logits = lenet(x)
    y = torch.arange(a.samples) % 10
    fid = frechet(feats.double().numpy(), test_feats.double().numpy())
    acc = (logits.argmax(1) == y).float().mean().item()
    print(f"RESULT twin=pytorch-{torch.__version__} steps={a.steps} batch={a.batch} samples={a.samples} "
          f"schedule={a.schedule} prediction={a.prediction} min_snr={a.min_snr} "
          f"sampler=dpm-solver++x{a.sampling_steps} guidance={a.guidance} fid={fid:.4f} "
          f"conditional_accuracy={acc:.4f} train_s={train_s:.0f} sample_s={sample_s:.0f}")


if __name__ == "__main__":
    main()
