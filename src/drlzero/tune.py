"""Hyperparameter search with Optuna: every trial a normal :func:`drlzero.train` run.

``drlzero tune cartpole-dqn --trials 16 --space dqn.lr=1e-4:1e-2:log --space
dqn.batch_size=32:256 --space dqn.double=true,false --total-steps 20000`` samples each trial's
settings with TPE (Bergstra et al. 2011, seeded), trains it as a plain run under the study
directory and reports each periodic greedy evaluation (``train.eval_freq``) to a pruner, which
may stop a trial whose curve lags the others (median rule, or successive halving, Li et al.
2017/2020). The objective is the trial's final greedy mean return.

The study directory::

    study.db          Optuna's SQLite storage (re-running the command continues the study)
    trial-0000/ ...   one drlzero run directory per trial (config.yaml, eval.json, ...)
    trials.csv        number, state, value, last reported step and the sampled settings
    best.yaml         the best trial's whole config: ``drlzero train best.yaml``
    best.json         its value, settings, trial number and run directory

``--trials N`` is the number of finished (complete or pruned) trials the study should hold: a
second call with the same arguments after an interruption runs only the missing ones. A trial
killed mid-run is marked failed (Optuna's heartbeat) and not counted; its partial run directory
stays. The sampler is seeded anew on each call, so an interrupted study samples the same kinds of
settings but not the same ones as an uninterrupted study would.

Spaces (``--space``): ``key=low:high`` (uniform; integers for an int key), ``key=low:high:log``
(log-uniform, low > 0), ``key=a,b,c`` (categorical; values parsed as YAML).
"""

from __future__ import annotations

import copy
import csv
import difflib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from drlzero.checks import make_out_dir
from drlzero.config import (
    Config,
    all_keys,
    canonical_key,
    load_config,
    save_config,
    set_key,
    with_overrides,
)
from drlzero.errors import ConfigError, UserError
from drlzero.results import Result

if TYPE_CHECKING:
    import optuna

#: Seconds between a running trial's heartbeats in the study storage, and how long a trial may
#: go without one before the next call marks it failed (a killed process).
HEARTBEAT_S, GRACE_S = 30, 90


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("tuning needs Optuna: pip install 'drlzero[tune]'") from None
    return optuna


@dataclass(frozen=True)
class Dim:
    """One searched config key: a float or int range (``log``: log-uniform) or choices."""

    key: str
    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The ``--space`` text that gives this dimension back."""
        if self.kind == "categorical":
            return f"{self.key}=" + ",".join(_yaml_scalar(c) for c in self.choices)
        low, high = (int(v) if self.kind == "int" else v for v in (self.low, self.high))
        return f"{self.key}={low}:{high}" + (":log" if self.log else "")


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _key_types() -> dict[str, set[str]]:
    """Config key -> its type names, e.g. ``{"dqn.lr": {"float"}, "ppo.target_kl":
    {"float", "None"}}``."""
    return {key: {part.strip() for part in tp.split("|")} for key, tp, _d, _doc in all_keys()}


def _number(text: str, item: str) -> float | int:
    value: Any = _choice(text.strip()) if text.strip() else None  # 1e-3: YAML 1.1 gives a str
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UserError(f"--space {item!r}: {text!r} is not a number; give key=low:high[:log]")
    return value


def parse_space(items: list[str], base: Config | None = None) -> list[Dim]:
    """``--space`` strings -> dimensions, each checked against the config's keys and types.

    With ``base``, both ends of a range (and every choice) are also set on a copy of it and
    validated, so a value the config refuses is reported now, not in the middle of a study.
    """
    if not items:
        raise UserError("tune needs at least one --space key=low:high[:log] or key=a,b,c")
    types = _key_types()
    dims: list[Dim] = []
    for item in items:
        key, sep, spec = (part.strip() for part in item.partition("="))
        if not sep or not key or not spec:
            raise UserError(
                f"--space {item!r} must look like key=low:high, key=low:high:log or key=a,b,c"
            )
        key = canonical_key(key)  # a renamed key searches its new name (with a warning)
        if key not in types:
            close = difflib.get_close_matches(key, list(types), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"--space {item!r}: unknown config key {key!r}; {hint}"
                "see 'drlzero train --help' for all keys"
            )
        if any(d.key == key for d in dims):
            raise UserError(f"--space names {key!r} twice; give one range or one list per key")
        dims.append(_parse_dim(item, key, spec, types[key]))
    if base is not None:
        for dim in dims:
            ends = dim.choices if dim.kind == "categorical" else (dim.low, dim.high)
            for value in ends:
                trial_cfg = copy.deepcopy(base)
                try:
                    set_key(trial_cfg, dim.key, value)
                    trial_cfg.validate()
                except ConfigError as exc:
                    raise UserError(f"--space {dim.spec()!r}: {exc}") from None
    return dims


def _parse_dim(item: str, key: str, spec: str, types: set[str]) -> Dim:
    numeric = types & {"int", "float"}
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != "log"):
            raise UserError(f"--space {item!r} must look like key=low:high or key=low:high:log")
        if not numeric:
            kind = "/".join(sorted(types))
            raise UserError(
                f"--space {item!r}: {key} is a {kind} key, not a number; "
                f"give its choices, e.g. {key}=a,b"
            )
        low, high = _number(parts[0], item), _number(parts[1], item)
        log = len(parts) == 3
        if not low < high:
            raise UserError(f"--space {item!r}: low {low} must be less than high {high}")
        if log and low <= 0:
            raise UserError(f"--space {item!r}: a log range needs low > 0 (got {low})")
        if "float" in numeric:
            return Dim(key, "float", float(low), float(high), log)
        if not (float(low).is_integer() and float(high).is_integer()):
            raise UserError(f"--space {item!r}: {key} is an int key; give integer bounds")
        return Dim(key, "int", int(low), int(high), log)
    choices = tuple(_choice(text.strip()) for text in spec.split(",") if text.strip())
    if len(set(map(repr, choices))) < 2 or len(set(map(repr, choices))) != len(choices):
        raise UserError(
            f"--space {item!r}: give a range low:high or at least two distinct choices a,b"
        )
    for choice in choices:
        if not isinstance(choice, (bool, int, float, str)) and choice is not None:
            raise UserError(f"--space {item!r}: a choice must be one value, got {choice!r}")
    return Dim(key, "categorical", choices=choices)


def _choice(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)  # 1e-3 -> 0.001, as the config reads it
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class TuneResult(Result):
    """What :func:`drlzero.tune` returns; :meth:`to_dict` is the line ``drlzero tune`` prints.
    ``run_dir`` is the best trial's run directory (None if the study did not record it)."""

    study_dir: Path
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_config: Path  # best.yaml
    trials: int  # finished trials in the study (complete + pruned)
    pruned: int
    new_trials: int  # trials this call ran
    run_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_dir": str(self.study_dir),
            "best_value": self.best_value,
            "best_params": dict(self.best_params),
            "best_trial": self.best_trial,
            "best_config": str(self.best_config),
            "trials": self.trials,
            "pruned": self.pruned,
            "new_trials": self.new_trials,
        }


def _make_pruner(optuna: Any, pruner: Any, total_steps: int) -> Any:
    if not isinstance(pruner, str):
        return pruner  # an optuna.pruners.BasePruner from the Python API
    if pruner == "median":
        # RL curves are noisy early: judge a trial only past a quarter of its budget, and only
        # once three trials have finished.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=total_steps // 4)
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"--pruner {pruner!r} is not one of: median, halving, none")


def _storage(optuna: Any, url: str) -> Any:
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    return url


def tune(
    preset: Config | str | Path,
    space: list[str] | list[Dim],
    *,
    trials: int,
    out: str | Path | None = None,
    storage: str | None = None,
    overrides: list[str] | None = None,
    total_steps: int | None = None,
    sampler_seed: int = 0,
    pruner: Any = "median",
    study_name: str | None = None,
) -> TuneResult:
    """Search ``space`` around ``preset`` with Optuna; see the module docstring.

    Args:
        preset: a preset name, YAML file or :class:`Config` (the settings not searched).
        space: ``--space`` strings (or :class:`Dim` objects).
        trials: finished trials the study should hold (a re-run continues up to this).
        out: the study directory (default ``runs/tune-NAME-TIME``).
        storage: an Optuna storage URL (default ``sqlite:///OUT/study.db``).
        overrides: ``key=value`` strings applied to the preset before searching.
        total_steps: each trial's env-step budget.
        sampler_seed: the TPE sampler's seed (each trial trains with ``train.seed``).
        pruner: ``median``, ``halving``, ``none`` or an ``optuna.pruners`` object.
        study_name: the study's name in the storage (default: the config's name).

    Example:
        >>> tune("cartpole-dqn", ["dqn.lr=1e-4:1e-2:log"], trials=8)  # doctest: +SKIP
    """
    optuna = require_optuna()
    if trials < 1:
        raise UserError(f"--trials {trials} must be >= 1")
    if isinstance(preset, Config):  # a copy: the caller's config is left as it was
        base = with_overrides(preset, overrides)
    else:
        base = load_config(preset, overrides=overrides)
    if total_steps is not None:
        if total_steps < 1:
            raise UserError(f"--total-steps {total_steps} must be >= 1")
        base.train.total_steps = total_steps
    base.train.progress = False  # many runs, one process: a line per trial instead
    base.validate()
    if base.distributed.mode != "none":
        raise UserError("tune runs one process per trial; drop distributed.mode (apex)")
    if space and all(isinstance(d, Dim) for d in space):
        dims = [d for d in space if isinstance(d, Dim)]
    else:
        dims = parse_space([str(s) for s in space], base)
    name = study_name or base.name
    study_dir = Path(out) if out is not None else Path("runs") / f"tune-{name}-{_stamp()}"
    make_out_dir(study_dir, "--out")
    url = storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    signature = {"config": base.to_dict(), "space": [d.spec() for d in dims]}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=_storage(optuna, url),
            sampler=optuna.samplers.TPESampler(seed=sampler_seed),
            pruner=_make_pruner(optuna, pruner, base.train.total_steps),
            direction="maximize",
            load_if_exists=True,
        )
    except (ImportError, ValueError) as exc:  # a bad URL, or a driver that is not installed
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--storage {url!r} cannot be opened ({first})") from None
    saved = study.user_attrs.get("signature")
    if saved is None:
        study.set_user_attr("signature", json.loads(json.dumps(signature)))
    elif saved != json.loads(json.dumps(signature)):
        raise UserError(
            f"study {name!r} in {url} was made with another preset, overrides or --space; "
            "pass the same ones to continue it, or another --out / --study-name"
        )

    def objective(trial: optuna.Trial) -> float:
        cfg = copy.deepcopy(base)
        for dim in dims:
            set_key(cfg, dim.key, _suggest(trial, dim))
        cfg.validate()
        run_dir = study_dir / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))

        def on_eval(step: int, evaluation: dict[str, float]) -> None:
            trial.report(float(evaluation["mean_return"]), step)
            trial.set_user_attr("last_step", step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        from drlzero.api import train

        result = train(cfg, out=run_dir, on_eval=on_eval)
        trial.set_user_attr("last_step", result.steps)
        return float(result.final_eval["mean_return"])

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = "nan" if trial.value is None else f"{trial.value:.1f}"
        print(
            f"trial {trial.number}: {trial.state.name.lower()} value {value} "
            f"{json.dumps(trial.params)}",
            file=sys.stderr,
        )

    remaining = trials - _finished(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, callbacks=[report], catch=())
    return _write_results(study, base, dims, study_dir, new_trials=max(remaining, 0))


def _suggest(trial: optuna.Trial, dim: Dim) -> Any:
    if dim.kind == "float":
        return trial.suggest_float(dim.key, dim.low, dim.high, log=dim.log)
    if dim.kind == "int":
        return trial.suggest_int(dim.key, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_categorical(dim.key, list(dim.choices))


def _finished(study: optuna.Study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _write_results(
    study: optuna.Study, base: Config, dims: list[Dim], study_dir: Path, *, new_trials: int
) -> TuneResult:
    import optuna

    all_trials = study.get_trials(deepcopy=False)
    keys = [d.key for d in dims]
    with (study_dir / "trials.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "state", "value", "last_step", "run_dir", *keys])
        for t in all_trials:
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    "" if t.value is None else t.value,
                    t.user_attrs.get("last_step", ""),
                    t.user_attrs.get("run_dir", ""),
                    *(t.params.get(k, "") for k in keys),
                ]
            )
    complete = [t for t in all_trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in all_trials)
    if not complete:
        raise UserError(
            f"no trial of {study_dir} completed ({pruned} pruned); "
            "run more --trials or use --pruner none"
        )
    best = max(complete, key=lambda t: t.value if t.value is not None else -math.inf)
    cfg = copy.deepcopy(base)
    for key, value in best.params.items():
        set_key(cfg, key, value)
    cfg.name = f"{base.name}-tuned"
    cfg.train.progress = True
    cfg.validate()
    path = study_dir / "best.yaml"
    save_config(cfg, path)
    header = (
        f"# drlzero tune: the best of {len(complete)} complete trials of {base.name} "
        f"(trial {best.number}, final greedy mean return {best.value:.2f} at "
        f"{base.train.total_steps} steps).\n# Train it with: drlzero train {path}\n"
    )
    path.write_text(header + path.read_text())
    summary = {
        "best_value": best.value,
        "best_params": best.params,
        "best_trial": best.number,
        "best_run_dir": best.user_attrs.get("run_dir"),
        "trials": len(complete) + pruned,
        "complete": len(complete),
        "pruned": pruned,
        "space": [d.spec() for d in dims],
        "total_steps": base.train.total_steps,
    }
    (study_dir / "best.json").write_text(json.dumps(summary, indent=1) + "\n")
    return TuneResult(
        study_dir=study_dir,
        best_value=float(best.value),
        best_params=dict(best.params),
        best_trial=best.number,
        best_config=path,
        trials=len(complete) + pruned,
        pruned=pruned,
        new_trials=new_trials,
        run_dir=Path(best.user_attrs["run_dir"]) if best.user_attrs.get("run_dir") else None,
    )
