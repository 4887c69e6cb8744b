"""Atari 2600 games through ``ale-py`` with the standard DQN preprocessing (Mnih et al. 2015).

``env.wrappers: [atari]`` on an ``ALE/...`` id (``pip install drlzero[atari]``) builds, from the
inside out (:func:`wrap`):

1. the ALE env with ``frameskip=1`` (the preprocessing skips frames itself);
2. Gymnasium's ``AtariPreprocessing``: up to 30 no-op actions after each real reset, frame skip
   4 with a max-pool over the last two frames (sprites flicker), grayscale, 84x84 uint8;
3. training only: :class:`EpisodicLife`, a lost life ends the *training* episode
   (``terminated=True``, so that step does not bootstrap) while the game goes on;
4. :class:`FireReset` where the game needs FIRE to start (Breakout, ...): FIRE after every
   reset, and at evaluation also after every lost life (what training's life-loss resets did);
5. training only: rewards clipped to their sign {-1, 0, 1};
6. ``FrameStackObservation``: the last 4 frames, (4, 84, 84) uint8.

Evaluation envs (``make_vec_env(..., training=False)``) skip 3 and 5, so an evaluation episode
is a whole game and its return the unclipped score. The training loop's own episode returns
are per life and clipped.

ALE v5 ids keep their sticky actions (``repeat_action_probability=0.25``, Machado et al. 2018)
unless ``env.kwargs`` says otherwise, and truncate a game at 108,000 frames (27,000 steps).
Nothing here imports torch.

Example:
    >>> from drlzero.config import EnvConfig
    >>> from drlzero.envs import make_env
    >>> env = make_env(EnvConfig(id="ALE/Breakout-v5", wrappers=["atari"]))  # doctest: +SKIP
    >>> env.observation_space  # doctest: +SKIP
    Box(0, 255, (4, 84, 84), uint8)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.errors import ConfigError

__all__ = ["PREFIX", "EpisodicLife", "FireReset", "base_kwargs", "register", "wrap"]

PREFIX = "ALE/"
FIRE = 1
_INSTALL = "pip install 'drlzero[atari]'"


def register() -> None:
    """Register the ALE ids (idempotent; a one-line error if ale-py is missing)."""
    if any(k.startswith(PREFIX) for k in gym.registry):
        return
    try:
        import ale_py
    except ImportError:
        raise ConfigError(f"ALE/... ids need the ale-py package: {_INSTALL}") from None
    gym.register_envs(ale_py)


def base_kwargs(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``gym.make`` keyword arguments for the raw ALE env under the preprocessing."""
    if not str(gym.spec(env_id).entry_point).startswith("ale_py"):
        raise ConfigError(f"env.wrappers=[atari] needs an ALE/... env, got {env_id}")
    if kwargs.get("frameskip", 1) != 1:
        raise ConfigError(
            f"env.kwargs.frameskip={kwargs['frameskip']} with env.wrappers=[atari]: the atari "
            "preprocessing skips 4 frames itself; drop env.kwargs.frameskip"
        )
    return {**kwargs, "frameskip": 1}


def _lives(info: dict[str, Any]) -> int:
    return int(info.get("lives", 0))


class EpisodicLife(gym.Wrapper):
    """A lost life ends the training episode; the game is reset only after the real game over.

    On a step that loses a life (``info["lives"]`` drops and stays > 0) the wrapper reports
    ``terminated=True``: the learner does not bootstrap over a death. The next ``reset()`` -
    which a vector env's autoreset calls at once - continues the same game with one no-op step
    instead of a new game. A real reset happens after a true termination or truncation, and
    whenever ``reset`` gets a seed or options (a deliberate restart).
    (DeepMind's DQN protocol; cf. ``EpisodicLifeEnv`` in OpenAI Baselines.)
    """

    def __init__(self, env: gym.Env, *, noop_action: int = 0) -> None:
        super().__init__(env)
        self.noop_action = noop_action
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = _lives(info)
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if self.game_over or seed is not None or options is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(self.noop_action)
            if terminated or truncated:  # the no-op itself ended the game
                obs, info = self.env.reset()
        self.game_over = False
        self.lives = _lives(info)
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after a reset (games that wait for it), and optionally after a lost life.

    With ``on_life_loss`` the FIRE step is folded into the step that lost the life (its reward
    added): at evaluation, where lost lives do not reset, a greedy agent trained with
    :class:`EpisodicLife` never had to learn to relaunch the ball itself.
    """

    def __init__(self, env: gym.Env, *, on_life_loss: bool = False) -> None:
        super().__init__(env)
        self.on_life_loss = on_life_loss
        self.lives = 0

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = _lives(info)
        if self.on_life_loss and lives < self.lives and not (terminated or truncated):
            obs, extra, terminated, truncated, info = self.env.step(FIRE)
            reward = float(reward) + float(extra)
            lives = _lives(info)
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, info = self.env.step(FIRE)
        if terminated or truncated:
            obs, info = self.env.reset()
        self.lives = _lives(info)
        return obs, info


def _needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    return len(meanings) >= 3 and meanings[FIRE] == "FIRE"


def wrap(env: gym.Env, *, training: bool = True, frame_stack: int = 4) -> gym.Env:
    """The DQN preprocessing stack around a raw ALE env made with ``frameskip=1``.

    Args:
        env: an ``ALE/...`` env from ``gym.make(id, frameskip=1)``.
        training: add life-loss episode ends and reward clipping (False for evaluation).
        frame_stack: frames per observation.

    Returns:
        The wrapped env: uint8 observations (frame_stack, 84, 84).
    """
    try:
        env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84)
    except gym.error.DependencyNotInstalled:
        raise ConfigError(f"the atari preprocessing needs opencv: {_INSTALL}") from None
    if training:
        env = EpisodicLife(env)
    if _needs_fire(env):
        env = FireReset(env, on_life_loss=not training)
    if training:
        env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))
    return gym.wrappers.FrameStackObservation(env, frame_stack)
