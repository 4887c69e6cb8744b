"""Experiment tracking: the run's scalars, config and media mirrored to Weights & Biases.

``train.wandb=true`` (extra ``drlzero[track]``) logs what TensorBoard gets, under the same names
(``rollout/episode_return`` and ``rollout/episode_length`` per episode, ``train/<column>`` per
metrics row), against the env step (the ``env_step`` metric, so a resumed run continues its
curves), plus the whole config and, when the run ends, ``learning_curve.png`` and any GIF in the
run directory (``drlzero record`` writes ``episodes.gif``; training itself records no video).

Mode: ``WANDB_MODE`` when set (``offline``, ``online``, ``disabled``); otherwise online only if
``WANDB_API_KEY`` is set, else offline, so a run never needs the network. Offline runs land in
``RUN_DIR/wandb/offline-run-*`` (``wandb sync`` uploads them later). The W&B run id is kept in
``RUN_DIR/wandb_id.txt``: ``--resume`` continues the same W&B run.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from drlzero.config import Config
from drlzero.errors import UserError


class Tracker(Protocol):
    """Receives what the run logger writes; ``finish`` once when the run closes."""

    def log(self, step: int, scalars: dict[str, float]) -> None: ...

    def finish(self, run_dir: Path) -> None: ...


def require_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise UserError(
            "train.wandb=true needs Weights & Biases: pip install 'drlzero[track]'"
        ) from None
    return wandb


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else ``online`` with an API key in the environment, else
    ``offline``."""
    mode = os.environ.get("WANDB_MODE", "").strip()
    if mode:
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbTracker:
    """One W&B run per drlzero run directory (see the module docstring)."""

    def __init__(self, cfg: Config, run_dir: Path, *, resume: bool) -> None:
        wandb = require_wandb()
        self._wandb = wandb
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else None
        run_id = run_id or secrets.token_hex(4)  # W&B ids: lowercase letters and digits
        self.run = wandb.init(
            project=cfg.train.wandb_project,
            name=run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=cfg.to_dict(),
            mode=wandb_mode(),
            settings=wandb.Settings(silent=True, console="off"),
        )
        id_file.write_text(run_id + "\n")
        # every key is plotted against the env step, not W&B's own call counter
        self.run.define_metric("env_step")
        self.run.define_metric("*", step_metric="env_step")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log({"env_step": step, **scalars})

    def finish(self, run_dir: Path) -> None:
        media: dict[str, Any] = {}
        curve = run_dir / "learning_curve.png"
        if curve.is_file():
            media["media/learning_curve"] = self._wandb.Image(str(curve))
        for gif in sorted(run_dir.glob("*.gif")):
            media[f"media/{gif.stem}"] = self._wandb.Video(str(gif), format="gif")
        if media:
            self.run.log(media)
        self.run.finish()


def make_trackers(cfg: Config, run_dir: Path, *, resume: bool) -> list[Tracker]:
    """The trackers ``cfg.train`` asks for (none by default)."""
    return [WandbTracker(cfg, run_dir, resume=resume)] if cfg.train.wandb else []
