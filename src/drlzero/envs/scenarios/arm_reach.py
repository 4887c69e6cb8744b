"""``drlzero/ArmReach-v0``: a 2-link industrial arm reaches a target (MuJoCo Reacher-v5).

``drlzero/ArmReachContinuous-v0`` is the same task with continuous torques (``continuous=True``):
the action is Reacher's own Box([-1, 1]^2, float32); observation, reward, termination, time
limit and success are those below.

Needs the ``mujoco`` extra (``pip install "drlzero[mujoco]"``). Without a display, frames are
rendered with EGL (``MUJOCO_GL=egl`` unless set).

Observation: Reacher-v5's Box float64 of 10, cast to float32::

    [cos q1, cos q2, sin q1, sin q2, target x, target y, dq1, dq2, tip - target (x, y)]

Actions (Discrete 25): torques ``(LEVELS[a // 5], LEVELS[a % 5])`` for the two joints, with
``LEVELS = (-1, -0.3, 0, 0.3, 1)`` (the continuous range is [-1, 1]).

Reward: Reacher-v5's ``-distance(tip, target) - 0.1 * |torque|^2`` per step.

Termination: none. Truncation: the registered time limit, 50 steps.

Success: ``info["is_success"]`` (every step, so on the final one too) is True when the tip is
within 2 cm of the target; ``info["distance"]`` is the distance in metres.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

LEVELS = (-1.0, -0.3, 0.0, 0.3, 1.0)
SUCCESS_DISTANCE = 0.02  # m


class DiscreteTorques(gym.Wrapper):
    """Reacher with a Discrete(25) grid of joint torques, float32 observations and success."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.action_space = spaces.Discrete(len(LEVELS) ** 2)
        box = env.observation_space
        self.observation_space = spaces.Box(
            box.low.astype(np.float32), box.high.astype(np.float32), dtype=np.float32
        )

    @staticmethod
    def torques(action: int) -> np.ndarray:
        a = int(action)
        return np.array([LEVELS[a // len(LEVELS)], LEVELS[a % len(LEVELS)]], dtype=np.float32)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs.astype(np.float32), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, term, trunc, info = self.env.step(self.torques(action))
        distance = float(np.linalg.norm(obs[8:10]))
        info = {**info, "distance": distance, "is_success": distance < SUCCESS_DISTANCE}
        return obs.astype(np.float32), float(reward), term, trunc, info


class ContinuousTorques(gym.Wrapper):
    """Reacher with its Box([-1, 1]^2) torques, float32 observations and success."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        box = env.observation_space
        self.observation_space = spaces.Box(
            box.low.astype(np.float32), box.high.astype(np.float32), dtype=np.float32
        )

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs.astype(np.float32), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        torques = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        obs, reward, term, trunc, info = self.env.step(torques)
        distance = float(np.linalg.norm(obs[8:10]))
        info = {**info, "distance": distance, "is_success": distance < SUCCESS_DISTANCE}
        return obs.astype(np.float32), float(reward), term, trunc, info


def make_arm_reach(
    render_mode: str | None = None, continuous: bool = False, **kwargs: Any
) -> gym.Env:
    """Build the env (the registered entry point); a one-line error names the missing extra.

    ``continuous=True``: Box torques (``drlzero/ArmReachContinuous-v0``) instead of the
    Discrete(25) grid.
    """
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
    except ImportError as exc:  # mujoco is missing
        raise gym.error.DependencyNotInstalled(
            'drlzero/ArmReach-v0 needs MuJoCo: pip install "drlzero[mujoco]"'
        ) from exc
    wrapper = ContinuousTorques if continuous else DiscreteTorques
    return wrapper(ReacherEnv(render_mode=render_mode, **kwargs))


def joint_angles(obs_B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q1, q2) from the cos/sin features of Reacher observations (B, 10)."""
    return np.arctan2(obs_B[:, 2], obs_B[:, 0]), np.arctan2(obs_B[:, 3], obs_B[:, 1])
