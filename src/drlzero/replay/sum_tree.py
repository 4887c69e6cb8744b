"""A vectorized sum tree: O(log C) priority updates and prefix-sum sampling for K items at once.

The tree is a binary heap in one float64 array of ``2 * L`` nodes, where ``L`` is the capacity
rounded up to a power of two: node 1 is the root, node ``i`` has children ``2i`` and ``2i + 1``,
and the leaves are nodes ``L .. 2L - 1`` (node 0 is unused). Padding leaves stay 0 and are never
returned. Every operation is vectorized over its K inputs; the only Python loop runs over the
``log2 L`` levels of the tree.

Example:
    >>> import numpy as np
    >>> tree = SumTree(4)
    >>> tree.update(np.array([0, 1, 2, 3]), np.array([1.0, 0.0, 2.0, 1.0]))
    >>> tree.total
    4.0
    >>> tree.find_prefix_sum(np.array([0.5, 1.0, 2.9, 3.5])).tolist()
    [0, 2, 2, 3]
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Non-negative priorities of ``capacity`` items with their running sums.

    Args:
        capacity: number of items (leaf indices ``0 .. capacity - 1``).

    Attributes:
        capacity: as given.
        max_priority: the largest priority ever written (starts at 1.0, never decreases): the
            priority a new item gets before its TD error is known (Schaul et al. 2016, Alg. 1).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._depth = (capacity - 1).bit_length()  # levels below the root
        self._num_leaves = 1 << self._depth
        self._nodes = np.zeros(2 * self._num_leaves, dtype=np.float64)
        self.max_priority = 1.0

    @property
    def total(self) -> float:
        """The sum of all priorities (the root)."""
        return float(self._nodes[1])

    @property
    def nodes(self) -> np.ndarray:
        """A read-only view of the heap array (index 1 is the root; for tests and debugging)."""
        view = self._nodes.view()
        view.flags.writeable = False
        return view

    def __getitem__(self, indices: np.ndarray | int) -> np.ndarray:
        """Priorities of the items ``indices`` (any integer shape), as float64."""
        return self._nodes[self._num_leaves + self._check(indices)]

    def update(self, indices_K: np.ndarray, priorities_K: np.ndarray) -> None:
        """Set the priorities of items ``indices_K``; with duplicate indices the last one wins.

        Args:
            indices_K: item indices in ``[0, capacity)``.
            priorities_K: finite priorities ``>= 0``, same length as ``indices_K``.
        """
        indices_K = self._check(indices_K).reshape(-1)
        priorities_K = np.asarray(priorities_K, dtype=np.float64).reshape(-1)
        if indices_K.shape != priorities_K.shape:
            raise ValueError(f"{indices_K.shape[0]} indices but {priorities_K.shape[0]} priorities")
        if indices_K.size == 0:
            return
        if not np.all(np.isfinite(priorities_K)) or np.any(priorities_K < 0):
            raise ValueError("priorities must be finite and >= 0")
        if indices_K.size > 1:
            # Last write wins: the first occurrence in the reversed order is the last one.
            uniq, first_rev = np.unique(indices_K[::-1], return_index=True)
            nodes = uniq + self._num_leaves
            self._nodes[nodes] = priorities_K[::-1][first_rev]
        else:
            nodes = indices_K + self._num_leaves
            self._nodes[nodes] = priorities_K
        self.max_priority = max(self.max_priority, float(priorities_K.max()))
        for _ in range(self._depth):  # recompute the parents, level by level, bottom-up
            # Duplicate parents get the same sum written twice: no need to deduplicate.
            nodes = nodes >> 1
            self._nodes[nodes] = self._nodes[2 * nodes] + self._nodes[2 * nodes + 1]

    def find_prefix_sum(self, values_K: np.ndarray) -> np.ndarray:
        """For each value ``v``, the item ``i`` with ``sum(p[:i]) <= v < sum(p[:i + 1])``.

        The item is drawn with probability proportional to its priority when ``v`` is uniform in
        ``[0, total)``. Items of priority 0 are never returned, even under rounding: the descent
        never enters a subtree whose sum is 0. Values outside ``[0, total)`` are clamped to the
        first or last item of positive priority.

        Args:
            values_K: prefix sums to look up.

        Returns:
            Item indices, int64, shape of ``values_K``.
        """
        if not self._nodes[1] > 0:
            raise ValueError("the sum tree is empty (total priority 0)")
        values_K = np.maximum(np.asarray(values_K, dtype=np.float64), 0.0)
        shape = values_K.shape
        values_K = values_K.reshape(-1).copy()
        nodes_K = np.ones(values_K.shape[0], dtype=np.int64)
        for _ in range(self._depth):
            left_K = 2 * nodes_K
            left_sum_K = self._nodes[left_K]
            right_K = (values_K >= left_sum_K) & (self._nodes[left_K + 1] > 0)
            values_K -= np.where(right_K, left_sum_K, 0.0)
            nodes_K = left_K + right_K
        return (nodes_K - self._num_leaves).reshape(shape)

    def _check(self, indices: np.ndarray | int) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"indices must be integers, got {indices.dtype}")
        indices = indices.astype(np.int64, copy=False)
        if indices.size and (indices.min() < 0 or indices.max() >= self.capacity):
            raise IndexError(f"indices must lie in [0, {self.capacity})")
        return indices
