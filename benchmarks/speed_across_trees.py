"""Env steps/s of the same presets on two (or more) source trees, interleaved in one run.

A refactor must not cost speed. This runs each preset on each source tree (a checkout's ``src``
directory, e.g. a ``git worktree`` of the commit before the change and the current one) in
fresh subprocesses with the same Python and packages, tree after tree within each round and
the trees' order reversed every other round (the run that goes first in a round was measured
up to 25% faster here whichever tree it was), so machine noise falls on all trees alike.
Throughput is the training loop's own ``loop_time_s`` (no periodic evaluation, checkpoints,
TensorBoard or progress bar), one torch thread, the preset's own settings otherwise.

Usage::

    git worktree add --detach /tmp/before <commit>
    python benchmarks/speed_across_trees.py --tree before=/tmp/before/src --tree after=src \\
        --preset cartpole-dqn-zoo --preset cartpole-dqn-cleanrl --steps 20000 --rounds 5
    python benchmarks/speed_across_trees.py --smoke   # this tree twice, 600 steps, 1 round

Writes ``benchmarks/results/speed_across_trees/speed_across_trees.json`` (or ``--name``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _results import add_result_args, out_dir_for, write_result

SCRIPT = "speed_across_trees"
HERE = Path(__file__).resolve().parents[1] / "src"
# Overrides every tree has understood since the run engine existed: the loop alone is timed.
QUIET = [
    "train.progress=false",
    "train.tensorboard=false",
    "train.eval_freq=0",
    "train.eval_episodes=1",
    "train.checkpoint_freq=0",
    "train.threads=1",
]
# One training run in a fresh interpreter; prints a JSON line with what was measured.
CHILD = """
import json, sys, tempfile
from pathlib import Path
import torch
torch.set_num_threads(1)
import drlzero
from drlzero.config import load_config
preset, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
over = json.loads(sys.argv[4]) + [f"train.total_steps={steps}", f"train.seed={seed}"]
with tempfile.TemporaryDirectory() as tmp:
    r = drlzero.train(load_config(preset, overrides=over), out=Path(tmp) / "run")
loop = r.loop_time_s or r.wall_time_s
print("RESULT " + json.dumps({"steps": r.steps, "loop_s": loop, "sps": r.steps / loop}))
"""


def run_one(src: str, preset: str, steps: int, seed: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, preset, str(steps), str(seed), json.dumps(QUIET)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{preset} on {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH to a src directory")
    ap.add_argument("--preset", action="append", default=[], help="a preset (repeatable)")
    ap.add_argument("--steps", type=int, default=20_000, help="env steps per run")
    ap.add_argument("--rounds", type=int, default=5, help="runs per (tree, preset)")
    ap.add_argument("--name", default=SCRIPT, help="result file name")
    add_result_args(ap)
    args = ap.parse_args()
    if args.smoke:
        args.tree = [f"a={HERE}", f"b={HERE}"]
        args.preset, args.steps, args.rounds = ["cartpole-dqn-cleanrl"], 600, 1
    if len(args.tree) < 2 or not args.preset:
        ap.error("give at least two --tree NAME=PATH and one --preset")
    trees: dict[str, str] = {}
    for item in args.tree:
        name, sep, path = item.partition("=")
        if not sep or not Path(path, "drlzero").is_dir():
            ap.error(f"--tree {item!r}: expected NAME=PATH where PATH/drlzero exists")
        trees[name] = str(Path(path).resolve())
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        p: {t: [] for t in trees} for p in args.preset
    }
    print(f"{args.steps} env steps per run, {args.rounds} rounds, trees alternate in each round")
    for rnd in range(args.rounds):
        order = list(trees.items())
        if rnd % 2:  # ABBA: each tree goes first in half of the rounds
            order.reverse()
        for preset in args.preset:
            for tree, src in order:
                r = run_one(src, preset, args.steps, seed=rnd)
                runs[preset][tree].append({"round": rnd, **r})
                print(f"round {rnd} {preset:>24} {tree:>10}: {r['sps']:8.0f} steps/s")
    summary: dict[str, Any] = {}
    for preset, by_tree in runs.items():
        summary[preset] = {
            tree: {
                "median_sps": statistics.median(r["sps"] for r in rs),
                "min_sps": min(r["sps"] for r in rs),
                "max_sps": max(r["sps"] for r in rs),
            }
            for tree, rs in by_tree.items()
        }
        first = next(iter(trees))
        for tree, s in summary[preset].items():
            ratio = s["median_sps"] / summary[preset][first]["median_sps"]
            s["ratio_to_" + first] = ratio
            print(
                f"{preset:>24} {tree:>10}: median {s['median_sps']:.0f} steps/s "
                f"(min {s['min_sps']:.0f}, max {s['max_sps']:.0f}), {ratio:.3f}x {first}"
            )
    report = {
        "trees": trees,
        "presets": args.preset,
        "steps": args.steps,
        "rounds": args.rounds,
        "quiet_overrides": QUIET,
        "runs": runs,
        "summary": summary,
    }
    print("wrote", write_result(SCRIPT, args.name, report, out_dir=out_dir_for(args)))


if __name__ == "__main__":
    main()
