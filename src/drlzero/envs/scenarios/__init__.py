"""Application scenarios as Gymnasium environments, registered under ``drlzero/...``.

Importing this package registers every id (idempotently) without importing the env modules,
which load on ``gymnasium.make``; the MuJoCo and SUMO backends need their extras only then.

=============================  ===============================================  ===========
id                             what                                             time limit
=============================  ===============================================  ===========
drlzero/CatchBall-v0           paddle robot catches thrown balls (6 sensors)    100
drlzero/CatchBallPixels-v0     same, uint8 32x32x2 frames (now, previous)       100
drlzero/CatchBallText-v0       same, one sentence                               100
drlzero/SmartHome-v0           a day of room climate and lights                 96
drlzero/SmartHomeText-v0       same, one sentence                               96
drlzero/TrafficSignal-v0       one signalised intersection                      360
drlzero/TrafficGrid-v0         a 2x2 grid of them (MultiDiscrete actions)       360
drlzero/Trading-v0             one asset, short/flat/long, transaction costs    250
drlzero/ArmReach-v0            MuJoCo Reacher-v5, 25 discrete torques (mujoco)  50
drlzero/ArmReachContinuous-v0  same, Box([-1, 1]^2) torques (mujoco)            50
drlzero/TrafficSignalSumo-v0   one intersection in SUMO (extra: sumo)           360
=============================  ===============================================  ===========
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

_PKG = "drlzero.envs.scenarios"

#: id -> (entry point, time limit, kwargs)
SCENARIOS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "drlzero/CatchBall-v0": (f"{_PKG}.catch_ball:CatchBallEnv", 100, {}),
    "drlzero/CatchBallPixels-v0": (
        f"{_PKG}.catch_ball:CatchBallEnv",
        100,
        {"obs_mode": "pixels"},
    ),
    "drlzero/CatchBallText-v0": (f"{_PKG}.catch_ball:CatchBallEnv", 100, {"obs_mode": "text"}),
    "drlzero/SmartHome-v0": (f"{_PKG}.smart_home:SmartHomeEnv", 96, {}),
    "drlzero/SmartHomeText-v0": (f"{_PKG}.smart_home:SmartHomeEnv", 96, {"obs_mode": "text"}),
    "drlzero/TrafficSignal-v0": (f"{_PKG}.traffic_signal:TrafficSignalEnv", 360, {}),
    "drlzero/TrafficGrid-v0": (
        f"{_PKG}.traffic_signal:TrafficSignalEnv",
        360,
        {"rows": 2, "cols": 2},
    ),
    "drlzero/Trading-v0": (f"{_PKG}.trading:TradingEnv", 250, {}),
    "drlzero/ArmReach-v0": (f"{_PKG}.arm_reach:make_arm_reach", 50, {}),
    "drlzero/ArmReachContinuous-v0": (
        f"{_PKG}.arm_reach:make_arm_reach",
        50,
        {"continuous": True},
    ),
    "drlzero/TrafficSignalSumo-v0": (f"{_PKG}.traffic_sumo:SumoTrafficSignalEnv", 360, {}),
}


def register_all() -> None:
    """Register every scenario id that is not registered yet."""
    for env_id, (entry_point, limit, kwargs) in SCENARIOS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=limit, kwargs=kwargs)


register_all()
