"""Running observation and reward normalisation for on-policy learning.

``ObsNormalizer``: obs -> clip((obs - mean) / sqrt(var + eps), -c, c) with running moments over
every observation the training envs return. ``RewardScaler``: reward -> clip(r / sqrt(var_R +
eps), -c, c) where var_R is the running variance of each env's discounted return
R_t = gamma * R_{t-1} + r_t (reset at episode ends); the reward is scaled, not centred, so its
sign survives. The moments are shared by all E envs of the vector env (as SB3's VecNormalize
keeps them; CleanRL's per-env wrappers keep one set per env). Both are saved in checkpoints;
evaluation reuses the frozen observation statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Mean and variance over batches, merged with Chan et al.'s parallel update.

    The count starts at a tiny epsilon (1e-4), as in the usual implementations, so the first
    batch dominates without dividing by zero.
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x_B: np.ndarray) -> None:
        x = np.asarray(x_B, np.float64)
        b_mean, b_var, b_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean = self.mean + delta * b_count / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.mean = np.asarray(state["mean"], np.float64)
        self.var = np.asarray(state["var"], np.float64)
        self.count = float(state["count"])


class ObsNormalizer:
    """Running standardisation of observations (identity when ``enabled`` is False)."""

    def __init__(
        self, shape: tuple[int, ...], *, enabled: bool, clip: float = 10.0, eps: float = 1e-8
    ) -> None:
        self.enabled = enabled
        self.rms = RunningMeanStd(shape)
        self.clip = clip
        self.eps = eps

    def __call__(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        """Normalise a batch; ``update`` first folds it into the running moments."""
        if not self.enabled:
            return obs
        if update:
            self.rms.update(obs)
        out = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)


class RewardScaler:
    """Scale rewards by the running std of the discounted return (identity when disabled)."""

    def __init__(
        self, num_envs: int, gamma: float, *, enabled: bool, clip: float = 10.0, eps: float = 1e-8
    ) -> None:
        self.enabled = enabled
        self.gamma = gamma
        self.rms = RunningMeanStd(())
        self.returns_E = np.zeros(num_envs, np.float64)
        self.clip = clip
        self.eps = eps

    def __call__(self, rewards_E: np.ndarray, ended_E: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return rewards_E
        self.returns_E = self.returns_E * self.gamma + rewards_E
        self.rms.update(self.returns_E)
        self.returns_E[ended_E] = 0.0
        out = rewards_E / np.sqrt(self.rms.var + self.eps)
        return np.clip(out, -self.clip, self.clip)

    def state(self) -> dict[str, Any]:
        return {**self.rms.state(), "returns": self.returns_E.tolist()}

    def load(self, state: dict[str, Any]) -> None:
        self.rms.load(state)
        self.returns_E = np.asarray(state["returns"], np.float64)
