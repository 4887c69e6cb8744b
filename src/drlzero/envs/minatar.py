"""MinAtar games (Young & Tian 2019, arXiv:1903.03176) as ordinary ``env.id`` values.

``MinAtar/Breakout-v1`` and the other MinAtar ids exist in Gymnasium's registry only after
``minatar.gym.register_envs()``; :func:`register` runs it the first time such an id is asked
for, so ``make_env`` accepts them with no import by the user (``pip install drlzero[minatar]``).
``-v0`` ids use all 6 actions (as the paper), ``-v1`` ids each game's minimal action set.

MinAtar emits (10, 10, C) bool grids. :func:`channels_first` turns them into (C, 10, 10): the
CNN encoders guess the layout from the shape, and Seaquest's (10, 10, 10) would be read as
channel-first otherwise. Observations stay bool (1 byte per cell in the replay buffer); the
MinAtar CNN casts them to float.

Nothing here imports torch; ``minatar`` (which pulls in matplotlib and seaborn, ~1-4 s) is
imported only when a MinAtar id is used.

Example:
    >>> from drlzero.config import EnvConfig
    >>> from drlzero.envs import make_env
    >>> env = make_env(EnvConfig(id="MinAtar/Breakout-v1"))  # doctest: +SKIP
    >>> env.reset(seed=0)[0].shape  # doctest: +SKIP
    (4, 10, 10)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from drlzero.errors import ConfigError

__all__ = ["PREFIX", "channels_first", "register"]

PREFIX = "MinAtar/"


def register() -> None:
    """Register MinAtar's Gymnasium ids (idempotent; a one-line error if MinAtar is missing)."""
    if any(k.startswith(PREFIX) for k in gym.registry):
        return
    try:
        import minatar.gym
    except ImportError:
        raise ConfigError(
            "MinAtar ids need the minatar package: pip install 'drlzero[minatar]'"
        ) from None
    minatar.gym.register_envs()


def _to_chw(obs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(obs.transpose(2, 0, 1))


def channels_first(env: gym.Env) -> gym.Env:
    """View a (H, W, C) MinAtar env as (C, H, W), keeping the dtype (bool)."""
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and len(space.shape) == 3
    h, w, c = space.shape
    chw = gym.spaces.Box(
        low=_to_chw(space.low), high=_to_chw(space.high), shape=(c, h, w), dtype=space.dtype
    )
    return gym.wrappers.TransformObservation(env, _to_chw, chw)
