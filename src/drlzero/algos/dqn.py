"""Deep Q-Network (Mnih et al. 2015), with Double DQN (van Hasselt et al. 2016) and Dueling heads
(Wang et al. 2016).

The actor (:class:`QPolicy`) maps observations to actions; the learner (:class:`DQNLearner`) maps
sampled batches to a loss and an optimizer step. The TD target is a pure function of tensors
(:func:`td_targets`). Nothing here knows about files, the CLI or logging.

Shape legend: B batch, A actions, G gradient steps in one training phase, D features.

Example:
    >>> import torch
    >>> td_targets(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[2.0, 3.0]]), 0.5)
    tensor([2.5000])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drlzero.buffers import Batch
from drlzero.config import Config, DQNConfig
from drlzero.encoders import build_encoder
from drlzero.errors import ConfigError
from drlzero.exploration import Explorer, greedy_actions
from drlzero.fastpath import flat_forward, numpy_forward
from drlzero.heads import DuelingHead, LinearHead, QNetwork
from drlzero.masks import checked_mask, masked_argmax, masked_max
from drlzero.optim import FlatParams


def td_targets(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_q_target_BA: torch.Tensor,
    gamma: float | torch.Tensor,
    next_q_online_BA: torch.Tensor | None = None,
    next_mask_BA: torch.Tensor | None = None,
) -> torch.Tensor:
    """One-step TD targets ``y = r + gamma * (1 - terminated) * Q'(s', a*)``.

    ``a* = argmax_a Q'(s', a)`` for DQN; with ``next_q_online_BA`` (Double DQN),
    ``a* = argmax_a Q(s', a)`` is chosen by the online net and evaluated by the target net.
    With ``next_mask_BA`` (the next state's allowed actions) the argmax ranges over the allowed
    actions only: the value of s' is that of the best action the policy may take there.
    Only true termination stops bootstrapping; a time-limit truncation still bootstraps.
    ``gamma`` may be a per-sample tensor: ``gamma^m`` for n-step samples.
    """
    if next_q_online_BA is None:
        next_v_B = masked_max(next_q_target_BA, next_mask_BA)
    else:
        best_B1 = masked_argmax(next_q_online_BA, next_mask_BA).unsqueeze(1)
        next_v_B = next_q_target_BA.gather(1, best_B1).squeeze(1)
    return rewards_B + gamma * (1.0 - terminated_B) * next_v_B


CompileSetting = bool | str  # False: eager; True or "default"; "reduce-overhead": CUDA graphs


def compile_setting(compile: bool, cuda_graphs: bool, device: torch.device) -> CompileSetting:
    """What ``train.compile`` / ``train.cuda_graphs`` mean on ``device``.

    CUDA graphs come from torch.compile's ``reduce-overhead`` mode (cudagraph trees: static
    input/output buffers, replay without per-kernel launches); they need a CUDA device, so
    elsewhere the setting falls back (with a warning) to plain compile or eager.
    """
    if cuda_graphs:
        if device.type == "cuda":
            return "reduce-overhead"
        fallback = "torch.compile without them" if compile else "eagerly"
        warnings.warn(
            f"train.cuda_graphs needs a CUDA device ({device} here); running {fallback}",
            stacklevel=2,
        )
    return "default" if compile else False


def compiled(fn: Callable[..., Any], mode: CompileSetting = True) -> Callable[..., Any]:
    """``torch.compile(fn)``, falling back to eager (with one warning) if compilation fails.

    ``mode``: True/"default", or a torch.compile mode such as "reduce-overhead" (CUDA graphs).
    """
    fast = torch.compile(fn, dynamic=False, mode=None if mode in (True, "default") else mode)
    state = {"fn": fast}

    def call(*args: Any, **kwargs: Any) -> Any:
        if state["fn"] is fast:
            try:
                return fast(*args, **kwargs)
            except Exception as exc:  # inductor/toolchain problems: keep training, eagerly
                warnings.warn(
                    f"torch.compile failed ({type(exc).__name__}); running eagerly", stacklevel=2
                )
                state["fn"] = fn
        return state["fn"](*args, **kwargs)

    return call


def uses_family(cfg: DQNConfig) -> bool:
    """Whether a Rainbow component is on (then :mod:`drlzero.algos.rainbow` learns)."""
    return cfg.n_step > 1 or cfg.prioritized or cfg.distributional != "none" or cfg.noisy


def build_q_network(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> QNetwork:
    """Encoder + (linear or dueling) head for a Discrete action space."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"DQN needs a Discrete action space, but {cfg.env.id} has {action_space}; "
            "discretize the actions with a wrapper or choose a discrete-action env"
        )
    if cfg.algo == "drrn":  # text actions: q(state, candidate) pairs
        from drlzero.algos.drrn import build_drrn_network

        return build_drrn_network(cfg, obs_space, action_space)  # type: ignore[return-value]
    encoder = build_encoder(cfg.encoder, obs_space)
    num_actions = int(action_space.n)
    if uses_family(cfg.dqn):
        from drlzero.algos.rainbow import build_head

        return QNetwork(encoder, build_head(int(encoder.features_dim), num_actions, cfg.dqn))
    head_cls = DuelingHead if cfg.dqn.dueling else LinearHead
    return QNetwork(encoder, head_cls(int(encoder.features_dim), num_actions))


class QPolicy:
    """The actor: Q-values -> actions via an explorer during training, greedy for evaluation."""

    def __init__(
        self,
        q_net: nn.Module,
        explorer: Explorer | None,
        device: torch.device,
        *,
        compile: CompileSetting = False,
    ) -> None:
        self.q_net = q_net
        self.explorer = explorer
        self.device = device
        self._move = device.type != "cpu"
        # Compiled on request; else built on the first observation: NumPy for small CPU MLPs
        # (fastpath.numpy_forward), the flat eager torch forward otherwise.
        self.forward: Callable[[torch.Tensor], torch.Tensor] | None = (
            compiled(q_net, compile) if compile else None
        )
        self._numpy: Callable[[np.ndarray], np.ndarray] | None = None

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        if self._numpy is None and self.forward is None:
            self._build(obs)
        if self._numpy is not None:
            return self._numpy(obs)
        return self._torch_q_values(obs)

    def _build(self, obs: np.ndarray) -> None:
        """Small CPU MLPs act in NumPy (views of the live weights); the rest via the flat
        eager torch forward."""
        if not self._move:
            self._numpy = numpy_forward(self.q_net, np.asarray(obs))
        if self._numpy is None:
            self.forward = flat_forward(self.q_net, self._to_device(obs))

    def _to_device(self, obs: np.ndarray) -> torch.Tensor:
        obs_t = torch.from_numpy(np.asarray(obs))
        return obs_t.to(self.device, non_blocking=True) if self._move else obs_t

    @torch.inference_mode()
    def _torch_q_values(self, obs: np.ndarray) -> np.ndarray:
        assert self.forward is not None
        obs_t = self._to_device(obs)
        q_BA = self.forward(obs_t)
        if q_BA.dtype != torch.float32 or self._move:
            q_BA = q_BA.float().cpu()
        return q_BA.numpy()

    def act(
        self,
        obs: np.ndarray,
        step: int,
        rng: np.random.Generator,
        action_mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Behaviour actions for a batch of observations at global env step ``step``, among
        the allowed actions of ``action_mask`` (``(B, A)``, True = allowed; None: all)."""
        assert self.explorer is not None, "QPolicy.act needs an explorer; use greedy()"
        if action_mask is not None:
            action_mask = checked_mask(action_mask, len(obs), self.explorer.num_actions)
        mask_B = self.explorer.explore_mask(step, len(obs), rng)
        # all-random rows need no forward (one env: indexing is ~10x cheaper than .all())
        explore_all = bool(mask_B[0]) if len(mask_B) == 1 else bool(mask_B.all())
        q_BA = None if explore_all else self.q_values(obs)
        return self.explorer(q_BA, step, rng, mask_B, allowed_BA=action_mask)

    def greedy(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions (the best allowed ones under ``action_mask``)."""
        q_BA = self.q_values(obs)
        if action_mask is None:
            return q_BA.argmax(axis=1)
        return greedy_actions(q_BA, checked_mask(action_mask, *q_BA.shape))


class _FlatGroups:
    """Several :class:`FlatParams` (one per optimizer group) behind the same interface; the
    gradient norm is global over all of them."""

    def __init__(self, flats: list[FlatParams]) -> None:
        self.flats = flats

    def relink(self) -> None:
        for f in self.flats:
            f.relink()

    def zero_grad(self) -> None:
        for f in self.flats:
            f.zero_grad()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        grads = [f.param.grad for f in self.flats]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = (max_norm / (norm + 1e-6)).clamp_(max=1.0)
        torch._foreach_mul_(grads, scale)
        return norm


class DQNLearner:
    """TD learning for a Q-network with a target network.

    Args:
        q_net: the online network (trained).
        target_net: a copy of it, updated only by :meth:`sync_target`. Tensors it shares with
            ``q_net`` (a frozen pretrained backbone, see ``encoders.pretrained.make_target``)
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
        *,
        compile: CompileSetting = False,
    ) -> None:
        self.q_net = q_net
        self.target_net = target_net
        self.cfg = cfg
        online_ids = {id(t) for t in [*q_net.parameters(), *q_net.buffers()]}
        for p in target_net.parameters():
            if id(p) not in online_ids:
                p.requires_grad_(False)
        if param_groups is None:
            param_groups = [{"params": [p for p in q_net.parameters() if p.requires_grad]}]
        # One contiguous weight/grad tensor per group: zeroing, clipping and the optimizer step
        # are one kernel each instead of one per tensor (see drlzero.optim).
        flats = [FlatParams(list(g["params"])) for g in param_groups]
        self.flat = flats[0] if len(flats) == 1 else _FlatGroups(flats)
        groups = [{**g, "params": [f.param]} for g, f in zip(param_groups, flats, strict=True)]
        if cfg.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                groups, lr=cfg.lr, eps=cfg.adam_eps, fused=True
            )
        else:
            self.optimizer = torch.optim.RMSprop(
                groups,
                lr=cfg.lr,
                eps=cfg.adam_eps,
                alpha=cfg.rmsprop_alpha,
                centered=cfg.rmsprop_centered,
                foreach=True,
            )
        self.loss_fn = F.smooth_l1_loss if cfg.loss == "huber" else F.mse_loss
        # Forward + loss (and, through AOTAutograd, their backward) compiled on request;
        # eagerly, the networks' flat forwards (drlzero.fastpath) are built on the first batch.
        self.td_loss = compiled(self._td_loss, compile) if compile else self._td_loss
        self._flat_pending = not compile
        self.online_fwd: Callable[[torch.Tensor], torch.Tensor] = q_net
        self.target_fwd: Callable[[torch.Tensor], torch.Tensor] = target_net
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

    def _td_loss(
        self, obs: torch.Tensor, actions_B: torch.Tensor, y_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD loss on the taken actions only, and Q of those actions."""
        q_B = self.online_fwd(obs).gather(1, actions_B.unsqueeze(1)).squeeze(1)
        return self.loss_fn(q_B, y_B), q_B

    @torch.no_grad()
    def sync_target(self, tau: float | None = None) -> None:
        """Hard copy (tau=1) or Polyak step ``target <- (1-tau) target + tau online`` in place."""
        tau = self.cfg.tau if tau is None else tau
        if tau >= 1.0:
            torch._foreach_copy_(self._target, self._online)
        else:
            torch._foreach_lerp_(self._target, self._online, tau)

    def update(self, batch: Batch, gradient_steps: int) -> dict[str, torch.Tensor]:
        """``gradient_steps`` optimizer steps on a batch of ``gradient_steps * B`` transitions.

        The target network is fixed within a training phase (it changes only between phases),
        so the target Q-values of all G minibatches come from one batched forward pass.

        Returns:
            Mean ``loss`` and ``q_mean`` (Q of the taken actions) over the phase, as 0-d tensors
            (no host synchronisation here; convert when logging).
        """
        g = gradient_steps
        b = batch.actions.shape[0] // g
        if self._flat_pending:
            self._flat_pending = False
            self.online_fwd = flat_forward(self.q_net, batch.obs[:1])
            self.target_fwd = flat_forward(self.target_net, batch.next_obs[:1])
        with torch.no_grad():
            next_q_target_BA = self.target_fwd(batch.next_obs)
            if not self.cfg.double:
                y_all = td_targets(
                    batch.rewards,
                    batch.terminated,
                    next_q_target_BA,
                    self.cfg.gamma,
                    next_mask_BA=batch.next_mask,
                )
        self.flat.relink()
        if g > 1:
            loss_sum = torch.zeros((), device=batch.rewards.device)
            q_sum = torch.zeros((), device=batch.rewards.device)
        for i in range(g):
            s = slice(i * b, (i + 1) * b)
            if self.cfg.double:
                with torch.no_grad():
                    next_q_online_BA = self.online_fwd(batch.next_obs[s])
                y_B = td_targets(
                    batch.rewards[s],
                    batch.terminated[s],
                    next_q_target_BA[s],
                    self.cfg.gamma,
                    next_q_online_BA,
                    None if batch.next_mask is None else batch.next_mask[s],
                )
            else:
                y_B = y_all[s]
            loss, q_B = self.td_loss(batch.obs[s], batch.actions[s], y_B)
            self.flat.zero_grad()
            loss.backward()
            if self.cfg.max_grad_norm is not None:
                self.flat.clip_grad_norm_(self.cfg.max_grad_norm)
            self.optimizer.step()
            if g == 1:  # no running sums: 6 fewer small ops (~5 µs each here) per update
                return {"loss": loss.detach(), "q_mean": q_B.detach().mean()}
            loss_sum += loss.detach()
            q_sum += q_B.detach().mean()
        return {"loss": loss_sum / g, "q_mean": q_sum / g}
