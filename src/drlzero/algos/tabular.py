"""Tabular control: Q-learning, SARSA and Expected SARSA (Sutton & Barto 2018, sections 6.4-6.6).

For Discrete observation spaces (FrozenLake, Taxi, CliffWalking). The update targets are pure
functions of a Q row; the loop is :func:`drlzero.train.tabular.train_tabular`.

Example:
    >>> import numpy as np
    >>> td_target("qlearning", 1.0, False, np.array([0.0, 2.0]), 0.9)
    2.8
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from drlzero.exploration import Explorer


def td_target(
    algo: str,
    reward: float,
    terminated: bool,
    q_next_A: np.ndarray,
    gamma: float,
    *,
    next_action: int | None = None,
    next_probs_A: np.ndarray | None = None,
) -> float:
    """The one-step target for ``algo``; no bootstrap after a true termination.

    - ``qlearning``: ``r + gamma * max_a Q(s', a)`` (off-policy).
    - ``sarsa``: ``r + gamma * Q(s', a')`` with the action actually taken next (on-policy).
    - ``expected_sarsa``: ``r + gamma * sum_a pi(a|s') Q(s', a)``.
    """
    if terminated:
        return float(reward)
    if algo == "qlearning":
        v = float(q_next_A.max())
    elif algo == "sarsa":
        assert next_action is not None
        v = float(q_next_A[next_action])
    else:
        assert next_probs_A is not None
        v = float(next_probs_A @ q_next_A)
    return float(reward + gamma * v)


class TabularPolicy:
    """Greedy and behaviour actions from a Q table."""

    def __init__(self, q_SA: np.ndarray, explorer: Explorer | None = None) -> None:
        self.q_SA = q_SA
        self.explorer = explorer

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.q_SA[np.asarray(obs, dtype=np.int64)].argmax(axis=1)

    def act_one(self, s: int, step: int, rng: np.random.Generator) -> int:
        assert self.explorer is not None
        return int(self.explorer(self.q_SA[s : s + 1], step, rng)[0])


def value_iteration(env: gym.Env, gamma: float, tol: float = 1e-10) -> np.ndarray:
    """Optimal Q* of a toy-text env from its transition model ``env.unwrapped.P``.

    The reference against which the tabular agents are tested: a greedy policy on Q* attains
    the optimal return.
    """
    model = env.unwrapped.P  # type: ignore[attr-defined]
    n_s, n_a = len(model), len(model[0])
    q_SA = np.zeros((n_s, n_a))
    while True:
        v_S = q_SA.max(axis=1)
        new = np.zeros_like(q_SA)
        for s in range(n_s):
            for a in range(n_a):
                new[s, a] = sum(
                    p * (r + (0.0 if done else gamma * v_S[s2])) for p, s2, r, done in model[s][a]
                )
        if np.abs(new - q_SA).max() < tol:
            return new
        q_SA = new
