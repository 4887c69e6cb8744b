"""The tabular training loop (Q-learning, SARSA, Expected SARSA of :mod:`drlzero.algos.tabular`):
act -> step -> one TD update per env step; :class:`~drlzero.train.run.Run` does the evaluation,
logs and checkpoints (the same run directory as every other algorithm).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlzero.algos.tabular import TabularPolicy, td_target
from drlzero.config import Config
from drlzero.envs import episode_successes, make_env
from drlzero.envs.state import get_env_state, set_env_state
from drlzero.errors import ConfigError
from drlzero.exploration import build_explorer
from drlzero.train.evaluate import Evaluator
from drlzero.train.run import (
    EVAL_SEED_OFFSET,
    EvalCallback,
    Run,
    TrainResult,
    rng_state,
    set_rng_state,
)
from drlzero.utils import seed_everything


def _check_spaces(cfg: Config, env: gym.Env) -> tuple[int, int]:
    if not isinstance(env.observation_space, gym.spaces.Discrete) or not isinstance(
        env.action_space, gym.spaces.Discrete
    ):
        raise ConfigError(
            f"{cfg.algo} is tabular and needs Discrete observations and actions, but {cfg.env.id} "
            f"has {env.observation_space} / {env.action_space}; use --algo dqn"
        )
    return int(env.observation_space.n), int(env.action_space.n)


def train_tabular(
    cfg: Config, run_dir: Path, *, resume: bool = False, on_eval: EvalCallback | None = None
) -> TrainResult:
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
    s, _ = env.reset(seed=t.seed)
    ep_ret, ep_len = 0.0, 0
    td_sq, td_n = 0.0, 0  # squared TD errors since the last metrics row: its "loss" (MSE)

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        meta = {"rng_numpy": rng_state(rng), "env_state": get_env_state(env), "obs": int(s)}
        meta.update(action=int(a), ep_ret=ep_ret, ep_len=ep_len)
        return {"q_table": torch.from_numpy(q_SA.copy())}, meta

    def scalars() -> dict[str, float]:
        nonlocal td_sq, td_n
        mse = td_sq / td_n if td_n else math.nan
        td_sq, td_n = 0.0, 0
        return {"explore": explorer.value(run.step), "loss": mse}

    title = f"{cfg.name}: {algo} on {cfg.env.id}"
    with Run(
        cfg,
        run_dir,
        kind="tabular",
        resume=resume,
        on_eval=on_eval,
        evaluate=lambda: evaluator(policy.greedy),
        state=state,
        title=title,
        closing=[env, evaluator],
    ) as run:
        a: int | None = None
        if run.loaded is not None:
            tensors, meta = run.loaded
            q_SA[:] = tensors["q_table"].numpy()
            set_rng_state(rng, meta["rng_numpy"])
            if meta.get("env_state") is not None:
                set_env_state(env, meta["env_state"])
                s, ep_ret, ep_len, a = meta["obs"], meta["ep_ret"], meta["ep_len"], meta["action"]
            else:
                warnings.warn(
                    "env state was not saved: resume starts a fresh episode", stacklevel=2
                )
                s, _ = env.reset(seed=t.seed + run.step)
        if a is None:
            a = policy.act_one(int(s), run.step, rng)
        while not run.done:
            s2, r, term, trunc, info = env.step(a)
            run.count(1)
            ep_ret += float(r)
            ep_len += 1
            a2 = policy.act_one(int(s2), run.step, rng)
            probs = (
                explorer.probs(q_SA[s2 : s2 + 1], run.step)[0] if algo == "expected_sarsa" else None
            )
            y = td_target(
                algo, float(r), bool(term), q_SA[s2], tc.gamma, next_action=a2, next_probs_A=probs
            )
            td = y - q_SA[s, a]
            q_SA[s, a] += tc.lr * td
            td_sq += td * td
            td_n += 1
            if term or trunc:
                final = {"final_info": {k: np.array([v]) for k, v in info.items()}}
                succ = episode_successes(
                    final, np.array([True]), np.array([ep_ret]), cfg.env.success_return
                )
                run.episode(ep_ret, ep_len, float(succ[0]))
                ep_ret, ep_len = 0.0, 0
                s2, _ = env.reset()
                a2 = policy.act_one(int(s2), run.step, rng)
            s, a = s2, a2
            run.end_iteration(scalars)
        return run.finish({"explore": explorer.value(run.step)})
