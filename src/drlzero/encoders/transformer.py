"""Transformer encoder for sequence or set observations.

Shape legend for tensor names: B batch, L tokens (sequence length / number of entities),
F per-token input features, D hidden size (``d_model``).

Observations are (B, L, F): e.g. the last k frames of a vector observation, or a set of entities.
With ``positional=False`` the encoder is permutation-invariant over tokens (Deep Sets style;
Zaheer et al., 2017), which is what set observations want.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TransformerEncoder"]

_POOLINGS = ("cls", "mean")


class TransformerEncoder(nn.Module):
    """Pre-LN Transformer encoder (Vaswani et al., 2017, "Attention Is All You Need"; pre-LN per
    Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture") pooled to a
    single feature vector.

    Tokens are embedded linearly (F -> D), optionally given a learned positional embedding, run
    through ``nn.TransformerEncoder`` (batch_first, norm_first) and pooled either through a
    learned CLS token (Devlin et al., 2019, BERT) or by mean over tokens, then layer-normalised.

    Attributes:
        features_dim: Size of the output feature vector (== ``d_model``).
    """

    features_dim: int

    def __init__(
        self,
        obs_shape: tuple[int, int],
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        ff_dim: int = 128,
        dropout: float = 0.0,
        pooling: str = "cls",
        positional: bool = True,
    ) -> None:
        """Build the encoder.

        Args:
            obs_shape: Per-sample observation shape (L, F).
            d_model: Hidden size D; also the output ``features_dim``.
            n_heads: Attention heads; must divide ``d_model``.
            n_layers: Number of Transformer encoder layers.
            ff_dim: Hidden size of each layer's feed-forward block.
            dropout: Dropout inside the Transformer layers (0 is usual in RL).
            pooling: "cls" (learned CLS token) or "mean" (average over tokens).
            positional: Add a learned positional embedding. Set False for set observations to
                make the output invariant to token order.

        Raises:
            ValueError: On a non-2-D ``obs_shape``, ``d_model`` not divisible by ``n_heads``, or
                an unknown ``pooling``.
        """
        super().__init__()
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) != 2:
            raise ValueError(
                f"TransformerEncoder needs a 2-D obs_shape (L tokens, F features), got {obs_shape};"
                " stack flat observations with a FrameStack wrapper or use the mlp encoder"
            )
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")

        n_tokens, n_features = obs_shape
        self.obs_shape = obs_shape
        self.pooling = pooling
        self.positional = positional
        self.features_dim = int(d_model)

        self.embed = nn.Linear(n_features, d_model)
        # Small init keeps the initial residual stream dominated by the token content.
        self.pos_LD = nn.Parameter(torch.randn(n_tokens, d_model) * 0.02) if positional else None
        self.cls_D = nn.Parameter(torch.randn(d_model) * 0.02) if pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(
            d_model=d_model,
            nhead=n_heads,
            dim_feedforward=ff_dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        # Nested-tensor fast path is incompatible with norm_first and only warns; disable it.
        self.transformer = nn.TransformerEncoder(
            layer, num_layers=n_layers, enable_nested_tensor=False
        )
        # Pre-LN stacks leave the residual stream unnormalised, so normalise the output.
        self.norm = nn.LayerNorm(d_model)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Encode a batch of token sequences / sets.

        Args:
            obs: (B, L, F) observations; any numeric dtype (cast to float).

        Returns:
            Features of shape (B, features_dim).
        """
        tokens_BLD = self.embed(obs.float())
        if self.pos_LD is not None:
            tokens_BLD = tokens_BLD + self.pos_LD
        if self.cls_D is not None:
            cls_B1D = self.cls_D.expand(tokens_BLD.shape[0], 1, -1)
            tokens_BLD = torch.cat([cls_B1D, tokens_BLD], dim=1)
        hidden_BLD = self.transformer(tokens_BLD)
        features_BD = hidden_BLD[:, 0] if self.cls_D is not None else hidden_BLD.mean(dim=1)
        return self.norm(features_BD)
