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


@pytest.fixture(scope="session")
def tiny_teachers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two barely trained DQN runs (CartPole, Acrobot) for collect/distill mechanics tests."""
    import drlzero

    root = tmp_path_factory.mktemp("teachers")
    runs = {}
    for preset in ("cartpole-dqn", "acrobot-dqn"):
        runs[preset] = drlzero.train(
            preset,
            out=root / preset,
            overrides=[
                *FAST,
                "train.total_steps=400",
                "dqn.learning_starts=100",
                "dqn.train_freq=50",
                "dqn.gradient_steps=8",
                "train.eval_episodes=1",
                "train.eval_freq=0",
                "env.max_episode_steps=100",
            ],
        ).run_dir
    return runs
