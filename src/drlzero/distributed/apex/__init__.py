"""Ape-X DQN on Ray: "Distributed Prioritized Experience Replay" (Horgan et al. 2018).

::

    actor i (Ray actor, own vector env,   replay shard k (Ray actor):   learner (this process,
    fixed eps_i, local copy of the net)   storage + sum tree            GPU if present)
      collect chunk_steps vector steps --> add(n-step transitions,   <-- sample(B), one in flight
      initial priorities |TD| locally         their priorities)      --> update_priorities
              ^                                                                   |
              +-------- weights: ray.put once per publish, actors pull the ref ---+

* Actors act with the epsilon ladder ``eps_i = eps^(1 + i/(N-1) * alpha)`` (eps 0.4, alpha 7),
  turn steps into n-step transitions with :class:`~drlzero.replay.NStepAccumulator` and give them
  initial priorities with their own network copy (Ape-X section 3), so the learner never
  computes a priority for data it has not sampled.
* An actor buffers ``chunk_steps`` vector steps locally, sends them to a replay shard and waits
  for the shard to accept them before its ``collect`` call returns: a finished call means the data
  is in replay. A crash loses only the chunk in progress (and at most n-1 open n-step windows per
  env), which the learner detects (:class:`ray.exceptions.RayActorError`) and replaces the actor.
* The learner keeps one sample request in flight, so a replay round trip overlaps an update;
  priority updates are fire-and-forget (Ray runs one caller's calls to an actor in order).
* Learner updates are capped at ``updates_per_step`` per env step (default: the single-process
  loop's ratio), so sample efficiency stays comparable to ``drlzero train`` and a fast learner
  does not overfit a small replay.

Run directory, logs, evaluation, checkpoints and ``--resume`` are those of the single-process
loop (:mod:`drlzero.train`); ``distributed.json`` adds the figures of the distributed parts.

Shape legend: B batch, E envs of one actor, K transitions of a chunk.
"""

from drlzero.distributed.apex.actor import (
    ApexActor,
    ChunkReport,
    Weights,
    epsilon_ladder,
    weights_checksum,
    weights_of,
)
from drlzero.distributed.apex.learner import (
    ApexStats,
    ApexTrainer,
    target_sync_updates,
    train_apex,
    updates_per_step,
)
from drlzero.distributed.apex.shard import ReplayShard, Transitions

__all__ = [
    "ApexActor",
    "ApexStats",
    "ApexTrainer",
    "ChunkReport",
    "ReplayShard",
    "Transitions",
    "Weights",
    "epsilon_ladder",
    "target_sync_updates",
    "train_apex",
    "updates_per_step",
    "weights_checksum",
    "weights_of",
]
