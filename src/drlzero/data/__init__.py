"""Trajectory datasets: collect them from policies, read them back lazily.

See docs/data.md for the on-disk format.
"""

from __future__ import annotations

from drlzero.data.collect import collect
from drlzero.data.dataset import (
    FORMAT,
    FORMAT_VERSION,
    Episode,
    TrajectoryDataset,
    TransitionBatch,
    open_collection,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Episode",
    "TrajectoryDataset",
    "TransitionBatch",
    "collect",
    "open_collection",
]
