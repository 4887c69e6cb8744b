"""Observation tokenizers: vector or grid observations -> token ids a standard BERT reads.

Shape legend: B batch, F features, C channels, H/W grid height/width, L tokens.

A pretrained model directory written by ``drlzero pretrain`` is a plain Hugging Face BERT
(``config.json`` + ``model.safetensors``) plus ``obs_tokenizer.json``, this module's spec. The
``pretrained`` encoder finds that file and tokenizes non-text observations with it at the env
boundary, so the replay buffer stores compact int32 ids, exactly as for text.

Two kinds:

- ``vector`` (F,): feature ``f`` with value ``x`` becomes the token
  ``BASE + f * bins + bin(x)``, ``bin`` uniform over ``[low_f, high_f]`` (clipped). One token per
  feature, so the vocabulary says *which* feature and *how much*; positions say it again.
- ``grid`` (C, H, W) of 0/1 (MinAtar, channels first): one token per cell,
  ``BASE + sum_c bit_c * 2**c`` (the set of objects in the cell).

Every sequence starts with ``CLS``; ids 0..2 are PAD, CLS and MASK (masked-observation modelling).
Nothing here imports torch: it runs where observations leave the env.

Example:
    >>> tok = ObsTokenizer.vector([0.0, -1.0], [1.0, 1.0], bins=4)
    >>> tok.encode(np.array([[0.1, 0.9]], np.float32)).tolist()
    [[1, 3, 10]]
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from drlzero.errors import ConfigError

__all__ = ["BASE", "CLS", "FILENAME", "KINDS", "MASK", "PAD", "ObsTokenizer"]

PAD, CLS, MASK = 0, 1, 2
BASE = 3  # first observation token id
FILENAME = "obs_tokenizer.json"
KINDS = ("vector", "grid")
MAX_GRID_CHANNELS = 12  # 2**12 cell tokens at most: the vocabulary stays small


@dataclasses.dataclass(frozen=True)
class ObsTokenizer:
    """Maps a batch of observations (B, *obs_shape) to token ids (B, L) int32.

    Attributes:
        kind: ``vector`` or ``grid``.
        obs_shape: one observation's shape: (F,) or (C, H, W).
        bins: value bins per feature (vector only).
        low, high: per-feature value range (vector only), the env's Box bounds or data quantiles.
    """

    kind: str
    obs_shape: tuple[int, ...]
    bins: int = 0
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def vector(cls, low: Any, high: Any, *, bins: int = 64) -> ObsTokenizer:
        """A vector tokenizer over features with bounds ``low``/``high`` (finite, low < high)."""
        lo, hi = np.asarray(low, np.float64).ravel(), np.asarray(high, np.float64).ravel()
        if bins < 2 or lo.shape != hi.shape or not np.all(np.isfinite(lo) & np.isfinite(hi)):
            raise ConfigError("a vector observation tokenizer needs bins >= 2 and finite bounds")
        hi = np.where(hi > lo, hi, lo + 1.0)  # a constant feature gets a unit range
        return cls("vector", (len(lo),), bins, tuple(map(float, lo)), tuple(map(float, hi)))

    @classmethod
    def grid(cls, obs_shape: tuple[int, ...]) -> ObsTokenizer:
        """A grid tokenizer for (C, H, W) 0/1 observations (MinAtar through ``channels_first``)."""
        if len(obs_shape) != 3 or not 0 < obs_shape[0] <= MAX_GRID_CHANNELS:
            raise ConfigError(
                f"a grid observation tokenizer needs (C, H, W) with C <= {MAX_GRID_CHANNELS}, "
                f"got {obs_shape}"
            )
        return cls("grid", tuple(int(d) for d in obs_shape))

    @classmethod
    def fit(cls, obs: np.ndarray, *, bins: int = 64, space: Any = None) -> ObsTokenizer:
        """Pick a tokenizer for a dataset's observations (N, *obs_shape).

        3-D boolean / 0-1 observations are grids. Vector bounds come from ``space`` (a Box)
        where finite, else from the data's 0.5% and 99.5% quantiles, so an outlier does not
        squeeze every other value into a few bins.
        """
        shape = tuple(int(d) for d in obs.shape[1:])
        if len(shape) == 3:
            return cls.grid(shape)
        if len(shape) != 1:
            raise ConfigError(
                f"observations of shape {shape} are neither vectors (F,) nor grids (C, H, W)"
            )
        sample = np.asarray(obs[: min(len(obs), 100_000)], np.float64)
        lo, hi = np.quantile(sample, 0.005, axis=0), np.quantile(sample, 0.995, axis=0)
        if space is not None:
            s_lo, s_hi = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
            lo = np.where(np.isfinite(s_lo), s_lo, lo)
            hi = np.where(np.isfinite(s_hi), s_hi, hi)
        return cls.vector(lo, hi, bins=bins)

    # -- the mapping --------------------------------------------------------------------------
    @property
    def length(self) -> int:
        """L: tokens per observation, CLS included."""
        return 1 + (
            self.obs_shape[0] if self.kind == "vector" else self.obs_shape[1] * self.obs_shape[2]
        )

    @property
    def vocab_size(self) -> int:
        if self.kind == "vector":
            return BASE + self.obs_shape[0] * self.bins
        return BASE + 2 ** self.obs_shape[0]

    def encode(self, obs: np.ndarray) -> np.ndarray:
        """Observations (B, *obs_shape) -> token ids (B, L) int32, CLS first."""
        obs = np.asarray(obs)
        if tuple(obs.shape[1:]) != self.obs_shape:
            raise ConfigError(
                f"the observation tokenizer expects observations {self.obs_shape}, got "
                f"{tuple(obs.shape[1:])}: pretrain on data from an env with this observation shape"
            )
        if self.kind == "vector":
            lo, hi = np.asarray(self.low), np.asarray(self.high)
            frac_BF = (obs.astype(np.float64) - lo) / (hi - lo)
            bin_BF = np.clip(np.floor(frac_BF * self.bins), 0, self.bins - 1).astype(np.int32)
            ids_BF = BASE + np.arange(self.obs_shape[0], dtype=np.int32) * self.bins + bin_BF
        else:
            c = self.obs_shape[0]
            weights_C = (1 << np.arange(c)).astype(np.int32)
            bits_BCHW = (obs > 0).astype(np.int32)
            ids_BF = BASE + np.einsum("bchw,c->bhw", bits_BCHW, weights_C).reshape(len(obs), -1)
        cls_B1 = np.full((len(obs), 1), CLS, np.int32)
        return np.concatenate([cls_B1, ids_BF.astype(np.int32)], axis=1)

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "drlzero-obs-tokenizer",
            "version": 1,
            "pad_id": PAD,
            "cls_id": CLS,
            "mask_id": MASK,
            "vocab_size": self.vocab_size,
            "length": self.length,
            **dataclasses.asdict(self),
        }

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ObsTokenizer:
        """Read ``FOLDER/obs_tokenizer.json`` (a one-line :class:`ConfigError` if unreadable)."""
        path = Path(folder) / FILENAME
        try:
            data = json.loads(path.read_text())
            if data.get("format") != "drlzero-obs-tokenizer" or data.get("kind") not in KINDS:
                raise ValueError("not a drlzero observation tokenizer")
            return cls(
                data["kind"],
                tuple(int(d) for d in data["obs_shape"]),
                int(data.get("bins", 0)),
                tuple(float(v) for v in data.get("low", ())),
                tuple(float(v) for v in data.get("high", ())),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the observation tokenizer {path}: {exc}") from None

    @staticmethod
    def present(folder: str | Path) -> bool:
        """Whether a model directory carries an observation tokenizer (non-text observations)."""
        return (Path(folder) / FILENAME).is_file()
