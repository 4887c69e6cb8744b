"""The fast path (drlzero.accel) computes what the plain learners and policy compute: equal
weights after N updates on the same batches, equal greedy actions, one switch, one protocol."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import drlzero
from drlzero.accel import FastDQNLearner, FastQPolicy, FastRainbowLearner, accelerate
from drlzero.algos.base import Learner, QLearner
from drlzero.algos.dqn import DQNLearner, QPolicy
from drlzero.algos.rainbow import RainbowLearner
from drlzero.config import DQNConfig, HeadConfig, ReplayConfig, load_config
from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import CheckpointError, ConfigError
from drlzero.nets.heads import DuelingHead, LinearHead, QNetwork, build_head
from drlzero.replay.storage import Batch
from drlzero.train.checkpoint import load_optimizer, optimizer_tensors

FAST = ["train.progress=false", "train.tensorboard=false"]
OBS, ACTIONS = 4, 3


def _net(cfg: HeadConfig, rainbow: bool) -> QNetwork:
    torch.manual_seed(0)
    enc = MLPEncoder((OBS,), hidden=[16, 16])
    d = int(enc.features_dim)
    if rainbow:
        return QNetwork(enc, build_head(d, ACTIONS, cfg))
    return QNetwork(enc, (DuelingHead if cfg.dueling else LinearHead)(d, ACTIONS))


def _batch(n: int, seed: int, *, discounts: bool, weights: bool, masks: bool) -> Batch:
    g = torch.Generator().manual_seed(seed)
    next_mask = None
    if masks:  # each next state allows a random non-empty subset of the actions
        next_mask = torch.rand(n, ACTIONS, generator=g) < 0.6
        next_mask[torch.arange(n), torch.randint(0, ACTIONS, (n,), generator=g)] = True
    return Batch(
        torch.randn(n, OBS, generator=g),
        torch.randint(0, ACTIONS, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, OBS, generator=g),
        (torch.rand(n, generator=g) < 0.2).float(),
        torch.full((n,), 0.99**3) if discounts else None,  # gamma^m, m = 3
        next_mask,
        torch.rand(n, generator=g) + 0.5 if weights else None,
    )


CASES = {  # name: (dqn / head / replay keys, Rainbow learner?)
    "dqn": ({}, False),
    "double": ({"double": True}, False),
    "dueling": ({"dueling": True}, False),
    "double-dueling-masked": ({"double": True, "dueling": True}, False),
    "per": ({"prioritized": True}, True),
    "nstep": ({"n_step": 3}, True),
    "c51": ({"distributional": "c51", "num_atoms": 11, "v_min": -5.0, "v_max": 5.0}, True),
    "qr": ({"distributional": "qr", "num_atoms": 8, "double": True}, True),
    "noisy": ({"noisy": True, "dueling": True}, True),
    "rainbow": (
        {
            "prioritized": True,
            "n_step": 3,
            "distributional": "c51",
            "num_atoms": 11,
            "noisy": True,
            "double": True,
            "dueling": True,
        },
        True,
    ),
}


def _section(cls: type, over: dict[str, Any]) -> Any:
    """The ``cls`` section of a case: its own keys of ``over``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in over.items() if k in names}


def _train(case: str, fast: bool, phases: int = 4, steps: int = 3, b: int = 16) -> QLearner:
    """``phases`` training phases of ``steps`` updates each on fixed batches, target synced
    between phases (as the loop does); prioritized cases take one minibatch per update."""
    over, rainbow = CASES[case]
    cfg = DQNConfig(lr=1e-2, max_grad_norm=1.0, **_section(DQNConfig, over))
    replay = ReplayConfig(**_section(ReplayConfig, over))
    net = _net(HeadConfig(**_section(HeadConfig, over)), rainbow)
    cls, _ = accelerate(RainbowLearner if rainbow else DQNLearner, on=fast)
    learner = cls(net, copy.deepcopy(net), cfg)
    torch.manual_seed(1)  # the noise draws of noisy layers
    for i in range(phases):
        kw = {"discounts": rainbow, "masks": case.endswith("masked")}
        if replay.prioritized:
            for j in range(steps):
                learner.update(_batch(b, 10 * i + j, weights=True, **kw))
        else:
            learner.update_phase(_batch(steps * b, i, weights=False, **kw), steps)
        learner.sync_target()
    return learner


@pytest.mark.parametrize("case", list(CASES))
def test_fast_and_plain_learners_reach_the_same_weights(case: str) -> None:
    fast, plain = _train(case, fast=True), _train(case, fast=False)
    assert isinstance(fast, FastRainbowLearner if CASES[case][1] else FastDQNLearner)
    assert type(plain) in (DQNLearner, RainbowLearner)
    for net in ("q_net", "target_net"):
        pairs = zip(getattr(fast, net).parameters(), getattr(plain, net).parameters(), strict=True)
        for a, b in pairs:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    start = _net(HeadConfig(**_section(HeadConfig, CASES[case][0])), CASES[case][1])
    assert not all(  # the updates did move the weights
        torch.equal(a, b) for a, b in zip(start.parameters(), plain.q_net.parameters(), strict=True)
    )


def test_the_plain_dqn_step_is_the_textbook_one() -> None:
    """One plain update by hand: y = r + gamma (1 - d) max_a' Q_target(s', a'), MSE, one SGD
    step with lr 0.1 on a linear Q (Mnih et al. 2015)."""
    cfg = DQNConfig(gamma=0.5, lr=0.1, loss="mse", max_grad_norm=None, optimizer="rmsprop")
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    learner = DQNLearner(net, copy.deepcopy(net), cfg)
    learner.optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    batch = Batch(
        torch.tensor([[1.0, 1.0]]),
        torch.tensor([1]),
        torch.tensor([1.0]),
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([0.0]),
    )
    stats = learner.update(batch)
    # Q(s) = [1, 2], a = 1: Q(s, a) = 2; Q'(s') = [1, 0]: y = 1 + 0.5 * 1 = 1.5
    # loss = (2 - 1.5)^2 = 0.25; dL/dW[1] = 2 * 0.5 * s = [1, 1]; W[1] <- [0, 2] - 0.1 * [1, 1]
    assert float(stats["loss"]) == pytest.approx(0.25)
    assert float(stats["q_mean"]) == pytest.approx(2.0)
    torch.testing.assert_close(net.weight, torch.tensor([[1.0, 0.0], [-0.1, 1.9]]))


@pytest.mark.parametrize("dueling", [False, True])
def test_fast_and_plain_policies_act_greedily_alike(dueling: bool) -> None:
    net = _net(HeadConfig(dueling=dueling), rainbow=False)
    obs = np.random.default_rng(0).normal(size=(256, OBS)).astype(np.float32)
    mask = np.random.default_rng(1).random((256, ACTIONS)) < 0.7
    mask[np.arange(256), np.random.default_rng(2).integers(0, ACTIONS, 256)] = True
    cpu = torch.device("cpu")
    fast, plain = FastQPolicy(net, None, cpu), QPolicy(net, None, cpu)
    np.testing.assert_array_equal(fast.greedy(obs), plain.greedy(obs))
    np.testing.assert_array_equal(fast.greedy(obs, mask), plain.greedy(obs, mask))
    assert fast._numpy is not None  # the NumPy forward did act


def test_every_learner_is_a_learner() -> None:
    for case in ("dqn", "rainbow"):
        for fast in (True, False):
            assert isinstance(_train(case, fast, phases=1, steps=1), Learner)


def test_the_switch_picks_the_classes() -> None:
    assert load_config("cartpole-dqn").train.fast_path is True
    assert accelerate(DQNLearner, on=True) == (FastDQNLearner, FastQPolicy)
    assert accelerate(RainbowLearner, on=True) == (FastRainbowLearner, FastQPolicy)
    assert accelerate(DQNLearner, on=False) == (DQNLearner, QPolicy)


def test_compile_with_the_rainbow_learner_is_refused(tmp_path: Path) -> None:
    cfg = load_config(
        "cartpole-dqn",
        overrides=[*FAST, "replay.prioritized=true", "train.compile=true", "train.total_steps=10"],
    )
    with pytest.raises(ConfigError, match=r"set train\.compile=false"):
        drlzero.train(cfg, out=tmp_path / "run")
    net = _net(HeadConfig(), rainbow=True)
    with pytest.raises(ConfigError, match=r"set train\.cuda_graphs=false"):  # CUDA graphs
        RainbowLearner(net, copy.deepcopy(net), DQNConfig(n_step=3), compile="reduce-overhead")


def test_optimizer_state_of_the_other_path_is_refused() -> None:
    cfg, head = DQNConfig(), HeadConfig()
    learners = [
        cls(_net(head, False), _net(head, False), cfg) for cls in (FastDQNLearner, DQNLearner)
    ]
    for lrn in learners:  # one step: the optimizer has state
        lrn.update(_batch(8, 0, discounts=False, weights=False, masks=False))
    fast, plain = learners
    tensors, groups = optimizer_tensors(fast.optimizer)
    with pytest.raises(CheckpointError, match=r"train\.fast_path"):
        load_optimizer(plain.optimizer, tensors, groups)
    tensors, groups = optimizer_tensors(plain.optimizer)
    with pytest.raises(CheckpointError, match=r"train\.fast_path"):
        load_optimizer(fast.optimizer, tensors, groups)
    load_optimizer(plain.optimizer, tensors, groups)  # the same path loads


@pytest.mark.parametrize("preset", ["cartpole-dqn", "cartpole-rainbow"])
def test_a_short_run_is_the_same_with_and_without_the_fast_path(
    tmp_path: Path, preset: str
) -> None:
    """The real loop, both paths, one seed: the same batches and actions, so final weights
    equal up to float rounding."""
    finals = []
    for on in ("true", "false"):
        over = [
            *FAST,
            f"train.fast_path={on}",
            "train.total_steps=400",
            "train.eval_freq=0",
            "train.eval_episodes=1",
            "dqn.learning_starts=100",
            "dqn.train_freq=50",
            "dqn.gradient_steps=4",
        ]
        result = drlzero.train(preset, out=tmp_path / on, overrides=over)
        finals.append(load_file(str(result.run_dir / "checkpoints" / "last.safetensors")))
    fast, plain = finals
    for key in (k for k in fast if k.startswith("q.")):
        torch.testing.assert_close(fast[key], plain[key], rtol=1e-5, atol=1e-6)
