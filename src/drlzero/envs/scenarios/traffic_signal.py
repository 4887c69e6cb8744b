"""``drlzero/TrafficSignal-v0``: one signalised intersection (and grids of them).

Each intersection has four approach lanes: 0 southbound (from the north), 1 northbound,
2 westbound (from the east), 3 eastbound. Phase 0 gives green to lanes 0 and 1 (north-south),
phase 1 to lanes 2 and 3 (east-west). A step is 5 s. Vehicles arrive at the network's edge lanes
as Poisson streams whose rates are drawn per episode (a busy main road and a quieter side road,
which is which at random) and swell to a peak mid-episode; a green lane discharges up to 3
vehicles per step (Binomial(3, 0.8), about 1700 veh/h), a red lane none. Queues hold at most 40
vehicles; arrivals beyond that are turned away and counted in ``info["blocked"]``. In a grid,
a vehicle that crosses an intersection joins the same-direction lane of the next intersection
on the next step, or leaves the network at its edge.

Switching: the action names the phase the controller wants green. A switch is accepted only
after the minimum green time (2 steps = 10 s); it then shows yellow (all red) for 1 step (5 s),
during which actions are ignored.

Observation (Box float32 of 8 per intersection, flattened)::

    [queue_0..3 / 40, phase == 0, phase == 1, min(green steps, 20) / 20, yellow]

Actions: Discrete(2), the wanted phase (a ``rows x cols`` grid: MultiDiscrete([2] * n), one
wanted phase per intersection, as a configuration for later multi-agent work).

Reward: minus the total waiting in the step, in vehicle-minutes (sum of queues x 5 s / 60);
``info["waiting_per_intersection"]`` splits it per intersection.

Termination: none (traffic goes on). Truncation: the registered time limit, 360 steps (30 min).
There is no success flag.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drlzero.envs.scenarios import _draw

STEP_S = 5.0
LANES = 4
MIN_GREEN = 2  # steps
YELLOW = 1  # steps
MAX_QUEUE = 40
SAT_TRIES, SAT_P = 3, 0.8  # discharge per green step ~ Binomial(3, 0.8)
MAIN_RATE = (0.08, 0.20)  # veh/s per lane on the main road, before the peak
SIDE_RATE = (0.02, 0.08)  # veh/s per lane on the side road
PEAK = 0.5  # the rates swell by up to +50% mid-episode
EPISODE_STEPS = 360
GREEN_CAP = 20  # green steps shown in the observation saturate here
PHASE_LANES = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)  # (phases, lanes)


class TrafficSignalEnv(gym.Env):
    """Signal control at one intersection or a ``rows x cols`` grid (see the module doc).

    Args:
        rows: grid rows of intersections.
        cols: grid columns of intersections.
        render_mode: None or ``rgb_array``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, rows: int = 1, cols: int = 1, render_mode: str | None = None) -> None:
        if rows < 1 or cols < 1:
            raise ValueError(f"rows={rows}, cols={cols} must be >= 1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: only rgb_array is supported")
        self.rows, self.cols = rows, cols
        self.n = rows * cols
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (8 * self.n,), dtype=np.float32)
        self.action_space: spaces.Space = (
            spaces.Discrete(2) if self.n == 1 else spaces.MultiDiscrete([2] * self.n)
        )
        # Which lanes receive outside arrivals: (I, 4) edge mask in row-major order.
        r_I, c_I = np.divmod(np.arange(self.n), cols)
        self.edge_IL = np.stack(
            [r_I == 0, r_I == rows - 1, c_I == cols - 1, c_I == 0], axis=1
        ).astype(np.float64)
        self.queue_IL = np.zeros((self.n, LANES), dtype=np.int64)
        self.phase_I = np.zeros(self.n, dtype=np.int64)
        self.green_I = np.zeros(self.n, dtype=np.int64)  # steps of green in the current phase
        self.yellow_I = np.zeros(self.n, dtype=np.int64)  # yellow steps left
        self.base_rate_L = np.zeros(LANES)  # veh/s
        self.t = 0
        self.blocked = 0
        self.passed = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        main, side = rng.uniform(*MAIN_RATE), rng.uniform(*SIDE_RATE)
        ns_main = bool(rng.integers(2))
        ns, ew = (main, side) if ns_main else (side, main)
        # Each direction of a road gets its own share (0.8-1.2) of the road's rate.
        self.base_rate_L = np.array([ns, ns, ew, ew]) * rng.uniform(0.8, 1.2, LANES)
        self.queue_IL = rng.integers(0, 4, (self.n, LANES))
        self.phase_I = rng.integers(0, 2, self.n)
        self.green_I = np.full(self.n, MIN_GREEN, dtype=np.int64)
        self.yellow_I = np.zeros(self.n, dtype=np.int64)
        self.t = 0
        self.blocked = 0
        self.passed = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        want_I = np.asarray(action, dtype=np.int64).reshape(self.n)
        # Signals: yellow counts down; a switch request after min green starts yellow.
        in_yellow_I = self.yellow_I > 0
        self.yellow_I -= in_yellow_I
        switch_I = (want_I != self.phase_I) & (self.green_I >= MIN_GREEN) & ~in_yellow_I
        if switch_I.any():
            self.phase_I[switch_I] = want_I[switch_I]
            self.yellow_I[switch_I] = YELLOW
            self.green_I[switch_I] = 0
        serving_I = self.yellow_I == 0
        self.green_I += serving_I
        green_IL = PHASE_LANES[self.phase_I] & serving_I[:, None]
        # Discharge from green lanes; crossing vehicles move on to the next intersection.
        rng = self.np_random
        out_IL = np.minimum(self.queue_IL, rng.binomial(SAT_TRIES, SAT_P, self.queue_IL.shape))
        out_IL *= green_IL
        self.queue_IL -= out_IL
        # Outside arrivals at the edges, with a peak mid-episode.
        peak = 1.0 + PEAK * math.sin(math.pi * min(self.t / EPISODE_STEPS, 1.0))
        inflow_IL = rng.poisson(self.edge_IL * self.base_rate_L * (peak * STEP_S))
        if self.n > 1:
            routed_IL = self._route(out_IL)
            inflow_IL += routed_IL
            self.passed += int(out_IL.sum() - routed_IL.sum())  # left the network
        else:
            self.passed += int(out_IL.sum())
        room_IL = MAX_QUEUE - self.queue_IL
        over_IL = inflow_IL - room_IL
        if (over_IL > 0).any():
            self.blocked += int(over_IL[over_IL > 0].sum())
            inflow_IL = np.minimum(inflow_IL, room_IL)
        self.queue_IL += inflow_IL
        self.t += 1
        waiting_I = self.queue_IL.sum(axis=1) * (STEP_S / 60.0)  # vehicle-minutes
        info = {
            "waiting_per_intersection": waiting_I,
            "blocked": self.blocked,
            "passed": self.passed,
        }
        return self._obs(), -float(waiting_I.sum()), False, False, info

    def _route(self, out_IL: np.ndarray) -> np.ndarray:
        """Where vehicles that crossed each intersection go next (same direction)."""
        grid = out_IL.reshape(self.rows, self.cols, LANES)
        into = np.zeros_like(grid)
        into[1:, :, 0] = grid[:-1, :, 0]  # southbound: to the row below
        into[:-1, :, 1] = grid[1:, :, 1]  # northbound: to the row above
        into[:, :-1, 2] = grid[:, 1:, 2]  # westbound: to the column on the left
        into[:, 1:, 3] = grid[:, :-1, 3]  # eastbound: to the column on the right
        return into.reshape(self.n, LANES)

    def _obs(self) -> np.ndarray:
        obs_I8 = np.empty((self.n, 8), dtype=np.float32)
        obs_I8[:, :4] = self.queue_IL
        obs_I8[:, :4] /= MAX_QUEUE
        obs_I8[:, 4] = self.phase_I == 0
        obs_I8[:, 5] = self.phase_I == 1
        obs_I8[:, 6] = np.minimum(self.green_I, GREEN_CAP)
        obs_I8[:, 6] /= GREEN_CAP
        obs_I8[:, 7] = self.yellow_I > 0
        return obs_I8.reshape(-1)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        cell = 160
        frame = _draw.canvas(cell * self.rows, cell * self.cols, (90, 160, 90))
        for i in range(self.n):
            r, c = divmod(i, self.cols)
            top, left, mid = r * cell, c * cell, cell // 2
            _draw.rect(frame, top + mid - 12, left, top + mid + 12, left + cell, (70, 70, 70))
            _draw.rect(frame, top, left + mid - 12, top + cell, left + mid + 12, (70, 70, 70))
            q = self.queue_IL[i]
            car, step = (230, 200, 40), 5
            for k in range(min(int(q[0]), 12)):  # southbound, waiting north of the centre
                _draw.rect(
                    frame,
                    top + mid - 16 - step * k - 4,
                    left + mid - 10,
                    top + mid - 16 - step * k,
                    left + mid - 2,
                    car,
                )
            for k in range(min(int(q[1]), 12)):  # northbound, waiting south
                _draw.rect(
                    frame,
                    top + mid + 16 + step * k,
                    left + mid + 2,
                    top + mid + 20 + step * k,
                    left + mid + 10,
                    car,
                )
            for k in range(min(int(q[2]), 12)):  # westbound, waiting east
                _draw.rect(
                    frame,
                    top + mid - 10,
                    left + mid + 16 + step * k,
                    top + mid - 2,
                    left + mid + 20 + step * k,
                    car,
                )
            for k in range(min(int(q[3]), 12)):  # eastbound, waiting west
                _draw.rect(
                    frame,
                    top + mid + 2,
                    left + mid - 20 - step * k,
                    top + mid + 10,
                    left + mid - 16 - step * k,
                    car,
                )
            ns_color = (40, 200, 40) if self.phase_I[i] == 0 else (220, 40, 40)
            ew_color = (40, 200, 40) if self.phase_I[i] == 1 else (220, 40, 40)
            if self.yellow_I[i] > 0:
                ns_color = ew_color = (240, 170, 30)
            _draw.disc(frame, top + mid - 14, left + mid + 14, 4, ns_color)
            _draw.disc(frame, top + mid + 14, left + mid + 14, 4, ew_color)
        return frame
