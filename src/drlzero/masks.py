"""Action masks: which actions are allowed in each env's current state.

A mask is a boolean array ``mask_EA`` (True = allowed) for E envs and A discrete actions. It
comes from the env, in one of two places:

- ``info["action_mask"]`` of ``reset``/``step`` (Gymnasium vector envs stack it to ``(E, A)``
  with the presence flags ``info["_action_mask"]``); under SAME_STEP autoreset the info of an
  env whose episode just ended is the next episode's reset info, so the mask always belongs to
  the observation returned with it;
- an observation key (``Dict`` observations, e.g. PettingZoo's ``{"observation", "action_mask"}``),
  which :class:`drlzero.envs.masking.MaskFromObs` moves into ``info`` at the env
  (``env.action_mask=obs:KEY``), so the loops read masks from info alone.

An env that reports no mask allows every action. A state with no allowed action is an env bug
and raises, since every masked rule below would otherwise silently divide by zero.

Shape legend: E envs (or batch), A actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from drlzero.errors import UserError

INFO_KEY = "action_mask"


def read_mask(info: dict[str, Any], num_envs: int, num_actions: int) -> np.ndarray | None:
    """The ``(E, A)`` boolean mask in a vector env's ``info``, or None if no env reports one.

    Envs whose info has no mask this step (presence flag False) allow every action.
    """
    raw = info.get(INFO_KEY)
    if raw is None:
        return None
    mask = _as_mask(raw, num_envs, num_actions, f"info[{INFO_KEY!r}]")
    present = info.get("_" + INFO_KEY)
    if present is not None:
        mask[~np.asarray(present, dtype=bool)] = True
    return check_nonempty(mask)


def _as_mask(raw: Any, num_envs: int, num_actions: int, where: str) -> np.ndarray:
    mask = np.array(raw, dtype=bool)  # a copy: the caller's info stays untouched
    if mask.shape != (num_envs, num_actions):
        raise UserError(
            f"{where} has shape {mask.shape}, expected ({num_envs}, {num_actions}) "
            "(envs, actions): the env must report one flag per discrete action"
        )
    return mask


def check_nonempty(mask_EA: np.ndarray) -> np.ndarray:
    """Raise if some state allows no action at all."""
    empty = ~mask_EA.any(axis=1)
    if empty.any():
        raise UserError(
            f"the action mask allows no action in env(s) {np.flatnonzero(empty).tolist()}: "
            "the env must allow at least one action in every state"
        )
    return mask_EA


def masked_logits(logits_BA: torch.Tensor, mask_BA: torch.Tensor | None) -> torch.Tensor:
    """Logits with forbidden actions at the dtype's lowest value: softmax gives them 0 exactly
    (not -inf, so an all-masked row would give NaN loudly elsewhere, never here)."""
    if mask_BA is None:
        return logits_BA
    return logits_BA.masked_fill(~mask_BA, torch.finfo(logits_BA.dtype).min)


def masked_argmax(values_BA: torch.Tensor, mask_BA: torch.Tensor | None) -> torch.Tensor:
    """Greedy action among the allowed ones."""
    if mask_BA is None:
        return values_BA.argmax(dim=1)
    return values_BA.masked_fill(~mask_BA, -torch.inf).argmax(dim=1)


def masked_max(values_BA: torch.Tensor, mask_BA: torch.Tensor | None) -> torch.Tensor:
    """Largest value among the allowed actions (the masked max of a Q target)."""
    if mask_BA is None:
        return values_BA.max(dim=1).values
    return values_BA.masked_fill(~mask_BA, -torch.inf).max(dim=1).values


def uniform_allowed(rng: np.random.Generator, mask_EA: np.ndarray) -> np.ndarray:
    """One uniformly random allowed action per row: the inverse-CDF draw over allowed actions."""
    counts_E = mask_EA.sum(axis=1)
    # k-th allowed action, k ~ U{0..count-1}; cumsum finds its column
    k_E = (rng.random(mask_EA.shape[0]) * counts_E).astype(np.int64)
    cum_EA = np.cumsum(mask_EA, axis=1)
    return (cum_EA <= k_E[:, None]).sum(axis=1)


def checked_mask(
    mask: Any, num_envs: int, num_actions: int, where: str = "action_mask"
) -> np.ndarray:
    """A caller's mask as a checked ``(E, A)`` boolean array (one line naming a wrong shape)."""
    return check_nonempty(_as_mask(mask, num_envs, num_actions, where))


class MaskSource:
    """The masks a training loop acts on and stores, read from each vector step's ``info``.

    With ``mode="none"`` every call returns None and costs nothing, so an unmasked run does
    exactly what it did before masks existed. Otherwise (``info``, or ``obs:KEY``, which
    :mod:`drlzero.envs.masking` turns into ``info`` at the env), per step:

    - the *acting* mask belongs to the returned observations: for an env whose episode just
      ended that is the next episode's reset info (SAME_STEP autoreset);
    - the *next-state* mask of each transition (what the target's max ranges over) is the final
      step's mask from ``info["final_info"]`` where the episode ended (all actions where the
      env gives none: a terminated transition does not bootstrap anyway), else the acting mask.

    Args:
        mode: ``env.action_mask``: ``none``, ``info`` or ``obs:KEY``.
        num_envs: E.
        num_actions: A.
    """

    def __init__(self, mode: str, num_envs: int, num_actions: int) -> None:
        self.on = mode != "none"
        self.mode = mode
        self.shape = (num_envs, num_actions)

    def reset(self, info: dict[str, Any]) -> np.ndarray | None:
        """The mask of the reset observations; an env that reports none is a config error."""
        if not self.on:
            return None
        mask = read_mask(info, *self.shape)
        if mask is None:
            raise UserError(
                f"env.action_mask={self.mode} but the env's reset info has no {INFO_KEY!r}: "
                "set env.action_mask=none, or use an env that reports its masks"
            )
        return mask

    def acting(self, info: dict[str, Any]) -> np.ndarray | None:
        """The mask of the observations ``info`` came with, as an array every step (loops that
        store it with each transition): None when off, every action allowed where the env
        reports no mask this step."""
        if not self.on:
            return None
        mask = read_mask(info, *self.shape)
        return np.ones(self.shape, dtype=bool) if mask is None else mask

    def step(
        self, info: dict[str, Any], done_E: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(acting mask, next-state mask)`` of one vector step (both None when off)."""
        if not self.on:
            return None, None
        mask = read_mask(info, *self.shape)
        next_EA = np.ones(self.shape, dtype=bool) if mask is None else mask.copy()
        if done_E.any():
            final = info.get("final_info")
            final_EA = read_mask(final, *self.shape) if isinstance(final, dict) else None
            next_EA[done_E] = True if final_EA is None else final_EA[done_E]
        return mask, next_EA
