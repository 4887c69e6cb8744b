"""Replay building blocks of the DQN family (Rainbow, Hessel et al. 2018).

- :class:`SumTree`: vectorized priority sums (``sum_tree``).
- :class:`PrioritizedSampler`: proportional prioritized replay over a storage's indices
  (Schaul et al. 2016; ``prioritized``).
- :class:`NStepAccumulator`: n-step returns for parallel envs (``nstep``).
- :class:`ReplayStorage`: the preallocated transitions with uniform sampling, and the
  :class:`Batch` record (``storage``).

- :class:`Replay`: a storage + the n-step and prioritized parts, what the DQN loop talks to
  (``memory``); SAC and the Ape-X shards use a storage directly.
"""

from drlzero.replay.memory import Replay
from drlzero.replay.nstep import NStepAccumulator, NStepTransitions
from drlzero.replay.prioritized import PrioritizedSampler, importance_weights
from drlzero.replay.storage import Batch, ReplayStorage
from drlzero.replay.sum_tree import SumTree

__all__ = [
    "Batch",
    "NStepAccumulator",
    "NStepTransitions",
    "PrioritizedSampler",
    "Replay",
    "ReplayStorage",
    "SumTree",
    "importance_weights",
]
