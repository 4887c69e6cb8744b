"""N-step returns for parallel envs (Sutton 1988; used by Rainbow, Hessel et al. 2018).

An :class:`NStepAccumulator` sits between the vector env and the replay storage. Fed one vector
step at a time, it returns the transitions whose n-step window has closed:

    returns  = sum_{k<m} gamma^k r_{t+k}        (m <= n rewards)
    discount = gamma^m
    target   = returns + discount * (1 - terminated) * V(next_obs)

A window closes after n steps, or early when its episode ends. At an episode end (terminated or
truncated) every pending window of that env is flushed with ``next_obs`` = the true final
observation; ``terminated`` is copied from the env, so a time-limit truncation keeps bootstrapping
from the final observation. Envs are independent. With ``n = 1`` the output is exactly the
one-step transition with ``discount = gamma``.

Shape legend: E envs, K emitted transitions.

Example:
    >>> import numpy as np
    >>> acc = NStepAccumulator(2, 0.5, num_envs=1, obs_shape=(1,))
    >>> z, o = np.zeros(1, bool), np.ones(1, np.float32)
    >>> len(acc.push(0 * o[:, None], np.zeros(1, int), o, 1 * o[:, None], z, z).returns)
    0
    >>> acc.push(1 * o[:, None], np.zeros(1, int), o, 2 * o[:, None], z, z).returns
    array([1.5], dtype=float32)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class NStepTransitions(NamedTuple):
    """Finished n-step transitions (K of them), ready for the replay storage."""

    obs: np.ndarray  # (K, *obs_shape) the observation at the start of the window
    actions: np.ndarray  # (K,) int64, the action taken there
    returns: np.ndarray  # (K,) float32, discounted sum of the m rewards of the window
    next_obs: np.ndarray  # (K, *obs_shape) the observation after the m-th reward
    terminated: np.ndarray  # (K,) float32, 1.0 only if the episode truly terminated in the window
    discount: np.ndarray  # (K,) float32, gamma^m
    next_mask: np.ndarray | None = None  # (K, A) bool, next_obs's action mask (masks on)


class NStepAccumulator:
    """Turns a stream of vector-env steps into n-step transitions.

    Pending windows live in per-env rings of n slots that share one write pointer (every push
    advances every env by one step); each slot carries its running return and discount, so a
    push costs O(E * n) array work and no per-step Python loop over envs.

    Args:
        n: number of steps in a window (n >= 1).
        gamma: discount factor per step.
        num_envs: E, the number of parallel envs.
        obs_shape: shape of one observation.
        obs_dtype: NumPy dtype of observations.
    """

    def __init__(
        self,
        n: int,
        gamma: float,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type = np.float32,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.gamma = gamma
        self.num_envs = num_envs
        self._obs_ES = np.zeros((num_envs, n, *obs_shape), dtype=obs_dtype)
        self._actions_ES = np.zeros((num_envs, n), dtype=np.int64)
        self._returns_ES = np.zeros((num_envs, n), dtype=np.float64)
        self._discount_ES = np.ones((num_envs, n), dtype=np.float64)
        self._pending_E = np.zeros(num_envs, dtype=np.int64)  # open windows per env, <= n - 1
        self._ptr = 0  # the slot the next push writes

    def push(
        self,
        obs_E: np.ndarray,
        actions_E: np.ndarray,
        rewards_E: np.ndarray,
        next_obs_E: np.ndarray,
        terminated_E: np.ndarray,
        truncated_E: np.ndarray,
        next_mask_EA: np.ndarray | None = None,
    ) -> NStepTransitions:
        """Add one vector step and return the transitions it completes.

        Args:
            obs_E: observations the actions were taken in.
            actions_E: actions taken.
            rewards_E: rewards received.
            next_obs_E: next observations; at an episode end, the TRUE final observation (not
                the reset observation of a vector-env autoreset).
            terminated_E: the episode reached a terminal state.
            truncated_E: the episode was cut (time limit); bootstraps, unlike termination.
            next_mask_EA: the action mask of each next observation (None: no masks).

        Returns:
            The completed transitions, env by env, oldest window first within an env.
        """
        n, ptr = self.n, self._ptr
        rewards_E = np.asarray(rewards_E, dtype=np.float64)
        terminated_E = np.asarray(terminated_E, dtype=bool)
        done_E = terminated_E | np.asarray(truncated_E, dtype=bool)
        # age of each slot's window after this push: 0 for the one opening now, n-1 the oldest
        age_S = (ptr - np.arange(n)) % n
        open_ES = (age_S >= 1) & (age_S <= self._pending_E[:, None])
        self._returns_ES += np.where(open_ES, self._discount_ES * rewards_E[:, None], 0.0)
        self._discount_ES *= np.where(open_ES, self.gamma, 1.0)
        self._obs_ES[:, ptr] = obs_E
        self._actions_ES[:, ptr] = actions_E
        self._returns_ES[:, ptr] = rewards_E
        self._discount_ES[:, ptr] = self.gamma
        pending_E = self._pending_E + 1

        # Windows to emit, columns ordered oldest first: a full window (age n-1), or all open
        # windows of an env whose episode just ended.
        ages_C = np.arange(n - 1, -1, -1)
        slots_C = (ptr - ages_C) % n
        open_EC = ages_C < pending_E[:, None]
        emit_EC = open_EC & (done_E[:, None] | (ages_C == n - 1))
        env_K, col_K = np.nonzero(emit_EC)
        slot_K = slots_C[col_K]
        out = NStepTransitions(
            obs=self._obs_ES[env_K, slot_K],
            actions=self._actions_ES[env_K, slot_K],
            returns=self._returns_ES[env_K, slot_K].astype(np.float32),
            next_obs=np.asarray(next_obs_E)[env_K].astype(self._obs_ES.dtype, copy=False),
            terminated=terminated_E[env_K].astype(np.float32),
            discount=self._discount_ES[env_K, slot_K].astype(np.float32),
            next_mask=None if next_mask_EA is None else np.asarray(next_mask_EA)[env_K],
        )
        self._pending_E = np.where(done_E, 0, np.minimum(pending_E, n - 1))
        self._ptr = (ptr + 1) % n
        return out

    def reset(self) -> None:
        """Drop every pending window (e.g. after resetting the envs by hand)."""
        self._pending_E[:] = 0

    # -- checkpointing: plain arrays and a JSON-able dict, never pickle ---------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)`` holding the pending windows, for an exact resume."""
        arrays = {
            "obs": self._obs_ES.copy(),
            "actions": self._actions_ES.copy(),
            "returns": self._returns_ES.copy(),
            "discount": self._discount_ES.copy(),
            "pending": self._pending_E.copy(),
        }
        return arrays, {"ptr": self._ptr, "n": self.n, "num_envs": self.num_envs}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned (into an accumulator of the same n and E)."""
        if (meta["n"], meta["num_envs"]) != (self.n, self.num_envs):
            raise ValueError(
                f"state for n={meta['n']}, num_envs={meta['num_envs']}; "
                f"this accumulator has n={self.n}, num_envs={self.num_envs}"
            )
        self._obs_ES[:] = arrays["obs"]
        self._actions_ES[:] = arrays["actions"]
        self._returns_ES[:] = arrays["returns"]
        self._discount_ES[:] = arrays["discount"]
        self._pending_E[:] = arrays["pending"]
        self._ptr = int(meta["ptr"])
