"""SAC's networks: the tanh-squashed diagonal Gaussian actor and the twin Q critics, and their
builders from a config (a 1-D Box action space with finite bounds).

Networks work in the squashed space [-1, 1]^A (see :mod:`drlzero.algos.sac`, which holds the
targets, losses, policy and learner). Shape legend: B batch, A action dimensions, D features.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from drlzero.config import Config, EncoderConfig
from drlzero.encoders import build_encoder
from drlzero.errors import ConfigError
from drlzero.nets.distributions import tanh_gaussian_log_prob

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the clamp of the authors' implementation


def _check_box(cfg: Config, action_space: gym.Space) -> gym.spaces.Box:
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise ConfigError(
            f"SAC needs a 1-D Box action space, but {cfg.env.id} has {action_space}; "
            "use algo=dqn (or ppo) for Discrete actions"
        )
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise ConfigError(
            f"SAC squashes actions into the Box bounds, but {cfg.env.id} has infinite bounds; "
            "wrap the env with gymnasium.wrappers.RescaleAction or ClipAction"
        )
    return action_space


class TanhGaussianActor(nn.Module):
    """``obs -> encoder -> (mean, log_std)``; actions ``tanh(mean + std * eps)`` in [-1, 1]^A."""

    def __init__(self, encoder: nn.Module, action_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        d = int(encoder.features_dim)  # type: ignore[arg-type]
        self.mean = nn.Linear(d, action_dim)
        self.log_std = nn.Linear(d, action_dim)

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_BD = self.encoder(obs)
        log_std_BA = self.log_std(h_BD).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.mean(h_BD), log_std_BA

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions in [-1, 1] and their log-probabilities (B,)."""
        mean_BA, log_std_BA = self.dist_params(obs)
        u_BA = mean_BA + log_std_BA.exp() * torch.randn_like(mean_BA)
        return torch.tanh(u_BA), tanh_gaussian_log_prob(u_BA, mean_BA, log_std_BA)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """``tanh(mean)``: the evaluation action."""
        return torch.tanh(self.dist_params(obs)[0])


class ContinuousQ(nn.Module):
    """``Q(s, a)``. Flat observations with an MLP encoder: the MLP reads ``[s, a]`` (as in the
    paper). Other encoders (images, sequences): ``[encoder(s), a] -> Linear -> ReLU -> Linear``."""

    def __init__(self, cfg: EncoderConfig, obs_space: gym.Space, action_dim: int) -> None:
        super().__init__()
        flat = isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1
        self.joint = flat and cfg.name in ("auto", "mlp")
        if self.joint:
            dim = int(obs_space.shape[0]) + action_dim
            joint_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
            self.encoder = build_encoder(cfg, joint_space)
            self.head: nn.Module = nn.Linear(int(self.encoder.features_dim), 1)  # type: ignore[arg-type]
        else:
            self.encoder = build_encoder(cfg, obs_space)
            d = int(self.encoder.features_dim)  # type: ignore[arg-type]
            width = int(cfg.hidden[-1]) if cfg.hidden else 256
            self.head = nn.Sequential(
                nn.Linear(d + action_dim, width), nn.ReLU(), nn.Linear(width, 1)
            )

    def forward(self, obs: torch.Tensor, actions_BA: torch.Tensor) -> torch.Tensor:
        """``Q(s, a)`` of shape (B,)."""
        if self.joint:
            x = torch.cat([obs.float().flatten(1), actions_BA], dim=1)
            return self.head(self.encoder(x)).squeeze(1)
        return self.head(torch.cat([self.encoder(obs), actions_BA], dim=1)).squeeze(1)


class TwinQ(nn.Module):
    """Two independent critics; their minimum counters Q overestimation (Fujimoto et al. 2018)."""

    def __init__(self, cfg: EncoderConfig, obs_space: gym.Space, action_dim: int) -> None:
        super().__init__()
        self.q1 = ContinuousQ(cfg, obs_space, action_dim)
        self.q2 = ContinuousQ(cfg, obs_space, action_dim)

    def forward(self, obs: torch.Tensor, a_BA: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q1(obs, a_BA), self.q2(obs, a_BA)


def build_actor(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> TanhGaussianActor:
    """The actor for a 1-D Box action space (a :class:`ConfigError` names the fix otherwise)."""
    box = _check_box(cfg, action_space)
    return TanhGaussianActor(build_encoder(cfg.encoder, obs_space), int(box.shape[0]))


def build_critic(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> TwinQ:
    """The twin critics for a 1-D Box action space."""
    box = _check_box(cfg, action_space)
    return TwinQ(cfg.encoder, obs_space, int(box.shape[0]))
