"""Ape-X DQN on Ray: "Distributed Prioritized Experience Replay" (Horgan et al. 2018).

::

    actor i (Ray actor, own vector env,   replay shard k (Ray actor):   learner (this process,
    fixed eps_i, local copy of the net)   storage + sum tree            GPU if present)
      collect chunk_steps vector steps --> add(n-step transitions,   <-- sample(B), one in flight
      initial priorities |TD| locally         their priorities)      --> update_priorities
              ^                                                                   |
              +-------- weights: ray.put once per publish, actors pull the ref ---+

* Actors act with the epsilon ladder ``eps_i = eps^(1 + i/(N-1) * alpha)`` (eps 0.4, alpha 7),
  turn steps into n-step transitions with :class:`~drlzero.replay.NStepAccumulator` and give them
  initial priorities with their own network copy (Ape-X section 3), so the learner never
  computes a priority for data it has not sampled.
* An actor buffers ``chunk_steps`` vector steps locally, sends them to a replay shard and waits
  for the shard to accept them before its ``collect`` call returns: a finished call means the data
  is in replay. A crash loses only the chunk in progress (and at most n-1 open n-step windows per
  env), which the learner detects (:class:`ray.exceptions.RayActorError`) and replaces the actor.
* The learner keeps one sample request in flight, so a replay round trip overlaps an update;
  priority updates are fire-and-forget (Ray runs one caller's calls to an actor in order).
* Learner updates are capped at ``updates_per_step`` per env step (default: the single-process
  loop's ratio), so sample efficiency stays comparable to ``drlzero train`` and a fast learner
  does not overfit a small replay.

Run directory, logs, evaluation, checkpoints and ``--resume`` are those of the single-process
loop (:mod:`drlzero.train`); ``distributed.json`` adds the figures of the distributed parts.

Shape legend: B batch, E envs of one actor, K transitions of a chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from drlzero.accel import accelerate
from drlzero.algos.dqn import build_q_network, compile_setting
from drlzero.algos.rainbow import RainbowLearner, per_sample_loss
from drlzero.buffers import Batch, ReplayBuffer
from drlzero.config import Config, DQNConfig
from drlzero.distributed import init_ray, require_ray
from drlzero.encoders import env_boundary, stored_spec
from drlzero.encoders.pretrained import apply_warmup, make_target, param_groups
from drlzero.envs import episode_successes, make_env, make_vec_env, real_next_obs
from drlzero.exploration import ConstantSchedule, EpsilonGreedy
from drlzero.replay import NStepAccumulator, PrioritizedSampler
from drlzero.train.checkpoint import (
    load_checkpoint,
    load_module,
    load_optimizer,
    module_tensors,
    optimizer_tensors,
    save_checkpoint,
)
from drlzero.train.evaluate import Evaluator
from drlzero.train.logger import RunLogger
from drlzero.train.plots import plot_learning_curve
from drlzero.train.run import EVAL_SEED_OFFSET, TrainResult, write_eval_json
from drlzero.train.tracking import make_trackers
from drlzero.utils import pick_device, seed_everything

Weights = dict[str, np.ndarray]


def epsilon_ladder(num_actors: int, base: float = 0.4, alpha: float = 7.0) -> list[float]:
    """Ape-X's per-actor epsilons ``eps_i = base^(1 + i/(N-1) * alpha)``; one actor gets ``base``.

    Example:
        >>> [round(e, 4) for e in epsilon_ladder(3)]
        [0.4, 0.0405, 0.0016]
    """
    if num_actors == 1:
        return [base]
    return [base ** (1 + i / (num_actors - 1) * alpha) for i in range(num_actors)]


def weights_of(net: torch.nn.Module) -> Weights:
    """The network's state as CPU NumPy arrays (what goes into the object store)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def weights_checksum(weights: Weights) -> str:
    """A short digest of a weights dict: actors report it so the learner can check they use
    exactly what it published."""
    h = hashlib.sha1()
    for key in sorted(weights):
        h.update(key.encode())
        h.update(np.ascontiguousarray(weights[key]).tobytes())
    return h.hexdigest()[:16]


def updates_per_step(cfg: Config) -> float:
    """Learner updates allowed per env step: ``distributed.updates_per_step``, or the ratio of
    the single-process loop (``gradient_steps`` every ``train_freq`` vector steps)."""
    d = cfg.dqn
    if cfg.distributed.updates_per_step is not None:
        return cfg.distributed.updates_per_step
    return d.gradient_steps / (d.train_freq * cfg.env.num_envs)


def target_sync_updates(cfg: Config) -> int:
    """Learner updates between target syncs, matching the local loop: it syncs every
    ``target_update_interval`` env steps but at most once per training phase."""
    d = cfg.dqn
    env_steps = max(d.target_update_interval, d.train_freq * cfg.env.num_envs)
    return max(1, round(env_steps * updates_per_step(cfg)))


class Transitions(NamedTuple):
    """n-step transitions an actor sends to replay (K of them), with their priorities."""

    obs: np.ndarray  # (K, *obs_shape)
    actions: np.ndarray  # (K,) int64
    returns: np.ndarray  # (K,) float32, discounted n-step reward sums
    next_obs: np.ndarray  # (K, *obs_shape)
    terminated: np.ndarray  # (K,) float32
    discounts: np.ndarray  # (K,) float32, gamma^m
    priorities: np.ndarray  # (K,) float32, |TD error| under the actor's network


class ChunkReport(NamedTuple):
    """What one ``collect`` call of an actor returns to the learner."""

    actor: int
    steps: int  # env steps taken (vector steps * E)
    sent: int  # transitions delivered to replay
    episodes: list[tuple[float, int, float]]  # (return, length, success) of finished episodes
    version: int  # the weights version it acted with
    checksum: str  # weights_checksum of the weights it acted with
    seconds: float  # wall time of the call inside the actor


# ---------------------------------------------------------------------------------------------
# Replay shard


class ReplayShard:
    """Prioritized replay storage for Ape-X: a :class:`ReplayBuffer` and a
    :class:`PrioritizedSampler` (a plain object; run as a Ray actor by the learner).

    Transitions arrive with their priorities (no max-priority default is needed). Priorities the
    learner sends back for indices overwritten in the meantime land on the new transitions; as
    in Ape-X this is accepted (the replay is much larger than the sample-update delay).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        dqn: DQNConfig,
        *,
        total_steps: int,
        seed: int,
    ) -> None:
        torch.set_num_threads(1)
        self.storage = ReplayBuffer(capacity, obs_shape, obs_dtype, seed=seed)
        self.per = PrioritizedSampler(
            capacity,
            alpha=dqn.per_alpha,
            beta_start=dqn.per_beta,
            beta_end=1.0,
            beta_steps=total_steps,
            eps=dqn.per_eps,
            seed=seed + 1,
        )
        self._all = np.arange(capacity)
        self.calls = {"add": 0, "sample": 0, "update_priorities": 0}
        self.added = 0
        # chunk id -> transitions stored: lets the learner tell, after an actor died, whether
        # the chunk it was reporting reached replay anyway (8 bytes or so per chunk of a run).
        self.chunks: dict[int, int] = {}

    def add(self, tr: Transitions, chunk: int = -1) -> int:
        """Store a chunk with its priorities; returns the number stored now."""
        self.calls["add"] += 1
        where = self.storage.add(
            tr.obs, tr.actions, tr.returns, tr.next_obs, tr.terminated, tr.discounts
        )
        self.per.update_priorities(self._all[where], tr.priorities)
        self.added += len(tr.actions)
        if chunk >= 0:
            self.chunks[chunk] = len(tr.actions)
        return len(self.storage)

    def delivered(self, chunks: list[int]) -> dict[int, int]:
        """Of ``chunks``, those stored here, with their numbers of transitions."""
        return {c: self.chunks[c] for c in chunks if c in self.chunks}

    def sample(self, batch_size: int, step: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """``(arrays, indices_B, weights_B)``, proportional to priority; ``arrays`` are the
        fields of a :class:`Batch` as NumPy (Ray ships NumPy without copies; a pickled torch
        tensor costs ~5x the sampling itself)."""
        self.calls["sample"] += 1
        idx, weights = self.per.sample(batch_size, len(self.storage), step)
        st = self.storage
        fields = (st.obs, st.actions, st.rewards, st.next_obs, st.terminated, st.discounts)
        return [a[idx] for a in fields], idx, weights

    def update_priorities(self, idx: np.ndarray, td: np.ndarray) -> None:
        self.calls["update_priorities"] += 1
        self.per.update_priorities(idx, td)

    def size(self) -> int:
        return len(self.storage)

    def stats(self) -> dict[str, Any]:
        return {"size": len(self.storage), "added": self.added, "calls": dict(self.calls)}

    # -- checkpointing: tensors + JSON-able meta (the learner writes them with safetensors) --
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = self.storage.state_tensors()
        arrays, per_meta = self.per.state()
        tensors["per.priorities"] = torch.from_numpy(arrays["priorities"])
        meta = {"storage": self.storage.state_meta(), "per": per_meta, "added": self.added}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.storage.load_state(tensors, meta["storage"])
        self.per.load_state({"priorities": tensors["per.priorities"].numpy()}, meta["per"])
        self.added = int(meta["added"])


# ---------------------------------------------------------------------------------------------
# Actor


class ApexActor:
    """One Ape-X actor: its own vector env, a fixed epsilon, a local copy of the Q-network.

    Args:
        cfg: the run's config.
        index: the actor's number i (its place on the epsilon ladder).
        epsilon: its exploration rate.
        seed: seeds its envs, torch and its action sampling.
        shards: handles of the replay shards; chunk j goes to shard ``(index + j) % K``.
    """

    def __init__(
        self, cfg: Config, index: int, epsilon: float, seed: int, shards: list[Any]
    ) -> None:
        torch.set_num_threads(1)  # actors share cores with each other and the learner
        seed_everything(seed)
        self.cfg = cfg
        self.index = index
        self.epsilon = epsilon
        self.shards = shards
        self._sends = 0
        self.envs = make_vec_env(cfg.env)
        obs_space = self.envs.single_observation_space
        act_space = self.envs.single_action_space
        self.q_net = build_q_network(cfg, obs_space, act_space)
        self.q_net.eval()
        self.prep = env_boundary(self.q_net.encoder)
        explorer = EpsilonGreedy(ConstantSchedule(epsilon), int(act_space.n))
        _, policy_cls = accelerate(RainbowLearner, on=cfg.train.fast_path)
        self.policy = policy_cls(self.q_net, explorer, torch.device("cpu"))
        shape, dtype = stored_spec(self.q_net.encoder, obs_space)
        self.nstep = NStepAccumulator(
            cfg.dqn.n_step, cfg.dqn.gamma, self.envs.num_envs, shape, dtype
        )
        self.rng = np.random.default_rng(seed)
        self.obs = self.prep(self.envs.reset(seed=seed)[0])
        self.ep_ret = np.zeros(self.envs.num_envs)
        self.ep_len = np.zeros(self.envs.num_envs, dtype=np.int64)
        self.version = -1
        self.checksum = ""

    def _load(self, weights_ref: list[Any], version: int) -> None:
        ray = require_ray()
        weights: Weights = ray.get(weights_ref[0])  # pulled from the object store only when new
        # Object-store arrays are read-only views of shared memory: torch needs its own copy.
        self.q_net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
        self.version = version
        # The digest of what the network now holds, not of what arrived: proves the load.
        self.checksum = weights_checksum(weights_of(self.q_net))

    def collect(
        self, weights_ref: list[Any], version: int, vector_steps: int, chunk: int = -1
    ) -> ChunkReport:
        """Act for ``vector_steps`` steps, send the chunk to replay, wait until it is stored.

        Args:
            weights_ref: ``[ObjectRef]`` of the newest weights (wrapped in a list so Ray passes
                the reference and the actor fetches the weights only when ``version`` is new).
            version: their version number.
            vector_steps: steps of the vector env in this chunk.
            chunk: the learner's id of this chunk, stored with it in replay.
        """
        t0 = time.perf_counter()
        if version != self.version:
            self._load(weights_ref, version)
        parts: list[Any] = []
        episodes: list[tuple[float, int, float]] = []
        for _ in range(vector_steps):
            actions = self.policy.act(self.obs, 0, self.rng)  # constant epsilon: step unused
            raw_next, reward, term, trunc, info = self.envs.step(actions)
            next_obs = self.prep(raw_next)
            done = term | trunc
            real_next = real_next_obs(next_obs, bool(done.any()), info, self.prep)
            tr = self.nstep.push(self.obs, actions, reward, real_next, term, trunc)
            if len(tr.actions):
                parts.append(tr)
            self.ep_ret += reward
            self.ep_len += 1
            if done.any():
                succ = episode_successes(info, done, self.ep_ret, self.cfg.env.success_return)
                for i in np.flatnonzero(done):
                    episodes.append((float(self.ep_ret[i]), int(self.ep_len[i]), float(succ[i])))
                self.ep_ret[done] = 0.0
                self.ep_len[done] = 0
            self.obs = next_obs
        sent = 0
        if parts:
            # Ape-X actors act without action masks: the transitions' next_mask is None
            arrays = [np.concatenate(x) for x in zip(*(p[:6] for p in parts), strict=True)]
            obs, actions, returns, next_obs, terminated, discounts = arrays
            priorities = self._priorities(obs, actions, returns, next_obs, terminated, discounts)
            tr_out = Transitions(obs, actions, returns, next_obs, terminated, discounts, priorities)
            shard = self.shards[(self.index + self._sends) % len(self.shards)]
            self._sends += 1
            require_ray().get(shard.add.remote(tr_out, chunk))  # delivered before we report it
            sent = len(actions)
        return ChunkReport(
            actor=self.index,
            steps=vector_steps * self.envs.num_envs,
            sent=sent,
            episodes=episodes,
            version=self.version,
            checksum=self.checksum,
            seconds=time.perf_counter() - t0,
        )

    @torch.inference_mode()
    def _priorities(self, *arrays: np.ndarray) -> np.ndarray:
        """|TD error| (or the distributional loss) of each transition under this actor's network,
        which stands in for the target network too (Ape-X: actors hold no target copy)."""
        batch = Batch(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        _, prio_K, _ = per_sample_loss(self.q_net, self.q_net, batch, self.cfg.dqn)
        return prio_K.float().numpy()

    def ping(self) -> int:
        return self.index


# ---------------------------------------------------------------------------------------------
# Learner (the driver process)


@dataclass
class ApexStats:
    """Figures of the distributed parts, written to ``distributed.json``."""

    actors: int = 0
    replay_shards: int = 0
    actor_restarts: int = 0
    lost_chunks: int = 0
    lost_steps_at_most: int = 0
    unreported_chunks: int = 0
    unreported_transitions: int = 0
    chunks: int = 0
    published: int = 0
    weights_bytes: int = 0
    put_s: float = 0.0
    update_s: float = 0.0
    sample_wait_s: float = 0.0
    updates: int = 0
    checksum_matches: int = 0
    checksum_mismatches: int = 0
    actor_seconds: float = 0.0
    actor_versions: dict[int, int] = field(default_factory=dict)
    eps: list[float] = field(default_factory=list)

    def summary(self, wall_s: float, steps: int, replay: list[dict[str, Any]]) -> dict[str, Any]:
        calls = sum(sum(r["calls"].values()) for r in replay)
        return {
            "actors": self.actors,
            "replay_shards": self.replay_shards,
            "epsilons": self.eps,
            "env_steps": steps,
            "wall_s": round(wall_s, 2),
            "env_steps_per_s": round(steps / max(wall_s, 1e-9), 1),
            "learner_updates": self.updates,
            "learner_update_ms": round(1e3 * self.update_s / max(self.updates, 1), 3),
            "learner_sample_wait_ms": round(1e3 * self.sample_wait_s / max(self.updates, 1), 3),
            "replay_calls": calls,
            "replay_calls_per_s": round(calls / max(wall_s, 1e-9), 1),
            "replay": replay,
            "chunks": self.chunks,
            "actor_chunk_ms": round(1e3 * self.actor_seconds / max(self.chunks, 1), 2),
            "weights_published": self.published,
            "weights_bytes": self.weights_bytes,
            "weights_put_ms": round(1e3 * self.put_s / max(self.published, 1), 3),
            "checksum_matches": self.checksum_matches,
            "checksum_mismatches": self.checksum_mismatches,
            "actor_versions": {str(k): v for k, v in self.actor_versions.items()},
            "actor_restarts": self.actor_restarts,
            "lost_chunks": self.lost_chunks,
            "lost_steps_at_most": self.lost_steps_at_most,
            "unreported_chunks": self.unreported_chunks,
            "unreported_transitions": self.unreported_transitions,
        }


class ApexTrainer:
    """The Ape-X learner and its actors and replay shards, for one run directory.

    Use :func:`train_apex`; this class exists so a caller (a test, a benchmark) can watch the
    run through ``on_chunk`` (called with the trainer after every finished actor chunk).
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        *,
        resume: bool = False,
        on_chunk: Callable[[ApexTrainer], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.resume = resume
        self.on_chunk = on_chunk
        self.ray = require_ray()
        self.stats = ApexStats()

    # -- set-up --------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, t, d, dx = self.cfg, self.cfg.train, self.cfg.dqn, self.cfg.distributed
        ray = self.ray
        if t.threads is not None:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)
        self.device = pick_device(t.device)
        env = make_env(cfg.env)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
        self.q_net = build_q_network(cfg, obs_space, act_space).to(self.device)
        self.target_net = make_target(self.q_net, share_encoder=cfg.encoder.target_share == "share")
        groups = param_groups(self.q_net, d.lr, cfg.encoder.backbone_lr, cfg.encoder.warmup)
        mode = compile_setting(t.compile, t.cuda_graphs, self.device)
        learner_cls, policy_cls = accelerate(RainbowLearner, on=t.fast_path)
        self.learner = learner_cls(self.q_net, self.target_net, d, groups, compile=mode)
        self.prep = env_boundary(self.q_net.encoder)
        self.policy = policy_cls(self.q_net, None, self.device)
        self.evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET)

        shape, dtype = stored_spec(self.q_net.encoder, obs_space)
        capacity = min(d.buffer_size, max(t.total_steps, d.batch_size))
        per_shard = math.ceil(capacity / dx.replay_shards)
        if self.resume:  # keep the saved capacity: a larger --total-steps must not resize it
            saved = json.loads((self.run_dir / "checkpoints" / "last.json").read_text())
            if saved.get("replay"):
                per_shard = int(saved["replay"][0]["storage"]["capacity"])
        # Shards are light (NumPy indexing): no CPU reservation, they run beside the actors.
        shard_cls = ray.remote(num_cpus=0)(ReplayShard)
        self.shards = [
            shard_cls.remote(
                per_shard, shape, dtype, d, total_steps=t.total_steps, seed=t.seed + 100 + k
            )
            for k in range(dx.replay_shards)
        ]
        self.stats.actors, self.stats.replay_shards = dx.actors, dx.replay_shards
        self.stats.eps = epsilon_ladder(dx.actors, dx.eps_base, dx.eps_alpha)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        # A local Ray has as many CPUs as this machine: let N actors share them rather than
        # wait forever for reservations that cannot be met (the learner needs no reservation).
        self._actor_cpus = min(dx.actor_cpus, cpus / dx.actors)
        self._actor_cls = ray.remote(ApexActor)
        self.actors: list[Any] = [None] * dx.actors

    def _new_actor(self, i: int, generation: int) -> Any:
        # A replacement gets a fresh seed, so it does not replay its predecessor's episodes.
        seed = self.cfg.train.seed + 1_000 * (i + 1) + 7 * generation + self.step
        return self._actor_cls.options(num_cpus=self._actor_cpus, max_restarts=0).remote(
            self.cfg, i, self.stats.eps[i], seed, self.shards
        )

    def publish(self) -> None:
        """Put the learner's weights into the object store once; actors pull the reference."""
        t0 = time.perf_counter()
        weights = weights_of(self.q_net)
        self.weights_ref = self.ray.put(weights)
        self.stats.put_s += time.perf_counter() - t0
        self.version += 1
        self.published[self.version] = weights_checksum(weights)
        self.stats.published += 1
        self.stats.weights_bytes = sum(a.nbytes for a in weights.values())

    def _submit(self, i: int) -> None:
        chunk = self._next_chunk
        self._next_chunk += 1
        ref = self.actors[i].collect.remote(
            [self.weights_ref], self.version, self.cfg.distributed.chunk_steps, chunk
        )
        self.inflight[ref] = (i, chunk)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, t, d, dx = self.cfg, self.cfg.train, self.cfg.dqn, self.cfg.distributed
        self.step = 0
        self.updates = 0
        self.version = -1
        self.published: dict[int, str] = {}
        self.replay_size = 0
        self.best = -math.inf
        self._build()
        elapsed, recent, episodes = 0.0, {}, 0
        if self.resume:
            elapsed, recent, episodes = self._restore()
        self.logger = RunLogger(
            self.run_dir,
            t.total_steps,
            tensorboard=t.tensorboard,
            progress=t.progress,
            resume_step=self.step if self.resume else None,
            elapsed=elapsed,
            trackers=make_trackers(cfg, self.run_dir, resume=self.resume),
        )
        for key, dq in (
            ("returns", self.logger.recent_returns),
            ("lengths", self.logger.recent_lengths),
            ("success", self.logger.recent_success),
        ):
            dq.extend(recent.get(key, []))
        self.logger.episodes = episodes
        self.wall0 = time.perf_counter()
        self.inflight: dict[Any, tuple[int, int]] = {}  # ref -> (actor, chunk id)
        self._next_chunk = 0
        self._lost: list[int] = []  # chunk ids whose actor died before reporting
        self.ups = updates_per_step(cfg)
        self.paused = []
        self.publish()
        for i in range(dx.actors):
            self.actors[i] = self._new_actor(i, 0)
            self._submit(i)

        ups = self.ups
        sync_every = target_sync_updates(cfg)
        start_steps = max(d.learning_starts, d.batch_size)
        self.last_stats: dict[str, torch.Tensor] = {}
        solved_at: int | None = None
        final_eval: dict[str, float] | None = None
        evaluation: dict[str, float] | None = None
        next_log = (self.step // t.log_freq + 1) * t.log_freq
        next_eval = (self.step // t.eval_freq + 1) * t.eval_freq if t.eval_freq else math.inf
        next_ckpt = (
            (self.step // t.checkpoint_freq + 1) * t.checkpoint_freq
            if t.checkpoint_freq
            else math.inf
        )
        sample_ref: Any = None
        sample_shard = 0
        try:
            while self.step < t.total_steps:
                can_learn = (
                    self.replay_size >= start_steps
                    and self.updates < (self.step - d.learning_starts) * ups
                )
                self._harvest(block=not can_learn)
                if can_learn:
                    if sample_ref is None:
                        sample_ref = self._sample(sample_shard)
                    t0 = time.perf_counter()
                    arrays, idx, weights = self.ray.get(sample_ref)
                    t1 = time.perf_counter()
                    shard = sample_shard
                    # Prefetch the next batches (round-robin over shards) while these train.
                    sample_shard = (sample_shard + 1) % dx.replay_shards
                    sample_ref = self._sample(sample_shard)
                    apply_warmup(self.learner.optimizer, self.updates)
                    # copies: arrays out of the object store are read-only
                    batch = Batch(*(torch.tensor(a, device=self.device) for a in arrays))
                    w = torch.tensor(weights, device=self.device)
                    g = dx.sample_batches
                    self.last_stats = self.learner.update_phase(batch._replace(weights=w), g)
                    prio = self.last_stats["priorities"].detach().float().cpu().numpy()
                    self.shards[shard].update_priorities.remote(idx, prio)
                    before, self.updates = self.updates, self.updates + g
                    self.stats.sample_wait_s += t1 - t0
                    self.stats.update_s += time.perf_counter() - t1
                    if self.updates // sync_every != before // sync_every:
                        self.learner.sync_target()
                    if self.updates // dx.publish_interval != before // dx.publish_interval:
                        self.publish()
                self._resume_paused()

                evaluation = None
                if self.step >= next_eval:
                    evaluation = self._eval()
                    while next_eval <= self.step:
                        next_eval += t.eval_freq
                    if evaluation["mean_return"] > self.best:
                        self.best = evaluation["mean_return"]
                        self.checkpoint("best")
                    if t.stop_return is not None and evaluation["mean_return"] >= t.stop_return:
                        solved_at = self.step
                if self.step >= next_log or evaluation is not None:
                    self._log(evaluation)
                    while next_log <= self.step:
                        next_log += t.log_freq
                if solved_at is not None:
                    final_eval = evaluation
                    break
                if self.step >= next_ckpt:
                    self.checkpoint("last")
                    while next_ckpt <= self.step:
                        next_ckpt += t.checkpoint_freq
            self._drain()  # a clean stop: every chunk in flight reaches replay and is counted
            if evaluation is not None:
                final_eval = evaluation
            if final_eval is None:
                final_eval = self._eval()
                self._log(final_eval)
                if final_eval["mean_return"] > self.best:
                    self.best = final_eval["mean_return"]
                    self.checkpoint("best")
            self.checkpoint("last")
        finally:
            self._write_stats()
            for handle in [*self.actors, *self.shards]:
                if handle is not None:
                    self.ray.kill(handle)
            self.logger.close()
            self.evaluator.close()
        write_eval_json(self.run_dir, {**final_eval, "step": self.step, "checkpoint": "last"})
        plot_learning_curve(self.run_dir, title=f"{cfg.name}: Ape-X DQN on {cfg.env.id}")
        return TrainResult(
            run_dir=self.run_dir,
            steps=self.step,
            final_eval=final_eval,
            best_eval_return=self.best,
            solved_at_step=solved_at,
            eval_history=self.logger.eval_history,
            wall_time_s=self.logger.elapsed(),
        )

    def _sample(self, shard: int) -> Any:
        d, dx = self.cfg.dqn, self.cfg.distributed
        return self.shards[shard].sample.remote(d.batch_size * dx.sample_batches, self.step)

    def _learner_lag(self) -> float:
        """Updates the learner is behind its quota (``updates_per_step`` per env step)."""
        if self.replay_size < max(self.cfg.dqn.learning_starts, self.cfg.dqn.batch_size):
            return 0.0
        return (self.step - self.cfg.dqn.learning_starts) * self.ups - self.updates

    def _resume_paused(self) -> None:
        lag = self.cfg.distributed.max_update_lag
        while self.paused and (lag is None or self._learner_lag() <= lag):
            self._submit(self.paused.pop())

    def _harvest(self, *, block: bool) -> None:
        """Take in the finished actor chunks (waiting for one if ``block``) and resubmit them."""
        refs = list(self.inflight)
        if not refs:
            return
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready and block:
            ready, _ = self.ray.wait(refs, num_returns=1)
        for ref in ready:
            self._take(ref, resubmit=True)

    def _take(self, ref: Any, *, resubmit: bool) -> None:
        i, chunk = self.inflight.pop(ref)
        try:
            report: ChunkReport = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            self._lost.append(chunk)
            self._replace(i)
            if resubmit:
                self._submit(i)
            return
        self.step += report.steps
        self.replay_size += report.sent
        self.stats.chunks += 1
        self.stats.actor_seconds += report.seconds
        self.stats.actor_versions[i] = report.version
        if self.published.get(report.version) == report.checksum:
            self.stats.checksum_matches += 1
        else:
            self.stats.checksum_mismatches += 1
        for ret, length, succ in report.episodes:
            self.logger.episode(self.step, ret, length, succ)
        if self.on_chunk is not None:
            self.on_chunk(self)
        lag = self.cfg.distributed.max_update_lag
        if resubmit and lag is not None and self._learner_lag() > lag:
            self.paused.append(i)  # on few cores, leave the CPU to the learner until it catches up
        elif resubmit:
            self._submit(i)
        if self.cfg.train.progress:
            self.logger.progress(self.step)

    def _replace(self, i: int) -> None:
        """An actor died (crash, node loss, ``ray.kill``): start a new one in its place. Lost:
        the chunk it was collecting and its open n-step windows, never anything in replay."""
        self.stats.actor_restarts += 1
        self.stats.lost_chunks += 1
        self.stats.lost_steps_at_most += self.cfg.distributed.chunk_steps * self.cfg.env.num_envs
        with contextlib.suppress(Exception):  # already gone: nothing to clean up
            self.ray.kill(self.actors[i])
        self.actors[i] = self._new_actor(i, self.stats.actor_restarts)

    def _drain(self) -> None:
        while self.inflight:
            self._take(next(iter(self.inflight)), resubmit=False)

    def _eval(self) -> dict[str, float]:
        self.q_net.eval()
        result = self.evaluator(lambda o: self.policy.greedy(self.prep(o)))
        self.q_net.train()
        return result

    def _log(self, evaluation: dict[str, float] | None) -> None:
        s = self.last_stats
        scalars = {
            "explore": float(np.mean(self.stats.eps)),
            "loss": float(s["loss"]) if s else math.nan,
            "q_mean": float(s["q_mean"]) if s else math.nan,
        }
        self.logger.log(self.step, scalars, evaluation)

    def _reconcile_lost(self) -> None:
        """An actor can die after its chunk reached replay but before its report reached the
        learner: such chunks are not lost but unreported (in replay, not in ``env_steps``)."""
        if not self._lost:
            return
        found: dict[int, int] = {}
        for shard in self.shards:
            found.update(self.ray.get(shard.delivered.remote(self._lost)))
        per_chunk = self.cfg.distributed.chunk_steps * self.cfg.env.num_envs
        self.stats.unreported_chunks += len(found)
        self.stats.unreported_transitions += sum(found.values())
        self.stats.lost_chunks -= len(found)
        self.stats.lost_steps_at_most -= len(found) * per_chunk
        self._lost = []

    def _write_stats(self) -> None:
        self._reconcile_lost()
        replay = [self.ray.get(s.stats.remote()) for s in self.shards]
        wall = time.perf_counter() - self.wall0
        self.stats.updates = self.updates
        doc = self.stats.summary(wall, self.step, replay)
        (self.run_dir / "distributed.json").write_text(json.dumps(doc, indent=1) + "\n")

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self, name: str) -> None:
        tensors = {
            **module_tensors("q", self.q_net),
            **module_tensors("target", self.target_net, shared_with=self.q_net),
        }
        opt_t, groups = optimizer_tensors(self.learner.optimizer)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        lg = self.logger
        meta: dict[str, Any] = {
            "kind": "apex",
            "step": self.step,
            "updates": self.updates,
            "version": self.version,
            "replay_size": self.replay_size,
            "best_eval_return": self.best if math.isfinite(self.best) else None,
            "elapsed_s": lg.elapsed(),
            "optim_groups": groups,
            "recent": {
                "returns": list(lg.recent_returns),
                "lengths": list(lg.recent_lengths),
                "success": list(lg.recent_success),
            },
            "episodes": lg.episodes,
            "config": self.cfg.to_dict(),
        }
        if self.cfg.train.save_buffer and name == "last":
            # The replay shards' contents: what was delivered; actors' open chunks are not in it.
            states = self.ray.get([s.state.remote() for s in self.shards])
            meta["replay"] = []
            for k, (shard_t, shard_meta) in enumerate(states):
                tensors.update({f"replay{k}.{key}": v for key, v in shard_t.items()})
                meta["replay"].append(shard_meta)
        save_checkpoint(self.run_dir / "checkpoints", name, tensors, meta)

    def _restore(self) -> tuple[float, dict[str, list[float]], int]:
        tensors, meta = load_checkpoint(self.run_dir / "checkpoints", "last", self.device)
        load_module("q", self.q_net, tensors)
        load_module("target", self.target_net, tensors, shared_with=self.q_net)
        load_optimizer(self.learner.optimizer, tensors, meta["optim_groups"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        self.step, self.updates = meta["step"], meta["updates"]
        self.version = meta["version"]
        best = meta["best_eval_return"]
        self.best = -math.inf if best is None else best
        if "replay" in meta:
            loads = []
            for k, shard_meta in enumerate(meta["replay"]):
                prefix = f"replay{k}."
                part = {
                    key[len(prefix) :]: v.cpu()
                    for key, v in tensors.items()
                    if key.startswith(prefix)
                }
                loads.append(self.shards[k].load_state.remote(part, shard_meta))
            self.ray.get(loads)
            self.replay_size = meta["replay_size"]
        # Actors start fresh episodes: their env states and open n-step windows are not saved.
        return meta["elapsed_s"], meta["recent"], meta["episodes"]


def train_apex(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    ray_address: str | None = None,
    on_chunk: Callable[[ApexTrainer], None] | None = None,
) -> TrainResult:
    """Train Ape-X DQN as ``cfg`` says (``distributed.*`` keys), writing ``run_dir``.

    Args:
        cfg: the run's config (``distributed.mode=apex``).
        run_dir: the run directory (created by :func:`drlzero.train.run.new_run_dir`).
        resume: continue from ``run_dir``'s last checkpoint (learner, optimizer, replay).
        ray_address: join this Ray cluster; None starts a local Ray sized for this machine
            (and shuts it down at the end).
        on_chunk: called with the trainer after every finished actor chunk (tests, monitoring).

    Example:
        >>> from drlzero import load_config
        >>> cfg = load_config("cartpole-dqn", overrides=["distributed.mode=apex"])
        >>> train_apex(cfg, Path("runs/apex"))  # doctest: +SKIP
    """
    ray = require_ray()
    started = init_ray(ray_address, object_store_mb=cfg.distributed.object_store_mb)
    try:
        return ApexTrainer(cfg, run_dir, resume=resume, on_chunk=on_chunk).run()
    finally:
        if started:
            ray.shutdown()
