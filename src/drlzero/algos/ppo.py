"""Proximal Policy Optimization (Schulman et al. 2017): GAE, the clipped loss, the actor-critic.

Math only: the GAE recursion (:func:`gae`), the loss terms (:func:`ppo_loss`), the actor
(:class:`PPOPolicy`) and the learner (:class:`PPOLearner`). The actor-critic network and its
action distributions are :mod:`drlzero.nets.actor_critic` and :mod:`drlzero.nets.distributions`
(their names are importable from here too), the rollout storage is :mod:`drlzero.rollout`, the
loop :mod:`drlzero.train.onpolicy`.

The details follow Huang et al. 2022 ("The 37 Implementation Details of PPO"): orthogonal init
(gain sqrt(2) in hidden layers, 0.01 on the policy head, 1 on the value head; done by the
network), Adam eps 1e-5, per-minibatch advantage normalisation, optional value clipping, a
global gradient-norm clip, and a state-independent log std for Box actions (the sampled action
is stored unclipped; only the env sees it clipped to the bounds).

Shape legend: T time (vector steps), E envs, B batch (minibatch), A actions (logits), K
sub-actions of a MultiDiscrete space, D action dimensions of a Box.

Example:
    >>> import torch
    >>> adv, ret = gae(torch.ones(2, 1), torch.zeros(2, 1), torch.zeros(2, 1),
    ...                torch.tensor([[False], [True]]), torch.tensor([[False], [True]]), 0.5, 1.0)
    >>> adv.squeeze(1).tolist()
    [1.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from drlzero.algos.base import DataParallel
from drlzero.config import PPOConfig
from drlzero.nets.actor_critic import (
    SUPPORTED_SPACES,
    ActorCritic,
    build_actor_critic,
    space_kind,
)
from drlzero.nets.distributions import ActionDist

__all__ = [
    "SUPPORTED_SPACES",
    "ActionDist",
    "ActorCritic",
    "LossTerms",
    "Minibatch",
    "PPOLearner",
    "PPOPolicy",
    "build_actor_critic",
    "gae",
    "ppo_loss",
    "space_kind",
]


def gae(
    rewards_TE: torch.Tensor,
    values_TE: torch.Tensor,
    next_values_TE: torch.Tensor,
    terminated_TE: torch.Tensor,
    ended_TE: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout.

    ``next_values_TE[t]`` is V of the state that step t really reached: the next stored
    observation, or the true last observation (``info["final_obs"]``) where an episode ended at
    t. A termination does not bootstrap; a truncation does (its next value is V(final obs)).

        delta_t = r_t + gamma * V(s'_t) * (1 - terminated_t) - V(s_t)
        A_t     = delta_t + gamma * lam * (1 - ended_t) * A_{t+1}

    Args:
        rewards_TE: rewards.
        values_TE: V(s_t) under the acting network.
        next_values_TE: V(s'_t), see above.
        terminated_TE: bool, the episode terminated at t.
        ended_TE: bool, the episode ended at t (terminated or truncated): the recursion stops.
        gamma: discount.
        lam: GAE lambda.

    Returns:
        ``(advantages_TE, returns_TE)`` with ``returns = advantages + values`` (the value target).
    """
    not_term = 1.0 - terminated_TE.float()
    not_end = 1.0 - ended_TE.float()
    deltas = rewards_TE + gamma * next_values_TE * not_term - values_TE
    adv = torch.zeros_like(values_TE)
    running = torch.zeros_like(values_TE[0])
    for t in range(values_TE.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_end[t] * running
        adv[t] = running
    return adv, adv + values_TE


class LossTerms(NamedTuple):
    """What :func:`ppo_loss` returns; ``loss`` carries the gradient, the rest are detached."""

    loss: torch.Tensor
    pg_loss: torch.Tensor
    v_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor


def ppo_loss(
    new_logp_B: torch.Tensor,
    old_logp_B: torch.Tensor,
    adv_B: torch.Tensor,
    new_value_B: torch.Tensor,
    old_value_B: torch.Tensor,
    returns_B: torch.Tensor,
    entropy_B: torch.Tensor,
    *,
    clip_coef: float,
    clip_vloss: bool,
    ent_coef: float,
    vf_coef: float,
    norm_adv: bool,
) -> LossTerms:
    """The PPO objective on one minibatch, as a loss to minimise.

        ratio   = exp(logp_new - logp_old)
        pg_loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))
        v_loss  = 0.5 * mean((V - R)^2), or with clip_vloss
                  0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))
        loss    = pg_loss - ent_coef * mean(entropy) + vf_coef * v_loss

    ``norm_adv`` standardises A over the minibatch first (unbiased std, + 1e-8). ``approx_kl``
    is the low-variance estimator mean((ratio - 1) - log ratio) (Schulman's k3); ``clipfrac`` the
    share of samples whose ratio left the clip range.
    """
    if norm_adv and adv_B.numel() > 1:
        adv_B = (adv_B - adv_B.mean()) / (adv_B.std() + 1e-8)
    log_ratio = new_logp_B - old_logp_B
    ratio = log_ratio.exp()
    pg_loss = torch.max(-adv_B * ratio, -adv_B * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    v_err = (new_value_B - returns_B) ** 2
    if clip_vloss:
        clipped = old_value_B + (new_value_B - old_value_B).clamp(-clip_coef, clip_coef)
        v_err = torch.max(v_err, (clipped - returns_B) ** 2)
    v_loss = 0.5 * v_err.mean()
    entropy = entropy_B.mean()
    loss = pg_loss - ent_coef * entropy + vf_coef * v_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return LossTerms(loss, pg_loss.detach(), v_loss.detach(), entropy.detach(), approx_kl, clipfrac)


# ---------------------------------------------------------------------------------------------
# Actor and learner


class PPOPolicy:
    """The actor: observations (and masks) -> actions, log-probs and values.

    Args:
        net: the actor-critic.
        action_space: the env's single action space (Box bounds for clipping).
        device: where ``net`` lives.
    """

    def __init__(self, net: ActorCritic, action_space: gym.Space, device: torch.device) -> None:
        self.net = net
        self.device = device
        self.kind = net.kind
        self.low = self.high = None
        # Discrete/MultiDiscrete spaces may start at a nonzero action: the network works with
        # 0-based indices (what log-probs are taken of), the env gets them shifted.
        start = getattr(action_space, "start", 0)
        self.start = None if self.kind == "box" or not np.any(start) else np.asarray(start)
        if self.kind == "box":
            self.low = np.asarray(action_space.low, np.float32)  # type: ignore[attr-defined]
            self.high = np.asarray(action_space.high, np.float32)  # type: ignore[attr-defined]

    def _tensor(self, x: np.ndarray | None) -> torch.Tensor | None:
        return None if x is None else torch.as_tensor(x, device=self.device)

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """What the env is stepped with: Box actions clipped to the bounds, indices shifted by
        the space's ``start``."""
        if self.kind == "box":
            return np.clip(actions, self.low, self.high)
        return actions if self.start is None else actions + self.start

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, mask_EA: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample actions. Returns (unclipped actions, log-probs, values), NumPy."""
        dist, value = self.net(self._tensor(obs), self._tensor(mask_EA))
        actions = dist.sample()
        logp = dist.log_prob(actions)
        return actions.cpu().numpy(), logp.cpu().numpy(), value.cpu().numpy()

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.net.value(self._tensor(obs)).cpu().numpy()  # type: ignore[arg-type]

    @torch.no_grad()
    def greedy(self, obs: np.ndarray, mask_EA: np.ndarray | None = None) -> np.ndarray:
        """Deterministic actions for evaluation: argmax (masked) or the Gaussian mean, clipped."""
        f_actor = self.net.encoder(self._tensor(obs))
        mode = self.net.dist_from(f_actor, self._tensor(mask_EA)).mode()
        return self.env_actions(mode.cpu().numpy())


class Minibatch(NamedTuple):
    """One PPO minibatch (flattened over time and envs)."""

    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    masks: torch.Tensor | None


class PPOLearner:
    """Minibatch epochs of the clipped objective over one rollout.

    Args:
        net: the actor-critic.
        cfg: the ``ppo`` section.
    """

    def __init__(self, net: ActorCritic, cfg: PPOConfig) -> None:
        self.net = net
        self.cfg = cfg
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        #: Data-parallel learning (None: this process learns on the whole minibatch).
        self.dp: DataParallel | None = None

    def set_lr(self, lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def update(self, sample_epoch: Callable[[], list[Minibatch]]) -> dict[str, float]:
        """Run ``n_epochs`` epochs, each over the minibatches ``sample_epoch()`` returns (a fresh
        shuffle per epoch). Returns the last epoch's mean loss terms and the ``epochs`` run
        (fewer than ``n_epochs`` when ``target_kl`` stops the update early)."""
        c = self.cfg
        if self.dp is not None:
            return self._update_parallel(self.dp, sample_epoch)
        means: dict[str, float] = {}
        epochs = 0
        for _ in range(c.n_epochs):
            batches = sample_epoch()
            means = dict.fromkeys(LossTerms._fields, 0.0)
            for mb in batches:
                dist, value = self.net(mb.obs, mb.masks)
                terms = ppo_loss(
                    dist.log_prob(mb.actions),
                    mb.logp,
                    mb.advantages,
                    value,
                    mb.values,
                    mb.returns,
                    dist.entropy(),
                    clip_coef=c.clip_coef,
                    clip_vloss=c.clip_vloss,
                    ent_coef=c.ent_coef,
                    vf_coef=c.vf_coef,
                    norm_adv=c.norm_adv,
                )
                self.optimizer.zero_grad(set_to_none=True)
                terms.loss.backward()
                if c.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.optimizer.step()
                for k, v in terms._asdict().items():
                    means[k] += float(v.detach()) / len(batches)
            epochs += 1
            if c.target_kl is not None and means["approx_kl"] > c.target_kl:
                break
        return {**means, "epochs": float(epochs)}

    def _update_parallel(
        self, dp: DataParallel, sample_epoch: Callable[[], list[Minibatch]]
    ) -> dict[str, float]:
        """:meth:`update` with each minibatch split over the processes: advantages are
        standardised over the whole minibatch first (as on one process), each process takes
        its rows, gradients are averaged before clipping, and the loss terms (so ``approx_kl``
        and the ``target_kl`` stop) are means over the processes, the same on every one."""
        c = self.cfg
        params = [p for p in self.net.parameters() if p.requires_grad]
        means: dict[str, float] = {}
        epochs = 0
        for _ in range(c.n_epochs):
            batches = sample_epoch()
            means = dict.fromkeys(LossTerms._fields, 0.0)
            for mb in batches:
                adv = mb.advantages
                if c.norm_adv and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                mb = Minibatch(
                    *(None if x is None else dp.take(x) for x in mb._replace(advantages=adv))
                )
                with dp.autocast():
                    dist, value = self.net(mb.obs, mb.masks)
                    terms = ppo_loss(
                        dist.log_prob(mb.actions),
                        mb.logp,
                        mb.advantages,
                        value.float(),
                        mb.values,
                        mb.returns,
                        dist.entropy(),
                        clip_coef=c.clip_coef,
                        clip_vloss=c.clip_vloss,
                        ent_coef=c.ent_coef,
                        vf_coef=c.vf_coef,
                        norm_adv=False,  # done above, over the whole minibatch
                    )
                self.optimizer.zero_grad(set_to_none=True)
                terms.loss.float().backward()
                dp.mean_grads(params)
                if c.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.optimizer.step()
                mean_terms = dp.mean(torch.stack([v.detach().float() for v in terms]))
                for k, v in zip(LossTerms._fields, mean_terms.tolist(), strict=True):
                    means[k] += v / len(batches)
            epochs += 1
            if c.target_kl is not None and means["approx_kl"] > c.target_kl:
                break
        return {**means, "epochs": float(epochs)}
