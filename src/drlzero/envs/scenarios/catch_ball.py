"""``drlzero/CatchBall-v0``: a paddle robot catches a ball thrown under gravity.

The field is 1 unit wide (x in [0, 1]); heights y are measured above the paddle's surface. Each
episode, a ball is thrown from the left or right wall at a random height, speed and angle and
flies under gravity, bouncing elastically off the side walls. The robot is a paddle that slides
along the floor; its motor accelerates it left or right against friction, up to a top speed
that is slower than the fastest throws, so it must move to where the ball will land, not to
where the ball is.

Observation (``obs_mode="vector"``, Box float32 of 6): the robot's own sensors and the ball
tracker, in field units and seconds::

    [paddle_x, paddle_v, ball_x, ball_y, ball_vx, ball_vy]

``obs_mode="pixels"`` (``drlzero/CatchBallPixels-v0``): uint8 (32, 32, 2), the current and the
previous binary frame (255 = ball or paddle), so velocity is visible to a CNN.
``obs_mode="text"`` (``drlzero/CatchBallText-v0``): one sentence with the same six numbers.

Actions (Discrete 3): 0 push left, 1 coast, 2 push right.

Reward: +1 for a catch and -1 for a miss on the step the ball reaches the paddle's height, and
-0.001 per step the motor pushes (energy).

Termination: the ball reaches the paddle's height (a catch or a miss). Truncation: the
registered time limit (100 steps; the longest flight is about 50).

Success: ``info["is_success"]`` is True on the final step when the ball was caught.

Example:
    >>> import gymnasium as gym, drlzero.envs
    >>> env = gym.make("drlzero/CatchBall-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (6,)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drlzero.envs.scenarios import _draw
from drlzero.envs.scenarios._text import text_space

# Physics, in field units (the field is 1 wide) and seconds.
DT = 0.04  # s per step
GRAVITY = 2.0  # units/s^2
PADDLE_HALF_WIDTH = 0.07
BALL_RADIUS = 0.015
PADDLE_ACCEL = 6.0  # units/s^2 while the motor pushes
PADDLE_DAMPING = 0.9  # velocity kept per step (friction)
PADDLE_VMAX = 0.9  # units/s: slower than the fastest throws
THROW_SPEED = (0.6, 1.8)  # units/s
THROW_ANGLE_DEG = (-20.0, 60.0)  # above the horizontal, thrown towards the field
THROW_HEIGHT = (0.3, 0.9)
MOVE_COST = 0.001

OBS_LOW = np.array([0.0, -PADDLE_VMAX, 0.0, 0.0, -2.0, -3.0], dtype=np.float32)
OBS_HIGH = np.array([1.0, PADDLE_VMAX, 1.0, 2.0, 2.0, 3.0], dtype=np.float32)
PIXELS = 32
PIXEL_HEIGHT = 1.6  # field height shown in the pixel observation


class CatchBallEnv(gym.Env):
    """A paddle robot catching balls thrown with random speed and angle (see the module doc).

    Args:
        obs_mode: ``vector`` (6 floats), ``pixels`` (uint8 32x32x2) or ``text`` (a sentence).
        render_mode: None or ``rgb_array`` (a 240x240 RGB frame).
        gravity: units/s^2 (default 2.0); with ``paddle_half_width`` it makes held-out
            variants of the task with the same observation layout (``env.kwargs``).
        paddle_half_width: field units (default 0.07).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        obs_mode: str = "vector",
        render_mode: str | None = None,
        *,
        gravity: float = GRAVITY,
        paddle_half_width: float = PADDLE_HALF_WIDTH,
    ) -> None:
        if not (gravity > 0 and 0 < paddle_half_width < 0.5):
            raise ValueError("gravity must be > 0 and paddle_half_width in (0, 0.5)")
        self.gravity = float(gravity)
        self.paddle_half_width = float(paddle_half_width)
        if obs_mode not in ("vector", "pixels", "text"):
            raise ValueError(f"obs_mode={obs_mode!r} must be vector, pixels or text")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: only rgb_array is supported")
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(3)
        if obs_mode == "vector":
            self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        elif obs_mode == "pixels":
            self.observation_space = spaces.Box(0, 255, (PIXELS, PIXELS, 2), dtype=np.uint8)
        else:
            self.observation_space = text_space(160)
        self.paddle_x = 0.5
        self.paddle_v = 0.0
        self.ball_x = self.ball_y = self.ball_vx = self.ball_vy = 0.0
        self.prev_frame = np.zeros((PIXELS, PIXELS), dtype=np.uint8)
        self.caught = False
        self.done = False

    # ------------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        self.paddle_x = float(rng.uniform(0.2, 0.8))
        self.paddle_v = 0.0
        from_left = bool(rng.integers(2))
        speed = float(rng.uniform(*THROW_SPEED))
        angle = math.radians(float(rng.uniform(*THROW_ANGLE_DEG)))
        self.ball_x = BALL_RADIUS if from_left else 1.0 - BALL_RADIUS
        self.ball_y = float(rng.uniform(*THROW_HEIGHT))
        self.ball_vx = speed * math.cos(angle) * (1.0 if from_left else -1.0)
        self.ball_vy = speed * math.sin(angle)
        self.caught = False
        self.done = False
        self.prev_frame = self._binary_frame()
        return self._obs(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        push = int(action) - 1  # -1, 0, +1
        # Paddle: motor force against friction, speed-limited, stopped by the walls.
        v = (self.paddle_v + push * PADDLE_ACCEL * DT) * PADDLE_DAMPING
        v = min(max(v, -PADDLE_VMAX), PADDLE_VMAX)
        x = self.paddle_x + v * DT
        half = self.paddle_half_width
        if x < half or x > 1.0 - half:
            x = min(max(x, half), 1.0 - half)
            v = 0.0
        self.paddle_x, self.paddle_v = x, v
        # Ball: exact ballistic step, elastic bounces off the side walls.
        x0, y0 = self.ball_x, self.ball_y
        raw_x = x0 + self.ball_vx * DT  # before the bounce
        by = y0 + self.ball_vy * DT - 0.5 * self.gravity * DT * DT
        self.ball_vy -= self.gravity * DT
        bx = _fold(raw_x)
        if bx != raw_x:
            self.ball_vx = -self.ball_vx
        reward = -MOVE_COST * abs(push)
        terminated = False
        info: dict[str, Any] = {}
        if by <= 0.0:
            # Where the ball crossed the paddle's height, by linear interpolation in the step.
            frac = y0 / (y0 - by) if y0 > by else 1.0
            cross_x = _fold(x0 + frac * (raw_x - x0))
            self.caught = abs(cross_x - self.paddle_x) <= half + BALL_RADIUS
            reward += 1.0 if self.caught else -1.0
            terminated = self.done = True
            bx, by = cross_x, 0.0  # the ball is shown where it reached the paddle's height
            info["is_success"] = self.caught
        self.ball_x, self.ball_y = bx, by
        return self._obs(), reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        size, top = 240, 20  # pixels; heights up to PIXEL_HEIGHT are shown
        scale = (size - top - 20) / PIXEL_HEIGHT
        frame = _draw.canvas(size, size, (235, 242, 250))
        floor = size - 20
        _draw.rect(frame, floor, 0, size, size, (120, 120, 120))
        pw = self.paddle_half_width * size
        _draw.rect(
            frame,
            floor - 8,
            self.paddle_x * size - pw,
            floor,
            self.paddle_x * size + pw,
            (40, 90, 200),
        )
        ball_color = (40, 170, 60) if self.caught else (220, 60, 40)
        row = floor - 8 - min(self.ball_y, PIXEL_HEIGHT) * scale
        _draw.disc(frame, row, self.ball_x * size, max(BALL_RADIUS * size, 3.0), ball_color)
        return frame

    # ------------------------------------------------------------------------------- helpers
    def state_vector(self) -> np.ndarray:
        """The six sensor readings as float32 (the vector observation)."""
        raw = np.array(
            [self.paddle_x, self.paddle_v, self.ball_x, self.ball_y, self.ball_vx, self.ball_vy],
            dtype=np.float32,
        )
        return np.clip(raw, OBS_LOW, OBS_HIGH)

    def _binary_frame(self) -> np.ndarray:
        img_HW = np.zeros((PIXELS, PIXELS), dtype=np.uint8)
        n = PIXELS - 1
        col = round(self.ball_x * n)
        row = n - 1 - round(min(self.ball_y, PIXEL_HEIGHT) / PIXEL_HEIGHT * (n - 1))
        img_HW[max(row - 1, 0) : row + 1, max(col - 1, 0) : col + 1] = 255
        left = round((self.paddle_x - self.paddle_half_width) * n)
        right = round((self.paddle_x + self.paddle_half_width) * n)
        img_HW[n, left : right + 1] = 255
        return img_HW

    def _obs(self) -> Any:
        if self.obs_mode == "vector":
            return self.state_vector()
        if self.obs_mode == "pixels":
            frame = self._binary_frame()
            obs_HWC = np.stack([frame, self.prev_frame], axis=-1)
            self.prev_frame = frame
            return obs_HWC
        return describe(self.state_vector())


def _fold(x: float) -> float:
    """Reflect a position that left [0, 1] through a wall back into the field."""
    return -x if x < 0.0 else (2.0 - x if x > 1.0 else x)


def describe(obs: np.ndarray) -> str:
    """The text observation: one sentence stating the six sensor readings."""
    px, pv, bx, by, bvx, bvy = (float(v) for v in obs)

    def motion(v: float, pos: str, neg: str) -> str:
        return "still" if abs(v) < 0.005 else f"{pos if v > 0 else neg} at {abs(v):.2f}"

    return (
        f"Paddle at x {px:.2f}, {motion(pv, 'moving right', 'moving left')}. "
        f"Ball at x {bx:.2f}, height {by:.2f}, {motion(bvx, 'flying right', 'flying left')}, "
        f"{motion(bvy, 'rising', 'falling')}."
    )


def landing_x(obs_B6: np.ndarray, gravity: float = GRAVITY) -> np.ndarray:
    """Where each ball will reach the paddle's height, from vector observations (B, 6).

    Solves ``y + vy t - g t^2 / 2 = 0`` for the flight time and folds the straight-line x
    travel back into [0, 1] for the elastic wall bounces.
    """
    _, _, bx, by, bvx, bvy = (obs_B6[:, i].astype(np.float64) for i in range(6))
    t_B = (bvy + np.sqrt(np.maximum(bvy**2 + 2.0 * gravity * by, 0.0))) / gravity
    x_B = np.mod(bx + bvx * t_B, 2.0)
    return np.where(x_B > 1.0, 2.0 - x_B, x_B)
