"""The former home of the replay storage, kept so that older imports work: the storage is
:class:`drlzero.replay.storage.ReplayStorage` (once named ``ReplayBuffer``) beside
:class:`drlzero.replay.Replay`, the replay the training loops talk to."""

from drlzero.replay.storage import Batch, ReplayStorage

ReplayBuffer = ReplayStorage  # the former name

__all__ = ["Batch", "ReplayBuffer", "ReplayStorage"]
