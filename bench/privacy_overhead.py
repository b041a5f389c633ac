"""DP-SGD's cost per step: genlab's private step (per-example backward passes on 1 and 2 threads)
against its non-private step, and PyTorch with Opacus against plain PyTorch, on the networks of
configs/mnist-lenet-dp.toml and configs/mnist-vae-dp.toml, interleaved on the same machine for
several rounds; prints a table of median step times.

    cargo build --release -p genlab-bench
    PYTHON=/path/to/venv/bin/python python3 bench/privacy_overhead.py [--rounds 3] [--steps 20]
(PYTHON with torch 2.9 and opacus 1.6.) Not part of the test suite."""
import argparse
import os
import statistics

from compare import ROOT, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    python = os.environ.get("PYTHON", "python3")
    binary = os.path.join(ROOT, "target", "release", "privacy-step")
    timing = ["--steps", str(a.steps), "--warmup", str(a.warmup)]
    rows = {}
    for model in ("lenet", "vae"):
        cases = [
            ("genlab, non-private", [binary, "--model", model] + timing),
            ("genlab, DP-SGD, 1 thread", [binary, "--model", model, "--private", "--workers", "1"] + timing),
            ("genlab, DP-SGD, 2 threads", [binary, "--model", model, "--private", "--workers", "2"] + timing),
            ("PyTorch, non-private", [python, "bench/privacy_step.py", "--model", model, "--threads", "2"] + timing),
            ("PyTorch + Opacus, DP-SGD", [python, "bench/privacy_step.py", "--model", model, "--private", "--threads", "2"] + timing),
        ]
        for _ in range(a.rounds):
            for name, cmd in cases:
                rows.setdefault((model, name), []).append(run(cmd)[1])
    print(f"| network | implementation | median ms per step ({a.rounds} rounds of {a.steps}) | vs its non-private step |")
    print("|---|---|---|---|")
    for (model, name), times in rows.items():
        med = statistics.median(times)
        base = statistics.median(rows[(model, ("genlab" if name.startswith("genlab") else "PyTorch") + ", non-private")])
        print(f"| {model} | {name} | {med:.1f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
