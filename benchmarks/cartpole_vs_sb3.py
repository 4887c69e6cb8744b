"""drlzero DQN vs Stable-Baselines3 DQN on CartPole-v1, side by side in one run.

Two tables:

A. Throughput at the RL Zoo's tuned hyperparameters (the ``cartpole-dqn-zoo`` preset, identical
   settings passed to SB3): env steps per second over a fixed budget with no periodic evaluation,
   and the final greedy evaluation (10 episodes).
B. Time to solve: wall time until the first greedy evaluation (10 episodes) with mean >= 475,
   drlzero's own ``cartpole-dqn`` preset vs SB3 with the Zoo settings, both evaluated every
   ``--eval-freq`` env steps and stopped when solved.

Runs alternate between the two libraries, one at a time, each with one torch thread (both get
the same setting), so machine noise hits both alike.

Usage:
    python benchmarks/cartpole_vs_sb3.py [--seeds 3] [--solve-seeds 5] [--steps 50000] [--compile]

``--compile`` adds a row to A: drlzero with ``train.compile=true`` (the compiled time includes
torch.compile's first compilation, ~20 s here, as a user's run would).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import drlzero
from drlzero.config import load_config

QUIET = ["train.progress=false", "train.tensorboard=false", "train.checkpoint_freq=0"]


def zoo_sb3_kwargs() -> dict[str, Any]:
    """The Zoo's CartPole DQN settings, read from our preset so both sides see the same numbers."""
    cfg = load_config("cartpole-dqn-zoo")
    d, e = cfg.dqn, cfg.exploration
    return {
        "learning_rate": d.lr,
        "batch_size": d.batch_size,
        "buffer_size": d.buffer_size,
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


def sb3_greedy_eval(model: Any, episodes: int, seed: int) -> float:
    env = gym.make("CartPole-v1")
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(int(action))
            total += float(r)
            done = term or trunc
        returns.append(total)
    return float(np.mean(returns))


def run_sb3(seed: int, steps: int, eval_freq: int | None) -> dict[str, float]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    class SolveWatch(BaseCallback):
        """Greedy eval every ``eval_freq`` steps (timed in), stop at mean >= 475."""

        def __init__(self) -> None:
            super().__init__()
            self.solved_at: float | None = None
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            due = eval_freq and self.num_timesteps % eval_freq == 0
            if due and sb3_greedy_eval(self.model, 10, 10_000 + seed) >= 475:
                self.solved_at = time.perf_counter() - self.t0
                return False
            return True

    env = gym.make("CartPole-v1")
    model = DQN("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **zoo_sb3_kwargs())
    watch = SolveWatch()
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=watch)
    wall = time.perf_counter() - t0
    done = model.num_timesteps
    return {
        "sps": done / wall,
        "wall_s": wall,
        "final_eval": sb3_greedy_eval(model, 10, 20_000 + seed),
        "solved_s": watch.solved_at if watch.solved_at is not None else float("nan"),
    }


def run_drlzero(preset: str, seed: int, steps: int, extra: list[str]) -> dict[str, float]:
    cfg = load_config(
        preset, overrides=[*QUIET, f"train.seed={seed}", f"train.total_steps={steps}", *extra]
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = drlzero.train(cfg, out=Path(tmp) / "run")
        wall = time.perf_counter() - t0
        final = drlzero.evaluate(result.run_dir, episodes=10, seed=20_000 + seed, write=False)
    solved = [e["time_s"] for e in result.eval_history if e["mean_return"] >= 475]
    return {
        # over the training loop, as SB3's learn(): not the final eval, checkpoint and plot
        "sps": result.steps / (result.loop_time_s or result.wall_time_s),
        "wall_s": wall,
        "final_eval": final["mean_return"],
        "solved_s": solved[0] if solved else float("nan"),
        "solved_step": result.solved_at_step or float("nan"),
    }


def _fmt(values: list[float]) -> str:
    ok = [v for v in values if not np.isnan(v)]
    if not ok:
        return "-"
    return f"{statistics.median(ok):8.1f} (median of {len(ok)}/{len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds for table A")
    ap.add_argument("--solve-seeds", type=int, default=5, help="seeds for table B")
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--eval-freq", type=int, default=2_500)
    ap.add_argument("--skip", choices=["A", "B"], default=None)
    ap.add_argument(
        "--compile", action="store_true", help="add drlzero with train.compile=true to A"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    if args.skip != "A":
        print(f"A. RL Zoo hyperparameters, {args.steps} env steps, no periodic eval, 1 thread")
        print(f"{'seed':>4} {'lib':>16} {'steps/s':>9} {'wall s':>8} {'final eval':>10}")
        libs = ("drlzero", "drlzero-compiled", "sb3") if args.compile else ("drlzero", "sb3")
        rows: dict[str, list[dict[str, float]]] = {lib: [] for lib in libs}
        for seed in range(args.seeds):
            for lib in libs:
                if lib == "sb3":
                    r = run_sb3(seed, args.steps, None)
                else:
                    extra = ["train.eval_freq=0"]
                    if lib == "drlzero-compiled":
                        extra.append("train.compile=true")
                    r = run_drlzero("cartpole-dqn-zoo", seed, args.steps, extra)
                rows[lib].append(r)
                line = f"{seed:>4} {lib:>16} {r['sps']:9.0f} {r['wall_s']:8.1f}"
                print(f"{line} {r['final_eval']:10.1f}", flush=True)
        theirs = statistics.median(r["sps"] for r in rows["sb3"])
        for lib in libs[:-1]:
            ours = statistics.median(r["sps"] for r in rows[lib])
            print(f"median steps/s: {lib} {ours:.0f}, SB3 {theirs:.0f}, ratio {ours / theirs:.2f}x")
        print()

    if args.skip != "B":
        every = f"10 episodes every {args.eval_freq} steps"
        print(f"B. wall time to the first greedy eval >= 475 ({every})")
        ours_t: list[float] = []
        theirs_t: list[float] = []
        for seed in range(args.solve_seeds):
            freq = [f"train.eval_freq={args.eval_freq}"]
            r = run_drlzero("cartpole-dqn", seed, args.steps, freq)
            ours_t.append(r["solved_s"])
            at = f"solved at {r['solved_s']:.1f} s, step {r['solved_step']}"
            print(f"  seed {seed} drlzero cartpole-dqn: {at}", flush=True)
        for seed in range(min(args.solve_seeds, 3)):
            r = run_sb3(seed, args.steps, args.eval_freq)
            theirs_t.append(r["solved_s"])
            print(
                f"  seed {seed} SB3 zoo settings:     solved at {r['solved_s']:.1f} s", flush=True
            )
        print(f"drlzero cartpole-dqn: {_fmt(ours_t)} s")
        print(f"SB3 (Zoo settings):   {_fmt(theirs_t)} s")
        ok_o = [v for v in ours_t if not np.isnan(v)]
        ok_t = [v for v in theirs_t if not np.isnan(v)]
        if ok_o and ok_t:
            print(f"ratio of medians: {statistics.median(ok_o) / statistics.median(ok_t):.2f}")


if __name__ == "__main__":
    main()
