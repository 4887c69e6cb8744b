"""Shared fixtures: tiny envs with known dynamics, and fast run settings."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest


class Countdown(gym.Env):
    """obs = [steps left]; reward 1 per step; terminates when the counter hits 0.

    With a TimeLimit shorter than the counter, episodes end by truncation instead, which lets a
    test tell the two apart.
    """

    def __init__(self, start: int = 5) -> None:
        self.start = start
        self.observation_space = gym.spaces.Box(0.0, float(start), (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.left = start

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = self.start
        return np.array([self.left], np.float32), {}

    def step(self, action):
        self.left -= 1
        return np.array([self.left], np.float32), 1.0, self.left == 0, False, {}


gym.register("drlzero-test/Countdown-v0", entry_point=Countdown)

FAST = ["train.progress=false", "train.tensorboard=false"]


@pytest.fixture
def fast() -> list[str]:
    return list(FAST)
