"""A small text game whose valid actions are strings, for DRRN (:mod:`drlzero.nets.drrn`):
``drlzero/TextTreasure-v0``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.envs.text.tokenize import PAD, load_tokenizer
from drlzero.errors import ConfigError

__all__ = ["TextTreasure", "make_text_treasure"]

_ROOMS = ("kitchen", "hall", "garden", "cellar", "attic", "library", "study", "porch")
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}


class TextTreasure(gym.Env):
    """Find the key, then open the chest: rooms in a chain, actions are strings.

    The text says where the key and the chest are and where each exit leads (``"Exits: north to
    the hall"``), so a reactive policy can be optimal, if it reads both the state and the actions.

    The observation is ``{"text": (L,) ids, "actions": (K, La) ids}``: the room description and
    the valid actions (``"go north"``, ``"take key"``, ``"open chest"``, ...) in a new random order
    every step, so a policy must read the action text (DRRN; He et al. 2016, "Deep Reinforcement
    Learning with a Natural Language Action Space", ACL). The action is an index into that list
    (taken modulo its length: the K rows repeat the valid actions). Reward 1 for opening the
    chest with the key.

    Args:
        rooms: rooms in the chain (2..8).
        tokenizer: the model whose tokenizer to use ("" = all-MiniLM-L6-v2).
        max_tokens, action_tokens, max_actions: L, La and K.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        rooms: int = 3,
        *,
        tokenizer: str = "",
        max_tokens: int = 64,
        action_tokens: int = 8,
        max_actions: int = 6,
    ) -> None:
        if not 2 <= rooms <= len(_ROOMS):
            raise ConfigError(f"TextTreasure rooms={rooms} must be in 2..{len(_ROOMS)}")
        self.n_rooms = rooms
        self.tok = load_tokenizer(tokenizer)
        self.L, self.La, self.K = max_tokens, action_tokens, max_actions
        vocab = len(self.tok)
        self.observation_space = gym.spaces.Dict(
            {
                "text": gym.spaces.Box(PAD, vocab - 1, (self.L,), np.int32),
                "actions": gym.spaces.Box(PAD, vocab - 1, (self.K, self.La), np.int32),
            }
        )
        self.action_space = gym.spaces.Discrete(self.K)
        self._ids: dict[tuple[str, int], np.ndarray] = {}
        self.valid: list[str] = []

    def _encode(self, text: str, n: int) -> np.ndarray:
        ids = self._ids.get((text, n))
        if ids is None:
            raw = self.tok.encode(text, truncation=True, max_length=n)
            ids = np.full(n, PAD, np.int32)
            ids[: len(raw)] = raw
            self._ids[(text, n)] = ids
        return ids

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        r = self.np_random
        self.names = [_ROOMS[i] for i in r.permutation(len(_ROOMS))[: self.n_rooms]]
        self.exits: list[dict[str, int]] = [{} for _ in range(self.n_rooms)]
        for i in range(self.n_rooms - 1):
            d = str(r.choice(list(_OPPOSITE)))
            while d in self.exits[i] or _OPPOSITE[d] in self.exits[i + 1]:
                d = str(r.choice(list(_OPPOSITE)))
            self.exits[i][d] = i + 1
            self.exits[i + 1][_OPPOSITE[d]] = i
        self.key_room, self.chest_room = (int(x) for x in r.integers(self.n_rooms, size=2))
        self.room = int(r.integers(self.n_rooms))
        self.has_key = False
        return self._obs(), {}

    def _obs(self) -> dict[str, np.ndarray]:
        here = []
        if not self.has_key and self.room == self.key_room:
            here.append("a key")
        if self.room == self.chest_room:
            here.append("a locked chest")
        seen = f"You see {' and '.join(here)}." if here else "The room is empty."
        if self.has_key:
            carry = "You carry the key."
        else:
            carry = f"You carry nothing. The key is in the {self.names[self.key_room]}."
        exits = ", ".join(
            f"{d} to the {self.names[i]}" for d, i in sorted(self.exits[self.room].items())
        )
        text = (
            f"You are in the {self.names[self.room]}. {seen} Exits: {exits}. {carry} "
            f"The chest is in the {self.names[self.chest_room]}."
        )
        valid = [f"go {d}" for d in self.exits[self.room]]
        if not self.has_key and self.room == self.key_room:
            valid.append("take key")
        if self.room == self.chest_room:
            valid.append("open chest")
        valid.append("look around")
        order = self.np_random.permutation(len(valid))
        self.valid = [valid[i] for i in order][: self.K]
        # Every row holds a valid action: row k repeats action k mod n, so any index is valid
        # and no mask is needed (duplicates have the same text, hence the same Q-value).
        actions = np.stack(
            [self._encode(self.valid[k % len(self.valid)], self.La) for k in range(self.K)]
        )
        return {"text": self._encode(text, self.L).copy(), "actions": actions}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        chosen = self.valid[int(action) % len(self.valid)]
        reward, done = 0.0, False
        if chosen.startswith("go "):
            self.room = self.exits[self.room][chosen[3:]]
        elif chosen == "take key":
            self.has_key = True
        elif chosen == "open chest" and self.has_key:
            reward, done = 1.0, True
        return self._obs(), reward, done, False, {"is_success": done}


def make_text_treasure(**kwargs: Any) -> gym.Env:
    """The ``drlzero/TextTreasure-v0`` entry point (keyword arguments: :class:`TextTreasure`)."""
    return TextTreasure(**kwargs)
