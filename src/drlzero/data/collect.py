"""Roll out a policy on one or several envs and write trajectory datasets.

Policies: ``random``, ``baseline:NAME`` (a hand-written controller of
:mod:`drlzero.envs.baselines`) or the directory of a trained run (greedy, or epsilon-greedy
with ``epsilon``). The format is described in :mod:`drlzero.data.dataset` and docs/data.md.

With action masks on (``env.action_mask``, e.g. a run trained with masks), every action is
drawn among the allowed ones: the run's greedy action is the masked argmax, random and epsilon
actions are uniform over the allowed actions.

Example:
    >>> from drlzero.data import collect, TrajectoryDataset
    >>> paths = collect(["CartPole-v1"], "random", out="data/cp", episodes=5)  # doctest: +SKIP
    >>> len(TrajectoryDataset.open(paths[0]))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drlzero.checks import check_out_dir, check_seed, make_out_dir
from drlzero.config import EnvConfig, load_config, preset_names
from drlzero.data.dataset import COLLECTION, FORMAT, FORMAT_VERSION, MANIFEST
from drlzero.errors import UserError
from drlzero.masks import MaskSource, uniform_allowed

#: A shard is written once its observations reach this many bytes (or this many steps).
SHARD_BYTES = 256 << 20
SHARD_STEPS = 100_000


@dataclasses.dataclass
class BehaviourPolicy:
    """What acts during collection.

    Attributes:
        description: JSON-ready description stored in the manifest.
        act: obs_B -> (actions_B, q_BA or None), before epsilon.
        env_cfg: the env a trained run was trained on (used when no env is given).
    """

    description: dict[str, Any]
    act: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    env_cfg: EnvConfig | None = None


def env_config(env: str | EnvConfig) -> EnvConfig:
    """An env id, a preset name (its ``env`` section) or an :class:`EnvConfig`."""
    if isinstance(env, EnvConfig):
        return env
    if env in preset_names():
        return load_config(env).env
    return EnvConfig(id=env)


def _space_json(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        out: dict[str, Any] = {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
        if space.low.size <= 4096:  # bounds of image spaces would only bloat the manifest
            # JSON has no infinity: unbounded dimensions are null
            out["low"] = [float(x) if np.isfinite(x) else None for x in space.low.ravel()]
            out["high"] = [float(x) if np.isfinite(x) else None for x in space.high.ravel()]
        return out
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    raise UserError(
        f"collect stores Box, Discrete and MultiDiscrete spaces as arrays, got {space}; "
        "wrap the env so its observations are arrays"
    )


def make_policy(
    policy: str, env_cfg: EnvConfig | None, *, checkpoint: str = "best"
) -> BehaviourPolicy:
    """Parse ``random`` | ``baseline:NAME`` | ``RUN_DIR`` into a :class:`BehaviourPolicy`.

    A baseline is bound to ``env_cfg`` (baselines are per env); call once per env.
    """
    if policy in ("random", "baseline:random"):
        return BehaviourPolicy({"kind": "random"}, lambda obs: (np.empty(0), None))
    if policy.startswith("baseline:"):
        from drlzero.envs.baselines import get_baseline

        name = policy.split(":", 1)[1]
        if env_cfg is None:
            raise UserError(f"--policy {policy} needs --env: baselines belong to an env")
        ctrl = get_baseline(env_cfg.id, name)
        return BehaviourPolicy(
            {"kind": "baseline", "name": name}, lambda obs: (np.asarray(ctrl(obs)), None)
        )
    path = Path(policy)
    if not path.exists():  # a file is reported as "not a run directory" by load_q_run
        raise UserError(
            f"unknown policy {policy!r}: use random, baseline:NAME or a run directory "
            "(no such directory)"
        )
    from drlzero.train.teacher import load_q_run

    run = load_q_run(path, checkpoint)

    def act(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q_BA = run.q_values(obs)
        return q_BA.argmax(axis=1), q_BA

    desc = {"kind": "run", "run_dir": str(path), "checkpoint": run.checkpoint}
    return BehaviourPolicy(desc, act, run.config.env)


class _ShardWriter:
    """Buffers whole episodes and writes them as ``.npy`` shards."""

    def __init__(self, root: Path, with_q: bool) -> None:
        self.root = root
        self.with_q = with_q
        self.shards: list[dict[str, Any]] = []
        self._eps: list[dict[str, np.ndarray]] = []
        self._steps = 0
        self._bytes = 0

    def add(self, episode: dict[str, np.ndarray]) -> None:
        self._eps.append(episode)
        self._steps += len(episode["actions"])
        self._bytes += episode["obs"].nbytes
        if self._steps >= SHARD_STEPS or self._bytes >= SHARD_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._eps:
            return
        name = f"shard-{len(self.shards):05d}"
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        lengths = [len(e["actions"]) for e in self._eps]
        arrays = {
            k: np.concatenate([e[k] for e in self._eps])
            for k in ("obs", "actions", "rewards", "terminated", "truncated", "episode_ids")
            + (("q_values",) if self.with_q else ())
        }
        arrays["episode_starts"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for k, v in arrays.items():
            np.save(folder / f"{k}.npy", v, allow_pickle=False)
        self.shards.append({"dir": name, "steps": int(sum(lengths)), "episodes": len(lengths)})
        self._eps, self._steps, self._bytes = [], 0, 0


def collect_one(
    env_cfg: EnvConfig,
    policy: BehaviourPolicy,
    out: Path,
    *,
    episodes: int | None = None,
    steps: int | None = None,
    epsilon: float = 0.0,
    seed: int = 0,
    num_envs: int = 1,
) -> Path:
    """Collect one env's dataset into ``out`` (see :func:`collect`); returns ``out``."""
    from drlzero.envs import make_vec_env
    from drlzero.envs.baselines import BASELINE_ENV_KWARGS

    if policy.description["kind"] == "baseline":
        extra = BASELINE_ENV_KWARGS.get((env_cfg.id, policy.description["name"]))
        if extra:
            env_cfg = dataclasses.replace(env_cfg, kwargs={**env_cfg.kwargs, **extra})
    # raw scores and whole games (the evaluation variant), what a dataset should record
    envs = make_vec_env(env_cfg, num_envs=num_envs, training=False)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    obs_json, act_json = _space_json(obs_space), _space_json(act_space)
    if policy.description["kind"] == "run" and not isinstance(act_space, gym.spaces.Discrete):
        raise UserError(f"a Q-network run acts in Discrete spaces; {env_cfg.id} has {act_space}")
    if epsilon > 0 and not isinstance(act_space, gym.spaces.Discrete):
        raise UserError(f"--epsilon needs a Discrete action space; {env_cfg.id} has {act_space}")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    envs.action_space.seed(seed + 2)
    with_q = policy.description["kind"] == "run"
    writer = _ShardWriter(out, with_q)
    E = envs.num_envs
    # per-env episode in progress: lists of per-step arrays
    cur: list[dict[str, list[Any]]] = [_new_episode() for _ in range(E)]
    n_actions = int(getattr(act_space, "n", 0))
    if env_cfg.action_mask != "none" and not n_actions:
        raise UserError(
            f"env.action_mask={env_cfg.action_mask} needs Discrete actions; {env_cfg.id} has "
            f"{act_space}"
        )
    masks = MaskSource(env_cfg.action_mask, E, n_actions)  # off: every mask is None
    obs, info = envs.reset(seed=seed)
    mask = masks.reset(info)
    for i in range(E):
        cur[i]["obs"].append(np.asarray(obs[i]))
    done_eps = total_steps = cut = 0
    returns: list[float] = []
    t0 = time.perf_counter()

    def finish(i: int) -> None:
        nonlocal done_eps
        ep = {k: np.stack(v) for k, v in cur[i].items() if v}
        ep["episode_ids"] = np.full(len(ep["actions"]), done_eps, dtype=np.int64)
        ep["rewards"] = ep["rewards"].astype(np.float32)
        returns.append(float(ep["rewards"].sum()))
        writer.add(ep)
        done_eps += 1

    try:
        while True:
            if episodes is not None and done_eps >= episodes:
                break
            if steps is not None and total_steps >= steps:
                break
            if policy.description["kind"] == "random":
                actions, q_BA = envs.action_space.sample(), None
                if mask is not None:
                    actions = uniform_allowed(rng, mask)
            else:
                actions, q_BA = policy.act(obs)
                if mask is not None and q_BA is not None:
                    actions = np.where(mask, q_BA, -np.inf).argmax(axis=1)
            if epsilon > 0:
                explore = rng.random(E) < epsilon
                randoms = (
                    rng.integers(0, n_actions, E) if mask is None else uniform_allowed(rng, mask)
                )
                actions = np.where(explore, randoms, actions)
            actions = np.asarray(actions).astype(act_space.dtype, copy=False)
            next_obs, reward, term, trunc, info = envs.step(actions)
            mask = masks.acting(info)
            for i in range(E):
                ep = cur[i]
                ep["actions"].append(actions[i])
                ep["rewards"].append(np.float32(reward[i]))
                ep["terminated"].append(np.bool_(term[i]))
                ep["truncated"].append(np.bool_(trunc[i]))
                if q_BA is not None:
                    ep["q_values"].append(q_BA[i].astype(np.float32))
                total_steps += 1
                if term[i] or trunc[i]:
                    # SAME_STEP autoreset: the true last observation is in final_obs
                    ep["obs"].append(np.asarray(info["final_obs"][i]))
                    if episodes is None or done_eps < episodes:
                        finish(i)
                    cur[i] = _new_episode()
                    cur[i]["obs"].append(np.asarray(next_obs[i]))
                else:
                    ep["obs"].append(np.asarray(next_obs[i]))
                if steps is not None and total_steps >= steps:
                    break
            obs = next_obs
        if steps is not None:
            # the step budget cut these episodes: store them, marked truncated at the cut
            for i in range(E):
                if cur[i]["actions"]:
                    cur[i]["truncated"][-1] = np.bool_(True)
                    cut += 1
                    finish(i)
    finally:
        envs.close()
    writer.flush()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "env": dataclasses.asdict(env_cfg),
        "observation_space": obs_json,
        "action_space": act_json,
        "policy": {**policy.description, "epsilon": epsilon},
        "seed": seed,
        "num_envs": E,
        "num_episodes": done_eps,
        "num_steps": int(sum(s["steps"] for s in writer.shards)),
        "cut_episodes": cut,
        "q_values": with_q,
        "return_mean": float(np.mean(returns)) if returns else None,
        "return_std": float(np.std(returns)) if returns else None,
        "shards": writer.shards,
        "wall_time_s": round(time.perf_counter() - t0, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / MANIFEST)  # the manifest last: its presence means a whole dataset
    return out


def _new_episode() -> dict[str, list[Any]]:
    keys = ("obs", "actions", "rewards", "terminated", "truncated", "q_values")
    return {k: [] for k in keys}


def _slug(env_id: str) -> str:
    return env_id.replace("/", "_").replace(":", "_")


def collect(
    envs: list[str | EnvConfig] | None,
    policy: str,
    *,
    out: str | Path,
    episodes: int | None = None,
    steps: int | None = None,
    epsilon: float = 0.0,
    seed: int = 0,
    num_envs: int = 1,
    checkpoint: str = "best",
    overwrite: bool = False,
) -> list[Path]:
    """Roll out ``policy`` on each env and write one dataset per env.

    Args:
        envs: env ids, preset names or :class:`EnvConfig`; None or empty with a run-directory
            policy means the run's own env.
        policy: ``random``, ``baseline:NAME`` or a run directory.
        out: the dataset directory (one env), or a folder of ``<env-slug>/`` datasets plus a
            ``datasets.json`` index (several envs).
        episodes: stop after this many whole episodes per env (exactly one of episodes/steps).
        steps: stop after this many env steps per env; episodes still running are stored with
            ``truncated`` set on their last step (the manifest counts them in ``cut_episodes``).
        epsilon: probability of a uniformly random action instead of the policy's.
        seed: seeds the envs (env i of the vector env gets ``seed + i``) and the exploration.
        num_envs: parallel envs per dataset (episodes are written in the order they end).
        checkpoint: ``best`` or ``last`` for a run-directory policy.
        overwrite: replace an existing dataset at ``out``.

    Returns:
        The dataset directories written, one per env.
    """
    if (episodes is None) == (steps is None):
        raise UserError("collect needs exactly one of --episodes N or --steps N")
    if (episodes is not None and episodes <= 0) or (steps is not None and steps <= 0):
        raise UserError("--episodes / --steps must be a positive number")
    if not 0.0 <= epsilon <= 1.0:
        raise UserError(f"--epsilon {epsilon} must be in [0, 1]")
    if num_envs <= 0:
        raise UserError(f"--num-envs {num_envs} must be positive")
    check_seed(seed)
    root = check_out_dir(out)
    is_run = policy not in ("random",) and not policy.startswith("baseline:")
    base = make_policy(policy, None, checkpoint=checkpoint) if is_run else None
    cfgs = [env_config(e) for e in envs or []]
    if not cfgs:
        if base is None or base.env_cfg is None:
            raise UserError(f"--policy {policy} needs at least one --env ENV_OR_PRESET")
        cfgs = [base.env_cfg]
    if len({c.id for c in cfgs}) != len(cfgs):
        raise UserError("each --env may appear once")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise UserError(f"{root} exists and is not empty; choose another --out")
        shutil.rmtree(root)
    for cfg in cfgs:
        if base is not None and base.env_cfg is not None and cfg.id != base.env_cfg.id:
            raise UserError(f"run {policy} was trained on {base.env_cfg.id}, not {cfg.id}")
    policies = [base if base is not None else make_policy(policy, cfg) for cfg in cfgs]
    fresh = not root.exists()
    make_out_dir(root)
    paths: list[Path] = []
    try:
        for cfg, pol in zip(cfgs, policies, strict=True):
            where = root if len(cfgs) == 1 else root / _slug(cfg.id)
            paths.append(
                collect_one(
                    cfg,
                    pol,
                    where,
                    episodes=episodes,
                    steps=steps,
                    epsilon=epsilon,
                    seed=seed,
                    num_envs=num_envs,
                )
            )
    except BaseException:
        # Half a dataset (no manifest) would only block the retry ("not empty"): remove it.
        # ``root`` was made here, or was empty, so nothing else is in it.
        shutil.rmtree(root, ignore_errors=True)
        if not fresh:
            root.mkdir(exist_ok=True)
        raise
    if len(cfgs) > 1:
        index = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "datasets": {c.id: _slug(c.id) for c in cfgs},
        }
        (root / COLLECTION).write_text(json.dumps(index, indent=1) + "\n")
    return paths


def summary(path: Path) -> dict[str, Any]:
    """The manifest's headline figures, for the CLI."""
    m = json.loads((path / MANIFEST).read_text())
    ret = m["return_mean"]
    return {
        "path": str(path),
        "env": m["env"]["id"],
        "episodes": m["num_episodes"],
        "steps": m["num_steps"],
        "return_mean": None if ret is None or not math.isfinite(ret) else round(ret, 4),
    }
