"""Ape-X's replay shard: prioritized storage that actors write to and the learner samples from
(a plain object here; the learner runs each shard as a Ray actor)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from drlzero.config import ReplayConfig
from drlzero.replay import PrioritizedSampler
from drlzero.replay.storage import ReplayStorage


class Transitions(NamedTuple):
    """n-step transitions an actor sends to replay (K of them), with their priorities."""

    obs: np.ndarray  # (K, *obs_shape)
    actions: np.ndarray  # (K,) int64
    returns: np.ndarray  # (K,) float32, discounted n-step reward sums
    next_obs: np.ndarray  # (K, *obs_shape)
    terminated: np.ndarray  # (K,) float32
    discounts: np.ndarray  # (K,) float32, gamma^m
    priorities: np.ndarray  # (K,) float32, |TD error| under the actor's network


class ReplayShard:
    """Prioritized replay storage for Ape-X: a :class:`ReplayStorage` and a
    :class:`PrioritizedSampler` (a plain object; run as a Ray actor by the learner).

    Transitions arrive with their priorities (no max-priority default is needed). Priorities the
    learner sends back for indices overwritten in the meantime land on the new transitions; as
    in Ape-X this is accepted (the replay is much larger than the sample-update delay).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        replay: ReplayConfig,
        *,
        total_steps: int,
        seed: int,
    ) -> None:
        torch.set_num_threads(1)
        self.storage = ReplayStorage(capacity, obs_shape, obs_dtype, seed=seed)
        self.per = PrioritizedSampler(
            capacity,
            alpha=replay.alpha,
            beta_start=replay.beta,
            beta_end=1.0,
            beta_steps=total_steps,
            eps=replay.eps,
            seed=seed + 1,
        )
        self._all = np.arange(capacity)
        self.calls = {"add": 0, "sample": 0, "update_priorities": 0}
        self.added = 0
        # chunk id -> transitions stored: lets the learner tell, after an actor died, whether
        # the chunk it was reporting reached replay anyway (8 bytes or so per chunk of a run).
        self.chunks: dict[int, int] = {}

    def add(self, tr: Transitions, chunk: int = -1) -> int:
        """Store a chunk with its priorities; returns the number stored now."""
        self.calls["add"] += 1
        where = self.storage.add(
            tr.obs, tr.actions, tr.returns, tr.next_obs, tr.terminated, tr.discounts
        )
        self.per.update_priorities(self._all[where], tr.priorities)
        self.added += len(tr.actions)
        if chunk >= 0:
            self.chunks[chunk] = len(tr.actions)
        return len(self.storage)

    def delivered(self, chunks: list[int]) -> dict[int, int]:
        """Of ``chunks``, those stored here, with their numbers of transitions."""
        return {c: self.chunks[c] for c in chunks if c in self.chunks}

    def sample(self, batch_size: int, step: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """``(arrays, indices_B, weights_B)``, proportional to priority; ``arrays`` are the
        fields of a :class:`Batch` as NumPy (Ray ships NumPy without copies; a pickled torch
        tensor costs ~5x the sampling itself)."""
        self.calls["sample"] += 1
        idx, weights = self.per.sample(batch_size, len(self.storage), step)
        st = self.storage
        fields = (st.obs, st.actions, st.rewards, st.next_obs, st.terminated, st.discounts)
        return [a[idx] for a in fields], idx, weights

    def update_priorities(self, idx: np.ndarray, td: np.ndarray) -> None:
        self.calls["update_priorities"] += 1
        self.per.update_priorities(idx, td)

    def size(self) -> int:
        return len(self.storage)

    def stats(self) -> dict[str, Any]:
        return {"size": len(self.storage), "added": self.added, "calls": dict(self.calls)}

    # -- checkpointing: tensors + JSON-able meta (the learner writes them with safetensors) --
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = self.storage.state_tensors()
        arrays, per_meta = self.per.state()
        tensors["per.priorities"] = torch.from_numpy(arrays["priorities"])
        meta = {"storage": self.storage.state_meta(), "per": per_meta, "added": self.added}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.storage.load_state(tensors, meta["storage"])
        self.per.load_state({"priorities": tensors["per.priorities"].numpy()}, meta["per"])
        self.added = int(meta["added"])
