"""PyTorch twins of genlab's MNIST GANs, to compare training recipes quickly on a GPU (or a CPU).

Each recipe trains genlab's DCGAN generator and discriminator (configs/mnist-dcgan.toml's sizes:
latent 64, G 128x7x7 -> 64 -> 1, D 64 -> 128 -> linear) for `--steps` steps of 64 MNIST training
images in [-1, 1], with an EMA (0.999) of the generator, and then scores 10,000 EMA samples (classes
in turn for a conditional model) as genlab's evaluation does: 8-bit quantised, in the feature space
of genlab's installed MNIST LeNet (its safetensors file, `--lenet`): FID against the 10,000 test
images, recall (k = 3, Kynkaenniemi et al. / Naeem et al.), and for a conditional model how often
the LeNet classifies a sample as the class it was asked for.

Recipes (`--recipe`, several allowed, each run in turn; `--list` prints them):
the conditional generator concatenates a label embedding to z (genlab's); the discriminator adds
the projection term <embed(y), phi(x)> (Miyato & Koyama 2018) with phi the flattened last features
("flat", genlab's) or their sum over positions ("sum", the paper's),
the embedding initialised N(0, 1) ("normal") or like a dense layer ("dense"), and optionally
spectrally normalised as a [classes, features] matrix (the paper's code, SNEmbedID).

Not part of CI: a research harness; its figures are recorded in README.md (issue 5).
Usage: python bench/cgan_recipes.py --lenet ~/.cache/genlab/weights/mnist_lenet.safetensors \
           --recipe cgan-beta0 cgan-beta0.5 --steps 5000 --seed 0
"""
import argparse
import copy
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from step_timing import read_mnist


BASE = dict(conditional=True, loss="hinge", sn=True, g_lr=2e-4, d_lr=4e-4, betas=(0.5, 0.999), proj="flat",
            embed_init="normal", embed_sn=False, n_critic=1, g_embed_dim=64)
# "cgan-beta0.5" was configs/mnist-cgan.toml's first recipe (DCGAN's Adam); "cgan-beta0" is its
# present one (SAGAN's and BigGAN's Adam: beta1 = 0, beta2 = 0.9, G 1e-4, D 4e-4).
BETA0 = dict(betas=(0.0, 0.9), g_lr=1e-4)
RECIPES = {
    "dcgan": dict(BASE, conditional=False, loss="non_saturating", sn=False, d_lr=2e-4),
    "cgan-beta0.5": dict(BASE),
    "cgan-beta0.5-sn-embed": dict(BASE, embed_sn=True),
    "cgan-beta0.5-sn-embed-equal-lr": dict(BASE, embed_sn=True, d_lr=2e-4),
    "cgan-beta0.5-dense-embed": dict(BASE, embed_init="dense"),
    "cgan-beta0.5-sum-sn-embed": dict(BASE, proj="sum", embed_sn=True),
    "cgan-beta0.5-sum-dense-embed": dict(BASE, proj="sum", embed_init="dense"),
    "cgan-beta0.5-ns-sn-embed": dict(BASE, loss="non_saturating", embed_sn=True, d_lr=2e-4),
    "cgan-beta0.5-ns-no-sn-dense-embed": dict(BASE, loss="non_saturating", sn=False, embed_init="dense", d_lr=2e-4),
    "cgan-beta0": dict(BASE, **BETA0),
    "cgan-beta0-sn-embed": dict(BASE, embed_sn=True, **BETA0),
    "cgan-beta0-sn-embed-ncritic2": dict(BASE, embed_sn=True, betas=(0.0, 0.9), g_lr=2e-4, d_lr=2e-4, n_critic=2),
}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(blob[a:b], dtype=np.float32).reshape(v["shape"]).copy())
    return out


class Lenet:
    """genlab's MNIST LeNet (conv 5x5 -> ReLU -> pool, twice; dense 500 + ReLU = the features;
    logits), from its safetensors file (burn's dense weights are [in, out])."""

    def __init__(self, path, device):
        self.w = {k: v.to(device) for k, v in load_safetensors(path).items()}

    @torch.no_grad()
    def __call__(self, x):
        w = self.w
        h = F.max_pool2d(F.relu(F.conv2d(x, w["convs.0.weight"], w["convs.0.bias"])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w["convs.1.weight"], w["convs.1.bias"])), 2)
        feats = F.relu(h.flatten(1) @ w["fc.weight"] + w["fc.bias"])
        return feats, feats @ w["out.weight"] + w["out.bias"]


class SpectralNorm(nn.Module):
    """genlab's spectral norm: one power iteration per discriminator update (u persistent), the
    weight viewed as [rows, rest]; the generator's pass through D does not advance u."""

    def __init__(self, rows):
        super().__init__()
        u = torch.randn(rows)
        self.register_buffer("u", u / u.norm())

    def forward(self, w, update):
        m = w.reshape(w.shape[0], -1)
        with torch.no_grad():
            v = F.normalize(m.t() @ self.u, dim=0, eps=1e-12)
            u = F.normalize(m @ v, dim=0, eps=1e-12)
            if update:
                self.u.copy_(u)
        return w / (u @ m @ v)


class Generator(nn.Module):
    def __init__(self, r, latent=64):
        super().__init__()
        self.embed = nn.Embedding(10, r["g_embed_dim"]) if r["conditional"] else None
        z_in = latent + (r["g_embed_dim"] if r["conditional"] else 0)
        self.project = nn.Linear(z_in, 128 * 7 * 7)
        self.n0 = nn.BatchNorm2d(128)
        self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.n1 = nn.BatchNorm2d(64)
        self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, z, y):
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        h = F.relu(self.n0(self.project(z).view(-1, 128, 7, 7)))
        return torch.tanh(self.up2(F.relu(self.n1(self.up1(h)))))


class Discriminator(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.r = r
        self.c1 = nn.Conv2d(1, 64, 4, 2, 1)
        self.c2 = nn.Conv2d(64, 128, 4, 2, 1)
        features = 128 * 7 * 7 if r["proj"] == "flat" else 128
        self.out = nn.Linear(128 * 7 * 7, 1)
        self.sn = nn.ModuleList([SpectralNorm(64), SpectralNorm(128), SpectralNorm(1)]) if r["sn"] else None
        self.embed = None
        if r["conditional"]:
            self.embed = nn.Parameter(torch.randn(10, features))
            if r["embed_init"] == "dense":
                nn.init.xavier_uniform_(self.embed)
            self.embed_sn = SpectralNorm(10) if r["embed_sn"] else None

    def weight(self, i, w, update):
        return self.sn[i](w, update) if self.sn is not None else w

    def forward(self, x, y, update):
        h = F.leaky_relu(F.conv2d(x, self.weight(0, self.c1.weight, update), self.c1.bias, 2, 1), 0.2)
        h = F.leaky_relu(F.conv2d(h, self.weight(1, self.c2.weight, update), self.c2.bias, 2, 1), 0.2)
        logit = F.linear(h.flatten(1), self.weight(2, self.out.weight, update), self.out.bias).view(-1)
        if self.embed is None:
            return logit
        phi = h.flatten(1) if self.r["proj"] == "flat" else h.sum((2, 3))
        e = self.embed_sn(self.embed, update) if self.embed_sn is not None else self.embed
        return logit + (e[y] * phi).sum(1)


def d_loss(kind, real, fake):
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss(kind, fake):
    return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()


def frechet(a, b):
    """Frechet distance of two feature sets' Gaussians; tr sqrt(S1 S2) from the eigenvalues of
    S1 S2 (real and non-negative for two covariance matrices, up to rounding)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def recall(real, fake, k=3):
    """The fraction of real features inside some fake feature's k-NN ball (fakes among fakes)."""
    d_ff = torch.cdist(fake, fake)
    radius = d_ff.kthvalue(k + 1, dim=1).values  # the 0th is the point itself
    inside = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    for s in range(0, real.shape[0], 2000):
        inside[s:s + 2000] = (torch.cdist(real[s:s + 2000], fake) <= radius[None, :]).any(1)
    return inside.float().mean().item()


@torch.no_grad()
def evaluate(g, r, lenet, test_feats, device, n=10000):
    g.eval()
    noise = torch.Generator(device=device).manual_seed(1234)
    y = torch.arange(n, device=device) % 10
    x = torch.cat([g(torch.randn(1000, 64, device=device, generator=noise), y[s:s + 1000]) for s in range(0, n, 1000)])
    x = torch.round((x.clamp(-1, 1) + 1) * 127.5) / 255.0
    feats, logits = lenet(x)
    pred = logits.argmax(1)
    hist = torch.bincount(pred, minlength=10).float() / n
    out = dict(fid=frechet(feats.double().cpu().numpy(), test_feats.double().cpu().numpy()),
               recall=recall(test_feats, feats),
               entropy=float(-(hist * hist.clamp_min(1e-12).log()).sum()))
    if r["conditional"]:
        out["accuracy"] = (pred == y).float().mean().item()
    g.train()
    return out


def train(name, r, args, device, data, lenet, test_feats):
    torch.manual_seed(args.seed)
    images, labels = data
    g, d = Generator(r).to(device), Discriminator(r).to(device)
    ema = copy.deepcopy(g)
    opt_g = torch.optim.Adam(g.parameters(), lr=r["g_lr"], betas=r["betas"])
    opt_d = torch.optim.Adam(d.parameters(), lr=r["d_lr"], betas=r["betas"])
    n = 64
    perm = torch.randperm(images.shape[0], device=device)
    t0, pos = time.time(), 0
    for step in range(1, args.steps + 1):
        if pos + n > images.shape[0]:
            perm, pos = torch.randperm(images.shape[0], device=device), 0
        idx = perm[pos:pos + n]
        pos += n
        x, y = images[idx], labels[idx]
        fake = g(torch.randn(n, 64, device=device), y)
        logits = d(torch.cat([x, fake.detach()]), torch.cat([y, y]), True)
        loss_d = d_loss(r["loss"], logits[:n], logits[n:])
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if step % r["n_critic"] == 0:
            loss_g = g_loss(r["loss"], d(fake, y, False))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), g.parameters()):
                pe.lerp_(p, 1 - 0.999)
            for be, b in zip(ema.buffers(), g.buffers()):
                be.copy_(b)
        if step in args.eval_at or step == args.steps:
            m = evaluate(ema, r, lenet, test_feats, device, args.samples)
            print(json.dumps(dict(recipe=name, seed=args.seed, step=step, seconds=round(time.time() - t0, 1),
                                  loss_d=round(loss_d.item(), 4), **{k: round(v, 4) for k, v in m.items()})),
                  flush=True)
    return ema


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", nargs="*", default=["cgan-beta0"])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--eval-at", type=int, nargs="*", default=[])
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lenet", default=os.path.expanduser("~/.cache/genlab/weights/mnist_lenet.safetensors"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for k, v in RECIPES.items():
            print(k, v)
        return
    args.eval_at = set(args.eval_at)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = torch.from_numpy(read_mnist("train-images-idx3-ubyte.gz").astype(np.float32) / 127.5 - 1).to(device)
    labels = torch.from_numpy(read_mnist("train-labels-idx1-ubyte.gz").astype(np.int64)).to(device)
    test = torch.from_numpy(read_mnist("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).to(device)
    lenet = Lenet(args.lenet, device)
    test_feats = lenet(test[:, None])[0]
    train_feats = lenet((images[:10000, None] + 1) / 2)[0]
    print(json.dumps(dict(reference="first 10,000 training images vs the test images",
                          fid=round(frechet(train_feats.double().cpu().numpy(), test_feats.double().cpu().numpy()), 4),
                          recall=round(recall(test_feats, train_feats), 4))), flush=True)
    for name in args.recipe:
        train(name, RECIPES[name], args, device, (images[:, None], labels), lenet, test_feats)


if __name__ == "__main__":
    main()
