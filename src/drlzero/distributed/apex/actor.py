"""An Ape-X actor: its own vector env, a fixed epsilon of the ladder, a local copy of the
Q-network; it turns steps into prioritized n-step transitions and sends them to a replay shard.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, NamedTuple

import numpy as np
import torch

from drlzero.accel import accelerate
from drlzero.algos.rainbow import RainbowLearner, per_sample_loss
from drlzero.config import Config
from drlzero.distributed import require_ray
from drlzero.distributed.apex.shard import Transitions
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import episode_successes, make_vec_env, real_next_obs
from drlzero.exploration import ConstantSchedule, EpsilonGreedy
from drlzero.nets import build_q_network
from drlzero.replay import NStepAccumulator
from drlzero.replay.storage import Batch
from drlzero.utils import seed_everything

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


class ChunkReport(NamedTuple):
    """What one ``collect`` call of an actor returns to the learner."""

    actor: int
    steps: int  # env steps taken (vector steps * E)
    sent: int  # transitions delivered to replay
    episodes: list[tuple[float, int, float]]  # (return, length, success) of finished episodes
    version: int  # the weights version it acted with
    checksum: str  # weights_checksum of the weights it acted with
    seconds: float  # wall time of the call inside the actor


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
