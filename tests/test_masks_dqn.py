"""Action masks through DQN: acting, targets, replay, evaluation, config; SmartHome's rules."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import drlzero
from drlzero.algos.distributional import quantile_huber_loss, quantile_targets
from drlzero.algos.dqn import DQNLearner, QPolicy, td_targets
from drlzero.algos.rainbow import per_sample_loss
from drlzero.config import DQNConfig, EnvConfig, load_config
from drlzero.encoders.mlp import MLPEncoder
from drlzero.envs import make_vec_env
from drlzero.envs.scenarios import smart_home
from drlzero.errors import ConfigError, UserError
from drlzero.exploration import ConstantSchedule, EpsilonGreedy, Softmax
from drlzero.masks import MaskSource
from drlzero.nets.heads import LinearHead, QNetwork, QRHead
from drlzero.replay.storage import Batch, ReplayStorage
from drlzero.train.evaluate import evaluate_policy

FAST = ["train.progress=false", "train.tensorboard=false"]
LENGTH = 5  # toy episode length


def toy_mask(t: int) -> np.ndarray:
    """The toy env's rule at time t: action t % 3 is forbidden."""
    mask = np.ones(3, dtype=bool)
    mask[t % 3] = False
    return mask


class MaskedToy(gym.Env):
    """obs = [t]; 3 actions, action t % 3 forbidden at time t (mask in info or in the obs);
    reward +1 for an allowed action, -10 for a forbidden one; terminates at t = 5.

    ``final_mask=False`` leaves the mask out of the final step's info (the next-state mask of
    that transition is then all-allowed).
    """

    def __init__(self, in_obs: bool = False, final_mask: bool = True) -> None:
        self.in_obs = in_obs
        self.final_mask = final_mask
        box = gym.spaces.Box(0.0, float(LENGTH), (1,), np.float32)
        self.observation_space = (
            gym.spaces.Dict({"obs": box, "mask": gym.spaces.MultiBinary(3)}) if in_obs else box
        )
        self.action_space = gym.spaces.Discrete(3)
        self.t = 0

    def _out(self, info: dict) -> tuple:
        obs = np.array([self.t], np.float32)
        if self.in_obs:
            return {"obs": obs, "mask": toy_mask(self.t).astype(np.int8)}, info
        if self.final_mask or self.t < LENGTH:
            info["action_mask"] = toy_mask(self.t)
        return obs, info

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._out({})

    def step(self, action):
        reward = 1.0 if toy_mask(self.t)[int(action)] else -10.0
        self.t += 1
        obs, info = self._out({})
        return obs, reward, self.t >= LENGTH, False, info


gym.register("drlzero-test/MaskedToy-v0", entry_point=MaskedToy)


def _q_net(obs_dim: int, num_actions: int) -> QNetwork:
    torch.manual_seed(0)
    return QNetwork(MLPEncoder((obs_dim,), hidden=[8]), LinearHead(8, num_actions))


# ------------------------------------------------------------------------------------- acting


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda a: st.lists(
            st.lists(st.booleans(), min_size=a, max_size=a).filter(any), min_size=1, max_size=8
        )
    ),
    st.integers(0, 2**31 - 1),
)
def test_policy_never_chooses_a_masked_action(rows: list[list[bool]], seed: int) -> None:
    mask = np.array(rows, dtype=bool)
    b, a = mask.shape
    net = _q_net(3, a)
    obs = np.random.default_rng(seed).normal(size=(b, 3)).astype(np.float32)
    rng = np.random.default_rng(seed)
    explorers = [
        EpsilonGreedy(ConstantSchedule(1.0), a),  # all random
        EpsilonGreedy(ConstantSchedule(0.0), a),  # all greedy
        EpsilonGreedy(ConstantSchedule(0.5), a),  # mixed rows
        Softmax(ConstantSchedule(1.0), a),
        Softmax(ConstantSchedule(100.0), a),  # near uniform: forbidden ones still never drawn
    ]
    for explorer in explorers:
        policy = QPolicy(net, explorer, torch.device("cpu"))
        for step in range(5):
            act = policy.act(obs, step, rng, mask)
            assert mask[np.arange(b), act].all()
        greedy = policy.greedy(obs, mask)
        assert mask[np.arange(b), greedy].all()
        # the greedy action is the best allowed one
        q = policy.q_values(obs)
        np.testing.assert_array_equal(
            q[np.arange(b), greedy], np.where(mask, q, -np.inf).max(axis=1)
        )


def test_softmax_masked_probabilities_by_hand() -> None:
    q = np.array([[2.0, 1.0, 0.0]])
    mask = np.array([[True, False, True]])
    p = Softmax(ConstantSchedule(1.0), 3).probs(q, 0, mask)
    e = np.exp([2.0, 0.0])
    np.testing.assert_allclose(p, [[e[0] / e.sum(), 0.0, e[1] / e.sum()]])
    p = EpsilonGreedy(ConstantSchedule(0.2), 3).probs(q, 0, mask)
    np.testing.assert_allclose(p, [[0.1 + 0.8, 0.0, 0.1]])


def test_wrong_mask_shape_is_one_line_error() -> None:
    policy = QPolicy(_q_net(3, 4), EpsilonGreedy(ConstantSchedule(0.0), 4), torch.device("cpu"))
    obs = np.zeros((2, 3), np.float32)
    with pytest.raises(UserError, match=r"shape \(2, 3\), expected \(2, 4\)") as err:
        policy.act(obs, 0, np.random.default_rng(0), np.ones((2, 3), bool))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"expected \(2, 4\)"):
        policy.greedy(obs, np.ones(4, bool))


# ------------------------------------------------------------------------------------ targets


def test_masked_targets_by_hand() -> None:
    r = torch.tensor([1.0, 1.0])
    term = torch.tensor([0.0, 1.0])
    next_q_target = torch.tensor([[5.0, 1.0, 2.0], [5.0, 1.0, 2.0]])
    mask = torch.tensor([[False, True, True], [True, True, True]])
    # DQN: action 0 (max 5) is forbidden in s': max over {1, 2} is 2 -> 1 + 0.5 * 2
    y = td_targets(r, term, next_q_target, 0.5, next_mask_BA=mask)
    torch.testing.assert_close(y, torch.tensor([2.0, 1.0]))
    # Double DQN: the online net prefers 0 (forbidden), then 2; the target net values 2 at 2.0
    next_q_online = torch.tensor([[9.0, 0.0, 3.0], [9.0, 0.0, 3.0]])
    y = td_targets(r, term, next_q_target, 0.5, next_q_online, mask)
    torch.testing.assert_close(y, torch.tensor([2.0, 1.0]))
    unmasked = td_targets(r, term, next_q_target, 0.5, next_q_online)
    assert unmasked[0].item() == pytest.approx(3.5)  # the mask is what changed the target


def _batch(b: int, a: int, mask: torch.Tensor | None, discounts: bool = False) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(
        obs=torch.randn(b, 3, generator=g),
        actions=torch.randint(0, a, (b,), generator=g),
        rewards=torch.randn(b, generator=g),
        next_obs=torch.randn(b, 3, generator=g),
        terminated=torch.tensor([0.0, 1.0, 0.0, 0.0])[:b],
        discounts=torch.full((b,), 0.9) if discounts else None,
        next_mask=mask,
    )


@pytest.mark.parametrize("double", [False, True])
def test_dqn_learner_uses_the_next_state_mask(double: bool) -> None:
    cfg = DQNConfig(gamma=0.9, double=double, loss="mse")
    q_net = _q_net(3, 4)
    target = copy.deepcopy(q_net)
    learner = DQNLearner(q_net, target, cfg)  # copies the online weights into the target
    with torch.no_grad():  # then a target different from the online net
        for p in target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    batch0 = _batch(4, 4, None)
    with torch.no_grad():
        nq_t, nq_o = target(batch0.next_obs), q_net(batch0.next_obs)
    # forbid exactly the action each unmasked rule would pick
    pick = (nq_o if double else nq_t).argmax(dim=1)
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[torch.arange(4), pick] = False
    batch = batch0._replace(next_mask=mask)
    with torch.no_grad():
        q_b = q_net(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
        chooser = torch.where(mask, nq_o if double else nq_t, -torch.inf).argmax(dim=1)
        next_v = nq_t[torch.arange(4), chooser]
        y = batch.rewards + 0.9 * (1 - batch.terminated) * next_v
        expected = F.mse_loss(q_b, y)
    stats = learner.update(batch)
    torch.testing.assert_close(stats["loss"], expected)


def test_rainbow_qr_masks_the_greedy_next_action() -> None:
    cfg = DQNConfig(gamma=0.9, n_step=2)  # the loss follows the QR head
    torch.manual_seed(0)
    q_net = QNetwork(MLPEncoder((3,), hidden=[8]), QRHead(8, 4, 5))
    target = copy.deepcopy(q_net)
    batch0 = _batch(4, 4, None, discounts=True)
    with torch.no_grad():
        next_z = target.distribution(batch0.next_obs)  # (B, A, N)
    greedy = next_z.mean(dim=-1).argmax(dim=1)
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[torch.arange(4), greedy] = False
    batch = batch0._replace(next_mask=mask)
    loss_b, _, _ = per_sample_loss(q_net, target, batch, cfg)
    with torch.no_grad():
        chosen = torch.where(mask, next_z.mean(dim=-1), -torch.inf).argmax(dim=1)
        target_bn = quantile_targets(
            next_z[torch.arange(4), chosen], batch.rewards, batch.discounts, batch.terminated
        )
        z = q_net.distribution(batch.obs)[torch.arange(4), batch.actions]
        expected = quantile_huber_loss(z, target_bn)
    torch.testing.assert_close(loss_b, expected)


# ------------------------------------------------------------------------------------- replay


def test_mask_source_next_state_masks_across_an_episode_end() -> None:
    envs = make_vec_env(EnvConfig(id="drlzero-test/MaskedToy-v0", num_envs=2))
    masks = MaskSource("info", 2, 3)
    obs, info = envs.reset(seed=0)
    mask = masks.reset(info)
    np.testing.assert_array_equal(mask, [toy_mask(0)] * 2)
    for t in range(1, LENGTH + 1):
        obs, _, term, trunc, info = envs.step(np.zeros(2, dtype=np.int64) + 1)
        mask, next_mask = masks.step(info, term | trunc)
        np.testing.assert_array_equal(obs[:, 0], [t % LENGTH] * 2)
        # acting mask: the returned obs (t = 0 again after the autoreset); stored: the final state
        np.testing.assert_array_equal(mask, [toy_mask(t % LENGTH)] * 2)
        np.testing.assert_array_equal(next_mask, [toy_mask(t)] * 2)
    assert MaskSource("none", 2, 3).step(info, term) == (None, None)
    envs.close()


def _stored(run: Path) -> dict[str, np.ndarray]:
    t = load_file(str(run / "checkpoints" / "last.safetensors"))
    return {k: v.numpy() for k, v in t.items() if k.startswith("buffer.")}


@pytest.mark.parametrize(
    ("overrides", "final_mask"),
    [([], True), (["dqn.n_step=3"], True), ([], False), (["env.action_mask=obs:mask"], True)],
)
def test_replay_stores_next_masks_in_the_real_loop(
    tmp_path: Path, overrides: list[str], final_mask: bool
) -> None:
    kwargs = {"final_mask": final_mask, "in_obs": "env.action_mask=obs:mask" in overrides}
    cfg = load_config(
        None,
        overrides=[
            "env.id=drlzero-test/MaskedToy-v0",
            "env.num_envs=2",
            "env.action_mask=info",
            "train.total_steps=60",
            "train.eval_freq=0",
            "train.eval_episodes=2",
            "dqn.learning_starts=20",
            "dqn.batch_size=8",
            "dqn.train_freq=1",
            "encoder.hidden=[8]",
            *FAST,
            *overrides,
        ],
    )
    cfg.env.kwargs = kwargs
    result = drlzero.train(cfg, out=tmp_path / "run")
    buf = _stored(result.run_dir)
    t_next = buf["buffer.next_obs"][:, 0].astype(int)
    assert (t_next == LENGTH).sum() >= 10  # episode ends are in the buffer
    for t, m in zip(t_next, buf["buffer.next_masks"], strict=True):
        if t == LENGTH and not final_mask:
            assert m.all()  # no final mask given: all allowed (no bootstrap anyway)
        else:
            np.testing.assert_array_equal(m, toy_mask(t))  # the true next state's mask
    # masked acting: every stored action was allowed where it was taken
    t_obs = buf["buffer.obs"][:, 0].astype(int)
    assert all(toy_mask(t)[a] for t, a in zip(t_obs, buf["buffer.actions"], strict=True))
    assert result.final_eval["mean_return"] == LENGTH  # greedy eval masked: never -10
    # resume keeps the acting mask
    more = drlzero.train(resume=result.run_dir, total_steps=80)
    assert more.steps == 80


def test_replay_buffer_without_masks_is_unchanged() -> None:
    buf = ReplayStorage(4, (1,), seed=0)
    buf.add(np.zeros((2, 1)), np.zeros(2, int), np.ones(2), np.ones((2, 1)), np.zeros(2))
    assert buf.next_masks is None and buf.sample(3).next_mask is None
    assert "buffer.next_masks" not in buf.state_tensors()
    masked = ReplayStorage(4, (1,), seed=0, num_actions=3)
    masked.add(np.zeros((1, 1)), np.zeros(1, int), np.ones(1), np.ones((1, 1)), np.zeros(1))
    assert masked.next_masks is not None and masked.next_masks[0].all()


# --------------------------------------------------------------------------------- evaluation


def test_greedy_evaluation_is_masked() -> None:
    env = EnvConfig(id="drlzero-test/MaskedToy-v0")
    seen: list[np.ndarray] = []

    def prefers_forbidden(obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        # Q prefers the forbidden action t % 3; the masked greedy rule must avoid it
        q = np.zeros((len(obs), 3))
        q[np.arange(len(obs)), obs[:, 0].astype(int) % 3] = 1.0
        if mask is None:
            return q.argmax(axis=1)
        seen.append(mask)
        return np.where(mask, q, -np.inf).argmax(axis=1)

    masked = evaluate_policy(prefers_forbidden, env, episodes=3, seed=0, masked=True)
    assert masked["mean_return"] == LENGTH and len(seen) == LENGTH  # 3 envs, one episode each
    plain = evaluate_policy(prefers_forbidden, env, episodes=3, seed=0)
    assert plain["mean_return"] == -10 * LENGTH


# ------------------------------------------------------------------------------------- config


def test_action_mask_config_errors() -> None:
    with pytest.raises(ConfigError, match="none, info, obs:KEY"):
        load_config("cartpole-dqn", overrides=["env.action_mask=always"]).validate()
    cfg = load_config("cartpole-dqn")
    cfg.env.action_mask = "obs:"
    with pytest.raises(ConfigError, match="obs:KEY"):
        cfg.validate()
    assert load_config(None, overrides=["env.action_mask=obs:m"]).env.action_mask == "obs:m"
    with pytest.raises(ConfigError, match="algo=dqn, ppo or lmppo in one process"):
        load_config("taxi-sarsa", overrides=["env.action_mask=info"]).validate()
    with pytest.raises(ConfigError, match="needs a Dict observation with key 'mask'"):
        make_vec_env(EnvConfig(id="CartPole-v1", action_mask="obs:mask"))


def test_info_masks_on_an_env_without_them(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="reset info has no 'action_mask'"):
        drlzero.train(
            "cartpole-dqn",
            out=tmp_path / "r",
            overrides=["env.action_mask=info", "train.total_steps=10", *FAST],
        )


# ---------------------------------------------------------------------------------- SmartHome


def _home(**state: float) -> smart_home.SmartHomeEnv:
    env = smart_home.SmartHomeEnv()
    env.reset(seed=0)
    # home all day except 08:00-17:00, awake 07:00-23:00, sunset 17:30, prefers 21 C
    env.wake, env.leave, env.back, env.bedtime = 7.0, 8.0, 17.0, 23.0
    env.sunrise, env.sunset, env.preferred = 6.5, 17.5, 21.0
    for key, value in state.items():
        setattr(env, key, value)
    return env


def _allowed(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask).tolist()


def test_smart_home_rules_by_hand() -> None:
    # 18:00, home, dark; 22.5 C >= 21 + 1: no heating; curtains must stay closed; lamp allowed
    # a = 4 * thermostat + 2 * curtains + light -> thermostat {off, cool}, curtains closed
    env = _home(step_idx=72, t_in=22.5)
    assert _allowed(env.action_mask()) == [0, 1, 8, 9]
    _, _, _, _, info = env.step(4 * 1 + 2)  # heat with the curtains open: one violating step
    assert info["rule_violations"] == 1
    _, _, _, _, info = env.step(8)  # cool, closed, lamp off: allowed
    assert info["rule_violations"] == 1
    assert info["action_mask"].shape == (12,) and info["action_mask"].dtype == bool
    # 12:00, away, sunny: lamp off; 17.5 C <= 21 - 3: no cooling; curtains free
    env = _home(step_idx=48, t_in=17.5)
    assert _allowed(env.action_mask()) == [0, 2, 4, 6]
    _, _, _, _, info = env.step(1)  # the lamp in an empty room
    assert info["rule_violations"] == 1
    # 03:00, home asleep, dark, 20 C: heating and cooling allowed, curtains closed
    env = _home(step_idx=12, t_in=20.0)
    assert _allowed(env.action_mask()) == [0, 1, 4, 5, 8, 9]
    # action 0 is always allowed, and reset reports the mask and a fresh count
    _, info = smart_home.SmartHomeEnv().reset(seed=3)
    assert info["rule_violations"] == 0 and info["action_mask"][0]


def test_smart_home_masked_preset_learns_without_violations(tmp_path: Path) -> None:
    result = drlzero.train(
        "smarthome-dqn-masked",
        out=tmp_path / "run",
        overrides=[
            "train.total_steps=3000",
            "train.eval_freq=0",
            "train.eval_episodes=4",
            "dqn.learning_starts=500",
            *FAST,
        ],
    )
    agent = drlzero.load_agent(result.run_dir)
    envs = make_vec_env(agent.config.env, num_envs=4, training=False)
    obs, info = envs.reset(seed=5)
    for _ in range(smart_home.STEPS_PER_DAY):
        obs, _, term, _, info = envs.step(agent.act(obs, info["action_mask"]))
    violations = info["final_info"]["rule_violations"]
    assert term.all() and (violations == 0).all()
    # the same greedy policy without its mask breaks the rules (the mask is what keeps it safe)
    obs, info = envs.reset(seed=5)
    for _ in range(smart_home.STEPS_PER_DAY):
        obs, _, term, _, info = envs.step(agent.act(obs))
    assert info["final_info"]["rule_violations"].sum() > 0
    envs.close()
    assert np.isfinite(result.final_eval["mean_return"])
