"""Policy distillation: the losses against hand-computed numbers, the replay memory, the
multi-task student's weight sharing, distillation runs (single and multi-task) as run
directories that ``eval`` and ``load_agent`` read, and the CartPole retention figure (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_masked_forbidden

import drlzero
from drlzero.algos.distill import (
    DistillMemory,
    MultiTaskStudent,
    distill_loss,
    kl_distill_loss,
    mse_distill_loss,
    nll_distill_loss,
    num_params,
)
from drlzero.cli import main
from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import ConfigError
from drlzero.nets.heads import LinearHead, QNetwork

FAST_DISTILL = {
    "hidden": [16, 16],
    "total_steps": 600,
    "learning_starts": 100,
    "eval_freq": 300,
    "eval_episodes": 1,
    "final_episodes": 2,
    "progress": False,
    "timing_calls": 10,
    "timing_rounds": 2,
}


def test_kl_loss_by_hand() -> None:
    q_t = torch.tensor([[1.0, 0.0]])
    q_s = torch.tensor([[0.0, 0.0]])
    # tau = 1: p = (e/(e+1), 1/(e+1)), student q = (1/2, 1/2)
    p0, p1 = math.e / (math.e + 1), 1 / (math.e + 1)
    expected = p0 * math.log(p0 / 0.5) + p1 * math.log(p1 / 0.5)  # = 0.110944
    assert float(kl_distill_loss(q_t, q_s, 1.0)) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.110944, abs=1e-6)
    # tau = 0.01 makes the teacher one-hot: KL -> -log softmax(q_s)[0] = log 2
    assert float(kl_distill_loss(q_t, q_s, 0.01)) == pytest.approx(math.log(2), abs=1e-6)
    # the student matching softmax(q_t / tau) exactly gives zero; batch means per sample
    q_t2 = torch.tensor([[0.02, 0.0], [0.0, 0.01]])
    assert float(kl_distill_loss(q_t2, q_t2 / 0.01, 0.01)) == pytest.approx(0.0, abs=1e-7)


def test_mse_and_nll_losses_by_hand() -> None:
    q_t = torch.tensor([[1.0, 2.0]])
    q_s = torch.tensor([[0.0, 0.0]])
    assert float(mse_distill_loss(q_t, q_s)) == pytest.approx((1 + 4) / 2)
    q_t3 = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    q_s3 = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, math.log(2.0)]])
    # sample 1: uniform over 3 -> log 3; sample 2: p(a=0) = 1 / (1 + 1 + 2) -> log 4
    expected = (math.log(3) + math.log(4)) / 2
    assert float(nll_distill_loss(q_t3, q_s3)) == pytest.approx(expected, abs=1e-6)
    assert float(distill_loss("nll", q_t3, q_s3)) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ConfigError):
        distill_loss("l1", q_t, q_s)


def test_memory_wraps_and_samples() -> None:
    mem = DistillMemory(3, (2,), np.dtype(np.float32), 2, seed=0)
    for i in range(5):
        mem.add(np.full((1, 2), i, np.float32), np.full((1, 2), 10 * i, np.float32))
    assert len(mem) == 3 and set(mem.obs[:, 0]) == {2.0, 3.0, 4.0}
    batch = mem.sample(8)
    assert batch.obs.shape == (8, 2) and batch.q_teacher.shape == (8, 2)
    assert torch.equal(batch.q_teacher[:, 0], batch.obs[:, 0] * 10)


def test_multitask_student_shares_hidden_layers() -> None:
    def net(obs_dim: int, actions: int) -> QNetwork:
        return QNetwork(MLPEncoder((obs_dim,), hidden=[8, 8]), LinearHead(8, actions))

    a, b = net(4, 2), net(6, 3)
    student = MultiTaskStudent([a, b])
    assert a.encoder.net[3] is b.encoder.net[3]  # second hidden layer shared
    assert a.encoder.net[1] is not b.encoder.net[1]  # each task reads its own inputs
    shared = 8 * 8 + 8
    assert num_params(student) == num_params(a) + num_params(b) - shared
    same = MultiTaskStudent([net(4, 2), net(4, 3)])  # same observations: one whole encoder
    assert same.nets[0].encoder is same.nets[1].encoder
    assert student(torch.zeros(5, 6), task=1).shape == (5, 3)


def test_distill_run_is_a_run_directory(tmp_path: Path, tiny_teachers: dict) -> None:
    teacher = tiny_teachers["cartpole-dqn"]
    res = drlzero.distill([teacher], out=tmp_path / "student", **FAST_DISTILL)
    run = res.run_dir
    for name in ("config.yaml", "metrics.csv", "eval.json", "distill.json"):
        assert (run / name).is_file(), name
    for name in ("best", "last"):
        assert (run / "checkpoints" / f"{name}.safetensors").is_file()
    report = json.loads((run / "distill.json").read_text())
    task = report["tasks"][0]
    # the teacher is the preset's 64x64 MLP: 4*64+64 + 64*64+64 + 64*2+2 = 4610 parameters
    assert task["teacher_params"] == 4610
    assert task["student_params"] == 4 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2
    assert report["param_ratio"] == pytest.approx(4610 / task["student_params"])
    for key in ("return_retention", "speedup_b1", "speedup_b256"):
        assert math.isfinite(task[key])
    ev = json.loads((run / "eval.json").read_text())
    assert ev["return_retention"] == task["return_retention"]
    agent = drlzero.load_agent(run)
    assert agent.act(np.zeros((3, 4), np.float32)).shape == (3,)
    # 'drlzero eval' reproduces the reported student return (same seed, same episodes)
    again = drlzero.evaluate(run, episodes=2, write=False)
    assert again["mean_return"] == pytest.approx(task["student_eval"]["mean_return"])


def test_distilling_a_masked_teacher_acts_and_evaluates_among_allowed_actions(
    tmp_path: Path,
) -> None:
    """drlzero-test/Forbidden-v0 raises on a forbidden action: a teacher trained with
    env.action_mask=info is distilled (teacher and student acting, random actions, every
    evaluation) without one."""
    teacher = train_masked_forbidden(tmp_path / "teacher")
    res = drlzero.distill([teacher], out=tmp_path / "student", **FAST_DISTILL)
    assert (res.run_dir / "distill.json").is_file()
    assert drlzero.evaluate(res.run_dir, episodes=2, write=False)["mean_return"] == 10.0


def test_multitask_distillation_acts_on_both_envs(tmp_path: Path, tiny_teachers: dict) -> None:
    teachers = [tiny_teachers["cartpole-dqn"], tiny_teachers["acrobot-dqn"]]
    settings = {**FAST_DISTILL, "total_steps": 300, "eval_freq": 0}
    res = drlzero.distill(teachers, out=tmp_path / "multi", **settings)
    report = res.report
    assert [t["env"] for t in report["tasks"]] == ["CartPole-v1", "Acrobot-v1"]
    # one shared 16x16 layer, counted once in the student
    per_task = sum(t["student_params"] for t in report["tasks"])
    assert report["student_params"] == per_task - (16 * 16 + 16)
    dirs = sorted((res.run_dir / "tasks").iterdir())
    assert [d.name for d in dirs] == ["0-CartPole-v1", "1-Acrobot-v1"]
    cart, acro = (drlzero.load_agent(d) for d in dirs)
    assert cart.act(np.zeros((2, 4), np.float32)).shape == (2,)
    assert set(acro.act(np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32))) <= {
        0,
        1,
        2,
    }
    assert drlzero.load_agent(res.run_dir).config.env.id == "CartPole-v1"  # top level: task 0
    for d in dirs:
        assert drlzero.evaluate(d, episodes=1, write=False)["episodes"] == 1


def test_cli_distill_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_teachers: dict
) -> None:
    assert main(["distill", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    teacher = str(tiny_teachers["cartpole-dqn"])
    assert main(["distill", teacher, "--loss", "l2", "--out", str(tmp_path / "s")]) == 2
    assert "--loss" in capsys.readouterr().err
    assert main(["distill", teacher, "--hidden", "a,b", "--out", str(tmp_path / "s")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.learning  # ~110 s of one core (teacher run + distillation)
def test_distilled_cartpole_student_keeps_95_percent(tmp_path: Path) -> None:
    """A 256x256 teacher solved to 475+ -> a 32x32 student (>= 10x fewer parameters) keeps
    >= 95% of its greedy return on the same 20 evaluation episodes."""
    teacher = drlzero.train(
        "cartpole-dqn",
        out=tmp_path / "teacher",
        overrides=["train.progress=false", "train.tensorboard=false", "encoder.hidden=[256,256]"],
    )
    assert teacher.best_eval_return >= 475
    res = drlzero.distill(
        [teacher.run_dir], out=tmp_path / "student", hidden=[32, 32], progress=False
    )
    assert res.report["param_ratio"] >= 10
    assert res.report["return_retention"] >= 0.95
