"""Distributional RL targets and losses: C51 (Bellemare et al. 2017) and QR-DQN (Dabney et al.
2018), pure functions of tensors. The heads that output the distributions are
:class:`drlzero.nets.heads.C51Head`, :class:`~drlzero.nets.heads.QRHead` and
:class:`~drlzero.nets.heads.DuelingDistributionalHead`.

The n-step form is built in: ``discounts_B`` is ``gamma^m`` per sample (see
:class:`drlzero.replay.NStepAccumulator`), and only a true termination stops bootstrapping.

Shape legend: B batch, N atoms (C51) or quantiles (QR-DQN).

Example:
    >>> import torch
    >>> support_N = torch.linspace(-2.0, 2.0, 5)                 # atoms -2, -1, 0, 1, 2
    >>> next_probs_BN = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])  # all mass on 0
    >>> categorical_projection(next_probs_BN, torch.tensor([0.5]), torch.tensor([0.9]),
    ...                        torch.tensor([0.0]), support_N)
    tensor([[0.0000, 0.0000, 0.5000, 0.5000, 0.0000]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def categorical_projection(
    next_probs_BN: torch.Tensor,
    rewards_B: torch.Tensor,
    discounts_B: torch.Tensor | float,
    terminated_B: torch.Tensor,
    support_N: torch.Tensor,
) -> torch.Tensor:
    """Project the distribution of ``r + discount * (1 - terminated) * Z'`` onto the support.

    Algorithm 1 of Bellemare et al. (2017): each shifted atom ``Tz_j`` (clipped to
    ``[v_min, v_max]``) sits at fractional position ``b_j`` between atoms ``l = floor(b_j)`` and
    ``u = ceil(b_j)`` and splits its probability between them in proportion to closeness
    (``u - b_j`` to ``l``, ``b_j - l`` to ``u``); when ``b_j`` lands exactly on an atom
    (``l == u``) all of it goes there. A terminal transition collapses to the reward.

    Args:
        next_probs_BN: the next-state distribution of the chosen next action (rows sum to 1).
        rewards_B: (n-step) rewards.
        discounts_B: ``gamma^m`` per sample (or one float).
        terminated_B: 1.0 where the episode truly ended in the window.
        support_N: the atoms, evenly spaced and increasing.

    Returns:
        target_probs_BN, rows summing to 1 (no gradient flows through the result).
    """
    next_probs_BN = next_probs_BN.detach()
    n = support_N.shape[0]
    v_min, v_max = support_N[0], support_N[-1]
    delta_z = (v_max - v_min) / (n - 1)
    bootstrap_B1 = (discounts_B * (1.0 - terminated_B)).reshape(-1, 1)
    tz_BN = (rewards_B.reshape(-1, 1) + bootstrap_B1 * support_N).clamp(v_min, v_max)
    b_BN = ((tz_BN - v_min) / delta_z).clamp(0, n - 1)  # rounding must not leave [0, N-1]
    lower_BN = b_BN.floor().long()
    upper_BN = b_BN.ceil().long()
    on_atom_BN = (lower_BN == upper_BN).to(next_probs_BN.dtype)
    target_BN = torch.zeros_like(next_probs_BN)
    target_BN.scatter_add_(1, lower_BN, next_probs_BN * (upper_BN - b_BN + on_atom_BN))
    target_BN.scatter_add_(1, upper_BN, next_probs_BN * (b_BN - lower_BN))
    return target_BN


def c51_loss(logits_BN_taken: torch.Tensor, target_probs_BN: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``-sum_i m_i log p_i`` between the projected target ``m`` and the
    predicted distribution of the taken action (its logits). It equals the KL divergence up to
    the target's entropy, a constant for the gradient; Rainbow also uses it as the priority.

    Returns:
        loss_B (average it for the optimizer step; weight it first under prioritized replay).
    """
    return -(target_probs_BN.detach() * F.log_softmax(logits_BN_taken, dim=-1)).sum(dim=-1)


def quantile_targets(
    next_quantiles_BN: torch.Tensor,
    rewards_B: torch.Tensor,
    discounts_B: torch.Tensor | float,
    terminated_B: torch.Tensor,
) -> torch.Tensor:
    """``T theta_j = r + discount * (1 - terminated) * theta'_j`` for the chosen next action."""
    bootstrap_B1 = (discounts_B * (1.0 - terminated_B)).reshape(-1, 1)
    return rewards_B.reshape(-1, 1) + bootstrap_B1 * next_quantiles_BN.detach()


def quantile_huber_loss(
    quantiles_BN: torch.Tensor, target_BN: torch.Tensor, kappa: float = 1.0
) -> torch.Tensor:
    """Quantile Huber loss of QR-DQN (Dabney et al. 2018, eq. 10), per sample.

    With ``tau_hat_i = (2i + 1) / (2N)`` and pairwise errors ``u_ij = T theta_j - theta_i``:

        loss = sum_i mean_j |tau_hat_i - 1{u_ij < 0}| * L_kappa(u_ij) / kappa,

    where ``L_kappa`` is the Huber loss with threshold kappa; ``kappa = 0`` gives the plain
    quantile regression loss ``|tau_hat_i - 1{u_ij < 0}| * |u_ij|``.

    Args:
        quantiles_BN: predicted quantiles of the taken action.
        target_BN: target samples (e.g. :func:`quantile_targets`); the second dimension may
            differ from N. No gradient flows into it.
        kappa: Huber threshold (>= 0).

    Returns:
        loss_B.
    """
    n = quantiles_BN.shape[1]
    tau_hat_N1 = (
        (torch.arange(n, device=quantiles_BN.device, dtype=quantiles_BN.dtype) + 0.5)
        .div_(n)
        .unsqueeze(1)
    )
    u_BNM = target_BN.detach().unsqueeze(1) - quantiles_BN.unsqueeze(2)
    abs_u_BNM = u_BNM.abs()
    if kappa > 0:
        huber_BNM = (
            torch.where(abs_u_BNM <= kappa, 0.5 * u_BNM.pow(2), kappa * (abs_u_BNM - 0.5 * kappa))
            / kappa
        )
    else:
        huber_BNM = abs_u_BNM
    weight_BNM = (tau_hat_N1 - (u_BNM.detach() < 0).to(u_BNM.dtype)).abs()
    return (weight_BNM * huber_BNM).mean(dim=2).sum(dim=1)
