"""Shared fixtures: tiny envs with known dynamics, and fast run settings."""

from __future__ import annotations

from pathlib import Path

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


class Forbidden(gym.Env):
    """Discrete(5) where each state allows a random non-empty subset (in info); a forbidden
    action raises. Episodes of 10 steps."""

    observation_space = gym.spaces.Box(0.0, 1.0, (5,), np.float32)
    action_space = gym.spaces.Discrete(5)

    def _out(self) -> tuple[np.ndarray, dict]:
        self.mask = self.np_random.random(5) < 0.4
        self.mask[self.np_random.integers(5)] = True
        return self.mask.astype(np.float32), {"action_mask": self.mask.copy()}

    def reset(self, *, seed=None, options=None):  # type: ignore[override]
        super().reset(seed=seed)
        self.t = 0
        return self._out()

    def step(self, action):  # type: ignore[override]
        assert self.mask[int(action)], f"forbidden action {action} under {self.mask}"
        self.t += 1
        obs, info = self._out()
        return obs, 1.0, False, self.t >= 10, info


gym.register("drlzero-test/Forbidden-v0", entry_point=Forbidden)

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


def train_masked_forbidden(out: Path) -> Path:
    """A 200-step DQN run on drlzero-test/Forbidden-v0 with env.action_mask=info; its dir."""
    import drlzero
    from drlzero.config import load_config

    cfg = load_config(
        "cartpole-dqn",
        overrides=[
            "env.id=drlzero-test/Forbidden-v0",
            "env.action_mask=info",
            "train.total_steps=200",
            "train.eval_episodes=1",
            "dqn.learning_starts=50",
            *FAST,
        ],
    )
    return drlzero.train(cfg, out=out).run_dir
