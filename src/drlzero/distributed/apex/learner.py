"""The Ape-X learner (the driver process): it owns the run (:class:`~drlzero.train.run.Run`),
the replay shards and the actors, samples, learns and publishes weights."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drlzero.accel import accelerate
from drlzero.algos.dqn import compile_setting
from drlzero.algos.rainbow import RainbowLearner
from drlzero.config import Config
from drlzero.distributed import init_ray, require_ray
from drlzero.distributed.apex.actor import (
    ApexActor,
    ChunkReport,
    epsilon_ladder,
    weights_checksum,
    weights_of,
)
from drlzero.distributed.apex.shard import ReplayShard
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import make_env
from drlzero.nets import apply_warmup, build_q_network, make_target, param_groups
from drlzero.replay.storage import Batch
from drlzero.train.checkpoint import (
    load_module,
    load_optimizer,
    module_tensors,
    optimizer_tensors,
)
from drlzero.train.evaluate import Evaluator
from drlzero.train.run import EVAL_SEED_OFFSET, Run, TrainResult, apply_cpu_settings
from drlzero.utils import pick_device, seed_everything


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
        self.engine: Run | None = None

    # -- set-up --------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, t, d, dx = self.cfg, self.cfg.train, self.cfg.dqn, self.cfg.distributed
        ray = self.ray
        apply_cpu_settings(t)
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
        capacity = min(cfg.replay.buffer_size, max(t.total_steps, d.batch_size))
        per_shard = math.ceil(capacity / dx.replay_shards)
        if self.resume:  # keep the saved capacity: a larger --total-steps must not resize it
            saved = json.loads((self.run_dir / "checkpoints" / "last.json").read_text())
            if saved.get("replay"):
                per_shard = int(saved["replay"][0]["storage"]["capacity"])
        # Shards are light (NumPy indexing): no CPU reservation, they run beside the actors.
        shard_cls = ray.remote(num_cpus=0)(ReplayShard)
        self.shards = [
            shard_cls.remote(
                per_shard,
                shape,
                dtype,
                cfg.replay,
                total_steps=t.total_steps,
                seed=t.seed + 100 + k,
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
    @property
    def step(self) -> int:
        """Env steps reported by the actors so far (the run's counter)."""
        return 0 if self.engine is None else self.engine.step

    def run(self) -> TrainResult:
        cfg, d, dx = self.cfg, self.cfg.dqn, self.cfg.distributed
        self.updates = 0
        self.version = -1
        self.published: dict[int, str] = {}
        self.replay_size = 0
        self._build()
        self.inflight: dict[Any, tuple[int, int]] = {}  # ref -> (actor, chunk id)
        self._next_chunk = 0
        self._lost: list[int] = []  # chunk ids whose actor died before reporting
        self.ups = updates_per_step(cfg)
        self.paused: list[int] = []
        self.last_stats: dict[str, torch.Tensor] = {}
        self.wall0 = time.perf_counter()
        try:
            # Run owns the cadence: evaluation, logs, best/last checkpoints, stop-on-solve, the
            # final evaluation, eval.json and the plot, as in every single-process loop.
            self.engine = Run(
                cfg,
                self.run_dir,
                kind="apex",
                resume=self.resume,
                evaluate=self._eval,
                state=self._state,
                title=f"{cfg.name}: Ape-X DQN on {cfg.env.id}",
                device=self.device,
                closing=[self.evaluator],
            )
            with self.engine as run:
                if run.loaded is not None:
                    self._restore(*run.loaded)
                self.publish()
                for i in range(dx.actors):
                    self.actors[i] = self._new_actor(i, 0)
                    self._submit(i)
                sync_every = target_sync_updates(cfg)
                start_steps = max(d.learning_starts, d.batch_size)
                sample_ref: Any = None
                sample_shard = 0
                while not run.done:
                    can_learn = (
                        self.replay_size >= start_steps
                        and self.updates < (run.step - d.learning_starts) * self.ups
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
                        self._learn(arrays, idx, weights, shard, sync_every)
                        self.stats.sample_wait_s += t1 - t0
                        self.stats.update_s += time.perf_counter() - t1
                    self._resume_paused()
                    run.end_iteration(self._scalars)
                self._drain()  # a clean stop: every chunk in flight reaches replay and is counted
                return run.finish(self._scalars())
        finally:
            if self.engine is not None:
                self._write_stats()
            for handle in [*self.actors, *self.shards]:
                if handle is not None:
                    self.ray.kill(handle)

    def _learn(
        self, arrays: list[np.ndarray], idx: np.ndarray, weights: np.ndarray, shard: int, sync: int
    ) -> None:
        """One training phase on sampled batches; priorities back to their shard; the target
        sync and the weights publication when their update counts come round."""
        dx = self.cfg.distributed
        apply_warmup(self.learner.optimizer, self.updates)
        # copies: arrays out of the object store are read-only
        batch = Batch(*(torch.tensor(a, device=self.device) for a in arrays))
        w = torch.tensor(weights, device=self.device)
        g = dx.sample_batches
        self.last_stats = self.learner.update_phase(batch._replace(weights=w), g)
        prio = self.last_stats["priorities"].detach().float().cpu().numpy()
        self.shards[shard].update_priorities.remote(idx, prio)
        before, self.updates = self.updates, self.updates + g
        if self.updates // sync != before // sync:
            self.learner.sync_target()
        if self.updates // dx.publish_interval != before // dx.publish_interval:
            self.publish()

    def _scalars(self) -> dict[str, float]:
        s = self.last_stats
        return {
            "explore": float(np.mean(self.stats.eps)),
            "loss": float(s["loss"]) if s else math.nan,
            "q_mean": float(s["q_mean"]) if s else math.nan,
        }

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
        self.engine.count(report.steps)
        self.replay_size += report.sent
        self.stats.chunks += 1
        self.stats.actor_seconds += report.seconds
        self.stats.actor_versions[i] = report.version
        if self.published.get(report.version) == report.checksum:
            self.stats.checksum_matches += 1
        else:
            self.stats.checksum_mismatches += 1
        for ret, length, succ in report.episodes:
            self.engine.episode(ret, length, succ)
        if self.on_chunk is not None:
            self.on_chunk(self)
        lag = self.cfg.distributed.max_update_lag
        if resubmit and lag is not None and self._learner_lag() > lag:
            self.paused.append(i)  # on few cores, leave the CPU to the learner until it catches up
        elif resubmit:
            self._submit(i)

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
    def _state(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The learner's part of a checkpoint (Run adds the step, best, logs and config)."""
        tensors = {
            **module_tensors("q", self.q_net),
            **module_tensors("target", self.target_net, shared_with=self.q_net),
        }
        opt_t, groups = optimizer_tensors(self.learner.optimizer)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        meta: dict[str, Any] = {
            "updates": self.updates,
            "version": self.version,
            "replay_size": self.replay_size,
            "optim_groups": groups,
        }
        if self.cfg.train.save_buffer and name == "last":
            # The replay shards' contents: what was delivered; actors' open chunks are not in it.
            states = self.ray.get([s.state.remote() for s in self.shards])
            meta["replay"] = []
            for k, (shard_t, shard_meta) in enumerate(states):
                tensors.update({f"replay{k}.{key}": v for key, v in shard_t.items()})
                meta["replay"].append(shard_meta)
        return tensors, meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        load_module("q", self.q_net, tensors)
        load_module("target", self.target_net, tensors, shared_with=self.q_net)
        load_optimizer(self.learner.optimizer, tensors, meta["optim_groups"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        self.updates, self.version = meta["updates"], meta["version"]
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
