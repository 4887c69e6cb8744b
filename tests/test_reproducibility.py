"""Determinism (same seed, same run) and exact resume (interrupted + resumed = uninterrupted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from safetensors.torch import load_file

from drlzero import train
from drlzero.config import load_config


def _episodes(run: Path) -> str:
    return (run / "episodes.csv").read_text()


def _weights(run: Path) -> dict:
    t = load_file(str(run / "checkpoints" / "last.safetensors"))
    return {k: v for k, v in t.items() if k.startswith(("q.", "target.", "optim.", "q_table"))}


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), k


DQN = [
    "train.total_steps=3000",
    "dqn.learning_starts=500",
    "train.eval_freq=1000",
    "train.eval_episodes=2",
    "train.checkpoint_freq=1500",
]


@pytest.mark.parametrize(
    ("preset", "extra"),
    [("cartpole-dqn", DQN), ("frozenlake-qlearning", ["train.total_steps=2000"])],
)
def test_same_seed_same_run(tmp_path: Path, fast: list[str], preset: str, extra: list[str]) -> None:
    runs = [
        train(load_config(preset, overrides=[*fast, *extra]), out=tmp_path / f"r{i}")
        for i in range(2)
    ]
    assert _episodes(runs[0].run_dir) == _episodes(runs[1].run_dir)
    assert runs[0].final_eval == runs[1].final_eval
    _assert_same_weights(runs[0].run_dir, runs[1].run_dir)
    other = train(
        load_config(preset, overrides=[*fast, *extra, "train.seed=1"]), out=tmp_path / "other"
    )
    assert _episodes(other.run_dir) != _episodes(runs[0].run_dir)


@pytest.mark.parametrize(
    ("preset", "module", "extra"),
    [
        ("cartpole-dqn", "drlzero.train.run", [*DQN, "env.num_envs=2"]),
        ("cartpole-rainbow", "drlzero.train.run", [*DQN, "dqn.gradient_steps=8"]),
        (
            "cliffwalking-expected-sarsa",
            "drlzero.train.run",
            ["train.total_steps=3000", "train.checkpoint_freq=1500"],
        ),
    ],
)
def test_resume_matches_uninterrupted(
    tmp_path: Path,
    fast: list[str],
    monkeypatch: pytest.MonkeyPatch,
    preset: str,
    module: str,
    extra: list[str],
) -> None:
    cfg = [*fast, *extra]
    full = train(load_config(preset, overrides=cfg), out=tmp_path / "full")
    # A crash right after the first 'last' checkpoint, then --resume.
    mod = importlib.import_module(module)
    real_save = mod.save_checkpoint

    def save_then_crash(folder: Path, name: str, tensors: dict, meta: dict) -> Path:
        out = real_save(folder, name, tensors, meta)
        if name == "last":
            raise KeyboardInterrupt("simulated crash")
        return out

    monkeypatch.setattr(mod, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(preset, overrides=cfg), out=tmp_path / "part")
    monkeypatch.undo()
    resumed = train(resume=tmp_path / "part")
    assert resumed.steps == full.steps
    assert _episodes(resumed.run_dir) == _episodes(full.run_dir)
    _assert_same_weights(resumed.run_dir, full.run_dir)
    assert resumed.final_eval == full.final_eval
