"""Optimizer groups (a pretrained backbone at its own learning rate, warmed up) and counts of
what trains."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from drlzero.encoders.pretrained import PretrainedEncoder


def param_groups(
    q_net: nn.Module, lr: float, backbone_lr: float | None, warmup: int = 0
) -> list[dict[str, Any]]:
    """Optimizer groups: trainable backbone weights at ``backbone_lr`` (warmed up over
    ``warmup`` gradient steps), everything else that trains (projection, head) at ``lr``."""
    backbone_ids = {
        id(p)
        for m in q_net.modules()
        if isinstance(m, PretrainedEncoder)
        for p in m.backbone.parameters()
    }
    trainable = [p for p in q_net.parameters() if p.requires_grad]
    backbone = [p for p in trainable if id(p) in backbone_ids]
    rest = [p for p in trainable if id(p) not in backbone_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "lr": lr, "base_lr": lr, "warmup": 0}]
    if backbone:
        blr = lr if backbone_lr is None else backbone_lr
        groups.append({"params": backbone, "lr": blr, "base_lr": blr, "warmup": int(warmup)})
    return groups


def apply_warmup(optimizer: torch.optim.Optimizer, updates: int) -> None:
    """Linear warm-up of groups that ask for it: lr = base_lr * min(1, (updates + 1) / warmup)."""
    for g in optimizer.param_groups:
        w = g.get("warmup", 0)
        if w:
            g["lr"] = g["base_lr"] * min(1.0, (updates + 1) / w)


def count_trainable(module: nn.Module) -> int:
    """Number of trainable (``requires_grad``) weights."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
