"""drlzero: deep reinforcement learning on PyTorch 2, with pretrained models as state representers.

Python API (each CLI command is one call; options are keyword-only):
    >>> import drlzero
    >>> result = drlzero.train("cartpole-dqn")  # doctest: +SKIP
    >>> drlzero.evaluate(result.run_dir, episodes=10)["mean_return"]  # doctest: +SKIP

Every call that runs something returns a frozen :class:`Result` (``run_dir`` and ``to_dict()``,
the JSON the CLI prints); see :mod:`drlzero.results`.
"""

# ``drlzero.pretrain`` and ``drlzero.tune`` are also submodules. Loaded here first, they never
# rebind those names later (a submodule's first import sets its name on the package), so
# ``drlzero.pretrain`` and ``drlzero.tune`` are the API functions imported below.
from drlzero import pretrain as _pretrain_package
from drlzero import tune as _tune_module

# isort: split
from drlzero.api import (
    Agent,
    catalog,
    collect,
    convert_lm,
    distill,
    evaluate,
    evaluate_baseline,
    evaluate_zero_shot,
    load_agent,
    pretrain,
    record,
    report,
    sweep,
    train,
    tune,
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
    with_overrides,
)
from drlzero.errors import CheckpointError, ConfigError, UserError
from drlzero.results import (
    Catalog,
    CollectResult,
    EvalResult,
    FileResult,
    MappingResult,
    PretrainResult,
    Result,
    SweepResult,
)
from drlzero.train.distill import DistillResult
from drlzero.train.run import TrainResult
from drlzero.tune import TuneResult

del _pretrain_package, _tune_module

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Catalog",
    "CheckpointError",
    "CollectResult",
    "Config",
    "ConfigError",
    "DQNConfig",
    "DistillResult",
    "EncoderConfig",
    "EnvConfig",
    "EvalResult",
    "ExplorationConfig",
    "FileResult",
    "HeadConfig",
    "MappingResult",
    "PretrainResult",
    "ReplayConfig",
    "Result",
    "SweepResult",
    "TabularConfig",
    "TrainConfig",
    "TrainResult",
    "TuneResult",
    "UserError",
    "catalog",
    "collect",
    "convert_lm",
    "distill",
    "evaluate",
    "evaluate_baseline",
    "evaluate_zero_shot",
    "load_agent",
    "load_config",
    "pretrain",
    "record",
    "report",
    "sweep",
    "train",
    "tune",
    "with_overrides",
]
