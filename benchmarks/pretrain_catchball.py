"""Does self-supervised pretraining help on a held-out task? (issue 7)

1. Data: ``drlzero/CatchBall-v0`` as shipped (gravity 2.0, paddle half-width 0.07), rolled out by
   the ball-tracking baseline with 50% random actions.
2. Pretraining: a 2-layer, d=64 BERT over observation tokens, masked-observation + inverse
   dynamics + temporal contrastive (``drlzero pretrain``); and the same architecture saved at
   initialisation (``--steps 0``), the from-scratch control.
3. Fine-tuning with DQN on a held-out variant never seen in pretraining (gravity 2.5 instead
   of 2.0, a paddle half-width of 0.10 instead of 0.07), per arm and seed:

   - ``scratch-full``: the random-init BERT, every weight trains (same architecture, same tokens)
   - ``pre-full``: the pretrained BERT, every weight trains
   - ``pre-frozen``: the pretrained BERT frozen (embedding cache), only projection + head train

DQN settings: the ``catchball-dqn`` preset with batch 32, one gradient step per 4 env steps,
gamma 0.97, target sync every 500 steps, lr 5e-4 (sized for a shared 2-core CPU).

Prints steps to the first greedy evaluation (20 episodes every 2,500 steps) with mean return >=
``--threshold`` (0.0: as many catches as misses) and the final and best evaluation returns,
per seed and as mean +- std. One run at a time, one torch thread.

Usage:
    python benchmarks/pretrain_catchball.py [--seeds 0,1,2] [--steps 15000] [--arms ...]

Per-run rows (curves included) and the pretraining summaries go to ``--out/results.json`` and
``benchmarks/results/pretrain_catchball/pretrain_catchball.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import add_result_args, out_dir_for, write_result

import drlzero
from drlzero.config import EnvConfig
from drlzero.pretrain.dataset import generate_dataset
from drlzero.pretrain.trainer import PretrainConfig, pretrain

ENV = "drlzero/CatchBall-v0"
HELD_OUT = {"gravity": 2.5, "paddle_half_width": 0.1}
ARMS = {
    "scratch-full": ("scratch", "full"),
    "pre-full": ("pre", "full"),
    "pre-frozen": ("pre", "frozen"),
    "pre-lora": ("pre", "lora"),
}


def dqn_overrides(model: Path, mode: str, seed: int, steps: int) -> list[str]:
    """The catchball-dqn preset on the held-out variant, sized for a 2-core CPU."""
    return [
        f"env.kwargs={json.dumps(HELD_OUT)}",
        "encoder.name=pretrained",
        f"encoder.model_path={model}",
        f"encoder.mode={mode}",
        "encoder.pooling=cls",
        "encoder.features_dim=64",
        "encoder.lora_r=8",
        "encoder.lora_targets=[query,value,dense]",
        "dqn.batch_size=32",
        "dqn.lr=0.0005",
        "dqn.learning_starts=1000",
        "dqn.gradient_steps=1",
        "dqn.gamma=0.97",
        "dqn.target_update_interval=500",
        f"train.total_steps={steps}",
        "train.eval_freq=2500",
        "train.eval_episodes=20",
        f"train.seed={seed}",
        "train.progress=false",
        "train.tensorboard=false",
        "train.checkpoint_freq=0",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=15_000, help="DQN env steps per run")
    ap.add_argument("--arms", default="scratch-full,pre-full,pre-frozen")
    ap.add_argument("--data-steps", type=int, default=20_000)
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument("--threshold", type=float, default=0.0)
    ap.add_argument("--out", default=None, help="run folder (default: runs/pretrain-bench)")
    add_result_args(ap)
    args = ap.parse_args()
    extra: list[str] = []
    if args.smoke:  # a tiny dataset, 5 pretraining steps, two arms of 300 DQN steps
        args.seeds, args.arms, args.steps = "0", "scratch-full,pre-frozen", 300
        args.data_steps, args.pretrain_steps = 300, 5
        args.out = args.out or tempfile.mkdtemp(prefix="pretrain-smoke-")
        extra = ["dqn.learning_starts=100", "train.eval_freq=300", "train.eval_episodes=2"]
    out = Path(args.out or "runs/pretrain-bench")
    pretrain_summaries = {}
    data = out / "data"
    if not (data / "manifest.json").is_file():
        generate_dataset(
            EnvConfig(id=ENV), data, steps=args.data_steps, policy="track", epsilon=0.5, seed=7
        )
    models = {"pre": out / "model-pre", "scratch": out / "model-scratch"}
    for key, steps in (("pre", args.pretrain_steps), ("scratch", 0)):
        if not (models[key] / "config.json").is_file():
            cfg = PretrainConfig(steps=steps, batch_size=64, log_every=250)
            summary = pretrain(data, models[key], cfg)
            pretrain_summaries[key] = summary
            print(json.dumps(summary), flush=True)
    rows = []
    # Seed-major order: an interrupted benchmark still has whole seeds of every arm.
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in args.arms.split(","):
            model_key, mode = ARMS[arm]
            t0 = time.perf_counter()
            res = drlzero.train(
                "catchball-dqn",
                out=out / f"{arm}-s{seed}",
                overrides=[*dqn_overrides(models[model_key], mode, seed, args.steps), *extra],
            )
            hit = next(
                (e["step"] for e in res.eval_history if e["mean_return"] >= args.threshold), None
            )
            row = {
                "arm": arm,
                "seed": seed,
                "steps_to_threshold": hit,
                "final_return": round(res.final_eval["mean_return"], 3),
                "best_return": round(res.best_eval_return, 3),
                "wall_s": round(time.perf_counter() - t0),
                "eval_curve": [[e["step"], round(e["mean_return"], 3)] for e in res.eval_history],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nheld-out CatchBall {HELD_OUT}, {args.steps} env steps, threshold {args.threshold}")
    print("| arm | steps to threshold (per seed) | final return | best return | wall s/run |")
    print("|---|---|---|---|---|")
    for arm in dict.fromkeys(r["arm"] for r in rows):
        rs = [r for r in rows if r["arm"] == arm]
        fin = np.array([r["final_return"] for r in rs])
        best = np.array([r["best_return"] for r in rs])
        hits = ", ".join(str(r["steps_to_threshold"] or "-") for r in rs)
        wall = np.mean([r["wall_s"] for r in rs])
        print(
            f"| {arm} | {hits} | {fin.mean():.3f} +- {fin.std():.3f} | "
            f"{best.mean():.3f} +- {best.std():.3f} | {wall:.0f} |"
        )
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    payload = {
        "held_out": HELD_OUT,
        "steps": args.steps,
        "threshold": args.threshold,
        "data_steps": args.data_steps,
        "pretrain_steps": args.pretrain_steps,
        "overrides": extra,
        "pretrain": pretrain_summaries,  # empty when the models already existed under --out
        "runs": rows,
    }
    out_dir = out_dir_for(args)
    print(
        "wrote", write_result("pretrain_catchball", "pretrain_catchball", payload, out_dir=out_dir)
    )


if __name__ == "__main__":
    main()
