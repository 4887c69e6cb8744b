"""The Q-network factory: an encoder for the observation space and the Q head the ``head``
section asks for (:func:`drlzero.nets.heads.build_head`: linear, dueling, or the Rainbow
family's distributional and noisy heads), or DRRN's network for text actions."""

from __future__ import annotations

import gymnasium as gym

from drlzero.config import Config
from drlzero.encoders import build_encoder
from drlzero.errors import ConfigError
from drlzero.nets.drrn import build_drrn_network
from drlzero.nets.heads import QNetwork, build_head


def uses_family(cfg: Config) -> bool:
    """Whether a Rainbow component is on (then :mod:`drlzero.algos.rainbow` learns)."""
    h = cfg.head
    return cfg.dqn.n_step > 1 or cfg.replay.prioritized or h.distributional != "none" or h.noisy


def build_q_network(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> QNetwork:
    """Encoder + the ``head`` section's head for a Discrete action space."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"DQN needs a Discrete action space, but {cfg.env.id} has {action_space}; "
            "discretize the actions with a wrapper or choose a discrete-action env"
        )
    if cfg.algo == "drrn":  # text actions: q(state, candidate) pairs
        return build_drrn_network(cfg, obs_space, action_space)  # type: ignore[return-value]
    encoder = build_encoder(cfg.encoder, obs_space)
    return QNetwork(encoder, build_head(int(encoder.features_dim), int(action_space.n), cfg.head))
