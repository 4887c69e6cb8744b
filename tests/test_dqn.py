"""DQN: TD targets by hand, heads, the learner, and termination vs truncation in the real loop."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from drlzero import train
from drlzero.algos.dqn import DQNLearner, compile_setting, compiled, td_targets
from drlzero.config import DQNConfig, load_config
from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import ConfigError
from drlzero.nets.heads import DuelingHead, LinearHead, QNetwork
from drlzero.replay.storage import Batch


def test_td_targets_by_hand() -> None:
    r = torch.tensor([1.0, 2.0, 0.5])
    term = torch.tensor([0.0, 1.0, 0.0])
    next_q_target = torch.tensor([[1.0, 3.0], [10.0, 20.0], [4.0, -1.0]])
    # DQN: r + 0.9 * max_a Q'(s', a); no bootstrap on the terminal row
    y = td_targets(r, term, next_q_target, 0.9)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 3.0, 2.0, 0.5 + 0.9 * 4.0]))
    # Double DQN: the online net picks a*, the target net values it
    next_q_online = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    y = td_targets(r, term, next_q_target, 0.9, next_q_online)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 1.0, 2.0, 0.5 + 0.9 * -1.0]))


def test_dueling_head_is_identifiable() -> None:
    torch.manual_seed(0)
    head = DuelingHead(8, 3)
    f = torch.randn(5, 8)
    q = head(f)
    v = head.value(f)
    # mean over actions of Q equals V because the mean advantage is subtracted
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), v)


def _tiny_learner(cfg: DQNConfig) -> DQNLearner:
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)
    return DQNLearner(net, copy.deepcopy(net), cfg)


def test_learner_loss_matches_manual_computation() -> None:
    cfg = DQNConfig(gamma=0.5, lr=0.1, loss="mse", max_grad_norm=None)
    learner = _tiny_learner(cfg)
    net = learner.q_net
    batch = Batch(
        obs=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        actions=torch.tensor([0, 1]),
        rewards=torch.tensor([1.0, -1.0]),
        next_obs=torch.tensor([[0.0, 1.0], [1.0, 1.0]]),
        terminated=torch.tensor([0.0, 1.0]),
    )
    with torch.no_grad():
        q_sa = net(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
        y = batch.rewards + 0.5 * (1 - batch.terminated) * net(batch.next_obs).max(1).values
        expected = ((q_sa - y) ** 2).mean()
    stats = learner.update(batch)
    torch.testing.assert_close(stats["loss"], expected)
    # the target network did not move with the online one
    assert not torch.equal(learner.target_net.weight, net.weight)
    learner.sync_target(1.0)
    assert torch.equal(learner.target_net.weight, net.weight)


def test_polyak_update() -> None:
    learner = _tiny_learner(DQNConfig(tau=0.25))
    with torch.no_grad():
        learner.q_net.weight.fill_(1.0)
        learner.target_net.weight.fill_(0.0)
    learner.sync_target()
    torch.testing.assert_close(learner.target_net.weight, torch.full((2, 2), 0.25))


def _random_batch(n: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        torch.randn(n, 2, generator=g),
        torch.randint(0, 2, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, 2, generator=g),
        (torch.rand(n, generator=g) < 0.3).float(),
    )


def test_phase_of_gradient_steps_equals_one_step_at_a_time() -> None:
    """Batched target computation over G steps = G single steps with a fixed target."""
    cfg = DQNConfig(gamma=0.9, lr=0.01, double=True)
    a, b = _tiny_learner(cfg), _tiny_learner(cfg)
    batch = _random_batch(12)
    a.update_phase(batch, 3)
    for i in range(3):
        part = (None if x is None else x[i * 4 : (i + 1) * 4] for x in batch)
        b.update(Batch(*part))
    torch.testing.assert_close(a.q_net.weight, b.q_net.weight)


@pytest.mark.parametrize(("limit", "terminal"), [(3, False), (10, True)])
def test_truncation_bootstraps_and_termination_does_not(
    tmp_path: Path, fast: list[str], limit: int, terminal: bool
) -> None:
    """Run the real loop on Countdown(5): with a time limit of 3 every episode is truncated,
    with 10 every episode terminates. The stored transitions must say so, and keep the true
    final observation (not the autoreset one)."""
    cfg = load_config(
        None,
        overrides=[
            *fast,
            "env.id=drlzero-test/Countdown-v0",
            f"env.max_episode_steps={limit}",
            "env.num_envs=2",
            "train.total_steps=40",
            "train.eval_episodes=2",
            "dqn.learning_starts=1000",
            "encoder.hidden=[8]",
        ],
    )
    result = train(cfg, out=tmp_path / "run")
    t = load_file(str(result.run_dir / "checkpoints" / "last.safetensors"))
    obs, nxt = t["buffer.obs"][:, 0], t["buffer.next_obs"][:, 0]
    term = t["buffer.terminated"]
    torch.testing.assert_close(nxt, obs - 1)  # a real transition every time, even at the end
    ends = nxt == (0.0 if terminal else 5.0 - limit)
    assert ends.sum() >= 4
    assert bool((term[ends] == (1.0 if terminal else 0.0)).all())
    assert bool((term[~ends] == 0.0).all())
    # a truncated end bootstraps: its TD target includes gamma * V(s')
    y = td_targets(torch.ones(1), term[ends][:1], torch.tensor([[2.0, 4.0]]), 0.5)
    assert float(y) == (1.0 if terminal else 3.0)
    assert np.isclose(result.final_eval["mean_length"], min(limit, 5))
    # throughput is taken over the loop: the final eval, checkpoint and plot come after it
    assert result.loop_time_s is not None and 0 < result.loop_time_s < result.wall_time_s


@pytest.mark.slow
def test_compiled_update_matches_eager() -> None:
    """The compiled path (train.compile=true) gives the eager numbers on a fixed batch."""
    cfg = DQNConfig(gamma=0.9, lr=0.01, double=True)
    a, b = _tiny_learner(cfg), _tiny_learner(cfg)
    b.td_loss = compiled(b._td_loss)
    batch = _random_batch(12)
    sa = a.update_phase(batch, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb = b.update_phase(batch, 3)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    torch.testing.assert_close(sa["loss"], sb["loss"])
    torch.testing.assert_close(a.q_net.weight, b.q_net.weight)


def test_rmsprop_options_reach_the_optimizer() -> None:
    torch.manual_seed(0)
    net = QNetwork(MLPEncoder((3,), hidden=[8]), LinearHead(8, 2))
    cfg = DQNConfig(
        optimizer="rmsprop", lr=2.5e-4, adam_eps=0.01, rmsprop_alpha=0.95, rmsprop_centered=True
    )
    learner = DQNLearner(net, copy.deepcopy(net), cfg)
    group = learner.optimizer.param_groups[0]
    assert isinstance(learner.optimizer, torch.optim.RMSprop)
    assert (group["alpha"], group["centered"], group["eps"]) == (0.95, True, 0.01)
    with pytest.raises(ConfigError, match="rmsprop_alpha"):
        load_config("cartpole-dqn", overrides=["dqn.rmsprop_alpha=1.5"])


def test_cuda_graphs_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA graphs are torch.compile's reduce-overhead mode on CUDA; elsewhere a warning and
    the plain setting (the GPU path itself is not run here: no GPU in CI)."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert compile_setting(False, True, cuda) == "reduce-overhead"
    assert compile_setting(True, False, cuda) == "default"
    assert compile_setting(False, False, cuda) is False
    with pytest.warns(UserWarning, match="cuda_graphs needs a CUDA device.*eagerly"):
        assert compile_setting(False, True, cpu) is False
    with pytest.warns(UserWarning, match="without them"):
        assert compile_setting(True, True, cpu) == "default"
    seen: list[object] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append(kw["mode"]) or fn)
    compiled(lambda x: x, "reduce-overhead")
    compiled(lambda x: x, True)
    assert seen == ["reduce-overhead", None]
