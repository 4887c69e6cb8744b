"""drlzero DQN vs Stable-Baselines3 DQN on CartPole-v1, side by side in one run.

Two tables:

A. Throughput at the RL Zoo's tuned hyperparameters (the ``cartpole-dqn-zoo`` preset, identical
   settings passed to SB3): env steps per second over a fixed budget with no periodic evaluation,
   and the final greedy evaluation (10 episodes).
B. Time to solve, like for like: drlzero's ``cartpole-dqn`` preset and SB3 given exactly the same
   settings (network included: the preset's 64x64 MLP), the same seeds, and the same evaluation:
   drlzero's own ``Evaluator`` (same env, same 10 episodes, same reset seeds) every
   ``--eval-freq`` env steps, each side stopping at its first greedy mean >= the preset's
   ``train.stop_return``. Both evaluations are timed by one wrapper around ``Evaluator``, so the
   table gives wall time to solve with evaluation time excluded (the headline) and included.

Runs alternate between the two libraries seed by seed, one at a time, each with one torch
thread, so machine noise hits both alike. Raw per-seed results go to
``benchmarks/results/cartpole_vs_sb3/table_{a,b}.json``.

Usage:
    python benchmarks/cartpole_vs_sb3.py [--seeds 3] [--solve-seeds 5] [--steps 50000] [--compile]

``--compile`` adds a row to A: drlzero with ``train.compile=true`` (the compiled time includes
torch.compile's first compilation, ~20 s here, as a user's run would). Without
stable-baselines3 installed (``pip install -e '.[bench]'``) the SB3 arms are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from _results import add_result_args, out_dir_for, peer_float_mode, write_result

import drlzero
from drlzero.config import Config, load_config
from drlzero.train.evaluate import Evaluator, evaluate_policy
from drlzero.train.run import EVAL_SEED_OFFSET

SCRIPT = "cartpole_vs_sb3"
QUIET = ["train.progress=false", "train.tensorboard=false", "train.checkpoint_freq=0"]
HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None


def sb3_kwargs(cfg: Config) -> dict[str, Any]:
    """``cfg``'s DQN settings in SB3's names, so both sides see the same numbers and network."""
    d, e = cfg.dqn, cfg.exploration
    return {
        "learning_rate": d.lr,
        "batch_size": d.batch_size,
        "buffer_size": cfg.replay.buffer_size,
        "learning_starts": d.learning_starts,
        "gamma": d.gamma,
        "target_update_interval": d.target_update_interval,
        "train_freq": d.train_freq,
        "gradient_steps": d.gradient_steps,
        "exploration_fraction": e.fraction,
        "exploration_final_eps": e.end,
        "max_grad_norm": d.max_grad_norm,
        "policy_kwargs": {"net_arch": list(cfg.encoder.hidden)},
    }


@contextlib.contextmanager
def timed_evaluations() -> Iterator[list[float]]:
    """Time every ``Evaluator`` call (drlzero's in-loop ones and SB3's alike), in seconds."""
    durations: list[float] = []
    original = Evaluator.__call__

    # keyword options pass through, so the wrapper never narrows the API
    def timed(self: Evaluator, action_fn: Any, **options: Any) -> dict[str, float]:
        t0 = time.perf_counter()
        try:
            return original(self, action_fn, **options)
        finally:
            durations.append(time.perf_counter() - t0)

    Evaluator.__call__ = timed  # type: ignore[method-assign]
    try:
        yield durations
    finally:
        Evaluator.__call__ = original  # type: ignore[method-assign]


def sb3_action_fn(model: Any) -> Any:
    """SB3's greedy action for a batch of observations (``predict`` takes batches)."""
    return lambda obs: model.predict(obs, deterministic=True)[0]


def run_sb3(cfg: Config) -> dict[str, Any]:
    """Train SB3's DQN with ``cfg``'s settings; with ``train.eval_freq``, evaluate as drlzero.

    Returns steps/s over ``learn()``, the final greedy eval (drlzero's ``evaluate_policy``, the
    seeds ``drlzero.evaluate`` uses) and, with ``eval_freq``, the eval history and solve time.
    """
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    peer_float_mode()
    t = cfg.train
    seed, stop, eval_freq, steps = t.seed, t.stop_return, t.eval_freq, t.total_steps
    history: list[dict[str, float]] = []
    evaluator = (
        Evaluator(cfg.env, cfg.train.eval_episodes, seed + EVAL_SEED_OFFSET) if eval_freq else None
    )

    class SolveWatch(BaseCallback):
        """drlzero's evaluation every ``eval_freq`` env steps; stop at mean >= ``stop``."""

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if evaluator is None or self.num_timesteps % eval_freq != 0:
                return True
            r = evaluator(sb3_action_fn(self.model))
            history.append(
                {"step": self.num_timesteps, "time_s": time.perf_counter() - self.t0, **r}
            )
            return not (stop is not None and r["mean_return"] >= stop)

    env = gym.make(cfg.env.id)
    model = DQN("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **sb3_kwargs(cfg))
    with timed_evaluations() as durations:
        t0 = time.perf_counter()
        model.learn(total_timesteps=steps, callback=SolveWatch())
        wall = time.perf_counter() - t0
    if evaluator is not None:
        evaluator.close()
    final = evaluate_policy(sb3_action_fn(model), cfg.env, episodes=10, seed=20_000 + seed)
    return {
        "steps": model.num_timesteps,
        "sps": model.num_timesteps / wall,
        "wall_s": wall,
        "final_eval": final["mean_return"],
        **solve_record(history, durations, stop),
    }


def solve_record(
    history: list[dict[str, Any]], durations: list[float], stop: float | None
) -> dict[str, Any]:
    """First eval reaching ``stop``: its step and time with evaluation included and excluded.

    ``history[i]["time_s"]`` is the time since training started, read just after evaluation
    ``i``; ``durations[i]`` is how long evaluation ``i`` took, so the time excluding evaluation
    is ``time_s[i] - sum(durations[: i + 1])``.
    """
    evals = [
        {**h, "eval_s": d, "time_excl_eval_s": h["time_s"] - sum(durations[: i + 1])}
        for i, (h, d) in enumerate(zip(history, durations, strict=False))
    ]
    hit = next((e for e in evals if stop is not None and e["mean_return"] >= stop), None)
    return {
        "solved_step": hit["step"] if hit else None,
        "solved_s_incl_eval": hit["time_s"] if hit else None,
        "solved_s_excl_eval": hit["time_excl_eval_s"] if hit else None,
        "eval_s_total": sum(durations),
        "evals": evals,
    }


def bench_config(preset: str, seed: int, steps: int, extra: list[str]) -> Config:
    """The config both sides run: ``preset`` at ``seed`` for ``steps`` env steps, plus ``extra``."""
    overrides = [*QUIET, f"train.seed={seed}", f"train.total_steps={steps}", *extra]
    return load_config(preset, overrides=overrides)


def run_drlzero(cfg: Config) -> dict[str, Any]:
    """Train drlzero on ``cfg`` (from :func:`bench_config`), timed like :func:`run_sb3`."""
    seed = cfg.train.seed
    with tempfile.TemporaryDirectory() as tmp:
        with timed_evaluations() as durations:
            t0 = time.perf_counter()
            result = drlzero.train(cfg, out=Path(tmp) / "run")
            wall = time.perf_counter() - t0
        final = drlzero.evaluate(
            result.run_dir, episodes=10, seed=20_000 + seed, checkpoint="last", write=False
        )
    return {
        "steps": result.steps,
        # over the training loop, as SB3's learn(): not the final eval, checkpoint and plot
        "sps": result.steps / (result.loop_time_s or result.wall_time_s),
        "wall_s": wall,
        "final_eval": final["mean_return"],
        **solve_record(result.eval_history, durations, cfg.train.stop_return),
    }


def _median(values: list[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def _fmt(values: list[float | None]) -> str:
    ok = [v for v in values if v is not None]
    if not ok:
        return f"- (0/{len(values)} solved)"
    return f"{statistics.median(ok):.1f} s (median of {len(ok)}/{len(values)} solved)"


def table_a(args: argparse.Namespace) -> dict[str, Any]:
    """Throughput at the Zoo's settings, no periodic evaluation; prints and returns the rows."""
    print(f"A. RL Zoo hyperparameters, {args.steps} env steps, no periodic eval, 1 thread")
    print(f"{'seed':>4} {'lib':>16} {'steps/s':>9} {'wall s':>8} {'final eval':>10}")
    libs = ["drlzero", *(["drlzero-compiled"] if args.compile else []), *(["sb3"] * HAVE_SB3)]
    rows: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for seed in range(args.seeds):
        for lib in libs:
            extra = ["train.eval_freq=0"]
            if lib == "drlzero-compiled":
                extra.append("train.compile=true")
            cfg = bench_config("cartpole-dqn-zoo", seed, args.steps, extra)
            r = run_sb3(cfg) if lib == "sb3" else run_drlzero(cfg)
            rows[lib].append({"seed": seed, **r})
            line = f"{seed:>4} {lib:>16} {r['sps']:9.0f} {r['wall_s']:8.1f}"
            print(f"{line} {r['final_eval']:10.1f}", flush=True)
    medians = {lib: statistics.median(r["sps"] for r in rows[lib]) for lib in libs}
    if "sb3" in medians:
        for lib in libs[:-1]:
            ratio = medians[lib] / medians["sb3"]
            print(
                f"median steps/s: {lib} {medians[lib]:.0f}, SB3 {medians['sb3']:.0f}, {ratio:.2f}x"
            )
    print()
    return {"preset": "cartpole-dqn-zoo", "steps": args.steps, "median_sps": medians, "runs": rows}


def table_b(args: argparse.Namespace) -> dict[str, Any]:
    """Time to solve, same preset, seeds and evaluation for both; prints and returns the rows."""
    preset = "cartpole-dqn"
    stop = load_config(preset).train.stop_return
    print(
        f"B. {preset} settings for both (same network, plain DQN target), "
        f"seeds 0-{args.solve_seeds - 1}, "
        f"drlzero's Evaluator ({load_config(preset).train.eval_episodes} episodes) every "
        f"{args.eval_freq} env steps, stop at mean >= {stop}"
    )
    libs = ["drlzero", *(["sb3"] * HAVE_SB3)]
    rows: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for seed in range(args.solve_seeds):
        for lib in libs:
            # SB3's DQN has no Double target: both sides run the plain DQN target
            extra = [f"train.eval_freq={args.eval_freq}", "dqn.double=false"]
            cfg = bench_config(preset, seed, args.steps, extra)
            r = run_sb3(cfg) if lib == "sb3" else run_drlzero(cfg)
            rows[lib].append({"seed": seed, **r})
            if r["solved_step"] is None:
                what = f"not solved in {r['steps']} steps"
            else:
                what = (
                    f"solved at step {r['solved_step']}: {r['solved_s_excl_eval']:.1f} s "
                    f"training + {r['solved_s_incl_eval'] - r['solved_s_excl_eval']:.1f} s eval"
                )
            print(f"  seed {seed} {lib:>8}: {what}", flush=True)
    summary: dict[str, Any] = {}
    for lib in libs:
        excl = [r["solved_s_excl_eval"] for r in rows[lib]]
        incl = [r["solved_s_incl_eval"] for r in rows[lib]]
        summary[lib] = {
            "solved": sum(v is not None for v in excl),
            "seeds": len(excl),
            "median_solved_s_excl_eval": _median(excl),
            "median_solved_s_incl_eval": _median(incl),
            "median_solved_step": _median([r["solved_step"] for r in rows[lib]]),
        }
        print(f"{lib:>8}: excluding eval {_fmt(excl)}; including eval {_fmt(incl)}")
    ours, theirs = summary["drlzero"], summary.get("sb3")
    for key in ("median_solved_s_excl_eval", "median_solved_s_incl_eval"):
        if theirs and ours[key] is not None and theirs[key] is not None:
            print(f"ratio of medians ({key[16:]}): {ours[key] / theirs[key]:.2f}")
    return {
        "preset": preset,
        "steps": args.steps,
        "eval_freq": args.eval_freq,
        "stop_return": stop,
        "summary": summary,
        "runs": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for table A")
    ap.add_argument("--solve-seeds", type=int, default=5, help="seeds 0..N-1 for table B")
    ap.add_argument("--steps", type=int, default=50_000, help="env steps per run (both tables)")
    ap.add_argument("--eval-freq", type=int, default=2_500, help="table B: env steps between evals")
    ap.add_argument("--skip", choices=["A", "B"], default=None)
    ap.add_argument(
        "--compile", action="store_true", help="add drlzero with train.compile=true to A"
    )
    add_result_args(ap)
    args = ap.parse_args()
    if args.smoke:
        # one training phase (learning starts at 1000, a phase every 256 steps), two evaluations
        args.seeds, args.solve_seeds, args.steps, args.eval_freq = 1, 1, 1_200, 600
    torch.set_num_threads(1)
    if not HAVE_SB3:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): SB3 arms skipped")
    out = out_dir_for(args)
    if args.skip != "A":
        print("wrote", write_result(SCRIPT, "table_a", table_a(args), out_dir=out))
    if args.skip != "B":
        print("wrote", write_result(SCRIPT, "table_b", table_b(args), out_dir=out))


if __name__ == "__main__":
    main()
