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

import torch
import torch.nn as nn

from gpt_twin import DATA, shakespeare_split, train_and_score


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
    ap.add_argument("--data", default=DATA)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    _, val_text, vocab, train, val = shakespeare_split(a.data)
    model = LstmLm(vocab, a.embedding, a.hidden, a.layers)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, eps=1e-8)
    print(f"parameters {sum(p.numel() for p in model.parameters())}, vocabulary {vocab}")
    train_and_score(model, opt, train, val, val_text, a)


if __name__ == "__main__":
    main()
