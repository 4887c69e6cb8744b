"""Checkpoints: safetensors weights + a JSON state file, never half-replaced, never pickled.

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


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _link_or_rename(src: Path, dst: Path) -> None:
    """Make ``dst`` name ``src``'s file: a hard link (``src`` stays), else a rename.

    The link goes to a temporary name first, so an existing ``dst`` is replaced atomically.
    """
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links on this filesystem: move the file itself
        os.replace(src, dst)
        return
    os.replace(tmp, dst)


def _paths(folder: Path, name: str) -> dict[str, Path]:
    return {
        "weights": folder / f"{name}.safetensors",
        "state": folder / f"{name}.json",
        "prev_weights": folder / f"{name}.prev.safetensors",
        "prev_state": folder / f"{name}.prev.json",
        "tmp_weights": folder / f".{name}.safetensors.tmp",
        "tmp_state": folder / f".{name}.json.tmp",
    }


def save_checkpoint(
    folder: Path, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``folder/name.safetensors`` and ``folder/name.json``; returns the JSON path.

    A checkpoint is a pair bound by the SHA-256 of the weights that the JSON records, and a
    loadable pair exists at every moment of a save (a crash or SIGKILL at any point):

    1. the new pair is written to temporary names and fsynced;
    2. the current pair gets a second name, ``name.prev.*`` (hard links: no copy, no extra
       disk), unless a ``prev`` pair is already there, left by a save that did not finish
       (then that one is known whole, while the current pair may be torn);
    3. the weights, then the JSON, are renamed over the current pair (the JSON is the commit);
    4. the ``prev`` pair is removed.

    Between 3's two renames ``name.json`` does not match ``name.safetensors``;
    :func:`load_checkpoint` then falls back to ``name.prev.*``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    p = _paths(folder, name)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(p["tmp_weights"]))
    _fsync(p["tmp_weights"])
    doc = {
        "format_version": FORMAT_VERSION,
        "weights_file": p["weights"].name,
        "weights_sha256": _sha256(p["tmp_weights"]),
        **meta,
    }
    p["tmp_state"].write_text(json.dumps(doc, indent=1))
    _fsync(p["tmp_state"])
    unfinished = p["prev_state"].is_file() and p["prev_weights"].is_file()
    if not unfinished and p["state"].is_file() and p["weights"].is_file():
        _link_or_rename(p["weights"], p["prev_weights"])  # weights first: see load_checkpoint
        _link_or_rename(p["state"], p["prev_state"])
    os.replace(p["tmp_weights"], p["weights"])
    os.replace(p["tmp_state"], p["state"])
    p["prev_state"].unlink(missing_ok=True)  # the JSON first: a lone prev weights file is inert
    p["prev_weights"].unlink(missing_ok=True)
    return p["state"]


def has_checkpoint(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds a checkpoint ``name`` (its current or its previous pair)."""
    p = _paths(folder, name)
    return p["state"].is_file() or p["prev_state"].is_file()


def _read_state(state: Path) -> dict[str, Any]:
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
    return meta


def load_checkpoint(
    folder: Path, name: str, device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint pair; raise :class:`CheckpointError` naming the fix.

    The newest whole pair wins: ``name.json`` with the weights file whose checksum it records
    (``name.safetensors``, or ``name.prev.safetensors`` if a save was cut between its
    renames), else the previous pair ``name.prev.*`` that an unfinished save left.
    """
    p = _paths(folder, name)
    states = [s for s in (p["state"], p["prev_state"]) if s.is_file()]
    weights = [w for w in (p["weights"], p["prev_weights"]) if w.is_file()]
    if not states or not weights:
        raise CheckpointError(
            f"no checkpoint '{name}' in {folder}: train first, or point at a run directory "
            "that has checkpoints/"
        )
    digests: dict[Path, str] = {}
    first_error: CheckpointError | None = None
    for state in states:
        try:
            meta = _read_state(state)
        except CheckpointError as exc:
            first_error = first_error or exc
            continue
        for w in weights:
            if w not in digests:
                digests[w] = _sha256(w)
            if digests[w] != meta.get("weights_sha256"):
                continue
            try:
                tensors = load_file(str(w), device=str(device))
            except (SafetensorError, OSError) as exc:
                raise CheckpointError(
                    f"{w} cannot be read ({exc}); use another checkpoint"
                ) from None
            return tensors, meta
    raise first_error or CheckpointError(
        f"{p['weights']} does not match its checksum (corrupt or partly written); "
        "use another checkpoint"
    )


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
    # The fast path (train.fast_path) steps one flat tensor per group, the plain path one
    # tensor per parameter: their optimizer states have different layouts.
    sizes = [len(g["params"]) for g in opt.param_groups]
    if sizes != [len(g["params"]) for g in groups] or any(
        v.shape != opt.param_groups[0]["params"][0].shape
        for v in state.get(0, {}).values()
        if v.ndim > 0
    ):
        raise CheckpointError(
            "the checkpoint's optimizer state does not fit this learner (saved with the other "
            "train.fast_path setting?); resume with the train.fast_path it was trained with"
        )
    opt.load_state_dict({"state": state, "param_groups": groups})
