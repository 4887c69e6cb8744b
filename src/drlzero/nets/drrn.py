"""DRRN: Q-values for text actions (He et al. 2016, "Deep Reinforcement Learning with a Natural
Language Action Space", ACL).

Shape legend: B batch, K candidate actions, D features, S/A stored sizes of state/action.

For envs whose valid actions are strings, the observation carries them as token ids
(``{"text": (L,), "actions": (K, La)}``, e.g. ``drlzero/TextTreasure-v0``) and the action is an
index into that list. One pretrained encoder (shared weights, and a shared embedding cache when
frozen) embeds the state and every candidate; a pair scorer
(:class:`drlzero.nets.heads.PairScorer`) maps (state, action) features to
``q_BK``. Everything else is DQN: the same learner, loop, buffer, target network and explorer
(``algo: drrn`` selects this network in :func:`drlzero.nets.build_q_network`).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from drlzero.encoders import build_text_encoder
from drlzero.errors import ConfigError
from drlzero.nets.heads import PairScorer

__all__ = ["DRRNEncoder", "DRRNQNetwork", "build_drrn_network"]


class DRRNEncoder(nn.Module):
    """Embeds the state text and K candidate action texts with one text encoder.

    The stored row is ``[state (S) | actions (K*A)]`` float32 (token ids, or cached embeddings
    for a frozen pretrained encoder).
    """

    def __init__(self, obs_space: gym.spaces.Dict, text: nn.Module) -> None:
        super().__init__()
        self.text = text
        self.k, self.la = (int(d) for d in obs_space["actions"].shape)
        cached = getattr(text, "embed_at_boundary", False)
        self.s = int(text.stored_shape[0]) if cached else int(obs_space["text"].shape[0])
        self.a = int(text.stored_shape[0]) if cached else self.la
        self.cached = cached
        self.features_dim = int(text.features_dim)

    @property
    def stored_shape(self) -> tuple[int, ...]:
        return (self.s + self.k * self.a,)

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def preprocess(self, obs: dict[str, Any]) -> np.ndarray:
        state = np.asarray(obs["text"])
        actions = np.asarray(obs["actions"]).reshape(-1, self.la)
        if self.cached:
            state, actions = self.text.preprocess(state), self.text.preprocess(actions)
        b = len(state)
        return np.concatenate(
            [state.astype(np.float32), actions.reshape(b, -1).astype(np.float32)], axis=1
        )

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = obs.shape[0]
        state, actions = obs[:, : self.s], obs[:, self.s :].reshape(b * self.k, self.a)
        if not self.cached:
            state, actions = state.round().int(), actions.round().int()
        state_BD = self.text(state)
        action_BKD = self.text(actions).reshape(b, self.k, -1)
        return state_BD, action_BKD


class DRRNQNetwork(nn.Module):
    """``encoder`` (state + candidates) followed by ``head`` (pair scorer): obs -> q_BK."""

    def __init__(self, encoder: DRRNEncoder, head: PairScorer) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(*self.encoder(obs))


def build_drrn_network(cfg: Any, obs_space: gym.Space, action_space: gym.Space) -> DRRNQNetwork:
    """A DRRN Q-network for ``{"text", "actions"}`` observations (``algo: drrn``)."""
    if not (
        isinstance(obs_space, gym.spaces.Dict)
        and {"text", "actions"} <= set(obs_space.spaces)
        and isinstance(action_space, gym.spaces.Discrete)
    ):
        raise ConfigError(
            "algo=drrn needs {'text', 'actions'} token-id observations and a Discrete action "
            f"index, got {obs_space} / {action_space}; e.g. env.id=drlzero/TextTreasure-v0"
        )
    if cfg.encoder.name != "pretrained":
        raise ConfigError("algo=drrn shares a pretrained encoder: set encoder.name=pretrained")
    text = build_text_encoder("pretrained", cfg.encoder, obs_space["text"])
    encoder = DRRNEncoder(obs_space, text)
    assert math.prod(encoder.stored_shape) > 0
    return DRRNQNetwork(encoder, PairScorer(encoder.features_dim))
