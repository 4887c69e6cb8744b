"""Self-supervised objectives for a state encoder, as pure functions of tensors.

Shape legend: B batch, L tokens, V vocabulary, A actions, D embedding size.

- Masked-observation modelling (BERT's masked LM, Devlin et al. 2019, on observation tokens):
  cross-entropy of the original token at masked positions only.
- Inverse dynamics (Pathak et al. 2017, "Curiosity-driven Exploration"): cross-entropy of
  a_t predicted from the encodings of s_t and s_{t+1}; it rewards features the agent controls.
- Temporal contrastive (InfoNCE, van den Oord et al. 2018, "CPC"; as in ATC, Stooke et al. 2021):
  s_t and s_{t+k} are a positive pair, the other batch items' s_{t+k} negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["OBJECTIVES", "info_nce", "inverse_dynamics_loss", "mask_tokens", "masked_token_loss"]

OBJECTIVES = ("mask", "inverse", "contrastive")


def mask_tokens(
    ids_BL: torch.Tensor, prob: float, mask_id: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a fraction ``prob`` of the observation tokens (never position 0, the CLS) by
    ``mask_id``; every row gets at least one masked token, so every row contributes a loss.

    Returns:
        (masked ids (B, L), bool mask (B, L) of the replaced positions).
    """
    b, l_len = ids_BL.shape
    u_BL = torch.rand(b, l_len, generator=generator, device=ids_BL.device)
    u_BL[:, 0] = 2.0  # CLS is never masked
    masked_BL = u_BL < prob
    # One forced position per row: the row's smallest draw among observation tokens.
    forced_B = u_BL[:, 1:].argmin(1) + 1
    masked_BL[torch.arange(b, device=ids_BL.device), forced_B] = True
    return torch.where(masked_BL, torch.full_like(ids_BL, mask_id), ids_BL), masked_BL


def masked_token_loss(
    logits_BLV: torch.Tensor, ids_BL: torch.Tensor, masked_BL: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the original ids at the masked positions."""
    return F.cross_entropy(logits_BLV[masked_BL], ids_BL[masked_BL].long())


def inverse_dynamics_loss(logits_BA: torch.Tensor, actions_B: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the action taken between s_t and s_{t+1}."""
    return F.cross_entropy(logits_BA, actions_B.long())


def info_nce(z_BD: torch.Tensor, z_pos_BD: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``z_BD`` should pick row i of ``z_pos_BD`` among all B rows.

    Cosine similarities divided by ``temperature``; the loss of a perfect encoder is 0 and of a
    constant one log(B).
    """
    a_BD, b_BD = F.normalize(z_BD, dim=-1), F.normalize(z_pos_BD, dim=-1)
    logits_BB = a_BD @ b_BD.T / temperature
    labels_B = torch.arange(len(a_BD), device=a_BD.device)
    return 0.5 * (F.cross_entropy(logits_BB, labels_B) + F.cross_entropy(logits_BB.T, labels_B))
