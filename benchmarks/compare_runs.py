"""Compare two run directories bit for bit: every tensor of ``checkpoints/{last,best}``, the
resume-relevant checkpoint metadata, ``eval.json`` and ``episodes.csv``.

Used to show that a refactor leaves a fixed-seed run unchanged: train the same preset and seed
with the old and the new code, then

    python benchmarks/compare_runs.py runs/before runs/after

Prints one line per file and ends with OK (exit 0) or MISMATCH (exit 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

META_KEYS = ("step", "best_eval_return", "episodes", "recent", "vec_steps", "updates")


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(
        (
            a.contiguous().view(-1).view(torch.uint8) == b.contiguous().view(-1).view(torch.uint8)
        ).all()
    )


def compare(a: Path, b: Path) -> bool:
    """Print the comparison of run directories ``a`` and ``b``; True if all is identical."""
    ok = True
    for name in ("last", "best"):
        wa, wb = (r / "checkpoints" / f"{name}.safetensors" for r in (a, b))
        if not wa.is_file() and not wb.is_file():
            continue
        if wa.is_file() != wb.is_file():  # e.g. one run evaluated (has a best), the other not
            print(f"{name}.safetensors: DIFFER (only in {a if wa.is_file() else b})")
            ok = False
            continue
        ta, tb = load_file(str(wa)), load_file(str(wb))
        bad = sorted(set(ta) ^ set(tb)) + [
            k for k in ta if k in tb and not _same_bits(ta[k], tb[k])
        ]
        print(
            f"{name}.safetensors: {len(ta)} tensors, "
            + ("bit-identical" if not bad else f"DIFFER {bad[:5]}")
        )
        ja, jb = (json.loads((r / "checkpoints" / f"{name}.json").read_text()) for r in (a, b))
        diff = [k for k in META_KEYS if ja.get(k) != jb.get(k)]
        print(f"{name}.json: " + ("same counters" if not diff else f"DIFFER {diff}"))
        ok &= not bad and not diff
    for file in ("eval.json", "episodes.csv"):
        fa, fb = a / file, b / file
        same = fa.is_file() == fb.is_file() and (
            not fa.is_file() or fa.read_bytes() == fb.read_bytes()
        )
        print(f"{file}: " + ("identical" if same else "DIFFER"))
        ok &= same
    print("OK" if ok else "MISMATCH")
    return ok


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_runs.py RUN_A RUN_B")
    sys.exit(0 if compare(Path(sys.argv[1]), Path(sys.argv[2])) else 1)
