"""The run directory: where it is, what it holds, and the pieces every training loop shares.

Contract (other tools read it):
  config.yaml, metrics.csv, episodes.csv, TensorBoard events (events.out.tfevents.*),
  checkpoints/{last,best}.{safetensors,json}, eval.json, learning_curve.png.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drlzero.checks import check_checkpoint_config, make_out_dir, read_run_config
from drlzero.config import Config, save_config
from drlzero.errors import CheckpointError, UserError


@dataclass
class TrainResult:
    """What :func:`drlzero.train` returns."""

    run_dir: Path
    steps: int
    final_eval: dict[str, float]
    best_eval_return: float
    solved_at_step: int | None = None
    eval_history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0  # the whole run: training loop, final eval, checkpoint, plot
    loop_time_s: float | None = None  # the training loop alone (what throughput is taken over)


def new_run_dir(cfg: Config, out: str | Path | None) -> Path:
    """Create the run directory (``out``, or ``runs/<name>-s<seed>-<time>``) and save the config.

    Refuses a folder that already holds a run (it would be overwritten) and a path that cannot be
    a folder, before anything is written.
    """
    if out is not None:
        run_dir = Path(out)
        if (run_dir / "checkpoints").exists():
            raise UserError(
                f"{run_dir} already holds a run; use --resume {run_dir} to continue it, "
                "or choose another --out"
            )
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{cfg.name}-s{cfg.train.seed}-{stamp}"
    make_out_dir(run_dir, "--out")
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def _last_meta(run_dir: Path) -> dict[str, Any] | None:
    """The JSON of the ``last`` checkpoint (or of the pair an unfinished save left), or None
    when neither parses (the loader then reports it)."""
    folder = run_dir / "checkpoints"
    for name in ("last.json", "last.prev.json"):
        try:
            meta = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            return meta
    return None


def resume_config(
    run_dir: Path,
    total_steps: int | None = None,
    *,
    check: Callable[[Config], None] | None = None,
) -> Config:
    """The saved config of a run to resume, with an optionally larger step budget.

    Checks, before anything is written, that the run's checkpoint belongs to its config.yaml,
    that the budget leaves steps to train and whatever ``check`` (the caller's own test of the
    config, e.g. a preset that must be the run's) raises; only then is a new budget saved.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(
            f"cannot resume {run_dir}: no such run directory; "
            "pass the run directory that 'drlzero train' created"
        )
    if not (run_dir / "checkpoints" / "last.json").is_file():
        raise CheckpointError(
            f"cannot resume {run_dir}: no checkpoints/last.json there; "
            "pass the run directory that 'drlzero train' created"
        )
    cfg = read_run_config(run_dir)
    meta = _last_meta(run_dir)
    if meta is not None:
        check_checkpoint_config(cfg, meta, run_dir / "checkpoints" / "last.json")
        done = meta.get("step")
        if isinstance(done, int):
            if total_steps is None and done >= cfg.train.total_steps:
                raise UserError(
                    f"run {run_dir} has done all its {cfg.train.total_steps} steps; "
                    f"pass --total-steps N (more than {done}) to train it further"
                )
            if total_steps is not None and total_steps <= done:
                raise UserError(
                    f"--total-steps {total_steps} is not more than the {done} steps run "
                    f"{run_dir} has done; pass a larger --total-steps to continue it"
                )
    if check is not None:
        check(cfg)
    if total_steps is not None:
        cfg.train.total_steps = total_steps
        cfg.validate()
        # a temporary file and a rename: a crash never leaves the run a cut-short config.yaml
        tmp = run_dir / ".config.yaml.tmp"
        save_config(cfg, tmp)
        os.replace(tmp, run_dir / "config.yaml")
    return cfg


def json_safe(obj: Any) -> Any:
    """NaN -> None, NumPy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_eval_json(run_dir: Path, result: dict[str, Any]) -> None:
    (run_dir / "eval.json").write_text(json.dumps(json_safe(result), indent=1) + "\n")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
