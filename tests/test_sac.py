"""SAC: targets, the tanh-Gaussian density, alpha tuning, Polyak averaging, action bounds,
exact resume, bad inputs, the continuous ArmReach env and a Pendulum learning test."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from drlzero import evaluate, load_agent, train
from drlzero.algos.sac import (
    SACLearner,
    SACPolicy,
    TanhGaussianActor,
    actor_loss,
    alpha_loss,
    build_actor,
    build_critic,
    critic_targets,
    polyak_update,
    tanh_gaussian_log_prob,
    tanh_log_det_jacobian,
    to_env_action,
)
from drlzero.config import SACConfig, load_config
from drlzero.errors import ConfigError
from drlzero.replay.storage import Batch, ReplayStorage

TINY = [
    "train.progress=false",
    "train.tensorboard=false",
    "train.eval_episodes=2",
    "sac.batch_size=32",
    "sac.learning_starts=100",
    "encoder.hidden=[32,32]",
]


def _pendulum(*extra: str) -> list[str]:
    return ["algo=sac", "env.id=Pendulum-v1", *TINY, *extra]


# ----------------------------------------------------------------------------- pure math


def test_critic_target_by_hand() -> None:
    r = torch.tensor([1.0, -2.0, 0.5])
    term = torch.tensor([0.0, 1.0, 0.0])
    q1 = torch.tensor([3.0, 10.0, -1.0])
    q2 = torch.tensor([4.0, 9.0, -2.0])
    logp = torch.tensor([-1.0, 0.3, 2.0])
    y = critic_targets(r, term, q1, q2, logp, alpha=0.2, gamma=0.9)
    # 1 + 0.9 * (3 - 0.2 * -1) = 3.88; terminal: -2; 0.5 + 0.9 * (-2 - 0.2 * 2) = -1.66
    torch.testing.assert_close(y, torch.tensor([3.88, -2.0, -1.66]))


def test_actor_loss_by_hand() -> None:
    loss = actor_loss(
        torch.tensor([1.0, 5.0]), torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 1.0]), 0.5
    )
    # mean(0.5 * -1 - 1, 0.5 * 1 - 4) = mean(-1.5, -3.5) = -2.5
    assert loss.item() == pytest.approx(-2.5)


def test_tanh_log_prob_matches_change_of_variables() -> None:
    torch.manual_seed(0)
    mean = torch.randn(64, 3, dtype=torch.float64)
    log_std = torch.rand(64, 3, dtype=torch.float64) - 1.0
    u = mean + log_std.exp() * torch.randn(64, 3, dtype=torch.float64)
    ours = tanh_gaussian_log_prob(u, mean, log_std)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.TanhTransform()],
    )
    torch.testing.assert_close(ours, dist.log_prob(torch.tanh(u)).sum(-1))
    # and against the density p_a(a) = p_u(u) / |da/du| with da/du by finite differences
    h = 1e-6
    dadu = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)
    by_fd = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u) - dadu.log()).sum(-1)
    torch.testing.assert_close(ours, by_fd, rtol=1e-6, atol=1e-6)


def test_tanh_log_prob_integrates_to_one() -> None:
    """Monte-Carlo free check of a 1-D density: the trapezoid integral over (-1, 1) is 1."""
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)
    u = torch.atanh(a)
    mean, log_std = torch.tensor([[0.3]]), torch.tensor([[-0.5]])
    p = tanh_gaussian_log_prob(u[:, None], mean.double(), log_std.double()).exp()
    assert torch.trapezoid(p, a).item() == pytest.approx(1.0, abs=1e-3)


def test_tanh_jacobian_stays_finite_where_tanh_saturates() -> None:
    u = torch.tensor([0.0, 5.0, 30.0, -30.0])
    out = tanh_log_det_jacobian(u)
    assert torch.isfinite(out).all()
    naive = torch.log(1 - torch.tanh(u[:2]) ** 2)
    torch.testing.assert_close(out[:2], naive, rtol=1e-4, atol=1e-4)
    assert out[2].item() == pytest.approx(2 * (math.log(2) - 30.0), abs=1e-5)  # naive: -inf


def test_alpha_loss_sign_raises_alpha_when_entropy_is_low() -> None:
    for logp, direction in ((torch.tensor([3.0, 2.0]), 1), (torch.tensor([-5.0, -4.0]), -1)):
        log_alpha = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([log_alpha], lr=0.1)
        # target entropy -1; entropy -logp: 2.5 below vs. 4.5 above the target -> grad sign
        loss = alpha_loss(log_alpha, logp, target_entropy=-1.0)
        loss.backward()
        assert log_alpha.grad.item() == pytest.approx(-(logp.mean().item() - 1.0))
        opt.step()
        assert np.sign(log_alpha.item()) == direction


def test_polyak_update_by_hand() -> None:
    src, tgt = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        src.weight.fill_(1.0)
        src.bias.fill_(2.0)
        tgt.weight.fill_(0.0)
        tgt.bias.fill_(-2.0)
    polyak_update(tgt, src, 0.25)
    torch.testing.assert_close(tgt.weight, torch.full((1, 2), 0.25))
    torch.testing.assert_close(tgt.bias, torch.tensor([-1.0]))
    polyak_update(tgt, src, 1.0)
    torch.testing.assert_close(tgt.bias, torch.tensor([2.0]))


# ----------------------------------------------------------------------------- actor, bounds


def _actor(obs_dim: int = 3, act_dim: int = 2) -> TanhGaussianActor:
    cfg = load_config(None, overrides=["algo=sac", "encoder.hidden=[16]"])
    obs = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    return build_actor(cfg, obs, gym.spaces.Box(-1, 1, (act_dim,), np.float32))


def test_actions_within_asymmetric_bounds() -> None:
    torch.manual_seed(0)
    actor = _actor()
    with torch.no_grad():
        actor.mean.bias.fill_(50.0)  # saturate tanh: the squashed action rounds to exactly 1
    space = gym.spaces.Box(np.array([0.0, -5.0], np.float32), np.array([2.0, -1.0], np.float32))
    policy = SACPolicy(actor, space, torch.device("cpu"))
    obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32) * 10
    for a in (policy.env_action(policy.explore(obs)), policy.deterministic(obs)):
        assert a.dtype == np.float32 and a.shape == (256, 2)
        assert all(space.contains(x) for x in a)
    corners = to_env_action(np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]), space.low, space.high)
    np.testing.assert_allclose(corners, [[0.0, -5.0], [2.0, -1.0], [1.0, -3.0]])


def test_sample_log_prob_is_the_density_of_the_sampled_action() -> None:
    torch.manual_seed(1)
    actor = _actor()
    obs = torch.randn(8, 3)
    torch.manual_seed(2)
    a, logp = actor.sample(obs)
    mean, log_std = actor.dist_params(obs)
    torch.manual_seed(2)
    u = mean + log_std.exp() * torch.randn_like(mean)  # the same draw
    torch.testing.assert_close(a, torch.tanh(u))
    torch.testing.assert_close(logp, tanh_gaussian_log_prob(u, mean, log_std))
    torch.testing.assert_close(actor.deterministic(obs), torch.tanh(mean))


def test_critic_reads_obs_and_action() -> None:
    cfg = load_config(None, overrides=["algo=sac", "encoder.hidden=[16,16]"])
    obs = gym.spaces.Box(-1, 1, (3,), np.float32)
    critic = build_critic(cfg, obs, gym.spaces.Box(-1, 1, (2,), np.float32))
    q1, q2 = critic(torch.zeros(4, 3), torch.ones(4, 2))
    assert q1.shape == q2.shape == (4,)
    assert critic.q1.encoder.net[1].in_features == 5  # the MLP reads [s, a]
    assert not torch.equal(q1, q2)  # independent initialisations


def test_float_action_replay_keeps_int_default() -> None:
    box = ReplayStorage(10, (3,), action_shape=(2,), action_dtype=np.float32)
    box.add(
        np.ones((2, 3)), np.array([[0.5, -0.25], [1, 0]]), np.zeros(2), np.ones((2, 3)), np.zeros(2)
    )
    b = box.gather(np.array([0, 1]))
    assert b.actions.dtype == torch.float32 and b.actions.shape == (2, 2)
    assert b.actions[0].tolist() == [0.5, -0.25]
    assert ReplayStorage(10, (3,)).actions.dtype == np.int64


def _learner(*overrides: str) -> tuple[SACLearner, ReplayStorage]:
    import copy

    cfg = load_config(None, overrides=["algo=sac", "encoder.hidden=[8]", *overrides])
    obs, act = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    actor, critic = build_actor(cfg, obs, act), build_critic(cfg, obs, act)
    target = copy.deepcopy(critic).requires_grad_(False)
    buf = ReplayStorage(64, (3,), action_shape=(2,), action_dtype=np.float32)
    rng = np.random.default_rng(0)
    buf.add(
        rng.normal(size=(64, 3)),
        rng.uniform(-1, 1, (64, 2)),
        rng.normal(size=64),
        rng.normal(size=(64, 3)),
        np.zeros(64),
    )
    return SACLearner(actor, critic, target, cfg.sac, 2), buf


def test_policy_frequency_delays_and_repeats_actor_steps() -> None:
    learner, buf = _learner("sac.policy_frequency=3")
    seen = []
    for _ in range(6):
        stats = learner.update(buf.sample(16))
        seen.append("actor_loss" in stats)
        state = learner.actor_opt.state
        seen[-1] = (seen[-1], int(next(iter(state.values()))["step"]) if state else 0)
    # actor phases after critic steps 3 and 6, three actor steps each
    assert seen == [(False, 0), (False, 0), (True, 3), (False, 3), (False, 3), (True, 6)]
    assert learner.target_entropy == -2.0


def test_fixed_alpha_without_autotune() -> None:
    learner, buf = _learner("sac.autotune=false", "sac.init_alpha=0.2")
    for _ in range(3):
        stats = learner.update(buf.sample(16))
    assert stats["alpha"].item() == pytest.approx(0.2)
    assert "alpha_loss" not in stats


@pytest.mark.parametrize(
    "overrides",
    [
        ("encoder.hidden=[16,16]",),
        ("encoder.hidden=[16,16]", "sac.policy_frequency=2", "sac.autotune=false"),
        # tanh critics are not the batched ReLU layout: flat weights and module forwards
        ("encoder.hidden=[16]", "encoder.activation=tanh"),
    ],
)
def test_fast_learner_gives_the_plain_learners_weights(overrides: tuple[str, ...]) -> None:
    """train.fast_path's SAC learner computes the same steps: after 12 updates on the same
    batches and noise, every weight, target weight and log alpha agree. Float32 matmuls of
    another shape round differently, and Adam's normalised step turns a rounding-level change of
    a near-zero gradient into a step of size lr; a large Adam eps makes the step proportional to
    the gradient, so only rounding-level differences remain."""
    import copy

    from drlzero.accel import FastSACLearner

    cfg = load_config(None, overrides=["algo=sac", "sac.adam_eps=1.0", *overrides])
    obs, act = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    g = torch.Generator().manual_seed(3)
    batches = [
        Batch(
            torch.randn(32, 3, generator=g),
            torch.rand(32, 2, generator=g) * 2 - 1,
            torch.randn(32, generator=g),
            torch.randn(32, 3, generator=g),
            (torch.rand(32, generator=g) < 0.2).float(),
        )
        for _ in range(12)
    ]
    learners = []
    for cls in (SACLearner, FastSACLearner):
        torch.manual_seed(0)
        actor = build_actor(cfg, obs, act)
        critic = build_critic(cfg, obs, act)
        target = copy.deepcopy(critic).requires_grad_(False)
        learner = cls(actor, critic, target, cfg.sac, 2)
        torch.manual_seed(1)
        for b in batches:
            learner.update(b)
        learners.append(learner)
    plain, fast = learners
    for name in ("actor", "critic", "critic_target"):
        want, got = getattr(plain, name).state_dict(), getattr(fast, name).state_dict()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-7, msg=k)
    torch.testing.assert_close(fast.log_alpha, plain.log_alpha, rtol=1e-6, atol=1e-8)
    assert fast.critic_updates == plain.critic_updates == 12


@pytest.mark.parametrize("hidden", ["[256,256]", "[24,16,8]"])
def test_hand_written_gradients_equal_autograd(hidden: str) -> None:
    """The fast path's chain rule (critic step and actor step) gives autograd's gradients of the
    same losses, with the log-std clamp at 2 active on part of the batch and the two critics
    each the smaller on some samples. (Not at the clamp's floor: with std = e^-20, ``u - m``
    rounds away next to ``m``, and autograd's two large Gaussian terms no longer cancel; the
    hand-written gradient drops them exactly.)"""
    import copy

    from drlzero.accel import FastSACLearner

    cfg = load_config(None, overrides=["algo=sac", f"encoder.hidden={hidden}"])
    obs, act = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    torch.manual_seed(0)
    actor, critic = build_actor(cfg, obs, act), build_critic(cfg, obs, act)
    with torch.no_grad():  # push some raw log-stds past the clamp's top
        actor.log_std.bias.copy_(torch.tensor([3.0, -1.0]))
        actor.log_std.weight.mul_(30.0)
    copies = [(copy.deepcopy(actor), copy.deepcopy(critic)) for _ in range(2)]
    plain = SACLearner(*copies[0], copy.deepcopy(critic).requires_grad_(False), cfg.sac, 2)
    fast = FastSACLearner(*copies[1], copy.deepcopy(critic).requires_grad_(False), cfg.sac, 2)
    assert fast.manual is not None
    g = torch.Generator().manual_seed(4)
    s_B3, a_B2, y_B = (
        torch.randn(64, 3, generator=g),
        torch.rand(64, 2, generator=g) * 2 - 1,
        torch.randn(64, generator=g),
    )
    got, want = fast._critic_backward(s_B3, a_B2, y_B), plain._critic_backward(s_B3, a_B2, y_B)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y)
    for name, p in plain.critic.named_parameters():
        q = dict(fast.critic.named_parameters())[name]
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    raw = plain.actor.log_std(plain.actor.encoder(s_B3))
    assert (raw > 2.0).any() and (raw < 2.0).any()
    results = []
    for learner in (plain, fast):
        torch.manual_seed(5)  # the same noise for the actions
        results.append(learner._actor_backward(s_B3))
    for x, y in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    for name, p in plain.actor.named_parameters():
        q = dict(fast.actor.named_parameters())[name]
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    with torch.no_grad():  # which critic is the smaller differs across the batch
        pi = torch.tanh(plain.actor.dist_params(s_B3)[0])
        q1, q2 = plain.critic(s_B3, pi)
    assert (q1 < q2).any() and (q2 < q1).any()


# ----------------------------------------------------------------------------- bad inputs


def test_sac_on_discrete_space_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = load_config(None, overrides=["algo=sac", "env.id=CartPole-v1", *TINY])
    with pytest.raises(ConfigError, match="algo=dqn") as exc:
        train(cfg, out=tmp_path / "r")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "override", ["sac.tau=0", "sac.gamma=1.5", "sac.policy_frequency=0", "sac.learning_starts=-1"]
)
def test_bad_sac_values(override: str) -> None:
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(None, overrides=["algo=sac", override])


def test_sac_config_defaults() -> None:
    s = SACConfig()
    assert s.target_entropy is None and s.autotune and s.tau == 0.005


# ----------------------------------------------------------------------------- runs


def _weights(run: Path) -> dict[str, torch.Tensor]:
    t = load_file(str(run / "checkpoints" / "last.safetensors"))
    return {k: v for k, v in t.items() if not k.startswith("loop.")}


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """N steps, checkpoint, resume to 2N  ==  2N straight (weights, optimizers, log alpha,
    RNGs, replay, episodes)."""
    cfg = _pendulum("train.eval_freq=300", "train.log_freq=300", "sac.policy_frequency=2")
    full = train(load_config(None, overrides=[*cfg, "train.total_steps=600"]), out=tmp_path / "f")
    half = train(load_config(None, overrides=[*cfg, "train.total_steps=300"]), out=tmp_path / "h")
    assert half.steps == 300
    resumed = train(resume=tmp_path / "h", total_steps=600)
    assert resumed.steps == full.steps == 600
    assert (tmp_path / "h" / "episodes.csv").read_text() == (
        tmp_path / "f" / "episodes.csv"
    ).read_text()
    wa, wb = _weights(tmp_path / "h"), _weights(tmp_path / "f")
    assert wa.keys() == wb.keys()
    assert {"log_alpha", "actor_opt.optim.0.exp_avg", "buffer.actions"} <= wa.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert resumed.final_eval == full.final_eval


def test_run_eval_and_load_agent(tmp_path: Path) -> None:
    cfg = load_config(None, overrides=_pendulum("train.total_steps=250", "train.eval_freq=0"))
    result = train(cfg, out=tmp_path / "r")
    agent = load_agent(result.run_dir)
    obs = np.zeros((3, 3), np.float32)
    a = agent.act(obs)
    assert a.shape == (3, 1) and np.all(np.abs(a) <= 2.0)
    np.testing.assert_array_equal(a, agent.act(obs))  # deterministic
    out = evaluate(result.run_dir, episodes=2)
    assert out["episodes"] == 2 and out["mean_length"] == 200


@pytest.mark.slow  # stops at 3k env steps (-226, seed 0); 455 s on the busy shared 2-core CPU
def test_pendulum_sac_learns(tmp_path: Path) -> None:
    cfg = load_config(
        "pendulum-sac",
        overrides=[
            "train.progress=false",
            "train.tensorboard=false",
            "train.stop_return=-250",
            "train.eval_freq=1000",
            "train.total_steps=10000",
        ],
    )
    result = train(cfg, out=tmp_path / "run")
    assert result.best_eval_return >= -250


# ----------------------------------------------------------------------------- ArmReach


def test_arm_reach_continuous_env() -> None:
    pytest.importorskip("mujoco")
    from gymnasium.utils.env_checker import check_env

    from drlzero.envs.baselines import get_baseline
    from drlzero.envs.scenarios.arm_reach import ContinuousTorques

    env = gym.make("drlzero/ArmReachContinuous-v0")
    layer = env
    while not isinstance(layer, ContinuousTorques):
        layer = layer.env  # type: ignore[attr-defined]
    check_env(layer, skip_render_check=True)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    obs, _ = env.reset(seed=0)
    disc = gym.make("drlzero/ArmReach-v0")
    obs_d, _ = disc.reset(seed=0)
    np.testing.assert_array_equal(obs, obs_d)  # the same task
    # zero torque in both: the same step, reward and success
    step_c, step_d = env.step(np.zeros(2, np.float32)), disc.step(12)
    np.testing.assert_array_equal(step_c[0], step_d[0])
    assert step_c[1] == step_d[1] and step_c[4]["is_success"] == step_d[4]["is_success"]
    pd = get_baseline("drlzero/ArmReachContinuous-v0", "pd")(np.stack([obs, obs]))
    assert pd.shape == (2, 2) and env.action_space.contains(pd[0])


def test_cli_train_eval_record_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from drlzero.cli import main

    out = tmp_path / "run"
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--total-steps", "220"]
    assert main([*args, "--out", str(out), "--no-progress", *TINY[1:], "train.eval_freq=0"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    gif = tmp_path / "ep.gif"
    assert main(["record", str(out), "--episodes", "1", "--out", str(gif)]) == 0
    assert gif.stat().st_size > 0
    assert main(["report", str(out), "--max-steps", "30"]) == 0  # SAC: the actions, plotted
    page = (out / "report.html").read_text()
    assert "the actions along the episode" in page and "no per-action scores" in page
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "sac" in listing and "pendulum-sac" in listing
    assert "ArmReachContinuous-v0" in listing
