"""Replay memory: preallocated storage, a uniform sampler and a typed sample record.

Storage is NumPy (cheap single-row writes from the env loop) with zero-copy torch views (cheap
batched gathers for the learner). ``next_obs`` is stored explicitly, so a transition that ends an
episode keeps its true final observation under vector-env autoreset, and ``terminated`` alone
decides bootstrapping: a time-limit truncation is stored with ``terminated=0`` and bootstraps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A sampled minibatch (B = batch). Tensors live on the learner's device."""

    obs: torch.Tensor  # (B, *obs_shape)
    actions: torch.Tensor  # (B,) int64, or (B, A) float32 for Box actions
    rewards: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, *obs_shape)
    terminated: torch.Tensor  # (B,) float32, 1.0 where the episode truly ended
    discounts: torch.Tensor | None = None  # (B,) gamma^m for n-step samples (m rewards summed)
    next_mask: torch.Tensor | None = None  # (B, A) bool: next state's allowed actions (masks on)
    weights: torch.Tensor | None = None  # (B,) float32 importance weights (prioritized replay)


class ReplayStorage:
    """A ring buffer of transitions with uniform sampling.

    Args:
        capacity: transitions kept; the oldest are overwritten.
        obs_shape: shape of one observation.
        obs_dtype: NumPy dtype of observations (uint8 images stay uint8: 4x less memory).
        device: where sampled batches are delivered.
        seed: seed of the sampler's own generator (saved in checkpoints for exact resume).
        num_actions: with action masks, A: each transition also keeps its next state's mask
            (the targets' max ranges over it); None stores no masks.
        action_shape: shape of one action: ``()`` for a Discrete index, ``(A,)`` for a Box.
        action_dtype: int64 indices (DQN) or float32 vectors (SAC).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type = np.float32,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        num_actions: int | None = None,
        action_shape: tuple[int, ...] = (),
        action_dtype: np.dtype | type = np.int64,
    ) -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.next_masks = (
            None if num_actions is None else np.ones((capacity, num_actions), dtype=bool)
        )
        self._views = [torch.from_numpy(a) for a in self._arrays()]
        self.pos = 0
        self.size = 0
        self.generator = torch.Generator().manual_seed(seed)

    def _arrays(self) -> list[np.ndarray]:
        """The stored arrays in :class:`Batch` field order (next masks only when kept)."""
        arrays = [
            self.obs,
            self.actions,
            self.rewards,
            self.next_obs,
            self.terminated,
            self.discounts,
        ]
        return arrays if self.next_masks is None else [*arrays, self.next_masks]

    def _names(self) -> list[str]:
        names = ["obs", "actions", "rewards", "next_obs", "terminated", "discounts"]
        return names if self.next_masks is None else [*names, "next_masks"]

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        discounts: np.ndarray | float = 0.0,
        next_mask: np.ndarray | None = None,
    ) -> slice | np.ndarray:
        """Add a batch of transitions (one per parallel env, or the n-step windows that closed).

        ``discounts`` is ``gamma^m`` per n-step sample; one-step learners ignore it.
        ``next_mask`` (``(n, A)``) is each next state's action mask, kept when the buffer
        stores masks (None there: every action allowed).
        Returns where they were written (for a prioritized sampler).
        """
        n = len(actions)
        idx = (self.pos + np.arange(n)) % self.capacity if self.pos + n > self.capacity else None
        where = idx if idx is not None else slice(self.pos, self.pos + n)
        self.obs[where] = obs
        self.actions[where] = actions
        self.rewards[where] = rewards
        self.next_obs[where] = next_obs
        self.terminated[where] = terminated
        self.discounts[where] = discounts
        if self.next_masks is not None:
            self.next_masks[where] = True if next_mask is None else next_mask
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return where

    def sample(self, batch_size: int) -> Batch:
        """A uniform minibatch (with replacement) of ``batch_size`` transitions."""
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator)
        return self.gather(idx)

    def gather(self, idx: torch.Tensor | np.ndarray) -> Batch:
        """The transitions at ``idx`` (e.g. chosen by a prioritized sampler)."""
        idx_t = torch.as_tensor(idx)
        # index_select costs ~40% of advanced indexing (v[idx]) for these small gathers
        if self.device.type == "cpu":
            return Batch(*(v.index_select(0, idx_t) for v in self._views))
        return Batch(
            *(v.index_select(0, idx_t).to(self.device, non_blocking=True) for v in self._views)
        )

    # -- checkpointing: plain arrays, never pickle --------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        n = self.size
        out = {
            f"buffer.{k}": torch.from_numpy(np.ascontiguousarray(a[:n]))
            for k, a in zip(self._names(), self._arrays(), strict=True)
        }
        out["buffer.generator"] = self.generator.get_state()
        return out

    def state_meta(self) -> dict[str, int]:
        return {"pos": self.pos, "size": self.size, "capacity": self.capacity}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, int]) -> None:
        n = meta["size"]
        for k, a in zip(self._names(), self._arrays(), strict=True):
            a[:n] = tensors[f"buffer.{k}"].numpy()
        self.pos, self.size = meta["pos"], n
        self.generator.set_state(tensors["buffer.generator"])
