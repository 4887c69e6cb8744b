"""Frozen MiniLM, LoRA and a from-scratch text encoder on multimodal BabyAI GoToLocal (or
PickupDist, ``--level pickuplocal``), with the generalisation splits: paraphrased missions,
colour/object synonyms and held-out compositions, and a wrong-mission control.

Each encoder trains its preset (``babyai-LEVEL-{frozen,lora,scratch}`` with DQN,
``babyai-LEVEL-{frozen,scratch}-ppo`` and ``babyai-gotolocal-lora-ppo`` with PPO) with two
colour-object pairs held out of the training missions (``env.kwargs.held_out_pairs``), then its
best checkpoint is evaluated on the same seeds with the original missions, the paraphrases
(``tests/data/babyai_paraphrases.json``), the synonyms (``tests/data/babyai_synonyms.json``), and
on missions naming only the held-out pairs, and with every colour and object name rotated to
another (``benchmarks/babyai_wrong_mission.json``: the control that shows whether the policy
reads the mission at all); the uniform random policy is evaluated on the same episodes of every
split, and retention above chance = (split - random) / (original - random).

Usage (one encoder per process, so they can run side by side):
    nice -n 19 python benchmarks/lm_gotolocal_compare.py --only frozen --steps 40000 [--seed 1]

The evaluation episodes (seed 20000) are the same for every training seed; a seed other than 0
adds ``_seedS`` to the result file's name, ``--checkpoint last`` (the final weights instead of
the best greedy evaluation's, which 30 training episodes pick noisily) adds ``_last``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from _results import add_result_args, out_dir_for, write_result

import drlzero

ROOT = Path(__file__).resolve().parent.parent
PARAPHRASES = ROOT / "tests" / "data" / "babyai_paraphrases.json"
SYNONYMS = ROOT / "tests" / "data" / "babyai_synonyms.json"
# Every colour and object name rotated to another: the policy is told about a different object
# than the one that counts. A policy that reads the mission drops towards chance here; one that
# keeps its success ignores the words, and its split retentions then say nothing.
WRONG = ROOT / "benchmarks" / "babyai_wrong_mission.json"
HELD_OUT = [["red", "key"], ["green", "ball"]]
EVAL_SEED = 20000
ENCODERS = ("frozen", "lora", "scratch", "frozen-ppo", "lora-ppo", "scratch-ppo")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="frozen", choices=ENCODERS)
    ap.add_argument("--level", default="gotolocal", choices=("gotolocal", "pickuplocal"))
    ap.add_argument("--steps", type=int, default=40000, help="env steps of training")
    ap.add_argument("--episodes", type=int, default=100, help="evaluation episodes per split")
    ap.add_argument("--eval-freq", type=int, default=4000)
    ap.add_argument("--runs", default="runs/lm_gotolocal", help="where the run directories go")
    ap.add_argument("--run-dir", help="evaluate this run (stopped early) instead of training")
    ap.add_argument(
        "--checkpoint",
        default="best",
        choices=("best", "last"),
        help="which checkpoint the splits evaluate (best: highest greedy success in training)",
    )
    ap.add_argument("--seed", type=int, default=0, help="training seed (evaluation episodes fixed)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override on top of the preset (repeatable), e.g. encoder.fusion=match",
    )
    ap.add_argument("--tag", default="", help="appended to the result name (for --set variants)")
    add_result_args(ap)
    args = ap.parse_args()
    over = [
        "train.progress=false",
        "train.tensorboard=false",
        f"train.eval_freq={args.eval_freq}",
        "train.eval_episodes=30",
        f"train.seed={args.seed}",
        *args.set,
    ]
    if args.smoke:
        args.steps, args.episodes = 64, 2
        args.runs = tempfile.mkdtemp(prefix="lm_gotolocal_smoke_")
        over.append("train.eval_freq=0")
        if args.only.endswith("-ppo"):
            over += ["env.num_envs=2", "ppo.n_steps=16", "ppo.num_minibatches=2"]
        else:
            over += ["dqn.learning_starts=32", "dqn.batch_size=8"]
    preset = f"babyai-{args.level}-{args.only}"
    t0 = time.perf_counter()
    if args.run_dir:  # evaluate a run stopped early (its best checkpoint), without training
        run_dir = Path(args.run_dir)
        rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
        args.steps = int(float(rows[-1]["step"]))
        wall = float(rows[-1]["time_s"])
        curve = [
            {"step": int(float(r["step"])), "eval_success_rate": float(r["eval_success_rate"])}
            for r in rows
            if r.get("eval_success_rate")
        ]
    else:
        cfg = drlzero.load_config(preset, overrides=over)
        cfg.env.kwargs = {**cfg.env.kwargs, "held_out_pairs": HELD_OUT}
        stamp = time.strftime("%H%M%S")
        tag = f"-{args.tag}" if args.tag else ""
        name = f"{args.level}-{args.only}{tag}-{args.steps}-seed{args.seed}-{stamp}"
        out = Path(args.runs) / name
        res = drlzero.train(cfg, out=out, total_steps=args.steps)
        wall = time.perf_counter() - t0
        run_dir, curve = res.run_dir, res.eval_history
    # Evaluation seed 20000 (what a seed-0 run uses by default) for every training seed, so
    # all seeds are scored on the same episodes.
    ev = {
        "episodes": args.episodes,
        "seed": EVAL_SEED,
        "checkpoint": args.checkpoint,
        "write": False,
    }
    main_eval = drlzero.evaluate(run_dir, paraphrases=PARAPHRASES, held_out=True, **ev)
    syn = drlzero.evaluate(run_dir, paraphrases=SYNONYMS, **ev)
    wrong = drlzero.evaluate(run_dir, paraphrases=WRONG, **ev)
    table = {
        "original": (main_eval["success_rate"], main_eval["random_success_rate"], None),
        "paraphrase": (
            main_eval["paraphrase_success_rate"],
            main_eval["paraphrase_random_success_rate"],
            main_eval["paraphrase_retention"],
        ),
        "synonym": (
            syn["paraphrase_success_rate"],
            syn["paraphrase_random_success_rate"],
            syn["paraphrase_retention"],
        ),
        "held_out": (
            main_eval["held_out_success_rate"],
            main_eval["held_out_random_success_rate"],
            main_eval["held_out_retention"],
        ),
        "wrong_mission": (
            wrong["paraphrase_success_rate"],
            wrong["paraphrase_random_success_rate"],
            wrong["paraphrase_retention"],
        ),
    }
    print(f"{preset}: {args.steps} env steps in {wall:.0f} s")
    print("| split | success | random policy | retention above chance |")
    print("|---|---|---|---|")
    for split, (sr, rnd, ret) in table.items():
        kept = "-" if ret is None else f"{ret:.2f}"
        print(f"| {split} | {sr:.2f} | {rnd:.2f} | {kept} |")
    planned = drlzero.load_config(Path(run_dir) / "config.yaml").train.total_steps
    payload = {
        "preset": preset,
        "seed": args.seed,
        "checkpoint": args.checkpoint,
        "steps": args.steps,
        "wall_s": wall,
        "overrides": over,
        "held_out_pairs": HELD_OUT,
        "episodes": args.episodes,
        "eval": main_eval,
        "synonym_eval": syn,
        "wrong_mission_eval": wrong,
        "table": {
            k: dict(zip(("success", "random", "retention"), v, strict=True))
            for k, v in table.items()
        },
        "curve": curve,
        "stopped_early": args.steps < planned,
    }
    out_dir = out_dir_for(args)
    name = f"{args.level}_{args.only}" + (f"_seed{args.seed}" if args.seed else "")
    name += f"_{args.tag}" if args.tag else ""
    name += "_last" if args.checkpoint == "last" else ""
    print("wrote", write_result("lm_gotolocal_compare", name, payload, out_dir=out_dir))


if __name__ == "__main__":
    main()
