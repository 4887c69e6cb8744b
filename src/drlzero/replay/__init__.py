"""Replay building blocks of the DQN family (Rainbow, Hessel et al. 2018).

- :class:`SumTree`: vectorized priority sums (``sum_tree``).
- :class:`PrioritizedSampler`: proportional prioritized replay over a storage's indices
  (Schaul et al. 2016; ``prioritized``).
- :class:`NStepAccumulator`: n-step returns for parallel envs (``nstep``).

- :class:`Replay`: storage + the two above, what the training loop talks to (``memory``).

The transitions themselves stay in :class:`drlzero.buffers.ReplayBuffer`-like storage.
"""

from drlzero.replay.memory import Replay
from drlzero.replay.nstep import NStepAccumulator, NStepTransitions
from drlzero.replay.prioritized import PrioritizedSampler, importance_weights
from drlzero.replay.sum_tree import SumTree

__all__ = [
    "NStepAccumulator",
    "NStepTransitions",
    "PrioritizedSampler",
    "Replay",
    "SumTree",
    "importance_weights",
]
