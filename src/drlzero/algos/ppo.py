"""Proximal Policy Optimization (Schulman et al. 2017): GAE, the clipped loss, the actor-critic.

Math only: the GAE recursion (:func:`gae`), the loss terms (:func:`ppo_loss`), the action
distributions, the actor (:class:`PPOPolicy`) and the learner (:class:`PPOLearner`). The
rollout storage is :mod:`drlzero.rollout`, the loop :mod:`drlzero.train.onpolicy`.

The details follow Huang et al. 2022 ("The 37 Implementation Details of PPO"): orthogonal init
(gain sqrt(2) in hidden layers, 0.01 on the policy head, 1 on the value head), Adam eps 1e-5,
per-minibatch advantage normalisation, optional value clipping, a global gradient-norm clip,
and a state-independent log std for Box actions (the sampled action is stored unclipped; only
the env sees it clipped to the bounds).

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

import math
from collections.abc import Callable
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from drlzero.algos.base import DataParallel
from drlzero.config import Config, PPOConfig
from drlzero.encoders import build_encoder
from drlzero.encoders.cnn import MinAtarCNN, NatureCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import ConfigError
from drlzero.masks import masked_logits

SUPPORTED_SPACES = "Discrete, MultiDiscrete or Box"


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
# Action distributions


class ActionDist:
    """A batch of action distributions with summed log-probs and entropies.

    Either ``cats`` (one Categorical for Discrete, one per sub-action for MultiDiscrete; their
    log-probs and entropies add, the sub-actions being independent) or ``normal`` (a diagonal
    Gaussian, summed over the D action dimensions).
    """

    def __init__(
        self, cats: list[Categorical] | None = None, normal: Normal | None = None, *, multi: bool
    ) -> None:
        self.cats = cats or []
        self.normal = normal
        self.multi = multi

    def sample(self) -> torch.Tensor:
        if self.normal is not None:
            return self.normal.sample()
        if not self.multi:
            return self.cats[0].sample()
        return torch.stack([c.sample() for c in self.cats], dim=1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        if self.normal is not None:
            return self.normal.log_prob(actions).sum(dim=1)
        if not self.multi:
            return self.cats[0].log_prob(actions)
        return torch.stack([c.log_prob(actions[:, k]) for k, c in enumerate(self.cats)]).sum(0)

    def entropy(self) -> torch.Tensor:
        if self.normal is not None:
            return self.normal.entropy().sum(dim=1)
        return torch.stack([c.entropy() for c in self.cats]).sum(0)

    def mode(self) -> torch.Tensor:
        """The greedy action: argmax of each categorical, the Gaussian mean."""
        if self.normal is not None:
            return self.normal.mean
        modes = [c.logits.argmax(dim=1) for c in self.cats]
        return torch.stack(modes, dim=1) if self.multi else modes[0]


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


# ---------------------------------------------------------------------------------------------
# The network


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
