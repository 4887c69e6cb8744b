"""Frozen all-MiniLM-L6-v2 on BabyAI GoToObj in words: env steps per second with and without the
frozen-mode embedding cache (issue 4, target: cache >= 10x).

Both runs use the ``babyai-goto-frozen`` preset through the real training loop; only
``encoder.cache`` differs. Steps/s is measured after ``learning_starts`` (from metrics.csv
rows), when every vector step also trains, so it includes acting, env stepping, replay and
updates. Without the cache the learner re-encodes 2 x batch texts per update with the backbone.

Usage:
    python benchmarks/lm_cache_throughput.py [--cached-steps 12000] [--uncached-steps 2000]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import drlzero

QUIET = ["train.progress=false", "train.tensorboard=false", "train.eval_freq=0"]


def steps_per_second(run_dir: Path, after: int) -> float:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    rows = [r for r in rows if r["step"] and float(r["step"]) >= after]
    first, last = rows[0], rows[-1]
    dt = float(last["time_s"]) - float(first["time_s"])
    return (float(last["step"]) - float(first["step"])) / dt


def run(cache: bool, steps: int, out: Path) -> float:
    over = [
        *QUIET,
        f"encoder.cache={str(cache).lower()}",
        "train.log_freq=500",
        "train.eval_episodes=4",
    ]
    result = drlzero.train("babyai-goto-frozen", out=out, overrides=over, total_steps=steps)
    return steps_per_second(result.run_dir, after=2000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cached-steps", type=int, default=12000)
    ap.add_argument("--uncached-steps", type=int, default=3500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cached = run(True, args.cached_steps, Path(tmp) / "cached")
        uncached = run(False, args.uncached_steps, Path(tmp) / "uncached")
    print("| frozen all-MiniLM-L6-v2, BabyAI-GoToObj text | env steps/s (after learning starts) |")
    print("|---|---|")
    print(f"| embedding cache at the env boundary | {cached:.0f} |")
    print(f"| no cache (backbone in every forward) | {uncached:.1f} |")
    print(f"speed-up: {cached / uncached:.1f}x")


if __name__ == "__main__":
    main()
