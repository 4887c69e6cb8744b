"""What every learner is (:class:`Learner`), and the parts the Q-learners share
(:class:`QLearner`: optimizer, target network, gradient clipping, a training phase).

A learner maps one typed batch record to one optimizer step and returns its statistics as 0-d
(or per-sample) tensors, without a host synchronisation. Everything a step needs travels inside
the record: prioritized replay's importance weights are ``batch.weights``, not an argument.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from drlzero.config import DQNConfig
from drlzero.replay.storage import Batch

BatchT_contra = TypeVar("BatchT_contra", contravariant=True)


class DataParallel(Protocol):
    """The learner's side of data-parallel learning (``drlzero.train.parallel``).

    Every process holds the same minibatch; it computes the loss on its own rows
    (:meth:`take`), and the gradients are averaged over the processes (:meth:`mean_grads`)
    before clipping and the optimizer step. With equal shares, the average of the per-process
    gradients of the mean loss is the gradient of the mean loss over the whole minibatch.
    """

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of the rows of ``x``."""
        ...

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The forward's precision context (bf16-mixed: autocast)."""
        ...

    def mean_grads(self, params: list[torch.Tensor]) -> None:
        """Replace each ``p.grad`` by its mean over the processes."""
        ...

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of ``x`` over the processes."""
        ...


@runtime_checkable
class Learner(Protocol[BatchT_contra]):
    """One optimizer step per call on a batch record (e.g. a replay ``Batch``)."""

    optimizer: torch.optim.Optimizer

    def update(self, batch: BatchT_contra) -> dict[str, torch.Tensor]:
        """One gradient step on ``batch``; statistics such as ``loss`` as tensors."""
        ...


def build_optimizer(cfg: DQNConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """Adam or RMSprop as ``cfg`` says over ``groups`` (each with its ``params``)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.adam_eps, fused=True)
    return torch.optim.RMSprop(
        groups,
        lr=cfg.lr,
        eps=cfg.adam_eps,
        alpha=cfg.rmsprop_alpha,
        centered=cfg.rmsprop_centered,
        foreach=True,
    )


def slices(batch: Batch, steps: int) -> list[Batch]:
    """``batch`` cut into ``steps`` consecutive minibatches of equal size."""
    b = batch.actions.shape[0] // steps
    return [
        Batch(*(None if x is None else x[i * b : (i + 1) * b] for x in batch)) for i in range(steps)
    ]


class QLearner:
    """TD learning with a target network: the shared state of the DQN-family learners.

    Subclasses implement :meth:`update` (one optimizer step on one minibatch).

    Args:
        q_net: the online network (trained).
        target_net: a copy of it, updated only by :meth:`sync_target`. Tensors it shares with
            ``q_net`` (a frozen pretrained backbone, see ``drlzero.nets.make_target``)
            are neither frozen here nor synced.
        cfg: the DQN hyperparameters.
        param_groups: optional optimizer groups (``params``, ``lr`` and extra keys such as a
            warm-up), e.g. a pretrained backbone at its own learning rate; default one group of
            every trainable parameter at ``cfg.lr``.
    """

    def __init__(
        self,
        q_net: nn.Module,
        target_net: nn.Module,
        cfg: DQNConfig,
        param_groups: list[dict] | None = None,
    ) -> None:
        self.q_net = q_net
        self.target_net = target_net
        self.cfg = cfg
        #: Data-parallel learning (None: this process learns on the whole minibatch).
        self.dp: DataParallel | None = None
        online_ids = {id(t) for t in [*q_net.parameters(), *q_net.buffers()]}
        for p in target_net.parameters():
            if id(p) not in online_ids:
                p.requires_grad_(False)
        if param_groups is None:
            param_groups = [{"params": [p for p in q_net.parameters() if p.requires_grad]}]
        self.params = [p for g in param_groups for p in g["params"]]
        self.optimizer = build_optimizer(cfg, self._optimizer_groups(param_groups))
        pairs = [
            (o, t)
            for o, t in zip(
                [*q_net.parameters(), *q_net.buffers()],
                [*target_net.parameters(), *target_net.buffers()],
                strict=True,
            )
            if o is not t
        ]
        self._online = [o for o, _ in pairs]
        self._target = [t for _, t in pairs]
        self.sync_target(1.0)

    def _optimizer_groups(self, param_groups: list[dict]) -> list[dict]:
        """The groups the optimizer steps (the fast path swaps in flat parameters here)."""
        return param_groups

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def clip_gradients(self) -> None:
        """Scale the gradient to global L2 norm <= ``cfg.max_grad_norm`` (None: no clipping)."""
        if self.cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)

    @torch.no_grad()
    def sync_target(self, tau: float | None = None) -> None:
        """Hard copy (tau=1) or Polyak step ``target <- (1-tau) target + tau online`` in place."""
        tau = self.cfg.tau if tau is None else tau
        if tau >= 1.0:
            torch._foreach_copy_(self._target, self._online)
        else:
            torch._foreach_lerp_(self._target, self._online, tau)

    def update_phase(self, batch: Batch, steps: int) -> dict[str, torch.Tensor]:
        """A training phase: :meth:`update` on each of ``steps`` consecutive minibatches of
        ``batch`` (the target network is not synced in between).

        Returns:
            The mean of each scalar statistic over the phase; per-sample ones (``priorities``)
            concatenated, one per row of ``batch``.
        """
        runs = [self.update(part) for part in slices(batch, steps)]
        out = {}
        for k, first in runs[0].items():
            values = [r[k] for r in runs]
            out[k] = torch.cat(values) if first.ndim else torch.stack(values).mean()
        return out
