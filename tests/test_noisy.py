"""NoisyLinear (Fortunato et al. 2018): init, noise resets, train/eval modes, gradients."""

from __future__ import annotations

import math

import torch
from torch import nn

from drlzero.nets.noisy import NoisyLinear, reset_noise


def _layer(seed: int = 0) -> NoisyLinear:
    torch.manual_seed(seed)
    return NoisyLinear(16, 4, sigma0=0.5)


def test_init_bounds_as_in_the_paper() -> None:
    layer = _layer()
    bound = 1 / math.sqrt(16)  # p = in_features
    for mu in (layer.weight_mu, layer.bias_mu):
        assert torch.all(mu.abs() <= bound)
        assert mu.abs().max() > 0.5 * bound  # spread over the range, not all zero
    for sigma in (layer.weight_sigma, layer.bias_sigma):
        torch.testing.assert_close(sigma, torch.full_like(sigma, 0.5 / 4))
    assert layer.epsilon_in.shape == (16,) and layer.epsilon_out.shape == (4,)
    assert {"epsilon_in", "epsilon_out"} <= layer.state_dict().keys()  # exact resume
    assert "epsilon_in" not in dict(layer.named_parameters())


def test_reset_changes_the_output_in_train_mode_only() -> None:
    layer, x = _layer(), torch.randn(5, 16)
    layer.train()
    before = layer(x)
    layer.reset_noise()
    assert not torch.allclose(layer(x), before)
    layer.eval()
    before = layer(x)
    layer.reset_noise()
    torch.testing.assert_close(layer(x), before)
    torch.testing.assert_close(before, x @ layer.weight_mu.T + layer.bias_mu)


def test_noise_is_factorised_and_scaled() -> None:
    layer = _layer()
    layer.reset_noise(torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # the same draws, in the same order
    raw_in, raw_out = torch.randn(16, generator=gen), torch.randn(4, generator=gen)
    f_in, f_out = raw_in.sign() * raw_in.abs().sqrt(), raw_out.sign() * raw_out.abs().sqrt()
    torch.testing.assert_close(layer.epsilon_in, f_in)
    torch.testing.assert_close(layer.epsilon_out, f_out)
    x = torch.randn(2, 16)
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(f_out, f_in)
    bias = layer.bias_mu + layer.bias_sigma * f_out
    torch.testing.assert_close(layer(x), x @ weight.T + bias)


def test_sigma_and_mu_get_gradients() -> None:
    layer = _layer()
    layer(torch.randn(5, 16)).pow(2).sum().backward()
    for p in (layer.weight_sigma, layer.bias_sigma, layer.weight_mu, layer.bias_mu):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_mean_output_over_noise_draws_approaches_the_mu_output() -> None:
    layer, x = _layer(), torch.randn(3, 16)
    gen = torch.Generator().manual_seed(0)
    draws = 2000
    total = torch.zeros(3, 4)
    with torch.no_grad():
        for _ in range(draws):
            layer.reset_noise(gen)
            total += layer(x)
        layer.eval()
        mu_out = layer(x)
    # one draw's noise has std ~ sigma * sqrt(sum_j x_j^2 E|e|^2) ~ 0.125 * 4 * 0.8 = 0.4, so the
    # mean of 2000 draws has std ~ 0.01
    torch.testing.assert_close(total / draws, mu_out, atol=0.06, rtol=0)


def test_reset_noise_helper_reaches_every_noisy_layer_reproducibly() -> None:
    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(NoisyLinear(4, 8), nn.ReLU(), nn.Sequential(NoisyLinear(8, 2)))

    a, b = net(), net()
    before = [m.epsilon_out.clone() for m in a.modules() if isinstance(m, NoisyLinear)]
    reset_noise(a, torch.Generator().manual_seed(5))
    reset_noise(b, torch.Generator().manual_seed(5))
    after = [m.epsilon_out for m in a.modules() if isinstance(m, NoisyLinear)]
    assert all(not torch.equal(x, y) for x, y in zip(before, after, strict=True))
    x = torch.randn(3, 4)
    torch.testing.assert_close(a(x), b(x))


def test_noise_resetter_draws_fresh_factorised_noise_for_every_layer() -> None:
    from drlzero.nets.noisy import NoiseResetter

    layers = [NoisyLinear(4, 8), NoisyLinear(8, 3)]
    reset = NoiseResetter(layers)
    before = [b.clone() for m in layers for b in (m.epsilon_in, m.epsilon_out)]
    reset(torch.Generator().manual_seed(0))
    after = [b.clone() for m in layers for b in (m.epsilon_in, m.epsilon_out)]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    reset(torch.Generator().manual_seed(0))  # same generator state, same noise
    again = [b for m in layers for b in (m.epsilon_in, m.epsilon_out)]
    assert all(torch.equal(a, b) for a, b in zip(after, again, strict=True))
    # f(x) = sgn(x) sqrt(|x|) of standard Gaussians: E[f(x)^2] = E|x| = sqrt(2/pi)
    big = NoisyLinear(20_000, 1)
    NoiseResetter([big])(torch.Generator().manual_seed(1))
    assert abs(big.epsilon_in.pow(2).mean().item() - (2 / torch.pi) ** 0.5) < 0.02
