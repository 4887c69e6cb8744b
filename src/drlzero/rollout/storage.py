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
        self.device = torch.device(device)
        self.action_dtype = action_dtype
        # Steps are written into NumPy arrays (cheap per-step copies) and moved to the learner's
        # device once per rollout, in finish().
        np_act = np.float32 if action_dtype.is_floating_point else np.int64
        self._np: dict[str, np.ndarray] = {
            "obs": np.zeros((T, E, *obs_shape), obs_dtype),
            "actions": np.zeros((T, E, *action_shape), np_act),
            "logp": np.zeros((T, E), np.float32),
            "values": np.zeros((T, E), np.float32),
            "rewards": np.zeros((T, E), np.float32),
            "final_values": np.zeros((T, E), np.float32),
            "terminated": np.zeros((T, E), bool),
            "ended": np.zeros((T, E), bool),
        }
        if num_actions is not None:
            self._np["masks"] = np.ones((T, E, num_actions), bool)
        self.has_masks = num_actions is not None
        self.tensors: dict[str, torch.Tensor] = {}
        self.t = 0

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
        a, t = self._np, self.t
        a["obs"][t] = obs
        a["actions"][t] = actions
        a["logp"][t] = logp
        a["values"][t] = values
        a["rewards"][t] = rewards
        a["terminated"][t] = terminated
        a["ended"][t] = ended
        a["final_values"][t] = final_values
        if self.has_masks:
            a["masks"][t] = True if mask_EA is None else mask_EA
        self.t += 1

    @property
    def full(self) -> bool:
        return self.t == self.T

    @property
    def values(self) -> torch.Tensor:
        """V(s_t), (T, E), on the device (after :meth:`finish`)."""
        return self.tensors["values"]

    @property
    def advantages(self) -> torch.Tensor:
        """GAE advantages, (T, E) (after :meth:`finish`)."""
        return self.tensors["advantages"]

    @property
    def returns(self) -> torch.Tensor:
        """Value targets advantages + values, (T, E) (after :meth:`finish`)."""
        return self.tensors["returns"]

    def finish(self, last_values_E: np.ndarray, gamma: float, lam: float) -> None:
        """Move the rollout to the device and compute advantages and returns once it is full;
        ``last_values_E`` = V(s_T)."""
        if not self.full:
            raise RuntimeError(f"rollout holds {self.t} of {self.T} steps; fill it first")
        x = {k: torch.from_numpy(v).to(self.device) for k, v in self._np.items()}
        last = torch.as_tensor(np.asarray(last_values_E), dtype=torch.float32, device=self.device)
        following = torch.cat([x["values"][1:], last[None]], dim=0)  # V(s_{t+1}) as stored
        next_values = torch.where(x["ended"], x["final_values"], following)
        x["advantages"], x["returns"] = gae(
            x["rewards"], x["values"], next_values, x["terminated"], x["ended"], gamma, lam
        )
        self.tensors = x

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
        x = self.tensors

        def f(key: str) -> torch.Tensor | None:
            return x[key].reshape(n, *x[key].shape[2:]) if key in x else None

        return tuple(
            f(k) for k in ("obs", "actions", "logp", "values", "advantages", "returns", "masks")
        )

    def reset(self) -> None:
        self.t = 0
        self.tensors = {}
