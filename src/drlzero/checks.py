"""Checks of user input that several commands share: output paths, run directories, seeds.

Each check raises a :class:`~drlzero.errors.UserError` (or a subclass) whose one-line message
names the problem and the fix, before anything is written, so a refused command leaves nothing
behind that would block a retry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drlzero.config import Config, read_config, upgrade_mapping
from drlzero.errors import CheckpointError, ConfigError, UserError

#: Config keys that fix the shape of a run's networks (or what they act on). A checkpoint whose
#: saved config differs from ``config.yaml`` in one of them belongs to another run.
IDENTITY_KEYS = (
    "algo",
    "env.id",
    "encoder.name",
    "encoder.hidden",
    "encoder.features_dim",
    "encoder.d_model",
    "encoder.n_heads",
    "encoder.n_layers",
    "head.dueling",
    "head.distributional",
    "head.num_atoms",
    "head.noisy",
)

#: Sections every saved ``config.yaml`` has had; one missing means the file was cut short.
_REQUIRED_SECTIONS = ("algo", "name", "env", "encoder", "train")


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Refuse an output folder that cannot be made (a file there or above it, no write
    permission); creates nothing."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file, not a folder; choose a folder path for {flag}")
    ancestor = out
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(
            f"{flag} {out}: {ancestor} is a file, so no folder can be made inside it; "
            f"choose another {flag}"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(
            f"{flag} {out}: no permission to write in {ancestor}; choose a folder you can write to"
        )
    return out


def make_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """:func:`check_out_dir`, then create the folder (and its parents)."""
    out = check_out_dir(path, flag)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. /proc, a read-only mount: os.access cannot tell beforehand
        raise UserError(
            f"cannot create {flag} {out} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None
    return out


def check_out_file(path: str | Path, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    """Refuse an output file path that is a folder, has a suffix not in ``suffixes`` or lies in
    a folder that cannot be made; creates nothing."""
    out = Path(path)
    if out.is_dir():
        raise UserError(
            f"{flag} {out} is a folder; give a file name, e.g. {out / ('x' + suffixes[0])}"
        )
    if out.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {out} must end in {' or '.join(suffixes)}")
    check_out_dir(out.parent, flag)
    return out


def check_seed(seed: int | None, flag: str = "--seed") -> None:
    """Seeds are non-negative integers (NumPy and Gymnasium refuse negative ones)."""
    if seed is not None and seed < 0:
        raise UserError(f"{flag} {seed} must be >= 0")


def read_run_config(run_dir: str | Path) -> Config:
    """The ``config.yaml`` of a run directory, with one-line errors for a folder that is not a
    run or a config file that is empty, cut short or not text."""
    run = Path(run_dir)
    if not run.exists():
        raise UserError(
            f"run directory {run} does not exist; pass a folder that 'drlzero train' wrote"
        )
    if not run.is_dir():
        raise UserError(
            f"{run} is a file, not a run directory; pass a folder that 'drlzero train' wrote"
        )
    path = run / "config.yaml"
    if not path.is_file():
        raise UserError(
            f"{run} is not a run directory (no config.yaml); "
            "pass a folder that 'drlzero train' wrote"
        )
    restore = "restore the run's own config.yaml (checkpoints/*.json keep a copy under 'config')"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not text (corrupt); {restore}") from None
    if not text.strip():
        raise ConfigError(f"{path} is empty; {restore}")
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None  # read_config below reports the parse error itself
    if isinstance(data, dict):
        missing = [k for k in _REQUIRED_SECTIONS if k not in data]
        if missing:
            raise ConfigError(f"{path} has no '{missing[0]}' entry (cut short?); {restore}")
    return read_config(path)


def _lookup(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def check_checkpoint_config(cfg: Config, meta: dict[str, Any], where: str | Path) -> None:
    """Refuse a checkpoint written by another run than the one ``cfg`` (its ``config.yaml``)
    describes: the config saved in the checkpoint must agree on :data:`IDENTITY_KEYS`."""
    saved = meta.get("config") if isinstance(meta, dict) else None
    if not isinstance(saved, dict):
        return  # nothing to compare with; the weights' shapes are still checked on load
    mine = cfg.to_dict()
    saved = upgrade_mapping(saved)  # a checkpoint of an older version names keys as it did
    for key in IDENTITY_KEYS:
        theirs, ours = _lookup(saved, key), _lookup(mine, key)
        if theirs is _MISSING or ours is _MISSING or theirs == ours:
            continue
        raise CheckpointError(
            f"{where} was written with {key}={theirs!r} but config.yaml says {key}={ours!r}: "
            "they come from different runs; put back this run's own config.yaml or checkpoints/"
        )
