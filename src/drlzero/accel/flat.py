"""Contiguous parameter storage: one tensor for all trainable weights and one for their grads.

A DQN update on a small network is dominated by per-tensor overhead, not arithmetic: with every
weight and gradient living in one flat tensor, zeroing the grads, the global gradient norm, the
clip and a fused Adam step are one kernel each (~22% off a 256x256 MLP update on this CPU; see
``benchmarks/update_step.py``). Module parameters become views into the flat tensor, so modules,
``state_dict`` and ``load_state_dict`` work unchanged.

Caveat: moving the module to another device (or replacing ``param.data``) after flattening breaks
the views; flatten after ``.to(device)``.
"""

from __future__ import annotations

import torch
from torch import nn


class FlatParams:
    """Re-home ``params`` (same dtype and device) into one contiguous parameter with a flat grad.

    Args:
        params: trainable parameters (``requires_grad=True``).

    Example:
        >>> net = nn.Linear(3, 2)
        >>> flat = FlatParams(list(net.parameters()))
        >>> flat.param.numel()
        8
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        if not params:
            raise ValueError("no trainable parameters to flatten")
        self.params = params
        with torch.no_grad():
            self.param = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.param.grad = torch.zeros_like(self.param)
        self._views: list[tuple[torch.Tensor, torch.Tensor]] = []
        off = 0
        for p in params:
            k = p.numel()
            p.data = self.param.data[off : off + k].view_as(p)
            grad_view = self.param.grad[off : off + k].view_as(p)
            p.grad = grad_view
            self._views.append((p, grad_view))
            off += k

    def relink(self) -> None:
        """Re-attach grad views if someone set ``p.grad = None`` (e.g. ``module.zero_grad()``)."""
        for p, g in self._views:
            if p.grad is not g:
                p.grad = g

    def zero_grad(self) -> None:
        self.param.grad.zero_()  # type: ignore[union-attr]

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient to global L2 norm <= ``max_norm``; returns the norm before."""
        grad = self.param.grad
        assert grad is not None
        norm = torch.linalg.vector_norm(grad)
        grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm


class FlatGroups:
    """Several :class:`FlatParams` (one per optimizer group) behind the same interface; the
    gradient norm is global over all of them."""

    def __init__(self, flats: list[FlatParams]) -> None:
        self.flats = flats

    def relink(self) -> None:
        for f in self.flats:
            f.relink()

    def zero_grad(self) -> None:
        for f in self.flats:
            f.zero_grad()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale all groups' gradients to global L2 norm <= ``max_norm``; returns the norm."""
        grads = [f.param.grad for f in self.flats]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = (max_norm / (norm + 1e-6)).clamp_(max=1.0)
        torch._foreach_mul_(grads, scale)
        return norm
