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

from _results import add_result_args, out_dir_for, write_result

import drlzero

QUIET = ["train.progress=false", "train.tensorboard=false", "train.eval_freq=0"]


def steps_per_second(run_dir: Path, after: int) -> float:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    rows = [r for r in rows if r["step"] and float(r["step"]) >= after]
    first, last = rows[0], rows[-1]
    dt = float(last["time_s"]) - float(first["time_s"])
    return (float(last["step"]) - float(first["step"])) / dt


def run(cache: bool, steps: int, out: Path, after: int, extra: list[str]) -> float:
    """Env steps/s of one run, from its metrics.csv rows at or after env step ``after``."""
    over = [
        *QUIET,
        f"encoder.cache={str(cache).lower()}",
        "train.log_freq=500",
        "train.eval_episodes=4",
        *extra,
    ]
    result = drlzero.train("babyai-goto-frozen", out=out, overrides=over, total_steps=steps)
    return steps_per_second(result.run_dir, after=after)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cached-steps", type=int, default=12000)
    ap.add_argument("--uncached-steps", type=int, default=3500)
    ap.add_argument("--after", type=int, default=2000, help="env step where timing starts")
    add_result_args(ap)
    args = ap.parse_args()
    extra: list[str] = []
    if args.smoke:  # learning from step 100, a log row every 10 steps, timed from step 100
        args.cached_steps, args.uncached_steps, args.after = 140, 120, 100
        extra = [
            "dqn.learning_starts=100",
            "dqn.batch_size=8",
            "train.log_freq=10",
            "train.eval_episodes=2",
        ]
    with tempfile.TemporaryDirectory() as tmp:
        cached = run(True, args.cached_steps, Path(tmp) / "cached", args.after, extra)
        uncached = run(False, args.uncached_steps, Path(tmp) / "uncached", args.after, extra)
    print("| frozen all-MiniLM-L6-v2, BabyAI-GoToObj text | env steps/s (after learning starts) |")
    print("|---|---|")
    print(f"| embedding cache at the env boundary | {cached:.0f} |")
    print(f"| no cache (backbone in every forward) | {uncached:.1f} |")
    print(f"speed-up: {cached / uncached:.1f}x")
    payload = {
        "cached_steps": args.cached_steps,
        "uncached_steps": args.uncached_steps,
        "timed_from_step": args.after,
        "overrides": extra,
        "cached_sps": cached,
        "uncached_sps": uncached,
        "speedup": cached / uncached,
    }
    out_dir = out_dir_for(args)
    print(
        "wrote",
        write_result("lm_cache_throughput", "lm_cache_throughput", payload, out_dir=out_dir),
    )


if __name__ == "__main__":
    main()
