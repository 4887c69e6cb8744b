"""Learning tests: real reward thresholds on small envs."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from drlzero import evaluate, train
from drlzero.algos.dqn import DQNLearner, QPolicy
from drlzero.config import load_config
from drlzero.exploration import EpsilonGreedy, Softmax
from drlzero.nets.heads import DuelingHead, LinearHead
from drlzero.replay.storage import Batch
from drlzero.train.run import TrainResult


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cartpole_dqn_preset_solves(tmp_path: Path, fast: list[str], seed: int) -> None:
    """README: `cartpole-dqn` reaches a greedy mean return >= 475 within 50k env steps
    (5/5 seeds); three of them here."""
    result = train(
        load_config("cartpole-dqn", overrides=[*fast, f"train.seed={seed}"]), out=tmp_path / "run"
    )
    assert result.solved_at_step is not None, result.eval_history
    assert result.solved_at_step <= 50_000
    # the saved best checkpoint holds up on fresh evaluation seeds
    again = evaluate(result.run_dir, episodes=10, seed=123, write=False)
    assert again["mean_return"] >= 400


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(0, marks=pytest.mark.learning),
        *(pytest.param(s, marks=pytest.mark.slow) for s in (1, 2)),
    ],
)
def test_cartpole_rainbow_preset_solves_early(tmp_path: Path, fast: list[str], seed: int) -> None:
    """README: `cartpole-rainbow` reaches a greedy mean return >= 475 at 10k-15k env steps
    (3/3 seeds); seed 0 in the default run, all three with -m slow."""
    cfg = load_config("cartpole-rainbow", overrides=[*fast, f"train.seed={seed}"])
    result = train(cfg, out=tmp_path / "run")
    assert result.solved_at_step is not None, result.eval_history
    assert result.solved_at_step <= 15_000, result.eval_history


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Records what the real training loop builds: learners, policies, vector envs, every
    target sync (tau, target before, online, target after) and every Softmax draw."""
    seen: dict[str, list[Any]] = {"learners": [], "policies": [], "async": [], "syncs": []}
    seen["softmax_calls"] = []

    def recorder(cls: type, key: str) -> None:
        init = cls.__init__

        def record(self: object, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            seen[key].append(self)

        monkeypatch.setattr(cls, "__init__", record)

    recorder(DQNLearner, "learners")
    recorder(QPolicy, "policies")
    recorder(gym.vector.AsyncVectorEnv, "async")
    sync = DQNLearner.sync_target

    def record_sync(self: DQNLearner, tau: float | None = None) -> None:
        before = [p.detach().clone() for p in self.target_net.parameters()]
        online = [p.detach().clone() for p in self.q_net.parameters()]
        sync(self, tau)
        after = [p.detach().clone() for p in self.target_net.parameters()]
        seen["syncs"].append((tau, before, online, after))

    monkeypatch.setattr(DQNLearner, "sync_target", record_sync)
    draw = Softmax.__call__

    def record_draw(self: Softmax, q_BA: Any, step: int, *args: Any, **kwargs: Any) -> Any:
        seen["softmax_calls"].append(step)
        return draw(self, q_BA, step, *args, **kwargs)

    monkeypatch.setattr(Softmax, "__call__", record_draw)
    return seen


def _explore_column(run_dir: Path) -> dict[int, float]:
    with (run_dir / "metrics.csv").open() as f:
        return {int(r["step"]): float(r["explore"]) for r in csv.DictReader(f) if r["explore"]}


def _loss_by_hand(learner: DQNLearner, batch: Batch, *, double: bool, mse: bool) -> float:
    """The TD loss of the taken actions, written out: plain or Double target, MSE or Huber."""
    with torch.no_grad():
        gamma = learner.cfg.gamma
        next_t = learner.target_net(batch.next_obs)
        if double:
            a_star = learner.q_net(batch.next_obs).argmax(1, keepdim=True)
            next_v = next_t.gather(1, a_star).squeeze(1)
        else:
            next_v = next_t.max(1).values
        y = batch.rewards + gamma * (1 - batch.terminated) * next_v
        d = learner.q_net(batch.obs).gather(1, batch.actions[:, None]).squeeze(1) - y
        per = d**2 if mse else torch.where(d.abs() < 1, 0.5 * d**2, d.abs() - 0.5)
        return float(per.mean())


def _check_loss(learner: DQNLearner, *, double: bool, mse: bool) -> None:
    """One update on a case built so that the other target / loss kind gives another loss."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a target net that disagrees with the online one on argmax a'
        for p in learner.target_net.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    n = 64
    batch = Batch(
        torch.randn(n, 4, generator=g),
        torch.randint(0, 2, (n,), generator=g),
        10 * torch.randn(n, generator=g),  # large TD errors: Huber is linear there
        torch.randn(n, 4, generator=g),
        torch.zeros(n),
    )
    with torch.no_grad():
        picks = learner.q_net(batch.next_obs).argmax(1)
        assert (picks != learner.target_net(batch.next_obs).argmax(1)).any()
    want = _loss_by_hand(learner, batch, double=double, mse=mse)
    others = [
        _loss_by_hand(learner, batch, double=dd, mse=mm)
        for dd in (False, True)
        for mm in (False, True)
        if (dd, mm) != (double, mse)
    ]
    got = float(learner.update(batch)["loss"])
    assert got == pytest.approx(want, rel=1e-5)
    assert all(got != pytest.approx(o, rel=1e-3) for o in others)


def _check_dueling(seen: dict[str, list[Any]], result: TrainResult) -> None:
    (learner,) = seen["learners"]
    head = learner.q_net.head
    assert isinstance(head, DuelingHead)
    f = learner.q_net.encoder(torch.randn(5, 4))
    with torch.no_grad():  # Q = V + A - mean_a A, so mean_a Q = V
        torch.testing.assert_close(learner.q_net.head(f).mean(1, keepdim=True), head.value(f))
    _check_loss(learner, double=True, mse=False)  # the preset is Double DQN


def _check_rmsprop_mse_polyak(seen: dict[str, list[Any]], result: TrainResult) -> None:
    (learner,) = seen["learners"]
    opt = learner.optimizer
    assert isinstance(opt, torch.optim.RMSprop)
    group = opt.param_groups[0]
    assert (group["alpha"], group["centered"], group["eps"]) == (0.9, True, 0.01)
    (state,) = opt.state.values()
    assert int(state["step"]) == 128  # one phase of gradient_steps at vec step 256
    assert "grad_avg" in state  # centered RMSprop keeps the mean gradient too
    # The constructor's hard copy, then one Polyak step every 4 env steps: 400 / 4 of them.
    first, *polyak = seen["syncs"]
    assert first[0] == 1.0 and len(polyak) == 100
    for tau, before, online, after in polyak:
        assert tau is None  # the loop leaves it to dqn.tau
        for b, o, a in zip(before, online, after, strict=True):
            torch.testing.assert_close(a, b + 0.05 * (o - b))
    moved = [any(not torch.equal(b, a) for b, a in zip(s[1], s[3], strict=True)) for s in polyak]
    assert sum(moved) >= 30  # after the update phase the target really trails the online net
    _check_loss(learner, double=True, mse=True)  # the preset is Double DQN


def _check_softmax(seen: dict[str, list[Any]], result: TrainResult) -> None:
    (policy,) = seen["policies"]
    assert isinstance(policy.explorer, Softmax)
    assert seen["softmax_calls"] == list(range(400))  # every acting step drew from softmax
    # linear temperature from 1.0 to 0.05 over fraction 0.5 * 400 = 200 env steps
    logged = _explore_column(result.run_dir)
    assert set(logged) >= {50, 100, 150, 200, 400}
    for s, temp in logged.items():
        assert temp == pytest.approx(1.0 + min(s / 200, 1.0) * (0.05 - 1.0))
    assert logged[100] == pytest.approx(0.525)


def _check_async(seen: dict[str, list[Any]], result: TrainResult) -> None:
    assert seen["async"][0].num_envs == 4  # the training envs (greedy evaluation has its own)
    assert result.steps == 400  # 100 vector steps of 4 envs
    (learner,) = seen["learners"]
    # train_freq counts vector steps: 256 of them never happen in 100, so no update ran
    assert not learner.optimizer.state


def _check_exponential(seen: dict[str, list[Any]], result: TrainResult) -> None:
    (policy,) = seen["policies"]
    assert isinstance(policy.explorer, EpsilonGreedy)
    logged = _explore_column(result.run_dir)
    assert set(logged) >= {50, 100, 400}
    for s, eps in logged.items():  # 1.0 * 0.99^s, floored at the preset's end 0.04
        assert eps == pytest.approx(max(0.99**s, 0.04))
    assert logged[50] == pytest.approx(0.6050061)


def _check_double(seen: dict[str, list[Any]], result: TrainResult) -> None:
    (learner,) = seen["learners"]
    assert isinstance(learner.q_net.head, LinearHead)
    _check_loss(learner, double=True, mse=False)


OPTIONS: dict[str, tuple[list[str], Callable[[dict[str, list[Any]], TrainResult], None]]] = {
    "dueling": (["head.dueling=true"], _check_dueling),
    "rmsprop+mse+polyak": (
        [
            "dqn.optimizer=rmsprop",
            "dqn.rmsprop_alpha=0.9",
            "dqn.rmsprop_centered=true",
            "dqn.adam_eps=0.01",
            "dqn.loss=mse",
            "dqn.tau=0.05",
            "dqn.target_update_interval=4",
        ],
        _check_rmsprop_mse_polyak,
    ),
    "softmax": (
        [
            "exploration.kind=softmax",
            "exploration.start=1.0",
            "exploration.end=0.05",
            "exploration.fraction=0.5",
        ],
        _check_softmax,
    ),
    "async": (["env.num_envs=4", "env.vectorization=async"], _check_async),
    "exponential": (
        ["exploration.schedule=exponential", "exploration.decay=0.99"],
        _check_exponential,
    ),
    "double": (["dqn.double=true"], _check_double),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_dqn_options_take_effect(
    tmp_path: Path, fast: list[str], built: dict[str, list[Any]], option: str
) -> None:
    """Each option, set on the preset, reaches what the real loop builds and runs."""
    extra, check = OPTIONS[option]
    cfg = load_config(
        "cartpole-dqn",
        overrides=[
            *fast,
            *extra,
            "train.total_steps=400",
            "dqn.learning_starts=100",
            "train.eval_episodes=2",
            "train.log_freq=50",
        ],
    )
    result = train(cfg, out=tmp_path / "run")
    assert result.steps == 400 and (result.run_dir / "eval.json").is_file()
    check(built, result)


COMPONENTS = {
    "double+dueling": ["dqn.double=true", "head.dueling=true"],
    "prioritized": ["replay.prioritized=true"],
    "n-step": ["dqn.n_step=3"],
    "c51": ["head.distributional=c51", "head.v_min=0", "head.v_max=100"],
    "qr": ["head.distributional=qr"],
    "noisy": ["head.noisy=true", "exploration.start=0", "exploration.end=0"],
}


@pytest.mark.parametrize(
    "component",
    # n-step (~10 s) stands for the family in the default run; the rest are slow.
    [
        pytest.param(c, marks=pytest.mark.learning if c == "n-step" else pytest.mark.slow)
        for c in COMPONENTS
    ],
)
def test_each_dqn_family_component_learns_cartpole(
    tmp_path: Path, fast: list[str], component: str
) -> None:
    """Each Rainbow component alone on top of the cartpole-dqn preset reaches a greedy mean
    return of 200 (CartPole-v0's old solve line) within 40k env steps."""
    cfg = load_config(
        "cartpole-dqn",
        overrides=[
            *fast,
            *COMPONENTS[component],
            "train.total_steps=40000",
            "train.stop_return=200",
            "train.eval_freq=2000",
        ],
    )
    result = train(cfg, out=tmp_path / "run")
    assert result.solved_at_step is not None, (component, result.eval_history)
