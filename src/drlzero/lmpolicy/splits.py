"""Generalisation splits of the LM policy: synonyms for the action names, the random policy on
the same episodes (retention above chance: :func:`drlzero.api.retention`).

- Synonyms: a JSON file maps an action's name to a list of synonyms, ``{"go forward": ["move
  ahead", "step forward"]}``; the split renames each listed action to its FIRST synonym (in the
  prompt's list of actions and as the scored candidate) and replays the same episodes.
- Chance: the random policy draws uniformly among the named, allowed actions (what the LM
  policy chooses among), seeded, on the same episodes.
- Retention above chance: ``(split - random) / (original - random)`` (None when the original is
  not above chance: nothing to retain).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drlzero.errors import UserError

__all__ = ["load_action_synonyms", "random_named_policy", "renamed"]


def load_action_synonyms(path: str | Path, names: Sequence[str]) -> dict[str, list[str]]:
    """Read and check a synonyms file against the policy's action ``names``.

    Raises:
        UserError: one line naming the problem (missing file, not JSON, wrong shape, an action
            the policy does not have).
    """
    p = Path(path)
    where = f"--action-synonyms {path}"
    if not p.is_file():
        raise UserError(f"{where}: no such file; pass a JSON file of action synonyms")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{where} is not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f'{where} must be a JSON object like {{"go forward": ["move ahead"]}}')
    out: dict[str, list[str]] = {}
    for name, syns in data.items():
        if name not in names:
            raise UserError(
                f"{where}: unknown action {name!r}; the policy's actions are {list(names)}"
            )
        if isinstance(syns, str):
            syns = [syns]
        if (
            not isinstance(syns, list)
            or not syns
            or not all(isinstance(s, str) and s.strip() for s in syns)
        ):
            raise UserError(f"{where}: {name!r} must map to a non-empty list of synonym strings")
        out[name] = [s.strip() for s in syns]
    return out


def renamed(names: Sequence[str], synonyms: dict[str, list[str]]) -> list[str]:
    """The action names with each listed action replaced by its first synonym."""
    new = [synonyms[n][0] if n in synonyms else n for n in names]
    if len(set(new)) != len(new):
        raise UserError(f"the synonyms make two actions share a name: {new}; pick distinct ones")
    return new


def random_named_policy(num_named: int, seed: int) -> Any:
    """``(obs, mask) -> actions`` uniform among actions ``0..num_named-1`` that the mask allows."""
    rng = np.random.default_rng(seed)

    def act(obs: Any, mask: np.ndarray | None = None) -> np.ndarray:
        n = len(obs)
        allowed = np.ones((n, num_named), bool) if mask is None else mask[:, :num_named]
        out = np.empty(n, np.int64)
        for i in range(n):
            choices = np.flatnonzero(allowed[i])
            out[i] = rng.choice(choices) if choices.size else 0
        return out

    return act
