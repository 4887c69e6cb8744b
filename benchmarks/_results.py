"""Raw benchmark results as JSON, with the machine, versions, command line and date beside them.

Every script in ``benchmarks/`` calls :func:`write_result` once per result file, so a figure in
the docs can be traced to the run that produced it::

    from _results import write_result

    path = write_result("cartpole_vs_sb3", "table_a", {"rows": rows}, out_dir=args.results_dir)

writes ``benchmarks/results/cartpole_vs_sb3/table_a.json``::

    {"script": ..., "name": ..., "date": "2026-12-02T01:02:03+00:00", "command": "python ...",
     "machine": {"cpu_model", "logical_cores", "usable_cores", "memory_gib", "platform"},
     "versions": {"python", "torch", "numpy", "gymnasium", "drlzero", "drlzero_commit",
                  "drlzero_dirty", and any optional package the run imported, e.g.
                  "stable_baselines3"},
     "result": payload}

The results root is, in order: ``out_dir``, the ``DRLZERO_BENCH_RESULTS`` environment variable
(the smoke tests point it at a temporary directory), ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_ENV",
    "add_result_args",
    "default_root",
    "environment",
    "out_dir_for",
    "peer_float_mode",
    "write_result",
]

RESULTS_ENV = "DRLZERO_BENCH_RESULTS"
_REPO = Path(__file__).resolve().parents[1]
# Optional packages recorded only when the run imported them (so a peer's version is recorded
# exactly when that peer ran): module name -> distribution name.
_OPTIONAL = {
    "stable_baselines3": "stable-baselines3",
    "ray": "ray",
    "transformers": "transformers",
    "peft": "peft",
    "minatar": "MinAtar",
    "ale_py": "ale-py",
    "mujoco": "mujoco",
    "optuna": "optuna",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def default_root(out_dir: Path | str | None = None) -> Path:
    """The results root: ``out_dir``, else ``$DRLZERO_BENCH_RESULTS``, else the repo's folder."""
    if out_dir is not None:
        return Path(out_dir)
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else _REPO / "benchmarks" / "results"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 2)
    except (AttributeError, ValueError, OSError):
        return None


def environment() -> dict[str, Any]:
    """The machine and versions block written beside every result (also useful for printing)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "gymnasium": _version("gymnasium"),
        "drlzero": _version("drlzero"),
        "drlzero_commit": _git("rev-parse", "HEAD"),
        # Tracked files changed since that commit: the figures may not be the commit's code.
        "drlzero_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    for module, dist in _OPTIONAL.items():
        if module in sys.modules:
            versions[module] = _version(dist)
    machine: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
    }
    if "torch" in sys.modules:
        machine["torch_threads"] = sys.modules["torch"].get_num_threads()
    return {"machine": machine, "versions": versions}


def _plain(value: Any) -> Any:
    """``value`` as strict JSON: NumPy scalars/arrays to Python, Paths to str, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return _plain(value.tolist())
    raise TypeError(f"cannot write {type(value).__name__} to a result file: {value!r}")


def write_result(
    script: str, name: str, payload: dict[str, Any], *, out_dir: Path | None = None
) -> Path:
    """Write one raw result file and return its path.

    Args:
        script: The benchmark's name (its file stem, e.g. ``"cartpole_vs_sb3"``): the folder.
        name: The file stem inside that folder (e.g. ``"table_a"``, ``"cartpole-dqn"``); ``/``
            makes subfolders.
        payload: The raw results (JSON-able; NumPy values are converted, NaN becomes null).
        out_dir: The results root (default: ``$DRLZERO_BENCH_RESULTS`` or ``benchmarks/results``);
            the file is ``out_dir/script/name.json``.

    Returns:
        The path written (atomically: a reader never sees half a file).
    """
    for label, value in (("script", script), ("name", name)):
        if not _NAME.match(value) or ".." in value:
            raise ValueError(f"{label} {value!r} is not a plain relative name like 'table_a'")
    path = default_root(out_dir) / script / f"{name}.json"
    record = {
        "script": script,
        "name": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        **environment(),
        "result": _plain(payload),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def add_result_args(parser: argparse.ArgumentParser) -> None:
    """Add the two flags every benchmark script takes: ``--smoke`` and ``--results-dir``."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny budget that only checks the script runs end to end (the CI smoke test)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"results root (default: ${RESULTS_ENV} or benchmarks/results)",
    )


def out_dir_for(args: argparse.Namespace) -> Path | None:
    """The ``out_dir`` for :func:`write_result` from :func:`add_result_args`' flags.

    ``--results-dir`` wins; a ``--smoke`` run without it (and without ``$DRLZERO_BENCH_RESULTS``)
    writes to the git-ignored ``benchmarks/results-smoke`` so it never replaces a real result.
    """
    if args.results_dir is not None:
        return Path(args.results_dir)
    if args.smoke and not os.environ.get(RESULTS_ENV):
        return _REPO / "benchmarks" / "results-smoke"
    return None


def peer_float_mode(flush_denormal: bool = False) -> None:
    """Set subnormal flushing before a peer's arm of an in-process comparison.

    drlzero's training turns it on for the run (``train.flush_denormal``, the default) and
    puts it back after; this makes each peer's mode explicit: as their users get it (off)
    unless a comparison asks otherwise.
    """
    import torch

    torch.set_flush_denormal(flush_denormal)
