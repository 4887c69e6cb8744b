"""The action distributions a policy network's head defines: what its forward returns, or
samples from.

- :class:`ActionDist`: PPO's (and the LM policy's) batch of categoricals (Discrete,
  MultiDiscrete) or diagonal Gaussian (Box) over the head's logits or mean;
- :func:`tanh_gaussian_log_prob`: SAC's squashed Gaussian, ``a = tanh(u)``,
  ``u ~ N(mean, std^2)``, the density its actor's reparameterised samples carry.

They live beside the networks (not in :mod:`drlzero.algos`) because a network's forward builds
them; the losses that consume their log-probs and entropies are in :mod:`drlzero.algos`.

Shape legend: B batch, A action dimensions (Box) or logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Normal

LOG_2 = math.log(2.0)


class ActionDist:
    """A batch of action distributions with summed log-probs and entropies.

    Either ``cats`` (one Categorical for Discrete, one per sub-action for MultiDiscrete; their
    log-probs and entropies add, the sub-actions being independent) or ``normal`` (a diagonal
    Gaussian, summed over the D action dimensions).
    """

    def __init__(
        self, cats: list[Categorical] | None = None, normal: Normal | None = None, *, multi: bool
    ) -> None:
        self.cats = cats or []
        self.normal = normal
        self.multi = multi

    def sample(self) -> torch.Tensor:
        if self.normal is not None:
            return self.normal.sample()
        if not self.multi:
            return self.cats[0].sample()
        return torch.stack([c.sample() for c in self.cats], dim=1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        if self.normal is not None:
            return self.normal.log_prob(actions).sum(dim=1)
        if not self.multi:
            return self.cats[0].log_prob(actions)
        return torch.stack([c.log_prob(actions[:, k]) for k, c in enumerate(self.cats)]).sum(0)

    def entropy(self) -> torch.Tensor:
        if self.normal is not None:
            return self.normal.entropy().sum(dim=1)
        return torch.stack([c.entropy() for c in self.cats]).sum(0)

    def mode(self) -> torch.Tensor:
        """The greedy action: argmax of each categorical, the Gaussian mean."""
        if self.normal is not None:
            return self.normal.mean
        modes = [c.logits.argmax(dim=1) for c in self.cats]
        return torch.stack(modes, dim=1) if self.multi else modes[0]


def tanh_log_det_jacobian(u_BA: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` per element, in the stable form ``2 (log 2 - u - softplus(-2u))``.

    ``1 - tanh(u)^2 = 4 / (e^u + e^-u)^2``; taking logs gives ``2 log 2 - 2 log(e^u + e^-u)``
    and ``log(e^u + e^-u) = u + softplus(-2u)``. It stays finite where ``tanh(u)`` rounds to 1.
    """
    return 2.0 * (LOG_2 - u_BA - F.softplus(-2.0 * u_BA))


def tanh_gaussian_log_prob(
    u_BA: torch.Tensor, mean_BA: torch.Tensor, log_std_BA: torch.Tensor
) -> torch.Tensor:
    """Log density of ``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)`` (diagonal), per sample.

    Change of variables: ``log pi(a) = sum_i [log N(u_i) - log(1 - tanh(u_i)^2)]``.
    """
    var_BA = torch.exp(2.0 * log_std_BA)
    log_n_BA = -((u_BA - mean_BA) ** 2) / (2.0 * var_BA) - log_std_BA - 0.5 * math.log(2 * math.pi)
    return (log_n_BA - tanh_log_det_jacobian(u_BA)).sum(dim=-1)
