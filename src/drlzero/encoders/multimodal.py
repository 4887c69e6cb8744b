"""Multimodal encoder for Dict observations (e.g. a BabyAI grid image + the mission in words).

Shape legend: B batch, H, W grid size, C channels, N = H*W cells, E fusion width, T text features.

Each key has its own encoder: a grid encoder for the image, a text encoder (pretrained or
from-scratch) for the token ids. They are fused by concatenation (text features + a pooled grid
vector), by FiLM (the text scales and shifts the grid's conv channels before pooling; Perez et al.
2018, the BabyAI baselines' fusion, Chevalier-Boisvert et al. 2019), by cross-attention in
which the text features query the image cells, each with a learned position embedding (the
mission picks out what to look at, the position says where it is), or by matching: K queries
from the text are scored against every cell's own embedding, and the K score maps join the
grid's conv channels, so where the named object lies is a spatial input before pooling.

The replay buffer stores one flat float32 array per observation: the image, then what the text
encoder stores (token ids, or cached embeddings for a frozen pretrained model; ids < 2**24 are
exact in float32). :meth:`MultimodalEncoder.preprocess` packs it at the env boundary.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

__all__ = ["FUSIONS", "GridEncoder", "MultimodalEncoder"]

FUSIONS = ("concat", "cross_attention", "film", "match")


class GridEncoder(nn.Module):
    """Small-integer grids (MiniGrid's (object, color, state) cells): a learned embedding per
    (channel, value), summed over channels, then a 3x3 conv. Returns per-cell features (B, N, E)
    and a pooled vector (B, E)."""

    def __init__(self, shape: tuple[int, ...], *, width: int = 64, max_value: int = 256) -> None:
        super().__init__()
        h, w, c = shape
        self.max_value = max_value
        self.embed = nn.Embedding(c * max_value, width)
        self.register_buffer("offsets", torch.arange(c) * max_value, persistent=False)
        self.conv = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())

    def cell_embedding(self, image_BHWC: torch.Tensor) -> torch.Tensor:
        """Each cell's own embedding (B, E, H, W): the sum of its channels' value embeddings."""
        idx = image_BHWC.long().clamp(0, self.max_value - 1) + self.offsets
        return self.embed(idx).sum(dim=3).permute(0, 3, 1, 2)

    def feature_map(self, image_BHWC: torch.Tensor) -> torch.Tensor:
        """The conv features (B, E, H, W), before pooling."""
        return self.conv(self.cell_embedding(image_BHWC))

    def forward(self, image_BHWC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells_BNE = self.feature_map(image_BHWC).flatten(2).transpose(1, 2)
        return cells_BNE, self.pool(cells_BNE.flatten(1))


class MultimodalEncoder(nn.Module):
    """Encodes ``{"image": (H, W, C) grid, text_key: (L,) token ids}``.

    Args:
        obs_space: the Dict observation space.
        text_encoder: an encoder over the text key (may define ``preprocess``/``stored_shape``).
        text_key, image_key: the Dict keys.
        fusion: concat | cross_attention | film | match.
        width: E, the grid encoder and fusion width.
        n_heads: attention heads (cross_attention) or query maps K (match).
    """

    features_dim: int

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        text_encoder: nn.Module,
        *,
        text_key: str = "text",
        image_key: str = "image",
        fusion: str = "concat",
        width: int = 64,
        n_heads: int = 4,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        for key in (text_key, image_key):
            if key not in obs_space.spaces:
                raise ValueError(f"the multimodal encoder needs the key {key!r} in {obs_space}")
        self.text_key, self.image_key = text_key, image_key
        self.image_shape = tuple(int(d) for d in obs_space[image_key].shape)
        self.image_size = math.prod(self.image_shape)
        self.text = text_encoder
        self.text_shape = tuple(getattr(text_encoder, "stored_shape", obs_space[text_key].shape))
        self.grid = GridEncoder(self.image_shape, width=width)
        self.fusion = fusion
        t = text_encoder.features_dim
        if fusion == "cross_attention":
            # Attention sums the cells it picks, so without a position term the result says
            # what the mission's object looks like but not where it is; a learned embedding
            # per cell (N, E) is added to the keys and values.
            n_cells = self.image_shape[0] * self.image_shape[1]
            self.cell_pos = nn.Parameter(torch.randn(n_cells, width) * 0.02)
            self.query = nn.Linear(t, width)
            self.attn = nn.MultiheadAttention(width, n_heads, batch_first=True)
        elif fusion == "film":
            # FiLM (Perez et al. 2018), as in the BabyAI baselines: the text gives a scale and
            # a shift per channel of a second conv, so which cells light up depends on the
            # mission before the grid is pooled, not only in the head after it.
            h, w = self.image_shape[0], self.image_shape[1]
            self.film = nn.Linear(t, 2 * width)
            self.film_conv = nn.Conv2d(width, width, 3, padding=1)
            self.film_pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())
        elif fusion == "match":
            # A cell's embedding is the sum of its (object, colour, state) embeddings, so a
            # query's score q.e = q.e_object + q.e_colour + q.e_state is highest where both
            # named words hold; K maps and the conv after them let the net threshold that sum.
            h, w = self.image_shape[0], self.image_shape[1]
            self.match_heads = n_heads
            self.match_query = nn.Linear(t, n_heads * width)
            self.match_conv = nn.Sequential(
                nn.Conv2d(width + n_heads, width, 3, padding=1), nn.ReLU()
            )
            self.match_pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())
        self.features_dim = t + width  # every fusion: the text features + one E-wide grid part

    @property
    def stored_shape(self) -> tuple[int, ...]:
        return (self.image_size + math.prod(self.text_shape),)

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def preprocess(self, obs: dict[str, Any]) -> np.ndarray:
        """Env boundary: a batch of Dict observations -> one flat float32 array per row."""
        image = np.asarray(obs[self.image_key]).reshape(len(obs[self.image_key]), -1)
        text = np.asarray(obs[self.text_key])
        prep = getattr(self.text, "preprocess", None)
        if prep is not None:
            text = prep(text)
        flat_text = text.reshape(len(text), -1).astype(np.float32)
        return np.concatenate([image.astype(np.float32), flat_text], axis=1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        image = obs[:, : self.image_size].reshape(-1, *self.image_shape)
        text = obs[:, self.image_size :].reshape(-1, *self.text_shape)
        text_stored_float = getattr(self.text, "stored_dtype", np.dtype(np.int32)) == np.float32
        text_BT = self.text(text if text_stored_float else text.round().int())
        return self.fuse(text_BT, image)

    def match_maps(self, text_BT: torch.Tensor, cells_BEHW: torch.Tensor) -> torch.Tensor:
        """Match fusion's K maps (B, K, H, W): each text query's scaled dot product with every
        cell's embedding, as in attention's scores but kept as a map, not softmaxed into a sum."""
        width = cells_BEHW.shape[1]
        q_BKE = self.match_query(text_BT).view(-1, self.match_heads, width)
        return torch.einsum("bke,behw->bkhw", q_BKE, cells_BEHW) / math.sqrt(width)

    def fuse(self, text_BT: torch.Tensor, image_BHWC: torch.Tensor) -> torch.Tensor:
        """Text features (B, T) and the grid image -> the fused features (B, D)."""
        if self.fusion == "film":
            scale_BE, shift_BE = self.film(text_BT).chunk(2, dim=1)
            x_BEHW = self.film_conv(self.grid.feature_map(image_BHWC))
            x_BEHW = torch.relu(
                x_BEHW * (1 + scale_BE[:, :, None, None]) + shift_BE[:, :, None, None]
            )
            return torch.cat([text_BT, self.film_pool(x_BEHW.flatten(1))], dim=1)
        if self.fusion == "match":
            cells_BEHW = self.grid.cell_embedding(image_BHWC)
            maps_BKHW = self.match_maps(text_BT, cells_BEHW)
            x_BEHW = self.match_conv(torch.cat([self.grid.conv(cells_BEHW), maps_BKHW], dim=1))
            return torch.cat([text_BT, self.match_pool(x_BEHW.flatten(1))], dim=1)
        cells_BNE, image_BE = self.grid(image_BHWC)
        if self.fusion == "cross_attention":
            q_B1E = self.query(text_BT).unsqueeze(1)
            kv_BNE = cells_BNE + self.cell_pos
            attended_B1E, _ = self.attn(q_B1E, kv_BNE, kv_BNE, need_weights=False)
            return torch.cat([text_BT, attended_B1E.squeeze(1)], dim=1)
        return torch.cat([text_BT, image_BE], dim=1)
