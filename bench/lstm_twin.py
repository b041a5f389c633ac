"""PyTorch twin of genlab's LSTM language model (configs/shakespeare-lstm.toml, issue 14), trained
and scored as `genlab run` does, so the two validation losses compare.

The model as genlab-models' lm/rnn.rs: nn.Embedding(vocab, 64) (N(0, 1)), a two-layer nn.LSTM of
128 (PyTorch's own cells, which genlab's match: genlab-nn's recurrent fixture), nn.Linear(128,
vocab); PyTorch's default initialisation is genlab's. Each window of 65 tokens runs from the zero
state. Data, batches (random windows, as nanoGPT's get_batch), schedule arithmetic and scoring
are bench/gpt_twin.py's; the optimiser is Adam (lr 2e-3, betas 0.9/0.999, eps 1e-8), warmed up
for 100 steps and cosine-decayed to 2e-4, gradients clipped to norm 1.

Usage: /path/to/torch/venv/bin/python bench/lstm_twin.py [--steps 2000] [--seed 0] [--threads 2]
Not part of CI."""
import argparse
import gzip
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt_twin import genlab_lr, score


class LstmLm(nn.Module):
    def __init__(self, vocab, embedding, hidden, layers):
        super().__init__()
        self.wte = nn.Embedding(vocab, embedding)
        self.rnn = nn.LSTM(embedding, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx):
        y, _ = self.rnn(self.wte(idx))
        return self.head(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embedding", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--min-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "shakespeare", "shakespeare.txt.gz"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    text = gzip.open(a.data, "rt", encoding="utf-8").read()
    held = min(max(round(len(text) * 0.1), 1), len(text) - 1)
    train_text, val_text = text[: len(text) - held], text[len(text) - held :]
    chars = sorted(set(train_text))
    index = {c: i for i, c in enumerate(chars)}
    train = torch.tensor([index[c] for c in train_text], dtype=torch.long)
    val = torch.tensor([index.get(c, len(chars)) for c in val_text], dtype=torch.long)

    model = LstmLm(len(chars) + 1, a.embedding, a.hidden, a.layers)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, eps=1e-8)
    print(f"parameters {sum(p.numel() for p in model.parameters())}, vocabulary {len(chars) + 1}")
    t0 = time.time()
    for step in range(1, a.steps + 1):
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
        if step % 250 == 0 or step == 1:
            print(f"step {step}: loss {loss.item():.4f} ({time.time() - t0:.1f} s)", flush=True)
    train_s = time.time() - t0
    model.eval()
    t1 = time.time()
    nats, count = score(model, val, a.block)
    print(
        f"twin seed {a.seed}: validation {nats / count:.4f} nats per token, "
        f"{nats / math.log(2) / (len(val_text) - 1):.4f} bits per character, perplexity {math.exp(nats / count):.3f} "
        f"({count} tokens); training {train_s:.1f} s ({a.steps / train_s:.2f} it/s), scoring {time.time() - t1:.1f} s"
    )


if __name__ == "__main__":
    main()
