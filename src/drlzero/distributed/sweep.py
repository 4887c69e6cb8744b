"""Seed and grid sweeps on Ray: every trial a normal :func:`drlzero.train` run.

``drlzero sweep cartpole-dqn --seeds 1,2,3 --grid dqn.lr=0.001,0.002`` runs 2 settings x 3 seeds
as plain Ray tasks (1 CPU and 1 torch thread each), one run directory per trial under the sweep
directory, and writes ``summary.csv`` / ``summary.json`` (mean and std over seeds of the final
greedy evaluation per setting) and ``curves.png`` (mean evaluation curve per setting with a
±1 std band).

Plain tasks rather than Ray Tune: each trial must write drlzero's own run directory through
``drlzero.train`` (config.yaml, checkpoints, eval.json...), which Tune's trial directories,
reporting and result objects would only duplicate; a task is one call and one return value.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from drlzero.checks import make_out_dir
from drlzero.config import load_config
from drlzero.distributed import init_ray, require_ray
from drlzero.errors import ConfigError, UserError


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``, with a one-line error for anything else."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r} must be comma-separated integers, e.g. 1,2,3") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UserError(f"--seeds {text!r} must list distinct integers >= 0, e.g. 1,2,3")
    return seeds


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["dqn.lr=0.001,0.002"]`` -> ``{"dqn.lr": ["0.001", "0.002"]}`` (values stay YAML text;
    the config parses and checks them)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise UserError(f"--grid {item!r} must look like section.key=v1,v2")
        if key.strip() in grid:
            raise UserError(f"--grid names {key.strip()!r} twice; give all its values at once")
        grid[key.strip()] = vals
    return grid


def _settings(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _label(setting: dict[str, str]) -> str:
    """A readable, file-name-safe name of a setting (``dqn.lr=0.001`` -> ``lr-0.001``)."""
    if not setting:
        return "default"
    parts = [f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in setting.items()]
    return "_".join(parts).replace("/", "-").replace(" ", "")


def _run_trial(preset: str, overrides: list[str], out: str) -> dict[str, Any]:
    """One trial inside a Ray worker: a normal training run, one torch thread."""
    import torch

    from drlzero.api import train

    torch.set_num_threads(1)
    return train(preset, out=out, overrides=overrides).to_dict()


def sweep(
    preset: str,
    *,
    seeds: list[int],
    grid: dict[str, list[str]] | None = None,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Train every (setting, seed) in parallel on Ray and summarise the final evaluations.

    Args:
        preset: a preset name or YAML file, as for ``drlzero train``.
        seeds: one trial per seed and setting.
        grid: config key -> values (YAML text); the settings are their product.
        overrides: ``section.key=value`` applied to every trial.
        out: the sweep directory (default ``runs/sweep-<name>-<time>``).
        ray_address: join this Ray cluster; None starts a local Ray.

    Returns:
        ``{"sweep_dir", "settings": [{"setting", "label", "mean_return", "std_return", ...}]}``,
        also written to ``summary.json``.

    Example:
        >>> grid = {"dqn.lr": ["0.001", "0.002"]}
        >>> sweep("cartpole-dqn", seeds=[1, 2], grid=grid)  # doctest: +SKIP
    """
    grid = grid or {}
    base = [*(overrides or []), "train.progress=false"]
    settings = _settings(grid)
    # Validate every trial's config here: a typo fails in one line, before Ray starts.
    name = "custom"
    for setting in settings:
        cfg = load_config(preset, overrides=[*base, *(f"{k}={v}" for k, v in setting.items())])
        name = cfg.name
        if cfg.distributed.mode != "none":
            raise ConfigError("sweep trials run in one process each; set distributed.mode=none")
    sweep_dir = (
        Path(out)
        if out is not None
        else Path("runs") / (f"sweep-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    if (sweep_dir / "summary.json").exists():
        raise UserError(f"{sweep_dir} already holds a sweep; choose another --out")
    make_out_dir(sweep_dir)

    ray = require_ray()
    started = init_ray(ray_address)
    try:
        task = ray.remote(num_cpus=1)(_run_trial)
        trials: list[tuple[dict[str, str], int, Path, Any]] = []
        for setting in settings:
            for seed in seeds:
                run_dir = (sweep_dir / f"{_label(setting)}-s{seed}").resolve()
                trial_over = [
                    *base,
                    *(f"{k}={v}" for k, v in setting.items()),
                    f"train.seed={seed}",
                ]
                trials.append(
                    (setting, seed, run_dir, task.remote(preset, trial_over, str(run_dir)))
                )
        results = ray.get([ref for *_, ref in trials])
    finally:
        if started:
            ray.shutdown()

    rows: list[dict[str, Any]] = []
    for setting in settings:
        mine = [
            (seed, run_dir, res)
            for (s, seed, run_dir, _), res in zip(trials, results, strict=True)
            if s == setting
        ]
        finals = [float(res["final_eval"]["mean_return"]) for *_, res in mine]
        rows.append(
            {
                "label": _label(setting),
                "setting": setting,
                "seeds": [seed for seed, *_ in mine],
                "final_returns": finals,
                "mean_return": float(np.mean(finals)),
                "std_return": float(np.std(finals)),
                "run_dirs": [str(run_dir) for _, run_dir, _ in mine],
            }
        )
    summary = {"sweep_dir": str(sweep_dir), "preset": preset, "settings": rows}
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*grid, "label", "seeds", "mean_return", "std_return"])
        for row in rows:
            w.writerow(
                [
                    *(row["setting"][k] for k in grid),
                    row["label"],
                    len(row["seeds"]),
                    f"{row['mean_return']:.6g}",
                    f"{row['std_return']:.6g}",
                ]
            )
    plot_curves(rows, sweep_dir / "curves.png", title=f"{name}: {len(seeds)} seeds per setting")
    return summary


def _eval_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    steps, values = [], []
    with (run_dir / "metrics.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if r.get("eval_return_mean"):
                steps.append(int(float(r["step"])))
                values.append(float(r["eval_return_mean"]))
    return np.asarray(steps), np.asarray(values)


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Mean greedy-eval curve per setting with a ±1 std band over seeds.

    Runs that stopped early (``train.stop_return``) keep their last evaluation to the end of the
    longest run, so a solved seed does not drop out of the mean.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for row in rows:
        curves = [_eval_curve(Path(d)) for d in row["run_dirs"]]
        curves = [(s, v) for s, v in curves if len(s)]
        if not curves:
            continue
        grid = np.unique(np.concatenate([s for s, _ in curves]))
        # step-wise hold: the value of the last evaluation at or before each grid step
        ys = np.stack(
            [v[np.clip(np.searchsorted(s, grid, side="right") - 1, 0, None)] for s, v in curves]
        )
        mean, std = ys.mean(axis=0), ys.std(axis=0)
        line = ax.plot(grid, mean, lw=1.6, label=f"{row['label']} (n={len(curves)})")[0]
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy eval return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(not math.isnan(r["mean_return"]) for r in rows):
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
