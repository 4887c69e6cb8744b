"""A trained run's Q-function, rebuilt from its run directory for acting and labelling.

:func:`drlzero.load_agent` gives a greedy ``act``; collection and distillation also need the
Q-values themselves and the network (to count parameters and time it), which this returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drlzero.checks import check_checkpoint_config, read_run_config
from drlzero.config import TABULAR_ALGOS, Config
from drlzero.errors import CheckpointError, UserError
from drlzero.train.checkpoint import load_checkpoint, load_module


@dataclass
class QRun:
    """A run's Q-function: ``q_values(obs_B) -> q_BA`` (NumPy, float32).

    Attributes:
        config: the run's saved config.
        run_dir: where it came from.
        checkpoint: ``best`` or ``last``, the one loaded.
        q_net: the Q-network (None for a tabular run).
        prep: the encoder's env-boundary step (``np.asarray`` for plain encoders).
        q_table: the Q table of a tabular run.
    """

    config: Config
    run_dir: Path
    checkpoint: str
    q_net: nn.Module | None
    prep: Callable[[Any], np.ndarray]
    q_table: np.ndarray | None = None
    device: torch.device = torch.device("cpu")

    @torch.inference_mode()
    def q_values(self, obs: Any) -> np.ndarray:
        if self.q_table is not None:
            return self.q_table[np.asarray(obs, dtype=np.int64)].astype(np.float32)
        assert self.q_net is not None
        obs_t = torch.from_numpy(np.asarray(self.prep(obs))).to(self.device)
        return self.q_net(obs_t).float().cpu().numpy()

    def greedy(self, obs: Any) -> np.ndarray:
        return self.q_values(obs).argmax(axis=1)

    @property
    def num_params(self) -> int:
        if self.q_net is None:
            return 0 if self.q_table is None else int(self.q_table.size)
        return sum(p.numel() for p in self.q_net.parameters())


def load_q_run(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> QRun:
    """Load a run's Q-function (``best`` falls back to ``last`` if the run never evaluated)."""
    run = Path(run_dir)
    if checkpoint not in ("best", "last"):
        raise UserError(f"checkpoint {checkpoint!r} must be 'best' or 'last'")
    cfg = read_run_config(run)
    if cfg.algo == "ppo":
        raise UserError(
            f"{run} is a PPO run: distill and collect --policy read Q-value runs (DQN, tabular);"
            " pass one of those"
        )
    folder = run / "checkpoints"
    if checkpoint == "best" and not (folder / "best.json").is_file():
        checkpoint = "last"
    tensors, meta = load_checkpoint(folder, checkpoint, "cpu")
    check_checkpoint_config(cfg, meta, folder / f"{checkpoint}.json")
    if cfg.algo in TABULAR_ALGOS:
        if "q_table" not in tensors:
            raise CheckpointError(f"{folder}/{checkpoint} holds no Q table; is config.yaml right?")
        return QRun(cfg, run, checkpoint, None, np.asarray, tensors["q_table"].numpy())

    from drlzero.encoders import env_boundary
    from drlzero.envs import make_env
    from drlzero.nets import build_q_network
    from drlzero.utils import pick_device

    env = make_env(cfg.env)
    q_net = build_q_network(cfg, env.observation_space, env.action_space)
    env.close()
    load_module("q", q_net, tensors)
    dev = pick_device(device)
    q_net.to(dev).eval()
    return QRun(cfg, run, checkpoint, q_net, env_boundary(q_net.encoder), device=dev)
