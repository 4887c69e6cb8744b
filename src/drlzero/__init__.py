"""drlzero: deep reinforcement learning on PyTorch 2, with pretrained models as state representers.

Python API (each CLI command is one call):
    >>> import drlzero
    >>> result = drlzero.train("cartpole-dqn")  # doctest: +SKIP
    >>> drlzero.evaluate(result.run_dir, episodes=10)  # doctest: +SKIP
"""

from drlzero.api import (
    Agent,
    collect,
    distill,
    evaluate,
    evaluate_zero_shot,
    load_agent,
    record,
    report,
    train,
)
from drlzero.config import (
    Config,
    DQNConfig,
    EncoderConfig,
    EnvConfig,
    ExplorationConfig,
    HeadConfig,
    ReplayConfig,
    TabularConfig,
    TrainConfig,
    load_config,
)
from drlzero.errors import CheckpointError, ConfigError, UserError
from drlzero.train.run import TrainResult

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DQNConfig",
    "EncoderConfig",
    "EnvConfig",
    "ExplorationConfig",
    "HeadConfig",
    "ReplayConfig",
    "TabularConfig",
    "TrainConfig",
    "TrainResult",
    "UserError",
    "collect",
    "distill",
    "evaluate",
    "evaluate_zero_shot",
    "load_agent",
    "load_config",
    "record",
    "report",
    "train",
]
