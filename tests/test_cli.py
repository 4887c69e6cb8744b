"""Smoke runs of every CLI command, the eval JSON contract, and one-line user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drlzero.cli import main

FAST = ["train.progress=false", "train.tensorboard=false"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drlzero", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "dqn"
    code = main(
        [
            "train",
            "cartpole-dqn",
            "--total-steps",
            "300",
            "--seed",
            "1",
            "--out",
            str(out),
            "dqn.learning_starts=100",
            "train.eval_episodes=2",
            "train.tensorboard=true",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_train_writes_the_run_directory(dqn_run: Path) -> None:
    for name in ("config.yaml", "metrics.csv", "episodes.csv", "eval.json", "learning_curve.png"):
        assert (dqn_run / name).is_file(), name
    for name in ("last", "best"):
        assert (dqn_run / "checkpoints" / f"{name}.safetensors").is_file()
        assert (dqn_run / "checkpoints" / f"{name}.json").is_file()
    assert list(dqn_run.glob("events.out.tfevents.*"))
    header = (dqn_run / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("step,time_s,episodes,return_mean")


def test_eval_json_contract(dqn_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(dqn_run), "--episodes", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("mean_return", "std_return", "mean_length", "success_rate", "episodes"):
        assert key in out
    assert out["episodes"] == 3
    assert 0.0 <= out["success_rate"] <= 1.0  # the preset defines success as return >= 475


def test_record_writes_a_gif(dqn_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    gif = tmp_path / "ep.gif"
    assert main(["record", str(dqn_run), "--episodes", "1", "--out", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.n_frames > 5


def test_resume_extends_a_run(dqn_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", str(dqn_run), "--total-steps", "400"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 400


def test_tabular_algo_flag_takes_effect(tmp_path: Path) -> None:
    """--algo reaches the saved config and the learning rule: from the same seed, Q-learning,
    SARSA and Expected SARSA leave different Q-tables (CliffWalking pays -1 every step, so
    every update moves the table)."""
    import yaml
    from safetensors.torch import load_file

    tables = {}
    for algo in ("qlearning", "sarsa", "expected_sarsa", "qlearning"):
        out = tmp_path / f"{algo}-{len(tables)}"
        argv = ["train", "cliffwalking-expected-sarsa", "--algo", algo, "--total-steps", "200"]
        assert main([*argv, "--seed", "3", "--out", str(out), *FAST]) == 0
        assert (out / "eval.json").is_file()
        assert yaml.safe_load((out / "config.yaml").read_text())["algo"] == algo
        table = load_file(out / "checkpoints" / "last.safetensors")["q_table"]
        assert table.shape == (48, 4) and bool((table < 0).any())
        tables[f"{algo}-{len(tables)}"] = table
    q, s, e, q_again = tables.values()
    assert q.equal(q_again)  # a run is deterministic, so a difference comes from the rule
    assert not q.equal(s) and not q.equal(e) and not s.equal(e)


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cartpole-dqn" in out and "expected_sarsa" in out and "CartPole-v1" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "no-such-preset-xyz"], "unknown preset"),
        (["train", "cartpole-dqn", "--env", "NoSuchEnv-v0"], "unknown environment"),
        (["train", "cartpole-dqn", "dqn.nope=1"], "unknown config key"),
        (["train", "cartpole-dqn", "dqn.gamma=2"], "must be in [0, 1]"),
        (["train", "cartpole-dqn", "--env", "Pendulum-v1", "--no-progress"], "Discrete action"),
        (["eval", "/no/such/run"], "does not exist"),
        (["train", "--resume", "/no/such/run"], "cannot resume"),
        (["train", "cartpole-dqn", "--total-steps", "ten"], "invalid int"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    if args[0] == "train" and "--resume" not in args:
        args = [*args, "--out", str(tmp_path / "r")]
    proc = _run(args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_corrupt_checkpoint_is_a_user_error(dqn_run: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(dqn_run, bad)
    for name in ("best", "last"):
        p = bad / "checkpoints" / f"{name}.safetensors"
        p.write_bytes(p.read_bytes()[:-10] + b"0123456789")
    proc = _run(["eval", str(bad)])
    assert proc.returncode == 2
    assert "checksum" in proc.stderr and "Traceback" not in proc.stderr
