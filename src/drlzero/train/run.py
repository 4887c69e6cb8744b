"""The run directory: where it is, what it holds, and the pieces every training loop shares.

Contract (other tools read it):
  config.yaml, metrics.csv, episodes.csv, TensorBoard events (events.out.tfevents.*),
  checkpoints/{last,best}.{safetensors,json}, eval.json, learning_curve.png.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drlzero.config import Config, read_config, save_config
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
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def resume_config(run_dir: Path, total_steps: int | None = None) -> Config:
    """The saved config of a run to resume, with an optionally larger step budget."""
    if not (run_dir / "checkpoints" / "last.json").is_file():
        raise CheckpointError(
            f"cannot resume {run_dir}: no checkpoints/last.json there; "
            "pass the run directory that 'drlzero train' created"
        )
    cfg = read_config(run_dir / "config.yaml")
    if total_steps is not None:
        cfg.train.total_steps = total_steps
        save_config(cfg, run_dir / "config.yaml")
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
