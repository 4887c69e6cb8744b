"""The lean SAME_STEP vector env returns exactly what Gymnasium's SyncVectorEnv returns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from drlzero.envs.vector import SameStepSyncVectorEnv


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert len(a) == len(b)  # type: ignore[arg-type]
        for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
            _assert_same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def test_lean_step_matches_gymnasium_over_many_episodes() -> None:
    def fns() -> list:
        return [lambda: gym.make("CartPole-v1", max_episode_steps=30) for _ in range(3)]

    ref = SyncVectorEnv(fns(), autoreset_mode=AutoresetMode.SAME_STEP)
    lean = SameStepSyncVectorEnv(fns())
    assert lean._lean
    _assert_same(ref.reset(seed=7), lean.reset(seed=7))
    rng = np.random.default_rng(0)
    ep_len = np.zeros(3, dtype=np.int64)
    terms = truncs = 0
    for _ in range(300):
        actions = rng.integers(0, 2, size=3)
        out_ref, out_lean = ref.step(actions), lean.step(actions)
        _assert_same(out_ref, out_lean)
        obs, reward, term, trunc, info = out_lean
        ep_len += 1
        done = term | trunc
        np.testing.assert_array_equal(reward, np.ones(3))  # CartPole pays 1 per step
        np.testing.assert_array_equal(trunc, ep_len == 30)  # the time limit, and only it
        np.testing.assert_array_equal(info.get("_final_obs", np.zeros(3, bool)), done)
        for i in np.flatnonzero(done):
            # SAME_STEP: the last observation of the episode rides in the info, and obs[i] is
            # already the next episode's first (CartPole resets every coordinate to +-0.05).
            x, _, angle, _ = info["final_obs"][i]
            assert bool(term[i]) == (abs(x) > 2.4 or abs(angle) > 12 * 2 * np.pi / 360)
            assert np.abs(obs[i]).max() <= 0.05
        terms += int(term.sum())
        truncs += int(trunc.sum())
        ep_len[done] = 0
    assert terms > 5 and truncs > 5  # both kinds of ending were compared
    # the returned batch is a copy: stepping again must not change what the caller holds
    held = lean.step(np.zeros(3, dtype=np.int64))[0]
    before = held.copy()
    lean.step(np.ones(3, dtype=np.int64))
    np.testing.assert_array_equal(held, before)
