"""State representers: observation -> features (see :mod:`drlzero.encoders.base`)."""

from __future__ import annotations

import gymnasium as gym
from torch import nn

from drlzero.config import EncoderConfig
from drlzero.encoders.base import Encoder
from drlzero.encoders.cnn import MinAtarCNN, NatureCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.encoders.transformer import TransformerEncoder
from drlzero.errors import ConfigError

ENCODERS = ("mlp", "nature_cnn", "minatar_cnn", "transformer")

__all__ = [
    "ENCODERS",
    "Encoder",
    "MLPEncoder",
    "MinAtarCNN",
    "NatureCNN",
    "TransformerEncoder",
    "build_encoder",
]


def _auto_name(shape: tuple[int, ...]) -> str:
    """Images (3-D) get a CNN sized to them, everything else an MLP."""
    if len(shape) == 3:
        spatial = sorted(shape)[1:]  # the two largest dims are H and W
        return "nature_cnn" if min(spatial) >= 36 else "minatar_cnn"
    return "mlp"


def build_encoder(cfg: EncoderConfig, obs_space: gym.Space) -> nn.Module:
    """Build the encoder named by ``cfg`` for ``obs_space`` (``auto`` picks by shape)."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise ConfigError(
            f"the {cfg.name} encoder needs a Box observation space, got {obs_space}; "
            "use a tabular algorithm for Discrete observations, or a wrapper that flattens them"
        )
    shape = tuple(obs_space.shape)
    name = _auto_name(shape) if cfg.name == "auto" else cfg.name
    try:
        if name == "mlp":
            return MLPEncoder(shape, hidden=list(cfg.hidden), activation=cfg.activation)
        if name == "nature_cnn":
            return NatureCNN(shape, features_dim=cfg.features_dim or 512)
        if name == "minatar_cnn":
            return MinAtarCNN(shape, features_dim=cfg.features_dim or 128)
        if name == "transformer":
            return TransformerEncoder(
                shape,  # type: ignore[arg-type]
                d_model=cfg.d_model,
                n_heads=cfg.n_heads,
                n_layers=cfg.n_layers,
                pooling=cfg.pooling,
            )
    except ValueError as exc:
        raise ConfigError(f"encoder.name={name}: {exc}") from None
    raise ConfigError(f"encoder.name={name!r} is not one of: auto, {', '.join(ENCODERS)}")
