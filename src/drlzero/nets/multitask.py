"""Policy distillation's multi-task student: one Q-network per task with shared weights."""

from __future__ import annotations

import torch
from torch import nn

from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import ConfigError
from drlzero.nets.heads import QNetwork

__all__ = ["MultiTaskStudent"]


class MultiTaskStudent(nn.Module):
    """One Q-network per task with shared weights; ``forward(obs, task) -> q_BA``.

    Tasks with the same observation space share the whole encoder; MLP students on different
    observation spaces share every hidden layer but the first (each task reads its own inputs).
    Every per-task network is a plain :class:`QNetwork`, so each loads alone from a checkpoint
    with ``build_q_network`` (the shared tensors are simply written once per task).
    """

    def __init__(self, nets: list[QNetwork]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        first = nets[0].encoder
        for net in nets[1:]:
            enc = net.encoder
            if _same_input(enc, first):
                net.encoder = first
            elif isinstance(enc, MLPEncoder) and isinstance(first, MLPEncoder):
                linear = [i for i, m in enumerate(first.net) if isinstance(m, nn.Linear)]
                if len(linear) < 2:
                    raise ConfigError(
                        "multi-task students on different observation spaces share hidden "
                        "layers after the first; give at least two, e.g. --hidden 64,64"
                    )
                for i in linear[1:]:
                    enc.net[i] = first.net[i]
            else:
                raise ConfigError(
                    "multi-task distillation across different observation spaces needs MLP "
                    "encoders; use teachers on the same observation space for CNNs"
                )

    def forward(self, obs: torch.Tensor, task: int = 0) -> torch.Tensor:
        return self.nets[task](obs)


def _same_input(a: nn.Module, b: nn.Module) -> bool:
    shapes_a = [tuple(p.shape) for p in a.parameters()]
    shapes_b = [tuple(p.shape) for p in b.parameters()]
    return type(a) is type(b) and shapes_a == shapes_b
