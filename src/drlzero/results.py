"""What the Python API returns: one small family of frozen result types.

Every call that runs something (``train``, ``evaluate``, ``collect``, ``record``, ...) returns a
:class:`Result`: the run directory it wrote or read (``run_dir``, None when there is none) and
``to_dict()``, the JSON-able data the matching CLI command prints with ``--json`` (or prints as
its one line of output). Results whose data was a plain dict before (evaluations, the pretraining
summary, the sweep summary) are read-only dicts, so ``result["mean_return"]`` and
``json.dumps(result)`` keep working.

Example:
    >>> r = EvalResult({"mean_return": 9.5, "episodes": 2}, run_dir=None)
    >>> r["mean_return"], r.to_dict()
    (9.5, {'mean_return': 9.5, 'episodes': 2})
"""

from __future__ import annotations

import abc
import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload


class Result(abc.ABC):
    """The base of every API result: ``run_dir`` (the run directory written or read, or None)
    and :meth:`to_dict` (what the CLI prints as JSON; a fresh copy on every call)."""

    run_dir: Path | None

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON-able data of this result, exactly as the CLI prints it."""


@dataclass(frozen=True, eq=False, repr=False)
class MappingResult(dict, Result):  # type: ignore[type-arg]
    """A result that is a read-only dict of JSON-able values, as these results were plain dicts
    before: ``result[key]``, ``.get``, ``{**result}``, ``json.dumps(result)`` and comparing
    with a dict all work; changing it raises TypeError (:meth:`to_dict` gives a copy to
    change)."""

    data: Mapping[str, Any]
    run_dir: Path | None = None

    def __post_init__(self) -> None:
        dict.update(self, self.data)

    def __reduce__(self) -> tuple[Any, ...]:  # pickle and deepcopy rebuild it, never mutate it
        return (type(self), (dict(self), self.run_dir))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r}, run_dir={self.run_dir!r})"

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"a {type(self).__name__} is read-only; change a copy: result.to_dict()")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self))


class EvalResult(MappingResult):
    """An evaluation (``evaluate``, ``evaluate_baseline``, ``evaluate_zero_shot``): the keys of
    ``eval --json`` (``mean_return``, ``std_return``, ``mean_length``, ``success_rate``,
    ``episodes``, ...); ``run_dir`` is the run evaluated (None for a baseline or a zero-shot
    preset)."""


class PretrainResult(MappingResult):
    """The summary of ``pretrain`` (``model_dir``, ``steps``, ``params``, the losses, ...)."""

    @property
    def model_dir(self) -> Path:
        """The Hugging Face model directory written."""
        return Path(self.data["model_dir"])


class SweepResult(MappingResult):
    """The summary of ``sweep`` (``sweep_dir``, ``settings``, ...); ``run_dir`` is the sweep
    directory that holds the trial runs."""


@dataclass(frozen=True)
class FileResult(Result, os.PathLike[str]):
    """A call whose product is one file or directory (``record``'s GIF, ``report``'s HTML page,
    ``convert_lm``'s model directory): ``path``. It is path-like (``open(result)``,
    ``Path(result)``) and ``str(result)`` is the line the CLI prints. Path methods and
    properties (``result.is_file()``, ``result.read_text()``, ``result.name``) are the path's,
    so code written when these calls returned a :class:`~pathlib.Path` keeps working."""

    path: Path
    run_dir: Path | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __getattr__(self, name: str) -> Any:
        # only called for names the dataclass lacks; dunders stay unresolved (copy, pickle)
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.path, name)

    def __str__(self) -> str:
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path)}


@dataclass(frozen=True)
class CollectResult(Result, Sequence[Path]):
    """The datasets ``collect`` wrote, one per env: a sequence of their directories
    (``[path] = collect(...)`` works) with each one's headline figures in ``summaries`` (what
    the CLI prints, one JSON line per dataset)."""

    datasets: tuple[Path, ...]
    summaries: tuple[dict[str, Any], ...]
    run_dir: Path | None = None

    @overload
    def __getitem__(self, index: int) -> Path: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Path]: ...
    def __getitem__(self, index: int | slice) -> Path | Sequence[Path]:
        return self.datasets[index]

    def __len__(self) -> int:
        return len(self.datasets)

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": copy.deepcopy(list(self.summaries))}


@dataclass(frozen=True)
class Catalog(Result):
    """What ``drlzero list`` shows: the presets (name -> what it combines and what it reaches),
    algorithms, DQN switches (setting -> description), encoders, baselines (env id -> names)
    and registered environment ids."""

    presets: dict[str, dict[str, str]]
    algorithms: tuple[str, ...]
    dqn_switches: dict[str, str]
    encoders: tuple[str, ...]
    explorers: tuple[str, ...]
    baselines: dict[str, tuple[str, ...]]
    environments: tuple[str, ...]
    run_dir: Path | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "presets": copy.deepcopy(self.presets),
            "algorithms": list(self.algorithms),
            "dqn_switches": dict(self.dqn_switches),
            "encoders": list(self.encoders),
            "explorers": list(self.explorers),
            "baselines": {k: list(v) for k, v in self.baselines.items()},
            "environments": list(self.environments),
        }
