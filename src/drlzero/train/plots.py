"""The learning-curve figure saved as ``learning_curve.png`` in each run directory."""

from __future__ import annotations

import csv
from pathlib import Path


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def plot_learning_curve(run_dir: Path, title: str = "") -> Path:
    """Training episode returns (raw and smoothed) and greedy evaluations against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = _read(run_dir / "episodes.csv")
    metrics = [r for r in _read(run_dir / "metrics.csv") if r.get("eval_return_mean")]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if episodes:
        xs = [int(r["step"]) for r in episodes]
        ys = [float(r["return"]) for r in episodes]
        ax.plot(xs, ys, color="tab:blue", alpha=0.25, lw=0.8, label="episode return")
        k = max(1, len(ys) // 50)
        smooth = [
            sum(ys[max(0, i - k + 1) : i + 1]) / len(ys[max(0, i - k + 1) : i + 1])
            for i in range(len(ys))
        ]
        ax.plot(xs, smooth, color="tab:blue", lw=1.6, label=f"rolling mean ({k})")
    if metrics:
        ex = [int(r["step"]) for r in metrics]
        ey = [float(r["eval_return_mean"]) for r in metrics]
        es = [float(r["eval_return_std"] or 0) for r in metrics]
        ax.errorbar(
            ex, ey, yerr=es, color="tab:orange", marker="o", ms=4, capsize=3, label="greedy eval"
        )
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(title or run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = run_dir / "learning_curve.png"
    fig.savefig(out)
    plt.close(fig)
    return out
