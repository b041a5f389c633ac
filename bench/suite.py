"""Every family's benchmark side by side: genlab (flex) against PyTorch, interleaved on the same machine in one run,
each job a fresh process, several rounds; prints one markdown table of median times, ratios and each process's
memory high-water mark (peak resident set, from the kernel's accounting of the finished child).

The jobs: the training steps of the conv VAE, RealNVP, DCGAN, the diffusion UNet, the GPT and the LSTM (the
workloads BENCHMARKS.md describes, `bench/*_step.py` and `target/release/*-step`), and the sampling side: one
forward pass of the diffusion UNet without gradients (batch 64), the GPT's greedy generation of 500 tokens with a
KV cache, and FID Inception features of 100 MNIST digits.

Usage (from the repository root, with PyTorch importable by PYTHON):
    cargo build --release -p genlab-bench
    PYTHON=/path/to/venv/bin/python python3 bench/suite.py [--rounds 3] [--threads 2] [--only vae,gpt] [--before DIR]
`--before DIR` adds a column for the same binaries built from an earlier commit (copied to DIR), interleaved with
the others: a before-and-after table from one run.
Not part of the test suite."""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (what is timed, genlab arguments, PyTorch script and arguments, timing arguments)
TRAIN = "--warmup {w} --steps {s}"
JOBS = {
    "vae": ("conv VAE step, batch 128", ["vae-step"], ["vae_step.py"], (5, 20)),
    "realnvp": ("RealNVP step, batch 64", ["realnvp-step"], ["realnvp_step.py"], (3, 10)),
    "gan": ("DCGAN D+G step, batch 64", ["gan-step"], ["gan_step.py"], (3, 10)),
    "diffusion": ("diffusion UNet step, batch 64", ["diffusion-step"], ["diffusion_step.py"], (2, 5)),
    "gpt": ("GPT step, batch 12 x 64", ["lm-step", "--model", "gpt"], ["lm_step.py", "--model", "gpt"], (3, 10)),
    "lstm": ("LSTM step, batch 32 x 64", ["lm-step", "--model", "lstm"], ["lm_step.py", "--model", "lstm"], (3, 10)),
    "unet-forward": ("diffusion UNet forward (sampling), batch 64", ["diffusion-step", "--forward"],
                     ["diffusion_step.py", "--forward"], (2, 10)),
    "gpt-generate": ("GPT greedy generation, 500 tokens, KV cache", ["lm-step", "--generate", "500"],
                     ["lm_step.py", "--generate", "500"], None),
    "inception": ("FID Inception features, 100 digits", ["inception-features", "--images", "100"],
                  ["inception_features.py", "--images", "100"], None),
}


def run(cmd, env):
    """Runs `cmd`; its time in ms (a RESULT line's median, or the seconds of a cached GENERATE line or of a
    features RESULT line) and its own peak resident set in MiB (the child reaped here with its usage)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}\n{err}")
    m = re.search(r"RESULT impl=\S+ median_ms=([\d.]+)", out)
    if m:
        ms = float(m.group(1))
    else:
        m = re.search(r"GENERATE impl=\S+-cached tokens=\d+ seconds=([\d.]+)", out) or \
            re.search(r"RESULT impl=\S+ images=\d+ seconds=([\d.]+)", out)
        if not m:
            sys.exit(f"no timing line from {' '.join(cmd)}:\n{out}\n{err}")
        ms = float(m.group(1)) * 1e3
    return ms, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated job names (default: all)")
    ap.add_argument("--binaries", default="target/release", help="where genlab's benchmark binaries are")
    ap.add_argument("--label", default="genlab flex")
    ap.add_argument("--before", default="", help="a folder of benchmark binaries built from an earlier commit")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n] or list(JOBS)
    python = os.environ.get("PYTHON", sys.executable)
    genlab_env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    sides = ("before", "genlab", "torch") if a.before else ("genlab", "torch")
    times = {(n, side): [] for n in names for side in sides}
    memory = {(n, side): 0.0 for n in names for side in sides}
    for r in range(a.rounds):
        for n in names:
            _, ours, theirs, timing = JOBS[n]
            extra = TRAIN.format(w=timing[0], s=timing[1]).split() if timing else []
            g = [os.path.join(ROOT, a.binaries, ours[0]), "--device", "flex", *ours[1:], *extra]
            t = [python, os.path.join(ROOT, "bench", theirs[0]), *theirs[1:], *extra, "--threads", str(a.threads)]
            jobs = [("genlab", g, genlab_env), ("torch", t, None)]
            if a.before:
                jobs.insert(0, ("before", [os.path.join(a.before, ours[0]), *g[1:]], genlab_env))
            for side, cmd, env in jobs:
                ms, mib = run(cmd, env)
                times[(n, side)].append(ms)
                memory[(n, side)] = max(memory[(n, side)], mib)
            print(f"round {r + 1}/{a.rounds} {n}: " + ", ".join(f"{side} {times[(n, side)][-1]:.1f} ms" for side in sides),
                  file=sys.stderr, flush=True)
    print(f"Median of {a.rounds} interleaved rounds, {a.threads} thread(s), {os.cpu_count()} cores\n")
    before = " before (ms) | ratio before |" if a.before else ""
    print(f"| workload |{before} {a.label} (ms) | PyTorch (ms) | ratio | {a.label} peak RSS (MiB) | PyTorch peak RSS (MiB) |")
    print("|---|" + "---|" * (7 if a.before else 5))
    for n in names:
        g, t = statistics.median(times[(n, "genlab")]), statistics.median(times[(n, "torch")])
        b = ""
        if a.before:
            m = statistics.median(times[(n, "before")])
            b = f" {m:.1f} | {m / t:.2f} |"
        print(f"| {JOBS[n][0]} |{b} {g:.1f} | {t:.1f} | {g / t:.2f} | {memory[(n, 'genlab')]:.0f} | "
              f"{memory[(n, 'torch')]:.0f} |")


if __name__ == "__main__":
    main()
