"""``drlzero/Trading-v0``: hold one asset short, flat or long, paying transaction costs.

The price series is generated (default) or given. The generated market switches between a bull
regime (mean log return +0.4% per step) and a bear regime (-0.4%) with persistence (a bull lasts
75 steps on average, a bear 50, so the market drifts up and buy-and-hold earns money on
average), plus Gaussian noise of 1.2% per step. Trends are visible to a momentum reader but
never certain. Every episode draws a fresh series from the env's seeded generator, so training
seeds and evaluation seeds see different (held-out) series. A toy market, not a model of a real
one.

With ``prices=[...]`` (a bundled or user series) an episode is a random window of
``episode_steps`` steps; ``split="train"`` uses the first ``1 - test_fraction`` of the series
and ``split="test"`` the rest, so evaluation runs on held-out data.

Observation (Box float32 of 7)::

    [last log return / 1%, z-scores of the mean log return over the last 5, 10, 20, 40 steps
     (mean * sqrt(n) / 1%), volatility over the last 20 steps / 1%, position (-1, 0, 1)]

Actions (Discrete 3): the position to hold over the next step: 0 short, 1 flat, 2 long.

Reward: ``100 * (position * next log return - cost * |position change|)`` with ``cost = 0.001``
(10 basis points per unit traded): percent log return, net of costs. Episodes start flat.

Termination: only at the end of a given series' window. Truncation: the registered time limit,
250 steps (a trading year of days).

Success: ``info["is_success"]`` (every step, so on the final one too) is True while the episode's
net log return beats buy-and-hold's on the same series (buy at the start, paying the cost once);
``info["excess_return"]`` is the difference.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drlzero.envs.scenarios import _draw

DRIFT = 0.004  # mean log return per step in a bull market (minus in a bear)
NOISE = 0.012  # std of the log return per step
P_BULL_END = 1.0 / 75.0
P_BEAR_END = 1.0 / 50.0
COST = 0.001  # per unit of position traded
SCALE = 0.01  # observation unit: 1% log return
HISTORY = 40
WINDOWS = (5, 10, 20, 40)
OBS_DIM = 7


class TradingEnv(gym.Env):
    """One asset, positions short/flat/long, transaction costs (see the module doc).

    Args:
        prices: a price series to trade instead of the generated market.
        split: with ``prices``: ``all``, ``train`` (the first part) or ``test`` (the held-out end).
        test_fraction: the share of ``prices`` kept for ``split="test"``.
        episode_steps: window length for ``prices`` (the time limit applies as well).
        cost: transaction cost per unit of position change.
        render_mode: None or ``rgb_array``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        prices: list[float] | None = None,
        split: str = "all",
        test_fraction: float = 0.3,
        episode_steps: int = 250,
        cost: float = COST,
        render_mode: str | None = None,
    ) -> None:
        if split not in ("all", "train", "test"):
            raise ValueError(f"split={split!r} must be all, train or test")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: only rgb_array is supported")
        self.render_mode = render_mode
        self.cost = float(cost)
        self.episode_steps = int(episode_steps)
        self.series_returns: np.ndarray | None = None
        if prices is not None:
            log_p = np.log(np.asarray(prices, dtype=np.float64))
            rets = np.diff(log_p)
            cut = int(len(rets) * (1.0 - test_fraction))
            rets = {"all": rets, "train": rets[:cut], "test": rets[cut:]}[split]
            if len(rets) < HISTORY + self.episode_steps + 1:
                raise ValueError(
                    f"the {split} part of prices has {len(rets)} returns; need at least "
                    f"{HISTORY + self.episode_steps + 1} (history + episode_steps + 1)"
                )
            self.series_returns = rets
        self.observation_space = spaces.Box(-10.0, 10.0, (OBS_DIM,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self.history = np.zeros(HISTORY)  # last log returns, oldest first
        self.bull = 1
        self.cursor = 0  # next index into series_returns
        self.position = 0
        self.t = 0
        self.log_wealth = 0.0  # the agent's net log return so far
        self.hold_log_wealth = 0.0  # buy-and-hold's on the same series
        self.price_trace = np.zeros(0)  # log prices seen this episode, for rendering

    def _next_return(self) -> float:
        if self.series_returns is not None:
            r = float(self.series_returns[self.cursor])
            self.cursor += 1
            return r
        rng = self.np_random
        if rng.random() < (P_BULL_END if self.bull else P_BEAR_END):
            self.bull = 1 - self.bull
        return float((DRIFT if self.bull else -DRIFT) + NOISE * rng.standard_normal())

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        if self.series_returns is not None:
            last_start = len(self.series_returns) - HISTORY - self.episode_steps
            self.cursor = int(rng.integers(0, last_start + 1))
        else:
            self.bull = int(rng.random() < P_BEAR_END / (P_BULL_END + P_BEAR_END))
        self.history = np.array([self._next_return() for _ in range(HISTORY)])
        self.position = 0
        self.t = 0
        self.log_wealth = 0.0
        self.hold_log_wealth = -self.cost
        self.price_trace = np.zeros(1)
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        new_position = int(action) - 1
        traded = abs(new_position - self.position)
        self.position = new_position
        r = self._next_return()
        self.history = np.append(self.history[1:], r)
        pnl = self.position * r - self.cost * traded
        self.log_wealth += pnl
        self.hold_log_wealth += r
        self.t += 1
        self.price_trace = np.append(self.price_trace, self.price_trace[-1] + r)
        terminated = self.series_returns is not None and self.t >= self.episode_steps
        excess = self.log_wealth - self.hold_log_wealth
        info = {"is_success": bool(excess > 0.0), "excess_return": excess}
        return self._obs(), 100.0 * pnl, terminated, False, info

    def _obs(self) -> np.ndarray:
        h = self.history
        feats = [h[-1] / SCALE]
        feats += [h[-n:].mean() * np.sqrt(n) / SCALE for n in WINDOWS]
        feats += [h[-20:].std() / SCALE, float(self.position)]
        return np.clip(np.array(feats, dtype=np.float32), -10.0, 10.0)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        height, width = 160, 260
        frame = _draw.canvas(height, width, (250, 250, 250))
        trace = self.price_trace
        lo, hi = float(trace.min()) - 0.01, float(trace.max()) + 0.01
        n = max(self.episode_steps, len(trace))
        for k, p in enumerate(trace):
            row = 140 - (p - lo) / (hi - lo) * 120
            col = 10 + k * (width - 20) / n
            _draw.disc(frame, row, col, 1.5, (40, 40, 40))
        color = {-1: (220, 50, 50), 0: (150, 150, 150), 1: (40, 170, 60)}[self.position]
        _draw.rect(frame, 148, 10, 156, 60, color)  # the position
        _draw.bar(frame, 148, 80, 8, 170, 0.5 + (self.log_wealth - self.hold_log_wealth), color)
        return frame
