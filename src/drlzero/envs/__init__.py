"""Environment factories: single and vector Gymnasium envs, with clear errors for bad ids.

Vector envs run in ``AutoresetMode.SAME_STEP``: the step that ends an episode returns the reset
observation of the next one and the true last observation in ``info["final_obs"]``, so every
step is a real transition and nothing has to be skipped (the NEXT_STEP default would return one
fake transition per episode end).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from drlzero.config import EnvConfig
from drlzero.envs import atari as _atari
from drlzero.envs import minatar as _minatar
from drlzero.errors import ConfigError

__all__ = [
    "episode_successes",
    "make_env",
    "make_vec_env",
    "real_next_obs",
    "registered_env_ids",
    "stack_obs",
]


def registered_env_ids() -> list[str]:
    return sorted(gym.registry.keys())


def _check_id(env_id: str) -> None:
    if env_id in gym.registry:
        return
    for games in (_minatar, _atari):  # their ids exist once their package is imported
        if env_id.startswith(games.PREFIX):
            games.register()
            if env_id in gym.registry:
                return
    ids = registered_env_ids()
    close = difflib.get_close_matches(env_id, ids, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"unknown environment {env_id!r}: {hint}see 'drlzero list' for registered ids"
    )


def make_env(cfg: EnvConfig, *, render_mode: str | None = None, training: bool = True) -> gym.Env:
    """One env as ``cfg`` describes it, with a time limit if it has none and one is asked for.

    ``training=False`` builds the evaluation variant of ``cfg.wrappers`` (atari: whole games,
    unclipped rewards)."""
    _check_id(cfg.id)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if "atari" in cfg.wrappers:
        kwargs = _atari.base_kwargs(cfg.id, kwargs)
    try:
        env = gym.make(cfg.id, **kwargs)
        if cfg.id.startswith(_minatar.PREFIX):
            env = _minatar.channels_first(env)
        if "atari" in cfg.wrappers:
            env = _atari.wrap(env, training=training)
        if cfg.action_mask.startswith("obs:"):  # the mask travels in info from here on
            from drlzero.envs.masking import MaskFromObs

            env = MaskFromObs(env, cfg.action_mask[len("obs:") :])
        return env
    except TypeError as exc:
        raise ConfigError(f"env.kwargs {cfg.kwargs} do not fit {cfg.id}: {exc}") from None
    except gym.error.DependencyNotInstalled as exc:
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{cfg.id} needs an extra dependency: {msg}") from None


def make_vec_env(
    cfg: EnvConfig, *, num_envs: int | None = None, training: bool = True
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` (default ``cfg.num_envs``) copies in SAME_STEP autoreset
    (``training=False``: the evaluation variant, see :func:`make_env`)."""
    n = num_envs or cfg.num_envs
    # surface id/kwargs/dependency errors here, not in a worker process
    make_env(cfg, training=training).close()
    fns: list[Callable[[], gym.Env]] = [lambda: make_env(cfg, training=training) for _ in range(n)]
    if cfg.vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    from drlzero.envs.vector import SameStepSyncVectorEnv

    return SameStepSyncVectorEnv(fns)


def stack_obs(items: Sequence[Any]) -> Any:
    """Stack single observations (arrays or dicts of arrays) into one batch."""
    if isinstance(items[0], dict):
        return {k: np.stack([np.asarray(it[k]) for it in items]) for k in items[0]}
    return np.stack([np.asarray(it) for it in items])


def real_next_obs(
    next_obs: np.ndarray, any_done: bool, info: dict[str, Any], prep: Callable[[Any], np.ndarray]
) -> np.ndarray:
    """The true next observations of one vector step, for the transitions to store.

    Under SAME_STEP autoreset an env whose episode ended returns the next episode's first
    observation; its true last one is in ``info["final_obs"]`` and goes through ``prep`` (the
    encoder's env-boundary step) like every stored observation.
    """
    if not any_done:
        return next_obs
    real = next_obs.copy()
    idx = np.flatnonzero(info["_final_obs"])
    real[idx] = prep(stack_obs([info["final_obs"][i] for i in idx]))
    return real


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


from drlzero.envs import scenarios as _scenarios  # noqa: E402, F401  (registers drlzero/... ids)


def _register_own_envs() -> None:
    from drlzero.envs.named import register as register_named
    from drlzero.envs.text import register

    register()
    register_named()


_register_own_envs()
