"""Ape-X on Ray and sweeps (issue 8): pure parts without Ray, then one shared local Ray.

The Ray tests share one module-scoped local Ray (a start costs ~5 s); the learning test is slow.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drlzero.cli import main
from drlzero.config import ReplayConfig, load_config
from drlzero.distributed.apex import (
    ReplayShard,
    Transitions,
    epsilon_ladder,
    target_sync_updates,
    updates_per_step,
    weights_checksum,
    weights_of,
)
from drlzero.errors import ConfigError
from drlzero.replay.storage import Batch

FAST = ["train.progress=false", "train.tensorboard=false"]


# -- no Ray needed ------------------------------------------------------------------------------
def test_epsilon_ladder_is_the_papers() -> None:
    assert epsilon_ladder(1) == [0.4]
    eps = epsilon_ladder(8, 0.4, 7.0)
    assert eps[0] == pytest.approx(0.4)
    assert eps[-1] == pytest.approx(0.4**8)
    assert eps[3] == pytest.approx(0.4 ** (1 + 3 / 7 * 7))
    assert all(a > b for a, b in itertools.pairwise(eps))


def test_learner_pace_matches_the_local_loop() -> None:
    cfg = load_config("cartpole-dqn")  # 128 gradient steps every 256 env steps, tui 10
    assert updates_per_step(cfg) == pytest.approx(0.5)
    assert target_sync_updates(cfg) == 128  # local loop: one sync per training phase
    cfg = load_config("cartpole-dqn", overrides=["distributed.updates_per_step=2"])
    assert updates_per_step(cfg) == 2.0


def _transitions(k: int, prio: np.ndarray) -> Transitions:
    obs = np.arange(k, dtype=np.float32)[:, None].repeat(4, 1)
    return Transitions(
        obs=obs,
        actions=np.zeros(k, np.int64),
        returns=np.ones(k, np.float32),
        next_obs=obs + 1,
        terminated=np.zeros(k, np.float32),
        discounts=np.full(k, 0.99, np.float32),
        priorities=prio.astype(np.float32),
    )


def test_replay_shard_samples_by_the_actors_priorities() -> None:
    shard = ReplayShard(16, (4,), np.dtype(np.float32), ReplayConfig(), total_steps=100, seed=0)
    prio = np.zeros(8)
    prio[5] = 100.0  # (100 + eps)^0.6 against (eps)^0.6: index 5 is almost always drawn
    assert shard.add(_transitions(8, prio)) == 8
    arrays, idx, weights = shard.sample(32, step=0)
    batch = Batch(*(torch.from_numpy(a) for a in arrays))
    assert (idx == 5).mean() > 0.9
    assert batch.obs[0, 0].item() == float(idx[0])
    assert batch.discounts is not None and torch.allclose(batch.discounts, torch.tensor(0.99))
    assert weights.shape == (32,)
    shard.update_priorities(np.array([5]), np.array([0.0]))
    tensors, meta = shard.state()
    other = ReplayShard(16, (4,), np.dtype(np.float32), ReplayConfig(), total_steps=100, seed=0)
    other.load_state(tensors, json.loads(json.dumps(meta)))
    assert other.size() == 8
    assert other.stats()["added"] == 8
    assert shard.stats()["calls"] == {"add": 1, "sample": 1, "update_priorities": 1}


def test_replay_shard_names_the_chunks_it_stored() -> None:
    shard = ReplayShard(16, (4,), np.dtype(np.float32), ReplayConfig(), total_steps=100, seed=0)
    shard.add(_transitions(3, np.ones(3)), 7)
    shard.add(_transitions(5, np.ones(5)), 9)
    shard.add(_transitions(2, np.ones(2)))  # no id: not tracked
    assert shard.delivered([7, 8, 9, -1]) == {7: 3, 9: 5}
    assert shard.stats()["added"] == 10


def test_lost_chunks_that_reached_replay_are_counted_as_unreported() -> None:
    """The learner's end-of-run reconciliation, with stand-ins for Ray and two shards: of
    three chunks whose actors died, one reached shard 1 before its report was lost."""
    from types import SimpleNamespace

    from drlzero.distributed.apex import ApexStats, ApexTrainer

    stored = [
        ReplayShard(64, (4,), np.dtype(np.float32), ReplayConfig(), total_steps=9, seed=0)
        for _ in range(2)
    ]
    stored[1].add(_transitions(8, np.ones(8)), 5)
    shards = [SimpleNamespace(delivered=SimpleNamespace(remote=s.delivered)) for s in stored]
    trainer = ApexTrainer.__new__(ApexTrainer)
    trainer.cfg = load_config(
        "cartpole-dqn", overrides=["env.num_envs=2", "distributed.chunk_steps=4"]
    )
    trainer.ray = SimpleNamespace(get=lambda x: x)
    trainer.shards = shards
    trainer.stats = ApexStats(actor_restarts=3, lost_chunks=3, lost_steps_at_most=3 * 8)
    trainer._lost = [2, 5, 9]
    trainer._reconcile_lost()
    st = trainer.stats
    assert (st.lost_chunks, st.lost_steps_at_most) == (2, 16)
    assert (st.unreported_chunks, st.unreported_transitions) == (1, 8)
    trainer._reconcile_lost()  # nothing left to reconcile: unchanged
    assert (st.lost_chunks, st.unreported_chunks) == (2, 1)


def test_weights_checksum_follows_the_weights() -> None:
    net = torch.nn.Linear(3, 2)
    before = weights_checksum(weights_of(net))
    assert before == weights_checksum(weights_of(net))
    with torch.no_grad():
        net.bias += 1.0
    assert weights_checksum(weights_of(net)) != before


def test_apex_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"distributed\.actors"):
        load_config("cartpole-dqn", overrides=["distributed.mode=apex", "distributed.actors=0"])
    with pytest.raises(ConfigError, match="algo=dqn"):
        load_config("taxi-sarsa", overrides=["distributed.mode=apex"])
    with pytest.raises(ConfigError, match=r"distributed\.mode"):
        load_config("cartpole-dqn", overrides=["distributed.mode=impala"])


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "cartpole-dqn", "--actors", "2"],
        ["train", "cartpole-dqn", "--distributed", "apex", "--actors", "0"],
        ["train", "cartpole-dqn", "--ray-address", "auto"],
        ["sweep", "cartpole-dqn", "--seeds", "a,b"],
        ["sweep", "cartpole-dqn", "--seeds", "1,1"],
        ["sweep", "cartpole-dqn", "--grid", "dqn.lr"],
        ["sweep", "cartpole-dqn", "--grid", "dqn.nope=1,2"],
    ],
)
def test_bad_flags_are_one_line_errors(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("drlzero: error:") and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_unknown_distributed_mode_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "cartpole-dqn", "--distributed", "horovod"])
    assert exc.value.code == 2


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_missing_ray_names_the_extra(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    extra = ["--distributed", "apex"] if command == "train" else ["--seeds", "1"]
    assert main([command, "cartpole-dqn", *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "drlzero[ray]" in err and "\n" not in err
    assert not (tmp_path / "x" / "config.yaml").exists()


# -- one local Ray for the rest -----------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray")
    from drlzero.distributed import init_ray

    init_ray(None, object_store_mb=128)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def apex_run(local_ray, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A short 2-actor run in which actor 0 is killed once, mid-run."""
    from drlzero.distributed.apex import ApexTrainer, train_apex
    from drlzero.train.run import new_run_dir

    cfg = load_config(
        "cartpole-dqn",
        overrides=[
            *FAST,
            "distributed.mode=apex",
            "distributed.actors=2",
            "env.num_envs=4",
            "distributed.chunk_steps=16",
            "distributed.publish_interval=4",
            "train.total_steps=2000",
            "train.eval_freq=1000",
            "train.eval_episodes=2",
            "train.stop_return=null",
            "dqn.learning_starts=300",
        ],
    )
    run_dir = new_run_dir(cfg, tmp_path_factory.mktemp("apex") / "run")
    killed: list[int] = []

    def kill_once(trainer: ApexTrainer) -> None:
        if not killed and trainer.step >= 600:
            killed.append(trainer.step)
            local_ray.kill(trainer.actors[0])

    result = train_apex(cfg, run_dir, on_chunk=kill_once)
    return result, killed


def test_apex_writes_the_run_directory(apex_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = apex_run
    run = result.run_dir
    for name in ("config.yaml", "metrics.csv", "episodes.csv", "eval.json", "learning_curve.png"):
        assert (run / name).is_file(), name
    for name in ("last", "best"):
        assert (run / "checkpoints" / f"{name}.safetensors").is_file()
    assert result.steps >= 2000
    assert json.loads((run / "eval.json").read_text())["step"] == result.steps


def test_killed_actor_is_replaced_and_nothing_delivered_is_lost(apex_run) -> None:  # type: ignore[no-untyped-def]
    result, killed = apex_run
    stats = json.loads((result.run_dir / "distributed.json").read_text())
    assert killed and stats["actor_restarts"] == 1
    # the killed actor's chunk was lost, or reached replay before its report was lost
    assert stats["lost_chunks"] + stats["unreported_chunks"] == 1
    assert stats["lost_steps_at_most"] == stats["lost_chunks"] * 16 * 4  # 16 vector steps x 4 envs
    assert stats["unreported_transitions"] == stats["unreported_chunks"] * 16 * 4
    # one-step transitions: every counted env step is in replay, after the clean stop's drain
    assert stats["env_steps"] == result.steps
    added = sum(r["added"] for r in stats["replay"])
    assert added == stats["env_steps"] + stats["unreported_transitions"]


def test_actors_act_with_the_published_weights(apex_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = apex_run
    stats = json.loads((result.run_dir / "distributed.json").read_text())
    assert stats["weights_published"] > 2
    assert stats["checksum_matches"] == stats["chunks"] > 0
    assert stats["checksum_mismatches"] == 0
    # both actors (the replacement too) moved past the initial weights
    assert min(stats["actor_versions"].values()) > 0


@pytest.mark.slow
def test_apex_resume_continues_the_run(apex_run) -> None:  # type: ignore[no-untyped-def]
    from drlzero.api import train

    result, _ = apex_run
    more = train(resume=result.run_dir, total_steps=3000)
    assert more.steps >= 3000
    stats = json.loads((result.run_dir / "distributed.json").read_text())
    # the replay came back from the checkpoint: one transition per env step, old and new
    assert sum(r["added"] for r in stats["replay"]) == more.steps


def test_sweep_of_two_seeds(local_ray, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from drlzero.distributed.sweep import sweep

    out = tmp_path / "sweep"
    summary = sweep(
        "cartpole-dqn",
        seeds=[1, 2],
        overrides=[
            *FAST,
            "train.total_steps=400",
            "dqn.learning_starts=100",
            "train.eval_freq=200",
            "train.eval_episodes=2",
        ],
        out=out,
    )
    for seed in (1, 2):
        assert (out / f"default-s{seed}" / "eval.json").is_file()
    for name in ("summary.csv", "summary.json", "curves.png"):
        assert (out / name).is_file(), name
    (row,) = summary["settings"]
    assert row["seeds"] == [1, 2] and len(row["final_returns"]) == 2
    assert row["mean_return"] == pytest.approx(np.mean(row["final_returns"]))
    assert json.loads((out / "summary.json").read_text()) == summary


@pytest.mark.slow
def test_apex_learns_cartpole(local_ray, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from drlzero.api import train

    cfg = load_config(
        "cartpole-dqn",
        overrides=[
            *FAST,
            "distributed.mode=apex",
            "distributed.actors=2",
            "distributed.max_update_lag=64",  # 2 cores: keep actors from starving the learner
        ],
    )
    result = train(cfg, out=tmp_path / "learn")
    assert result.best_eval_return >= 475
