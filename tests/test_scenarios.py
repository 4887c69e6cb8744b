"""The application scenario envs (issue 5): checker, determinism, state snapshots, rewards and
terminations on hand-made states, baselines, the ``eval --baseline`` CLI, and a learning test."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drlzero.envs  # noqa: F401  (registers the drlzero/... ids)
from drlzero.cli import main
from drlzero.config import EnvConfig
from drlzero.envs import scenarios
from drlzero.envs.baselines import BASELINES, evaluate_baseline, get_baseline
from drlzero.envs.scenarios import catch_ball, smart_home, trading, traffic_signal
from drlzero.envs.state import get_env_state, set_env_state
from drlzero.errors import ConfigError

NUMPY_IDS = [
    "drlzero/CatchBall-v0",
    "drlzero/CatchBallPixels-v0",
    "drlzero/CatchBallText-v0",
    "drlzero/SmartHome-v0",
    "drlzero/SmartHomeText-v0",
    "drlzero/TrafficSignal-v0",
    "drlzero/TrafficGrid-v0",
    "drlzero/Trading-v0",
]


def _rollout(env: gym.Env, seed: int, steps: int) -> list:
    """(obs, reward, terminated, truncated) for ``steps`` seeded random actions."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [np.asarray(obs).tolist() if not isinstance(obs, str) else obs]
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        out.append((np.asarray(obs).tolist() if not isinstance(obs, str) else obs, r, term, trunc))
        if term or trunc:
            obs, _ = env.reset()
            out.append(np.asarray(obs).tolist() if not isinstance(obs, str) else obs)
    return out


# ------------------------------------------------------------------------- every NumPy env


@pytest.mark.parametrize("env_id", NUMPY_IDS)
def test_check_env_and_render(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning fails the test
        check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.ndim == 3 and frame.shape[2] == 3
    assert env.spec is not None and env.spec.max_episode_steps is not None


@pytest.mark.parametrize("env_id", NUMPY_IDS)
def test_deterministic_under_a_seed(env_id: str) -> None:
    a = _rollout(gym.make(env_id), seed=7, steps=150)
    b = _rollout(gym.make(env_id), seed=7, steps=150)
    c = _rollout(gym.make(env_id), seed=8, steps=150)
    assert a == b
    assert a != c


@pytest.mark.parametrize("env_id", NUMPY_IDS)
def test_state_snapshot_resumes_exactly(env_id: str) -> None:
    env = gym.make(env_id)
    env.action_space.seed(3)
    env.reset(seed=3)
    for _ in range(10):
        env.step(env.action_space.sample())
    state = get_env_state(env)
    assert state is not None
    json.dumps(state)  # plain data
    actions = [env.action_space.sample() for _ in range(30)]

    def run(e: gym.Env) -> list:
        out = []
        for act in actions:
            obs, r, term, trunc, _ = e.step(act)
            out.append((np.asarray(obs).tolist() if not isinstance(obs, str) else obs, r, term))
            if term or trunc:
                e.reset()
        return out

    expected = run(env)
    fresh = gym.make(env_id)
    fresh.reset(seed=99)
    set_env_state(fresh, state)
    assert run(fresh) == expected


def test_registration_is_idempotent_and_torch_free() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scenarios.register_all()
    assert all(env_id in gym.registry for env_id in scenarios.SCENARIOS)
    folder = Path(scenarios.__file__).parent
    for path in [*folder.glob("*.py"), folder.parent / "baselines.py"]:
        assert "import torch" not in path.read_text(), path


# ---------------------------------------------------------------------------------- CatchBall


def _catch_env(**state: float) -> catch_ball.CatchBallEnv:
    env = catch_ball.CatchBallEnv()
    env.reset(seed=0)
    for key, value in state.items():
        setattr(env, key, value)
    return env


def test_catch_ball_catch_and_miss() -> None:
    env = _catch_env(paddle_x=0.5, paddle_v=0.0, ball_x=0.5, ball_y=0.01, ball_vx=0.0, ball_vy=-1)
    _, reward, term, trunc, info = env.step(1)  # coast
    assert term and not trunc and info["is_success"] and reward == pytest.approx(1.0)
    env = _catch_env(paddle_x=0.2, paddle_v=0.0, ball_x=0.8, ball_y=0.01, ball_vx=0.0, ball_vy=-1)
    _, reward, term, _, info = env.step(2)  # push right: pays the energy cost too
    assert term and not info["is_success"]
    assert reward == pytest.approx(-1.0 - catch_ball.MOVE_COST)


def test_catch_ball_flight_bounce_and_paddle_limits() -> None:
    env = _catch_env(paddle_x=0.5, ball_x=0.99, ball_y=1.0, ball_vx=1.0, ball_vy=0.0)
    obs, reward, term, _, _ = env.step(1)
    assert not term and reward == 0.0
    assert obs[2] == pytest.approx(1.0 - (0.99 + catch_ball.DT - 1.0), abs=1e-6)  # bounced
    assert obs[4] == pytest.approx(-1.0)  # moving left now
    assert obs[5] == pytest.approx(-catch_ball.GRAVITY * catch_ball.DT)
    for _ in range(15):
        obs, *_ = env.step(2)
    assert obs[1] <= catch_ball.PADDLE_VMAX + 1e-6


def test_catch_ball_landing_prediction_matches_the_flight() -> None:
    env = catch_ball.CatchBallEnv()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        predicted = catch_ball.landing_x(obs[None])[0]
        term = False
        while not term:
            obs, _, term, _, _ = env.step(1)
        assert obs[2] == pytest.approx(predicted, abs=0.01)


def test_catch_ball_pixel_and_text_variants() -> None:
    env = catch_ball.CatchBallEnv(obs_mode="pixels")
    obs, _ = env.reset(seed=1)
    assert obs.shape == (32, 32, 2) and obs.dtype == np.uint8
    obs2, *_ = env.step(1)
    assert np.array_equal(obs2[..., 1], obs[..., 0])  # channel 1 is the previous frame
    text = catch_ball.CatchBallEnv(obs_mode="text")
    sentence, _ = text.reset(seed=1)
    assert isinstance(sentence, str) and text.observation_space.contains(sentence)
    assert "Paddle at x" in sentence and "Ball at x" in sentence


# ---------------------------------------------------------------------------------- SmartHome


def _home(**state: float) -> smart_home.SmartHomeEnv:
    env = smart_home.SmartHomeEnv()
    env.reset(seed=0)
    # A fixed day: home all day except 08:00-17:00, asleep before 07:00 and from 23:00.
    env.wake, env.leave, env.back, env.bedtime = 7.0, 8.0, 17.0, 23.0
    env.t_mean, env.t_amp, env.clouds, env.preferred = 10.0, 0.0, 0.0, 21.0
    for key, value in state.items():
        setattr(env, key, value)
    return env


def test_smart_home_reward_prices_energy_and_comfort() -> None:
    # 12:00, away: no discomfort; heating costs 2 kW * 0.25 h * 0.15 EUR.
    env = _home(step_idx=48, t_in=15.0)
    _, reward, _, _, info = env.step(4 * 1 + 2 + 0)  # heat, curtains open, light off
    assert info["discomfort_eur"] == 0.0
    assert info["energy_eur"] == pytest.approx(2.0 * 0.25 * 0.15)
    assert reward == pytest.approx(-info["energy_eur"])
    # 18:00 (peak price), home, awake, after sunset (dark) at 24 C for a 21 C preference:
    # 2 C outside the band, plus the dark penalty, plus the lamp is off so no lamp energy.
    env = _home(step_idx=72, t_in=24.0, sunset=17.5)
    _, reward, _, _, info = env.step(0)  # all off, curtains closed
    t_after = env.t_in
    dev = abs(t_after - 21.0) - smart_home.COMFORT_BAND
    assert info["energy_eur"] == 0.0
    assert info["discomfort_eur"] == pytest.approx(dev * 0.25 + smart_home.DARK_EUR * 0.25)
    # the lamp fixes the dark penalty at peak price
    env = _home(step_idx=72, t_in=21.0, sunset=17.5)
    _, reward, _, _, info = env.step(1)
    assert info["discomfort_eur"] == 0.0
    assert reward == pytest.approx(-smart_home.LAMP_KW * 0.25 * smart_home.PEAK_PRICE)


def test_smart_home_physics_and_end_of_day() -> None:
    env = _home(step_idx=2, t_in=20.0)  # 00:30, no sun
    env.step(0)  # off: drifts towards the 10 C outside, (10 - 20) / 8 C/h for 0.25 h
    assert env.t_in == pytest.approx(20.0 - 10.0 / 8.0 * 0.25)
    env = _home(step_idx=94)
    *_, term, _, info = env.step(0)
    assert not term
    obs, _, term, _, info = env.step(0)
    assert term and "is_success" in info and obs.shape == (12,)


def test_smart_home_text_sentence() -> None:
    env = smart_home.SmartHomeEnv(obs_mode="text")
    sentence, _ = env.reset(seed=2)
    assert sentence.startswith("It is 00:00.") and env.observation_space.contains(sentence)


# ------------------------------------------------------------------------------ TrafficSignal


def _junction(queues: list[int], phase: int, green: int) -> traffic_signal.TrafficSignalEnv:
    env = traffic_signal.TrafficSignalEnv()
    env.reset(seed=0)
    env.queue_IL = np.array([queues], dtype=np.int64)
    env.phase_I = np.array([phase])
    env.green_I = np.array([green])
    env.yellow_I = np.array([0])
    env.base_rate_L = np.zeros(4)  # no arrivals: exact bookkeeping
    return env


def test_traffic_min_green_yellow_and_reward() -> None:
    env = _junction([10, 10, 10, 10], phase=0, green=1)
    obs, reward, term, trunc, _ = env.step(1)  # too early to switch: ignored
    assert env.phase_I[0] == 0 and not term and not trunc
    assert env.queue_IL[0, 2:].tolist() == [10, 10]  # east-west still red
    assert env.queue_IL[0, :2].min() >= 7  # north-south discharged at most 3 each
    assert reward == pytest.approx(-env.queue_IL.sum() * 5.0 / 60.0)
    before = env.queue_IL.copy()
    obs, *_ = env.step(1)  # min green met: yellow, nobody moves
    assert env.phase_I[0] == 1 and obs[7] == 1.0 and obs[5] == 1.0
    assert np.array_equal(env.queue_IL, before)
    env.step(0)  # yellow is over: east-west green, the request to go back is too early
    assert env.phase_I[0] == 1 and env.queue_IL[0, 2:].max() < 10


def test_traffic_grid_routes_vehicles_downstream() -> None:
    env = traffic_signal.TrafficSignalEnv(rows=1, cols=2)
    env.reset(seed=0)
    env.base_rate_L = np.zeros(4)
    env.queue_IL = np.array([[0, 0, 0, 5], [0, 0, 0, 0]])  # 5 eastbound at the west junction
    env.phase_I, env.green_I = np.array([1, 1]), np.array([5, 5])
    env.yellow_I = np.zeros(2, dtype=np.int64)
    env.step(np.array([1, 1]))
    moved = 5 - env.queue_IL[0, 3]
    assert moved > 0 and env.queue_IL[1, 3] == moved  # they joined the east junction's queue
    assert env.action_space == gym.spaces.MultiDiscrete([2, 2])


# ------------------------------------------------------------------------------------ Trading


def test_trading_reward_costs_and_excess_on_a_given_series() -> None:
    prices = list(np.exp(np.arange(100) * 0.01))  # +1% log return every step
    env = trading.TradingEnv(prices=prices, episode_steps=10)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0 and obs[0] == pytest.approx(1.0)  # flat; the last return is 1%
    _, reward, *_ = env.step(2)  # go long: earn 1%, pay 0.1%
    assert reward == pytest.approx(100 * (0.01 - 0.001))
    _, reward, *_ = env.step(0)  # long -> short: lose 1%, pay 2 x 0.1%
    assert reward == pytest.approx(100 * (-0.01 - 0.002))
    for _ in range(7):
        *_, term, _, info = env.step(2)
        assert not term
    *_, term, _, info = env.step(2)
    assert term and info["excess_return"] < 0 and not info["is_success"]


def test_trading_splits_and_generated_series_are_held_out() -> None:
    prices = list(np.exp(np.cumsum(np.r_[np.full(400, 0.01), np.full(400, -0.01)])))
    train = trading.TradingEnv(prices=prices, split="train", test_fraction=0.5, episode_steps=50)
    test = trading.TradingEnv(prices=prices, split="test", test_fraction=0.5, episode_steps=50)
    assert train.series_returns is not None and (train.series_returns > 0).all()
    assert test.series_returns is not None and (test.series_returns < 0).all()
    with pytest.raises(ValueError, match="need at least"):
        trading.TradingEnv(prices=prices[:60], episode_steps=50)
    env = trading.TradingEnv()
    bh = [BASELINES["drlzero/Trading-v0"]["buy_and_hold"](np.zeros((1, 7)))[0]]
    env.reset(seed=0)
    for _ in range(20):
        *_, info = env.step(bh[0])
    assert info["excess_return"] == pytest.approx(0.0)  # buy-and-hold matches itself


# ---------------------------------------------------------------------------------- baselines


FAST_BASELINES = [(e, n) for e in BASELINES for n in BASELINES[e] if "Sumo" not in e]


@pytest.mark.parametrize(("env_id", "name"), FAST_BASELINES)
def test_baselines_return_valid_action_batches(env_id: str, name: str) -> None:
    envs = gym.make_vec(env_id, num_envs=3)
    obs, _ = envs.reset(seed=0)
    for _ in range(20):
        actions = get_baseline(env_id, name)(obs)
        assert actions.shape == envs.action_space.shape
        assert envs.action_space.contains(actions)
        obs, *_ = envs.step(actions)
    envs.close()


def test_fixed_time_cycles_and_oracle_beats_tracker() -> None:
    env = gym.make("drlzero/TrafficSignal-v0")
    obs, _ = env.reset(seed=0)
    phases = []
    for _ in range(28):
        obs, *_ = env.step(int(BASELINES["drlzero/TrafficSignal-v0"]["fixed_time"](obs[None])[0]))
        phases.append(int(obs[5]) if obs[7] == 0 else -1)  # -1 while yellow
    assert phases.count(-1) == 4  # two 14-step cycles, each with two 1-step yellows
    track = evaluate_baseline(EnvConfig(id="drlzero/CatchBall-v0"), "track", 20, seed=0)
    oracle = evaluate_baseline(EnvConfig(id="drlzero/CatchBall-v0"), "intercept", 20, seed=0)
    assert oracle["success_rate"] > track["success_rate"] + 0.3
    assert set(track) == {"mean_return", "std_return", "mean_length", "success_rate", "episodes"}
    with pytest.raises(ConfigError, match="choose one of"):
        get_baseline("drlzero/CatchBall-v0", "trak")


def test_cli_eval_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--baseline", "buy_and_hold", "--env", "drlzero/Trading-v0"]
    assert main([*argv, "--episodes", "3", "--seed", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 3 and math.isfinite(out["mean_return"])
    assert main([*argv[:3], "--episodes", "2"]) == 2  # no --env
    assert main(["eval"]) == 2  # neither a run nor a baseline
    assert main(["eval", "--baseline", "nope", "--env", "drlzero/Trading-v0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("drlzero: error:") for line in err)


# ----------------------------------------------------------------------------------- learning


@pytest.mark.learning  # ~115 s of one core (80k env steps)
def test_catchball_preset_beats_the_tracker(tmp_path: Path, fast: list[str]) -> None:
    from drlzero.api import evaluate, train

    train("catchball-dqn", out=tmp_path / "run", overrides=fast)
    agent = evaluate(tmp_path / "run", episodes=50, seed=1234)
    track = evaluate_baseline(EnvConfig(id="drlzero/CatchBall-v0"), "track", 50, seed=1234)
    assert agent["success_rate"] >= track["success_rate"] + 0.3


# ------------------------------------------------------------------- optional heavy backends


def test_arm_reach_discrete_torques_and_success() -> None:
    pytest.importorskip("mujoco")  # the mujoco extra
    from drlzero.envs.scenarios.arm_reach import DiscreteTorques

    env = gym.make("drlzero/ArmReach-v0")
    layer = env
    while not isinstance(layer, DiscreteTorques):
        layer = layer.env  # type: ignore[attr-defined]
    check_env(layer, skip_render_check=True)  # its render check opens a window
    assert env.action_space == gym.spaces.Discrete(25)
    assert _rollout(gym.make("drlzero/ArmReach-v0"), 4, 60) == _rollout(env, 4, 60)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (10,)
    _, _, _, _, info = env.step(12)  # zero torque
    assert info["distance"] == pytest.approx(float(np.linalg.norm(obs[8:10])), abs=1e-3)
    assert info["is_success"] == (info["distance"] < 0.02)
    pd = get_baseline("drlzero/ArmReach-v0", "pd")(np.stack([obs, obs]))
    assert pd.shape == (2,) and env.action_space.contains(int(pd[0]))


@pytest.mark.slow  # about 45 s: every reset starts a SUMO process
def test_sumo_backend_runs_and_is_deterministic() -> None:
    pytest.importorskip("sumo_rl")

    def roll() -> list:
        env = gym.make("drlzero/TrafficSignalSumo-v0")
        out = _rollout(env, seed=3, steps=20)
        env.close()
        return out

    first = roll()
    assert first == roll()
    env = gym.make("drlzero/TrafficSignalSumo-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    res = evaluate_baseline(
        EnvConfig(id="drlzero/TrafficSignalSumo-v0", max_episode_steps=20), "fixed_time", 1, seed=0
    )
    assert res["mean_length"] == 20 and res["mean_return"] <= 0
