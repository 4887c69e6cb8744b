"""Learning tests: real reward thresholds on small envs."""

from __future__ import annotations

from pathlib import Path

import pytest

from drlzero import evaluate, train
from drlzero.config import load_config


def test_cartpole_dqn_preset_solves(tmp_path: Path, fast: list[str]) -> None:
    result = train(load_config("cartpole-dqn", overrides=fast), out=tmp_path / "run")
    assert result.solved_at_step is not None, result.eval_history
    assert result.solved_at_step <= 50_000
    # the saved best checkpoint holds up on fresh evaluation seeds
    again = evaluate(result.run_dir, episodes=10, seed=123, write=False)
    assert again["mean_return"] >= 400


@pytest.mark.parametrize(
    "extra",
    [
        ["dqn.dueling=true"],
        ["exploration.kind=softmax", "exploration.start=1.0", "exploration.end=0.05"],
        ["dqn.optimizer=rmsprop", "dqn.loss=mse", "dqn.tau=0.05", "dqn.target_update_interval=4"],
        ["env.num_envs=4", "env.vectorization=async"],
        ["exploration.schedule=exponential", "exploration.decay=0.99"],
    ],
)
def test_dqn_options_smoke(tmp_path: Path, fast: list[str], extra: list[str]) -> None:
    cfg = load_config(
        "cartpole-dqn",
        overrides=[
            *fast,
            *extra,
            "train.total_steps=400",
            "dqn.learning_starts=100",
            "train.eval_episodes=2",
        ],
    )
    result = train(cfg, out=tmp_path / "run")
    assert result.steps >= 400
    assert (result.run_dir / "eval.json").is_file()


COMPONENTS = {
    "double+dueling": ["dqn.double=true", "dqn.dueling=true"],
    "prioritized": ["dqn.prioritized=true"],
    "n-step": ["dqn.n_step=3"],
    "c51": ["dqn.distributional=c51", "dqn.v_min=0", "dqn.v_max=100"],
    "qr": ["dqn.distributional=qr"],
    "noisy": ["dqn.noisy=true", "exploration.start=0", "exploration.end=0"],
}


@pytest.mark.slow
@pytest.mark.parametrize("component", list(COMPONENTS))
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
