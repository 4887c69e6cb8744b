"""BabyAI GoToObj described in words: frozen+cache vs LoRA vs full fine-tuning of
all-MiniLM-L6-v2 vs a from-scratch Transformer text encoder (issue 4).

For each preset: env steps until a greedy evaluation (``eval_episodes`` of the preset) first
reaches ``--threshold`` success, the final evaluation's success rate, then a fresh evaluation of
the best checkpoint on ``--episodes`` episodes with the original missions and with paraphrased
missions (``tests/data/babyai_paraphrases.json``, words the agent never saw in training).
Budgets are the presets' ``train.total_steps`` unless ``--steps PRESET=N`` overrides one; CPU
runs of LoRA/full are short (each update runs the 22.7M-parameter backbone forward and
backward). One run at a time, one torch thread.

``mm-frozen``/``mm-scratch`` are the multimodal variants: the grid image carries the view and
only the mission is text, so a paraphrase shifts only the mission's embedding.

Usage:
    python benchmarks/lm_babyai_compare.py [--only frozen,scratch] [--steps lora=8000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _results import add_result_args, out_dir_for, write_result

import drlzero

PRESETS = {
    "frozen": "babyai-goto-frozen",
    "lora": "babyai-goto-lora",
    "full": "babyai-goto-full",
    "scratch": "babyai-goto-scratch",
    "mm-frozen": "babyai-goto-multimodal-frozen",
    "mm-scratch": "babyai-goto-multimodal-scratch",
}
PARAPHRASES = Path(__file__).parents[1] / "tests" / "data" / "babyai_paraphrases.json"
QUIET = ["train.progress=false", "train.tensorboard=false"]


def run(
    key: str, steps: int | None, threshold: float, episodes: int, out: Path, extra: list[str]
) -> dict:
    over = [*QUIET, *extra]
    result = drlzero.train(PRESETS[key], out=out / key, overrides=over, total_steps=steps)
    reached = next(
        (e["step"] for e in result.eval_history if (e.get("success_rate") or 0) >= threshold),
        None,
    )
    ev = drlzero.evaluate(result.run_dir, episodes=episodes, paraphrases=PARAPHRASES)
    return {
        "mode": key,
        "steps": result.steps,
        "wall_s": round(result.wall_time_s),
        "steps_to_threshold": reached,
        "final_success": result.final_eval.get("success_rate"),
        "eval_success": ev["success_rate"],
        "paraphrase_success": ev["paraphrase_success_rate"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="frozen,scratch,lora,full")
    ap.add_argument("--steps", action="append", default=[], help="PRESET_KEY=N budget override")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", help="keep the run directories here (default: a temp dir)")
    add_result_args(ap)
    args = ap.parse_args()
    budgets = {k: int(v) for k, v in (s.split("=") for s in args.steps)}
    extra: list[str] = []
    if args.smoke:  # the frozen LM and the scratch encoder, a few hundred steps each
        args.only, args.episodes = "frozen,scratch", 2
        budgets = {"frozen": 150, "scratch": 150}
        extra = [
            "dqn.learning_starts=100",
            "dqn.batch_size=8",
            "train.eval_freq=150",
            "train.eval_episodes=2",
        ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        for key in args.only.split(","):
            rows.append(run(key, budgets.get(key), args.threshold, args.episodes, out, extra))
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n| encoder | env steps (budget) | wall s | steps to {args.threshold:.0%} success "
        f"| final eval success | success, {args.episodes} eps | paraphrased missions |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        reached = r["steps_to_threshold"] if r["steps_to_threshold"] is not None else "not reached"
        print(
            f"| {r['mode']} | {r['steps']} | {r['wall_s']} | {reached} | {r['final_success']:.2f} "
            f"| {r['eval_success']:.2f} | {r['paraphrase_success']:.2f} |"
        )
    payload = {
        "threshold": args.threshold,
        "episodes": args.episodes,
        "budgets": budgets,
        "overrides": extra,
        "rows": rows,
    }
    out_dir = out_dir_for(args)
    print("wrote", write_result("lm_babyai_compare", "lm_babyai_compare", payload, out_dir=out_dir))


if __name__ == "__main__":
    main()
