"""Q heads: features_BD -> q_BA."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """``q = W f + b``."""

    def __init__(self, features_dim: int, num_actions: int) -> None:
        super().__init__()
        self.out = nn.Linear(features_dim, num_actions)

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        return self.out(features_BD)


class DuelingHead(nn.Module):
    """Dueling architecture (Wang et al. 2016): ``q = V + A - mean_a A``.

    Subtracting the mean advantage makes V and A identifiable (eq. 9 of the paper).
    """

    def __init__(self, features_dim: int, num_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(features_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.advantage = nn.Sequential(
            nn.Linear(features_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_actions)
        )

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        v_B1 = self.value(features_BD)
        a_BA = self.advantage(features_BD)
        return v_B1 + a_BA - a_BA.mean(dim=1, keepdim=True)


class QNetwork(nn.Module):
    """An encoder followed by a Q head.

    ``forward`` always returns Q-values q_BA; a distributional head (one with ``q_values``)
    exposes its raw output through :meth:`distribution`.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self._distributional = hasattr(head, "q_values")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.head(self.encoder(obs))
        return self.head.q_values(out) if self._distributional else out

    def distribution(self, obs: torch.Tensor) -> torch.Tensor:
        """The head's raw output: logits_BAN (C51) or quantiles_BAN (QR-DQN)."""
        return self.head(self.encoder(obs))
