"""Why did the agent act so: input attributions for a network's score of an action.

Integrated gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks"):
for a score ``F`` (e.g. the Q-value or logit of the chosen action), an input ``x`` and a
baseline ``x0`` (an input that "says nothing": zeros, the mean observation),

    IG_i(x) = (x_i - x0_i) * mean_{k=1..S} dF/dx_i (x0 + a_k (x - x0)),   a_k = (k - 1/2) / S,

the midpoint Riemann sum of the path integral of the gradient along the straight line from
``x0`` to ``x``. Its terms add up to ``F(x) - F(x0)`` as S grows (completeness), so an
attribution is a share of the score, in the score's own units (a Q-value: return).

Text: observations travel as token ids, which have no gradient; the path runs through the
model's *token embeddings* instead (:func:`token_attributions`: a forward hook replaces the
embedding layer's output by the interpolated embeddings), and each token's share is summed over
the embedding dimension, then over the word pieces of a word (:func:`words_of`). Any model with
an embedding layer plugs in: a pretrained encoder, or a language-model policy whose score is the
log-probability of an action's text.

Shapes: B batch, S path steps, L tokens, H embedding size, A actions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["integrated_gradients", "token_attributions", "words_of", "zero_embedding_score"]


def _alphas(steps: int, device: torch.device) -> torch.Tensor:
    if steps <= 0:
        raise ValueError(f"steps={steps} must be > 0")
    return (torch.arange(steps, device=device, dtype=torch.float32) + 0.5) / steps


def integrated_gradients(
    score: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor | None = None,
    *,
    steps: int = 32,
    chunk: int = 4096,
) -> torch.Tensor:
    """Integrated gradients of ``score`` at each row of ``x``.

    Args:
        score: a batch of inputs (N, ...) -> one score per row (N,); it is called on the path
            points of every row, row b's points being rows ``b, B + b, 2B + b, ...``, so a
            per-row target (e.g. the chosen action) is ``target.repeat(N // B)``.
        x: the inputs (B, ...), float.
        baseline: the reference input, broadcastable to ``x`` (default zeros).
        steps: S, points on the path (more: closer to completeness).
        chunk: at most this many path points per forward/backward (memory).

    Returns:
        Attributions, the shape of ``x``; row b sums to about score(x_b) - score(baseline).
    """
    x = x.detach().float()
    x0 = torch.zeros_like(x) if baseline is None else baseline.detach().float().expand_as(x)
    alphas = _alphas(steps, x.device)
    grad_sum = torch.zeros_like(x)
    # path steps per pass (all rows at once): at most ``chunk`` rows and 2**24 input floats
    # (64 MB; an episode of Atari frames is 28k floats a row)
    per = max(1, min(chunk // max(1, len(x)), (1 << 24) // max(1, x.numel())))
    for start in range(0, steps, per):
        a = alphas[start : start + per].view(-1, *([1] * x.dim()))  # (s, 1, ...)
        path = (x0 + a * (x - x0)).reshape(-1, *x.shape[1:]).requires_grad_(True)  # (s*B, ...)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(score(path).sum(), path)
        grad_sum += grad.view(len(a), *x.shape).sum(0)
    return (x - x0) * grad_sum / steps


def token_attributions(
    embedding: nn.Module,
    ids_BL: torch.Tensor,
    score: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 16,
) -> torch.Tensor:
    """Integrated gradients over token embeddings, one number per token.

    Args:
        embedding: the model's token-embedding layer (e.g. ``backbone.get_input_embeddings()``);
            ``score`` must call it exactly once per forward. The baseline is the zero embedding.
        ids_BL: token ids (B, L).
        score: token ids (N, L) -> one score per row (N,), running the whole model (row b's path
            points are rows ``b, B + b, ...``, as in :func:`integrated_gradients`).
        steps: S, points on the path.

    Returns:
        (B, L') attributions, L' the sequence length the embedding layer saw (a model may drop
        padding columns first); tokens past L' get none.
    """
    B = len(ids_BL)
    alphas = _alphas(steps, ids_BL.device)
    seen: list[torch.Tensor] = []

    def interpolate(_m: nn.Module, _inputs: Any, out_NLH: torch.Tensor) -> torch.Tensor:
        e = out_NLH.detach().float()
        a_N = alphas.repeat_interleave(B).to(e.device).view(-1, 1, 1)
        point = (a_N * e).to(out_NLH.dtype).requires_grad_(True)  # zero baseline
        seen.append(point)
        seen.append(e)
        return point

    handle = embedding.register_forward_hook(interpolate)
    try:
        with torch.enable_grad():
            out = score(ids_BL.repeat(steps, 1))
            if len(seen) != 2:
                raise RuntimeError(
                    f"the embedding layer ran {len(seen) // 2} times in one forward; "
                    "token_attributions needs exactly one"
                )
            (grad,) = torch.autograd.grad(out.sum(), seen[0])
    finally:
        handle.remove()
    e = seen[1].view(steps, B, *seen[1].shape[1:])[0]  # the full embeddings (B, L', H)
    grad_BLH = grad.float().view(steps, B, *grad.shape[1:]).mean(0)
    return (e * grad_BLH).sum(-1)


@torch.no_grad()
def zero_embedding_score(
    embedding: nn.Module, ids_BL: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``score`` with every token embedding set to zero: the baseline of
    :func:`token_attributions` (its attributions add up to ``score(ids) - this``)."""
    handle = embedding.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        return score(ids_BL)
    finally:
        handle.remove()


def words_of(
    tokens: Sequence[str], special: set[str] | frozenset[str] = frozenset()
) -> list[list[int]]:
    """Group word pieces into words: lists of token positions, special tokens left out.

    WordPiece continues a word with ``##`` (BERT, MiniLM); byte-level BPE (GPT-2, Llama) and
    SentencePiece start a word with ``Ġ`` or ``▁``, so there a piece without it continues one.
    """
    bpe = any(t.startswith(("Ġ", "▁")) for t in tokens)
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if tok in special:
            continue
        cont = tok.startswith("##") if not bpe else not tok.startswith(("Ġ", "▁"))
        if cont and groups and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
