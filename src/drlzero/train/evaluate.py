"""Greedy evaluation on a vector env: mean/std return, mean length, success rate.

With ``masked=True`` the action function also gets each step's action mask (``(E, A)`` from
``info["action_mask"]``, see :mod:`drlzero.masks`): ``action_fn(obs, mask)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from drlzero.config import EnvConfig
from drlzero.envs import episode_successes, make_vec_env
from drlzero.masks import read_mask

ActionFn = Callable[..., np.ndarray]  # obs -> actions, or (obs, mask) -> actions when masked


class Evaluator:
    """Runs ``episodes`` greedy episodes in parallel envs, each env a fixed share of them.

    Every evaluation resets with the same seeds, so successive evaluations of one run are
    measured on the same start states and differ only by the policy.
    """

    def __init__(
        self,
        env_cfg: EnvConfig,
        episodes: int,
        seed: int,
        max_envs: int = 16,
        *,
        masked: bool = False,
    ) -> None:
        self.env_cfg = env_cfg
        self.masked = masked
        self.episodes = episodes
        self.seed = seed
        self.n = min(episodes, max_envs)
        # training=False: whole games and raw scores where env.wrappers clip or split them
        self.envs: gym.vector.VectorEnv = make_vec_env(env_cfg, num_envs=self.n, training=False)
        # env i runs quota[i] episodes: a fixed allocation, so short episodes do not dominate.
        self.quota = np.array([episodes // self.n + (i < episodes % self.n) for i in range(self.n)])

    def __call__(self, action_fn: ActionFn) -> dict[str, float]:
        """Run the episodes. With ``masked`` (set at construction) ``action_fn(obs, mask)``
        gets the batch's masks from ``info["action_mask"]`` (None where the env reports
        none)."""
        obs, info = self.envs.reset(seed=self.seed)
        num_actions = int(getattr(self.envs.single_action_space, "n", 0))  # masks: Discrete
        done_count = np.zeros(self.n, dtype=int)
        ep_ret = np.zeros(self.n)
        ep_len = np.zeros(self.n, dtype=int)
        returns: list[float] = []
        lengths: list[int] = []
        successes: list[float] = []
        while (done_count < self.quota).any():
            if self.masked:  # the mask of these observations (next episode's after a reset)
                actions = action_fn(obs, read_mask(info, self.n, num_actions))
            else:
                actions = action_fn(obs)
            obs, reward, term, trunc, info = self.envs.step(actions)
            ep_ret += reward
            ep_len += 1
            done = term | trunc
            if done.any():
                succ = episode_successes(info, done, ep_ret, self.env_cfg.success_return)
                for i in np.flatnonzero(done):
                    if done_count[i] < self.quota[i]:
                        returns.append(float(ep_ret[i]))
                        lengths.append(int(ep_len[i]))
                        successes.append(float(succ[i]))
                    done_count[i] += 1
                ep_ret[done] = 0.0
                ep_len[done] = 0
        return summarize(returns, lengths, successes)

    def close(self) -> None:
        self.envs.close()


def summarize(returns: list[float], lengths: list[int], successes: list[float]) -> dict[str, float]:
    known = [s for s in successes if not math.isnan(s)]
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "success_rate": float(np.mean(known)) if known else math.nan,
        "episodes": len(returns),
    }


def evaluate_policy(
    action_fn: ActionFn,
    env_cfg: EnvConfig,
    episodes: int = 10,
    seed: int = 0,
    *,
    masked: bool = False,
) -> dict[str, float]:
    """Evaluate ``action_fn`` (a batch of observations -> actions; with ``masked``, also the
    batch's action masks) for ``episodes`` episodes."""
    ev = Evaluator(env_cfg, episodes, seed, masked=masked)
    try:
        return ev(action_fn)
    finally:
        ev.close()
