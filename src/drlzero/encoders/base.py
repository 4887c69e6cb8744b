"""The Encoder interface every state representer implements.

An encoder is an ``nn.Module`` with an int ``features_dim`` whose ``forward(obs)`` maps a batch of
observations (already tensors on the module's device) to features of shape (B, features_dim).

Shape legend used across drlzero: B batch, A actions, L tokens, D hidden/features, T time, N atoms.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Encoder(Protocol):
    features_dim: int

    def __call__(self, obs: torch.Tensor) -> torch.Tensor: ...
