"""Prioritized replay sampler: proportional sampling, importance weights, beta, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drlzero.replay import PrioritizedSampler, importance_weights


def test_sampling_frequency_is_proportional_to_priority() -> None:
    sampler = PrioritizedSampler(10, alpha=0.6, seed=1)
    sampler.on_add(np.arange(8))  # indices 8, 9 of the storage stay empty
    td = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 0.25, 4.0, 1.5])
    sampler.update_priorities(np.arange(8), td)
    expected = (np.abs(td) + 1e-6) ** 0.6
    expected /= expected.sum()
    draws, batch = 51_200, 64
    counts = np.zeros(10)
    for _ in range(draws // batch):
        idx, _ = sampler.sample(batch, size=8, step=0)
        counts += np.bincount(idx, minlength=10)
    assert counts[8:].sum() == 0
    # index 0 has td 0: priority eps^alpha ~ 2.5e-4 of the total, about 0.3 expected draws
    assert counts[0] <= 5
    live = slice(1, 8)
    chi2 = ((counts[live] - draws * expected[live]) ** 2 / (draws * expected[live])).sum()
    assert chi2 < 24.3  # 99.9% quantile of chi-square with 6 degrees of freedom
    # (stratification only lowers the variance, so the i.i.d. threshold is conservative)


def test_importance_weights_by_hand() -> None:
    # priorities 1, 2, 3, 4 -> P = 0.1, 0.2, 0.3, 0.4; N = 4, beta = 0.5:
    # (4 P)^-0.5 = 0.4^-0.5, 0.8^-0.5, 1.2^-0.5, 1.6^-0.5 = 1.58114, 1.11803, 0.91287, 0.79057
    raw = np.array([1.58114, 1.11803, 0.91287, 0.79057])
    np.testing.assert_allclose(
        importance_weights(np.array([0.1, 0.2, 0.3, 0.4]), 4, 0.5), raw / raw[0], rtol=1e-5
    )
    # the max normalisation is over the batch: without index 0 the largest weight is index 1's
    np.testing.assert_allclose(
        importance_weights(np.array([0.2, 0.4, 0.3]), 4, 0.5),
        [1.0, 0.79057 / 1.11803, 0.91287 / 1.11803],
        rtol=1e-5,
    )
    # the sampler uses the same formula: alpha 1, eps 0 make the priorities |td| exactly
    sampler = PrioritizedSampler(4, alpha=1.0, eps=0.0, beta_start=0.5, beta_end=0.5, seed=0)
    sampler.on_add(np.arange(4))
    sampler.update_priorities(np.arange(4), np.array([-1.0, 2.0, -3.0, 4.0]))
    for _ in range(20):
        idx, w = sampler.sample(4, size=4, step=0)
        assert w.dtype == np.float32 and idx.dtype == np.int64
        np.testing.assert_allclose(w, raw[idx] / raw[idx].max(), rtol=1e-5)
        assert idx[-1] == 3  # the last segment [7.5, 10) lies inside index 3's interval [6, 10)


def test_beta_is_annealed_linearly_then_held() -> None:
    sampler = PrioritizedSampler(4, beta_start=0.4, beta_end=1.0, beta_steps=1000)
    assert [sampler.beta(s) for s in (0, 500, 1000, 5000)] == pytest.approx([0.4, 0.7, 1.0, 1.0])
    # with beta = 0 every weight is 1
    sampler = PrioritizedSampler(4, alpha=1.0, beta_start=0.0, beta_end=1.0, beta_steps=10)
    sampler.on_add(np.arange(4))
    sampler.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert np.all(sampler.sample(8, size=4, step=0)[1] == 1.0)
    assert not np.all(sampler.sample(8, size=4, step=10)[1] == 1.0)


def test_new_transitions_get_the_max_priority() -> None:
    sampler = PrioritizedSampler(4, alpha=0.5, eps=0.0)
    sampler.on_add(np.array([0]))
    assert sampler.tree[0] == 1.0  # before any TD error: 1
    sampler.update_priorities(np.array([0]), np.array([16.0]))  # p = 16^0.5 = 4
    sampler.on_add(np.array([1, 2]))
    assert sampler.tree[np.arange(3)].tolist() == [4.0, 4.0, 4.0]


def test_state_round_trip_gives_identical_next_samples() -> None:
    a = PrioritizedSampler(16, seed=7)
    a.on_add(np.arange(12))
    idx, _ = a.sample(8, size=12, step=3)
    a.update_priorities(idx, np.linspace(0.1, 3.0, 8))
    a.sample(8, size=12, step=4)
    arrays, meta = a.state()
    meta = json.loads(json.dumps(meta))  # what a JSON checkpoint gives back
    b = PrioritizedSampler(16, seed=999)
    b.load_state({k: v.copy() for k, v in arrays.items()}, meta)
    assert b.tree.max_priority == a.tree.max_priority
    np.testing.assert_array_equal(b.tree.nodes, a.tree.nodes)
    for step in (5, 6, 7):
        (ia, wa), (ib, wb) = a.sample(8, size=12, step=step), b.sample(8, size=12, step=step)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(wa, wb)


def test_empty_sampler_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="no transition"):
        PrioritizedSampler(4).sample(2, size=0, step=0)
    with pytest.raises(ValueError, match="beta"):
        PrioritizedSampler(4, beta_end=1.5)
    with pytest.raises(ValueError, match="alpha"):
        PrioritizedSampler(4, alpha=-1.0)
