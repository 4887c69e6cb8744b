"""Integrated gradients against numbers known in closed form, and word grouping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drlzero.explain import integrated_gradients, token_attributions, words_of, zero_embedding_score


def test_ig_of_a_linear_score_is_weight_times_input() -> None:
    """F(x) = w.x + b: the gradient is w everywhere, so IG_i = w_i (x_i - x0_i) exactly."""
    w = torch.tensor([2.0, -1.0, 0.5])
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 4.0]])
    base = torch.tensor([0.5, 0.5, 0.5])
    attr = integrated_gradients(lambda z: z @ w + 7.0, x, base, steps=3)
    torch.testing.assert_close(attr, (x - base) * w)


def test_ig_of_a_quadratic_is_exact_with_the_midpoint_rule() -> None:
    """F(x) = sum x_i^2 from baseline 0: IG_i = x_i * mean_k 2 a_k x_i = x_i^2 (the midpoints
    average to 1/2), so the attributions add up to F(x) - F(0) exactly."""
    x = torch.tensor([[1.0, -2.0, 3.0]])
    attr = integrated_gradients(lambda z: (z**2).sum(1), x, steps=4)
    torch.testing.assert_close(attr, x**2)


def test_ig_completeness_on_a_network_and_per_row_targets() -> None:
    """On a small ReLU network, each row's attributions add up to F(x) - F(0) (to the path-sum
    error), with a different target action per row, computed in chunks."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.randn(6, 5)
    target = torch.tensor([0, 1, 2, 0, 1, 2])

    def score(z: torch.Tensor) -> torch.Tensor:
        return net(z).gather(1, target.repeat(len(z) // len(target))[:, None])[:, 0]

    attr = integrated_gradients(score, x, steps=256, chunk=100)
    gap = score(x) - score(torch.zeros_like(x))
    torch.testing.assert_close(attr.sum(1), gap.detach(), atol=1e-3, rtol=1e-3)


class _TinyTextModel(nn.Module):
    """Embedding -> mean over tokens -> linear: linear in the embeddings."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.emb = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(ids).mean(1))


def test_token_attributions_of_a_linear_text_model_are_exact() -> None:
    """score = w . mean_l e(id_l) + b: the share of token l is w . e(id_l) / L."""
    model = _TinyTextModel()
    ids = torch.tensor([[3, 5, 5, 1]])
    attr = token_attributions(model.emb, ids, lambda i: model(i)[:, 1], steps=5)
    expected = (model.emb(ids)[0] @ model.out.weight[1]) / ids.shape[1]
    torch.testing.assert_close(attr[0], expected.detach())
    # completeness against the zero-embedding baseline (the bias is not attributed)
    base = zero_embedding_score(model.emb, ids, lambda i: model(i)[:, 1])
    torch.testing.assert_close(attr.sum(), (model(ids)[0, 1] - base[0]).detach())


def test_token_attributions_refuse_a_model_that_embeds_twice() -> None:
    model = _TinyTextModel()
    with pytest.raises(RuntimeError, match="exactly one"):
        token_attributions(
            model.emb, torch.tensor([[1, 2]]), lambda i: model(i)[:, 0] + model(i)[:, 1]
        )


def test_words_of_wordpiece_and_bpe() -> None:
    wp = ["[CLS]", "a", "purple", "key", "##s", ".", "[SEP]"]
    assert words_of(wp, {"[CLS]", "[SEP]"}) == [[1], [2], [3, 4], [5]]
    bpe = ["Go", "Ġto", "Ġthe", "Ġyel", "low", "Ġbox", "."]
    assert words_of(bpe) == [[0], [1], [2], [3, 4], [5, 6]]
