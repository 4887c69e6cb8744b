"""The speed machinery, kept apart from the math: the same learner and policy steps as
:mod:`drlzero.algos` with less overhead per call (``train.fast_path``, on by default).

- :mod:`drlzero.accel.flat`: all trainable weights and grads in one contiguous tensor each;
- :mod:`drlzero.accel.trace`: networks traced into flat torch functions, and NumPy acting for
  small CPU MLPs;
- :mod:`drlzero.accel.learners`: the learners and policy on top of those, plus DQN's phase
  batching (the target network's values for all gradient steps of a phase in one forward).

:func:`accelerate` is the one switch: it maps the plain learner class to its fast subclass.
"""

from __future__ import annotations

from drlzero.accel.learners import FastDQNLearner, FastQPolicy, FastRainbowLearner
from drlzero.algos.base import QLearner
from drlzero.algos.dqn import DQNLearner, QPolicy
from drlzero.algos.rainbow import RainbowLearner

__all__ = ["FastDQNLearner", "FastQPolicy", "FastRainbowLearner", "accelerate"]

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
