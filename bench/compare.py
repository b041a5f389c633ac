"""Side-by-side training-step benchmark (the conv VAE, RealNVP with --model realnvp, DCGAN with --model gan, the
diffusion UNet with --model diffusion, the language models with --model gpt and --model lstm): genlab
(flex, and libtorch when built) against PyTorch, interleaved on the same machine, several rounds;
prints a table of median step times and ratios.

Usage (from the repository root, with PyTorch importable by PYTHON):
    cargo build --release -p genlab-bench
    PYTHON=/path/to/venv/bin/python python3 bench/compare.py [--model vae|realnvp|gan|diffusion] [--rounds 5] [--steps 30]
For the libtorch column, also build `target/tch/release/<model>-step` as BENCHMARKS.md describes.
Not part of the test suite."""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    m = re.search(r"RESULT impl=(\S+) median_ms=([\d.]+)", out.stdout)
    if not m:
        sys.exit(f"no RESULT from {' '.join(cmd)}:\n{out.stdout}\n{out.stderr}")
    return m.group(1), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--model", choices=["vae", "vqvae", "realnvp", "gan", "diffusion", "gpt", "lstm"], default="vae")
    a = ap.parse_args()
    binary, script = f"{a.model}-step", f"bench/{a.model}_step.py"
    extra = []
    if a.model in ("gpt", "lstm"):
        binary, script, extra = "lm-step", "bench/lm_step.py", ["--model", a.model]
    title = {
        "vae": "conv VAE training step, batch 128, 28x28",
        "vqvae": "VQ-VAE training step with the codebook's EMA update (configs/fashion-vqvae.toml), batch 128, 28x28",
        "realnvp": "RealNVP training step (configs/mnist-realnvp.toml's flow), batch 64, 28x28",
        "gan": "DCGAN training step, discriminator and generator updates (configs/mnist-dcgan.toml), batch 64, 28x28",
        "diffusion": "class-conditional DDPM training step (configs/mnist-ddpm.toml's UNet), batch 64, 28x28",
        "gpt": "GPT training step (configs/shakespeare-gpt.toml: 4x4x128, block 64), batch 12",
        "lstm": "LSTM LM training step (configs/shakespeare-lstm.toml: 2 x 128, block 64), batch 32",
    }[a.model]
    python = os.environ.get("PYTHON", sys.executable)
    steps = ["--warmup", str(a.warmup), "--steps", str(a.steps), *extra]
    jobs = [("genlab flex", [os.path.join(ROOT, "target/release", binary), "--device", "flex", *steps], None)]
    if a.model == "diffusion":
        # The config's `train.replicas = 2`: the batch split across two replicas on two threads.
        jobs.append(("genlab flex, 2 replicas",
                     [os.path.join(ROOT, "target/release", binary), "--device", "flex", "--replicas", "2", *steps], None))
    tch = os.path.join(ROOT, "target/tch/release", binary)
    if os.path.exists(tch):
        env = dict(os.environ)
        lib = subprocess.run([python, "-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"],
                             capture_output=True, text=True).stdout.strip()
        env["LD_LIBRARY_PATH"] = lib + ":" + env.get("LD_LIBRARY_PATH", "")
        jobs.append(("genlab libtorch", [tch, "--device", "libtorch", *steps], env))
    jobs.append(("PyTorch", [python, os.path.join(ROOT, script), *steps], None))
    medians = {name: [] for name, _, _ in jobs}
    impls = {}
    for r in range(a.rounds):
        for name, cmd, env in jobs:
            impl, ms = run(cmd, env)
            impls[name] = impl
            medians[name].append(ms)
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{n} {medians[n][-1]:.1f} ms" for n, _, _ in jobs), file=sys.stderr)
    torch_ms = statistics.median(medians["PyTorch"])
    print(f"{title}, median of {a.rounds} interleaved rounds x {a.steps} steps, {os.cpu_count()} cores\n")
    print("| implementation | median step (ms) | ratio to PyTorch |")
    print("|---|---|---|")
    for name, _, _ in jobs:
        m = statistics.median(medians[name])
        print(f"| {name} ({impls[name]}) | {m:.1f} | {m / torch_ms:.2f} |")


if __name__ == "__main__":
    main()
