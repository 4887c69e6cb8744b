"""Trajectory datasets on disk: ``.npy`` shards + a JSON manifest, read lazily, never pickled.

Layout of one dataset directory (format ``drlzero-trajectories``, version 1)::

    DIR/manifest.json
    DIR/shard-00000/{obs,actions,rewards,terminated,truncated,episode_ids,episode_starts}.npy
    DIR/shard-00001/...

Within a shard of S steps and K whole episodes (episodes never straddle shards):

- ``obs``: (S + K, *obs_shape) - every episode stores its T+1 observations, the last one being
  the observation after its final step, so ``next_obs`` is never stored twice;
- ``actions`` (S, *act_shape), ``rewards`` (S,) float32, ``terminated``/``truncated`` (S,) bool
  (kept apart: only termination stops bootstrapping), ``episode_ids`` (S,) int64, global;
- ``episode_starts``: (K + 1,) int64 step offsets of the episodes in the shard (last = S);
- optional ``q_values`` (S, A) float32 when the behaviour policy was a trained Q-network.

Transition ``i`` of a shard belongs to the local episode ``k = episode_ids[i] - first id``;
its observation is ``obs[i + k]`` and its next observation ``obs[i + k + 1]``.

Shape legend: S steps, K episodes, B batch, A actions.

Example:
    >>> ds = TrajectoryDataset.open("data/cartpole-random")  # doctest: +SKIP
    >>> batch = ds.sample(64)  # doctest: +SKIP
    >>> batch.obs.shape, batch.next_obs.shape  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from drlzero.errors import UserError

FORMAT = "drlzero-trajectories"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COLLECTION = "datasets.json"
STEP_ARRAYS = ("actions", "rewards", "terminated", "truncated", "episode_ids")


class TransitionBatch(NamedTuple):
    """A sampled batch of transitions as torch tensors (B leading)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episode_ids: torch.Tensor


@dataclass
class Episode:
    """One whole episode as NumPy arrays (views into the memory-mapped shard)."""

    episode_id: int
    obs: np.ndarray  # (T + 1, *obs_shape)
    actions: np.ndarray  # (T, *act_shape)
    rewards: np.ndarray  # (T,)
    terminated: np.ndarray  # (T,)
    truncated: np.ndarray  # (T,)
    q_values: np.ndarray | None = None  # (T, A)

    def __len__(self) -> int:
        return len(self.actions)


class _Shard:
    """The arrays of one shard, memory-mapped on first use."""

    def __init__(self, folder: Path, steps: int, episodes: int, first_episode: int) -> None:
        self.folder = folder
        self.steps = steps
        self.episodes = episodes
        self.first_episode = first_episode
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            path = self.folder / f"{name}.npy"
            if not path.is_file():
                raise UserError(f"{path} is missing: the dataset is incomplete; collect it again")
            # mmap: nothing is read until it is indexed; allow_pickle=False: object arrays refuse
            try:
                self._arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:  # cut short: mmap past the end, bad header
                raise UserError(
                    f"{path} cannot be read ({exc}): the dataset is damaged; collect it again"
                ) from None
        return self._arrays[name]

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.npy").is_file()

    def obs_index(self, step_idx: np.ndarray) -> np.ndarray:
        """Row in ``obs`` of the observation at each step (one extra row per earlier episode)."""
        return step_idx + (self.array("episode_ids")[step_idx] - self.first_episode)


class TrajectoryDataset:
    """A dataset written by :func:`drlzero.data.collect.collect` (or any writer of the format).

    Arrays are memory-mapped shard by shard, so opening a dataset reads only its manifest.

    Args:
        path: the dataset directory (holding ``manifest.json``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            if (self.path / COLLECTION).is_file():
                names = ", ".join(json.loads((self.path / COLLECTION).read_text())["datasets"])
                raise UserError(
                    f"{self.path} holds several datasets ({names}); open one of them, "
                    "or use drlzero.data.open_collection"
                )
            raise UserError(f"{self.path} has no {MANIFEST}: not a drlzero trajectory dataset")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{manifest} is not valid JSON; collect the dataset again") from None
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != (
            FORMAT_VERSION
        ):
            raise UserError(
                f"{manifest} is format {self.manifest.get('format')!r} version "
                f"{self.manifest.get('format_version')}; this drlzero reads {FORMAT} "
                f"version {FORMAT_VERSION}"
            )
        self.shards: list[_Shard] = []
        first = 0
        for entry in self.manifest["shards"]:
            self.shards.append(
                _Shard(self.path / entry["dir"], entry["steps"], entry["episodes"], first)
            )
            first += entry["episodes"]
        self._step_ends = np.cumsum([s.steps for s in self.shards])
        self._episode_ends = np.cumsum([s.episodes for s in self.shards])

    @classmethod
    def open(cls, path: str | Path) -> TrajectoryDataset:
        """Open the dataset at ``path`` (reads the manifest only)."""
        return cls(path)

    # ------------------------------------------------------------------ description
    @property
    def env_id(self) -> str:
        return str(self.manifest["env"]["id"])

    @property
    def num_episodes(self) -> int:
        return int(self.manifest["num_episodes"])

    @property
    def num_steps(self) -> int:
        return int(self.manifest["num_steps"])

    @property
    def has_q_values(self) -> bool:
        return bool(self.manifest.get("q_values", False))

    def __len__(self) -> int:
        """Number of transitions (env steps)."""
        return self.num_steps

    def __repr__(self) -> str:
        return (
            f"TrajectoryDataset({str(self.path)!r}, env={self.env_id}, "
            f"episodes={self.num_episodes}, steps={self.num_steps})"
        )

    # ------------------------------------------------------------------ episodes
    def episode(self, episode_id: int) -> Episode:
        """Episode ``episode_id`` (0-based, in the order they were written)."""
        if not 0 <= episode_id < self.num_episodes:
            raise IndexError(f"episode {episode_id} out of range 0..{self.num_episodes - 1}")
        s = int(np.searchsorted(self._episode_ends, episode_id, side="right"))
        shard = self.shards[s]
        k = episode_id - shard.first_episode
        starts = shard.array("episode_starts")
        a, b = int(starts[k]), int(starts[k + 1])
        return Episode(
            episode_id=episode_id,
            obs=shard.array("obs")[a + k : b + k + 1],
            actions=shard.array("actions")[a:b],
            rewards=shard.array("rewards")[a:b],
            terminated=shard.array("terminated")[a:b],
            truncated=shard.array("truncated")[a:b],
            q_values=shard.array("q_values")[a:b] if shard.has("q_values") else None,
        )

    def episodes(self) -> Iterator[Episode]:
        """Every episode in order, one shard mapped at a time."""
        for i in range(self.num_episodes):
            yield self.episode(i)

    # ------------------------------------------------------------------ transitions
    def _gather(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Transitions at global step indices ``idx`` (any order), as NumPy arrays."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_steps):
            raise IndexError(f"transition index out of range 0..{self.num_steps - 1}")
        shard_of = np.searchsorted(self._step_ends, idx, side="right")
        parts: dict[str, list[np.ndarray]] = {}
        order: list[np.ndarray] = []
        for s in np.unique(shard_of):
            where = np.flatnonzero(shard_of == s)
            shard = self.shards[int(s)]
            local = idx[where] - (self._step_ends[s] - shard.steps)
            # sorted reads are kinder to a memory map; the original order is restored below
            sort = np.argsort(local, kind="stable")
            local = local[sort]
            o = shard.obs_index(local)
            rows = {
                "obs": shard.array("obs")[o],
                "next_obs": shard.array("obs")[o + 1],
                **{n: shard.array(n)[local] for n in STEP_ARRAYS},
            }
            if self.has_q_values:
                rows["q_values"] = shard.array("q_values")[local]
            for k, v in rows.items():
                parts.setdefault(k, []).append(v)
            order.append(where[sort])
        back = np.argsort(np.concatenate(order)) if order else np.zeros(0, np.int64)
        return {k: np.concatenate(v)[back] for k, v in parts.items()}

    def transitions(self, batch_size: int = 1024) -> Iterator[TransitionBatch]:
        """All transitions in order, ``batch_size`` at a time, as torch tensors."""
        for start in range(0, self.num_steps, batch_size):
            yield _to_batch(self._gather(np.arange(start, min(start + batch_size, self.num_steps))))

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> TransitionBatch:
        """``batch_size`` transitions drawn uniformly with replacement, as torch tensors."""
        rng = rng if rng is not None else np.random.default_rng()
        return _to_batch(self._gather(rng.integers(0, self.num_steps, batch_size)), device)

    def q_values(self, idx: np.ndarray) -> torch.Tensor:
        """The behaviour policy's Q-values q_BA at global step indices (if it stored them)."""
        if not self.has_q_values:
            raise UserError(f"{self.path} holds no q_values (collected from a non-Q policy)")
        return torch.from_numpy(self._gather(idx)["q_values"])


def _to_batch(rows: dict[str, np.ndarray], device: torch.device | str = "cpu") -> TransitionBatch:
    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(rows[name])).to(device)

    return TransitionBatch(
        obs=t("obs"),
        actions=t("actions"),
        rewards=t("rewards"),
        next_obs=t("next_obs"),
        terminated=t("terminated"),
        truncated=t("truncated"),
        episode_ids=t("episode_ids"),
    )


def open_collection(path: str | Path) -> dict[str, TrajectoryDataset]:
    """The datasets of a multi-env collection (``drlzero collect --env A --env B``), by env id;
    a single dataset directory gives a one-entry dict."""
    root = Path(path)
    if (root / MANIFEST).is_file():
        ds = TrajectoryDataset(root)
        return {ds.env_id: ds}
    if not (root / COLLECTION).is_file():
        raise UserError(f"{root} holds no {MANIFEST} or {COLLECTION}: not a drlzero dataset")
    index = json.loads((root / COLLECTION).read_text())
    return {env_id: TrajectoryDataset(root / sub) for env_id, sub in index["datasets"].items()}
