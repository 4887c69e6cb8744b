"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"):
twin Q critics with Polyak-averaged targets, a tanh-squashed diagonal Gaussian actor and
automatic entropy tuning.

The actor (:class:`~drlzero.nets.sac.TanhGaussianActor`) maps observations to actions in
[-1, 1]^A; the learner (:class:`SACLearner`) maps a sampled batch to the three losses and their
optimizer steps. The targets and losses are pure functions of tensors; the networks are
:mod:`drlzero.nets.sac` and the squashed Gaussian's density :mod:`drlzero.nets.distributions`
(their names are importable from here too). Nothing here knows about files, the CLI or logging.

Coordinates: networks and the replay buffer work in the squashed space [-1, 1]^A; only the env
sees ``low + (a + 1) / 2 * (high - low)`` (:func:`to_env_action`). Log-probabilities are
densities in the squashed space, so ``target_entropy = -dim(A)`` means the same whatever the
env's bounds.

Shape legend: B batch, A action dimensions, D features.

Example:
    >>> import torch
    >>> critic_targets(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([3.0]),
    ...                torch.tensor([2.0]), torch.tensor([-1.0]), 0.5, 0.9)
    tensor([3.2500])
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drlzero.config import SACConfig
from drlzero.nets.distributions import LOG_2, tanh_gaussian_log_prob, tanh_log_det_jacobian
from drlzero.nets.sac import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    ContinuousQ,
    TanhGaussianActor,
    TwinQ,
    build_actor,
    build_critic,
)
from drlzero.replay.storage import Batch

__all__ = [
    "LOG_2",
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "ContinuousQ",
    "SACLearner",
    "SACPolicy",
    "TanhGaussianActor",
    "TwinQ",
    "actor_loss",
    "alpha_loss",
    "build_actor",
    "build_critic",
    "critic_targets",
    "polyak_update",
    "tanh_gaussian_log_prob",
    "tanh_log_det_jacobian",
    "to_env_action",
]


# --------------------------------------------------------------------------- pure functions


def critic_targets(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_q1_B: torch.Tensor,
    next_q2_B: torch.Tensor,
    next_log_pi_B: torch.Tensor,
    alpha: float | torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Soft TD targets ``y = r + gamma (1 - term) (min(Q1', Q2')(s', a') - alpha log pi(a'|s'))``
    with ``a' ~ pi(.|s')``. Only a true termination stops bootstrapping; truncation bootstraps."""
    soft_v_B = torch.min(next_q1_B, next_q2_B) - alpha * next_log_pi_B
    return rewards_B + gamma * (1.0 - terminated_B) * soft_v_B


def actor_loss(
    q1_B: torch.Tensor, q2_B: torch.Tensor, log_pi_B: torch.Tensor, alpha: float | torch.Tensor
) -> torch.Tensor:
    """``E[alpha log pi(a|s) - min(Q1, Q2)(s, a)]`` with reparameterised ``a ~ pi(.|s)``."""
    return (alpha * log_pi_B - torch.min(q1_B, q2_B)).mean()


def alpha_loss(
    log_alpha: torch.Tensor, log_pi_B: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """``-log alpha * E[log pi + target_entropy]`` (log pi detached).

    When the entropy ``-log pi`` is below the target the bracket is positive, the gradient in
    ``log alpha`` is negative, and descent raises alpha (more weight on entropy); and vice versa.
    Parameterised in log alpha so alpha stays positive (as the authors' implementation).
    """
    return -(log_alpha * (log_pi_B.detach() + target_entropy)).mean()


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``theta' <- (1 - tau) theta' + tau theta`` for every parameter (buffers are copied)."""
    t_params = list(target.parameters())
    s_params = list(source.parameters())
    torch._foreach_lerp_(t_params, s_params, tau)
    for tb, sb in zip(target.buffers(), source.buffers(), strict=True):
        tb.copy_(sb)


def to_env_action(a_BA: np.ndarray, low_A: np.ndarray, high_A: np.ndarray) -> np.ndarray:
    """Squashed actions in [-1, 1] -> the env's Box ``[low, high]`` (affine)."""
    return (low_A + (a_BA + 1.0) * 0.5 * (high_A - low_A)).astype(np.float32)


# --------------------------------------------------------------------------- policy and learner


class SACPolicy:
    """The actor side: stochastic actions while training, ``tanh(mean)`` for evaluation, both
    rescaled to the env's bounds. Observations arrive as NumPy batches."""

    def __init__(
        self, actor: TanhGaussianActor, space: gym.spaces.Box, device: torch.device
    ) -> None:
        self.actor = actor
        self.device = device
        self.low = space.low.astype(np.float32)
        self.high = space.high.astype(np.float32)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs), device=self.device)

    @torch.no_grad()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """Sampled squashed actions in [-1, 1] (what the replay buffer stores)."""
        return self.actor.sample(self._obs(obs))[0].cpu().numpy()

    @torch.no_grad()
    def deterministic(self, obs: np.ndarray) -> np.ndarray:
        """``tanh(mean)`` rescaled to the env's Box."""
        a = self.actor.deterministic(self._obs(obs)).cpu().numpy()
        return to_env_action(a, self.low, self.high)

    def env_action(self, a_BA: np.ndarray) -> np.ndarray:
        """Squashed actions (from :meth:`explore` or uniform in [-1, 1]) -> the env's Box."""
        return to_env_action(a_BA, self.low, self.high)


class SACLearner:
    """Critic, actor and temperature updates from replayed batches.

    Per :meth:`update` (one minibatch): one critic step and a Polyak step of the target
    critics; every ``policy_frequency``-th call also ``policy_frequency`` actor steps, each
    followed by an alpha step (CleanRL's delayed policy update; 1 = the paper's schedule).
    """

    def __init__(
        self,
        actor: TanhGaussianActor,
        critic: TwinQ,
        critic_target: TwinQ,
        cfg: SACConfig,
        action_dim: int,
    ) -> None:
        self.actor, self.critic, self.critic_target = actor, critic, critic_target
        self.cfg = cfg
        device = next(actor.parameters()).device
        self.log_alpha = torch.tensor(
            [math.log(cfg.init_alpha)], device=device, requires_grad=cfg.autotune
        )
        self.target_entropy = (
            -float(action_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        )
        eps = cfg.adam_eps
        self.actor_opt = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, eps=eps)
        self.critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=eps)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, eps=eps)
        self.critic_updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient ``exp(log alpha)``, detached, shape (1,)."""
        return self.log_alpha.detach().exp()

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One critic step (+ the delayed actor/alpha steps); returns detached statistics."""
        c = self.cfg
        obs, a_BA = batch.obs, batch.actions
        with torch.no_grad():
            next_a_BA, next_logp_B = self._sample(batch.next_obs)
            nq1_B, nq2_B = self._q("target", batch.next_obs, next_a_BA)
            y_B = critic_targets(
                batch.rewards, batch.terminated, nq1_B, nq2_B, next_logp_B, self.alpha, c.gamma
            )
        critic_loss, q1_B = self._critic_backward(obs, a_BA, y_B)
        self.critic_opt.step()
        self.critic_updates += 1
        stats: dict[str, torch.Tensor] = {"loss": critic_loss, "q_mean": q1_B.mean()}
        if self.critic_updates % c.policy_frequency == 0:
            for _ in range(c.policy_frequency):
                stats.update(self._actor_step(obs))
        self._polyak()
        stats["alpha"] = self.alpha[0]
        return stats

    def _actor_step(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, logp_B = self._actor_backward(obs)
        self.actor_opt.step()
        out = {"actor_loss": loss, "entropy": -logp_B.mean()}
        if self.cfg.autotune:
            a_loss = alpha_loss(self.log_alpha, logp_B, self.target_entropy)
            self.alpha_opt.zero_grad(set_to_none=True)
            a_loss.backward()
            self.alpha_opt.step()
            out["alpha_loss"] = a_loss.detach()
        return out

    # -- how each piece is computed (drlzero.accel.sac overrides these, not the maths above) --
    def _critic_backward(
        self, obs: torch.Tensor, a_BA: torch.Tensor, y_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The critics' gradients of ``MSE(Q1, y) + MSE(Q2, y)`` (both critics regress on the one
        target); returns the loss and Q1, detached."""
        q1_B, q2_B = self._q("online", obs, a_BA)
        loss = F.mse_loss(q1_B, y_B) + F.mse_loss(q2_B, y_B)
        self._zero_grad("critic")
        loss.backward()
        return loss.detach(), q1_B.detach()

    def _actor_backward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's gradients of :func:`actor_loss` on fresh reparameterised actions; returns
        the loss and the actions' log-probs (B,), detached."""
        pi_BA, logp_B = self._sample(obs)
        with self._critic_frozen():  # gradients flow through Q to a, not into Q's weights
            q1_B, q2_B = self._q("frozen", obs, pi_BA)
            loss = actor_loss(q1_B, q2_B, logp_B, self.alpha)
            self._zero_grad("actor")
            loss.backward()
        return loss.detach(), logp_B.detach()

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions and their log-probs from the actor."""
        return self.actor.sample(obs)

    def _q(
        self, which: str, obs: torch.Tensor, a_BA: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q1, Q2)`` of the ``online`` critics, the same inside :meth:`_critic_frozen`
        (``frozen``), or the ``target`` critics."""
        return (self.critic_target if which == "target" else self.critic)(obs, a_BA)

    @contextlib.contextmanager
    def _critic_frozen(self) -> Iterator[None]:
        """The critics' weights take no gradient inside (the actor step's backward)."""
        self.critic.requires_grad_(False)
        try:
            yield
        finally:
            self.critic.requires_grad_(True)

    def _zero_grad(self, which: str) -> None:
        """Clear the ``actor``'s or the ``critic``'s gradients."""
        opt = self.actor_opt if which == "actor" else self.critic_opt
        opt.zero_grad(set_to_none=True)

    def _polyak(self) -> None:
        """Move the target critics towards the critics by ``tau``."""
        polyak_update(self.critic_target, self.critic, self.cfg.tau)

    # -- state for checkpoints (names -> optimizers), used by the loop ------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The three optimizers by checkpoint prefix."""
        return {
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "alpha_opt": self.alpha_opt,
        }

    def extra_state(self) -> dict[str, Any]:
        """JSON state besides tensors (the delayed-update phase)."""
        return {"critic_updates": self.critic_updates}

    def load_extra_state(self, log_alpha: torch.Tensor, meta: dict[str, Any]) -> None:
        """Restore log alpha and :meth:`extra_state` (optimizers load separately)."""
        with torch.no_grad():
            self.log_alpha.copy_(log_alpha.to(self.log_alpha.device))
        self.critic_updates = int(meta["critic_updates"])
