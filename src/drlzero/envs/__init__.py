"""Environment factories: single and vector Gymnasium envs, with clear errors for bad ids.

Vector envs run in ``AutoresetMode.SAME_STEP``: the step that ends an episode returns the reset
observation of the next one and the true last observation in ``info["final_obs"]``, so every
step is a real transition and nothing has to be skipped (the NEXT_STEP default would return one
fake transition per episode end).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from drlzero.config import EnvConfig
from drlzero.errors import ConfigError

__all__ = ["episode_successes", "make_env", "make_vec_env", "registered_env_ids"]


def registered_env_ids() -> list[str]:
    return sorted(gym.registry.keys())


def _check_id(env_id: str) -> None:
    if env_id in gym.registry:
        return
    ids = registered_env_ids()
    close = difflib.get_close_matches(env_id, ids, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"unknown environment {env_id!r}: {hint}see 'drlzero list' for registered ids"
    )


def make_env(cfg: EnvConfig, *, render_mode: str | None = None) -> gym.Env:
    """One env as ``cfg`` describes it, with a time limit if it has none and one is asked for."""
    _check_id(cfg.id)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        return gym.make(cfg.id, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"env.kwargs {cfg.kwargs} do not fit {cfg.id}: {exc}") from None
    except gym.error.DependencyNotInstalled as exc:
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{cfg.id} needs an extra dependency: {msg}") from None


def make_vec_env(cfg: EnvConfig, *, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` (default ``cfg.num_envs``) copies in SAME_STEP autoreset."""
    n = num_envs or cfg.num_envs
    make_env(cfg).close()  # surface id/kwargs/dependency errors here, not in a worker process
    fns: list[Callable[[], gym.Env]] = [lambda: make_env(cfg) for _ in range(n)]
    if cfg.vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def episode_successes(
    info: dict[str, Any],
    done_E: np.ndarray,
    returns_E: np.ndarray,
    success_return: float | None,
) -> np.ndarray:
    """Success flags (float, NaN where unknown) of the episodes that ended at this step.

    Uses the env's ``is_success`` from the final step's info when it reports one, else the
    configured return threshold; NaN when neither exists.
    """
    out = np.full(done_E.shape, np.nan)
    final = info.get("final_info")
    if isinstance(final, dict) and "is_success" in final:
        mask = final.get("_is_success", done_E)
        flags = np.asarray(final["is_success"], dtype=float)
        out = np.where(done_E & mask, flags, out)
    if success_return is not None:
        out = np.where(done_E & np.isnan(out), (returns_E >= success_return).astype(float), out)
    return out
