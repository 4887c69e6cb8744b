"""Hand-written baseline controllers for the scenario envs, and their evaluation.

A baseline is a function from a batch of observations to a batch of actions, exactly like a
trained agent's greedy policy, so both run through the same
:func:`drlzero.train.evaluate.evaluate_policy` on the same seeds: a paired comparison. Baselines
act from the observation only (no peeking at the env's internals); each scenario's observation
carries what its classic controller needs.

``BASELINES[env_id][name]`` is the controller; the first name listed for an env is the one its
preset's agent is measured against.

Example:
    >>> from drlzero.config import EnvConfig
    >>> res = evaluate_baseline(EnvConfig(id="drlzero/Trading-v0"), "buy_and_hold", 2, seed=0)
    >>> sorted(res)[:2]
    ['episodes', 'mean_length']
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

from drlzero.config import EnvConfig
from drlzero.envs.scenarios import arm_reach, catch_ball, smart_home, traffic_signal
from drlzero.errors import ConfigError

Controller = Callable[[np.ndarray], np.ndarray]

# ---------------------------------------------------------------------------------- CatchBall


def _paddle_to(target_B: np.ndarray, obs_B6: np.ndarray) -> np.ndarray:
    """Push towards ``target_B``: a P controller on position that sets the wanted velocity."""
    px_B, pv_B = obs_B6[:, 0], obs_B6[:, 1]
    want_v_B = np.clip(8.0 * (target_B - px_B), -catch_ball.PADDLE_VMAX, catch_ball.PADDLE_VMAX)
    push_B = np.where(want_v_B > pv_B + 0.05, 1, np.where(want_v_B < pv_B - 0.05, -1, 0))
    return (push_B + 1).astype(np.int64)


def catch_track(obs_B6: np.ndarray) -> np.ndarray:
    """Follow the ball's current x (a reactive tracker that does not predict the flight)."""
    return _paddle_to(obs_B6[:, 2], obs_B6)


def catch_intercept(obs_B6: np.ndarray) -> np.ndarray:
    """Go to where the ball will land (exact ballistics and wall bounces: a model-based oracle)."""
    return _paddle_to(catch_ball.landing_x(obs_B6), obs_B6)


# ---------------------------------------------------------------------------------- SmartHome


def _home_action(mode_B: np.ndarray, obs_B: np.ndarray) -> np.ndarray:
    """Curtains open; the lamp on when someone is home, awake and it is dark."""
    dark_B = (obs_B[:, 7] > 0.5) & (obs_B[:, 8] < 0.5) & (obs_B[:, 5] < smart_home.LIGHT_NEED)
    return (4 * mode_B + 2 + dark_B).astype(np.int64)


def home_thermostat(obs_B: np.ndarray) -> np.ndarray:
    """A programmable thermostat: holds the preferred temperature (2 C less at night) all day,
    home or not, heating below it by 0.5 C and cooling above it by 0.5 C."""
    t_in_B, preferred_B = 30.0 * obs_B[:, 2], 30.0 * obs_B[:, 9]
    target_B = preferred_B - smart_home.SLEEP_SETBACK * (obs_B[:, 8] > 0.5)
    mode_B = np.where(t_in_B < target_B - 0.5, 1, np.where(t_in_B > target_B + 0.5, 2, 0))
    return _home_action(mode_B, obs_B)


def home_off(obs_B: np.ndarray) -> np.ndarray:
    """No heating or cooling at all (lights as needed): the zero-energy reference."""
    return _home_action(np.zeros(len(obs_B), dtype=np.int64), obs_B)


# ------------------------------------------------------------------------------ TrafficSignal

FIXED_GREEN_STEPS = 6  # 30 s of green per phase: a 70 s cycle with the two yellows


def _per_intersection(obs_B: np.ndarray) -> np.ndarray:
    return obs_B.reshape(len(obs_B), -1, 8)


def _signal_actions(want_BI: np.ndarray) -> np.ndarray:
    return want_BI[:, 0] if want_BI.shape[1] == 1 else want_BI


def traffic_fixed_time(obs_B: np.ndarray) -> np.ndarray:
    """A fixed-time plan: 30 s green for each phase in turn, whatever the queues."""
    o_BI8 = _per_intersection(obs_B)
    phase_BI = o_BI8[..., 5].round().astype(np.int64)
    green_BI = np.rint(o_BI8[..., 6] * traffic_signal.GREEN_CAP)
    want_BI = np.where(green_BI >= FIXED_GREEN_STEPS, 1 - phase_BI, phase_BI)
    return _signal_actions(want_BI)


def traffic_longest_queue(obs_B: np.ndarray) -> np.ndarray:
    """Actuated control: green for the phase with more queued vehicles (ties keep the phase)."""
    o_BI8 = _per_intersection(obs_B)
    ns_BI = o_BI8[..., 0] + o_BI8[..., 1]
    ew_BI = o_BI8[..., 2] + o_BI8[..., 3]
    phase_BI = o_BI8[..., 5].round().astype(np.int64)
    want_BI = np.where(ns_BI > ew_BI, 0, np.where(ew_BI > ns_BI, 1, phase_BI))
    return _signal_actions(want_BI)


# ------------------------------------------------------------------------------------ Trading


def trade_buy_and_hold(obs_B: np.ndarray) -> np.ndarray:
    """Go long at the start and stay long."""
    return np.full(len(obs_B), 2, dtype=np.int64)


def trade_flat(obs_B: np.ndarray) -> np.ndarray:
    """Never trade (return 0)."""
    return np.ones(len(obs_B), dtype=np.int64)


def trade_momentum(obs_B: np.ndarray) -> np.ndarray:
    """Long when the last 20 steps went up on average, short when they went down."""
    return np.where(obs_B[:, 3] >= 0.0, 2, 0).astype(np.int64)


# ---------------------------------------------------------------------------------- ArmReach

LINK1, LINK2 = 0.1, 0.11  # m: Reacher's upper arm and forearm (to the fingertip)
ARM_KP, ARM_KD = 60.0, 0.2


def arm_pd_torques(obs_B: np.ndarray) -> np.ndarray:
    """Jacobian-transpose PD control towards the target, clipped to the torque range [-1, 1]:
    ``tau = Kp * J(q)^T (target - tip) - Kd * dq`` (a textbook operational-space controller)."""
    return np.clip(_arm_pd_raw(obs_B), -1.0, 1.0).astype(np.float32)


def arm_zero_torques(obs_B: np.ndarray) -> np.ndarray:
    """No torque (continuous actions): the arm stays where it starts."""
    return np.zeros((len(obs_B), 2), dtype=np.float32)


def arm_pd(obs_B: np.ndarray) -> np.ndarray:
    """:func:`arm_pd_torques` before clipping, rounded to the nearest torque level of the grid."""
    tau_B2 = _arm_pd_raw(obs_B)
    levels_K = np.asarray(arm_reach.LEVELS)
    idx_B2 = np.abs(tau_B2[..., None] - levels_K).argmin(axis=-1)
    return (idx_B2[:, 0] * len(levels_K) + idx_B2[:, 1]).astype(np.int64)


def _arm_pd_raw(obs_B: np.ndarray) -> np.ndarray:
    q1_B, q2_B = arm_reach.joint_angles(obs_B)
    s1, c1 = np.sin(q1_B), np.cos(q1_B)
    s12, c12 = np.sin(q1_B + q2_B), np.cos(q1_B + q2_B)
    ex_B, ey_B = -obs_B[:, 8], -obs_B[:, 9]  # target - tip
    tau1_B = ARM_KP * ((-LINK1 * s1 - LINK2 * s12) * ex_B + (LINK1 * c1 + LINK2 * c12) * ey_B)
    tau2_B = ARM_KP * (-LINK2 * s12 * ex_B + LINK2 * c12 * ey_B)
    return np.stack([tau1_B, tau2_B], axis=1) - ARM_KD * obs_B[:, 6:8]


def arm_zero(obs_B: np.ndarray) -> np.ndarray:
    """No torque: the arm stays where it starts."""
    return np.full(len(obs_B), len(arm_reach.LEVELS) ** 2 // 2, dtype=np.int64)


def sumo_fixed_time(obs_B: np.ndarray) -> np.ndarray:
    """SUMO's own fixed-time program (the env runs it with ``fixed_time=True``; actions are
    ignored)."""
    return np.zeros(len(obs_B), dtype=np.int64)


# --------------------------------------------------------------------------------------------

BASELINES: dict[str, dict[str, Controller]] = {
    "drlzero/CatchBall-v0": {"track": catch_track, "intercept": catch_intercept},
    "drlzero/SmartHome-v0": {"thermostat": home_thermostat, "off": home_off},
    "drlzero/TrafficSignal-v0": {
        "fixed_time": traffic_fixed_time,
        "longest_queue": traffic_longest_queue,
    },
    "drlzero/TrafficGrid-v0": {
        "fixed_time": traffic_fixed_time,
        "longest_queue": traffic_longest_queue,
    },
    "drlzero/ArmReach-v0": {"zero": arm_zero, "pd": arm_pd},
    "drlzero/ArmReachContinuous-v0": {"zero": arm_zero_torques, "pd": arm_pd_torques},
    "drlzero/TrafficSignalSumo-v0": {"fixed_time": sumo_fixed_time},
    "drlzero/Trading-v0": {
        "buy_and_hold": trade_buy_and_hold,
        "flat": trade_flat,
        "momentum": trade_momentum,
    },
}


#: Env kwargs a baseline needs on top of the evaluated config (SUMO's own signal program).
BASELINE_ENV_KWARGS: dict[tuple[str, str], dict[str, Any]] = {
    ("drlzero/TrafficSignalSumo-v0", "fixed_time"): {"fixed_time": True},
}


#: The baseline every env has: uniform random actions, the "chance" figure results are read against.
RANDOM = "random"


def random_controller(env_cfg: EnvConfig, seed: int = 0) -> Controller:
    """Uniformly random actions over ``env_cfg``'s action space, whatever its type (Discrete,
    MultiDiscrete, Box, Dict ...), for any observations (arrays, Dict, Text).

    The batch size is read from each observation batch, so the controller fits any vector env;
    ``seed`` fixes the action draws.
    """
    from gymnasium.vector.utils import batch_space

    from drlzero.envs import make_env

    env = make_env(env_cfg, training=False)
    single = env.action_space
    env.close()
    spaces: dict[int, Any] = {}

    def act(obs_B: Any) -> Any:
        n = _batch_size(obs_B)
        if n not in spaces:
            spaces[n] = batch_space(single, n)
            spaces[n].seed(seed + n)
        return spaces[n].sample()

    return act


def _batch_size(obs_B: Any) -> int:
    """Rows of a vector env's observation batch: an array, a Dict of arrays or a tuple (Text)."""
    if isinstance(obs_B, dict):
        return _batch_size(next(iter(obs_B.values())))
    return len(obs_B)


def get_baseline(env_id: str, name: str) -> Controller:
    """The controller ``name`` for ``env_id``; a :class:`ConfigError` names the choices.

    ``random`` is not in the table (it needs the env's action space): see
    :func:`random_controller`.
    """
    if env_id not in BASELINES:
        known = ", ".join(sorted(BASELINES))
        raise ConfigError(
            f"no baseline {name!r} for {env_id}: it has only {RANDOM!r} "
            f"(hand-written baselines exist for {known})"
        )
    table = BASELINES[env_id]
    if name not in table:
        choices = [*table, RANDOM]
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown baseline {name!r} for {env_id}: {hint}choose one of {', '.join(choices)}"
        )
    return table[name]


def evaluate_baseline(
    env_cfg: EnvConfig, name: str, episodes: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Run baseline ``name`` (``random`` for every env) on the env of ``env_cfg``.

    Uses the same evaluator (and so the same episode seeds) as a trained agent's evaluation.

    Returns:
        ``mean_return``, ``std_return``, ``mean_length``, ``success_rate`` (NaN when the env
        defines no success) and ``episodes``.
    """
    from drlzero.train.evaluate import evaluate_policy

    if name == RANDOM:
        return evaluate_policy(random_controller(env_cfg, seed), env_cfg, episodes, seed)
    controller = get_baseline(env_cfg.id, name)
    extra = BASELINE_ENV_KWARGS.get((env_cfg.id, name))
    if extra:
        env_cfg = dataclasses.replace(env_cfg, kwargs={**env_cfg.kwargs, **extra})
    return evaluate_policy(controller, env_cfg, episodes, seed)
