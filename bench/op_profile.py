"""Where a benchmark step's time goes, genlab against PyTorch: genlab's step binary under `perf record` (its
samples grouped by the kind of kernel their function belongs to) and the PyTorch twin under torch.profiler (its
costliest operations by self CPU time, forward and backward). The workloads are bench/suite.py's.

Usage (from the repository root, after `cargo build --release -p genlab-bench`; perf on the PATH):
    PYTHON=/path/to/venv/bin/python python3 bench/op_profile.py --model lstm [--top 15] [--threads 2]
Not part of the test suite."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

from suite import JOBS, ROOT, TRAIN

# (category, pattern on the demangled function name); the first match wins.
CATEGORIES = [
    ("matrix products (gemm microkernels and packing)", r"gemm|nano_gemm|pack_|microkernel"),
    ("transposed convolution (flex's loop: conv input gradients, decoders)", r"conv_transpose"),
    ("convolution set-up (im2col, tiles)", r"im2col|conv3d|conv2d|conv_|deform"),
    ("exp / tanh / log (libm)", r"\bexpf|\btanhf|\blogf|__expf|__logf|__tanhf|exp_|expm1"),
    ("element-wise kernels (flex binary/unary/activation)", r"binary|unary|activation|zip|macerator|simd|scalar_op|mask|clamp|powf"),
    ("reductions and norms", r"reduce|sum_dim|mean|argmax|max_dim|cumsum|softmax"),
    ("layout copies (to_contiguous, strided, cat, slice)", r"contiguous|strided|copy_|cat|slice|narrow|permute|gather|scatter|select|index"),
    ("memory (memcpy, memset, allocation)", r"memcpy|memmove|memset|malloc|free|realloc|alloc|page|munmap|mmap|clear_page"),
    ("autodiff graph (burn-autodiff)", r"burn_autodiff|Gradients|Checkpointer|Backward"),
    ("threads (rayon, spin and wake)", r"rayon|crossbeam|futex|sched_|syscall|pthread|std::thread|spin"),
]


def genlab_profile(cmd, env, top):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-F", "999", "-o", data, "--", *cmd], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio",
                              "--percent-limit", "0.05"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2).strip()))
    by_cat = defaultdict(float)
    for pct, name in rows:
        cat = next((c for c, p in CATEGORIES if re.search(p, name)), "other")
        by_cat[cat] += pct
    print("genlab (flex), share of perf samples by kind of function:\n")
    print("| kind | share |\n|---|---|")
    for cat, pct in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {pct:.1f}% |")
    print(f"\ngenlab's {top} costliest functions:\n")
    for pct, name in rows[:top]:
        print(f"  {pct:5.1f}%  {name[:140]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=list(JOBS), required=True)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: bench/suite.py's)")
    a = ap.parse_args()
    title, ours, theirs, timing = JOBS[a.model]
    if not timing:
        sys.exit(f"{a.model} is not a stepped workload")
    extra = TRAIN.format(w=timing[0], s=a.steps or timing[1]).split()
    python = os.environ.get("PYTHON", sys.executable)
    print(f"# {title}\n")
    genlab_profile([os.path.join(ROOT, "target/release", ours[0]), "--device", "flex", *ours[1:], *extra],
                   dict(os.environ, RAYON_NUM_THREADS=str(a.threads)), a.top)
    out = subprocess.run([python, os.path.join(ROOT, "bench", theirs[0]), *theirs[1:], *extra, "--threads",
                          str(a.threads)], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, GENLAB_TORCH_PROFILE=str(a.top)))
    if out.returncode != 0:
        sys.exit(out.stderr)
    print("\nPyTorch, torch.profiler over the timed steps:\n")
    print("\n".join(l for l in out.stdout.splitlines() if not l.startswith("RESULT")))


if __name__ == "__main__":
    main()
