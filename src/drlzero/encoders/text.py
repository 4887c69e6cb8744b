"""A small Transformer text encoder trained from scratch over token ids (the no-pretraining
baseline the pretrained encoders are compared with).

Shape legend: B batch, L tokens, D ``d_model``.

Reads the same int32 token-id arrays (pad ``-1``) as :class:`~drlzero.encoders.pretrained.
PretrainedEncoder`, so the two compare on identical inputs; only pretraining differs.

Example:
    >>> enc = TextTransformerEncoder((16,), vocab_size=100, d_model=32, n_heads=4, n_layers=1)
    >>> enc(torch.randint(0, 100, (2, 16))).shape
    torch.Size([2, 32])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TextTransformerEncoder"]


class TextTransformerEncoder(nn.Module):
    """Token + learned position embeddings, a pre-LN ``nn.TransformerEncoder``, masked mean pool.

    Args:
        obs_shape: (L,), the token-array length.
        vocab_size: number of token ids (the tokenizer's vocabulary).
        d_model, n_heads, n_layers, ff_dim: Transformer sizes.
    """

    features_dim: int

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        *,
        vocab_size: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        ff_dim: int = 128,
    ) -> None:
        super().__init__()
        if len(obs_shape) != 1:
            raise ValueError(f"text_transformer reads token-id arrays (L,), got {obs_shape}")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.features_dim = int(d_model)
        self.tok = nn.Embedding(vocab_size + 1, d_model)  # the last row embeds padding
        self.pos_LD = nn.Parameter(torch.randn(obs_shape[0], d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, ff_dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.pad_index = vocab_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, -1 = padding -> features (B, D)."""
        mask_BL = obs >= 0
        # Drop the right-padding columns no row uses (attention cost grows with L).
        used = int(mask_BL.sum(1).max().clamp(min=1))
        mask_BL = mask_BL[:, :used]
        ids_BL = torch.where(mask_BL, obs[:, :used], self.pad_index).long()
        x_BLD = self.tok(ids_BL) + self.pos_LD[:used]
        hidden_BLD = self.transformer(x_BLD, src_key_padding_mask=~mask_BL)
        m_BL1 = mask_BL.unsqueeze(-1).float()
        pooled_BD = (hidden_BLD * m_BL1).sum(1) / m_BL1.sum(1).clamp(min=1.0)
        return self.norm(pooled_BD)
