"""The DQN family beyond the basics, combinable as in Rainbow (Hessel et al. 2018).

- prioritized replay (Schaul et al. 2016): per-sample importance weights in, new priorities out;
- n-step returns: ``batch.discounts`` holds ``gamma^m`` for the m rewards summed per sample;
- distributional losses (:mod:`drlzero.algos.distributional`): C51 (Bellemare et al. 2017) or
  QR-DQN (Dabney et al. 2018);
- noisy nets (Fortunato et al. 2018): the head's linear layers are
  :class:`~drlzero.nets.noisy.NoisyLinear`, with fresh noise for every update and every acting
  step;
- Double and Dueling, as in :mod:`drlzero.algos.dqn`.

The heads (and :func:`~drlzero.nets.heads.build_head`, which picks one) are in
:mod:`drlzero.nets.heads`. The plain-DQN learner (:class:`drlzero.algos.dqn.DQNLearner`) learns
when all of the above are off; this learner when any is on. :mod:`drlzero.accel` speeds both up
(``train.fast_path``). Shape legend: B batch, A actions, N atoms/quantiles.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from drlzero.algos.base import QLearner
from drlzero.algos.distributional import (
    c51_loss,
    categorical_projection,
    quantile_huber_loss,
    quantile_targets,
)
from drlzero.algos.dqn import CompileSetting, td_targets
from drlzero.config import DQNConfig
from drlzero.errors import ConfigError
from drlzero.masks import masked_argmax
from drlzero.nets.heads import head_kind
from drlzero.nets.noisy import NoiseResetter, noisy_layers
from drlzero.replay.storage import Batch


def per_sample_loss(
    q_net: nn.Module,
    target_net: nn.Module,
    batch: Batch,
    cfg: DQNConfig,
    online: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of each sample, the priority it earns, and Q of the taken actions.

    Priorities: ``|y - Q(s, a)|`` for expected-value heads; the distributional loss itself for
    C51/QR (the KL form used by Rainbow). Which loss follows from the head (:func:`head_kind`);
    ``cfg`` gives the discount, Double DQN and the expected-value loss.

    ``online`` / ``target`` compute the networks' raw outputs
    (:class:`~drlzero.nets.heads.RawOutput`; e.g. their flat forwards); by default the modules
    are called.
    """
    kind = head_kind(q_net)
    distributional = kind != "none"
    if online is None:
        online = q_net.distribution if distributional else q_net  # type: ignore[assignment]
    if target is None:
        target = target_net.distribution if distributional else target_net  # type: ignore[assignment]
    assert online is not None and target is not None
    b = batch.actions.shape[0]
    idx_B = torch.arange(b, device=batch.actions.device)
    a_B = batch.actions
    # Double DQN needs the online network on s and s': one forward of both halves costs less
    # than two on small networks (per-call overhead dominates); only the s half gets gradients.
    both = torch.cat([batch.obs, batch.next_obs]) if cfg.double else batch.obs
    if kind == "none":
        q_2BA = online(both)
        q_B = q_2BA[:b][idx_B, a_B]
        with torch.no_grad():
            next_online = q_2BA[b:].detach() if cfg.double else None
            discounts_B = batch.discounts if batch.discounts is not None else cfg.gamma
            y_B = td_targets(
                batch.rewards,
                batch.terminated,
                target(batch.next_obs),
                discounts_B,
                next_online,
                batch.next_mask,
            )
        loss_fn = F.smooth_l1_loss if cfg.loss == "huber" else F.mse_loss
        loss_B = loss_fn(q_B, y_B, reduction="none")
        return loss_B, (y_B - q_B).detach().abs(), q_B.detach()
    z_2BAN = online(both)
    z_BAN = z_2BAN[:b]
    head = q_net.head  # type: ignore[union-attr]
    q_B = head.q_values(z_BAN.detach())[idx_B, a_B]
    with torch.no_grad():
        next_z_BAN = target(batch.next_obs)
        chooser = head.q_values(z_2BAN[b:].detach() if cfg.double else next_z_BAN)
        next_a_B = masked_argmax(chooser, batch.next_mask)  # the best allowed next action
        next_z_BN = next_z_BAN[idx_B, next_a_B]
    if kind == "c51":
        with torch.no_grad():
            target_BN = categorical_projection(
                next_z_BN.softmax(dim=-1),
                batch.rewards,
                batch.discounts,
                batch.terminated,
                head.support_N,
            )
        loss_B = c51_loss(z_BAN[idx_B, a_B], target_BN)
    else:
        target_BN = quantile_targets(next_z_BN, batch.rewards, batch.discounts, batch.terminated)
        loss_B = quantile_huber_loss(z_BAN[idx_B, a_B], target_BN)
    return loss_B, loss_B.detach(), q_B


class RainbowLearner(QLearner):
    """The DQN family's learner: importance weights in (``batch.weights``) and priorities out,
    n-step discounts, distributional losses and noisy-net resets.

    Args:
        q_net, target_net, cfg, param_groups: as for :class:`~drlzero.algos.base.QLearner`.
        compile: must be off (False): this loss is not compiled; a ConfigError names the fix.
    """

    def __init__(
        self,
        q_net: nn.Module,
        target_net: nn.Module,
        cfg: DQNConfig,
        param_groups: list[dict] | None = None,
        *,
        compile: CompileSetting = False,
    ) -> None:
        if compile:
            keys = "train.cuda_graphs" if compile == "reduce-overhead" else "train.compile"
            raise ConfigError(
                f"{keys} is not supported with n-step, prioritized, distributional or noisy "
                f"DQN (Ape-X included); set {keys}=false"
            )
        super().__init__(q_net, target_net, cfg, param_groups)
        self.compile: CompileSetting = False
        # one Gaussian draw per update for every noisy layer of both networks (none: no-op)
        self.reset_noise = NoiseResetter(noisy_layers(q_net) + noisy_layers(target_net))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on ``L = mean_B w_B loss_B`` (``w_B = batch.weights``, 1 without
        prioritized replay), with fresh network noise.

        Returns:
            ``loss`` and ``q_mean`` as 0-d tensors, and ``priorities`` (one per sample).
        """
        self.reset_noise()
        loss_B, prio_B, q_B = per_sample_loss(self.q_net, self.target_net, batch, self.cfg)
        loss = (loss_B * batch.weights).mean() if batch.weights is not None else loss_B.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.clip_gradients()
        self.optimizer.step()
        return {"loss": loss.detach(), "q_mean": q_B.mean(), "priorities": prio_B}
