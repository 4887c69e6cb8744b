"""The DQN-family learner: heads, n-step targets, importance weights, priorities, noise."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from drlzero.accel import FastRainbowLearner
from drlzero.algos.rainbow import RainbowLearner, per_sample_loss
from drlzero.config import DQNConfig, HeadConfig
from drlzero.nets.heads import QNetwork, build_head, head_kind
from drlzero.nets.noisy import NoisyLinear, noisy_layers, reset_noise
from drlzero.replay.storage import Batch


def _net(cfg: HeadConfig) -> QNetwork:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(3, 16), nn.ReLU())
    enc.features_dim = 16  # type: ignore[assignment]
    return QNetwork(enc, build_head(16, 2, cfg))


def _batch(n: int = 8, discount: float = 0.9) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(
        torch.randn(n, 3, generator=g),
        torch.randint(0, 2, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, 3, generator=g),
        (torch.rand(n, generator=g) < 0.3).float(),
        torch.full((n,), discount),
    )


@pytest.mark.parametrize("dist", ["none", "c51", "qr"])
@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("noisy", [False, True])
def test_heads_give_q_values(dist: str, dueling: bool, noisy: bool) -> None:
    net = _net(HeadConfig(distributional=dist, dueling=dueling, noisy=noisy, num_atoms=11))
    q = net(torch.randn(5, 3))
    assert q.shape == (5, 2)
    if dist != "none":
        assert net.distribution(torch.randn(5, 3)).shape == (5, 2, 11)
    assert any(isinstance(m, NoisyLinear) for m in net.modules()) == noisy
    assert head_kind(net) == dist  # the loss reads what the head outputs from the head itself


def test_n_step_discount_enters_the_target() -> None:
    """Expected-value head: y = R + gamma^m (1 - term) max_a Q'(s', a) with the stored gamma^m."""
    cfg = DQNConfig(loss="mse")
    net = _net(HeadConfig())
    target = copy.deepcopy(net)
    batch = _batch(discount=0.125)  # e.g. n = 3 with gamma = 0.5
    loss_B, prio_B, q_B = per_sample_loss(net, target, batch, cfg)
    assert q_B.shape == (8,)
    with torch.no_grad():
        y = batch.rewards + 0.125 * (1 - batch.terminated) * target(batch.next_obs).max(1).values
        q = net(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
    torch.testing.assert_close(loss_B, (q - y) ** 2)
    torch.testing.assert_close(prio_B, (q - y).abs())


def test_importance_weights_scale_the_gradient() -> None:
    cfg = DQNConfig(loss="mse", max_grad_norm=None, lr=0.1, optimizer="rmsprop")
    batch = _batch()
    grads = []
    for w in (torch.ones(8), torch.full((8,), 2.0)):
        net = _net(HeadConfig())
        learner = RainbowLearner(net, copy.deepcopy(net), cfg)
        learner.update(batch._replace(weights=w))
        grads.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    torch.testing.assert_close(grads[1], 2 * grads[0])


@pytest.mark.parametrize("dist", ["c51", "qr"])
def test_distributional_learner_fits_a_fixed_target(dist: str) -> None:
    """Terminal transitions with reward 1 for action 0: Q(s, 0) must approach 1."""
    net = _net(HeadConfig(distributional=dist, num_atoms=21, v_min=-2, v_max=2))
    learner = RainbowLearner(net, copy.deepcopy(net), DQNConfig(lr=0.01))
    n = 32
    batch = Batch(
        torch.randn(n, 3),
        torch.zeros(n, dtype=torch.long),
        torch.ones(n),
        torch.randn(n, 3),
        torch.ones(n),
        torch.full((n,), 0.99),
    )
    for _ in range(300):
        stats = learner.update(batch)
    assert stats["priorities"].shape == (n,)
    assert float(net(batch.obs)[:, 0].mean().detach()) == pytest.approx(1.0, abs=0.1)


def test_noise_is_resampled_each_update_and_absent_in_eval() -> None:
    net = _net(HeadConfig(noisy=True))
    learner = RainbowLearner(net, copy.deepcopy(net), DQNConfig())
    x = torch.randn(4, 3)
    layer = next(m for m in net.modules() if isinstance(m, NoisyLinear))
    before = layer.epsilon_out.clone()
    learner.update(_batch())
    assert not torch.equal(before, layer.epsilon_out)
    # Train mode: the noise is fixed between resets (forward never draws) ...
    with torch.no_grad():
        y = net(x)
        torch.testing.assert_close(net(x), y, rtol=0, atol=0)
        reset_noise(net)
        assert not torch.allclose(net(x), y)  # ... and a reset changes the output.
        # Eval mode: the mean weights only, whatever the noise buffers hold.
        net.eval()
        y_eval = net(x)
        reset_noise(net)
        torch.testing.assert_close(net(x), y_eval, rtol=0, atol=0)
        net.train()
        for m in noisy_layers(net):
            m.epsilon_in.zero_()
            m.epsilon_out.zero_()
        torch.testing.assert_close(net(x), y_eval)  # zero noise in train mode = eval mode
        assert not torch.allclose(y, y_eval)


@pytest.mark.parametrize("dist", ["none", "c51", "qr"])
def test_flat_forwards_match_the_module_calls(dist: str) -> None:
    """The fast learner's update through flat traces (noisy layers included) equals the plain
    learner's module calls."""
    cfg = DQNConfig(double=True, lr=1e-2)
    head = HeadConfig(distributional=dist, num_atoms=11, dueling=True, noisy=True)
    runs = []
    for cls in (FastRainbowLearner, RainbowLearner):
        torch.manual_seed(0)
        net = _net(head)
        learner = cls(net, copy.deepcopy(net), cfg)
        stats = []
        for _ in range(3):  # noise resampled each update: the traces must read it live
            s = learner.update(_batch(16)._replace(weights=torch.linspace(0.5, 1.0, 16)))
            stats.append((s["loss"].item(), s["priorities"].clone()))
        if cls is FastRainbowLearner:
            assert not isinstance(learner.online_fwd, nn.Module)  # a trace, not the module
        runs.append((stats, [p.detach().clone() for p in net.parameters()]))
    (flat_stats, flat_params), (mod_stats, mod_params) = runs
    for (la, pa), (lb, pb) in zip(flat_stats, mod_stats, strict=True):
        assert la == pytest.approx(lb, rel=1e-6)
        torch.testing.assert_close(pa, pb)
    for a, b in zip(flat_params, mod_params, strict=True):
        torch.testing.assert_close(a, b)
