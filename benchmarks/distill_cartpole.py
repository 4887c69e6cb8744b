"""Policy distillation on CartPole-v1: a 256x256 DQN teacher -> a small student, per seed.

For each seed: train the teacher (``cartpole-dqn`` with ``encoder.hidden=[256,256]``, stops when
a greedy evaluation reaches 475) unless ``--teachers DIR`` already holds ``teacher-s{seed}``,
then ``drlzero.distill`` it into a ``--hidden`` student and print one row: parameter ratio,
greedy-forward speed ratio at batch 1 and 256 (timed side by side, alternating), teacher and
student returns on the same 20 evaluation episodes and the return retention.

Usage:
    python benchmarks/distill_cartpole.py [--seeds 0 1 2] [--hidden 32 32] [--teachers DIR]

Each seed's full ``distill.json`` report goes to
``benchmarks/results/distill_cartpole/distill_cartpole.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _results import add_result_args, out_dir_for, write_result

import drlzero


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    ap.add_argument("--teachers", type=Path, help="folder with teacher-s{seed} run dirs")
    ap.add_argument("--out", type=Path, help="folder for the students (default: a temp dir)")
    add_result_args(ap)
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="distill-bench-"))
    teachers = args.teachers or root
    fast = ["train.progress=false", "train.tensorboard=false"]
    # smoke: a teacher of one training phase, a student of a few hundred steps
    teacher_budget = ["train.total_steps=1200", "train.eval_freq=0"] if args.smoke else []
    student_budget = (
        {"total_steps": 400, "learning_starts": 100, "eval_freq": 0, "final_episodes": 3}
        if args.smoke
        else {}
    )
    if args.smoke:
        args.seeds = [0]
    rows = []
    print("seed | params T/S | ratio | fwd b1 T/S us | b256 T/S us | return T / S | retention")
    for seed in args.seeds:
        t_dir = teachers / f"teacher-s{seed}"
        if not (t_dir / "checkpoints" / "best.json").is_file():
            drlzero.train(
                "cartpole-dqn",
                out=t_dir,
                overrides=[
                    *fast,
                    "encoder.hidden=[256,256]",
                    f"train.seed={seed}",
                    *teacher_budget,
                ],
            )
        res = drlzero.distill(
            [t_dir],
            out=root / f"student-s{seed}",
            hidden=args.hidden,
            seed=seed,
            progress=False,
            **student_budget,
        )
        r = res.report
        t = r["tasks"][0]
        us = t["forward_us"]
        rows.append(r)
        print(
            f"{seed} | {t['teacher_params']:,}/{t['student_params']:,} | {r['param_ratio']:.1f}x | "
            f"{us['b1']['teacher']:.1f}/{us['b1']['student']:.1f} ({t['speedup_b1']:.2f}x) | "
            f"{us['b256']['teacher']:.1f}/{us['b256']['student']:.1f} ({t['speedup_b256']:.2f}x) | "
            f"{t['teacher_eval']['mean_return']:.1f} / {t['student_eval']['mean_return']:.1f} | "
            f"{t['return_retention']:.3f}",
            flush=True,
        )
    ret = [r["return_retention"] for r in rows]
    print(
        f"mean retention {statistics.mean(ret):.3f} (min {min(ret):.3f}); "
        f"speedup b1 {statistics.mean(r['tasks'][0]['speedup_b1'] for r in rows):.2f}x, "
        f"b256 {statistics.mean(r['tasks'][0]['speedup_b256'] for r in rows):.2f}x; "
        f"students in {root}"
    )
    payload = {
        "hidden": args.hidden,
        "seeds": args.seeds,
        "student": student_budget,
        "reports": rows,
    }
    out = out_dir_for(args)
    print("wrote", write_result("distill_cartpole", "distill_cartpole", payload, out_dir=out))


if __name__ == "__main__":
    main()
