"""The PPO training loop: collect a rollout -> GAE -> minibatch epochs, for any actor-critic
that is a :class:`PPOAgent`; :class:`~drlzero.train.run.Run` does the evaluation, logs and
checkpoints.

Two agents plug in, by ``algo``:

- ``ppo``: :class:`NetPPOAgent`, the encoder + heads actor-critic of
  :mod:`drlzero.nets.actor_critic` (MLP, CNN, transformer, pretrained encoders), with running
  observation and reward normalisation, the fast path (``train.fast_path``,
  :mod:`drlzero.accel.ppo`) and data-parallel learning (``dp``, :mod:`drlzero.train.parallel`);
- ``lmppo``: :class:`~drlzero.lmpolicy.agent.LMPPOAgent`, a causal language model scoring named
  actions (:mod:`drlzero.nets.lm`), learning over micro-batches.

Counting: ``step`` is env steps summed over the E parallel envs; one rollout is
``ppo.n_steps * E`` env steps. Evaluation, logging and checkpoints happen at rollout boundaries
(the first boundary at or past each cadence mark). Checkpoints are taken only there, so a
checkpoint holds the agent's trained tensors (and its own meta, e.g. normalisers or the base
model's digest), the optimizer, torch RNG, env states, the current observations and episode
counters, and no partial rollout: ``--resume`` of a killed run replays the interrupted rollout
exactly. The learning rate anneals over ``ceil(total_steps / rollout)`` updates, so resuming
with a larger ``--total-steps`` stretches the rest of the schedule.

Under SAME_STEP autoreset the step that ends an episode returns the next episode's first
observation; the true last one (``info["final_obs"]``) gives the bootstrap value of a truncated
episode. Action masks (``env.action_mask``: ``info``, or ``obs:KEY``, which the env wrapper
moves into info) come as DQN's do (:class:`~drlzero.masks.MaskSource`) and always belong to the
observation they arrive with.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from drlzero.accel import accelerate_ppo
from drlzero.algos.base import DataParallel
from drlzero.algos.ppo import Minibatch
from drlzero.config import Config
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import stack_obs
from drlzero.envs.state import get_vec_env_state, set_vec_env_state
from drlzero.errors import UserError
from drlzero.lmpolicy.agent import LMPPOAgent
from drlzero.masks import MaskSource
from drlzero.nets.actor_critic import build_actor_critic
from drlzero.rollout import ObsNormalizer, RewardScaler, RolloutBuffer
from drlzero.train.checkpoint import load_module, load_optimizer, module_tensors, optimizer_tensors
from drlzero.train.evaluate import Evaluator
from drlzero.train.run import EVAL_SEED_OFFSET, EvalCallback, Run, TrainResult, open_envs


class PPOAgent(Protocol):
    """What the PPO loop needs of an actor-critic: its network and learner, how it reads the
    env, and its part of a checkpoint. Observations and actions are NumPy arrays leading with
    the batch (E envs while acting)."""

    #: The checkpoint's ``kind`` (a run resumes only its own) and the learning curve's name.
    kind: str
    title: str
    net: torch.nn.Module
    #: The learner's optimizer (checkpointed with torch's RNG by :func:`rollout_loop_state`).
    optimizer: torch.optim.Optimizer
    #: A of a Discrete action space (action masks need it), None for other spaces.
    num_actions: int | None
    #: One stored observation's (shape, NumPy dtype) and one action's (shape, torch dtype).
    obs_spec: tuple[tuple[int, ...], np.dtype]
    action_spec: tuple[tuple[int, ...], torch.dtype]

    def observe(self, raw: Any, update: bool) -> np.ndarray:
        """Raw env observations -> what the network reads and the rollout stores (``update``:
        training observations that running statistics may learn from)."""
        ...

    def scale_rewards(self, reward_E: np.ndarray, done_E: np.ndarray) -> np.ndarray:
        """The rewards the learner sees (episode returns are logged unscaled)."""
        ...

    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Sampled (actions, log-probs, values) for observed ``obs``."""
        ...

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """What the env is stepped with for sampled ``actions``."""
        ...

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) for observed ``obs``."""
        ...

    def greedy(self, raw: Any, mask: np.ndarray | None = None) -> np.ndarray:
        """Evaluation's deterministic env actions for raw observations."""
        ...

    def begin_rollout(self) -> None:
        """Called before each rollout (e.g. the module mode acting runs in)."""
        ...

    def learn(
        self, sample_epoch: Callable[[], list[Minibatch]], lr_frac: float
    ) -> dict[str, float]:
        """One update at ``lr_frac`` times the configured learning rates; its loss terms."""
        ...

    def scalars(self) -> dict[str, float]:
        """The agent's own scalars, logged with each metrics row."""
        ...

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The agent's part of a checkpoint: trained tensors and JSON-able meta."""
        ...

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Load what :meth:`state` saved (checking it fits this agent)."""
        ...


class NetPPOAgent:
    """``algo: ppo``: the encoder + heads actor-critic of :func:`build_actor_critic`.

    Observations pass the encoder's env boundary (e.g. a frozen LM: tokens -> cached
    embeddings), then the running normaliser (``ppo.normalize_obs``); rewards the discounted-
    return scaler (``ppo.normalize_reward``). Both normalisers' moments are checkpointed.

    Args:
        cfg: the run's config (``encoder``, ``ppo``, ``train.fast_path``).
        envs: the training vector env (its width and single spaces).
        device: where the network and the rollout live.
        dp: this process's part of data-parallel learning, or None.
    """

    kind = "ppo"
    title = "PPO"

    def __init__(
        self, cfg: Config, envs: Any, device: torch.device, dp: DataParallel | None
    ) -> None:
        p = cfg.ppo
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        self.net = net = build_actor_critic(cfg, obs_space, act_space).to(device)
        learner_cls, policy_cls = accelerate_ppo(cfg.train.fast_path)  # data-parallel: plain
        self.learner = learner_cls(net, p)
        self.learner.dp = dp
        self.optimizer = self.learner.optimizer
        self.policy = policy_cls(net, act_space, device)
        self.lr = p.lr
        self.prep = env_boundary(net.encoder)
        obs_shape, obs_dtype = stored_spec(net.encoder, obs_space)
        self.obs_norm = ObsNormalizer(obs_shape, enabled=p.normalize_obs, clip=p.clip_obs)
        if p.normalize_obs:
            obs_dtype = np.dtype(np.float32)
        self.reward_scaler = RewardScaler(
            envs.num_envs, p.gamma, enabled=p.normalize_reward, clip=p.clip_reward
        )
        self.obs_spec = (obs_shape, obs_dtype)
        act_dtype = torch.float32 if net.kind == "box" else torch.int64
        self.action_spec = (tuple(act_space.shape or ()), act_dtype)
        self.num_actions = int(act_space.n) if isinstance(act_space, gym.spaces.Discrete) else None
        if self.num_actions is None and cfg.env.action_mask != "none":
            raise UserError(
                f"action masks are supported for Discrete actions; {cfg.env.id} has {act_space}: "
                "set env.action_mask=none or use a Discrete action space"
            )

    def observe(self, raw: Any, update: bool) -> np.ndarray:
        return self.obs_norm(np.asarray(self.prep(raw)), update=update)

    def scale_rewards(self, reward_E: np.ndarray, done_E: np.ndarray) -> np.ndarray:
        return self.reward_scaler(reward_E, done_E)

    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
        return self.policy.act(obs, mask)

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        return self.policy.env_actions(actions)  # Box: clipped; indices: shifted by start

    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.value(obs)

    def greedy(self, raw: Any, mask: np.ndarray | None = None) -> np.ndarray:
        return self.policy.greedy(self.observe(raw, update=False), mask)

    def begin_rollout(self) -> None:
        pass  # the network acts in the mode it learns in

    def learn(
        self, sample_epoch: Callable[[], list[Minibatch]], lr_frac: float
    ) -> dict[str, float]:
        self.learner.set_lr(self.lr * lr_frac)
        return self.learner.update(sample_epoch)

    def scalars(self) -> dict[str, float]:
        return {}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        meta = {"obs_rms": self.obs_norm.rms.state(), "reward_rms": self.reward_scaler.state()}
        return module_tensors("ac", self.net), meta

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        load_module("ac", self.net, tensors)
        self.obs_norm.rms.load(meta["obs_rms"])
        self.reward_scaler.load(meta["reward_rms"])


def build_agent(
    cfg: Config, envs: Any, device: torch.device, dp: DataParallel | None = None
) -> PPOAgent:
    """The agent ``cfg.algo`` names (``ppo`` or ``lmppo``) for the training envs ``envs``."""
    if cfg.algo == "lmppo":  # config allows data-parallel learning for algo=ppo only
        return LMPPOAgent(cfg, envs, device)
    return NetPPOAgent(cfg, envs, device, dp)


def train_ppo(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    on_eval: EvalCallback | None = None,
    dp: DataParallel | None = None,
) -> TrainResult:
    """Train PPO (``algo: ppo`` or ``lmppo``) as ``cfg`` says, writing everything into
    ``run_dir`` (``dp``: this process's part of data-parallel learning, see
    ``drlzero.train.parallel``)."""
    t, p = cfg.train, cfg.ppo
    device, envs = open_envs(cfg)
    E = envs.num_envs
    agent = build_agent(cfg, envs, device, dp)
    A = agent.num_actions
    masks = MaskSource(cfg.env.action_mask, E, A or 0)  # off: every mask is None

    raw, info = envs.reset(seed=t.seed)
    obs = agent.observe(raw, update=True)
    mask = masks.reset(info)
    storage = RolloutBuffer(
        p.n_steps,
        E,
        *agent.obs_spec,
        *agent.action_spec,
        num_actions=A if masks.on else None,
        device=device,
    )
    num_updates = math.ceil(t.total_steps / (p.n_steps * E))  # the lr schedule's length
    # masks from info reach the greedy policy as they do in training
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET, masked=masks.on)
    updates = 0
    stats: dict[str, float] = {}

    def evaluate() -> dict[str, float]:
        agent.net.eval()
        result = evaluator(agent.greedy)
        agent.net.train()
        return result

    def scalars() -> dict[str, float]:
        # the last update's losses, lr and explained variance, and the agent's own columns
        return {**stats, **agent.scalars()}

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = rollout_loop_state(agent.optimizer, obs, mask, envs, device)
        own_tensors, own_meta = agent.state()
        tensors.update(own_tensors)
        meta.update(updates=updates, **own_meta)
        return tensors, meta

    with Run(
        cfg,
        run_dir,
        kind=agent.kind,
        resume=resume,
        on_eval=on_eval,
        evaluate=evaluate,
        state=state,
        title=f"{cfg.name}: {agent.title} on {cfg.env.id}",
        device=device,
        closing=[envs, evaluator],
        num_envs=E,
    ) as run:
        if run.loaded is not None:
            tensors, meta = run.loaded
            if meta.get("kind") != agent.kind:
                raise UserError(
                    f"{run.run_dir} holds a {meta.get('kind')} checkpoint, not an "
                    f"algo={agent.kind} one"
                )
            agent.load(tensors, meta)
            updates = meta["updates"]
            restored = restore_rollout_loop(run, agent.optimizer, device, envs)
            if restored is None:  # no env state: fresh episodes from a step-dependent seed
                raw, info = envs.reset(seed=t.seed + run.step)
                obs, mask = agent.observe(raw, update=True), masks.reset(info)
            else:
                obs, mask = restored
        # One iteration is one rollout of n_steps * E env steps; Run evaluates and checkpoints
        # only in end_iteration, after the update, so a checkpoint never holds half a rollout.
        while not run.done:
            # -- collect one rollout
            storage.reset()
            agent.begin_rollout()
            for _ in range(p.n_steps):
                actions, logp, values = agent.act(obs, mask)
                raw, reward, term, trunc, info = envs.step(agent.env_actions(actions))
                done = term | trunc
                final_values = np.zeros(E, np.float32)
                boot = np.flatnonzero(trunc & ~term)  # truncated: bootstrap from V(final obs)
                if boot.size:
                    finals = stack_obs([info["final_obs"][i] for i in boot])
                    final_values[boot] = agent.value(agent.observe(finals, update=False))
                # -- store
                scaled = agent.scale_rewards(reward, done)
                storage.add(obs, actions, logp, values, scaled, term, done, final_values, mask)
                run.track(reward, done, info)  # E env steps; episode returns (unscaled)
                obs = agent.observe(raw, update=True)
                mask = masks.acting(info)
            # -- learn: GAE, then minibatch epochs
            storage.finish(agent.value(obs), p.gamma, p.gae_lambda)
            frac = max(1.0 - updates / num_updates, 0.0) if p.anneal_lr else 1.0
            stats = agent.learn(lambda: storage.epoch(p.num_minibatches), frac)
            updates += 1
            stats["lr"] = p.lr * frac
            stats["explained_var"] = _explained_variance(storage.values, storage.returns)
            run.end_iteration(scalars)
        return run.finish(scalars())


def rollout_loop_state(
    optimizer: torch.optim.Optimizer,
    obs: np.ndarray,
    mask: np.ndarray | None,
    envs: Any,
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What every on-policy checkpoint holds besides the network: the optimizer, torch's RNG
    (and CUDA's: actions are sampled on the device), the current observations and their mask,
    and the envs' state (between rollouts, so never half a rollout)."""
    tensors, groups = optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    tensors["loop.obs"] = torch.from_numpy(np.ascontiguousarray(obs))
    if mask is not None:  # the mask of loop.obs
        tensors["loop.mask"] = torch.from_numpy(np.ascontiguousarray(mask))
    return tensors, {"optim_groups": groups, "env_state": get_vec_env_state(envs)}


def restore_rollout_loop(
    run: Run, optimizer: torch.optim.Optimizer, device: torch.device, envs: Any
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Load what :func:`rollout_loop_state` saved; returns (obs, mask), or None when the envs'
    state could not be saved (the caller resets them: fresh episodes, with a warning)."""
    assert run.loaded is not None
    tensors, meta = run.loaded
    load_optimizer(optimizer, tensors, meta["optim_groups"])
    torch.set_rng_state(tensors["rng.torch"].cpu())
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"].cpu(), device)
    if meta.get("env_state") is None:
        warnings.warn(
            f"{run.cfg.env.id} state cannot be saved as data: resume starts fresh episodes",
            stacklevel=3,
        )
        run.new_episodes()
        return None
    set_vec_env_state(envs, meta["env_state"])
    obs = tensors["loop.obs"].cpu().numpy()
    mask = tensors["loop.mask"].cpu().numpy() if "loop.mask" in tensors else None
    return obs, mask


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R): how much of the return's variance the critic explains."""
    var = float(returns.var())
    return math.nan if var == 0 else 1.0 - float((returns - values).var()) / var
