"""PPO's actor-critic: encoder features -> a policy head (logits, or a Gaussian mean with a
state-independent log std) and a value head, and its builder from a config.

The initialisation follows Huang et al. 2022 ("The 37 Implementation Details of PPO"):
orthogonal weights with gain sqrt(2) in our own encoders' hidden layers, 0.01 on the policy
head, 1 on the value head, zero biases. The loss and learner are :mod:`drlzero.algos.ppo`.

Shape legend: B batch, A actions (logits).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from drlzero.config import Config, PPOConfig
from drlzero.encoders import build_encoder
from drlzero.encoders.cnn import MinAtarCNN, NatureCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import ConfigError
from drlzero.masks import masked_logits
from drlzero.nets.distributions import ActionDist

SUPPORTED_SPACES = "Discrete, MultiDiscrete or Box"


def space_kind(space: gym.Space) -> str:
    """``discrete`` | ``multi`` | ``box``; any other action space is a one-line error."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return "multi"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "box"
    raise ConfigError(
        f"PPO needs a {SUPPORTED_SPACES} (1-D) action space, got {space}; flatten or wrap it"
    )


def _ortho(layer: nn.Module, gain: float) -> None:
    nn.init.orthogonal_(layer.weight, gain)  # type: ignore[arg-type]
    nn.init.zeros_(layer.bias)  # type: ignore[arg-type]


def _ortho_encoder(encoder: nn.Module) -> None:
    """sqrt(2)-gain orthogonal init for the layers of our own MLP/CNN encoders (pretrained
    and transformer encoders keep their own initialisation)."""
    if isinstance(encoder, (MLPEncoder, NatureCNN, MinAtarCNN)):
        for m in encoder.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                _ortho(m, math.sqrt(2))


class ActorCritic(nn.Module):
    """Encoder features -> policy head (logits or Gaussian mean) and value head.

    Args:
        actor_encoder: observation -> features for the policy.
        critic_encoder: the value's encoder, or None to share ``actor_encoder``.
        action_space: Discrete, MultiDiscrete or Box (1-D).
        log_std_init: Box: the initial state-independent log std.
        ortho_init: Huang et al.'s orthogonal initialisation.
    """

    def __init__(
        self,
        actor_encoder: nn.Module,
        critic_encoder: nn.Module | None,
        action_space: gym.Space,
        *,
        log_std_init: float = 0.0,
        ortho_init: bool = True,
    ) -> None:
        super().__init__()
        self.kind = space_kind(action_space)
        self.encoder = actor_encoder
        self.critic_encoder = critic_encoder
        if self.kind == "discrete":
            self.splits = [int(action_space.n)]  # type: ignore[attr-defined]
        elif self.kind == "multi":
            self.splits = [int(n) for n in action_space.nvec]  # type: ignore[attr-defined]
        else:
            self.splits = [int(action_space.shape[0])]  # type: ignore[index]
        d_actor = int(actor_encoder.features_dim)  # type: ignore[arg-type]
        d_critic = int((critic_encoder or actor_encoder).features_dim)  # type: ignore[arg-type]
        self.policy_head = nn.Linear(d_actor, sum(self.splits))
        self.value_head = nn.Linear(d_critic, 1)
        self.log_std = (
            nn.Parameter(torch.full((self.splits[0],), float(log_std_init)))
            if self.kind == "box"
            else None
        )
        if ortho_init:
            _ortho_encoder(actor_encoder)
            if critic_encoder is not None:
                _ortho_encoder(critic_encoder)
            _ortho(self.policy_head, 0.01)
            _ortho(self.value_head, 1.0)

    def features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(actor features, critic features); one encoder pass when they share it."""
        f_actor = self.encoder(obs)
        return f_actor, f_actor if self.critic_encoder is None else self.critic_encoder(obs)

    def dist_from(self, f_actor: torch.Tensor, mask_BA: torch.Tensor | None) -> ActionDist:
        out = self.policy_head(f_actor)
        if self.kind == "box":
            std = self.log_std.expand_as(out).exp()  # type: ignore[union-attr]
            return ActionDist(normal=Normal(out, std, validate_args=False), multi=False)
        if self.kind == "discrete":
            logits = masked_logits(out, mask_BA)
            return ActionDist([Categorical(logits=logits, validate_args=False)], multi=False)
        parts = [Categorical(logits=x, validate_args=False) for x in out.split(self.splits, 1)]
        return ActionDist(parts, multi=True)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs), shape (B,)."""
        enc = self.encoder if self.critic_encoder is None else self.critic_encoder
        return self.value_head(enc(obs)).squeeze(-1)

    def forward(
        self, obs: torch.Tensor, mask_BA: torch.Tensor | None = None
    ) -> tuple[ActionDist, torch.Tensor]:
        f_actor, f_critic = self.features(obs)
        return self.dist_from(f_actor, mask_BA), self.value_head(f_critic).squeeze(-1)


def build_actor_critic(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    """The actor-critic for ``cfg`` (``encoder`` section once or twice, ``ppo`` settings)."""
    space_kind(action_space)  # the unsupported-space error before any model is built
    p: PPOConfig = cfg.ppo
    actor = build_encoder(cfg.encoder, obs_space)
    critic = None
    if not p.shared_encoder:
        if getattr(actor, "preprocess", None) is not None:
            raise ConfigError(
                f"encoder.name={cfg.encoder.name} preprocesses observations at the env "
                "boundary; set ppo.shared_encoder=true so one encoder does it"
            )
        critic = build_encoder(cfg.encoder, obs_space)
    return ActorCritic(
        actor, critic, action_space, log_std_init=p.log_std_init, ortho_init=p.ortho_init
    )
