"""Envs in words with a fixed set of named Discrete actions, for the LM policy (``algo: lmppo``).

The LM policy scores the name of every env action after a prompt that holds the observation's
token ids, so it needs three things of an env: a ``Discrete(N)`` action space whose actions have
names (``lm.actions`` lists them, index k naming action k), an observation of token ids (an int32
``Box`` padded with ``-1``, as :class:`drlzero.envs.text.TokenizeText` makes), and, where some
actions are not possible in a state, ``info["action_mask"]`` (``env.action_mask: info``).

- ``drlzero/TextTreasureNamed-v0`` (:class:`TextTreasureNamed`): the DRRN text game
  :class:`drlzero.envs.text.TextTreasure` with its per-step list of action strings replaced by
  the fixed set of every string it can offer, :data:`TEXT_TREASURE_ACTIONS`; the mask marks the
  ones the current room offers.
- ``drlzero/SmartHomeNamed-v0`` (:func:`make_smart_home_named`): the smart-home day of
  :mod:`drlzero.envs.scenarios.smart_home` said in one sentence and tokenized, its 12 actions
  named in :data:`SMART_HOME_ACTIONS`; the mask is the house rules' (the env's own).

(BabyAI in words, ``drlzero/BabyAIText-v0``, is the third: its action names are
``lm.actions``' default.) The dynamics and rewards are those of the underlying envs, step for
step under the same seed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.envs.scenarios.smart_home import SmartHomeEnv
from drlzero.envs.text import TextTreasure, TokenizeText, load_tokenizer

__all__ = [
    "SMART_HOME_ACTIONS",
    "TEXT_TREASURE_ACTIONS",
    "TextTreasureNamed",
    "make_smart_home_named",
    "make_text_treasure_named",
    "register",
    "smart_home_action_name",
]

#: Every action string TextTreasure can offer: the four exits, the key, the chest, and the
#: action that is always valid and changes nothing.
TEXT_TREASURE_ACTIONS: tuple[str, ...] = (
    "go north",
    "go south",
    "go east",
    "go west",
    "take key",
    "open chest",
    "look around",
)
_NOOP = "look around"

_THERMOSTAT = ("off", "heat", "cool")  # SmartHome's thermostat modes 0, 1, 2


def smart_home_action_name(action: int) -> str:
    """The words for SmartHome action ``a = 4 * thermostat + 2 * curtains_open + light_on``,
    e.g. "thermostat heat with curtains open and lamp off".

    No commas: the prompt's header joins the names with ", "."""
    thermostat, curtains, light = action // 4, (action // 2) % 2, action % 2
    return (
        f"thermostat {_THERMOSTAT[thermostat]} with curtains {('closed', 'open')[curtains]} "
        f"and lamp {('off', 'on')[light]}"
    )


#: SmartHome's 12 actions in index order: ``SMART_HOME_ACTIONS[a]`` names action ``a``.
SMART_HOME_ACTIONS: tuple[str, ...] = tuple(smart_home_action_name(a) for a in range(12))


class TextTreasureNamed(gym.Wrapper):
    """TextTreasure with a fixed named action set: ``Discrete(7)`` over
    :data:`TEXT_TREASURE_ACTIONS`, the room description as token ids, the valid actions in
    ``info["action_mask"]``.

    Action k means the string ``TEXT_TREASURE_ACTIONS[k]``; it is passed to the game as the
    index of that string in the game's current (shuffled) list, so a run equals TextTreasure's
    under the same seed when each step picks the same string there. An action the room does not
    offer (masked: only an agent that ignores the mask takes one) is "look around": nothing
    changes and ``info["invalid_action"]`` is True.

    Args:
        rooms: rooms in the chain (2..8).
        tokenizer: the model whose tokenizer to use ("" = all-MiniLM-L6-v2); the LM policy's
            ``lm.model_path``.
        max_tokens: L, the length of the token-id observation (padded with -1).
    """

    def __init__(self, rooms: int = 3, *, tokenizer: str = "", max_tokens: int = 64) -> None:
        # Room for every string at once, so the game's list is never cut short.
        game = TextTreasure(
            rooms,
            tokenizer=tokenizer,
            max_tokens=max_tokens,
            max_actions=len(TEXT_TREASURE_ACTIONS),
        )
        super().__init__(game)
        self.observation_space = game.observation_space["text"]
        self.action_space = gym.spaces.Discrete(len(TEXT_TREASURE_ACTIONS))

    @property
    def game(self) -> TextTreasure:
        """The wrapped game (a property, so no second reference to it is kept as state)."""
        return self.env  # type: ignore[return-value]

    def action_mask(self) -> np.ndarray:
        """(7,) bools: True for the strings the game offers in its current state."""
        valid = set(self.game.valid)
        return np.array([name in valid for name in TEXT_TREASURE_ACTIONS], dtype=bool)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        info["action_mask"] = self.action_mask()
        return obs["text"], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        name = TEXT_TREASURE_ACTIONS[int(action)]
        invalid = name not in self.game.valid
        index = self.game.valid.index(_NOOP if invalid else name)
        obs, reward, terminated, truncated, info = self.env.step(index)
        info["action_mask"] = self.action_mask()
        info["invalid_action"] = invalid
        return obs["text"], float(reward), terminated, truncated, info


def make_text_treasure_named(**kwargs: Any) -> gym.Env:
    return TextTreasureNamed(**kwargs)


def make_smart_home_named(*, tokenizer: str = "", max_tokens: int = 112) -> gym.Env:
    """SmartHome said in one sentence (:func:`~drlzero.envs.scenarios.smart_home.describe`:
    the time, the outside temperature now and in 3 h, sunlight, the price, the inside
    temperature, whether the occupant is home and awake, their preferred temperature and the
    next schedule changes), as ``max_tokens`` token ids; rewards, dynamics and the house-rule
    masks in ``info["action_mask"]`` are SmartHome's own. SmolLM2 needs at most ~90 tokens for
    the sentence, hence the default of 112."""
    return TokenizeText(
        SmartHomeEnv(obs_mode="text"), load_tokenizer(tokenizer), max_tokens=max_tokens
    )


def register() -> None:
    """Register the named-action env ids (idempotently; the entry points load on make)."""
    for env_id, entry, limit in (
        ("drlzero/TextTreasureNamed-v0", "drlzero.envs.named:make_text_treasure_named", 30),
        ("drlzero/SmartHomeNamed-v0", "drlzero.envs.named:make_smart_home_named", 96),
    ):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, max_episode_steps=limit)
