"""Property tests of the vectorized sum tree against plain NumPy sums and searchsorted.

Priorities are small integers (as float64) in the exact-comparison properties: every partial sum
is then exact, so the tree and ``np.cumsum`` agree bit for bit even at interval boundaries.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drlzero.replay import SumTree

FAST = settings(max_examples=50, deadline=None, database=None)  # no .hypothesis/ in the tree


@st.composite
def trees(draw: st.DrawFn, integer: bool = True) -> tuple[SumTree, np.ndarray]:
    """A tree after a random sequence of (possibly duplicate-index) batched updates, and the
    leaf values a plain array gets from the same writes."""
    capacity = draw(st.integers(1, 40))
    tree, leaves = SumTree(capacity), np.zeros(capacity)
    value = st.integers(0, 9).map(float) if integer else st.floats(0, 1e3, allow_subnormal=False)
    for _ in range(draw(st.integers(1, 6))):
        k = draw(st.integers(0, 12))
        idx = np.array(draw(st.lists(st.integers(0, capacity - 1), min_size=k, max_size=k)))
        pri = np.array(draw(st.lists(value, min_size=k, max_size=k)))
        tree.update(idx.astype(np.int64), pri)
        for i, p in zip(idx.tolist(), pri.tolist(), strict=True):  # sequential: last write wins
            leaves[i] = p
    return tree, leaves


@FAST
@given(trees(integer=False))
def test_root_and_every_internal_node_are_sums(case: tuple[SumTree, np.ndarray]) -> None:
    tree, leaves = case
    np.testing.assert_array_equal(tree[np.arange(tree.capacity)], leaves)
    assert tree.total == pytest.approx(leaves.sum(), rel=1e-12, abs=1e-12)
    nodes = tree.nodes
    num_leaves = len(nodes) // 2
    internal = np.arange(1, num_leaves)
    np.testing.assert_array_equal(nodes[internal], nodes[2 * internal] + nodes[2 * internal + 1])
    assert np.all(nodes[num_leaves + tree.capacity :] == 0)  # padding leaves


@FAST
@given(trees(integer=True), st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=30))
def test_find_prefix_sum_matches_searchsorted(
    case: tuple[SumTree, np.ndarray], fractions: list[float]
) -> None:
    tree, leaves = case
    if leaves.sum() == 0:
        return
    cumsum = np.cumsum(leaves)
    # interval boundaries (each in [0, total)) as well as interior points
    bounds = cumsum[cumsum < cumsum[-1]]
    values = np.concatenate([np.array(fractions) * cumsum[-1], bounds, [0.0]])
    found = tree.find_prefix_sum(values)
    np.testing.assert_array_equal(found, np.searchsorted(cumsum, values, side="right"))
    assert np.all(leaves[found] > 0)


@FAST
@given(trees(integer=False), st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_zero_priority_leaves_are_never_returned(
    case: tuple[SumTree, np.ndarray], fractions: list[float]
) -> None:
    tree, leaves = case
    if tree.total == 0:
        return
    # includes values == total and just below it, where rounding could step into a zero leaf
    values = np.concatenate([np.array(fractions), [1.0, np.nextafter(1.0, 0)]]) * tree.total
    found = tree.find_prefix_sum(values)
    assert np.all(leaves[found] > 0)
    cumsum = np.cumsum(leaves)
    lo, hi = np.concatenate([[0.0], cumsum[:-1]])[found], cumsum[found]
    tol = 1e-9 * tree.total
    assert np.all((lo - tol <= values) & (values <= hi + tol))


def test_duplicate_indices_last_write_wins_and_max_priority_runs() -> None:
    tree = SumTree(5)
    assert tree.max_priority == 1.0  # the priority of the very first transitions
    tree.update(np.array([3, 1, 3, 3]), np.array([7.0, 2.0, 0.5, 4.0]))
    assert tree[np.array([1, 3])].tolist() == [2.0, 4.0]
    assert tree.total == 6.0 and tree.max_priority == 7.0  # 7 was written, then overwritten
    tree.update(np.array([3]), np.array([0.0]))
    assert tree.total == 2.0 and tree.max_priority == 7.0
    assert tree.find_prefix_sum(np.array([-1.0, 0.0, 1.99, 5.0])).tolist() == [1, 1, 1, 1]


def test_bad_inputs_are_refused() -> None:
    tree = SumTree(3)
    with pytest.raises(ValueError, match="empty"):
        tree.find_prefix_sum(np.array([0.0]))
    with pytest.raises(IndexError):
        tree.update(np.array([3]), np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        tree.update(np.array([0]), np.array([np.nan]))
    with pytest.raises(TypeError):
        tree[np.array([0.5])]
