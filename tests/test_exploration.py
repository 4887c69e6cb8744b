import numpy as np
import pytest

from drlzero.config import ExplorationConfig
from drlzero.exploration import (
    ConstantSchedule,
    EpsilonGreedy,
    ExponentialSchedule,
    LinearSchedule,
    Softmax,
    build_explorer,
    softmax_probs,
)


def test_schedules_by_hand() -> None:
    lin = LinearSchedule(1.0, 0.1, duration=100)
    assert lin(0) == 1.0
    assert lin(50) == pytest.approx(0.55)
    assert lin(100) == pytest.approx(0.1)
    assert lin(10_000) == pytest.approx(0.1)
    exp = ExponentialSchedule(1.0, 0.05, decay=0.5)
    assert exp(1) == 0.5 and exp(2) == 0.25 and exp(10) == 0.05
    assert ConstantSchedule(0.3)(123) == 0.3
    cfg = ExplorationConfig(schedule="linear", start=1.0, end=0.0, fraction=0.5)
    ex = build_explorer(cfg, num_actions=3, total_steps=1000)
    assert ex.value(250) == pytest.approx(0.5)


def test_softmax_probabilities_by_hand() -> None:
    q = np.array([[0.0, np.log(3.0)]])
    np.testing.assert_allclose(softmax_probs(q, 1.0), [[0.25, 0.75]])
    # T = 0.5 squares the odds: 1 : 9
    np.testing.assert_allclose(softmax_probs(q, 0.5), [[0.1, 0.9]])
    # huge values stay finite
    assert np.isfinite(softmax_probs(np.array([[1e4, 0.0]]), 0.01)).all()


def test_softmax_sampling_matches_probabilities() -> None:
    ex = Softmax(ConstantSchedule(1.0), num_actions=2)
    rng = np.random.default_rng(0)
    q = np.tile([[0.0, np.log(3.0)]], (20_000, 1))
    freq = ex(q, 0, rng).mean()
    assert freq == pytest.approx(0.75, abs=0.01)


def test_epsilon_greedy_frequencies_and_probs() -> None:
    ex = EpsilonGreedy(ConstantSchedule(0.2), num_actions=4)
    rng = np.random.default_rng(0)
    q = np.tile([[0.0, 0.0, 5.0, 0.0]], (40_000, 1))
    acts = ex(q, 0, rng)
    # greedy w.p. 0.8 + 0.2/4
    assert (acts == 2).mean() == pytest.approx(0.85, abs=0.01)
    np.testing.assert_allclose(ex.probs(q[:1], 0), [[0.05, 0.05, 0.85, 0.05]])


def test_epsilon_zero_is_greedy_and_one_is_uniform() -> None:
    rng = np.random.default_rng(1)
    q = np.array([[1.0, 2.0, 0.0]] * 1000)
    assert (EpsilonGreedy(ConstantSchedule(0.0), 3)(q, 0, rng) == 1).all()
    acts = EpsilonGreedy(ConstantSchedule(1.0), 3)(None, 0, rng, np.ones(3000, bool))
    assert set(np.unique(acts)) == {0, 1, 2}


@pytest.mark.parametrize("num_actions", [2, 3, 7, 18])
def test_random_actions_are_uniform_and_in_range(num_actions: int) -> None:
    rng = np.random.default_rng(2)
    ex = EpsilonGreedy(ConstantSchedule(1.0), num_actions)
    acts = ex(None, 0, rng, np.ones(60_000, bool))
    assert acts.dtype == np.int64 and acts.min() == 0 and acts.max() == num_actions - 1
    freq = np.bincount(acts, minlength=num_actions) / len(acts)
    np.testing.assert_allclose(freq, 1.0 / num_actions, atol=0.01)
