"""Noisy networks for exploration (Fortunato et al. 2018), factorised Gaussian noise.

A :class:`NoisyLinear` layer computes ``y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b``
with learned ``mu`` and ``sigma``; the network learns how much to explore, in place of
epsilon-greedy. Factorised noise draws only ``p + q`` Gaussians per reset (p inputs, q outputs):
``eps_w = f(eps_out) f(eps_in)^T`` and ``eps_b = f(eps_out)``, with ``f(x) = sgn(x) sqrt(|x|)``.

The noise is resampled only by :meth:`NoisyLinear.reset_noise` (or :func:`reset_noise` for a whole
network), never inside ``forward``: the learner resamples once per update for the online and
the target network, the actor once per acting step. ``eval()`` mode uses ``mu`` only, which is
the greedy evaluation policy.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(NoisyLinear(4, 8), torch.nn.ReLU(), NoisyLinear(8, 2))
    >>> reset_noise(net, torch.Generator().manual_seed(0))
    >>> net(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _scaled_noise_(eps: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Fill ``eps`` in place with ``f(x) = sgn(x) sqrt(|x|)`` of standard Gaussians."""
    eps.normal_(generator=generator)
    return eps.copy_(eps.sign() * eps.abs().sqrt())


class NoisyLinear(nn.Module):
    """A linear layer with factorised Gaussian parameter noise.

    Initialisation (Section 3.2 of the paper, factorised case, p = in_features): every ``mu``
    is drawn from ``U[-1/sqrt(p), 1/sqrt(p)]`` and every ``sigma`` is ``sigma0 / sqrt(p)``.

    The noise buffers ``epsilon_in`` (p,) and ``epsilon_out`` (q,) already hold ``f(eps)``; they
    are saved in the ``state_dict``, so a checkpoint restores the exact noise.

    Args:
        in_features: p.
        out_features: q.
        sigma0: initial noise scale (0.5 in the paper).
    """

    epsilon_in: torch.Tensor
    epsilon_out: torch.Tensor

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.sigma0 = sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("epsilon_in", torch.zeros(in_features))
        self.register_buffer("epsilon_out", torch.zeros(out_features))
        self.reset_parameters()
        self.reset_noise()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise ``mu`` and ``sigma`` as in the paper (uses torch's global RNG)."""
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight_mu.uniform_(-bound, bound)
        self.bias_mu.uniform_(-bound, bound)
        self.weight_sigma.fill_(self.sigma0 * bound)
        self.bias_sigma.fill_(self.sigma0 * bound)

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw new noise; from ``generator`` if given (on the layer's device), else torch's
        global RNG."""
        _scaled_noise_(self.epsilon_in, generator)
        _scaled_noise_(self.epsilon_out, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.epsilon_out, self.epsilon_in)
        bias = self.bias_mu + self.bias_sigma * self.epsilon_out
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, sigma0={self.sigma0}"


def noisy_layers(module: nn.Module) -> list[NoisyLinear]:
    """The NoisyLinear layers inside ``module`` (collect once; walking modules is not free)."""
    return [m for m in module.modules() if isinstance(m, NoisyLinear)]


class NoiseResetter:
    """Resample the noise of many NoisyLinear layers with one Gaussian draw.

    Per layer, :meth:`NoisyLinear.reset_noise` costs ~10 small kernels; a Rainbow step resets
    the acting network every env step and two networks every update, so for small networks
    this overhead is the step's largest cost. Here one ``randn`` covers all layers, ``f`` is
    applied once, and one ``_foreach_copy_`` writes the layers' buffers (same distribution; a
    different draw order than calling the layers one by one).

    Args:
        layers: the layers to reset together (all on one device).
    """

    def __init__(self, layers: list[NoisyLinear]) -> None:
        self.buffers = [b for m in layers for b in (m.epsilon_in, m.epsilon_out)]
        self.sizes = [b.numel() for b in self.buffers]
        self.total = sum(self.sizes)

    def __call__(self, generator: torch.Generator | None = None) -> None:
        if self.buffers:  # no layers: return before no_grad's ~2 µs (called every env step)
            self._reset(generator)

    @torch.no_grad()
    def _reset(self, generator: torch.Generator | None) -> None:
        x = torch.randn(
            self.total, generator=generator, device=self.buffers[0].device, dtype=torch.float32
        )
        fx = x.sign() * x.abs().sqrt()  # f(x) = sgn(x) sqrt(|x|)
        torch._foreach_copy_(self.buffers, list(fx.split(self.sizes)))


def reset_noise(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Call :meth:`NoisyLinear.reset_noise` on every NoisyLinear inside ``module`` (in
    ``module.modules()`` order, so one seeded ``generator`` gives reproducible noise)."""
    for m in module.modules():
        if isinstance(m, NoisyLinear):
            m.reset_noise(generator)
