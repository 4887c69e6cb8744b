"""The LM policy's acting side and PPO learner: token ids -> actions through the LM
actor-critic (:class:`LMPolicyActor`), and PPO epochs with gradient accumulation over
micro-batches (:class:`LMPPOLearner`).

The network (the prompt codec, the KV-cached scoring of every named action, the critic) and
its builder are :mod:`drlzero.nets.lm`; their names are importable from here too.

Shape legend: B prompts (envs or minibatch), A actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from drlzero.nets.lm import (
    CRITICS,
    LLAMA_PROJECTIONS,
    MODES,
    NORMALIZATIONS,
    LMActorCritic,
    PromptCodec,
    action_loglik,
    adapt_lm,
    build_lm_actor_critic,
    count_params,
    naive_action_loglik,
    normalized_scores,
)

__all__ = [
    "CRITICS",
    "LLAMA_PROJECTIONS",
    "MODES",
    "NORMALIZATIONS",
    "LMActorCritic",
    "LMPPOLearner",
    "LMPolicyActor",
    "PromptCodec",
    "action_loglik",
    "adapt_lm",
    "build_lm_actor_critic",
    "count_params",
    "naive_action_loglik",
    "normalized_scores",
]


class LMPolicyActor:
    """The acting side: token ids (+ masks) -> actions, log-probs, values (NumPy)."""

    def __init__(self, net: LMActorCritic, device: torch.device) -> None:
        self.net, self.device = net, device

    def _mask(self, mask: np.ndarray | None) -> torch.Tensor | None:
        return None if mask is None else torch.as_tensor(mask, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
        dist, value = self.net(obs, self._mask(mask))
        a = dist.sample()
        return a.cpu().numpy(), dist.log_prob(a).cpu().numpy(), value.cpu().numpy()

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.net.value(obs).cpu().numpy()

    @torch.no_grad()
    def greedy(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        dist, _ = self.net(obs, self._mask(mask))
        return dist.mode().cpu().numpy()

    @torch.no_grad()
    def probs(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(B, num_actions) action probabilities (0 for masked and unnamed actions)."""
        dist, _ = self.net(obs, self._mask(mask))
        return dist.cats[0].probs.cpu().numpy()


class LMPPOLearner:
    """PPO epochs for the LM policy, with gradient accumulation over micro-batches.

    One optimizer step per minibatch: advantages are normalised over the whole minibatch, the
    minibatch is split into micro-batches of ``micro_batch`` samples, and each micro-batch's loss
    is weighted by its share of the minibatch before ``backward``, so the accumulated gradient
    equals the gradient of the minibatch loss. The critic has its own learning rate.

    Args:
        net: the LM actor-critic.
        ppo: the ``ppo`` section (clip, coefficients, epochs, lr, ...).
        micro_batch: samples per forward/backward.
        value_lr: the critic's learning rate (None: ``ppo.lr``).
    """

    def __init__(
        self, net: LMActorCritic, ppo: Any, *, micro_batch: int, value_lr: float | None
    ) -> None:
        from drlzero.algos.ppo import LossTerms

        self.net, self.cfg, self.micro = net, ppo, int(micro_batch)
        self._fields = LossTerms._fields
        head_ids = {id(p) for p in net.head_parameters()}
        policy = [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]
        critic = [p for p in net.head_parameters() if p.requires_grad]
        groups = [{"params": critic, "lr": value_lr or ppo.lr}]
        if policy:
            groups.insert(0, {"params": policy, "lr": ppo.lr})
        self.base_lrs = [g["lr"] for g in groups]
        self.params = policy + critic
        self.optimizer = torch.optim.Adam(groups, eps=ppo.adam_eps)

    def set_lr(self, frac: float) -> None:
        """Scale every group's learning rate by ``frac`` (the annealing schedule)."""
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = lr * frac

    def update(self, sample_epoch: Any) -> dict[str, float]:
        from drlzero.algos.ppo import ppo_loss

        c = self.cfg
        means: dict[str, float] = {}
        epochs = 0
        for _ in range(c.n_epochs):
            batches = sample_epoch()
            means = dict.fromkeys(self._fields, 0.0)
            for mb in batches:
                n = mb.actions.shape[0]
                adv = mb.advantages
                if c.norm_adv and n > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                self.optimizer.zero_grad(set_to_none=True)
                for i in range(0, n, self.micro):
                    s = slice(i, i + self.micro)
                    masks = None if mb.masks is None else mb.masks[s]
                    dist, value = self.net(mb.obs[s], masks)
                    terms = ppo_loss(
                        dist.log_prob(mb.actions[s]),
                        mb.logp[s],
                        adv[s],
                        value,
                        mb.values[s],
                        mb.returns[s],
                        dist.entropy(),
                        clip_coef=c.clip_coef,
                        clip_vloss=c.clip_vloss,
                        ent_coef=c.ent_coef,
                        vf_coef=c.vf_coef,
                        norm_adv=False,
                    )
                    share = mb.actions[s].shape[0] / n
                    (terms.loss * share).backward()
                    for k, v in terms._asdict().items():
                        means[k] += float(v.detach()) * share / len(batches)
                if c.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.params, c.max_grad_norm)
                self.optimizer.step()
            epochs += 1
            if c.target_kl is not None and means["approx_kl"] > c.target_kl:
                break
        return {**means, "epochs": float(epochs)}
