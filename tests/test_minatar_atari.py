"""MinAtar and Atari for the DQN family (issue 6): lazy id registration, observation layout and
dtype, the life-loss wrapper's terminated/reset semantics (alone and under the SAME_STEP vector
env), unclipped evaluation scores, and short DQN smoke runs through ``drlzero.train``."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import drlzero
from drlzero.config import EnvConfig, load_config
from drlzero.envs import make_env, make_vec_env
from drlzero.envs.atari import EpisodicLife, FireReset
from drlzero.errors import ConfigError
from drlzero.train.evaluate import evaluate_policy

FAST = ["train.progress=false", "train.tensorboard=false", "train.checkpoint_freq=0"]


class Lives(gym.Env):
    """A game of 3 lives that loses one every 2 steps; obs = [steps, lives, real resets]."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 100, (3,), np.int64)
        self.action_space = gym.spaces.Discrete(2)
        self.t = self.lives = self.resets = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.lives, self.resets])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.lives = 0, 3
        self.resets += 1
        return self._obs(), {"lives": self.lives}

    def step(self, action):
        self.t += 1
        if self.t % 2 == 0:
            self.lives -= 1
        return self._obs(), 5.0, self.lives == 0, False, {"lives": self.lives}


def test_episodic_life_ends_episode_on_life_loss_without_resetting_the_game() -> None:
    env = EpisodicLife(Lives())
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0, 3, 1]
    assert env.step(0)[2] is False
    obs, _, term, trunc, _ = env.step(0)  # life lost, game goes on
    assert (obs.tolist(), term, trunc) == ([2, 2, 1], True, False)
    obs, _ = env.reset()  # continues the same game with one no-op step
    assert obs.tolist() == [3, 2, 1]
    assert env.step(0)[2] is True  # t=4: second life lost
    obs, _ = env.reset()
    assert obs.tolist() == [5, 1, 1]
    obs, _, term, _, _ = env.step(0)  # t=6: lives 0, the real game over
    assert (obs.tolist(), term) == ([6, 0, 1], True)
    assert env.reset()[0].tolist() == [0, 3, 2]  # now a real reset
    env.step(0)
    assert env.reset(seed=1)[0].tolist() == [0, 3, 3]  # a seeded reset always restarts


def test_episodic_life_under_same_step_vector_autoreset() -> None:
    envs = gym.vector.SyncVectorEnv(
        [lambda: EpisodicLife(Lives())], autoreset_mode=AutoresetMode.SAME_STEP
    )
    envs.reset(seed=0)
    envs.step(np.array([0]))
    obs, _, term, trunc, info = envs.step(np.array([0]))
    assert term.tolist() == [True] and trunc.tolist() == [False]
    assert info["final_obs"][0].tolist() == [2, 2, 1]  # the true last obs of the life
    assert obs[0].tolist() == [3, 2, 1]  # same game, not a new one
    assert envs.step(np.array([0]))[2].tolist() == [True]  # t=4: second life lost, reset: t=5
    obs, _, term, _, info = envs.step(np.array([0]))
    assert term.tolist() == [True] and info["final_obs"][0].tolist() == [6, 0, 1]
    assert obs[0].tolist() == [0, 3, 2]  # game over: a real reset


def test_fire_on_life_loss_folds_the_fire_step_into_the_losing_step() -> None:
    env = FireReset(Lives(), on_life_loss=True)
    assert env.reset(seed=0)[0].tolist() == [1, 3, 1]  # FIRE after reset
    obs, reward, term, _, _ = env.step(0)  # t=2 loses a life, then FIRE: t=3
    assert (obs.tolist(), reward, term) == ([3, 2, 1], 10.0, False)


def test_minatar_ids_register_lazily_channel_first_bool() -> None:
    pytest.importorskip("minatar")
    env = make_env(EnvConfig(id="MinAtar/Seaquest-v1"))
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.bool_ and obs.shape == (10, 10, 10)
    raw = env.unwrapped.game.state()  # (H, W, C)
    assert np.array_equal(obs, raw.transpose(2, 0, 1))
    vec = make_vec_env(EnvConfig(id="MinAtar/Breakout-v1", num_envs=2))
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (2, 4, 10, 10) and obs.dtype == np.bool_
    vec.close()
    with pytest.raises(ConfigError, match="unknown environment"):
        make_env(EnvConfig(id="MinAtar/Brekout-v1"))


def test_minatar_breakout_dqn_smoke(tmp_path: Path) -> None:
    """300 steps of the preset; its network and optimizer are the MinAtar paper's, as saved."""
    pytest.importorskip("minatar")
    import json

    from safetensors.torch import load_file

    cfg = load_config(
        "minatar-breakout-dqn",
        overrides=[
            *FAST,
            "train.total_steps=300",
            "dqn.learning_starts=100",
            "train.eval_freq=0",
            "train.eval_episodes=2",
        ],
    )
    result = drlzero.train(cfg, out=tmp_path / "run")
    assert result.steps == 300 and np.isfinite(result.final_eval["mean_return"])
    ckpt = tmp_path / "run" / "checkpoints"
    tensors = load_file(ckpt / "last.safetensors")
    shapes = {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("q.")}
    # conv 16 3x3 over Breakout's 4 channels, then linear 16 * 8 * 8 -> 128, then Q over 3
    assert (16, 4, 3, 3) in shapes.values() and (128, 1024) in shapes.values()
    assert (3, 128) in shapes.values() and not any(
        len(s) == 4 and s[0] == 32 for s in shapes.values()
    )
    (group,) = json.loads((ckpt / "last.json").read_text())["optim_groups"]
    # RMSprop with the paper's eps 0.01 and lr 2.5e-4 (torch's alpha 0.99, not centered)
    assert (group["lr"], group["eps"], group["alpha"], group["centered"]) == (
        0.00025,
        0.01,
        0.99,
        False,
    )
    assert "optim.0.square_avg" in tensors and "optim.0.exp_avg" not in tensors
    assert int(tensors["optim.0.step"]) == 200  # train_freq 1 after 100 warm-up steps


def test_atari_preprocessing_and_unclipped_evaluation(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    env = make_env(EnvConfig(id="ALE/Breakout-v5", wrappers=["atari"]))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    env.close()
    cfg = load_config(
        "atari-breakout-dqn",
        overrides=[
            *FAST,
            "train.total_steps=300",
            "dqn.learning_starts=100",
            "replay.buffer_size=300",
            "dqn.target_update_interval=100",
            "train.eval_freq=0",
            "train.eval_episodes=1",
            "train.device=cpu",
        ],
    )
    result = drlzero.train(cfg, out=tmp_path / "run")
    assert result.steps == 300 and result.final_eval["episodes"] == 1
    # Training episodes end at the first lost life; evaluation episodes are whole games.
    for training, lives_at_end in ((True, 4), (False, 0)):
        env = make_env(cfg.env, training=training)
        env.reset(seed=0)
        env.action_space.seed(0)
        while True:
            _, _, term, trunc, info = env.step(env.action_space.sample())
            if term or trunc:
                break
        env.close()
        assert info["lives"] == lives_at_end
    # Space Invaders pays 5-30 points per alien: training rewards are clipped to {-1, 0, 1},
    # the evaluator reports the raw game score.
    space = EnvConfig(id="ALE/SpaceInvaders-v5", wrappers=["atari"])
    env = make_env(space)
    env.reset(seed=0)
    env.action_space.seed(0)
    seen = {float(env.step(env.action_space.sample())[1]) for _ in range(200)}
    env.close()
    assert seen <= {-1.0, 0.0, 1.0} and 1.0 in seen
    rng = np.random.default_rng(0)
    score = evaluate_policy(lambda obs: rng.integers(6, size=len(obs)), space, episodes=1)
    assert score["mean_return"] >= 5 and score["mean_return"] % 5 == 0


def test_atari_wrapper_errors() -> None:
    pytest.importorskip("ale_py")
    with pytest.raises(ConfigError, match="frameskip"):
        make_env(EnvConfig(id="ALE/Breakout-v5", wrappers=["atari"], kwargs={"frameskip": 4}))
    with pytest.raises(ConfigError, match="ALE"):
        make_env(EnvConfig(id="CartPole-v1", wrappers=["atari"]))
