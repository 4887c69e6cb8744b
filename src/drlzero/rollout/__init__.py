"""On-policy rollout storage, GAE and running normalisers (PPO)."""

from drlzero.rollout.normalize import ObsNormalizer, RewardScaler, RunningMeanStd
from drlzero.rollout.storage import RolloutBuffer

__all__ = ["ObsNormalizer", "RewardScaler", "RolloutBuffer", "RunningMeanStd"]
