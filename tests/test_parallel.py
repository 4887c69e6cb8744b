"""Data-parallel learning with Lightning Fabric (``train.devices``): one DQN update and one PPO
update on 2 gloo processes, each on half of every minibatch, give the weights of one process
on the whole minibatch; the configurations that cannot run data-parallel are refused in one
line; a whole tiny run on 2 processes follows the 1-process run (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import drlzero
from drlzero.algos.dqn import DQNLearner
from drlzero.algos.ppo import Minibatch, PPOLearner, build_actor_critic
from drlzero.config import load_config
from drlzero.errors import ConfigError
from drlzero.nets import build_q_network
from drlzero.replay.storage import Batch

B = 32  # minibatch rows (16 per process)


def _spaces() -> tuple[Any, Any]:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    return env.observation_space, env.action_space


def _dqn_learner() -> DQNLearner:
    cfg = load_config("cartpole-dqn", overrides=["train.fast_path=false"])
    obs_space, act_space = _spaces()
    torch.manual_seed(0)
    q_net = build_q_network(cfg, obs_space, act_space)
    target = build_q_network(cfg, obs_space, act_space)
    return DQNLearner(q_net, target, cfg.dqn)


def _dqn_batch() -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(
        obs=torch.randn(B, 4, generator=g),
        actions=torch.randint(0, 2, (B,), generator=g),
        rewards=torch.rand(B, generator=g),
        next_obs=torch.randn(B, 4, generator=g),
        terminated=(torch.rand(B, generator=g) < 0.2).float(),
    )


def _ppo_learner() -> PPOLearner:
    cfg = load_config("cartpole-ppo", overrides=["ppo.n_epochs=2"])
    obs_space, act_space = _spaces()
    torch.manual_seed(0)
    return PPOLearner(build_actor_critic(cfg, obs_space, act_space), cfg.ppo)


def _ppo_minibatches() -> list[Minibatch]:
    g = torch.Generator().manual_seed(2)
    return [
        Minibatch(
            obs=torch.randn(B, 4, generator=g),
            actions=torch.randint(0, 2, (B,), generator=g),
            logp=-torch.rand(B, generator=g) - 0.3,
            values=torch.randn(B, generator=g),
            advantages=torch.randn(B, generator=g) * 2 + 0.5,
            returns=torch.randn(B, generator=g),
            masks=None,
        )
        for _ in range(2)
    ]


def _flat(module: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()


def _steps(dp: Any) -> dict[str, np.ndarray]:
    """One DQN update and one PPO update (2 epochs of 2 minibatches), with ``dp`` or alone."""
    torch.set_num_threads(1)
    dqn = _dqn_learner()
    dqn.dp = dp
    dqn_stats = dqn.update(_dqn_batch())
    ppo = _ppo_learner()
    ppo.dp = dp
    ppo_stats = ppo.update(_ppo_minibatches)
    return {
        "dqn": _flat(dqn.q_net),
        "ppo": _flat(ppo.net),
        "dqn_loss": np.array(float(dqn_stats["loss"])),
        "ppo_kl": np.array(ppo_stats["approx_kl"]),
    }


def _rank(fabric: Any) -> dict[str, np.ndarray]:
    from drlzero.train.parallel import FabricDataParallel

    dp = FabricDataParallel(fabric)
    return {**_steps(dp), "rows": dp.take(torch.arange(B)).numpy()}


def test_two_gloo_processes_on_half_batches_equal_one_process_on_the_whole() -> None:
    pytest.importorskip("lightning_fabric")
    from lightning_fabric import Fabric

    single = _steps(None)
    # fork: the workers inherit the imported modules (spawn re-imports torch: ~10 s more)
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_fork", precision="32-true")
    parallel = fabric.launch(_rank)
    np.testing.assert_array_equal(parallel["rows"], np.arange(B // 2))  # rank 0: the first half
    before = _flat(_dqn_learner().q_net)
    assert not np.allclose(single["dqn"], before)  # the update moved the weights
    for key in ("dqn", "ppo", "dqn_loss", "ppo_kl"):
        np.testing.assert_allclose(parallel[key], single[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["train.devices=2"], "train.fast_path=false"),
        (["algo=ppo", "train.devices=2"], "train.fast_path=false"),
        (["train.devices=2", "train.fast_path=false", "dqn.batch_size=63"], "multiple of"),
        (["train.devices=2", "train.fast_path=false", "replay.prioritized=true"], "Rainbow"),
        (["train.devices=0"], "train.devices=0 must be > 0"),
        (["train.precision=fp8"], "train.precision='fp8' is not one of"),
        (["train.strategy=ddp"], "train.strategy='ddp' is not one of"),
        (["algo=sac", "env.id=Pendulum-v1", "train.devices=2"], "algo=dqn or ppo"),
    ],
)
def test_refused_settings(overrides: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("[", r"\[")):
        load_config("cartpole-dqn", overrides=overrides)


def test_missing_fabric_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from drlzero.cli import main

    monkeypatch.setitem(sys.modules, "lightning_fabric", None)
    out = tmp_path / "run"
    args = ["train", "cartpole-dqn", "train.devices=2", "train.fast_path=false"]
    code = main([*args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "drlzero[fabric]" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_run_on_two_processes_follows_the_one_process_run(tmp_path: Path) -> None:
    pytest.importorskip("lightning_fabric")
    tiny = [
        "train.progress=false",
        "train.tensorboard=false",
        "train.fast_path=false",
        "train.total_steps=1500",
        "dqn.learning_starts=500",
        "train.eval_freq=500",
        "train.eval_episodes=2",
    ]
    one = drlzero.train("cartpole-dqn", out=tmp_path / "one", overrides=tiny)
    two = drlzero.train("cartpole-dqn", out=tmp_path / "two", overrides=[*tiny, "train.devices=2"])
    assert [e["mean_return"] for e in two.eval_history] == [
        e["mean_return"] for e in one.eval_history
    ]
    assert json.loads((two.run_dir / "eval.json").read_text())["step"] == 1500
    assert not (two.run_dir / ".ranks").exists()


@pytest.mark.slow
def test_a_lora_encoder_run_on_two_processes_follows_the_one_process_run(tmp_path: Path) -> None:
    """The large-model path: DQN through all-MiniLM-L6-v2 with LoRA (babyai-goto-lora), each
    update on 2 processes with half-batches, ends with the adapters and head of the 1-process
    run up to float rounding, and the same evaluation."""
    pytest.importorskip("lightning_fabric")
    pytest.importorskip("peft")
    tiny = [
        "train.progress=false",
        "train.tensorboard=false",
        "train.fast_path=false",
        "train.total_steps=200",
        "dqn.learning_starts=100",
        "train.eval_freq=0",
        "train.eval_episodes=2",
        "train.strategy=ddp_fork",
    ]
    one = drlzero.train("babyai-goto-lora", out=tmp_path / "one", overrides=tiny)
    two = drlzero.train(
        "babyai-goto-lora", out=tmp_path / "two", overrides=[*tiny, "train.devices=2"]
    )
    assert two.final_eval["mean_return"] == one.final_eval["mean_return"]
    from safetensors.torch import load_file

    a = load_file(str(one.run_dir / "checkpoints" / "last.safetensors"))
    b = load_file(str(two.run_dir / "checkpoints" / "last.safetensors"))
    trained = [k for k in a if k.startswith("q.") and ("lora" in k or "head" in k)]
    assert trained
    for k in trained:
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
