"""Multi-layer perceptron encoder for vector observations."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLPEncoder(nn.Module):
    """Flatten the observation, then ``Linear -> activation`` for each hidden size.

    Args:
        obs_shape: shape of one observation (flattened to ``prod(obs_shape)`` inputs).
        hidden: hidden layer sizes; the last one is ``features_dim``.
        activation: ``relu``, ``tanh`` or ``gelu``.

    Example:
        >>> enc = MLPEncoder((4,), hidden=[64, 64])
        >>> enc(torch.zeros(2, 4)).shape
        torch.Size([2, 64])
    """

    def __init__(
        self, obs_shape: tuple[int, ...], *, hidden: list[int], activation: str = "relu"
    ) -> None:
        super().__init__()
        in_dim = math.prod(obs_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(in_dim, h), ACTIVATIONS[activation]()]
            in_dim = h
        self.net = nn.Sequential(*layers)
        self.features_dim = in_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float())
