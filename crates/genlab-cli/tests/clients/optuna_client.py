"""Optuna itself, on a genlab study (issue 16): `python optuna_client.py COMMAND STORAGE STUDY [N]`.

dump     prints the study as Optuna sees it (JSON): direction, best trial, and every trial's number,
         state, params, distributions, value, intermediate values, user attributes.
add N    an Optuna worker: loads the study and adds N Branin trials with Optuna's TPE
         (x0 in [-5, 10], x1 in [0, 15], as genlab's built-in benchmark), marked user_attr worker=optuna.
create N creates the study (minimize) and runs N such trials, for genlab to continue.
enqueue  queues a trial at Branin's minimum (pi, 2.275) with `study.enqueue_trial`, for genlab to run.
"""
import json
import math
import sys

import optuna
from optuna.distributions import distribution_to_json

optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(trial):
    trial.set_user_attr("worker", "optuna")
    x0 = trial.suggest_float("x0", -5.0, 10.0)
    x1 = trial.suggest_float("x1", 0.0, 15.0)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x1 - b * x0**2 + c * x0 - 6) ** 2 + 10 * (1 - t) * math.cos(x0) + 10


def number(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def main():
    command, storage, name = sys.argv[1:4]
    if command == "create":
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
        study.optimize(branin, n_trials=int(sys.argv[4]))
    elif command == "add":
        study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=1))
        study.optimize(branin, n_trials=int(sys.argv[4]))
    elif command == "enqueue":
        study = optuna.load_study(study_name=name, storage=storage)
        study.enqueue_trial({"x0": math.pi, "x1": 2.275})
    elif command == "dump":
        study = optuna.load_study(study_name=name, storage=storage)
        try:
            best = {"number": study.best_trial.number, "value": study.best_value}
        except ValueError:
            best = None
        trials = [
            {
                "number": t.number,
                "state": t.state.name,
                "params": t.params,
                "distributions": {k: json.loads(distribution_to_json(d)) for k, d in t.distributions.items()},
                "value": number(t.value),
                "intermediate": {str(k): number(v) for k, v in t.intermediate_values.items()},
                "user_attrs": t.user_attrs,
            }
            for t in study.get_trials(deepcopy=False)
        ]
        print(json.dumps({"direction": study.direction.name, "best": best, "trials": trials}))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
