"""Tabular control: Q-learning, SARSA and Expected SARSA (Sutton & Barto 2018, sections 6.4-6.6).

For Discrete observation spaces (FrozenLake, Taxi, CliffWalking). The update targets are pure
functions of a Q row; the loop shares exploration, logs, evaluation and checkpoints with DQN.

Example:
    >>> import numpy as np
    >>> td_target("qlearning", 1.0, False, np.array([0.0, 2.0]), 0.9)
    2.8
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from drlzero.config import Config
from drlzero.envs import episode_successes, make_env
from drlzero.envs.state import get_env_state, set_env_state
from drlzero.errors import ConfigError
from drlzero.exploration import Explorer, build_explorer
from drlzero.train.checkpoint import load_checkpoint, save_checkpoint
from drlzero.train.evaluate import Evaluator
from drlzero.train.logger import RunLogger
from drlzero.train.plots import plot_learning_curve
from drlzero.train.run import TrainResult, rng_state, set_rng_state, write_eval_json
from drlzero.utils import seed_everything

EVAL_SEED_OFFSET = 10_000


def td_target(
    algo: str,
    reward: float,
    terminated: bool,
    q_next_A: np.ndarray,
    gamma: float,
    *,
    next_action: int | None = None,
    next_probs_A: np.ndarray | None = None,
) -> float:
    """The one-step target for ``algo``; no bootstrap after a true termination.

    - ``qlearning``: ``r + gamma * max_a Q(s', a)`` (off-policy).
    - ``sarsa``: ``r + gamma * Q(s', a')`` with the action actually taken next (on-policy).
    - ``expected_sarsa``: ``r + gamma * sum_a pi(a|s') Q(s', a)``.
    """
    if terminated:
        return float(reward)
    if algo == "qlearning":
        v = float(q_next_A.max())
    elif algo == "sarsa":
        assert next_action is not None
        v = float(q_next_A[next_action])
    else:
        assert next_probs_A is not None
        v = float(next_probs_A @ q_next_A)
    return float(reward + gamma * v)


def _check_spaces(cfg: Config, env: gym.Env) -> tuple[int, int]:
    if not isinstance(env.observation_space, gym.spaces.Discrete) or not isinstance(
        env.action_space, gym.spaces.Discrete
    ):
        raise ConfigError(
            f"{cfg.algo} is tabular and needs Discrete observations and actions, but {cfg.env.id} "
            f"has {env.observation_space} / {env.action_space}; use --algo dqn"
        )
    return int(env.observation_space.n), int(env.action_space.n)


class TabularPolicy:
    """Greedy and behaviour actions from a Q table."""

    def __init__(self, q_SA: np.ndarray, explorer: Explorer | None = None) -> None:
        self.q_SA = q_SA
        self.explorer = explorer

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.q_SA[np.asarray(obs, dtype=np.int64)].argmax(axis=1)

    def act_one(self, s: int, step: int, rng: np.random.Generator) -> int:
        assert self.explorer is not None
        return int(self.explorer(self.q_SA[s : s + 1], step, rng)[0])


def train_tabular(cfg: Config, run_dir: Path, *, resume: bool = False) -> TrainResult:
    """Train a tabular agent as ``cfg`` says, writing everything into ``run_dir``."""
    t, tc, algo = cfg.train, cfg.tabular, cfg.algo
    seed_everything(t.seed)
    env = make_env(cfg.env)
    n_s, n_a = _check_spaces(cfg, env)
    q_SA = np.full((n_s, n_a), tc.init_value, dtype=np.float64)
    explorer = build_explorer(cfg.exploration, n_a, t.total_steps)
    policy = TabularPolicy(q_SA, explorer)
    rng = np.random.default_rng(t.seed + 2)
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET)

    step = 0
    best = -math.inf
    elapsed = 0.0
    episodes = 0
    recent: dict[str, list[float]] = {}
    s, _ = env.reset(seed=t.seed)
    ep_ret, ep_len = 0.0, 0
    pending_action: int | None = None
    if resume:
        tensors, meta = load_checkpoint(run_dir / "checkpoints", "last")
        q_SA[:] = tensors["q_table"].numpy()
        set_rng_state(rng, meta["rng_numpy"])
        step, elapsed, recent, episodes = (
            meta["step"],
            meta["elapsed_s"],
            meta["recent"],
            meta["episodes"],
        )
        best = -math.inf if meta["best_eval_return"] is None else meta["best_eval_return"]
        if meta.get("env_state") is not None:
            set_env_state(env, meta["env_state"])
            s, ep_ret, ep_len = meta["obs"], meta["ep_ret"], meta["ep_len"]
            pending_action = meta["action"]
        else:
            warnings.warn("env state was not saved: resume starts a fresh episode", stacklevel=2)
            s, _ = env.reset(seed=t.seed + step)
    a = policy.act_one(int(s), step, rng) if pending_action is None else pending_action

    logger = RunLogger(
        run_dir,
        t.total_steps,
        tensorboard=t.tensorboard,
        progress=t.progress,
        resume_step=step if resume else None,
        elapsed=elapsed,
    )
    logger.recent_returns.extend(recent.get("returns", []))
    logger.recent_lengths.extend(recent.get("lengths", []))
    logger.recent_success.extend(recent.get("success", []))
    logger.episodes = episodes

    def checkpoint(name: str) -> None:
        meta = {
            "kind": "tabular",
            "step": step,
            "best_eval_return": best if math.isfinite(best) else None,
            "elapsed_s": logger.elapsed(),
            "rng_numpy": rng_state(rng),
            "env_state": get_env_state(env),
            "obs": int(s),
            "action": int(a),
            "ep_ret": ep_ret,
            "ep_len": ep_len,
            "episodes": logger.episodes,
            "recent": {
                "returns": list(logger.recent_returns),
                "lengths": list(logger.recent_lengths),
                "success": list(logger.recent_success),
            },
            "config": cfg.to_dict(),
        }
        save_checkpoint(
            run_dir / "checkpoints", name, {"q_table": torch.from_numpy(q_SA.copy())}, meta
        )

    next_log = (step // t.log_freq + 1) * t.log_freq
    next_eval = (step // t.eval_freq + 1) * t.eval_freq if t.eval_freq else math.inf
    next_ckpt = (
        (step // t.checkpoint_freq + 1) * t.checkpoint_freq if t.checkpoint_freq else math.inf
    )
    td_err_sum, td_count = 0.0, 0
    evaluation: dict[str, float] | None = None
    solved_at: int | None = None
    try:
        while step < t.total_steps:
            s2, r, term, trunc, info = env.step(a)
            step += 1
            ep_ret += float(r)
            ep_len += 1
            a2 = policy.act_one(int(s2), step, rng)
            y = td_target(
                algo,
                float(r),
                bool(term),
                q_SA[s2],
                tc.gamma,
                next_action=a2,
                next_probs_A=explorer.probs(q_SA[s2 : s2 + 1], step)[0]
                if algo == "expected_sarsa"
                else None,
            )
            td = y - q_SA[s, a]
            q_SA[s, a] += tc.lr * td
            td_err_sum += td * td
            td_count += 1
            if term or trunc:
                done = np.array([True])
                final = {"final_info": {k: np.array([v]) for k, v in info.items()}}
                succ = episode_successes(final, done, np.array([ep_ret]), cfg.env.success_return)
                logger.episode(step, ep_ret, ep_len, float(succ[0]))
                ep_ret, ep_len = 0.0, 0
                s2, _ = env.reset()
                a2 = policy.act_one(int(s2), step, rng)
            s, a = s2, a2

            evaluation = None
            if step >= next_eval:
                evaluation = evaluator(policy.greedy)
                next_eval += t.eval_freq
                if evaluation["mean_return"] > best:
                    best = evaluation["mean_return"]
                    checkpoint("best")
                if t.stop_return is not None and evaluation["mean_return"] >= t.stop_return:
                    solved_at = step
            if step >= next_log or evaluation is not None:
                mse = td_err_sum / td_count if td_count else math.nan
                logger.log(step, {"explore": explorer.value(step), "loss": mse}, evaluation)
                td_err_sum, td_count = 0.0, 0
                next_log += t.log_freq if step >= next_log else 0
            if solved_at is not None:
                break
            if step >= next_ckpt:
                checkpoint("last")
                next_ckpt += t.checkpoint_freq
        final_eval = evaluation
        if final_eval is None:
            final_eval = evaluator(policy.greedy)
            logger.log(step, {"explore": explorer.value(step)}, final_eval)
            if final_eval["mean_return"] > best:
                best = final_eval["mean_return"]
                checkpoint("best")
        checkpoint("last")
    finally:
        logger.close()
        env.close()
        evaluator.close()
    write_eval_json(run_dir, {**final_eval, "step": step, "checkpoint": "last"})
    plot_learning_curve(run_dir, title=f"{cfg.name}: {algo} on {cfg.env.id}")
    return TrainResult(
        run_dir=run_dir,
        steps=step,
        final_eval=final_eval,
        best_eval_return=best,
        solved_at_step=solved_at,
        eval_history=logger.eval_history,
        wall_time_s=logger.elapsed(),
    )


def value_iteration(env: gym.Env, gamma: float, tol: float = 1e-10) -> np.ndarray:
    """Optimal Q* of a toy-text env from its transition model ``env.unwrapped.P``.

    The reference against which the tabular agents are tested: a greedy policy on Q* attains
    the optimal return.
    """
    model = env.unwrapped.P  # type: ignore[attr-defined]
    n_s, n_a = len(model), len(model[0])
    q_SA = np.zeros((n_s, n_a))
    while True:
        v_S = q_SA.max(axis=1)
        new = np.zeros_like(q_SA)
        for s in range(n_s):
            for a in range(n_a):
                new[s, a] = sum(
                    p * (r + (0.0 if done else gamma * v_S[s2])) for p, s2, r, done in model[s][a]
                )
        if np.abs(new - q_SA).max() < tol:
            return new
        q_SA = new
