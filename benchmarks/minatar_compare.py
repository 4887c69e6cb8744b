"""DQN vs Rainbow (and optionally SB3's DQN) on a MinAtar game at the same frame budget.

Runs the ``minatar-GAME-dqn`` and ``minatar-GAME-rainbow`` presets (and, with ``--sb3``, SB3's
DQN with the DQN preset's hyperparameters and a MinAtar-size CNN) for ``--steps`` env steps
each, one seed after another (one torch thread), evaluating greedily every ``--eval-freq`` steps.
Prints a table (final and best greedy return, steps/s) and saves the evaluation curves of all
runs to ``--out/curves.png`` (mean over seeds, min-max band).

Published reference, for reading the figure: the MinAtar paper (Young & Tian 2019) plots DQN
over 5M frames; Revisiting Rainbow (Obando-Ceron & Castro 2021) plots Rainbow and DQN over 10M.
A CPU budget here is a small fraction of those: compare the early parts of their curves.

Usage:
    python benchmarks/minatar_compare.py [--game breakout] [--steps 100000] [--seeds 1] [--sb3]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import drlzero
from drlzero.config import load_config


def run_preset(preset: str, seed: int, steps: int, eval_freq: int, out: Path) -> dict:
    cfg = load_config(
        preset,
        overrides=[
            "train.progress=false",
            "train.tensorboard=false",
            f"train.total_steps={steps}",
            f"train.eval_freq={eval_freq}",
            f"train.seed={seed}",
            "train.threads=1",
            "train.checkpoint_freq=0",
            # the presets anneal epsilon over 10% of 1M steps: keep that 100k-step anneal
            f"exploration.fraction={min(1.0, 100_000 / steps)}",
        ],
    )
    t0 = time.perf_counter()
    result = drlzero.train(cfg, out=out / f"{preset}-s{seed}")
    wall = time.perf_counter() - t0
    with (result.run_dir / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval_return_mean")]
    curve = [(int(r["step"]), float(r["eval_return_mean"])) for r in rows]
    return {
        "final": result.final_eval["mean_return"],
        "best": result.best_eval_return,
        "sps": result.steps / result.wall_time_s,
        "wall": wall,
        "curve": curve,
    }


def plot(curves: dict[str, list[list[tuple[int, float]]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, runs in curves.items():
        n = min(len(r) for r in runs)
        xs = [s for s, _ in runs[0][:n]]
        ys = np.array([[v for _, v in r[:n]] for r in runs])
        ax.plot(xs, ys.mean(0), marker="o", ms=3, label=f"{name} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
    ax.set_xlabel("env steps (frames)")
    ax.set_ylabel("greedy eval return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="breakout")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=1, help="seeds first..first+seeds-1")
    ap.add_argument("--eval-freq", type=int, default=10_000)
    ap.add_argument("--out", default="runs/minatar-compare")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    presets = [f"minatar-{args.game}-dqn", f"minatar-{args.game}-rainbow"]
    results: dict[str, list[dict]] = {p: [] for p in presets}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for p in presets:
            r = run_preset(p, seed, args.steps, args.eval_freq, out)
            results[p].append(r)
            print(
                f"seed {seed} {p:<28} final {r['final']:6.2f}  best {r['best']:6.2f}  "
                f"{r['sps']:6.0f} steps/s  {r['wall']:7.0f} s",
                flush=True,
            )
    print(f"\nMinAtar {args.game}, {args.steps} frames, {args.seeds} seed(s), 10 greedy episodes")
    print(f"{'preset':<28} {'final (mean)':>12} {'best (mean)':>12} {'steps/s':>8}")
    for p, rs in results.items():
        print(
            f"{p:<28} {statistics.mean(r['final'] for r in rs):12.2f} "
            f"{statistics.mean(r['best'] for r in rs):12.2f} "
            f"{statistics.median(r['sps'] for r in rs):8.0f}"
        )
    plot(
        {p: [r["curve"] for r in rs] for p, rs in results.items()},
        out / "curves.png",
        f"MinAtar {args.game}: DQN vs Rainbow, {args.steps} frames",
    )
    print(f"curves: {out / 'curves.png'}")


if __name__ == "__main__":
    main()
