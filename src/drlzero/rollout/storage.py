"""Rollout storage for on-policy learning: T vector steps of E envs, then GAE, then minibatches.

Stored per step t: the observation the policy acted on, the (unclipped) action, its log-prob,
V(s_t), the reward, ``terminated`` and ``ended`` (terminated or truncated) flags, V of the true
final observation where an episode ended (``final_values``), and the action mask if the env
gives one. :meth:`RolloutBuffer.finish` builds V(s'_t) — the next stored value, the final value
where an episode ended at t, the bootstrap value after the last step — and runs
:func:`drlzero.algos.ppo.gae`.

Shape legend: T steps, E envs, A actions.
"""

from __future__ import annotations

import numpy as np
import torch

from drlzero.algos.ppo import Minibatch, gae


class RolloutBuffer:
    """Preallocated tensors for one rollout.

    Args:
        n_steps: T, vector steps per rollout.
        num_envs: E.
        obs_shape: one stored observation's shape; ``obs_dtype`` its NumPy dtype.
        action_shape: one action's shape (``()`` for Discrete); ``action_dtype`` its dtype.
        num_actions: A for a mask, or None when the env gives none.
        device: where the tensors live (the learner's device).
    """

    def __init__(
        self,
        n_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        *,
        num_actions: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        T, E = n_steps, num_envs
        self.T, self.E = T, E
        dev = torch.device(device)
        self.device = dev
        self.obs = torch.zeros(
            (T, E, *obs_shape), dtype=torch.from_numpy(np.zeros(0, obs_dtype)).dtype, device=dev
        )
        self.actions = torch.zeros((T, E, *action_shape), dtype=action_dtype, device=dev)
        f32 = {"dtype": torch.float32, "device": dev}
        self.logp = torch.zeros((T, E), **f32)
        self.values = torch.zeros((T, E), **f32)
        self.rewards = torch.zeros((T, E), **f32)
        self.final_values = torch.zeros((T, E), **f32)
        self.terminated = torch.zeros((T, E), dtype=torch.bool, device=dev)
        self.ended = torch.zeros((T, E), dtype=torch.bool, device=dev)
        self.masks = (
            None
            if num_actions is None
            else torch.ones((T, E, num_actions), dtype=torch.bool, device=dev)
        )
        self.advantages = torch.zeros((T, E), **f32)
        self.returns = torch.zeros((T, E), **f32)
        self.t = 0

    def _put(self, dst: torch.Tensor, src: np.ndarray) -> None:
        dst[self.t] = torch.as_tensor(np.asarray(src), device=self.device).to(dst.dtype)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        logp: np.ndarray,
        values: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        ended: np.ndarray,
        final_values: np.ndarray,
        mask_EA: np.ndarray | None = None,
    ) -> None:
        """Store one vector step (all arrays lead with E)."""
        for dst, src in (
            (self.obs, obs),
            (self.actions, actions),
            (self.logp, logp),
            (self.values, values),
            (self.rewards, rewards),
            (self.terminated, terminated),
            (self.ended, ended),
            (self.final_values, final_values),
        ):
            self._put(dst, src)
        if self.masks is not None:
            self._put(
                self.masks, np.ones(self.masks.shape[1:], bool) if mask_EA is None else mask_EA
            )
        self.t += 1

    @property
    def full(self) -> bool:
        return self.t == self.T

    def finish(self, last_values_E: np.ndarray, gamma: float, lam: float) -> None:
        """Advantages and returns once the rollout is full; ``last_values_E`` = V(s_T)."""
        last = torch.as_tensor(np.asarray(last_values_E), dtype=torch.float32, device=self.device)
        following = torch.cat([self.values[1:], last[None]], dim=0)  # V(s_{t+1}) as stored
        next_values = torch.where(self.ended, self.final_values, following)
        self.advantages, self.returns = gae(
            self.rewards, self.values, next_values, self.terminated, self.ended, gamma, lam
        )

    def epoch(self, num_minibatches: int) -> list[Minibatch]:
        """One shuffled pass: ``num_minibatches`` minibatches of T*E/num_minibatches samples
        (the permutation draws from torch's global RNG, which checkpoints save)."""
        n = self.T * self.E
        size = n // num_minibatches
        perm = torch.randperm(n).to(self.device)
        flat = self._flat()
        return [
            Minibatch(*(None if x is None else x[perm[i : i + size]] for x in flat))
            for i in range(0, size * num_minibatches, size)
        ]

    def _flat(self) -> tuple[torch.Tensor | None, ...]:
        n = self.T * self.E

        def f(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n, *x.shape[2:])

        return (
            f(self.obs),
            f(self.actions),
            f(self.logp),
            f(self.values),
            f(self.advantages),
            f(self.returns),
            None if self.masks is None else f(self.masks),
        )

    def reset(self) -> None:
        self.t = 0
