"""Every Q head (features_BD -> q_BA, or a return distribution per action), the factory that
picks one for the ``dqn`` section (:func:`build_head`), and the Q network (encoder + head).

- :class:`LinearHead`, :class:`DuelingHead` (Wang et al. 2016): expected Q-values;
- :class:`C51Head` (Bellemare et al. 2017), :class:`QRHead` (Dabney et al. 2018) and
  :class:`DuelingDistributionalHead`: a distribution over returns per action, with
  ``q_values`` giving its mean;
- :class:`PairScorer`: ``q(s, a)`` for DRRN's candidate text actions (:mod:`drlzero.nets.drrn`);
- any of the linear-layer heads in noisy form (:mod:`drlzero.nets.noisy`, ``head.noisy``).

The targets and losses these heads are trained with are in :mod:`drlzero.algos.dqn`,
:mod:`drlzero.algos.distributional` and :mod:`drlzero.algos.rainbow`.
Shape legend: B batch, A actions, N atoms/quantiles, D features, K candidate actions.
"""

from __future__ import annotations

import torch
from torch import nn

from drlzero.config import HeadConfig
from drlzero.nets.noisy import NoisyLinear


class LinearHead(nn.Module):
    """``q = W f + b``."""

    def __init__(self, features_dim: int, num_actions: int) -> None:
        super().__init__()
        self.out = nn.Linear(features_dim, num_actions)

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        return self.out(features_BD)


class DuelingHead(nn.Module):
    """Dueling architecture (Wang et al. 2016): ``q = V + A - mean_a A``.

    Subtracting the mean advantage makes V and A identifiable (eq. 9 of the paper).
    """

    def __init__(self, features_dim: int, num_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(features_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.advantage = nn.Sequential(
            nn.Linear(features_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_actions)
        )

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        v_B1 = self.value(features_BD)
        a_BA = self.advantage(features_BD)
        return v_B1 + a_BA - a_BA.mean(dim=1, keepdim=True)


class C51Head(nn.Module):
    """Categorical head: features_BD -> logits_BAN over a fixed support of N atoms.

    ``softmax(logits_BAN, -1)`` is the return distribution of each action on :attr:`support_N`
    (``linspace(v_min, v_max, N)``, a buffer, so it follows the module's device).

    Args:
        features_dim: D.
        num_actions: A.
        num_atoms: N (51 in the paper).
        v_min: the lowest atom.
        v_max: the highest atom.
    """

    support_N: torch.Tensor

    def __init__(
        self,
        features_dim: int,
        num_actions: int,
        num_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
    ) -> None:
        super().__init__()
        if num_atoms < 2 or not v_min < v_max:
            raise ValueError(
                f"need num_atoms >= 2 and v_min < v_max, got {num_atoms}, {v_min}, {v_max}"
            )
        self.num_actions = num_actions
        self.num_atoms = num_atoms
        self.out = nn.Linear(features_dim, num_actions * num_atoms)
        self.register_buffer("support_N", torch.linspace(v_min, v_max, num_atoms))

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        return self.out(features_BD).view(-1, self.num_actions, self.num_atoms)

    def q_values(self, logits_BAN: torch.Tensor) -> torch.Tensor:
        """``q_BA = sum_i softmax(logits)_i * z_i``, the mean of each action's distribution."""
        return (logits_BAN.softmax(dim=-1) * self.support_N).sum(dim=-1)


class QRHead(nn.Module):
    """Quantile head: features_BD -> quantiles_BAN, the return quantiles at ``tau_hat_i``.

    Args:
        features_dim: D.
        num_actions: A.
        num_quantiles: N (200 in the paper).
    """

    def __init__(self, features_dim: int, num_actions: int, num_quantiles: int = 200) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.num_quantiles = num_quantiles
        self.out = nn.Linear(features_dim, num_actions * num_quantiles)

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        return self.out(features_BD).view(-1, self.num_actions, self.num_quantiles)

    def q_values(self, quantiles_BAN: torch.Tensor) -> torch.Tensor:
        """``q_BA`` = the mean of the quantiles (each carries probability 1/N)."""
        return quantiles_BAN.mean(dim=-1)


def _linear(cfg: HeadConfig, d_in: int, d_out: int) -> nn.Module:
    """A linear layer, noisy when ``head.noisy`` is on."""
    return NoisyLinear(d_in, d_out, cfg.noisy_sigma) if cfg.noisy else nn.Linear(d_in, d_out)


class DuelingDistributionalHead(nn.Module):
    """Dueling over a distribution: ``z_BAN = v_B1N + a_BAN - mean_a a_BAN``.

    For C51 the combination is applied to the logits before the softmax (Rainbow, eq. 5); for
    QR-DQN to the quantile values. Its linear layers are noisy when ``head.noisy`` is on.
    """

    support_N: torch.Tensor  # C51 only

    def __init__(
        self, features_dim: int, num_actions: int, cfg: HeadConfig, hidden: int = 64
    ) -> None:
        super().__init__()
        self.kind = cfg.distributional
        self.num_actions = num_actions
        self.num_atoms = cfg.num_atoms
        self.value = nn.Sequential(
            _linear(cfg, features_dim, hidden), nn.ReLU(), _linear(cfg, hidden, cfg.num_atoms)
        )
        self.advantage = nn.Sequential(
            _linear(cfg, features_dim, hidden),
            nn.ReLU(),
            _linear(cfg, hidden, num_actions * cfg.num_atoms),
        )
        if self.kind == "c51":
            self.register_buffer("support_N", torch.linspace(cfg.v_min, cfg.v_max, cfg.num_atoms))

    def forward(self, features_BD: torch.Tensor) -> torch.Tensor:
        v_B1N = self.value(features_BD).view(-1, 1, self.num_atoms)
        a_BAN = self.advantage(features_BD).view(-1, self.num_actions, self.num_atoms)
        return v_B1N + a_BAN - a_BAN.mean(dim=1, keepdim=True)

    def q_values(self, z_BAN: torch.Tensor) -> torch.Tensor:
        if self.kind == "c51":
            return (z_BAN.softmax(dim=-1) * self.support_N).sum(dim=-1)
        return z_BAN.mean(dim=-1)


class PairScorer(nn.Module):
    """``q(s, a) = MLP([f_s, f_a, f_s * f_a])``, applied to each of the K candidates."""

    def __init__(self, features_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(3 * features_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, state_BD: torch.Tensor, action_BKD: torch.Tensor) -> torch.Tensor:
        s_BKD = state_BD.unsqueeze(1).expand_as(action_BKD)
        pair_BK3D = torch.cat([s_BKD, action_BKD, s_BKD * action_BKD], dim=-1)
        return self.mlp(pair_BK3D).squeeze(-1)


def build_head(features_dim: int, num_actions: int, cfg: HeadConfig) -> nn.Module:
    """The Q head for ``cfg``: linear or dueling, expected or distributional, plain or noisy."""
    if cfg.distributional == "none":
        head: nn.Module = (DuelingHead if cfg.dueling else LinearHead)(features_dim, num_actions)
    elif cfg.dueling:
        return DuelingDistributionalHead(features_dim, num_actions, cfg)
    elif cfg.distributional == "c51":
        head = C51Head(features_dim, num_actions, cfg.num_atoms, cfg.v_min, cfg.v_max)
    else:
        head = QRHead(features_dim, num_actions, cfg.num_atoms)
    if cfg.noisy:
        _make_noisy(head, cfg.noisy_sigma)
    return head


def _make_noisy(module: nn.Module, sigma0: float) -> None:
    """Swap every ``nn.Linear`` inside ``module`` for a :class:`NoisyLinear` of the same shape."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, NoisyLinear(child.in_features, child.out_features, sigma0))
        else:
            _make_noisy(child, sigma0)


class QNetwork(nn.Module):
    """An encoder followed by a Q head.

    ``forward`` always returns Q-values q_BA; a distributional head (one with ``q_values``)
    exposes its raw output through :meth:`distribution`.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self._distributional = hasattr(head, "q_values")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.head(self.encoder(obs))
        return self.head.q_values(out) if self._distributional else out

    def distribution(self, obs: torch.Tensor) -> torch.Tensor:
        """The head's raw output: logits_BAN (C51) or quantiles_BAN (QR-DQN)."""
        return self.head(self.encoder(obs))


class RawOutput(nn.Module):
    """``net``'s raw head output as a module's forward: Q-values, or the distribution of a
    distributional head (what the losses of :mod:`drlzero.algos.rainbow` read), so it can be
    flattened like any forward."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self._distributional = hasattr(net, "distribution")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net.distribution(obs) if self._distributional else self.net(obs)


def head_kind(q_net: nn.Module) -> str:
    """What ``q_net``'s head outputs, which fixes the loss: ``"none"`` (Q-values), ``"c51"``
    (logits over the fixed support ``support_N``) or ``"qr"`` (quantiles)."""
    head = getattr(q_net, "head", None)
    if head is None or not hasattr(head, "q_values"):
        return "none"
    return "c51" if hasattr(head, "support_N") else "qr"
