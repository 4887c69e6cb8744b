"""``drlzero tune``: the search space parser, its one-line errors, a tiny resumable study with
pruning and ``best.yaml``, and the evaluation callback of ``Run`` (no effect when unused)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

import drlzero
from drlzero.cli import main
from drlzero.config import load_config
from drlzero.tune import Dim, parse_space

optuna = pytest.importorskip("optuna")

TINY = [
    "train.progress=false",
    "train.tensorboard=false",
    "train.total_steps=600",
    "dqn.learning_starts=100",
    "dqn.train_freq=64",
    "dqn.gradient_steps=8",
    "train.eval_freq=200",
    "train.eval_episodes=1",
    "env.max_episode_steps=100",
]


def test_space_kinds() -> None:
    dims = parse_space(
        ["dqn.lr=1e-4:1e-2:log", "dqn.batch_size=16:128", "dqn.double=true,false", "dqn.tau=0:1"]
    )
    assert dims == [
        Dim("dqn.lr", "float", 1e-4, 1e-2, log=True),
        Dim("dqn.batch_size", "int", 16, 128),
        Dim("dqn.double", "categorical", choices=(True, False)),
        Dim("dqn.tau", "float", 0.0, 1.0),  # integer bounds on a float key: a float range
    ]
    assert [d.spec() for d in dims] == [
        "dqn.lr=0.0001:0.01:log",
        "dqn.batch_size=16:128",
        "dqn.double=true,false",
        "dqn.tau=0.0:1.0",
    ]


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ("dqn.lr", "must look like"),
        ("dqn.lrr=0.1:0.2", "unknown config key 'dqn.lrr'; did you mean 'dqn.lr'"),
        ("dqn.lr=0.1:0.01", "low 0.1 must be less than high 0.01"),
        ("dqn.lr=0.1:0.1", "must be less than"),
        ("dqn.lr=0:0.1:log", "log range needs low > 0"),
        ("dqn.lr=a:0.1", "'a' is not a number"),
        ("dqn.lr=0.1:1:lin", "key=low:high:log"),
        ("dqn.batch_size=8:16.5", "int key; give integer bounds"),
        ("dqn.double=0:1", "bool key, not a number"),
        ("dqn.lr=0.1", "at least two distinct choices"),
        ("dqn.loss=huber,huber", "at least two distinct choices"),
        ("dqn.loss=huber,l1", "dqn.loss='l1' is not one of"),
        ("dqn.lr=-1:1", "dqn.lr"),
        ("dqn.batch_size=[1,2],3", "wrong type: expected int"),
    ],
)
def test_bad_space_is_one_line(
    space: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    code = main(["tune", "cartpole-dqn", "--trials", "1", "--space", space, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert words in err
    assert not out.exists()  # nothing written before the space is checked


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--trials", "0", "--space", "dqn.lr=0.001:0.01"], "--trials 0 must be >= 1"),
        (["--trials", "1"], "at least one --space"),
        (
            ["--trials", "1", "--space", "dqn.lr=0.001:0.01"] * 1 + ["--space", "dqn.lr=0.1,0.2"],
            "names 'dqn.lr' twice",
        ),
    ],
)
def test_bad_tune_flags(
    args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["tune", "cartpole-dqn", *args, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err


class _PruneSecond(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first report, never another trial."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 1


def test_study_prunes_resumes_and_writes_best_yaml(tmp_path: Path) -> None:
    out = tmp_path / "study"
    space = ["dqn.lr=1e-4:1e-2:log", "dqn.double=true,false"]
    short = [*TINY, "train.total_steps=400"]
    r = drlzero.api.tune(
        "cartpole-dqn", space, trials=2, out=out, overrides=short, pruner=_PruneSecond()
    )
    assert (r.trials, r.pruned, r.new_trials) == (2, 1, 2)
    assert (out / "study.db").is_file()
    # the pruned trial is a normal run directory that stopped at its first evaluation
    with (out / "trial-0001" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(row["step"]) for row in rows] == [200]
    assert not (out / "trial-0001" / "eval.json").exists()
    assert json.loads((out / "trial-0000" / "eval.json").read_text())["step"] == 400

    # the same call with more trials continues the study: one new trial, numbered 2
    r2 = drlzero.api.tune("cartpole-dqn", space, trials=3, out=out, overrides=short, pruner="none")
    assert (r2.trials, r2.new_trials) == (3, 1)
    assert (out / "trial-0002" / "eval.json").is_file()
    study = optuna.load_study(study_name="cartpole-dqn", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value)
    assert r2.best_trial == best.number and r2.best_value == best.value

    # best.yaml is a config 'drlzero train' loads, with the best trial's settings
    cfg = load_config(str(r2.best_config))
    assert cfg.name == "cartpole-dqn-tuned"
    assert cfg.dqn.lr == pytest.approx(best.params["dqn.lr"])
    assert cfg.dqn.double == best.params["dqn.double"]
    assert cfg.train.total_steps == 400
    with (out / "trials.csv").open() as fh:
        assert [row["state"] for row in csv.DictReader(fh)] == states


def test_eval_callback_sees_every_periodic_eval_and_changes_nothing(tmp_path: Path) -> None:
    seen: list[tuple[int, float]] = []
    with_cb = drlzero.api.train(
        "cartpole-dqn",
        out=tmp_path / "cb",
        overrides=TINY,
        on_eval=lambda step, ev: seen.append((step, ev["mean_return"])),
    )
    plain = drlzero.api.train("cartpole-dqn", out=tmp_path / "plain", overrides=TINY)
    # evaluations at 200 and 400; the one at 600 ends the run: the result, not passed
    assert [s for s, _ in seen] == [200, 400]
    assert [(h["step"], h["mean_return"]) for h in with_cb.eval_history][:2] == seen
    assert with_cb.final_eval == plain.final_eval

    def digest(run: Path) -> str:
        return hashlib.sha256((run / "checkpoints" / "last.safetensors").read_bytes()).hexdigest()

    assert digest(with_cb.run_dir) == digest(plain.run_dir)
