"""Sampler quality on the built-in benchmark objectives (issue 16): for Branin, Hartmann-6 and
Rosenbrock (4-D), 20 seeds x 100 trials each, the best value found by genlab's TPE (multivariate,
Optuna's defaults), Optuna's TPE (`TPESampler(seed=s)`, Optuna 5.0.0's defaults: multivariate,
constant liar) and genlab's random sampler; mean, standard deviation and median of the gap to the
known minimum. genlab runs as a user runs it (`genlab tune FILE`, a SQLite study per run); Optuna
in memory.

    python3 -m venv /work/optunaenv && /work/optunaenv/bin/pip install optuna==5.0.0 numpy
    cargo build --release
    /work/optunaenv/bin/python bench/tune_samplers.py [--seeds 20] [--trials 100]
"""
import argparse
import math
import pathlib
import re
import statistics
import subprocess
import tempfile

import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = pathlib.Path(__file__).resolve().parent.parent
GENLAB = ROOT / "target" / "release" / "genlab"

A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991], [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(x):
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * math.cos(x[0]) + 10


def hartmann6(x):
    x = np.asarray(x)
    return float(-(ALPHA * np.exp(-(A * (x - P) ** 2).sum(axis=1))).sum())


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


OBJECTIVES = {
    "branin": (branin, [(-5, 10), (0, 15)], 0.397887357729738),
    "hartmann6": (hartmann6, [(0, 1)] * 6, -3.32236801141551),
    "rosenbrock": (rosenbrock, [(-5, 10)] * 4, 0.0),
}


def optuna_best(name, seed, trials):
    f, bounds, _ = OBJECTIVES[name]

    def objective(trial):
        return f([trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)])

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return study.best_value


def genlab_best(name, seed, trials, sampler, work):
    cfg = work / f"{name}-{sampler}-{seed}.toml"
    cfg.write_text(f'[tune]\nobjective = {{ function = "{name}" }}\ntrials = {trials}\nseed = {seed}\nsampler = {{ kind = "{sampler}" }}\n')
    out = subprocess.run(
        [str(GENLAB), "tune", str(cfg), "--dir", str(work / cfg.stem)], capture_output=True, text=True, check=True
    ).stdout
    return float(re.search(r"best trial \d+: (\S+)", out).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=100)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        for name, (_, _, minimum) in OBJECTIVES.items():
            results = {
                "genlab TPE": [genlab_best(name, s, args.trials, "tpe", work) for s in range(args.seeds)],
                "Optuna TPE": [optuna_best(name, s, args.trials) for s in range(args.seeds)],
                "genlab random": [genlab_best(name, s, args.trials, "random", work) for s in range(args.seeds)],
            }
            for sampler, best in results.items():
                gaps = [b - minimum for b in best]
                rows.append((name, sampler, statistics.mean(gaps), statistics.stdev(gaps), statistics.median(gaps)))
    print(f"best value found minus the known minimum, {args.seeds} seeds x {args.trials} trials (smaller is better)\n")
    print("| objective | sampler | mean gap | std | median gap |")
    print("|---|---|---|---|---|")
    for name, sampler, mean, std, median in rows:
        print(f"| {name} | {sampler} | {mean:.4g} | {std:.3g} | {median:.4g} |")


if __name__ == "__main__":
    main()
