"""The Q-network factory: an encoder for the observation space and the Q head the ``head``
section asks for (linear, dueling, or the Rainbow family's distributional and noisy heads)."""

from __future__ import annotations

import gymnasium as gym

from drlzero.config import Config
from drlzero.encoders import build_encoder
from drlzero.errors import ConfigError
from drlzero.heads import DuelingHead, LinearHead, QNetwork


def uses_family(cfg: Config) -> bool:
    """Whether a Rainbow component is on (then :mod:`drlzero.algos.rainbow` learns)."""
    h = cfg.head
    return cfg.dqn.n_step > 1 or cfg.replay.prioritized or h.distributional != "none" or h.noisy


def build_q_network(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> QNetwork:
    """Encoder + (linear or dueling) head for a Discrete action space."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"DQN needs a Discrete action space, but {cfg.env.id} has {action_space}; "
            "discretize the actions with a wrapper or choose a discrete-action env"
        )
    if cfg.algo == "drrn":  # text actions: q(state, candidate) pairs
        from drlzero.algos.drrn import build_drrn_network

        return build_drrn_network(cfg, obs_space, action_space)  # type: ignore[return-value]
    encoder = build_encoder(cfg.encoder, obs_space)
    num_actions = int(action_space.n)
    if uses_family(cfg):
        from drlzero.algos.rainbow import build_head

        return QNetwork(encoder, build_head(int(encoder.features_dim), num_actions, cfg.head))
    head_cls = DuelingHead if cfg.head.dueling else LinearHead
    return QNetwork(encoder, head_cls(int(encoder.features_dim), num_actions))
