"""The rows the self-supervised objectives read, over a ``drlzero collect`` dataset.

There is one trajectory format, :mod:`drlzero.data.dataset`'s (``drlzero collect``, docs/data.md).
:class:`PretrainRows` lays one such dataset out as rows: an episode of T steps gives T + 1
rows (its T + 1 observations in order), row ``i``'s action is the one taken at ``obs[i]`` (-1
on an episode's last row), so ``s_{t+1}`` is always the next row. A one-shard dataset's
observations stay memory-mapped; only the per-row actions and episode ids are built in memory.

Example:
    >>> from drlzero.config import EnvConfig
    >>> cfg = EnvConfig(id="drlzero/CatchBall-v0")
    >>> d = generate_dataset(cfg, "/tmp/cb", steps=500)  # doctest: +SKIP
    >>> next(PretrainRows(d).iter_batches(32, k_max=4, seed=0)).obs_t.shape  # doctest: +SKIP
    (32, 6)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from drlzero.config import EnvConfig
from drlzero.errors import UserError

__all__ = ["PretrainRows", "TransitionBatch", "generate_dataset"]


class TransitionBatch(NamedTuple):
    """One sampled batch: s_t, a_t, s_{t+1} and s_{t+k} (k in 1..k_max, within the episode)."""

    obs_t: np.ndarray  # (B, *obs_shape)
    action_t: np.ndarray  # (B,) int64
    obs_next: np.ndarray  # (B, *obs_shape)
    obs_future: np.ndarray  # (B, *obs_shape)


class PretrainRows:
    """The rows (see the module doc) of the ``drlzero collect`` dataset at ``path``.

    Args:
        path: the dataset directory.

    Raises:
        UserError: not a readable dataset (the reader's message), non-Discrete actions, or no
            transition at all.
    """

    def __init__(self, path: str | Path) -> None:
        from drlzero.data.dataset import TrajectoryDataset

        self.path = Path(path)
        if not self.path.is_dir():
            raise UserError(f"dataset directory {self.path} does not exist")
        arrays, self.manifest = _rows_of(TrajectoryDataset(self.path))
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


def _rows_of(ds: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The row layout of the module doc from a dataset's shards, and a short description.

    The shards already store each episode's T + 1 observations in order, so observations stay
    memory-mapped (one shard) or are concatenated (several); only the per-row action (-1 on an
    episode's last row) and episode id are built in memory.
    """
    path, manifest = ds.path, ds.manifest
    space = manifest.get("action_space", {})
    if space.get("type") != "Discrete":
        raise UserError(
            f"{path}: pretraining needs Discrete actions (inverse dynamics), the dataset has "
            f"{space.get('type')}; collect from a discrete-action env"
        )
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
        "format": manifest["format"],
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
    """Roll out a random or baseline policy into a ``drlzero collect`` dataset (tests,
    experiments).

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
