"""State representers: observation -> features (see :mod:`drlzero.encoders.base`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from torch import nn

from drlzero.config import ENCODER_NAMES, EncoderConfig
from drlzero.encoders.base import Encoder
from drlzero.encoders.cnn import MinAtarCNN, NatureCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.encoders.transformer import TransformerEncoder
from drlzero.errors import ConfigError

ENCODERS = tuple(n for n in ENCODER_NAMES if n != "auto")  # one list, kept in config.py

__all__ = [
    "ENCODERS",
    "Encoder",
    "MLPEncoder",
    "MinAtarCNN",
    "NatureCNN",
    "TransformerEncoder",
    "build_encoder",
    "build_text_encoder",
    "env_boundary",
    "stored_spec",
]


def _auto_name(shape: tuple[int, ...]) -> str:
    """Images (3-D) get a CNN sized to them, everything else an MLP."""
    if len(shape) == 3:
        spatial = sorted(shape)[1:]  # the two largest dims are H and W
        return "nature_cnn" if min(spatial) >= 36 else "minatar_cnn"
    return "mlp"


def _reads_raw_obs(cfg: EncoderConfig) -> bool:
    """A ``drlzero pretrain`` model directory: it tokenizes vector/grid observations itself."""
    from drlzero.pretrain.obs_tokenizer import ObsTokenizer

    return bool(cfg.model_path) and ObsTokenizer.present(cfg.model_path)


def build_text_encoder(name: str, cfg: EncoderConfig, space: gym.Space) -> nn.Module:
    """``pretrained`` (drlzero[lm]) or ``text_transformer`` over a Box of token ids; a
    pretrained model with an observation tokenizer reads any Box it was trained on."""
    raw_ok = name == "pretrained" and isinstance(space, gym.spaces.Box) and _reads_raw_obs(cfg)
    if not raw_ok and (not isinstance(space, gym.spaces.Box) or len(space.shape) != 1):
        raise ConfigError(
            f"encoder.name={name} reads token-id arrays (a 1-D Box), got {space}; use a "
            "drlzero/...Text env or wrap the env with drlzero.envs.text.TokenizeText"
        )
    shape = tuple(space.shape)
    if name == "text_transformer":
        from drlzero.encoders.text import TextTransformerEncoder

        return TextTransformerEncoder(
            shape,
            vocab_size=int(space.high.max()) + 1,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            n_layers=cfg.n_layers,
        )
    from drlzero.encoders.pretrained import PretrainedEncoder

    return PretrainedEncoder(
        shape,
        model_path=cfg.model_path,
        pooling=cfg.pooling,
        mode=cfg.mode,
        features_dim=cfg.features_dim or 256,
        lora_r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        lora_targets=tuple(cfg.lora_targets),
        top_k=cfg.top_k,
        lora_layers=cfg.lora_layers,
        cache=cfg.cache,
        dedup=cfg.dedup,
        bf16=cfg.bf16,
        grad_checkpointing=cfg.grad_checkpointing,
        trust_remote_code=cfg.trust_remote_code,
    )


def build_encoder(cfg: EncoderConfig, obs_space: gym.Space) -> nn.Module:
    """Build the encoder named by ``cfg`` for ``obs_space`` (``auto`` picks by shape).

    Text and multimodal encoders may define ``preprocess(obs) -> np.ndarray``, run at
    the env boundary, and ``stored_shape``/``stored_dtype``, what the replay buffer then holds.
    """
    if cfg.name in ("pretrained", "text_transformer"):
        return build_text_encoder(cfg.name, cfg, obs_space)
    if cfg.name == "multimodal":
        from drlzero.encoders.multimodal import MultimodalEncoder

        if not isinstance(obs_space, gym.spaces.Dict) or cfg.text_key not in obs_space.spaces:
            raise ConfigError(
                f"encoder.name=multimodal needs a Dict observation with {cfg.text_key!r} and "
                f"'image' keys, got {obs_space}; e.g. drlzero/BabyAIText-v0 with env.kwargs.image"
            )
        text = build_text_encoder(cfg.text_encoder, cfg, obs_space[cfg.text_key])
        try:
            return MultimodalEncoder(obs_space, text, text_key=cfg.text_key, fusion=cfg.fusion)
        except ValueError as exc:
            raise ConfigError(f"encoder.name=multimodal: {exc}") from None
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


def env_boundary(encoder: nn.Module) -> Callable[[Any], np.ndarray]:
    """The encoder's env-boundary step (tokens -> cached embeddings, Dict -> packed array),
    or ``np.asarray`` when it has none. Its output is what the policy and the buffer see."""
    fn = getattr(encoder, "preprocess", None)
    return fn if fn is not None else np.asarray


def stored_spec(encoder: nn.Module, obs_space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one stored observation after :func:`env_boundary`."""
    shape = getattr(encoder, "stored_shape", None)
    if shape is None:
        return tuple(obs_space.shape), np.dtype(obs_space.dtype)
    return tuple(shape), np.dtype(encoder.stored_dtype)
