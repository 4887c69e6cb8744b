"""The speed machinery, kept apart from the math: the same learner and policy steps as
:mod:`drlzero.algos` with less overhead per call (``train.fast_path``, on by default).

- :mod:`drlzero.accel.flat`: all trainable weights and grads in one contiguous tensor each;
- :mod:`drlzero.accel.trace`: networks traced into flat torch functions, and NumPy acting for
  small CPU MLPs;
- :mod:`drlzero.accel.learners`: the learners and policy on top of those, plus DQN's phase
  batching (the target network's values for all gradient steps of a phase in one forward);
- :mod:`drlzero.accel.sac`: the SAC learner on flat weights with the twin critics batched;
- :mod:`drlzero.accel.ppo`: the PPO learner and actor on flat weights and traced encoders.

`accelerate` (and `accelerate_sac`, `accelerate_ppo`) is the one switch: it maps the plain
learner class to its fast subclass.
"""

from __future__ import annotations

from drlzero.accel.learners import FastDQNLearner, FastQPolicy, FastRainbowLearner
from drlzero.accel.ppo import FastPPOLearner, FastPPOPolicy
from drlzero.accel.sac import FastSACLearner
from drlzero.algos.base import QLearner
from drlzero.algos.dqn import DQNLearner, QPolicy
from drlzero.algos.ppo import PPOLearner, PPOPolicy
from drlzero.algos.rainbow import RainbowLearner
from drlzero.algos.sac import SACLearner

__all__ = [
    "FastDQNLearner",
    "FastPPOLearner",
    "FastPPOPolicy",
    "FastQPolicy",
    "FastRainbowLearner",
    "FastSACLearner",
    "accelerate",
    "accelerate_ppo",
    "accelerate_sac",
]

_FAST: dict[type[QLearner], type[QLearner]] = {
    DQNLearner: FastDQNLearner,
    RainbowLearner: FastRainbowLearner,
}


def accelerate(
    learner_cls: type[QLearner], on: bool = True
) -> tuple[type[QLearner], type[QPolicy]]:
    """The learner and policy classes to build: the fast ones if ``on``, else the plain ones.

    Both compute the same steps (equal weights up to float rounding on the same batches).
    """
    if not on:
        return learner_cls, QPolicy
    return _FAST[learner_cls], FastQPolicy


def accelerate_sac(on: bool = True) -> type[SACLearner]:
    """The SAC learner class to build: :class:`FastSACLearner` if ``on`` (same steps, equal
    weights up to float rounding), else the plain :class:`~drlzero.algos.sac.SACLearner`."""
    return FastSACLearner if on else SACLearner


def accelerate_ppo(on: bool = True) -> tuple[type[PPOLearner], type[PPOPolicy]]:
    """The PPO learner and policy classes: :class:`FastPPOLearner` and :class:`FastPPOPolicy`
    if ``on`` (same steps, same random draws), else the plain ones."""
    return (FastPPOLearner, FastPPOPolicy) if on else (PPOLearner, PPOPolicy)
