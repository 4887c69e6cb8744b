"""The public API: every exported name documented, one function per CLI command with
keyword-only options, one family of frozen result types whose ``to_dict()`` is what the CLI
prints, and the typed :meth:`drlzero.Agent.act`."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import drlzero
from drlzero.cli import build_parser, main
from drlzero.config import load_config
from drlzero.errors import UserError
from drlzero.results import Result
from drlzero.train.run import report_seed

FAST = ["train.progress=false", "train.tensorboard=false"]
TINY = [
    *FAST,
    "train.total_steps=300",
    "dqn.learning_starts=100",
    "train.eval_episodes=2",
    "train.eval_freq=0",
    "env.max_episode_steps=100",
]

#: CLI commands whose function is not named after the command ("convert-lm" -> convert_lm).
RENAMED = {"eval": "evaluate", "list": "catalog"}
#: ``drlzero eval`` modes that are functions of their own.
EVAL_MODES = {"baseline": "evaluate_baseline", "zero_shot": "evaluate_zero_shot"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _functions() -> dict[str, list[str]]:
    """CLI command -> the exported functions that do what it does."""
    out = {cmd: [RENAMED.get(cmd, cmd.replace("-", "_"))] for cmd in _subparsers()}
    out["eval"] += list(EVAL_MODES.values())
    return out


def test_every_exported_name_is_importable_and_documented() -> None:
    for name in drlzero.__all__:
        obj = getattr(drlzero, name)  # raises if __all__ names something missing
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert doc and doc.strip(), f"drlzero.{name} has no docstring"
        if inspect.isclass(obj):  # not the signature dataclasses write when there is none
            assert not doc.startswith(f"{name}("), f"drlzero.{name} has no docstring"


def test_every_cli_command_has_an_exported_function_with_an_example() -> None:
    commands = _functions()
    assert {"train", "eval", "record", "list", "collect", "distill", "pretrain"} <= set(commands)
    for cmd, names in commands.items():
        for name in names:
            assert name in drlzero.__all__, f"'drlzero {cmd}' has no drlzero.{name}"
            fn = getattr(drlzero, name)
            assert callable(fn) and "Example" in (fn.__doc__ or ""), f"drlzero.{name}: example"
            hints = inspect.get_annotations(fn)
            assert "return" in hints, f"drlzero.{name} has no return annotation"
            for p in inspect.signature(fn).parameters.values():
                if p.kind is not p.VAR_KEYWORD:
                    assert p.name in hints, f"drlzero.{name}({p.name}) has no type hint"


def test_options_are_keyword_only() -> None:
    """At most the subject(s) of a call are positional: its first parameter, or two required
    ones (``collect(envs, policy)``); every other parameter, and every option of the CLI command
    that has a default there, is keyword-only."""
    parsers = _subparsers()
    for cmd, names in _functions().items():
        options = {
            a.dest
            for a in parsers[cmd]._actions
            if a.option_strings and a.dest != "help" and a.dest not in EVAL_MODES
        }
        for name in [*names, "load_agent"]:
            params = list(inspect.signature(getattr(drlzero, name)).parameters.values())
            positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
            assert positional == params[: len(positional)]
            assert len(positional) <= 2, f"drlzero.{name}: {positional}"
            for p in positional[1:]:
                assert p.default is p.empty, f"drlzero.{name}({p.name}) is an option"
            for p in params:
                if p.name in options and p.default is not p.empty and p not in positional[:1]:
                    assert p.kind is p.KEYWORD_ONLY, f"drlzero.{name}({p.name}) is an option"


def test_result_types_are_frozen_results() -> None:
    results = [getattr(drlzero, n) for n in drlzero.__all__ if n.endswith("Result")]
    results.append(drlzero.Catalog)
    assert len(results) >= 9
    for cls in results:
        assert issubclass(cls, Result), cls
        if cls is not Result:
            assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
            assert "run_dir" in {f.name for f in dataclasses.fields(cls)}, cls
    for name, names in _functions().items():
        for fn_name in names:
            ret = inspect.signature(getattr(drlzero, fn_name)).return_annotation
            assert isinstance(ret, str) and ret.endswith(("Result", "Catalog")), (name, ret)


def _cli_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> Any:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> drlzero.TrainResult:
    """A tiny CartPole DQN run, from a Config plus overrides (which must take effect)."""
    cfg = load_config("cartpole-dqn")
    out = tmp_path_factory.mktemp("api") / "run"
    result = drlzero.train(cfg, out=out, overrides=[*TINY, "train.seed=3"])
    assert cfg.train.total_steps != 300 and cfg.train.seed == 0  # the caller's copy is kept
    return result


def test_train_applies_overrides_to_a_config(run: drlzero.TrainResult) -> None:
    assert run.steps == 300
    saved = load_config(run.run_dir / "config.yaml")
    assert (saved.train.total_steps, saved.train.seed) == (300, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.steps = 1  # type: ignore[misc]


def test_train_to_dict_is_what_the_cli_prints(
    run: drlzero.TrainResult, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(drlzero.api, "train", lambda *a, **k: run)
    printed = _cli_json(capsys, ["train", "cartpole-dqn", "--out", str(run.run_dir) + "-x"])
    assert printed == run.to_dict() == json.loads(json.dumps(run.to_dict()))
    keys = {"run_dir", "steps", "final_eval", "best_eval_return", "solved_at_step", "wall_time_s"}
    assert set(printed) == keys and printed["run_dir"] == str(run.run_dir)


def test_evaluate_to_dict_is_the_cli_json_and_indexes_like_a_dict(
    run: drlzero.TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    res = drlzero.evaluate(run.run_dir, episodes=3)
    printed = _cli_json(capsys, ["eval", str(run.run_dir), "--episodes", "3", "--json"])
    assert printed == res.to_dict()
    written = json.loads((run.run_dir / "eval.json").read_text())
    assert {k: v for k, v in written.items() if k != "checkpoint"} == printed
    assert isinstance(res, drlzero.EvalResult) and res.run_dir == run.run_dir
    assert res["episodes"] == 3 and res.get("nope") is None and res == printed  # dict access
    assert dict(res) == printed and {**res} == printed and json.loads(json.dumps(res)) == printed
    with pytest.raises(TypeError, match="read-only"):
        res["mean_return"] = 0.0  # type: ignore[index]
    # the default seed is the one place's: train.seed + REPORT_SEED_OFFSET
    same = drlzero.evaluate(run.run_dir, episodes=3, seed=report_seed(3), write=False)
    assert same == res


def test_evaluate_baseline_to_dict_is_the_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    res = drlzero.evaluate_baseline("CartPole-v1", "random", episodes=3)
    args = ["eval", "--baseline", "random", "--env", "CartPole-v1", "--episodes", "3", "--json"]
    assert _cli_json(capsys, args) == res.to_dict()
    assert res.run_dir is None and res["episodes"] == 3


def test_record_and_report_print_their_path(
    run: drlzero.TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = drlzero.record(run.run_dir, out=tmp_path / "a.gif")
    assert main(["record", str(run.run_dir), "--out", str(tmp_path / "a.gif")]) == 0
    assert capsys.readouterr().out.strip() == str(rec) == str(tmp_path / "a.gif")
    assert rec.path.is_file() and Path(rec) == rec.path and rec.run_dir == run.run_dir
    assert rec.to_dict() == {"path": str(rec.path)}
    page = drlzero.report(run.run_dir, out=tmp_path / "r.html", explain=False)
    assert main(["report", str(run.run_dir), "--out", str(page), "--no-explain"]) == 0
    assert capsys.readouterr().out.strip() == str(page)
    assert page.run_dir == run.run_dir and "<html" in page.path.read_text().lower()
    # the Path these calls returned before: its methods and properties still answer
    assert rec.is_file() and rec.name == "a.gif" and rec.read_bytes() == rec.path.read_bytes()
    with pytest.raises(AttributeError):
        rec.no_such_path_attribute  # noqa: B018


def test_collect_to_dict_holds_the_lines_the_cli_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = drlzero.collect(["CartPole-v1"], "random", out=tmp_path / "a", steps=60, seed=2)
    [path] = res  # a sequence of dataset directories, as the list it was before
    assert path == res[0] == tmp_path / "a" and len(res) == 1
    args = ["collect", "--env", "CartPole-v1", "--policy", "random", "--steps", "60"]
    assert main([*args, "--seed", "2", "--out", str(tmp_path / "b")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    mine = res.to_dict()["datasets"]
    assert [{**x, "path": ""} for x in lines] == [{**x, "path": ""} for x in mine]
    assert json.loads(json.dumps(res.to_dict())) == res.to_dict()


def test_catalog_is_what_list_shows(capsys: pytest.CaptureFixture[str]) -> None:
    cat = drlzero.catalog()
    assert main(["list"]) == 0
    shown = capsys.readouterr().out
    assert "cartpole-dqn" in cat.presets and all(name in shown for name in cat.presets)
    assert all(algo in shown for algo in cat.algorithms)
    assert json.loads(json.dumps(cat.to_dict())) == cat.to_dict()


def test_agent_act_batches_and_masks(run: drlzero.TrainResult) -> None:
    agent = drlzero.load_agent(run.run_dir, checkpoint="last")
    obs = np.zeros((5, 4), np.float32)
    actions = agent.act(obs)
    assert isinstance(actions, np.ndarray) and actions.shape == (5,)
    assert agent.accepts_mask  # a DQN agent takes a mask: the best allowed action
    only_1 = np.zeros((5, 2), bool)
    only_1[:, 1] = True
    assert agent.act(obs, only_1).tolist() == [1] * 5
    one = agent.act_one(obs[0], only_1[0])
    assert isinstance(one, int) and one == 1
    hints = inspect.get_annotations(drlzero.Agent.act)
    assert hints["return"] == "np.ndarray" and "action_mask" in hints


def test_a_tabular_agent_refuses_a_mask(tmp_path: Path) -> None:
    over = [*FAST, "train.total_steps=200", "train.eval_freq=0", "train.eval_episodes=1"]
    res = drlzero.train("frozenlake-qlearning", out=tmp_path / "t", overrides=over)
    agent = drlzero.load_agent(res.run_dir)
    assert agent.act(np.array([0, 1])).shape == (2,)
    with pytest.raises(UserError, match="takes no action mask"):
        agent.act(np.array([0]), np.ones((1, 4), bool))
