"""Action masks held in a ``Dict`` observation, moved into ``info["action_mask"]``.

``env.action_mask=obs:KEY`` reads the mask from observation key ``KEY`` (e.g. PettingZoo-style
``{"observation": ..., "action_mask": ...}``). :class:`MaskFromObs` takes the key out of the
observation and reports it in the info instead, so the encoder sees only the state and every
mask, whichever its source, reaches the learner by one route (:mod:`drlzero.masks`), with the
final step's mask in ``final_info`` under vector autoreset like any info key.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.errors import ConfigError

INFO_KEY = "action_mask"


class MaskFromObs(gym.Wrapper):
    """Move observation key ``key`` (the action mask) into ``info["action_mask"]``.

    The observation space loses the key; if one key is left, the observation is that key's
    value alone (a ``Box`` an MLP or CNN reads directly).

    Args:
        env: an env with a ``Dict`` observation space holding ``key``.
        key: the observation key of the mask.
    """

    def __init__(self, env: gym.Env, key: str) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or key not in space.spaces:
            keys = sorted(space.spaces) if isinstance(space, gym.spaces.Dict) else None
            raise ConfigError(
                f"env.action_mask=obs:{key} needs a Dict observation with key {key!r}, got "
                f"{space if keys is None else keys}: set env.action_mask to info, none or "
                "obs:<one of the keys>"
            )
        self.key = key
        rest = {k: s for k, s in space.spaces.items() if k != key}
        self._single = next(iter(rest)) if len(rest) == 1 else None
        self.observation_space = rest[self._single] if self._single else gym.spaces.Dict(rest)

    def _split(self, obs: dict[str, Any], info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        rest = {k: v for k, v in obs.items() if k != self.key}
        info = {**info, INFO_KEY: np.asarray(obs[self.key], dtype=bool)}
        return (rest[self._single] if self._single else rest), info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self._split(obs, info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, term, trunc, info = self.env.step(action)
        obs, info = self._split(obs, info)
        return obs, reward, term, trunc, info
