"""Fast versions of the Q-learners and the Q-policy: the steps of :mod:`drlzero.algos` with

- contiguous weights and grads (:class:`~drlzero.accel.flat.FlatParams`): zeroing, clipping
  and the optimizer step are one kernel each;
- flat traced forwards (:func:`~drlzero.accel.trace.flat_forward`) instead of module calls;
- NumPy acting for small CPU MLPs (:func:`~drlzero.accel.trace.numpy_forward`);
- for DQN, phase batching: the target network is fixed within a training phase, so the target
  Q-values of all G minibatches come from one forward pass over ``G * B`` next observations.

Each class overrides only how a step is computed; what is computed is its parent's. Shape
legend: B batch, A actions, G gradient steps in one training phase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from drlzero.accel.flat import FlatGroups, FlatParams
from drlzero.accel.trace import flat_forward, numpy_forward
from drlzero.algos.dqn import DQNLearner, QPolicy, td_targets
from drlzero.algos.rainbow import RainbowLearner, per_sample_loss
from drlzero.nets.heads import RawOutput
from drlzero.replay.storage import Batch


class _FlatOptimizer:
    """Optimizer groups over one flat parameter per group, and the clip on the flat grads."""

    flat: FlatParams | FlatGroups

    def _optimizer_groups(self, param_groups: list[dict]) -> list[dict]:
        flats = [FlatParams(list(g["params"])) for g in param_groups]
        self.flat = flats[0] if len(flats) == 1 else FlatGroups(flats)
        return [{**g, "params": [f.param]} for g, f in zip(param_groups, flats, strict=True)]


class FastDQNLearner(_FlatOptimizer, DQNLearner):
    """:class:`~drlzero.algos.dqn.DQNLearner` on flat weights and traced forwards, with phase
    batching (:meth:`update_phase`). Under ``compile`` the module forwards are compiled instead
    of traced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the flat forwards are built on the first batch (the trace is checked on it)
        self._flat_pending = not self.compile
        self.online_fwd: Callable[[torch.Tensor], torch.Tensor] = self.q_net
        self.target_fwd: Callable[[torch.Tensor], torch.Tensor] = self.target_net

    def _td_loss(
        self, obs: torch.Tensor, actions_B: torch.Tensor, y_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q_B = self.online_fwd(obs).gather(1, actions_B.unsqueeze(1)).squeeze(1)
        return self.loss_fn(q_B, y_B), q_B

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step, as :meth:`DQNLearner.update`."""
        return self.update_phase(batch, 1)

    def update_phase(self, batch: Batch, steps: int) -> dict[str, torch.Tensor]:
        """``steps`` optimizer steps on consecutive slices of ``batch``, the target network's
        values for all of them from one forward pass."""
        if batch.weights is not None:
            raise ValueError(
                "DQNLearner has no importance weights; prioritized replay learns with "
                "RainbowLearner"
            )
        g = steps
        b = batch.actions.shape[0] // g
        if self._flat_pending:
            self._flat_pending = False
            self.online_fwd = flat_forward(self.q_net, batch.obs[:1])
            self.target_fwd = flat_forward(self.target_net, batch.next_obs[:1])
        with torch.no_grad():
            next_q_target_BA = self.target_fwd(batch.next_obs)  # (G*B, A)
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
            if self.cfg.double:  # the online net moves every step: its argmax per slice
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
            if g == 1:  # no running sums: 6 fewer small ops per update
                return {"loss": loss.detach(), "q_mean": q_B.detach().mean()}
            loss_sum += loss.detach()
            q_sum += q_B.detach().mean()
        return {"loss": loss_sum / g, "q_mean": q_sum / g}


class FastRainbowLearner(_FlatOptimizer, RainbowLearner):
    """:class:`~drlzero.algos.rainbow.RainbowLearner` on flat weights, its losses reading the
    networks' raw outputs through flat traces (noisy layers included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # module calls until the first batch, then their flat forwards
        self._flat_pending = True
        self.online_fwd: Callable[[torch.Tensor], torch.Tensor] = RawOutput(self.q_net)
        self.target_fwd: Callable[[torch.Tensor], torch.Tensor] = RawOutput(self.target_net)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step, as :meth:`RainbowLearner.update`."""
        if self._flat_pending:
            self._flat_pending = False
            self.online_fwd = flat_forward(self.online_fwd, batch.obs[:1])  # type: ignore[arg-type]
            self.target_fwd = flat_forward(self.target_fwd, batch.next_obs[:1])  # type: ignore[arg-type]
        self.flat.relink()
        self.reset_noise()
        loss_B, prio_B, q_B = per_sample_loss(
            self.q_net, self.target_net, batch, self.cfg, self.online_fwd, self.target_fwd
        )
        loss = (loss_B * batch.weights).mean() if batch.weights is not None else loss_B.mean()
        self.flat.zero_grad()
        loss.backward()
        if self.cfg.max_grad_norm is not None:
            self.flat.clip_grad_norm_(self.cfg.max_grad_norm)
        self.optimizer.step()
        return {"loss": loss.detach(), "q_mean": q_B.mean(), "priorities": prio_B}


class FastQPolicy(QPolicy):
    """:class:`~drlzero.algos.dqn.QPolicy` acting through NumPy (small CPU MLPs, on views of the
    live weights) or the flat torch forward, built on the first observation. Under ``compile``
    the compiled forward is used, as in the parent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._built = bool(self.compile)
        self._numpy: Callable[[np.ndarray], np.ndarray] | None = None

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        if not self._built:
            self._built = True
            if not self._move:
                self._numpy = numpy_forward(self.q_net, np.asarray(obs))
            if self._numpy is None:
                self.forward = flat_forward(self.q_net, self._to_device(obs))
        if self._numpy is not None:
            return self._numpy(obs)
        return super().q_values(obs)
