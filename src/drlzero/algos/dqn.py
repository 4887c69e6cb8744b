"""Deep Q-Network (Mnih et al. 2015), with Double DQN (van Hasselt et al. 2016) and Dueling heads
(Wang et al. 2016).

The actor (:class:`QPolicy`) maps observations to actions; the learner (:class:`DQNLearner`) maps
a sampled minibatch to a loss and an optimizer step. The TD target is a pure function of tensors
(:func:`td_targets`). Nothing here knows about files, the CLI or logging.

This is the plain math; :mod:`drlzero.accel` runs the same steps with less per-call overhead
(``train.fast_path``).

Shape legend: B batch, A actions, D features.

Example:
    >>> import torch
    >>> td_targets(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[2.0, 3.0]]), 0.5)
    tensor([2.5000])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drlzero.algos.base import DataParallel, QLearner
from drlzero.config import DQNConfig
from drlzero.exploration import Explorer, greedy_actions
from drlzero.masks import checked_mask, masked_argmax, masked_max
from drlzero.replay.storage import Batch


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


class QPolicy:
    """The actor: Q-values -> actions via an explorer during training, greedy for evaluation.

    Args:
        q_net: the Q-network (observations -> ``(B, A)`` Q-values).
        explorer: the behaviour policy over Q-values; None for a greedy-only policy.
        device: where ``q_net`` lives (observations are moved there).
        compile: torch.compile the forward (see :func:`compile_setting`).
    """

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
        self.compile = compile
        self._move = device.type != "cpu"
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            compiled(q_net, compile) if compile else q_net
        )

    def _to_device(self, obs: np.ndarray) -> torch.Tensor:
        obs_t = torch.from_numpy(np.asarray(obs))
        return obs_t.to(self.device, non_blocking=True) if self._move else obs_t

    @torch.inference_mode()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """``(B, A)`` float32 Q-values of a batch of observations."""
        q_BA = self.forward(self._to_device(obs))
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


class DQNLearner(QLearner):
    """DQN / Double DQN: one TD step per minibatch against a fixed target network.

    Args:
        q_net, target_net, cfg, param_groups: as for :class:`~drlzero.algos.base.QLearner`.
        compile: torch.compile the TD loss (forward and, through AOTAutograd, its backward).
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
        super().__init__(q_net, target_net, cfg, param_groups)
        self.compile = compile
        self.loss_fn = F.smooth_l1_loss if cfg.loss == "huber" else F.mse_loss
        self.td_loss = compiled(self._td_loss, compile) if compile else self._td_loss

    def _td_loss(
        self, obs: torch.Tensor, actions_B: torch.Tensor, y_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD loss on the taken actions only, and Q of those actions."""
        q_B = self.q_net(obs).gather(1, actions_B.unsqueeze(1)).squeeze(1)
        return self.loss_fn(q_B, y_B), q_B

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on ``L = mean_B loss(Q(s, a), y)`` with ``y`` from the target net
        (Mnih et al. 2015, Algorithm 1; Double: van Hasselt et al. 2016, eq. 4).

        Returns:
            ``loss`` and ``q_mean`` (Q of the taken actions) as 0-d tensors (no host
            synchronisation here; convert when logging).
        """
        if batch.weights is not None:
            raise ValueError(
                "DQNLearner has no importance weights; prioritized replay learns "
                "with RainbowLearner"
            )
        if self.dp is not None:
            return self._update_parallel(self.dp, batch)
        with torch.no_grad():
            next_q_target_BA = self.target_net(batch.next_obs)
            next_q_online_BA = self.q_net(batch.next_obs) if self.cfg.double else None
            y_B = td_targets(
                batch.rewards,
                batch.terminated,
                next_q_target_BA,
                self.cfg.gamma,
                next_q_online_BA,
                batch.next_mask,
            )
        loss, q_B = self.td_loss(batch.obs, batch.actions, y_B)
        self.optimizer.zero_grad()
        loss.backward()
        self.clip_gradients()
        self.optimizer.step()
        return {"loss": loss.detach(), "q_mean": q_B.detach().mean()}

    def _update_parallel(self, dp: DataParallel, batch: Batch) -> dict[str, torch.Tensor]:
        """:meth:`update` on this process's rows, the gradients averaged over the processes
        before clipping; the statistics are means over the processes too."""
        batch = Batch(*(None if x is None else dp.take(x) for x in batch))
        with torch.no_grad(), dp.autocast():
            next_q_target_BA = self.target_net(batch.next_obs).float()
            next_q_online_BA = self.q_net(batch.next_obs).float() if self.cfg.double else None
            y_B = td_targets(
                batch.rewards,
                batch.terminated,
                next_q_target_BA,
                self.cfg.gamma,
                next_q_online_BA,
                batch.next_mask,
            )
        with dp.autocast():
            loss, q_B = self.td_loss(batch.obs, batch.actions, y_B)
        self.optimizer.zero_grad()
        loss.float().backward()
        dp.mean_grads(self.params)
        self.clip_gradients()
        self.optimizer.step()
        stats = dp.mean(torch.stack([loss.detach().float(), q_B.detach().float().mean()]))
        return {"loss": stats[0], "q_mean": stats[1]}
