"""Trajectory datasets for self-supervised pretraining: a small reader and a small generator.

Layout (a directory; every array is a plain ``.npy`` file, read with ``allow_pickle=False`` and
memory-mapped, so a dataset larger than memory is read lazily; nothing is ever pickled)::

    DATASET_DIR/
      manifest.json    {"format": "drlzero-trajectories", "version": 1, "env_id": ...,
                        "env_kwargs": {...}, "num_rows": N, "num_episodes": E,
                        "obs_shape": [...], "obs_dtype": "float32", "num_actions": A,
                        "policy": "random" ...}
      obs.npy          (N, *obs_shape)  the observation of row i
      actions.npy      (N,) int64       the action taken at obs[i]; -1 on an episode's last row
      episode_id.npy   (N,) int64       rows of one episode are contiguous and in time order
      rewards.npy, terminated.npy, truncated.npy   (N,) optional, for other tools

Row ``i`` and row ``i + 1`` form a transition when both belong to the same episode; an episode of
T steps has T + 1 rows (its final observation with action -1), so ``s_{t+1}`` is always there.

:class:`TrajectoryDataset` also reads the sharded datasets that ``drlzero collect`` writes
(docs/data.md; recognised by the ``shards`` key of their manifest), so
``drlzero collect ... --out D`` then ``drlzero pretrain --data D`` is the usual pipeline.

Example:
    >>> from drlzero.config import EnvConfig
    >>> cfg = EnvConfig(id="drlzero/CatchBall-v0")
    >>> d = generate_dataset(cfg, "/tmp/cb", steps=500)  # doctest: +SKIP
    >>> next(TrajectoryDataset(d).iter_batches(32, k_max=4, seed=0)).obs_t.shape  # doctest: +SKIP
    (32, 6)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from drlzero.config import EnvConfig
from drlzero.errors import UserError

__all__ = ["FORMAT", "TrajectoryDataset", "TransitionBatch", "generate_dataset"]

FORMAT = "drlzero-trajectories"
_REQUIRED = ("obs", "actions", "episode_id")


class TransitionBatch(NamedTuple):
    """One sampled batch: s_t, a_t, s_{t+1} and s_{t+k} (k in 1..k_max, within the episode)."""

    obs_t: np.ndarray  # (B, *obs_shape)
    action_t: np.ndarray  # (B,) int64
    obs_next: np.ndarray  # (B, *obs_shape)
    obs_future: np.ndarray  # (B, *obs_shape)


class TrajectoryDataset:
    """Reads a dataset directory (see the module doc) lazily.

    Args:
        path: the dataset directory.

    Raises:
        UserError: a missing directory, manifest or array, or arrays of different lengths.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise UserError(f"dataset directory {self.path} does not exist")
        try:
            self.manifest: dict[str, Any] = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.path} has no readable manifest.json ({exc})") from None
        if self.manifest.get("format") != FORMAT:
            raise UserError(f"{self.path}/manifest.json is not a {FORMAT} manifest")
        if "shards" in self.manifest:  # written by `drlzero collect` (docs/data.md)
            arrays, self.manifest = _rows_of_collected(self.path, self.manifest)
        else:
            arrays = {}
            for name in _REQUIRED:
                file = self.path / f"{name}.npy"
                try:
                    arrays[name] = np.load(file, allow_pickle=False, mmap_mode="r")
                except (OSError, ValueError) as exc:
                    raise UserError(f"cannot read {file}: {exc}") from None
        self.obs: np.ndarray = arrays["obs"]
        self.actions = np.asarray(arrays["actions"], np.int64)
        self.episode_id = np.asarray(arrays["episode_id"], np.int64)
        n = len(self.obs)
        if len(self.actions) != n or len(self.episode_id) != n or n < 2:
            raise UserError(f"{self.path}: obs, actions and episode_id need the same length >= 2")
        # ep_last[i]: the last row of row i's episode (runs of equal ids are episodes).
        starts = np.flatnonzero(np.r_[True, self.episode_id[1:] != self.episode_id[:-1]])
        ends = np.r_[starts[1:], n] - 1
        self.ep_last = np.repeat(ends, np.diff(np.r_[starts, n]))
        # Rows with a next observation in the same episode and a real action.
        self.valid = np.flatnonzero((self.ep_last > np.arange(n)) & (self.actions >= 0))
        if len(self.valid) == 0:
            raise UserError(f"{self.path} holds no transitions (every episode has one row)")
        self.num_actions = int(self.manifest.get("num_actions", int(self.actions.max()) + 1))

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.obs.shape[1:])

    def __len__(self) -> int:
        """Number of transitions."""
        return len(self.valid)

    def iter_batches(
        self, batch_size: int, *, k_max: int = 4, seed: int = 0
    ) -> Iterator[TransitionBatch]:
        """Endless uniform batches of transitions, each with a future observation s_{t+k}.

        ``k`` is uniform in 1..``k_max`` and clipped to the episode's last row, so the future
        observation never comes from another episode.
        """
        rng = np.random.default_rng(seed)
        while True:
            i_B = np.sort(rng.choice(self.valid, size=batch_size))  # sorted: mmap reads ascend
            k_B = rng.integers(1, k_max + 1, size=batch_size)
            fut_B = np.minimum(i_B + k_B, self.ep_last[i_B])
            yield TransitionBatch(
                np.asarray(self.obs[i_B]),
                self.actions[i_B],
                np.asarray(self.obs[i_B + 1]),
                np.asarray(self.obs[fut_B]),
            )


def _rows_of_collected(
    path: Path, manifest: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The row layout above from a sharded ``drlzero collect`` dataset.

    Its shards already store each episode's T + 1 observations in order, so observations stay
    memory-mapped (one shard) or are concatenated (several); only the per-row action (-1 on an
    episode's last row) and episode id are built in memory.
    """
    from drlzero.data.dataset import TrajectoryDataset as Collected

    space = manifest.get("action_space", {})
    if space.get("type") != "Discrete":
        raise UserError(
            f"{path}: pretraining needs Discrete actions (inverse dynamics), the dataset has "
            f"{space.get('type')}; collect from a discrete-action env"
        )
    ds = Collected(path)
    obs_parts, act_parts, ep_parts = [], [], []
    for shard in ds.shards:
        starts = np.asarray(shard.array("episode_starts"), np.int64)
        lengths = np.diff(starts)  # T_k steps per episode, T_k + 1 rows
        k_of_step = np.repeat(np.arange(len(lengths)), lengths)
        actions = np.full(int(lengths.sum() + len(lengths)), -1, np.int64)
        actions[np.arange(int(lengths.sum())) + k_of_step] = shard.array("actions")
        obs_parts.append(shard.array("obs"))
        act_parts.append(actions)
        ep_parts.append(np.repeat(shard.first_episode + np.arange(len(lengths)), lengths + 1))
    arrays = {
        "obs": obs_parts[0] if len(obs_parts) == 1 else np.concatenate(obs_parts),
        "actions": np.concatenate(act_parts),
        "episode_id": np.concatenate(ep_parts),
    }
    env = manifest.get("env", {})
    flat = {
        "format": FORMAT,
        "env_id": env.get("id"),
        "env_kwargs": env.get("kwargs", {}),
        "num_actions": int(space["n"]),
        "policy": manifest.get("policy"),
        "source": "drlzero collect",
    }
    return arrays, flat


def generate_dataset(
    env_cfg: EnvConfig,
    out: str | Path,
    *,
    steps: int,
    policy: str = "random",
    epsilon: float = 0.3,
    seed: int = 0,
) -> Path:
    """Roll out a random or baseline policy into a ``drlzero collect`` dataset (tests, experiments).

    Args:
        env_cfg: the env (``env_cfg.kwargs`` are passed to ``gymnasium.make``).
        out: the dataset directory to create.
        steps: env steps to record (the last episode is cut there, marked truncated).
        policy: ``random`` or a baseline name (``track``, ``intercept`` for CatchBall ...).
        epsilon: with a baseline, the chance of a random action instead (action diversity for
            the inverse-dynamics objective).
        seed: env and action seed.

    Returns:
        The dataset directory.
    """
    from drlzero.data.collect import collect

    # The rollout itself is `drlzero collect`'s (its sharded format is read by this module).
    behaviour = policy if policy == "random" else f"baseline:{policy}"
    (path,) = collect(
        [env_cfg],
        behaviour,
        out=out,
        steps=steps,
        epsilon=0.0 if policy == "random" else epsilon,
        seed=seed,
    )
    return Path(path)
