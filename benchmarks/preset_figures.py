"""The figures README's preset table states, from one command per preset, with raw results.

Trains ``--preset`` once per seed, each seed in its own process (``--jobs`` at a time, one torch
thread each), then evaluates every run greedily on the same ``--eval-episodes`` episodes (reset
seeds from ``--eval-seed``, the same for every seed and every baseline: a paired comparison).
Per seed it records:

- the final greedy evaluation (``last`` checkpoint: mean/std return, mean length, success rate)
  and the ``best`` checkpoint's evaluation on the same episodes (what ``drlzero eval RUN`` uses);
- the env steps at which the in-training greedy evaluation's mean return first reached the
  solve return (``--solve-return``, else the preset's ``train.stop_return``, else its
  ``env.success_return``), if it did;
- the best in-training evaluation and the wall time of the run.

Once per preset, on the same evaluation episodes: a uniform random policy (``--random-baseline``)
and, for scenario envs, every hand-written baseline of ``drlzero.envs.baselines.BASELINES`` (the
first listed is the one the preset is measured against).

The summary (seeds solved, median steps to solve, mean ± std over seeds of the final mean return,
mean success rate) is printed as a table and written with every per-seed record to
``benchmarks/results/preset_figures/<preset>.json``.

Usage:
    python benchmarks/preset_figures.py --preset cartpole-dqn --seeds 0-9 --jobs 2
    python benchmarks/preset_figures.py --preset acrobot-dqn --seeds 0-4 --random-baseline
    python benchmarks/preset_figures.py --preset catchball-dqn --seeds 0,1,2 --total-steps 50000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import add_result_args, out_dir_for, write_result

SCRIPT = "preset_figures"
QUIET = ["train.progress=false", "train.tensorboard=false", "train.threads=1"]
_CHILD = "--child"  # internal: run one seed and print its record as the last stdout line


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"`` or ``"0-2,7"`` -> the seeds, in order, without repeats.

    Raises:
        argparse.ArgumentTypeError: for anything else (a descending range, a non-number).
    """
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if dash else int(lo)
            if last < first:
                raise ValueError(part)
            seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: use a range like 0-9, a list like 0,3,5, or both (0-2,7)"
        ) from exc
    return seeds


def _batch_size(obs: Any) -> int:
    """Number of observations in a batch (dict observations: the first entry's length)."""
    if isinstance(obs, dict):
        return _batch_size(next(iter(obs.values())))
    return len(obs)


def random_policy(action_space: Any, seed: int) -> Any:
    """A uniform random policy over ``action_space``: a batch of observations -> actions.

    With ``Dict`` observations that carry an ``action_mask`` entry (``(B, A)``, true = allowed),
    each action is drawn uniformly among the allowed ones, as a masked agent would choose.
    """
    action_space.seed(seed)

    def act(obs: Any) -> np.ndarray:
        if isinstance(obs, dict) and "action_mask" in obs:
            mask_BA = np.asarray(obs["action_mask"], dtype=bool)
            return np.array([action_space.sample(mask=row.astype(np.int8)) for row in mask_BA])
        return np.stack([action_space.sample() for _ in range(_batch_size(obs))])

    return act


def baselines(cfg: Any, episodes: int, seed: int, with_random: bool) -> dict[str, Any]:
    """Random and hand-written baselines on the evaluation episodes, by name."""
    from drlzero.api import evaluate_baseline
    from drlzero.envs import make_vec_env
    from drlzero.envs.baselines import BASELINES
    from drlzero.train.evaluate import evaluate_policy

    out: dict[str, Any] = {}
    if with_random:
        probe = make_vec_env(cfg.env, num_envs=1, training=False)
        space = probe.single_action_space
        probe.close()
        out["random"] = evaluate_policy(random_policy(space, seed), cfg.env, episodes, seed)
    for name in BASELINES.get(cfg.env.id, {}):
        out[name] = evaluate_baseline(cfg.env, name, episodes=episodes, seed=seed)
    return out


def run_seed(spec: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one seed (runs in a child process); returns its record."""
    import drlzero
    from drlzero.config import load_config

    seed = spec["seed"]
    cfg = load_config(spec["preset"], overrides=[*QUIET, f"train.seed={seed}", *spec["overrides"]])
    # the solve threshold: --solve-return, else the preset's stop_return, else its success_return
    solve = next(
        (
            x
            for x in (spec["solve_return"], cfg.train.stop_return, cfg.env.success_return)
            if x is not None
        ),
        None,
    )
    t0 = time.perf_counter()
    result = drlzero.train(cfg, out=Path(spec["run_root"]) / f"seed{seed}")
    wall = time.perf_counter() - t0
    ep, es = spec["eval_episodes"], spec["eval_seed"]
    final = drlzero.evaluate(result.run_dir, episodes=ep, seed=es, checkpoint="last", write=False)
    best = drlzero.evaluate(result.run_dir, episodes=ep, seed=es, checkpoint="best", write=False)
    history = result.eval_history
    hit = next((e for e in history if solve is not None and e["mean_return"] >= solve), None)
    return {
        "seed": seed,
        "steps": result.steps,
        "wall_s": wall,
        "final": final,
        "best_checkpoint": best,
        "solve_return": solve,
        "steps_to_solve": hit["step"] if hit else None,
        "best_train_eval": result.best_eval_return,
        "eval_history": [
            {"step": e["step"], "mean_return": e["mean_return"], "time_s": e["time_s"]}
            for e in history
        ],
    }


def run_all(specs: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    """Run every seed as its own process, ``jobs`` at a time; records in seed order."""
    pending, done = list(specs), {}
    running: list[tuple[int, subprocess.Popen[bytes], Any]] = []
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            cmd = [sys.executable, __file__, _CHILD, json.dumps(spec)]
            # stdout to a file, not a pipe: a chatty child can never block on a full pipe
            log = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the child ends)
            running.append((spec["seed"], subprocess.Popen(cmd, stdout=log), log))
        time.sleep(0.2)
        for seed, proc, log in list(running):
            if proc.poll() is None:
                continue
            running.remove((seed, proc, log))
            log.seek(0)
            out = log.read().decode()
            log.close()
            if proc.returncode != 0:
                raise SystemExit(f"seed {seed} failed (exit {proc.returncode}); see its stderr")
            done[seed] = json.loads(out.strip().splitlines()[-1])
            print(f"  seed {seed} done in {done[seed]['wall_s']:.0f} s", flush=True)
    return [done[s["seed"]] for s in specs]


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds solved, median steps to solve, mean ± std (over seeds) of the final returns."""
    finals = [r["final"]["mean_return"] for r in records]
    bests = [r["best_checkpoint"]["mean_return"] for r in records]
    solved = [r["steps_to_solve"] for r in records if r["steps_to_solve"] is not None]
    success = [
        r["final"]["success_rate"] for r in records if r["final"]["success_rate"] is not None
    ]
    return {
        "seeds": len(records),
        "solved": len(solved),
        "median_steps_to_solve": statistics.median(solved) if solved else None,
        "final_mean_return": statistics.mean(finals),
        # population std over seeds (ddof 0), as np.std: the spread of these seeds
        "final_std_over_seeds": float(np.std(finals)),
        "final_success_rate": statistics.mean(success) if success else None,
        "best_checkpoint_mean_return": statistics.mean(bests),
        "median_wall_s": statistics.median(r["wall_s"] for r in records),
    }


def _f(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_table(
    preset: str, records: list[dict[str, Any]], summary: dict[str, Any], base: dict[str, Any]
) -> None:
    """Per-seed rows, the baselines on the same episodes, then the summary line."""
    print(f"\n{preset}: greedy evaluation, {records[0]['final']['episodes']} episodes per run")
    print(
        f"{'seed':>4} {'final':>16} {'success':>7} {'best ckpt':>9} {'solved at':>9} {'wall s':>7}"
    )
    for r in records:
        f = r["final"]
        print(
            f"{r['seed']:>4} {_f(f['mean_return']):>8} ± {_f(f['std_return']):<5} "
            f"{_f(f['success_rate'], '.0%'):>7} {_f(r['best_checkpoint']['mean_return']):>9} "
            f"{_f(r['steps_to_solve'], 'd'):>9} {r['wall_s']:7.0f}"
        )
    for name, b in base.items():
        print(
            f"{name:>16}: {_f(b['mean_return'])} ± {_f(b['std_return'])}, "
            f"success {_f(b['success_rate'], '.0%')}"
        )
    s = summary
    print(
        f"solved {s['solved']}/{s['seeds']} (median {_f(s['median_steps_to_solve'], '.0f')} steps);"
        f" final {s['final_mean_return']:.1f} ± {s['final_std_over_seeds']:.1f} over seeds,"
        f" success {_f(s['final_success_rate'], '.0%')}; median wall {s['median_wall_s']:.0f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", required=True, help="a preset name (drlzero list)")
    ap.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"), help="e.g. 0-9")
    ap.add_argument("--jobs", type=int, default=2, help="seeds trained at once (one process each)")
    ap.add_argument("--total-steps", type=int, default=None, help="override train.total_steps")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config override, repeatable (e.g. train.eval_freq=5000)",
    )
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--eval-seed", type=int, default=1234, help="first reset seed of the eval")
    ap.add_argument(
        "--solve-return",
        type=float,
        default=None,
        help="solve threshold (default: train.stop_return, else env.success_return)",
    )
    ap.add_argument(
        "--random-baseline",
        action="store_true",
        help="also evaluate a uniform random policy on the same episodes",
    )
    ap.add_argument("--runs", type=Path, default=None, help="keep the run directories here")
    add_result_args(ap)
    args = ap.parse_args()
    if args.smoke:
        args.seeds, args.eval_episodes, args.random_baseline = [0, 1], 3, True
        args.total_steps = args.total_steps or 1_200
        args.set = [*args.set, "train.eval_freq=600"]
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")

    from drlzero.config import load_config

    overrides = list(args.set)
    if args.total_steps is not None:
        overrides.insert(0, f"train.total_steps={args.total_steps}")
    cfg = load_config(args.preset, overrides=overrides)  # fail here, once, on a bad preset or key
    root = args.runs or Path(tempfile.mkdtemp(prefix=f"preset-figures-{args.preset}-"))
    specs = [
        {
            "preset": args.preset,
            "seed": seed,
            "overrides": overrides,
            "run_root": str(root),
            "eval_episodes": args.eval_episodes,
            "eval_seed": args.eval_seed,
            "solve_return": args.solve_return,
        }
        for seed in args.seeds
    ]
    print(
        f"{args.preset}: seeds {args.seeds}, {cfg.train.total_steps} env steps, {args.jobs} at once"
    )
    records = run_all(specs, args.jobs)
    base = baselines(cfg, args.eval_episodes, args.eval_seed, args.random_baseline)
    summary = summarize(records)
    # final mean return minus each baseline's, on the same episodes (> 0: the agent is ahead)
    summary["ahead_of_baselines"] = {
        name: summary["final_mean_return"] - b["mean_return"] for name, b in base.items()
    }
    print_table(args.preset, records, summary, base)
    payload = {
        "preset": args.preset,
        "overrides": overrides,
        "total_steps": cfg.train.total_steps,
        "eval_episodes": args.eval_episodes,
        "eval_seed": args.eval_seed,
        "summary": summary,
        "baselines": base,
        "seeds": records,
    }
    print("wrote", write_result(SCRIPT, args.preset, payload, out_dir=out_dir_for(args)))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == _CHILD:
        print(json.dumps(run_seed(json.loads(sys.argv[2]))), flush=True)
    else:
        main()
