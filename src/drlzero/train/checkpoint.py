"""Checkpoints: safetensors weights + a JSON state file, written atomically, never pickled.

``NAME.safetensors`` holds every tensor (weights, optimizer moments, RNG states, optionally the
replay buffer); ``NAME.json`` holds the rest (format version, step, config, counters) and the
SHA-256 of the weights file, so a torn or edited pair is detected on load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from drlzero.errors import CheckpointError

FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _replace_atomically(tmp: Path, final: Path) -> None:
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def save_checkpoint(
    folder: Path, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``folder/name.safetensors`` and ``folder/name.json``; returns the JSON path.

    Each file is written to a temporary name and renamed, the JSON last: a crash leaves the
    previous checkpoint whole, or a new weights file that the old JSON's checksum rejects.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    state = folder / f"{name}.json"
    tmp_w = folder / f".{name}.safetensors.tmp"
    tmp_s = folder / f".{name}.json.tmp"
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp_w))
    digest = _sha256(tmp_w)
    doc = {
        "format_version": FORMAT_VERSION,
        "weights_file": weights.name,
        "weights_sha256": digest,
        **meta,
    }
    tmp_s.write_text(json.dumps(doc, indent=1))
    _replace_atomically(tmp_w, weights)
    _replace_atomically(tmp_s, state)
    return state


def load_checkpoint(
    folder: Path, name: str, device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint pair; raise :class:`CheckpointError` naming the fix."""
    state = folder / f"{name}.json"
    weights = folder / f"{name}.safetensors"
    if not state.is_file() or not weights.is_file():
        raise CheckpointError(
            f"no checkpoint '{name}' in {folder}: train first, or point at a run directory "
            "that has checkpoints/"
        )
    try:
        meta = json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{state} is corrupt (not JSON); use another checkpoint") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{state} has format version {version}, this drlzero reads {FORMAT_VERSION}; "
            "use a matching drlzero version"
        )
    if _sha256(weights) != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{weights} does not match its checksum (corrupt or partly written); "
            "use another checkpoint"
        )
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights} cannot be read ({exc}); use another checkpoint") from None
    return tensors, meta


def _key(t: torch.Tensor) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()))


def _shared_names(module: torch.nn.Module, other: torch.nn.Module | None) -> set[str]:
    """Entries of ``module``'s state_dict that are the very tensors of ``other``'s (e.g. a target
    network sharing the online encoder): saved once, under ``other``'s prefix."""
    if other is None:
        return set()
    theirs = {_key(v) for v in other.state_dict().values()}
    return {k for k, v in module.state_dict().items() if _key(v) in theirs}


def module_tensors(
    prefix: str, module: torch.nn.Module, shared_with: torch.nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """``module``'s state as ``prefix.name`` tensors, leaving out those it shares with
    ``shared_with`` (safetensors refuses aliased tensors, and they need saving only once)."""
    skip = _shared_names(module, shared_with)
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items() if k not in skip}


_MISMATCH_FIX = "was config.yaml edited? put back the run's own config.yaml"


def load_module(
    prefix: str,
    module: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    shared_with: torch.nn.Module | None = None,
) -> None:
    """Load what :func:`module_tensors` saved (with the same ``shared_with``)."""
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    shared = _shared_names(module, shared_with)
    try:
        result = module.load_state_dict(sub, strict=False)
    except RuntimeError as exc:
        # torch's first line only names the class; the next ones name each tensor and shape
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = (lines[1] if len(lines) > 1 else lines[0]).rstrip(".") if lines else "mismatch"
        raise CheckpointError(
            f"checkpoint weights do not fit this network ({first}); {_MISMATCH_FIX}"
        ) from None
    missing = [k for k in result.missing_keys if k not in shared]
    if missing or result.unexpected_keys:
        bad = (missing or result.unexpected_keys)[0]
        raise CheckpointError(
            f"checkpoint weights do not fit this network ({'missing' if missing else 'unexpected'}"
            f" key {prefix}.{bad}); {_MISMATCH_FIX}"
        )


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Optimizer state split into tensors (safetensors) and param groups (JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{idx}.{key}"] = t
    return tensors, sd["param_groups"]


def load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[Any]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": groups})
