"""BabyAI / MiniGrid in words: an agent's 7x7 view described in sentences, plus the mission.

:class:`BabyAIText` turns the view into text such as ``"A red ball is two steps ahead and one to
your left. Mission: go to the red ball."``, keeps the grid image for multimodal encoders,
rewrites missions with paraphrases on request, holds colour-object pairs out of the missions (or
samples only those, for a test split), reports ``info["is_success"]`` and silences BabyAI's
"Sampling rejected" prints. :func:`make_babyai_text` (``drlzero/BabyAIText-v0``) adds the
tokenizer.

Example:
    >>> env = make_babyai_text(level="BabyAI-GoToObj-v0", max_tokens=32)  # doctest: +SKIP
    >>> obs, _ = env.reset(seed=0)  # doctest: +SKIP
    >>> obs.shape, obs.dtype  # doctest: +SKIP
    ((32,), dtype('int32'))
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.envs.text.tokenize import LM_EXTRA, TEXT_CHARSET, TokenizeText, load_tokenizer
from drlzero.errors import ConfigError

__all__ = ["BabyAIText", "describe_view", "make_babyai_text"]

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DOOR_STATES = ("open", "closed", "locked")
_HELD_OUT_TRIES = 5000  # resets before a held-out filter gives up (a pair the level never makes)


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
        text = gym.spaces.Text(max_length=max_length, charset=TEXT_CHARSET)
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
