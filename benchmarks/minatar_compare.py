"""DQN vs Rainbow vs Stable-Baselines3's DQN on a MinAtar game at the same frame budget.

Arms (``--arms``, default all three):
- ``dqn``: the ``minatar-GAME-dqn`` preset (the MinAtar paper's DQN settings);
- ``rainbow``: the ``minatar-GAME-rainbow`` preset (double, dueling, prioritized, 3-step, C51,
  noisy; Adam as in Revisiting Rainbow);
- ``sb3``: SB3 2.x ``DQN`` with the DQN preset's hyperparameters (RMSprop lr 2.5e-4 eps 0.01,
  batch 32, buffer 100k, learning starts 5k, train every step, target every 1000, Huber loss, no
  gradient clipping, epsilon 1 -> 0.1 over 100k frames) and the same MinAtar CNN (drlzero's
  ``MinAtarCNN`` as SB3's features extractor, then one linear layer: the same network), on the
  same env (``drlzero.envs.make_env``).

Each (arm, seed) run is one process with one torch thread; ``--jobs N`` runs N at once (Rainbow
first: it is the slowest). Every run evaluates greedily (10 episodes) every ``--eval-freq``
frames and writes ``--out/results/ARM-sSEED-STEPS.json``; the table and ``--out/curves.png``
(mean over seeds, min-max band) are made from all result files of that budget, so runs split
over several invocations still end in one table (``--report`` only reads them).

Published reference, for reading the figure: the MinAtar paper (Young & Tian 2019) plots DQN
over 5M frames; Revisiting Rainbow (Obando-Ceron & Castro 2021) plots Rainbow and DQN over 10M.
A CPU budget here is a small fraction of those: compare the early parts of their curves.

Usage:
    python benchmarks/minatar_compare.py [--game breakout] [--steps 100000] [--seeds 3]
        [--arms dqn,rainbow,sb3] [--jobs 2] [--report]

The report also writes every run's result, curves included, to
``benchmarks/results/minatar_compare/GAME-STEPS.json``. Without stable-baselines3 installed
(``pip install -e '.[bench]'``) the ``sb3`` arm is skipped.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _results import add_result_args, out_dir_for, peer_float_mode, write_result

ARMS = ("dqn", "rainbow", "sb3")
SLOWEST_FIRST = {"rainbow": 0, "sb3": 1, "dqn": 2}
EVAL_SEED_OFFSET = 10_000


def anneal_fraction(steps: int) -> float:
    """The presets anneal epsilon over 10% of 1M steps: keep that 100k-step anneal."""
    return min(1.0, 100_000 / steps)


def run_preset(preset: str, seed: int, steps: int, eval_freq: int, out: Path) -> dict[str, Any]:
    import drlzero
    from drlzero.config import load_config

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
            f"exploration.fraction={anneal_fraction(steps)}",
        ],
    )
    t0 = time.perf_counter()
    result = drlzero.train(cfg, out=out / "runs" / f"{preset}-s{seed}-{steps}")
    wall = time.perf_counter() - t0
    with (result.run_dir / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval_return_mean")]
    return {
        "final": result.final_eval["mean_return"],
        "best": result.best_eval_return,
        "sps": result.steps / result.wall_time_s,
        "wall": wall,
        "curve": [(int(r["step"]), float(r["eval_return_mean"])) for r in rows],
    }


def run_sb3(game: str, seed: int, steps: int, eval_freq: int) -> dict[str, Any]:
    """SB3's DQN at the DQN preset's numbers, evaluated like drlzero (10 greedy episodes)."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from drlzero.config import load_config
    from drlzero.encoders.cnn import MinAtarCNN
    from drlzero.envs import make_env

    cfg = load_config(f"minatar-{game}-dqn")
    d = cfg.dqn

    class Extractor(BaseFeaturesExtractor):
        def __init__(self, space: Any, features_dim: int = 128) -> None:
            super().__init__(space, features_dim)
            self.net = MinAtarCNN(space.shape, features_dim=features_dim)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs)

    eval_env = Monitor(make_env(cfg.env))
    curve: list[tuple[int, float]] = []
    eval_s = [0.0]

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_freq == 0:
                t0 = time.perf_counter()
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10)
                eval_s[0] += time.perf_counter() - t0
                curve.append((self.num_timesteps, float(mean)))
            return True

    eval_env.reset(seed=seed + EVAL_SEED_OFFSET)
    model = DQN(
        "MlpPolicy",
        make_env(cfg.env),
        learning_rate=d.lr,
        buffer_size=cfg.replay.buffer_size,
        learning_starts=d.learning_starts,
        batch_size=d.batch_size,
        gamma=d.gamma,
        train_freq=d.train_freq,
        gradient_steps=d.gradient_steps,
        target_update_interval=d.target_update_interval,
        exploration_fraction=anneal_fraction(steps),
        exploration_initial_eps=cfg.exploration.start,
        exploration_final_eps=cfg.exploration.end,
        max_grad_norm=1e10,  # the preset does not clip
        policy_kwargs={
            "features_extractor_class": Extractor,
            "features_extractor_kwargs": {"features_dim": cfg.encoder.features_dim or 128},
            "net_arch": [],
            "normalize_images": False,
            "optimizer_class": torch.optim.RMSprop,
            "optimizer_kwargs": {"eps": d.adam_eps},
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Evaluate())
    wall = time.perf_counter() - t0
    if not curve or curve[-1][0] != steps:
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10)
        curve.append((steps, float(mean)))
    return {
        "final": curve[-1][1],
        "best": max(v for _, v in curve),
        "sps": steps / max(wall - eval_s[0], 1e-9),
        "wall": wall,
        "curve": curve,
    }


def run_one(arm: str, game: str, seed: int, steps: int, eval_freq: int, out: str) -> str:
    torch.set_num_threads(1)
    if arm == "sb3":
        peer_float_mode()  # a pool worker may have run a drlzero arm before
        result = run_sb3(game, seed, steps, eval_freq)
    else:
        result = run_preset(f"minatar-{game}-{arm}", seed, steps, eval_freq, Path(out))
    path = Path(out) / "results" / f"{arm}-s{seed}-{steps}.json"
    path.write_text(json.dumps({"arm": arm, "seed": seed, "steps": steps, **result}) + "\n")
    print(
        f"{arm:<8} seed {seed}  final {result['final']:6.2f}  best {result['best']:6.2f}  "
        f"{result['sps']:6.0f} steps/s  {result['wall']:6.0f} s",
        flush=True,
    )
    return str(path)


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
    ax.set_ylabel("greedy eval return (10 episodes)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(out: Path, game: str, steps: int, results_dir: Path | None = None) -> None:
    results: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((out / "results").glob(f"*-{steps}.json")):
        r = json.loads(path.read_text())
        results.setdefault(r["arm"], []).append(r)
    if not results:
        raise SystemExit(f"no results for {steps} steps under {out / 'results'}")
    print(f"\nMinAtar {game}, {steps} frames, greedy eval of 10 episodes every eval step")
    print(f"{'arm':<8} {'seeds':>5} {'final (each)':>24} {'final':>6} {'best':>6} {'steps/s':>8}")
    names = {"dqn": "drlzero DQN", "rainbow": "drlzero Rainbow", "sb3": "SB3 DQN"}
    for arm in sorted(results, key=ARMS.index):
        rs = sorted(results[arm], key=lambda r: r["seed"])
        each = " / ".join(f"{r['final']:.1f}" for r in rs)
        print(
            f"{arm:<8} {len(rs):>5} {each:>24} {statistics.mean(r['final'] for r in rs):6.2f} "
            f"{statistics.mean(r['best'] for r in rs):6.2f} "
            f"{statistics.median(r['sps'] for r in rs):8.0f}"
        )
        marks = [s for s, _ in rs[0]["curve"]]
        mean_curve = np.mean([[v for _, v in r["curve"][: len(marks)]] for r in rs], axis=0)
        print(
            "         mean curve: "
            + ", ".join(f"{s // 1000}k {v:.2f}" for s, v in zip(marks, mean_curve, strict=False))
        )
    plot(
        {names[a]: [r["curve"] for r in results[a]] for a in sorted(results, key=ARMS.index)},
        out / "curves.png",
        f"MinAtar {game}: {steps:,} frames",
    )
    print(f"curves: {out / 'curves.png'}")
    payload = {"game": game, "steps": steps, "runs": results}
    print("wrote", write_result("minatar_compare", f"{game}-{steps}", payload, out_dir=results_dir))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="breakout")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1, help="seeds first..first+seeds-1")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated: dqn,rainbow,sb3")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (one process each)")
    ap.add_argument("--eval-freq", type=int, default=10_000)
    ap.add_argument("--out", default=None, help="run folder (default: runs/minatar-compare)")
    ap.add_argument("--report", action="store_true", help="only print the table and plot")
    add_result_args(ap)
    args = ap.parse_args()
    if args.smoke:  # a few hundred frames per arm, in a temporary run folder
        args.steps, args.eval_freq, args.seeds = 200, 200, 1
        args.out = args.out or tempfile.mkdtemp(prefix="minatar-smoke-")
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad:
        raise SystemExit(f"--arms: unknown {bad}; choose from {', '.join(ARMS)}")
    if "sb3" in arms and importlib.util.find_spec("stable_baselines3") is None:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): sb3 arm skipped")
        arms.remove("sb3")
    out = Path(args.out or "runs/minatar-compare")
    (out / "results").mkdir(parents=True, exist_ok=True)
    if not args.report:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        tasks = sorted(((a, s) for a in arms for s in seeds), key=lambda t: SLOWEST_FIRST[t[0]])
        common = (args.game, args.steps, args.eval_freq, str(out))
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_one, a, args.game, s, *common[1:]) for a, s in tasks]
            for fut in futures:
                fut.result()
    report(out, args.game, args.steps, out_dir_for(args))


if __name__ == "__main__":
    main()
