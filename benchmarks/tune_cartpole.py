"""Does ``drlzero tune`` find settings that beat a preset at a small budget?

Tunes ``cartpole-dqn`` at a budget where its default settings do not yet solve CartPole (10k env
steps; the preset reaches 475 within 50k), with one training seed per trial (``--tune-seed``),
then trains the preset's default and the study's ``best.yaml`` on other seeds (``--seeds``,
never the tuning seed) at the same budget and compares their final greedy mean returns (10
evaluation episodes each, the preset's evaluation).

Usage:
    python benchmarks/tune_cartpole.py [--trials 20] [--total-steps 10000] [--seeds 1 2 3]
        [--out DIR]

Writes ``benchmarks/results/tune_cartpole/cartpole-dqn.json``: the space, the study's trials,
the best settings and, per seed, the default's and the best config's final and best returns.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _results import add_result_args, out_dir_for, write_result

import drlzero

SPACE = [
    "dqn.lr=3e-4:1e-2:log",
    "dqn.gradient_steps=32:256:log",
    "dqn.target_update_interval=1:500:log",
    "exploration.fraction=0.02:0.5",
    "exploration.end=0.0:0.1",
]
FAST = ["train.progress=false", "train.tensorboard=false"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cartpole-dqn")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--total-steps", type=int, default=10_000)
    ap.add_argument("--tune-seed", type=int, default=0, help="training seed of every trial")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="comparison seeds")
    ap.add_argument("--out", type=Path, help="study and comparison runs (default: a temp dir)")
    add_result_args(ap)
    args = ap.parse_args()
    if args.smoke:  # two tiny trials and one comparison seed: the script runs end to end
        args.trials, args.total_steps, args.seeds = 2, 600, [1]
        budget = [*FAST, "dqn.learning_starts=100", "train.eval_freq=300", "train.eval_episodes=2"]
    else:
        budget = FAST
    if args.tune_seed in args.seeds:
        ap.error("--seeds must not include --tune-seed (the comparison is on unseen seeds)")
    root = args.out or Path(tempfile.mkdtemp(prefix="tune-bench-"))
    study = drlzero.api.tune(
        args.preset,
        SPACE,
        trials=args.trials,
        out=root / "study",
        overrides=[*budget, f"train.seed={args.tune_seed}"],
        total_steps=args.total_steps,
    )
    print(
        f"study: {study.trials} trials ({study.pruned} pruned), best trial {study.best_trial} "
        f"final return {study.best_value:.1f} with {study.best_params}"
    )
    arms = {"default": args.preset, "best": str(study.best_config)}
    rows: dict[str, list[dict[str, float | int | None]]] = {arm: [] for arm in arms}
    print("seed | default final (best eval) | tuned final (best eval)")
    for seed in args.seeds:
        for arm, source in arms.items():
            r = drlzero.train(
                source,
                out=root / f"{arm}-s{seed}",
                overrides=[*budget, f"train.seed={seed}"],
                total_steps=args.total_steps,
            )
            rows[arm].append(
                {
                    "seed": seed,
                    "final_return": r.final_eval["mean_return"],
                    "best_eval_return": r.best_eval_return,
                    "solved_at_step": r.solved_at_step,
                    "wall_time_s": r.wall_time_s,
                }
            )
        d, b = rows["default"][-1], rows["best"][-1]
        print(
            f"{seed} | {d['final_return']:.1f} ({d['best_eval_return']:.1f}) | "
            f"{b['final_return']:.1f} ({b['best_eval_return']:.1f})",
            flush=True,
        )
    means = {
        arm: statistics.mean(float(row["final_return"] or 0.0) for row in arm_rows)
        for arm, arm_rows in rows.items()
    }
    print(
        f"mean final return over seeds {args.seeds}: default {means['default']:.1f}, "
        f"tuned {means['best']:.1f}; runs in {root}"
    )
    payload = {
        "preset": args.preset,
        "total_steps": args.total_steps,
        "space": SPACE,
        "tune_seed": args.tune_seed,
        "trials": study.trials,
        "pruned": study.pruned,
        "best_trial": study.best_trial,
        "best_trial_value": study.best_value,
        "best_params": study.best_params,
        "seeds": args.seeds,
        "default": rows["default"],
        "tuned": rows["best"],
        "mean_final_return": {"default": means["default"], "tuned": means["best"]},
        "trials_csv": (root / "study" / "trials.csv").read_text(),
    }
    out = out_dir_for(args)
    print("wrote", write_result("tune_cartpole", args.preset, payload, out_dir=out))


if __name__ == "__main__":
    main()
