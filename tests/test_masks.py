"""Action-mask helpers: reading masks from infos/observations and masked action rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drlzero.errors import UserError
from drlzero.masks import (
    masked_argmax,
    masked_logits,
    masked_max,
    read_mask,
    uniform_allowed,
)


def test_read_mask_absent_is_none() -> None:
    assert read_mask({}, 2, 3) is None


def test_read_mask_fills_envs_without_one() -> None:
    info = {
        "action_mask": np.array([[1, 0, 1], [0, 0, 0]]),
        "_action_mask": np.array([True, False]),
    }
    mask = read_mask(info, 2, 3)
    assert mask is not None
    np.testing.assert_array_equal(mask, [[True, False, True], [True, True, True]])
    assert info["action_mask"][1].sum() == 0  # the env's info is not modified


def test_read_mask_wrong_shape_is_one_line_error() -> None:
    with pytest.raises(UserError, match=r"shape \(2, 4\), expected \(2, 3\)"):
        read_mask({"action_mask": np.ones((2, 4))}, 2, 3)


def test_empty_mask_raises() -> None:
    with pytest.raises(UserError, match="allows no action"):
        read_mask({"action_mask": np.array([[1, 0], [0, 0]])}, 2, 2)


def test_masked_rules_by_hand() -> None:
    q = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    mask = torch.tensor([[False, True, True], [True, False, True]])
    assert masked_argmax(q, mask).tolist() == [2, 0]
    assert masked_max(q, mask).tolist() == [2.0, 0.0]
    probs = torch.softmax(masked_logits(q, mask), dim=1)
    assert probs[0, 0].item() == 0.0 and probs[1, 1].item() == 0.0
    expected = torch.softmax(torch.tensor([1.0, 2.0]), dim=0)
    torch.testing.assert_close(probs[0, 1:], expected)
    assert masked_argmax(q, None).tolist() == [0, 1]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda a: st.lists(
            st.lists(st.booleans(), min_size=a, max_size=a).filter(any), min_size=1, max_size=8
        )
    ),
    st.integers(0, 2**31 - 1),
)
def test_masked_actions_never_chosen(rows: list[list[bool]], seed: int) -> None:
    mask = np.array(rows, dtype=bool)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        a = uniform_allowed(rng, mask)
        assert mask[np.arange(len(a)), a].all()
    q = torch.from_numpy(rng.normal(size=mask.shape))
    greedy = masked_argmax(q, torch.from_numpy(mask)).numpy()
    assert mask[np.arange(len(greedy)), greedy].all()
    probs = torch.softmax(masked_logits(q, torch.from_numpy(mask)), dim=1).numpy()
    assert (probs[~mask] == 0.0).all()


def test_uniform_allowed_is_uniform() -> None:
    mask = np.array([[True, False, True, True]] * 30_000)
    a = uniform_allowed(np.random.default_rng(0), mask)
    freq = np.bincount(a, minlength=4) / len(a)
    np.testing.assert_allclose(freq, [1 / 3, 0, 1 / 3, 1 / 3], atol=0.01)


def test_mask_source_acting_mask_every_step() -> None:
    from drlzero.masks import MaskSource

    assert MaskSource("none", 2, 3).acting({"action_mask": np.ones((2, 3))}) is None
    src = MaskSource("info", 2, 3)
    got = src.acting({"action_mask": np.array([[1, 0, 1], [0, 1, 0]])})
    np.testing.assert_array_equal(got, [[True, False, True], [False, True, False]])
    # a step whose info holds no mask allows every action
    np.testing.assert_array_equal(src.acting({}), np.ones((2, 3), bool))
