"""Trajectory datasets: collect from random, baseline and trained policies; lazy, pickle-free
loading with the right shapes and episode boundaries; CLI bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_masked_forbidden

from drlzero.cli import main
from drlzero.config import EnvConfig
from drlzero.data import TrajectoryDataset, collect, open_collection
from drlzero.errors import UserError


def _check_episode_structure(ds: TrajectoryDataset) -> None:
    steps = 0
    for ep in ds.episodes():
        t = len(ep)
        steps += t
        assert ep.obs.shape[0] == t + 1  # T actions, T+1 observations
        ends = ep.terminated | ep.truncated
        assert ends[-1] and not ends[:-1].any()  # exactly the last step ends the episode
    assert steps == len(ds) == ds.num_steps


def test_random_dataset_round_trip(tmp_path: Path) -> None:
    [path] = collect(["CartPole-v1"], "random", out=tmp_path / "ds", episodes=4, num_envs=2)
    ds = TrajectoryDataset.open(path)
    m = ds.manifest
    assert m["format"] == "drlzero-trajectories" and m["format_version"] == 1
    assert m["env"]["id"] == "CartPole-v1" and m["policy"] == {"kind": "random", "epsilon": 0.0}
    assert m["observation_space"]["shape"] == [4] and m["action_space"]["n"] == 2
    assert ds.num_episodes == 4 and m["seed"] == 0
    _check_episode_structure(ds)
    # lazy: arrays are memory maps; nothing on disk needs pickle
    assert isinstance(ds.shards[0].array("obs"), np.memmap)
    for f in path.rglob("*.npy"):
        assert np.load(f, allow_pickle=False).dtype != object
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pt"))
    # transitions: next_obs is the following observation of the same episode
    everything = next(ds.transitions(batch_size=10_000))
    assert everything.obs.shape == (len(ds), 4) and everything.actions.shape == (len(ds),)
    ep0 = ds.episode(0)
    n0 = len(ep0)
    assert np.array_equal(everything.obs[:n0].numpy(), ep0.obs[:-1])
    assert np.array_equal(everything.next_obs[:n0].numpy(), ep0.obs[1:])
    assert (everything.episode_ids[:n0] == 0).all() and everything.episode_ids[n0] == 1
    batch = ds.sample(32, np.random.default_rng(0))
    assert isinstance(batch.obs, torch.Tensor) and batch.obs.shape == (32, 4)
    assert batch.rewards.dtype == torch.float32 and batch.terminated.dtype == torch.bool


def test_steps_budget_cuts_the_last_episode(tmp_path: Path) -> None:
    [path] = collect(["CartPole-v1"], "random", out=tmp_path / "ds", steps=50, seed=3)
    ds = TrajectoryDataset.open(path)
    assert len(ds) == 50 and ds.manifest["cut_episodes"] == 1
    _check_episode_structure(ds)
    last = ds.episode(ds.num_episodes - 1)
    assert last.truncated[-1] and not last.terminated[-1]


def test_same_seed_same_data(tmp_path: Path) -> None:
    a = collect(["CartPole-v1"], "random", out=tmp_path / "a", episodes=3, seed=5)[0]
    b = collect(["CartPole-v1"], "random", out=tmp_path / "b", episodes=3, seed=5)[0]
    for name in ("obs", "actions", "rewards"):
        x = np.load(a / "shard-00000" / f"{name}.npy", allow_pickle=False)
        y = np.load(b / "shard-00000" / f"{name}.npy", allow_pickle=False)
        assert np.array_equal(x, y)


def test_baseline_dataset_with_epsilon(tmp_path: Path) -> None:
    [path] = collect(
        ["drlzero/CatchBall-v0"], "baseline:intercept", out=tmp_path / "ds", episodes=3, epsilon=0.2
    )
    ds = TrajectoryDataset.open(path)
    assert ds.manifest["policy"] == {"kind": "baseline", "name": "intercept", "epsilon": 0.2}
    _check_episode_structure(ds)
    assert not ds.has_q_values


@pytest.mark.parametrize("policy,epsilon", [("random", 0.0), ("baseline:random", 0.5)])
def test_collect_obeys_action_masks(tmp_path: Path, policy: str, epsilon: float) -> None:
    """With env.action_mask=info every collected action is allowed (the env raises otherwise);
    without it the same env soon gets a forbidden one."""
    env = EnvConfig(id="drlzero-test/Forbidden-v0", action_mask="info")
    [path] = collect([env], policy, out=tmp_path / "m", steps=300, epsilon=epsilon, num_envs=2)
    assert TrajectoryDataset.open(path).num_steps == 300
    with pytest.raises(AssertionError, match="forbidden action"):
        collect(["drlzero-test/Forbidden-v0"], policy, out=tmp_path / "u", steps=300)


def test_collect_from_a_masked_run_takes_its_masked_greedy_actions(tmp_path: Path) -> None:
    run = train_masked_forbidden(tmp_path / "run")
    [path] = collect([], str(run), out=tmp_path / "ds", steps=200, checkpoint="last")
    ds = TrajectoryDataset.open(path)
    assert ds.num_steps == 200 and ds.has_q_values


def test_trained_run_dataset_stores_q_values(tmp_path: Path, tiny_teachers: dict) -> None:
    run = tiny_teachers["cartpole-dqn"]
    [path] = collect(None, str(run), out=tmp_path / "ds", episodes=2)  # the run's own env
    ds = TrajectoryDataset.open(path)
    assert ds.env_id == "CartPole-v1" and ds.manifest["policy"]["kind"] == "run"
    _check_episode_structure(ds)
    q = ds.q_values(np.arange(len(ds)))
    assert q.shape == (len(ds), 2)
    # greedy (epsilon 0): every action is the argmax of the stored q-values
    actions = next(ds.transitions(10_000)).actions
    assert torch.equal(q.argmax(1), actions)


def test_several_envs_make_a_collection(tmp_path: Path) -> None:
    paths = collect(["CartPole-v1", "Acrobot-v1"], "random", out=tmp_path / "ds", steps=30)
    sets = open_collection(tmp_path / "ds")
    assert sorted(sets) == ["Acrobot-v1", "CartPole-v1"] and len(paths) == 2
    assert sets["Acrobot-v1"].sample(4).obs.shape == (4, 6)
    with pytest.raises(UserError, match="several datasets"):
        TrajectoryDataset.open(tmp_path / "ds")


def test_cli_collect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    args = ["collect", "--env", "CartPole-v1", "--policy", "random", "--episodes", "2"]
    assert main([*args, "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["episodes"] == 2 and Path(line["path"]) == out


@pytest.mark.parametrize(
    "policy, fragment",
    [
        ("/no/such/run", "unknown policy"),
        ("greedy", "unknown policy"),
        ("baseline:x", "no baseline"),
    ],
)
def test_cli_collect_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, fragment: str
) -> None:
    args = ["collect", "--env", "CartPole-v1", "--policy", policy, "--episodes", "1"]
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err
