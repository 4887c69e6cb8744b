"""N-step accumulator against hand-computed returns (n=3, gamma=0.5) and a plain reference."""

from __future__ import annotations

import numpy as np
import pytest

from drlzero.replay import NStepAccumulator, NStepTransitions

N, GAMMA = 3, 0.5


def _push(acc: NStepAccumulator, t: int, rewards, terminated, truncated) -> NStepTransitions:
    """Env e at step t sees obs [100 e + t], takes action 10 e + t, moves to obs + 1."""
    e = np.arange(acc.num_envs)
    obs = (100 * e + t)[:, None].astype(np.float32)
    return acc.push(
        obs,
        10 * e + t,
        np.asarray(rewards, np.float32),
        obs + 1,
        np.asarray(terminated, bool),
        np.asarray(truncated, bool),
    )


def _check(out: NStepTransitions, rows: list[tuple]) -> None:
    """rows: (obs, action, return, next_obs, terminated, discount) expected, in order."""
    assert len(out.returns) == len(rows)
    if not rows:
        return
    obs, act, ret, nxt, term, disc = (np.array(c) for c in zip(*rows, strict=True))
    np.testing.assert_array_equal(out.obs[:, 0], obs)
    np.testing.assert_array_equal(out.actions, act)
    np.testing.assert_allclose(out.returns, ret, rtol=1e-6)
    np.testing.assert_array_equal(out.next_obs[:, 0], nxt)
    np.testing.assert_array_equal(out.terminated, term)
    np.testing.assert_allclose(out.discount, disc, rtol=1e-6)
    assert out.returns.dtype == out.terminated.dtype == out.discount.dtype == np.float32
    assert out.actions.dtype == np.int64


@pytest.mark.parametrize("terminates", [True, False])
def test_five_step_episode_by_hand(terminates: bool) -> None:
    # rewards 1..5 over steps 0..4, the episode ends at step 4 (terminated or truncated)
    acc = NStepAccumulator(N, GAMMA, num_envs=1, obs_shape=(1,))
    end = 1.0 if terminates else 0.0
    _check(_push(acc, 0, [1], [False], [False]), [])
    _check(_push(acc, 1, [2], [False], [False]), [])
    # 1 + .5*2 + .25*3 = 2.75, bootstrapped from obs 3 with gamma^3
    _check(_push(acc, 2, [3], [False], [False]), [(0, 0, 2.75, 3, 0.0, 0.125)])
    _check(_push(acc, 3, [4], [False], [False]), [(1, 1, 4.5, 4, 0.0, 0.125)])
    # the end flushes three windows, all ending at the final obs 5: 3 + 2 + 1.25, 4 + 2.5, 5;
    # a truncation keeps terminated = 0, so they bootstrap from obs 5 with gamma^m
    _check(
        _push(acc, 4, [5], [terminates], [not terminates]),
        [(2, 2, 6.25, 5, end, 0.125), (3, 3, 6.5, 5, end, 0.25), (4, 4, 5.0, 5, end, 0.5)],
    )
    # the next episode starts clean: no reward of the old one leaks into it
    _check(_push(acc, 5, [1], [False], [False]), [])
    _check(_push(acc, 6, [1], [False], [False]), [])
    _check(_push(acc, 7, [1], [False], [False]), [(5, 5, 1.75, 8, 0.0, 0.125)])


def test_two_envs_ending_at_different_steps() -> None:
    # env 0: reward 1 per step, terminates at step 1; env 1: reward t + 1, truncated at step 3
    acc = NStepAccumulator(N, GAMMA, num_envs=2, obs_shape=(1,))
    _check(_push(acc, 0, [1, 1], [False, False], [False, False]), [])
    _check(
        _push(acc, 1, [1, 2], [True, False], [False, False]),
        [(0, 0, 1.5, 2, 1.0, 0.25), (1, 1, 1.0, 2, 1.0, 0.5)],
    )
    _check(
        _push(acc, 2, [1, 3], [False, False], [False, False]),
        [(100, 10, 2.75, 103, 0.0, 0.125)],
    )
    _check(
        _push(acc, 3, [1, 4], [False, False], [False, True]),
        [
            (101, 11, 4.5, 104, 0.0, 0.125),
            (102, 12, 5.0, 104, 0.0, 0.25),
            (103, 13, 4.0, 104, 0.0, 0.5),
        ],
    )
    # env 0's second episode (steps 2, 3, 4) closes its first full window only now
    _check(
        _push(acc, 4, [1, 5], [False, False], [False, False]),
        [(2, 2, 1.75, 5, 0.0, 0.125)],
    )


def test_n1_is_the_one_step_transition() -> None:
    rng = np.random.default_rng(0)
    acc = NStepAccumulator(1, 0.9, num_envs=3, obs_shape=(2,), obs_dtype=np.float64)
    for _ in range(20):
        obs, next_obs = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
        act, rew = rng.integers(0, 4, 3), rng.normal(size=3).astype(np.float32)
        term, trunc = rng.random(3) < 0.2, rng.random(3) < 0.2
        out = acc.push(obs, act, rew, next_obs, term, trunc)
        np.testing.assert_array_equal(out.obs, obs)
        np.testing.assert_array_equal(out.actions, act)
        np.testing.assert_array_equal(out.returns, rew)
        np.testing.assert_array_equal(out.next_obs, next_obs)
        np.testing.assert_array_equal(out.terminated, term.astype(np.float32))
        np.testing.assert_array_equal(out.discount, np.full(3, 0.9, np.float32))


def _reference(n: int, gamma: float, steps: list) -> list[tuple]:
    """Plain per-env lists; every window is summed from scratch when it closes."""
    out, pending = [], {}
    for obs, act, rew, nxt, term, trunc in steps:
        for e in range(len(act)):
            pending.setdefault(e, []).append((obs[e, 0], act[e], rew[e]))
            done = term[e] or trunc[e]
            starts = range(len(pending[e])) if done else ([0] if len(pending[e]) == n else [])
            for s in starts:
                window = pending[e][s:]
                ret = sum(gamma**k * r for k, (_, _, r) in enumerate(window))
                o, a, _ = window[0]
                out.append((e, o, a, ret, nxt[e, 0], float(term[e]), gamma ** len(window)))
            pending[e] = [] if done else pending[e][len(starts) :]
    return out


@pytest.mark.parametrize("n", [1, 2, 4])
def test_random_episodes_match_a_plain_reference(n: int) -> None:
    rng = np.random.default_rng(n)
    acc = NStepAccumulator(n, 0.9, num_envs=3, obs_shape=(1,))
    steps, got = [], {}
    for t in range(60):
        obs = np.full((3, 1), t, np.float32) + np.arange(3)[:, None] * 1000
        act, rew = rng.integers(0, 5, 3), rng.normal(size=3)
        step = (obs, act, rew, obs + 0.5, rng.random(3) < 0.1, rng.random(3) < 0.1)
        steps.append(step)
        out = acc.push(*step)
        for k, start in enumerate(out.obs[:, 0]):  # obs 1000 e + t names env e's window at t
            row = (out.actions[k], out.returns[k], out.next_obs[k, 0])
            got[float(start)] = (*row, out.terminated[k], out.discount[k])
    want = {float(o): row for _, o, *row in _reference(n, 0.9, steps)}
    assert got.keys() == want.keys()
    for start, row in want.items():
        assert got[start] == pytest.approx(row, rel=1e-5, abs=1e-6)


def test_state_round_trip_continues_identically() -> None:
    a = NStepAccumulator(N, GAMMA, num_envs=2, obs_shape=(1,))
    _push(a, 0, [1, 2], [False, False], [False, False])
    _push(a, 1, [3, 4], [False, True], [False, False])
    arrays, meta = a.state()
    b = NStepAccumulator(N, GAMMA, num_envs=2, obs_shape=(1,))
    b.load_state(arrays, meta)
    for t in (2, 3):
        out_a = _push(a, t, [5, 6], [False, False], [False, False])
        out_b = _push(b, t, [5, 6], [False, False], [False, False])
        for x, y in zip(out_a, out_b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert len(out_a.returns) > 0
