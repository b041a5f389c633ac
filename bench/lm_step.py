"""PyTorch twin of `lm-step`: `--model gpt`, nanoGPT's GPT (bench/gpt_twin.py's model: 4 layers,
4 heads, width 128, block 64, no biases, tied head) on the same 12 fixed windows of the vendored
Shakespeare's training split, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on matrices only),
gradients clipped to norm 1; `--model lstm`, bench/lstm_twin.py's LSTM (embedding 64, two layers of
128) on 32 such windows, Adam (lr 2e-3), clipped to norm 1. Prints one RESULT line in the format genlab's `lm-step` prints; with
`--generate N`, the speed of nanoGPT's `generate` (no KV cache: the whole context each token) and of
the same greedy loop with a KV cache that slides as genlab's `generate` does (when the window holds
the block, it keeps its last half, re-read into a fresh cache).
Not part of CI."""
import argparse
import time

import torch
import torch.nn.functional as F

from gpt_twin import GPT, matrix_decay_adamw, shakespeare_split
from lstm_twin import LstmLm
from step_timing import time_loop

BATCH, BLOCK = 12, 64


def feed(model, cache, tokens):
    """Runs `tokens` after the `cache` (per layer (k, v) and the next position) through the GPT,
    extending the cache; the last token's logits."""
    pos = cache["pos"]
    idx = torch.tensor([tokens])
    x = model.wte(idx) + model.wpe(torch.arange(pos, pos + len(tokens)))
    for i, blk in enumerate(model.h):
        b, t, d = x.shape
        q, k, v = blk.c_attn(blk.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, blk.heads, d // blk.heads).transpose(1, 2) for z in (q, k, v))
        if cache["kv"][i] is not None:
            k, v = torch.cat([cache["kv"][i][0], k], 2), torch.cat([cache["kv"][i][1], v], 2)
        cache["kv"][i] = (k, v)
        # Only the first feed of a fresh cache has several queries; they are causal among themselves.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
        x = x + blk.attn_proj(y.transpose(1, 2).contiguous().view(b, t, d))
        x = x + blk.mlp_proj(F.gelu(blk.c_fc(blk.ln_2(x))))
    cache["pos"] = pos + len(tokens)
    return model.ln_f(x[0, -1]) @ model.wte.weight.t()


def cached_generate(model, n):
    """`n` greedy tokens after token 0 with a KV cache, sliding as genlab's `generate`."""
    fresh = lambda: {"pos": 0, "kv": [None] * len(model.h)}
    window, cache = [0], fresh()
    logits = feed(model, cache, window)
    out = []
    for i in range(n):
        nxt = int(logits.argmax())
        out.append(nxt)
        if i + 1 == n:
            break
        if len(window) == BLOCK:
            window, cache = window[BLOCK - BLOCK // 2:], fresh()
            feed(model, cache, window)
        window.append(nxt)
        logits = feed(model, cache, [nxt])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="gpt")
    ap.add_argument("--generate", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    _, _, vocab, train, _ = shakespeare_split()
    model = GPT(vocab, BLOCK, 4, 4, 128)
    if a.model == "lstm":
        model = LstmLm(vocab, 64, 128, 2)
    if a.generate:
        model.eval()
        idx = torch.zeros((1, 1), dtype=torch.long)
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(a.generate):
                logits = model(idx[:, -BLOCK:])[:, -1, :]
                idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
        s = time.perf_counter() - t0
        print(f"GENERATE impl=pytorch-{torch.__version__}-uncached tokens={a.generate} seconds={s:.3f} tokens_per_s={a.generate / s:.1f}")
        with torch.no_grad():
            cached_generate(model, 8)
            t0 = time.perf_counter()
            out = cached_generate(model, a.generate)
            s = time.perf_counter() - t0
        agree = out == idx[0, 1:].tolist()
        print(f"GENERATE impl=pytorch-{torch.__version__}-cached tokens={a.generate} seconds={s:.3f} "
              f"tokens_per_s={a.generate / s:.1f} same_tokens_as_uncached={agree}")
        return
    batch = 32 if a.model == "lstm" else BATCH
    stride = len(train) // batch
    w = torch.stack([train[b * stride : b * stride + BLOCK + 1] for b in range(batch)])
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=2e-3, eps=1e-8) if a.model == "lstm" else matrix_decay_adamw(model, 1e-3)

    def step():
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    time_loop(step, a)


if __name__ == "__main__":
    main()
