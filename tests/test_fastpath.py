"""The flat eager forward (drlzero.accel.trace): exact, live weights, gradients, safe fallbacks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from drlzero.accel import FastQPolicy
from drlzero.accel.trace import flat_forward, numpy_forward
from drlzero.encoders.cnn import MinAtarCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.nets.heads import DuelingHead, QNetwork
from drlzero.nets.noisy import NoisyLinear, reset_noise


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
    dropout = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    assert flat_forward(dropout, torch.zeros(1, 4)) is dropout


def test_noisy_layers_are_traced_per_mode_with_live_noise() -> None:
    torch.manual_seed(0)
    noisy = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), NoisyLinear(8, 2))
    fwd = flat_forward(noisy, torch.zeros(1, 4))
    assert fwd is not noisy
    x = torch.randn(5, 4)
    with torch.no_grad():
        for _ in range(3):  # noise resampled in place: the trace must read it, not a constant
            reset_noise(noisy)
            assert torch.equal(fwd(x), noisy(x))
        noisy.eval()  # mu only
        assert torch.equal(fwd(x), noisy(x))
        reset_noise(noisy)
        assert torch.equal(fwd(x), noisy(x))
        noisy.train()
        assert torch.equal(fwd(x), noisy(x))
        assert not torch.equal(fwd(x), noisy.eval()(x))


def test_numpy_forward_matches_and_follows_the_weights() -> None:
    net = _mlp_q()  # MLP encoder + dueling head
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    fwd = numpy_forward(net, obs[:1])
    assert fwd is not None
    with torch.no_grad():
        want = net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(fwd(obs), want, rtol=1e-5, atol=1e-6)
    before = obs.copy()
    with torch.no_grad():  # an optimizer step (in place) is seen at once
        for p in net.parameters():
            p.mul_(1.5).add_(0.1)
        want = net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(fwd(obs), want, rtol=1e-5, atol=1e-6)
    assert np.array_equal(obs, before)  # the observation is never written
    first = next(net.parameters())
    first.data = first.data.clone() * 0.0  # storage replaced: views are rebuilt
    with torch.no_grad():
        want = net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(fwd(obs), want, rtol=1e-5, atol=1e-6)


def test_numpy_forward_only_where_it_is_exact() -> None:
    torch.manual_seed(0)
    enc = MinAtarCNN((10, 10, 4))
    cnn = QNetwork(enc, nn.Linear(enc.features_dim, 6))
    assert numpy_forward(cnn, np.zeros((1, 10, 10, 4), np.float32)) is None  # conv: torch
    noisy = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), NoisyLinear(8, 2))
    assert numpy_forward(noisy, np.zeros((1, 4), np.float32)) is None
    assert numpy_forward(_mlp_q().double(), np.zeros((1, 4))) is None  # float64 weights


def test_policy_acts_the_same_through_numpy_and_torch() -> None:
    net = _mlp_q()
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    fast = FastQPolicy(net, None, torch.device("cpu"))
    q_fast = fast.q_values(obs)
    assert fast._numpy is not None
    with torch.inference_mode():
        q_torch = net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(q_fast, q_torch, rtol=1e-5, atol=1e-6)
    assert np.array_equal(fast.greedy(obs), q_torch.argmax(axis=1))
