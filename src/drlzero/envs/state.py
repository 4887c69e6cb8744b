"""Env state snapshots in plain data (JSON + arrays), for exact resume without pickle.

A snapshot walks the wrapper chain and stores each layer's data attributes (numbers, strings,
numeric arrays, random generators). Static structure (spaces, specs, lookup tables) is left as the
fresh env builds it. If a layer holds an object we cannot express as data (a physics engine's
world, say), the env is not snapshot-able: resume then starts fresh episodes and says so.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# Attributes that hold structure or rendering handles rather than dynamic state.
_SKIP = {
    "observation_space",
    "action_space",
    "single_observation_space",
    "single_action_space",
    "spec",
    "metadata",
    "render_mode",
    "env",
    "screen",
    "clock",
    "window",
    "window_surface",
    "surf",
    "viewer",
    "_previous_data",  # PassiveEnvChecker's debugging copy of the last step
}
_SCALARS = (bool, int, float, str, type(None), np.integer, np.floating, np.bool_)


def _encode(value: Any) -> tuple[bool, Any]:
    """(ok, data) for one attribute value; ok=False means: not plain data."""
    if isinstance(value, _SCALARS):
        return True, value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.random.Generator):
        return True, {"__rng__": value.bit_generator.state}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return True, {"__nd__": value.tolist(), "dtype": str(value.dtype)}
        return True, None  # e.g. a map of bytes: static structure
    if isinstance(value, (tuple, list)):
        items = [_encode(v) for v in value]
        if all(ok for ok, _ in items):
            return True, {"__seq__": [d for _, d in items], "tuple": isinstance(value, tuple)}
    return False, None


def _decode(data: Any, current: Any) -> Any:
    if isinstance(data, dict) and "__rng__" in data:
        rng = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        rng.bit_generator.state = data["__rng__"]
        return rng
    if isinstance(data, dict) and "__nd__" in data:
        return np.asarray(data["__nd__"], dtype=data["dtype"])
    if isinstance(data, dict) and "__seq__" in data:
        items = [_decode(d, None) for d in data["__seq__"]]
        return tuple(items) if data["tuple"] else items
    return data


def _layers(env: gym.Env) -> list[Any]:
    out = [env]
    while hasattr(out[-1], "env") and isinstance(out[-1].env, gym.Env):
        out.append(out[-1].env)
    return out


def _is_static(value: Any) -> bool:
    return isinstance(value, (gym.Space, dict, gym.envs.registration.EnvSpec)) or callable(value)


def get_env_state(env: gym.Env) -> list[dict[str, Any]] | None:
    """The env's dynamic state as JSON-able data, or None if it holds non-data objects."""
    state: list[dict[str, Any]] = []
    for layer in _layers(env):
        attrs: dict[str, Any] = {}
        for key, value in vars(layer).items():
            if key in _SKIP or isinstance(value, gym.Env):
                continue
            ok, data = _encode(value)
            if ok:
                if data is not None or value is None:
                    attrs[key] = data
            elif not _is_static(value):
                return None
        state.append(attrs)
    return state


def set_env_state(env: gym.Env, state: list[dict[str, Any]]) -> None:
    """Restore a :func:`get_env_state` snapshot into a freshly made env of the same id."""
    layers = _layers(env)
    if len(layers) != len(state):
        raise ValueError("env wrapper chain differs from the snapshot")
    for layer, attrs in zip(layers, state, strict=True):
        for key, data in attrs.items():
            setattr(layer, key, _decode(data, getattr(layer, key, None)))


def get_vec_env_state(envs: gym.vector.VectorEnv) -> list[Any] | None:
    """Snapshots of each sub-env of a SyncVectorEnv (None if any is not snapshot-able)."""
    subs = getattr(envs, "envs", None)
    if subs is None:
        return None
    states = [get_env_state(e) for e in subs]
    return None if any(s is None for s in states) else states


def set_vec_env_state(envs: gym.vector.VectorEnv, states: list[Any]) -> None:
    for e, s in zip(envs.envs, states, strict=True):  # type: ignore[attr-defined]
        set_env_state(e, s)
