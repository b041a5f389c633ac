"""PyTorch twin of genlab's GPT (configs/shakespeare-gpt.toml, issue 14): nanoGPT's model and
training loop (karpathy/nanoGPT `model.py` and `train.py`, rewritten here in their shape) on the
same corpus and split, scored by genlab's protocol, so the two validation losses compare.

The model as nanoGPT's GPT with `bias=False`: token and position embeddings, pre-LayerNorm blocks
(LayerNorm without bias, causal self-attention through one `c_attn` projection and
`scaled_dot_product_attention(is_causal=True)`, `c_proj`; LayerNorm, `c_fc` 4x, exact GELU,
`c_proj`), a final LayerNorm and a head tied to the token embedding; GPT-2's initialisation
(N(0, 0.02), `c_proj` weights N(0, 0.02 / sqrt(2 n_layer))).

Data as nanoGPT's shakespeare_char, on genlab's corpus: data/shakespeare/shakespeare.txt.gz, the
last tenth of its characters held out, the vocabulary the training part's characters (sorted) plus
one unknown token (genlab's tokenizer; it never occurs in training). Batches as nanoGPT's
`get_batch`: `batch` random windows of `block + 1` tokens (torch.randint starts).

Training as nanoGPT's loop with the baby config's settings: AdamW (betas 0.9/0.99, eps 1e-8,
weight decay 0.1 on parameters of rank >= 2 only), gradients clipped to global norm 1, the learning
rate 1e-3 warmed up and cosine-decayed to 1e-4 -- with genlab's schedule arithmetic (step / warmup
during warm-up, 1-based steps), so the two see the same rates.

Scored as genlab's evaluation: every token of the held-out text but the first, predicted once
from the tokens before it in consecutive windows of block + 1 tokens overlapping by one; nats per
token, bits per character, perplexity.

Usage: /path/to/torch/venv/bin/python bench/gpt_twin.py [--steps 2000] [--seed 0] [--threads 2]
Not part of CI."""
import argparse
import gzip
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, bias=False)
        self.c_attn = nn.Linear(d, 3 * d, bias=False)
        self.attn_proj = nn.Linear(d, d, bias=False)
        self.ln_2 = nn.LayerNorm(d, bias=False)
        self.c_fc = nn.Linear(d, 4 * d, bias=False)
        self.mlp_proj = nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, block, layers, heads, d):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block, d)
        self.h = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        for blk in self.h:
            for p in (blk.attn_proj.weight, blk.mlp_proj.weight):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x) @ self.wte.weight.t()


def genlab_lr(step, total, lr, warmup, min_ratio):
    """genlab_train::Schedule::factor (cosine) times the base rate, 1-based step."""
    if step <= warmup and warmup > 0:
        return lr * step / warmup
    progress = min(max((step - min(warmup, step)) / max(total - warmup, 1), 0.0), 1.0)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def score(model, tokens, block, batch=64):
    """Nats over every token but the first, in windows of block + 1 overlapping by one."""
    starts = list(range(0, len(tokens) - 1, block))
    nats, count = 0.0, 0
    full = [s for s in starts if s + block < len(tokens)]
    for i in range(0, len(full), batch):
        w = torch.stack([tokens[s : s + block + 1] for s in full[i : i + batch]])
        logits = model(w[:, :-1])
        nats += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum").item()
        count += w[:, 1:].numel()
    for s in starts:
        if s + block >= len(tokens):
            w = tokens[s:].unsqueeze(0)
            logits = model(w[:, :-1])
            nats += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum").item()
            count += w.shape[1] - 1
    return nats, count


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "shakespeare", "shakespeare.txt.gz")


def shakespeare_split(path=DATA):
    """genlab's text split and character tokenizer: the last tenth of the characters held out, the
    training part's characters (sorted) as tokens, one unknown token after them. Returns the
    training and held-out texts, the vocabulary size and both parts as token tensors."""
    text = gzip.open(path, "rt", encoding="utf-8").read()
    held = min(max(round(len(text) * 0.1), 1), len(text) - 1)
    train_text, val_text = text[: len(text) - held], text[len(text) - held :]
    chars = sorted(set(train_text))
    index = {c: i for i, c in enumerate(chars)}
    train = torch.tensor([index[c] for c in train_text], dtype=torch.long)
    val = torch.tensor([index.get(c, len(chars)) for c in val_text], dtype=torch.long)
    return train_text, val_text, len(chars) + 1, train, val


def matrix_decay_adamw(model, lr):
    """nanoGPT's AdamW groups: weight decay 0.1 on parameters of rank >= 2 only."""
    params = list(model.parameters())
    return torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.99), eps=1e-8,
    )


def train_and_score(model, opt, train, val, val_text, a):
    """nanoGPT's loop (random windows, genlab's schedule arithmetic, global-norm clipping to 1),
    then genlab's scoring of the held-out tokens; prints the result line. With `--seconds`, training
    stops before the first step that would begin after that many seconds (genlab's train.max_seconds)."""
    t0 = time.time()
    done = 0
    for step in range(1, a.steps + 1):
        if a.seconds and time.time() - t0 >= a.seconds:
            break
        for g in opt.param_groups:
            g["lr"] = genlab_lr(step, a.steps, a.lr, a.warmup, a.min_ratio)
        ix = torch.randint(len(train) - a.block, (a.batch,))
        w = torch.stack([train[i : i + a.block + 1] for i in ix])
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step
        if step % 250 == 0 or step == 1:
            print(f"step {step}: loss {loss.item():.4f} ({time.time() - t0:.1f} s)", flush=True)
    train_s = time.time() - t0
    model.eval()
    t1 = time.time()
    nats, count = score(model, val, a.block)
    print(
        f"twin seed {a.seed}: validation {nats / count:.4f} nats per token, "
        f"{nats / math.log(2) / (len(val_text) - 1):.4f} bits per character, perplexity {math.exp(nats / count):.3f} "
        f"({count} tokens); training {done} steps in {train_s:.1f} s ({done / train_s:.2f} it/s), scoring {time.time() - t1:.1f} s"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--min-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=0.0, help="a wall-clock budget for training (0: none)")
    ap.add_argument("--data", default=DATA)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    _, val_text, vocab, train, val = shakespeare_split(a.data)
    model = GPT(vocab, a.block, a.layers, a.heads, a.width)
    opt = matrix_decay_adamw(model, a.lr)
    print(f"parameters {sum(p.numel() for p in model.parameters())}, vocabulary {vocab}, train {len(train)} tokens, validation {len(val)}")
    train_and_score(model, opt, train, val, val_text, a)


if __name__ == "__main__":
    main()
