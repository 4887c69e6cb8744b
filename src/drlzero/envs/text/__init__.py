"""Text observations: put an env's state into words, then into fixed-length token-id arrays.

- :mod:`~drlzero.envs.text.tokenize`: the model's tokenizer (local files only) and
  :class:`TokenizeText`, which turns text observations into int32 id arrays padded with
  :data:`PAD`;
- :mod:`~drlzero.envs.text.babyai`: a BabyAI / MiniGrid agent's view in words plus the mission
  (:class:`BabyAIText`);
- :mod:`~drlzero.envs.text.template`: any vector observation through a user template
  (:class:`TemplateText`);
- :mod:`~drlzero.envs.text.treasure`: a small text game whose actions are strings (DRRN).

Registered ids (``env.id``; keyword arguments go in ``env.kwargs``):
``drlzero/BabyAIText-v0`` (:func:`make_babyai_text`), ``drlzero/TemplateText-v0``
(:func:`make_template_text`) and ``drlzero/TextTreasure-v0`` (:func:`make_text_treasure`).

Nothing here imports torch.
"""

from __future__ import annotations

import gymnasium as gym

from drlzero.envs.text.babyai import BabyAIText, describe_view, make_babyai_text
from drlzero.envs.text.template import TemplateText, make_template_text
from drlzero.envs.text.tokenize import (
    LM_EXTRA,
    PAD,
    TEXT_CHARSET,
    TokenizeText,
    load_tokenizer,
    resolve_model_path,
)
from drlzero.envs.text.treasure import TextTreasure, make_text_treasure

__all__ = [
    "LM_EXTRA",
    "PAD",
    "TEXT_CHARSET",
    "BabyAIText",
    "TemplateText",
    "TextTreasure",
    "TokenizeText",
    "describe_view",
    "load_tokenizer",
    "make_babyai_text",
    "make_template_text",
    "make_text_treasure",
    "register",
    "resolve_model_path",
]


def register() -> None:
    """Register the text env ids (entry points are imported lazily, in the env's process)."""
    for env_id, entry in (
        ("drlzero/BabyAIText-v0", "drlzero.envs.text.babyai:make_babyai_text"),
        ("drlzero/TemplateText-v0", "drlzero.envs.text.template:make_template_text"),
    ):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, disable_env_checker=True)
    if "drlzero/TextTreasure-v0" not in gym.registry:
        gym.register(
            "drlzero/TextTreasure-v0",
            entry_point="drlzero.envs.text.treasure:make_text_treasure",
            max_episode_steps=30,
        )
