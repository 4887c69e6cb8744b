"""Any vector-observation env in words, through a user template (``drlzero/TemplateText-v0``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.envs.text.tokenize import TEXT_CHARSET, TokenizeText, load_tokenizer
from drlzero.errors import ConfigError

__all__ = ["TemplateText", "make_template_text"]


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
        self.observation_space = gym.spaces.Text(max_length=max_length, charset=TEXT_CHARSET)

    def observation(self, observation: Any) -> str:
        values = np.asarray(observation).ravel().tolist()
        return self.template.format(*values, obs=observation)


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
