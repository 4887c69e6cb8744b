"""Policy distillation (Rusu et al. 2016, "Policy Distillation", arXiv:1511.06295).

A student Q-network learns to reproduce one or several teachers' Q-values from a replay memory
of ``(observation, teacher q-values)``. Three losses, pure functions of tensors:

- ``kl`` (the paper's best): ``KL(softmax(q_T / tau) || softmax(q_S))``; a small temperature
  (tau = 0.01) sharpens the teacher's Q-values into an almost one-hot action distribution that
  still ranks the other actions;
- ``mse``: regress the Q-values themselves (keeps their scale; the paper's weakest);
- ``nll``: cross-entropy to the teacher's greedy action (only the argmax survives).

Several teachers give one multi-task student: one network per task that share every weight but
the per-task parts (the output layer; and the input layer when observation spaces differ), as
in the paper's multi-task networks with one output layer per game.

Nothing here knows about files, the CLI or logging. Shape legend: B batch, A actions.

Example:
    >>> import torch
    >>> q_t = torch.tensor([[1.0, 0.0]])
    >>> round(float(distill_loss("nll", q_t, torch.tensor([[0.0, 0.0]]))), 4)
    0.6931
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drlzero.config import Config
from drlzero.errors import ConfigError
from drlzero.nets.multitask import MultiTaskStudent

LOSSES = ("kl", "mse", "nll")


def kl_distill_loss(
    q_teacher_BA: torch.Tensor, q_student_BA: torch.Tensor, tau: float
) -> torch.Tensor:
    """``mean_B sum_A p_T (log p_T - log softmax(q_S))`` with ``p_T = softmax(q_T / tau)``.

    Only the teacher is softened: the student's raw outputs are its logits (eq. 3 of the paper).
    """
    log_p_BA = F.log_softmax(q_teacher_BA / tau, dim=1)
    log_q_BA = F.log_softmax(q_student_BA, dim=1)
    return (log_p_BA.exp() * (log_p_BA - log_q_BA)).sum(dim=1).mean()


def mse_distill_loss(q_teacher_BA: torch.Tensor, q_student_BA: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all actions and samples."""
    return F.mse_loss(q_student_BA, q_teacher_BA)


def nll_distill_loss(q_teacher_BA: torch.Tensor, q_student_BA: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of softmax(q_S) to the teacher's greedy action (ties: the first)."""
    return F.cross_entropy(q_student_BA, q_teacher_BA.argmax(dim=1))


def distill_loss(
    kind: str, q_teacher_BA: torch.Tensor, q_student_BA: torch.Tensor, tau: float = 0.01
) -> torch.Tensor:
    """The distillation loss ``kind`` (``kl`` | ``mse`` | ``nll``); ``tau`` is for ``kl``."""
    if kind == "kl":
        return kl_distill_loss(q_teacher_BA, q_student_BA, tau)
    if kind == "mse":
        return mse_distill_loss(q_teacher_BA, q_student_BA)
    if kind == "nll":
        return nll_distill_loss(q_teacher_BA, q_student_BA)
    raise ConfigError(f"distillation loss {kind!r} is not one of: {', '.join(LOSSES)}")


# ---------------------------------------------------------------------------------- networks


def student_config(
    teacher: Config, hidden: list[int], features_dim: int | None, name: str, seed: int
) -> Config:
    """The teacher's config with a smaller encoder and a plain linear Q head.

    The student keeps the teacher's env and encoder kind (MLP stays MLP, CNN stays CNN) so
    ``build_q_network`` rebuilds it from ``config.yaml`` like any run; the Rainbow parts
    (dueling, distributional, noisy) are off: the student only regresses Q-values.
    """
    cfg = copy.deepcopy(teacher)
    cfg.name = name
    cfg.encoder.hidden = list(hidden)
    if features_dim is not None:
        cfg.encoder.features_dim = features_dim
    h = cfg.head
    h.dueling, h.distributional, h.noisy = False, "none", False
    cfg.replay.prioritized, cfg.dqn.n_step = False, 1
    cfg.exploration.start = cfg.exploration.end = 0.0
    cfg.train.seed = seed
    return cfg.validate()


def num_params(module: nn.Module) -> int:
    """Parameters counted once even when shared."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------- memory


class DistillBatch(NamedTuple):
    """Observations and the teacher's Q-values for them."""

    obs: torch.Tensor
    q_teacher: torch.Tensor


class DistillMemory:
    """A ring buffer of ``(obs, q_teacher_A)`` with uniform sampling (the paper's replay memory).

    Args:
        capacity: rows kept (the oldest are overwritten).
        obs_shape, obs_dtype: one stored observation.
        num_actions: A.
        seed: the sampler's seed.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        num_actions: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.q = np.zeros((capacity, num_actions), dtype=np.float32)
        self.size = 0
        self.pos = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs_B: np.ndarray, q_teacher_BA: np.ndarray) -> None:
        for o, q in zip(obs_B, q_teacher_BA, strict=True):
            self.obs[self.pos] = o
            self.q[self.pos] = q
            self.pos = (self.pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> DistillBatch:
        idx = self.rng.integers(0, self.size, batch_size)
        return DistillBatch(
            torch.from_numpy(self.obs[idx]).to(self.device),
            torch.from_numpy(self.q[idx]).to(self.device),
        )


# ---------------------------------------------------------------------------------- learner


class DistillLearner:
    """Adam on the sum over tasks of the distillation loss, one minibatch per task per step.

    Args:
        student: the (multi-task) student.
        loss: ``kl`` | ``mse`` | ``nll``.
        tau: the ``kl`` temperature.
        lr: Adam learning rate.
        max_grad_norm: gradient-norm clip (None: off).
    """

    def __init__(
        self,
        student: MultiTaskStudent,
        *,
        loss: str = "kl",
        tau: float = 0.01,
        lr: float = 1e-3,
        max_grad_norm: float | None = 10.0,
    ) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"distillation loss {loss!r} is not one of: {', '.join(LOSSES)}")
        self.student = student
        self.loss = loss
        self.tau = tau
        self.max_grad_norm = max_grad_norm
        self.optimizer = torch.optim.Adam(student.parameters(), lr=lr)

    def update(self, batches: list[DistillBatch]) -> dict[str, torch.Tensor]:
        """One optimizer step on one batch per task (``batches[i]`` belongs to task ``i``).

        Returns:
            ``loss`` (summed over tasks) and ``agreement`` (fraction of samples where the
            student's greedy action is the teacher's), as 0-d tensors.
        """
        total = torch.zeros(())
        agree = torch.zeros(())
        for task, b in enumerate(batches):
            q_s_BA = self.student(b.obs, task)
            total = total + distill_loss(self.loss, b.q_teacher, q_s_BA, self.tau)
            agree += (q_s_BA.argmax(1) == b.q_teacher.argmax(1)).float().mean().detach()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.student.parameters(), self.max_grad_norm)
        self.optimizer.step()
        return {"loss": total.detach(), "agreement": agree / len(batches)}


def space_dims(obs_space: gym.Space, action_space: gym.Space) -> tuple[tuple[int, ...], int]:
    """Observation shape and number of actions; a :class:`ConfigError` for non-Discrete actions."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(f"distillation needs Discrete actions, got {action_space}")
    return tuple(obs_space.shape or ()), int(action_space.n)
