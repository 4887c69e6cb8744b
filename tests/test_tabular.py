from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drlzero import evaluate, train
from drlzero.algos.tabular import TabularPolicy, td_target, value_iteration
from drlzero.config import load_config
from drlzero.envs import make_env
from drlzero.train.evaluate import evaluate_policy


def test_td_targets_by_hand() -> None:
    q = np.array([1.0, 3.0, 2.0])
    assert td_target("qlearning", 1.0, False, q, 0.5) == 2.5
    assert td_target("sarsa", 1.0, False, q, 0.5, next_action=2) == 2.0
    probs = np.array([0.2, 0.6, 0.2])
    assert td_target("expected_sarsa", 1.0, False, q, 0.5, next_probs_A=probs) == pytest.approx(
        1.0 + 0.5 * (0.2 + 1.8 + 0.4)
    )
    assert td_target("qlearning", 1.0, True, q, 0.5) == 1.0


def _optimal_return(preset: str, episodes: int, seed: int) -> float:
    cfg = load_config(preset)
    q_star = value_iteration(make_env(cfg.env), cfg.tabular.gamma)
    return evaluate_policy(TabularPolicy(q_star).greedy, cfg.env, episodes, seed)["mean_return"]


@pytest.mark.learning
@pytest.mark.parametrize("preset", ["frozenlake-qlearning", "cliffwalking-expected-sarsa"])
def test_reaches_the_optimal_return(tmp_path: Path, fast: list[str], preset: str) -> None:
    result = train(load_config(preset, overrides=fast), out=tmp_path / "run")
    got = evaluate(result.run_dir, episodes=20, seed=7, write=False)["mean_return"]
    assert got == pytest.approx(_optimal_return(preset, 20, 7))


@pytest.mark.learning
def test_taxi_sarsa_is_within_one_percent_of_optimal(tmp_path: Path, fast: list[str]) -> None:
    """Near-optimal, not exact: a few rarely visited start states stay slightly suboptimal."""
    result = train(load_config("taxi-sarsa", overrides=fast), out=tmp_path / "run")
    got = evaluate(result.run_dir, episodes=100, seed=7, write=False, checkpoint="last")
    assert got["mean_return"] >= 0.99 * _optimal_return("taxi-sarsa", 100, 7)


def test_tabular_rejects_continuous_observations(tmp_path: Path, fast: list[str]) -> None:
    from drlzero.errors import ConfigError

    cfg = load_config(None, overrides=[*fast, "algo=qlearning", "env.id=CartPole-v1"])
    with pytest.raises(ConfigError, match="use --algo dqn"):
        train(cfg, out=tmp_path / "run")
