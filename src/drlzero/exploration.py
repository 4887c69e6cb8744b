"""Exploration: schedules and the behaviour policies that turn Q-values into actions.

Schedules are pure functions of the global env step, and explorers take that step on every call,
so a schedule cannot be forgotten or advanced twice. Evaluation is greedy (``greedy_actions``).

Action masks (``allowed_BA``, True = allowed; see :mod:`drlzero.masks`) restrict every rule to
the allowed actions: the greedy action is the best allowed one, epsilon-greedy's random action is
uniform over the allowed ones, and softmax gives forbidden actions probability 0. Without a mask
every rule is exactly the unmasked one (same arithmetic, same random draws).

Example:
    >>> sched = LinearSchedule(1.0, 0.05, duration=1000)
    >>> sched(0), sched(500), sched(5000)
    (1.0, 0.525, 0.05)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from drlzero.config import ExplorationConfig
from drlzero.masks import uniform_allowed


class Schedule(Protocol):
    def __call__(self, step: int) -> float: ...


@dataclass(frozen=True)
class ConstantSchedule:
    value: float

    def __call__(self, step: int) -> float:
        return self.value


@dataclass(frozen=True)
class LinearSchedule:
    """From ``start`` to ``end`` linearly over ``duration`` steps, then constant."""

    start: float
    end: float
    duration: int

    def __call__(self, step: int) -> float:
        frac = min(max(step, 0) / max(self.duration, 1), 1.0)
        return self.start + frac * (self.end - self.start)


@dataclass(frozen=True)
class ExponentialSchedule:
    """``start * decay**step``, floored (or capped) at ``end``."""

    start: float
    end: float
    decay: float

    def __call__(self, step: int) -> float:
        value = self.start * math.pow(self.decay, max(step, 0))
        return max(value, self.end) if self.start >= self.end else min(value, self.end)


def build_schedule(cfg: ExplorationConfig, total_steps: int) -> Schedule:
    if cfg.schedule == "constant":
        return ConstantSchedule(cfg.start)
    if cfg.schedule == "linear":
        return LinearSchedule(cfg.start, cfg.end, int(cfg.fraction * total_steps))
    return ExponentialSchedule(cfg.start, cfg.end, cfg.decay)


def greedy_actions(q_BA: np.ndarray, allowed_BA: np.ndarray | None = None) -> np.ndarray:
    """Greedy actions (among the allowed ones); ties go to the lowest index (deterministic)."""
    if allowed_BA is None:
        return q_BA.argmax(axis=1)
    return np.where(allowed_BA, q_BA, -np.inf).argmax(axis=1)


def softmax_probs(
    q_BA: np.ndarray, temperature: float, allowed_BA: np.ndarray | None = None
) -> np.ndarray:
    """Boltzmann probabilities ``exp(q/T) / sum exp(q/T)``, computed stably; forbidden actions
    get ``exp(-inf) = 0`` exactly (a mask always allows one action, so the max stays finite)."""
    z_BA = q_BA / temperature
    if allowed_BA is not None:
        z_BA = np.where(allowed_BA, z_BA, -np.inf)
    z_BA = z_BA - z_BA.max(axis=1, keepdims=True)
    e_BA = np.exp(z_BA)
    return e_BA / e_BA.sum(axis=1, keepdims=True)


class EpsilonGreedy:
    """With probability epsilon a uniform random action, else the greedy one."""

    name = "epsilon"

    def __init__(self, schedule: Schedule, num_actions: int) -> None:
        self.schedule = schedule
        self.num_actions = num_actions

    def value(self, step: int) -> float:
        return self.schedule(step)

    def probs(
        self, q_BA: np.ndarray, step: int, allowed_BA: np.ndarray | None = None
    ) -> np.ndarray:
        """The action distribution pi(a|s): eps/A everywhere plus 1-eps on the greedy action
        (masked: eps/|allowed| on each allowed action, 1-eps on the best allowed one)."""
        eps = self.schedule(step)
        if allowed_BA is None:
            p_BA = np.full(q_BA.shape, eps / self.num_actions)
        else:
            p_BA = allowed_BA * (eps / allowed_BA.sum(axis=1, keepdims=True))
        p_BA[np.arange(len(q_BA)), greedy_actions(q_BA, allowed_BA)] += 1.0 - eps
        return p_BA

    def explore_mask(self, step: int, batch: int, rng: np.random.Generator) -> np.ndarray:
        """Which rows act randomly at this step (drawn before Q so a full-random step skips Q)."""
        return rng.random(batch) < self.schedule(step)

    def __call__(
        self,
        q_BA: np.ndarray | None,
        step: int,
        rng: np.random.Generator,
        mask_B: np.ndarray | None = None,
        allowed_BA: np.ndarray | None = None,
    ) -> np.ndarray:
        """Actions for a batch. ``q_BA`` may be None only when every row explores.

        ``mask_B`` marks the rows that explore (drawn here if None); ``allowed_BA`` is the
        action mask (None: every action allowed)."""
        batch = len(mask_B) if mask_B is not None else len(q_BA)  # type: ignore[arg-type]
        if mask_B is None:
            mask_B = self.explore_mask(step, batch, rng)
        if q_BA is None:
            return self._uniform(batch, rng, allowed_BA)
        greedy_B = greedy_actions(q_BA, allowed_BA)
        if not mask_B.any():  # drawing random actions costs ~3 µs; skip when none is used
            return greedy_B
        return np.where(mask_B, self._uniform(batch, rng, allowed_BA), greedy_B)

    def _uniform(
        self, batch: int, rng: np.random.Generator, allowed_BA: np.ndarray | None = None
    ) -> np.ndarray:
        """Uniform random (allowed) actions. ``floor(u * A)`` from ``rng.random`` would cost
        2 µs instead of ``rng.integers``' 6 µs here, but it changes every seed's trajectory, and
        the presets' recorded results (e.g. ``cartpole-dqn`` seed 0 solving at 27.5k steps; with
        the other stream it does not solve within 100k) were measured with this one. Masked
        draws have no recorded results to keep and use the inverse-CDF draw over allowed ones."""
        if allowed_BA is not None:
            return uniform_allowed(rng, allowed_BA)
        return rng.integers(0, self.num_actions, size=batch)


class Softmax:
    """Boltzmann exploration: sample ``a ~ softmax(q / T)`` with a temperature schedule."""

    name = "temperature"

    def __init__(self, schedule: Schedule, num_actions: int) -> None:
        self.schedule = schedule
        self.num_actions = num_actions

    def value(self, step: int) -> float:
        return self.schedule(step)

    def probs(
        self, q_BA: np.ndarray, step: int, allowed_BA: np.ndarray | None = None
    ) -> np.ndarray:
        return softmax_probs(q_BA, self.schedule(step), allowed_BA)

    def explore_mask(self, step: int, batch: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(batch, dtype=bool)  # Softmax always needs the Q-values

    def __call__(
        self,
        q_BA: np.ndarray | None,
        step: int,
        rng: np.random.Generator,
        mask_B: np.ndarray | None = None,
        allowed_BA: np.ndarray | None = None,
    ) -> np.ndarray:
        assert q_BA is not None
        p_BA = softmax_probs(q_BA, self.schedule(step), allowed_BA)
        # Inverse-CDF sampling: one uniform per row.
        u_B1 = rng.random((len(p_BA), 1))
        if allowed_BA is None:
            return np.minimum((p_BA.cumsum(axis=1) < u_B1).sum(axis=1), self.num_actions - 1)
        # Masked: a = #{k : cdf_k <= u * cdf_A}, so cdf_a > u * cdf_A >= cdf_{a-1} and p_a > 0:
        # never a forbidden action (p = 0), even at u = 0 or where rounding leaves cdf_A < 1.
        # If u * cdf_A rounds up to cdf_A, the count is A: fall back to the last allowed action.
        cdf_BA = p_BA.cumsum(axis=1)
        a_B = (cdf_BA <= u_B1 * cdf_BA[:, -1:]).sum(axis=1)
        last_B = self.num_actions - 1 - allowed_BA[:, ::-1].argmax(axis=1)
        return np.minimum(a_B, last_B)


Explorer = EpsilonGreedy | Softmax


def build_explorer(cfg: ExplorationConfig, num_actions: int, total_steps: int) -> Explorer:
    schedule = build_schedule(cfg, total_steps)
    if cfg.kind == "softmax":
        return Softmax(schedule, num_actions)
    return EpsilonGreedy(schedule, num_actions)
