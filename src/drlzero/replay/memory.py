"""The replay memory the training loop talks to: storage + optional n-step + optional priorities.

Composition, not inheritance: a :class:`~drlzero.replay.storage.ReplayStorage` holds the
transitions, an :class:`NStepAccumulator` (n > 1) turns env steps into n-step transitions
before they are stored, and a :class:`PrioritizedSampler` (if asked for) chooses which stored
indices to replay.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from drlzero.config import DQNConfig, ReplayConfig
from drlzero.replay.nstep import NStepAccumulator
from drlzero.replay.prioritized import PrioritizedSampler
from drlzero.replay.storage import Batch, ReplayStorage


class Replay:
    """Replay for the DQN family.

    Args:
        storage: the transition storage.
        cfg: ``n_step`` and ``gamma``.
        replay: the prioritized-replay settings.
        num_envs: parallel envs feeding it (n-step windows are per env).
        total_steps: env steps of the run (importance exponent beta reaches 1 at the end).
        seed: seed of the prioritized sampler.
    """

    def __init__(
        self,
        storage: ReplayStorage,
        cfg: DQNConfig,
        replay: ReplayConfig,
        *,
        num_envs: int,
        total_steps: int,
        seed: int,
    ) -> None:
        self.storage = storage
        self.gamma = cfg.gamma
        self.nstep = (
            NStepAccumulator(
                cfg.n_step, cfg.gamma, num_envs, storage.obs.shape[1:], storage.obs.dtype
            )
            if cfg.n_step > 1
            else None
        )
        self.per = (
            PrioritizedSampler(
                storage.capacity,
                alpha=replay.alpha,
                beta_start=replay.beta,
                beta_end=1.0,
                beta_steps=total_steps,
                eps=replay.eps,
                seed=seed,
            )
            if replay.prioritized
            else None
        )
        self._all = np.arange(storage.capacity)

    def __len__(self) -> int:
        return len(self.storage)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_mask: np.ndarray | None = None,
    ) -> None:
        """One vector-env step; ``next_obs`` holds the true final observation at episode ends
        and ``next_mask`` (with action masks) the mask of each next state."""
        if self.nstep is None:
            where = self.storage.add(
                obs, actions, rewards, next_obs, terminated, self.gamma, next_mask
            )
        else:
            tr = self.nstep.push(obs, actions, rewards, next_obs, terminated, truncated, next_mask)
            if len(tr.actions) == 0:
                return
            where = self.storage.add(
                tr.obs,
                tr.actions,
                tr.returns,
                tr.next_obs,
                tr.terminated,
                tr.discount,
                tr.next_mask,
            )
        if self.per is not None:
            self.per.on_add(self._all[where])

    def sample(
        self, batch_size: int, step: int
    ) -> tuple[Batch, np.ndarray | None, torch.Tensor | None]:
        """A batch, its storage indices and importance weights (None, None when uniform)."""
        if self.per is None:
            return self.storage.sample(batch_size), None, None
        idx, weights = self.per.sample(batch_size, len(self.storage), step)
        w = torch.from_numpy(weights).to(self.storage.device, non_blocking=True)
        return self.storage.gather(idx), idx, w

    def update_priorities(self, idx: np.ndarray | None, priorities: torch.Tensor) -> None:
        if self.per is not None and idx is not None:
            self.per.update_priorities(idx, priorities.detach().float().cpu().numpy())

    # -- checkpointing ------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = self.storage.state_tensors()
        for prefix, part in (("nstep", self.nstep), ("per", self.per)):
            if part is not None:
                arrays, _ = part.state()
                out.update(
                    {f"{prefix}.{k}": torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
                )
        return out

    def state_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = dict(self.storage.state_meta())
        for prefix, part in (("nstep", self.nstep), ("per", self.per)):
            if part is not None:
                meta[prefix] = part.state()[1]
        return meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.storage.load_state(tensors, meta)
        for prefix, part in (("nstep", self.nstep), ("per", self.per)):
            if part is not None:
                arrays = {
                    k[len(prefix) + 1 :]: v.numpy()
                    for k, v in tensors.items()
                    if k.startswith(prefix + ".")
                }
                part.load_state(arrays, meta[prefix])
