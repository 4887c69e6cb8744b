"""PPO: GAE and loss terms by hand, distributions, masks, the loop, resume, bad inputs."""

from __future__ import annotations

import csv
import importlib
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import drlzero
from drlzero.accel import FastPPOLearner, FastPPOPolicy
from drlzero.algos.ppo import (
    ActorCritic,
    Minibatch,
    PPOLearner,
    PPOPolicy,
    build_actor_critic,
    gae,
    ppo_loss,
)
from drlzero.cli import main
from drlzero.config import load_config
from drlzero.encoders.mlp import MLPEncoder
from drlzero.errors import ConfigError, UserError
from drlzero.rollout import RewardScaler, RolloutBuffer, RunningMeanStd

# ---------------------------------------------------------------------------------------------
# Test envs


class MaskedChoice(gym.Env):
    """Discrete(4); each state allows a random non-empty subset, reported in info and in the
    observation. Taking a forbidden action raises, so a training run proves masks are obeyed."""

    def __init__(self, in_obs: bool = False) -> None:
        self.in_obs = in_obs
        box = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
        self.observation_space = (
            gym.spaces.Dict({"obs": box, "action_mask": gym.spaces.MultiBinary(4)})
            if in_obs
            else box
        )
        self.action_space = gym.spaces.Discrete(4)
        self.mask = np.ones(4, np.int8)

    def _out(self) -> tuple[object, dict]:
        self.mask = self.np_random.integers(0, 2, 4).astype(np.int8)
        self.mask[self.np_random.integers(4)] = 1
        obs = self.mask.astype(np.float32)
        if self.in_obs:
            return {"obs": obs, "action_mask": self.mask.copy()}, {}
        return obs, {"action_mask": self.mask.astype(bool)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._out()

    def step(self, action):
        if not self.mask[int(action)]:
            raise AssertionError(f"masked action {action} taken under mask {self.mask}")
        obs, info = self._out()
        return obs, float(action == 3), False, False, info


class BadMask(MaskedChoice):
    def _out(self):
        obs, _ = super()._out()
        return obs, {"action_mask": np.ones(5, bool)}


class MultiChoice(gym.Env):
    """MultiDiscrete([3, 2]); reward 1 per sub-action that equals its target 0."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        assert action.shape == (2,)
        return np.zeros(3, np.float32), float((np.asarray(action) == 0).sum()), False, False, {}


class SetObs(MultiChoice):
    """A set of 3 tokens of width 4 (for the transformer encoder), Discrete(2) actions."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3, 4), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((3, 4), np.float32), {}

    def step(self, action):
        return np.zeros((3, 4), np.float32), float(action), False, False, {}


class TupleActions(MultiChoice):
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))


for _id, _cls, _kw in (
    ("drlzero-test/MaskedChoice-v0", MaskedChoice, {}),
    ("drlzero-test/MaskedChoiceObs-v0", MaskedChoice, {"in_obs": True}),
    ("drlzero-test/BadMask-v0", BadMask, {}),
    ("drlzero-test/MultiChoice-v0", MultiChoice, {}),
    ("drlzero-test/TupleActions-v0", TupleActions, {}),
    ("drlzero-test/SetObs-v0", SetObs, {}),
):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, kwargs=_kw, max_episode_steps=10)

PPO = ["algo=ppo", "ppo.n_steps=16", "ppo.num_minibatches=2", "ppo.n_epochs=2"]


def _run(tmp_path: Path, fast: list[str], *extra: str, name: str = "run") -> drlzero.TrainResult:
    overrides = [*fast, *PPO, "train.eval_episodes=2", "train.eval_freq=0", *extra]
    return drlzero.train(load_config(None, overrides=overrides), out=tmp_path / name)


# ---------------------------------------------------------------------------------------------
# GAE and loss by hand


def test_gae_by_hand_truncation_and_termination() -> None:
    # gamma 0.9, lambda 0.8. Step 1 is truncated (bootstraps from V(final obs) = 10), step 3
    # terminates (its final value 99 must be ignored), V(s_T) = 7 is then unused.
    #   deltas: t3 = 4 - 2 = 2;  t2 = 3 + 0.9*2 - 1.5 = 3.3;  t1 = 2 + 0.9*10 - 1 = 10;
    #           t0 = 1 + 0.9*1 - 0.5 = 1.4
    #   A3 = 2;  A2 = 3.3 + 0.72*2 = 4.74;  A1 = 10 (episode ended);  A0 = 1.4 + 0.72*10 = 8.6
    buf = RolloutBuffer(4, 1, (1,), np.dtype(np.float32), (), torch.int64)
    values = [0.5, 1.0, 1.5, 2.0]
    term = [False, False, False, True]
    ended = [False, True, False, True]
    finals = [0.0, 10.0, 0.0, 99.0]
    for t in range(4):
        buf.add(
            np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.array([values[t]]),
            np.array([t + 1.0]), np.array([term[t]]), np.array([ended[t]]), np.array([finals[t]]),
        )  # fmt: skip
    buf.finish(np.array([7.0]), gamma=0.9, lam=0.8)
    np.testing.assert_allclose(buf.advantages[:, 0].numpy(), [8.6, 10.0, 4.74, 2.0], rtol=1e-6)
    np.testing.assert_allclose(buf.returns[:, 0].numpy(), [9.1, 11.0, 6.24, 4.0], rtol=1e-6)


def test_gae_bootstraps_last_value_and_lambda_one_is_monte_carlo() -> None:
    # no episode end: A_t with lambda 1 is the discounted return plus gamma^k V(s_T) minus V(s_t)
    r = torch.tensor([[1.0], [1.0]])
    v = torch.tensor([[0.0], [0.0]])
    nxt = torch.tensor([[0.0], [5.0]])  # V(s_1) = 0 as stored, V(s_T) = 5
    no = torch.zeros(2, 1, dtype=torch.bool)
    adv, ret = gae(r, v, nxt, no, no, 0.5, 1.0)
    # A1 = 1 + 0.5*5 = 3.5;  A0 = 1 + 0.5*0 + 0.5*3.5 = 2.75
    np.testing.assert_allclose(adv[:, 0].numpy(), [2.75, 3.5])
    np.testing.assert_allclose(ret[:, 0].numpy(), [2.75, 3.5])


def test_ppo_loss_terms_by_hand() -> None:
    new_logp = torch.log(torch.tensor([1.5, 0.5]))
    args = dict(
        old_logp_B=torch.zeros(2),
        adv_B=torch.tensor([1.0, -1.0]),
        new_value_B=torch.tensor([1.0, 2.0]),
        old_value_B=torch.tensor([0.5, 2.5]),
        returns_B=torch.tensor([2.0, 1.0]),
        entropy_B=torch.tensor([1.0, 0.5]),
        clip_coef=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
    )
    t = ppo_loss(new_logp, clip_vloss=True, norm_adv=False, **args)
    # ratios 1.5 and 0.5 both leave [0.8, 1.2]: pg = mean(max(-1.5, -1.2), max(0.5, 0.8)) = -0.2
    assert t.pg_loss.item() == pytest.approx(-0.2)
    # clipped values 0.7 and 2.3 are both further off: 0.5 * 1.69
    assert t.v_loss.item() == pytest.approx(0.845)
    assert t.entropy.item() == pytest.approx(0.75)
    assert t.loss.item() == pytest.approx(-0.2 - 0.0075 + 0.5 * 0.845)
    kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2
    assert t.approx_kl.item() == pytest.approx(kl)
    assert t.clipfrac.item() == 1.0
    t2 = ppo_loss(new_logp, clip_vloss=False, norm_adv=True, **args)
    assert t2.v_loss.item() == pytest.approx(0.5)
    # normalised advantages +-1/sqrt(2): pg = mean(-1.2, 0.8) / sqrt(2)
    assert t2.pg_loss.item() == pytest.approx(-0.2 / math.sqrt(2), rel=1e-6)


def test_loss_gradient_is_zero_outside_the_clip_range() -> None:
    new_logp = torch.log(torch.tensor([1.5])).requires_grad_()
    t = ppo_loss(
        new_logp, torch.zeros(1), torch.ones(1), torch.zeros(1), torch.zeros(1), torch.zeros(1),
        torch.zeros(1), clip_coef=0.2, clip_vloss=False, ent_coef=0.0, vf_coef=0.0,
        norm_adv=False,
    )  # fmt: skip
    t.loss.backward()
    assert new_logp.grad is not None and new_logp.grad.item() == 0.0


# ---------------------------------------------------------------------------------------------
# Distributions and masks


def _net(space: gym.Space, **kw: object) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(MLPEncoder((4,), hidden=[8]), None, space, **kw)  # type: ignore[arg-type]


def test_gaussian_log_prob_entropy_and_clipping() -> None:
    space = gym.spaces.Box(-0.5, 0.5, (2,), np.float32)
    net = _net(space, log_std_init=math.log(0.5))
    with torch.no_grad():
        net.policy_head.weight.zero_()
        net.policy_head.bias.copy_(torch.tensor([0.1, -0.2]))
    dist, _ = net(torch.zeros(1, 4))
    # each dim is 1 std away: -0.5 - log 0.5 - 0.5 log(2 pi), summed over 2 dims
    per_dim = -0.5 - math.log(0.5) - 0.5 * math.log(2 * math.pi)
    assert dist.log_prob(torch.tensor([[0.6, 0.3]])).item() == pytest.approx(2 * per_dim)
    assert dist.entropy().item() == pytest.approx(
        2 * (0.5 + 0.5 * math.log(2 * math.pi) + math.log(0.5))
    )
    policy = PPOPolicy(net, space, torch.device("cpu"))
    np.testing.assert_allclose(policy.env_actions(np.array([[0.6, -0.9]])), [[0.5, -0.5]])
    np.testing.assert_allclose(
        policy.greedy(np.zeros((1, 4), np.float32)), [[0.1, -0.2]], rtol=1e-6
    )


def test_orthogonal_init_gains() -> None:
    net = _net(gym.spaces.Discrete(3))
    w = net.policy_head.weight.detach()  # (3, 8): orthogonal rows scaled by 0.01
    np.testing.assert_allclose((w @ w.T).numpy(), 1e-4 * np.eye(3), atol=1e-9)
    v = net.value_head.weight.detach()
    assert float(v.norm()) == pytest.approx(1.0, rel=1e-5)
    assert float(net.policy_head.bias.detach().abs().sum()) == 0.0


def test_discrete_start_offset_reaches_the_env_only() -> None:
    space = gym.spaces.Discrete(3, start=-1)
    policy = PPOPolicy(_net(space), space, torch.device("cpu"))
    np.testing.assert_array_equal(policy.env_actions(np.array([0, 2])), [-1, 1])


def test_multidiscrete_log_prob_is_sum_of_parts() -> None:
    net = _net(gym.spaces.MultiDiscrete([3, 2]))
    dist, _ = net(torch.zeros(1, 4))
    logits = net.policy_head(net.encoder(torch.zeros(1, 4)))
    a = torch.tensor([[2, 1]])
    expect = torch.log_softmax(logits[:, :3], 1)[0, 2] + torch.log_softmax(logits[:, 3:], 1)[0, 1]
    assert dist.log_prob(a).item() == pytest.approx(expect.item(), rel=1e-6)
    assert dist.sample().shape == (1, 2)


@pytest.mark.parametrize("policy_cls", [PPOPolicy, FastPPOPolicy])
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_masked_actions_are_never_chosen(
    policy_cls: type[PPOPolicy], envs: int, actions: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((envs, actions)) < 0.5
    mask[np.arange(envs), rng.integers(0, actions, envs)] = True
    torch.manual_seed(seed)
    net = ActorCritic(MLPEncoder((3,), hidden=[8]), None, gym.spaces.Discrete(actions))
    with torch.no_grad():  # large logits, so a leak of probability to masked actions would show
        net.policy_head.weight.mul_(1000.0)
    policy = policy_cls(net, gym.spaces.Discrete(actions), torch.device("cpu"))
    obs = rng.normal(size=(envs, 3)).astype(np.float32)
    for _ in range(20):
        a, logp, _ = policy.act(obs, mask)
        assert mask[np.arange(envs), a].all()
        assert np.isfinite(logp).all()
    assert mask[np.arange(envs), policy.greedy(obs, mask)].all()
    dist, _ = net(torch.as_tensor(obs), torch.as_tensor(mask))
    probs = dist.cats[0].probs.detach().numpy()
    assert (probs[~mask] == 0).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32)],
    ids=["discrete-masked", "box"],
)
def test_fast_path_gives_the_plain_steps_and_draws(space: gym.Space) -> None:
    """train.fast_path's PPO learner and actor compute what the plain ones do: the same
    actions, log-probs and values from the same seed, and the same weights after 3 epochs of
    2 minibatches (a large Adam eps keeps the step proportional to the gradient, so the
    rounding of differently ordered float32 sums cannot be amplified into lr-sized steps)."""
    cfg = load_config(None, overrides=["algo=ppo", "ppo.n_epochs=3", "ppo.adam_eps=1.0"])
    discrete = isinstance(space, gym.spaces.Discrete)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(16, 4, generator=g)
    mask = (torch.rand(16, 3, generator=g) < 0.7) | (torch.arange(3) == 0) if discrete else None
    nets, acted = [], []
    for policy_cls in (PPOPolicy, FastPPOPolicy):
        torch.manual_seed(0)
        net = ActorCritic(MLPEncoder((4,), hidden=[8, 8]), MLPEncoder((4,), hidden=[8]), space)
        policy = policy_cls(net, space, torch.device("cpu"))
        torch.manual_seed(1)
        acted.append(policy.act(obs.numpy(), None if mask is None else mask.numpy()))
        acted[-1] += (policy.value(obs.numpy()),)
        nets.append(net)
    for want, got in zip(*acted, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    actions = torch.as_tensor(acted[0][0])
    if discrete:
        assert mask is not None and mask[torch.arange(16), actions].all()
    logp, values = torch.as_tensor(acted[0][1]), torch.as_tensor(acted[0][2])
    adv, ret = torch.randn(16, generator=g), torch.randn(16, generator=g)
    halves = [slice(0, 8), slice(8, 16)]

    def epoch() -> list[Minibatch]:
        return [
            Minibatch(obs[i], actions[i], logp[i], values[i], adv[i], ret[i], None)
            if mask is None
            else Minibatch(obs[i], actions[i], logp[i], values[i], adv[i], ret[i], mask[i])
            for i in halves
        ]

    init = {k: v.clone() for k, v in nets[0].state_dict().items()}
    stats = []
    for learner_cls, net in zip((PPOLearner, FastPPOLearner), nets, strict=True):
        stats.append(learner_cls(net, cfg.ppo).update(epoch))
    for k, v in stats[0].items():
        assert stats[1][k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    want, got = nets[0].state_dict(), nets[1].state_dict()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-7, msg=k)
    assert all(not torch.equal(want[k], init[k]) for k in want if k != "log_std")


# ---------------------------------------------------------------------------------------------
# Normalisers


def test_running_mean_std_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 2))
    rms = RunningMeanStd((2,))
    for chunk in np.split(x, 5):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rms.var, x.var(0), rtol=1e-4)


def test_reward_scaler_divides_by_return_std_and_resets_at_episode_end() -> None:
    sc = RewardScaler(1, 0.5, enabled=True, clip=10.0)
    # return 2, its running std ~0 (one sample): 2 / ~0.022 is clipped to 10
    assert sc(np.array([2.0]), np.array([False]))[0] == pytest.approx(10.0)
    # return 0.5*2 + 2 = 3; std of {2, 3} = 0.5 -> 2 / 0.5 = 4; the episode ends: return reset
    assert sc(np.array([2.0]), np.array([True]))[0] == pytest.approx(4.0, rel=1e-3)
    assert sc.returns_E[0] == 0.0
    assert sc(np.array([-1.0]), np.array([False]))[0] < 0  # scaled, not centred: sign survives


# ---------------------------------------------------------------------------------------------
# The loop


def test_truncation_bootstraps_from_the_true_final_obs(tmp_path: Path, fast, monkeypatch) -> None:
    """Countdown(5) under a 3-step limit truncates with final obs [2]; the stored final value
    must be V([2]) (the true last state), not V of the next episode's first obs [5]."""
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    original = RolloutBuffer.add

    def spy(self, obs, actions, logp, values, rewards, terminated, ended, final_values, mask=None):
        seen.append((np.array(ended), np.array(terminated), np.array(final_values)))
        return original(self, obs, actions, logp, values, rewards, terminated, ended,
                        final_values, mask)  # fmt: skip

    monkeypatch.setattr(RolloutBuffer, "add", spy)
    nets: list[ActorCritic] = []
    real_build = build_actor_critic

    def keep(*a, **k):
        nets.append(real_build(*a, **k))
        return nets[-1]

    monkeypatch.setattr(
        importlib.import_module("drlzero.train.onpolicy"), "build_actor_critic", keep
    )
    _run(tmp_path, fast, "env.id=drlzero-test/Countdown-v0", "env.max_episode_steps=3",
         "train.total_steps=16", "ppo.anneal_lr=false", "ppo.lr=1e-12")  # fmt: skip
    ended_steps = [i for i, (e, _, _) in enumerate(seen) if e[0]]
    assert ended_steps == [2, 5, 8, 11, 14]
    with torch.no_grad():
        v2 = nets[0].value(torch.tensor([[2.0]])).item()
    for i in ended_steps:
        assert not seen[i][1][0]  # truncated, not terminated
        assert seen[i][2][0] == pytest.approx(v2, abs=1e-4)


@pytest.mark.parametrize(
    "env_id,extra",
    [
        ("CartPole-v1", []),
        ("drlzero-test/MultiChoice-v0", []),
        ("Pendulum-v1", ["ppo.normalize_obs=true", "ppo.normalize_reward=true"]),
        ("drlzero-test/MaskedChoice-v0", ["ppo.shared_encoder=true", "env.action_mask=info"]),
        ("drlzero-test/MaskedChoiceObs-v0", ["env.action_mask=obs:action_mask"]),
        ("drlzero-test/SetObs-v0", ["encoder.name=transformer", "encoder.d_model=16"]),
    ],
)
def test_smoke_each_action_space(tmp_path: Path, fast, env_id: str, extra: list[str]) -> None:
    result = _run(tmp_path, fast, f"env.id={env_id}", "env.num_envs=2", "train.total_steps=64",
                  *extra)  # fmt: skip
    assert result.steps == 64
    assert np.isfinite(result.final_eval["mean_return"])
    agent = drlzero.load_agent(result.run_dir)
    out = drlzero.evaluate(result.run_dir, episodes=2)
    assert out["episodes"] == 2
    assert agent.masked == any(e.startswith("env.action_mask=") for e in extra)
    with (result.run_dir / "metrics.csv").open() as f:
        assert any(row["loss"] for row in csv.DictReader(f))


@pytest.mark.parametrize(
    "preset,needs",
    [
        ("cartpole-ppo", None),
        ("acrobot-ppo", None),
        ("lunarlander-ppo", "Box2D"),
        ("catchball-ppo", None),
        ("minatar-breakout-ppo", "minatar"),
        ("armreach-ppo", "mujoco"),
    ],
)
def test_each_ppo_preset_runs_one_short_rollout(
    tmp_path: Path, fast, preset: str, needs: str | None
) -> None:
    if needs is not None:
        pytest.importorskip(needs)
    cfg = load_config(preset)
    steps = 4 * cfg.env.num_envs
    overrides = [*fast, "ppo.n_steps=4", "ppo.num_minibatches=2", "ppo.n_epochs=1",
                 f"train.total_steps={steps}", "train.eval_episodes=1"]  # fmt: skip
    result = drlzero.train(load_config(preset, overrides=overrides), out=tmp_path / "run")
    assert result.steps == steps


def test_masked_env_training_obeys_masks(tmp_path: Path, fast) -> None:
    # MaskedChoice raises on a forbidden action: 1024 steps of sampling and evaluating prove it
    result = _run(tmp_path, fast, "env.id=drlzero-test/MaskedChoice-v0", "env.num_envs=4",
                  "env.action_mask=info", "train.total_steps=1024",
                  "train.eval_episodes=8")  # fmt: skip
    assert result.steps == 1024
    # and without env.action_mask the masks are off: a forbidden action is soon taken
    with pytest.raises(AssertionError, match="masked action"):
        _run(tmp_path, fast, "env.id=drlzero-test/MaskedChoice-v0", "env.num_envs=4",
             "train.total_steps=1024", name="unmasked")  # fmt: skip


def test_deprecated_ppo_mask_key_reads_as_env_action_mask() -> None:
    with pytest.warns(DeprecationWarning, match="env.action_mask=obs:action_mask"):
        cfg = load_config(None, overrides=["algo=ppo", "ppo.mask_key=action_mask"])
    assert (cfg.env.action_mask, cfg.ppo.mask_key) == ("obs:action_mask", "")
    with pytest.raises(ConfigError, match="disagree"):
        load_config(None, overrides=["ppo.mask_key=m", "env.action_mask=info"])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "last.safetensors"))


def test_resume_of_a_killed_run_equals_an_uninterrupted_one(
    tmp_path: Path, fast, monkeypatch
) -> None:
    extra = [
        "env.num_envs=2",
        "train.total_steps=160",
        "train.checkpoint_freq=64",
        "train.log_freq=32",
        "ppo.normalize_obs=true",
        "ppo.normalize_reward=true",
    ]
    full = _run(tmp_path, fast, *extra, name="full")
    calls = {"n": 0}
    real_act = FastPPOPolicy.act  # the actor of train.fast_path (the default)

    def dying_act(self, obs, mask=None):
        calls["n"] += 1
        if calls["n"] == 60:  # inside the 4th rollout (16 steps each), after the 64-step ckpt
            raise KeyboardInterrupt
        return real_act(self, obs, mask)

    monkeypatch.setattr(FastPPOPolicy, "act", dying_act)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, fast, *extra, name="killed")
    monkeypatch.setattr(FastPPOPolicy, "act", real_act)
    resumed = drlzero.train(resume=tmp_path / "killed")
    assert resumed.steps == full.steps == 160
    a, b = _weights(full.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    read = lambda p: (p / "episodes.csv").read_text()  # noqa: E731
    assert read(full.run_dir) == read(resumed.run_dir)
    assert resumed.final_eval == full.final_eval


def test_checkpoints_fall_on_rollout_boundaries_only(tmp_path: Path, fast, monkeypatch) -> None:
    """A 'last' due by wall clock (every 1 us) or by a step mark inside a rollout (every 8 env
    steps) waits for the rollout's end: 2 envs x 16 steps = 32 env steps a rollout."""
    run_module = importlib.import_module("drlzero.train.run")
    steps: list[int] = []
    real_save = run_module.save_checkpoint

    def spy(folder, name, tensors, meta):
        if name == "last":
            steps.append(meta["step"])
        return real_save(folder, name, tensors, meta)

    monkeypatch.setattr(run_module, "save_checkpoint", spy)
    _run(tmp_path, fast, "env.num_envs=2", "train.total_steps=160", "train.log_freq=8",
         "train.checkpoint_freq=8", "train.checkpoint_every_s=0.000001")  # fmt: skip
    assert steps == [32, 64, 96, 128, 160]  # the last one: the final checkpoint


def test_same_seed_same_run(tmp_path: Path, fast) -> None:
    a = _run(tmp_path, fast, "train.total_steps=64", name="a")
    b = _run(tmp_path, fast, "train.total_steps=64", name="b")
    wa, wb = _weights(a.run_dir), _weights(b.run_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------------------------------------
# Bad inputs


def test_unsupported_action_space_is_a_config_error(tmp_path: Path, fast) -> None:
    with pytest.raises(ConfigError, match="PPO needs a Discrete, MultiDiscrete or Box"):
        _run(tmp_path, fast, "env.id=drlzero-test/TupleActions-v0")


def test_wrong_mask_shape_is_one_line_error(tmp_path: Path, fast) -> None:
    with pytest.raises(UserError, match=r"shape \(1, 5\), expected \(1, 4\)"):
        _run(tmp_path, fast, "env.id=drlzero-test/BadMask-v0", "env.num_envs=1",
             "env.action_mask=info")  # fmt: skip


def test_mask_key_without_dict_obs_is_config_error(tmp_path: Path, fast) -> None:
    with pytest.raises(ConfigError, match=r"env\.action_mask=obs:action_mask needs a Dict"):
        _run(tmp_path, fast, "env.action_mask=obs:action_mask")


def test_masks_on_box_actions_are_one_line_error(tmp_path: Path, fast) -> None:
    with pytest.raises(UserError, match="supported for Discrete actions"):
        _run(tmp_path, fast, "env.id=Pendulum-v1", "env.action_mask=info")


def test_distill_of_a_ppo_run_is_a_one_line_error(tmp_path: Path, fast) -> None:
    from drlzero.train.teacher import load_q_run

    result = _run(tmp_path, fast, "train.total_steps=32")
    with pytest.raises(UserError, match="is a PPO run"):
        load_q_run(result.run_dir)


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match=r"divisible by ppo\.num_minibatches"):
        load_config(None, overrides=["algo=ppo", "ppo.n_steps=10", "ppo.num_minibatches=3"])
    with pytest.raises(ConfigError, match=r"ppo\.gae_lambda"):
        load_config(None, overrides=["ppo.gae_lambda=1.5"])
    with pytest.raises(ConfigError, match=r"ppo\.clip_coef"):
        load_config(None, overrides=["ppo.clip_coef=0"])


def test_cli_algo_flag_list_and_bad_mask(tmp_path: Path, capsys) -> None:
    base = ["--no-progress", "train.tensorboard=false", "train.eval_episodes=1"]
    rc = main(["train", "--algo", "ppo", "--env", "CartPole-v1", "--total-steps", "128",
               "--out", str(tmp_path / "cli"), *base, *PPO[1:]])  # fmt: skip
    assert rc == 0
    assert main(["eval", str(tmp_path / "cli"), "--episodes", "1", "--json"]) == 0
    assert main(["list"]) == 0
    assert "ppo" in capsys.readouterr().out
    rc = main(["train", "--algo", "ppo", "--env", "drlzero-test/BadMask-v0", "--out",
               str(tmp_path / "bad"), *base, *PPO[1:], "env.action_mask=info"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "action_mask" in err[0]


def test_record_box_actions(tmp_path: Path, fast) -> None:
    result = _run(tmp_path, fast, "env.id=Pendulum-v1", "train.total_steps=32",
                  "env.max_episode_steps=20")  # fmt: skip
    assert drlzero.record(result.run_dir).path.is_file()


# ---------------------------------------------------------------------------------------------
# Learning


def test_cartpole_ppo_preset_reaches_475(tmp_path: Path, fast) -> None:
    # measured (evals every 10k steps): solved at 10240 (seeds 0, 1) and 20480 (seed 2) env
    # steps, 21-32 s each on a busy 2-core CPU; the best checkpoints gave 500, 500, 398 on 20
    # fresh episodes, so this checks seed 0's
    result = drlzero.train(load_config("cartpole-ppo", overrides=fast), out=tmp_path / "cp")
    assert result.solved_at_step is not None and result.solved_at_step <= 60_000
    assert result.best_eval_return >= 475
    again = drlzero.evaluate(result.run_dir, episodes=10, seed=123, write=False)
    assert again["mean_return"] >= 400  # the best checkpoint holds up on fresh seeds
