"""LoRA fine-tuning against frozen MiniLM + cache on multimodal BabyAI GoToLocal: env steps/s.

Target: LoRA at least 30% of frozen + cache's env steps/s on ``babyai-gotolocal-lora`` vs
``babyai-gotolocal-frozen``. Variants (the same preset, only ``encoder.*`` differs):

- ``frozen``: frozen MiniLM, mission embeddings cached at the env boundary;
- ``lora``: LoRA in the top 2 layers, the lower 4 layers' output cached, rows deduplicated;
- ``lora_no_dedup``: the same without deduplication;
- ``lora_plain``: LoRA in every layer, no cache, no dedup (the path before these speed-ups).

Every variant runs through the real training loop; env steps/s is taken after
``learning_starts`` (metrics.csv rows), when every vector step also trains. The machine is
shared, so the variants run in interleaved rounds (frozen, lora, ..., then again) and the
ratios come from each round's side-by-side runs; the JSON keeps every round.

Usage:
    nice -n 19 python benchmarks/lm_finetune_throughput.py [--steps 4000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

from _results import add_result_args, out_dir_for, write_result

import drlzero

QUIET = ["train.progress=false", "train.tensorboard=false", "train.eval_freq=0"]
VARIANTS = {
    "frozen": ("babyai-gotolocal-frozen", []),
    "lora": ("babyai-gotolocal-lora", []),
    "lora_no_dedup": ("babyai-gotolocal-lora", ["encoder.dedup=false"]),
    "lora_plain": (
        "babyai-gotolocal-lora",
        ["encoder.lora_layers=0", "encoder.cache=false", "encoder.dedup=false"],
    ),
}


def steps_per_second(run_dir: Path, after: int) -> float:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    rows = [r for r in rows if r["step"] and float(r["step"]) >= after]
    first, last = rows[0], rows[-1]
    dt = float(last["time_s"]) - float(first["time_s"])
    return (float(last["step"]) - float(first["step"])) / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4000, help="env steps per run")
    ap.add_argument("--after", type=int, default=2000, help="env step where timing starts")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--log-freq", type=int, default=200, help="env steps between timing rows")
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    add_result_args(ap)
    args = ap.parse_args()
    extra = [f"train.log_freq={args.log_freq}", f"dqn.learning_starts={args.after}"]
    if args.smoke:
        args.steps, args.after, args.rounds = 48, 32, 1
        args.only = "frozen,lora"
        extra = ["dqn.learning_starts=32", "dqn.batch_size=8", "train.log_freq=8"]
    names = args.only.split(",")
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row: dict[str, float] = {}
            for name in names:
                preset, over = VARIANTS[name]
                t0 = time.perf_counter()
                res = drlzero.train(
                    preset,
                    out=Path(tmp) / f"{name}-{r}",
                    overrides=[*QUIET, *extra, *over],
                    total_steps=args.steps,
                )
                row[name] = steps_per_second(res.run_dir, args.after)
                print(
                    f"round {r} {name}: {row[name]:.1f} env steps/s "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
            rounds.append(row)
    median = {n: statistics.median(r[n] for r in rounds) for n in names}
    ratios: dict[str, float] = {}
    if "frozen" in names:
        for n in names:
            if n != "frozen":
                ratios[f"{n}_vs_frozen"] = statistics.median(r[n] / r["frozen"] for r in rounds)
    print("| variant (multimodal GoToLocal) | env steps/s (median) | vs frozen + cache |")
    print("|---|---|---|")
    for n in names:
        rel = ratios.get(f"{n}_vs_frozen", 1.0 if n == "frozen" else float("nan"))
        print(f"| {n} | {median[n]:.1f} | {100 * rel:.0f}% |")
    payload = {
        "steps": args.steps,
        "timed_from_step": args.after,
        "overrides": extra,
        "variants": {n: " ".join([VARIANTS[n][0], *VARIANTS[n][1]]) for n in names},
        "rounds": rounds,
        "median_sps": median,
        "ratios": ratios,
        "target_lora_vs_frozen": 0.30,
    }
    out_dir = out_dir_for(args)
    print("wrote", write_result("lm_finetune_throughput", "gotolocal", payload, out_dir=out_dir))


if __name__ == "__main__":
    main()
