"""Target networks that share what does not train, and the storage they take."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from drlzero.encoders.pretrained import PretrainedEncoder


def make_target(q_net: nn.Module, *, share_encoder: bool = False) -> nn.Module:
    """A target network that shares what does not train instead of copying it.

    Every parameter with ``requires_grad=False`` (a frozen backbone; the base weights under LoRA
    or ``top_k``) and the backbone's buffers are the *same* tensors in the target, so a large
    model exists once; trainable weights (adapters, projection, head) are copied. With
    ``share_encoder=True`` (full fine-tuning, ``encoder.target_share=share``) the whole encoder is
    shared too and only the head lags: half the memory, at the price of a target whose features
    move with the online network. Embedding caches are shared, never copied.
    """
    memo: dict[int, Any] = {}
    for p in q_net.parameters():
        if not p.requires_grad:
            memo[id(p)] = p
    for m in q_net.modules():
        if isinstance(m, PretrainedEncoder):
            for b in m.backbone.buffers():
                memo[id(b)] = b
            memo[id(m.base_names)] = m.base_names
            if m.cache is not None:
                memo[id(m.cache)] = m.cache
            if m.lower_cache is not None:
                memo[id(m.lower_cache)] = m.lower_cache
    encoder = getattr(q_net, "encoder", None)
    if share_encoder and encoder is not None:
        for t in [*encoder.parameters(), *encoder.buffers()]:
            memo[id(t)] = t
    return copy.deepcopy(q_net, memo)


def shared_storage_bytes(*modules: nn.Module) -> int:
    """Bytes of distinct parameter/buffer storage across ``modules`` (shared tensors once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            ptr = t.untyped_storage().data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                total += t.untyped_storage().nbytes()
    return total
