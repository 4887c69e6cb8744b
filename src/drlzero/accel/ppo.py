"""The fast PPO learner and actor: :mod:`drlzero.algos.ppo`'s steps with less overhead.

PPO's networks are small (64-64 MLPs in the usual settings) and its update makes many
minibatch steps, so per-call overhead, not arithmetic, sets the speed:

- all weights and grads in one flat tensor each (:class:`~drlzero.accel.flat.FlatParams`):
  zeroing, the global gradient-norm clip and a fused Adam step are one kernel each;
- the encoders as flat traced forwards (:func:`~drlzero.accel.trace.flat_forward`);
- for Discrete actions, the categorical's log-probs, entropy and samples computed straight from
  the logits, without building ``torch.distributions`` objects: ``log p = z - logsumexp(z)``,
  ``H = -sum(p * max(log p, finfo.min))`` and ``torch.multinomial(p, 1)``, which are the
  operations (and the random draws) of ``Categorical``'s ``log_prob``, ``entropy`` and
  ``sample``.

Other action spaces keep the distribution objects and get the flat weights and traces only.
Both paths give the same weights up to float rounding (``tests/test_ppo.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from drlzero.accel.flat import FlatParams
from drlzero.accel.trace import flat_forward
from drlzero.algos.ppo import LossTerms, Minibatch, PPOLearner, PPOPolicy, ppo_loss
from drlzero.config import PPOConfig
from drlzero.masks import masked_logits
from drlzero.nets.actor_critic import ActorCritic

Forward = Callable[[torch.Tensor], torch.Tensor]


class _Traced:
    """The actor-critic's encoders as traced forwards, built on the first batch."""

    def __init__(self, net: ActorCritic) -> None:
        self.net = net
        self.actor: Forward | None = None
        self.critic: Forward | None = None

    def build(self, obs: torch.Tensor) -> None:
        if self.actor is None:
            net = self.net
            self.actor = flat_forward(net.encoder, obs[:1])
            self.critic = (
                self.actor
                if net.critic_encoder is None
                else flat_forward(net.critic_encoder, obs[:1])
            )

    def logits_and_value(
        self, obs: torch.Tensor, mask_BA: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete actions: the (masked) logits and V(obs) of shape (B,)."""
        self.build(obs)
        assert self.actor is not None and self.critic is not None
        net = self.net
        f_actor = self.actor(obs)
        f_critic = f_actor if net.critic_encoder is None else self.critic(obs)
        logits = masked_logits(net.policy_head(f_actor), mask_BA)
        return logits, net.value_head(f_critic).squeeze(-1)


def _log_softmax(logits_BA: torch.Tensor) -> torch.Tensor:
    """``Categorical(logits=z).logits``: ``z - logsumexp(z)``."""
    return logits_BA - logits_BA.logsumexp(dim=-1, keepdim=True)


def _entropy(logp_BA: torch.Tensor) -> torch.Tensor:
    """``Categorical.entropy``: ``-sum(p * log p)``, log p clamped at the dtype's lowest value
    so masked actions (p = 0) add 0, not NaN."""
    clamped = logp_BA.clamp(min=torch.finfo(logp_BA.dtype).min)
    return -(clamped * logp_BA.exp()).sum(dim=-1)


class FastPPOLearner(PPOLearner):
    """:class:`~drlzero.algos.ppo.PPOLearner` on flat weights with a fused Adam step."""

    def __init__(self, net: ActorCritic, cfg: PPOConfig) -> None:
        super().__init__(net, cfg)
        self.flat = FlatParams([p for p in net.parameters() if p.requires_grad])
        self.optimizer = torch.optim.Adam(
            [self.flat.param], lr=cfg.lr, eps=cfg.adam_eps, fused=True
        )
        self.traced = _Traced(net)

    def update(self, sample_epoch: Callable[[], list[Minibatch]]) -> dict[str, float]:
        """As :meth:`PPOLearner.update`: ``n_epochs`` epochs of minibatch steps."""
        c = self.cfg
        means: dict[str, float] = {}
        epochs = 0
        for _ in range(c.n_epochs):
            batches = sample_epoch()
            sums = torch.zeros(len(LossTerms._fields))
            for mb in batches:
                new_logp_B, value_B, entropy_B = self._evaluate(mb)
                terms = ppo_loss(
                    new_logp_B,
                    mb.logp,
                    mb.advantages,
                    value_B,
                    mb.values,
                    mb.returns,
                    entropy_B,
                    clip_coef=c.clip_coef,
                    clip_vloss=c.clip_vloss,
                    ent_coef=c.ent_coef,
                    vf_coef=c.vf_coef,
                    norm_adv=c.norm_adv,
                )
                self.flat.zero_grad()
                terms.loss.backward()
                if c.max_grad_norm is not None:
                    self.flat.clip_grad_norm_(c.max_grad_norm)
                self.optimizer.step()
                sums += torch.stack([v.detach() for v in terms]).cpu()
            means = dict(zip(LossTerms._fields, (sums / len(batches)).tolist(), strict=True))
            epochs += 1
            if c.target_kl is not None and means["approx_kl"] > c.target_kl:
                break
        return {**means, "epochs": float(epochs)}

    def _evaluate(self, mb: Minibatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log pi(a|s), V(s), entropy) of the minibatch under the current weights."""
        if self.net.kind != "discrete":
            dist, value = self.net(mb.obs, mb.masks)
            return dist.log_prob(mb.actions), value, dist.entropy()
        logits, value = self.traced.logits_and_value(mb.obs, mb.masks)
        logp_BA = _log_softmax(logits)
        new_logp = logp_BA.gather(1, mb.actions.long().unsqueeze(1)).squeeze(1)
        return new_logp, value, _entropy(logp_BA)


class FastPPOPolicy(PPOPolicy):
    """:class:`~drlzero.algos.ppo.PPOPolicy` acting through the traced encoders; Discrete
    actions are drawn as ``Categorical.sample`` draws them (the same random numbers)."""

    def __init__(self, net: ActorCritic, action_space: Any, device: torch.device) -> None:
        super().__init__(net, action_space, device)
        self.traced = _Traced(net)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, mask_EA: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.kind != "discrete":
            return super().act(obs, mask_EA)
        logits, value = self.traced.logits_and_value(
            self._tensor(obs),  # type: ignore[arg-type]
            self._tensor(mask_EA),
        )
        probs = F.softmax(logits, dim=-1)
        actions = torch.multinomial(probs, 1, True).squeeze(1)
        logp = _log_softmax(logits).gather(1, actions.unsqueeze(1)).squeeze(1)
        return actions.cpu().numpy(), logp.cpu().numpy(), value.cpu().numpy()

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> np.ndarray:
        x = self._tensor(obs)
        assert x is not None
        self.traced.build(x)
        assert self.traced.critic is not None
        return self.net.value_head(self.traced.critic(x)).squeeze(-1).cpu().numpy()
