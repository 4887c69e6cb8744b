"""``drlzero/TrafficSignalSumo-v0``: the single-intersection task in the real SUMO simulator.

Needs the ``sumo`` extra (``pip install "drlzero[sumo]"``: eclipse-sumo, libsumo, sumo-rl);
``SUMO_HOME`` is set from the ``sumo`` package when unset. The network and routes are
sumo-rl's bundled ``single-intersection`` (a 4-arm junction, about 1 vehicle every 2-3 s).

Observation: sumo-rl's default, Box float32: the green phase one-hot, whether the minimum green
has passed, then per incoming lane the density and the queue (both in [0, 1]).

Actions: Discrete(number of green phases): the green phase for the next 5 s (sumo-rl inserts
the 2 s yellow and holds the 5 s minimum green).

Reward: minus the total waiting in the step, in vehicle-minutes (halted vehicles x 5 s / 60),
as in ``drlzero/TrafficSignal-v0``.

Termination: none. Truncation: the time limit, 360 steps (30 simulated minutes). Each episode
starts a fresh SUMO run whose ``--seed`` comes from the env's generator, so runs are
deterministic under a seed. The simulator's state is not plain data: exact resume starts fresh
episodes. ``fixed_time=True`` runs the net's own fixed-time program (actions are ignored):
the baseline (``drlzero eval --baseline fixed_time --env drlzero/TrafficSignalSumo-v0``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

STEP_S = 5
EPISODE_STEPS = 360


def _import_sumo_rl() -> Any:
    try:
        if "SUMO_HOME" not in os.environ:
            import sumo

            os.environ["SUMO_HOME"] = sumo.SUMO_HOME
        import sumo_rl
    except ImportError as exc:
        raise gym.error.DependencyNotInstalled(
            'drlzero/TrafficSignalSumo-v0 needs SUMO: pip install "drlzero[sumo]"'
        ) from exc
    return sumo_rl


def _waiting_reward(ts: Any) -> float:
    return -float(ts.get_total_queued()) * STEP_S / 60.0


class SumoTrafficSignalEnv(gym.Env):
    """A Gymnasium view of sumo-rl's single-agent ``SumoEnvironment`` (see the module doc).

    Args:
        fixed_time: run the network's fixed-time signal program instead of the actions.
        render_mode: None (SUMO's GUI rendering is not supported here).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, fixed_time: bool = False, render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError("drlzero/TrafficSignalSumo-v0 does not render")
        sumo_rl = _import_sumo_rl()
        nets = Path(sumo_rl.__file__).parent / "nets" / "single-intersection"
        self.fixed_time = fixed_time
        self._kwargs = {
            "net_file": str(nets / "single-intersection.net.xml"),
            "route_file": str(nets / "single-intersection.rou.xml"),
            "single_agent": True,
            "num_seconds": STEP_S * EPISODE_STEPS + 60,
            "delta_time": STEP_S,
            "yellow_time": 2,
            "min_green": 5,
            "reward_fn": _waiting_reward,
            "fixed_ts": fixed_time,
            "sumo_warnings": False,
            "add_per_agent_info": False,
            "additional_sumo_cmd": "--no-step-log",
        }
        self._sumo_rl = sumo_rl
        self.sim = sumo_rl.SumoEnvironment(sumo_seed=0, **self._kwargs)
        box = self.sim.observation_space
        self.observation_space = gym.spaces.Box(
            np.asarray(box.low, np.float32), np.asarray(box.high, np.float32), dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(int(self.sim.action_space.n))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.sim.sumo_seed = int(self.np_random.integers(2**31 - 1))
        obs, _info = self.sim.reset()
        return np.asarray(obs, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, _info = self.sim.step(int(action))
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), {}

    def close(self) -> None:
        self.sim.close()
