"""C51 projection and loss, QR-DQN quantile Huber loss, and the heads, against hand numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from drlzero.algos.distributional import (
    c51_loss,
    categorical_projection,
    quantile_huber_loss,
    quantile_targets,
)
from drlzero.nets.heads import C51Head, QRHead

SUPPORT_N = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])  # 5 atoms, delta_z = 1


def test_categorical_projection_by_hand() -> None:
    uniform = [0.2] * 5
    rows = [
        # (next probs, reward, discount, terminated) -> hand-projected target
        # Tz = .5 + .5 z = -.5, 0, .5, 1, 1.5: atom 0 splits over -1/0, atom 1 lands exactly on 0,
        # atom 2 splits over 0/1, atom 3 lands exactly on 1
        ([0.1, 0.2, 0.3, 0.4, 0.0], 0.5, 0.5, 0.0, [0.0, 0.05, 0.4, 0.55, 0.0]),
        # Tz = 1.5 + z = -.5, .5, 1.5, 2.5, 3.5: the last two clip to v_max = 2
        (uniform, 1.5, 1.0, 0.0, [0.0, 0.1, 0.2, 0.2, 0.5]),
        # Tz = -3 + z = -5 .. -1: four clip to v_min = -2
        (uniform, -3.0, 1.0, 0.0, [0.8, 0.2, 0.0, 0.0, 0.0]),
        # terminal: everything collapses to r = .3, split .7/.3 between atoms 0 and 1
        ([0.1, 0.2, 0.3, 0.4, 0.0], 0.3, 0.9, 1.0, [0.0, 0.0, 0.7, 0.3, 0.0]),
        # terminal with the reward exactly on an atom (l == u): all mass on it
        (uniform, 1.0, 0.9, 1.0, [0.0, 0.0, 0.0, 1.0, 0.0]),
        # terminal with the reward beyond v_max
        (uniform, 5.0, 0.9, 1.0, [0.0, 0.0, 0.0, 0.0, 1.0]),
    ]
    probs, rewards, discounts, terminated, expected = (
        torch.tensor(c) for c in zip(*rows, strict=True)
    )
    target = categorical_projection(probs, rewards, discounts, terminated, SUPPORT_N)
    torch.testing.assert_close(target, expected)
    # a float discount works too
    same = categorical_projection(probs[:1], rewards[:1], 0.5, terminated[:1], SUPPORT_N)
    torch.testing.assert_close(same, expected[:1])


def test_projection_is_a_distribution_and_keeps_the_mean_inside_the_support() -> None:
    g = torch.Generator().manual_seed(0)
    support_N = torch.linspace(-10.0, 10.0, 51)
    probs_BN = torch.rand(64, 51, generator=g).softmax(dim=1)
    rewards_B = torch.rand(64, generator=g) * 4 - 2
    discounts_B = torch.rand(64, generator=g) * 0.3 + 0.5
    terminated_B = (torch.rand(64, generator=g) < 0.3).float()
    target_BN = categorical_projection(probs_BN, rewards_B, discounts_B, terminated_B, support_N)
    assert torch.all(target_BN >= 0)
    torch.testing.assert_close(target_BN.sum(dim=1), torch.ones(64))
    # no atom is clipped here (|Tz| <= 2 + 0.8 * 10 = v_max), and linear splitting keeps the mean
    mean_B = rewards_B + discounts_B * (1 - terminated_B) * (probs_BN * support_N).sum(dim=1)
    torch.testing.assert_close((target_BN * support_N).sum(dim=1), mean_B)


def test_c51_loss_is_the_cross_entropy() -> None:
    logits_BN = torch.zeros(2, 5, requires_grad=True)  # uniform prediction: loss = log 5
    target_BN = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]])
    loss_B = c51_loss(logits_BN, target_BN)
    torch.testing.assert_close(loss_B, torch.log(torch.tensor([5.0, 5.0])))
    logits_BN = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    target_BN = torch.rand(3, 5).softmax(dim=1)
    torch.testing.assert_close(
        c51_loss(logits_BN, target_BN), F.cross_entropy(logits_BN, target_BN, reduction="none")
    )


@pytest.mark.parametrize(("kappa", "expected"), [(1.0, 0.90625), (0.0, 1.25), (2.0, 0.640625)])
def test_quantile_huber_loss_by_hand(kappa: float, expected: float) -> None:
    # N = 2: tau_hat = .25, .75; theta = 0, 1; targets .5, 3 -> u_0j = .5, 3 and u_1j = -.5, 2
    # kappa 1: theta_0: .25 * (.125 + 2.5) / 2 = .328125; theta_1: (.25 * .125 + .75 * 1.5) / 2
    #          = .578125; sum .90625
    # kappa 0: .25 * (.5 + 3) / 2 + (.25 * .5 + .75 * 2) / 2 = .4375 + .8125 = 1.25
    # kappa 2: L/2 = u^2/4 inside |u| <= 2, |u| - 1 outside:
    #          .25 * (.0625 + 2) / 2 + (.25 * .0625 + .75 * 1) / 2 = .2578125 + .3828125
    quantiles_BN = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss_B = quantile_huber_loss(quantiles_BN, torch.tensor([[0.5, 3.0]]), kappa=kappa)
    torch.testing.assert_close(loss_B, torch.tensor([expected]))
    loss_B.sum().backward()
    assert quantiles_BN.grad is not None and torch.all(quantiles_BN.grad < 0)  # both move up


def test_quantile_loss_recovers_the_quantiles_of_the_samples() -> None:
    g = torch.Generator().manual_seed(0)
    samples_BM = torch.rand(1, 1000, generator=g)  # uniform on [0, 1]
    theta_BN = torch.zeros(1, 4, requires_grad=True)
    opt = torch.optim.Adam([theta_BN], lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        quantile_huber_loss(theta_BN, samples_BM, kappa=0.0).sum().backward()
        opt.step()
    expected = torch.quantile(samples_BM[0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    torch.testing.assert_close(theta_BN.detach()[0], expected, atol=0.03, rtol=0)


def test_quantile_targets_bootstrap_only_without_termination() -> None:
    next_BN = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    y = quantile_targets(next_BN, torch.tensor([1.0, 1.0]), torch.tensor([0.25, 0.25]),
                         torch.tensor([0.0, 1.0]))  # fmt: skip
    torch.testing.assert_close(y, torch.tensor([[1.25, 1.5], [1.0, 1.0]]))


def test_heads_shapes_and_q_values() -> None:
    features_BD = torch.randn(7, 8)
    c51 = C51Head(8, 3, num_atoms=5, v_min=-2.0, v_max=2.0)
    logits_BAN = c51(features_BD)
    assert logits_BAN.shape == (7, 3, 5)
    torch.testing.assert_close(c51.support_N, SUPPORT_N)
    assert "support_N" in c51.state_dict()
    q_BA = c51.q_values(logits_BAN)
    assert q_BA.shape == (7, 3)
    expected = (logits_BAN.softmax(-1) * SUPPORT_N).sum(-1)
    torch.testing.assert_close(q_BA, expected)
    # all mass on the top atom -> q = v_max
    peaked = torch.full((1, 3, 5), -1e4).index_fill_(2, torch.tensor([4]), 0.0)
    torch.testing.assert_close(c51.q_values(peaked), torch.full((1, 3), 2.0))

    qr = QRHead(8, 3, num_quantiles=11)
    quantiles_BAN = qr(features_BD)
    assert quantiles_BAN.shape == (7, 3, 11)
    torch.testing.assert_close(qr.q_values(quantiles_BAN), quantiles_BAN.mean(dim=-1))
