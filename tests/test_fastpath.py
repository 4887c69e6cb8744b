"""The flat eager forward (drlzero.fastpath): exact, live weights, gradients, safe fallbacks."""

from __future__ import annotations

import torch
from torch import nn

from drlzero.encoders.cnn import MinAtarCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.fastpath import flat_forward
from drlzero.heads import DuelingHead, QNetwork
from drlzero.noisy import NoisyLinear


def _mlp_q() -> QNetwork:
    torch.manual_seed(0)
    enc = MLPEncoder((4,), hidden=[32, 16])
    return QNetwork(enc, DuelingHead(enc.features_dim, 3, hidden=8))


def test_flat_forward_is_exact_and_sees_weight_updates() -> None:
    net = _mlp_q()
    fwd = flat_forward(net, torch.zeros(1, 4))
    assert fwd is not net
    x = torch.randn(5, 4)
    assert torch.equal(fwd(x), net(x))
    with torch.no_grad():  # an optimizer step changes the weights in place
        for p in net.parameters():
            p.mul_(1.5).add_(0.1)
    assert torch.equal(fwd(x), net(x))


def test_flat_forward_gradients_match_the_module() -> None:
    net = _mlp_q()
    fwd = flat_forward(net, torch.zeros(1, 4))
    x = torch.randn(8, 4)
    fwd(x).pow(2).sum().backward()
    flat_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net(x).pow(2).sum().backward()
    for a, p in zip(flat_grads, net.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


def test_cnn_is_flattened_too() -> None:
    torch.manual_seed(0)
    enc = MinAtarCNN((10, 10, 4))
    net = QNetwork(enc, nn.Linear(enc.features_dim, 6))
    x = torch.rand(2, 10, 10, 4)
    fwd = flat_forward(net, x)
    assert fwd is not net
    assert torch.equal(fwd(x), net(x))


def test_stateful_modules_keep_the_module_call() -> None:
    noisy = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), NoisyLinear(8, 2))
    assert flat_forward(noisy, torch.zeros(1, 4)) is noisy
    dropout = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    assert flat_forward(dropout, torch.zeros(1, 4)) is dropout
