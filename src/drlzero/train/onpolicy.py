"""The on-policy (PPO) training loop: collect a rollout -> GAE -> minibatch epochs;
:class:`~drlzero.train.run.Run` does the evaluation, logs and checkpoints.

Counting: ``step`` is env steps summed over the E parallel envs; one rollout is
``ppo.n_steps * E`` env steps. Evaluation, logging and checkpoints happen at rollout boundaries
(the first boundary at or past each cadence mark). Checkpoints are taken only there, so a
checkpoint holds weights, optimizer, torch RNG, normalisers, env states, the current
observations and episode counters, and no partial rollout: ``--resume`` of a killed run replays
the interrupted rollout exactly. The learning rate anneals over ``ceil(total_steps / rollout)``
updates, so resuming with a larger ``--total-steps`` stretches the rest of the schedule.

Under SAME_STEP autoreset the step that ends an episode returns the next episode's first
observation; the true last one (``info["final_obs"]``) gives the bootstrap value of a truncated
episode. Action masks (``env.action_mask``: ``info``, or ``obs:KEY``, which the env wrapper
moves into info) come as DQN's do (:class:`~drlzero.masks.MaskSource`) and always belong to the
observation they arrive with.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlzero.accel import accelerate_ppo
from drlzero.algos.base import DataParallel
from drlzero.algos.ppo import PPOLearner, build_actor_critic
from drlzero.config import Config
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import stack_obs
from drlzero.envs.state import get_vec_env_state, set_vec_env_state
from drlzero.errors import UserError
from drlzero.masks import MaskSource
from drlzero.rollout import ObsNormalizer, RewardScaler, RolloutBuffer
from drlzero.train.checkpoint import load_module, load_optimizer, module_tensors, optimizer_tensors
from drlzero.train.evaluate import Evaluator
from drlzero.train.run import EVAL_SEED_OFFSET, EvalCallback, Run, TrainResult, open_envs


def _num_actions(space: gym.Space) -> int | None:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else None


def train_ppo(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    on_eval: EvalCallback | None = None,
    dp: DataParallel | None = None,
) -> TrainResult:
    """Train PPO as ``cfg`` says, writing everything into ``run_dir`` (``dp``: this process's
    part of data-parallel learning, see ``drlzero.train.parallel``)."""
    t, p = cfg.train, cfg.ppo
    device, envs = open_envs(cfg)
    E = envs.num_envs
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    net = build_actor_critic(cfg, obs_space, act_space).to(device)
    learner_cls, policy_cls = accelerate_ppo(t.fast_path)  # data-parallel: plain (config)
    learner = learner_cls(net, p)
    learner.dp = dp
    policy = policy_cls(net, act_space, device)
    prep = env_boundary(net.encoder)  # e.g. frozen LM: tokens -> cached embeddings
    obs_shape, obs_dtype = stored_spec(net.encoder, obs_space)
    obs_norm = ObsNormalizer(obs_shape, enabled=p.normalize_obs, clip=p.clip_obs)
    if p.normalize_obs:
        obs_dtype = np.dtype(np.float32)
    reward_scaler = RewardScaler(E, p.gamma, enabled=p.normalize_reward, clip=p.clip_reward)
    A = _num_actions(act_space)

    if A is None and cfg.env.action_mask != "none":
        raise UserError(
            f"action masks are supported for Discrete actions; {cfg.env.id} has {act_space}: "
            "set env.action_mask=none or use a Discrete action space"
        )
    masks = MaskSource(cfg.env.action_mask, E, A or 0)  # off: every mask is None

    def observe(raw: Any, update: bool) -> np.ndarray:
        """Raw observations -> what the network reads (env boundary, then normalisation)."""
        return obs_norm(np.asarray(prep(raw)), update=update)

    raw, info = envs.reset(seed=t.seed)
    obs = observe(raw, update=True)
    mask = masks.reset(info)
    storage = RolloutBuffer(
        p.n_steps,
        E,
        obs_shape,
        obs_dtype,
        tuple(act_space.shape or ()),
        torch.float32 if net.kind == "box" else torch.int64,
        num_actions=A if masks.on else None,
        device=device,
    )
    num_updates = math.ceil(t.total_steps / (p.n_steps * E))  # the lr schedule's length
    # masks from info reach the greedy policy as they do in training
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET, masked=masks.on)
    updates = 0
    stats: dict[str, float] = {}

    def greedy(raw_obs: Any, info_mask: np.ndarray | None = None) -> np.ndarray:
        return policy.greedy(observe(raw_obs, update=False), info_mask)

    def evaluate() -> dict[str, float]:
        net.eval()
        result = evaluator(greedy)
        net.train()
        return result

    def scalars() -> dict[str, float]:
        return dict(stats)  # the last update's losses, lr and explained variance

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = rollout_loop_state(learner.optimizer, obs, mask, envs, device)
        tensors.update(module_tensors("ac", net))
        meta.update(updates=updates, obs_rms=obs_norm.rms.state(), reward_rms=reward_scaler.state())
        return tensors, meta

    with Run(
        cfg,
        run_dir,
        kind="ppo",
        resume=resume,
        on_eval=on_eval,
        evaluate=evaluate,
        state=state,
        title=f"{cfg.name}: PPO on {cfg.env.id}",
        device=device,
        closing=[envs, evaluator],
        num_envs=E,
    ) as run:
        if run.loaded is not None:
            updates, restored = _restore(run, net, learner, obs_norm, reward_scaler, envs)
            if restored is None:  # no env state: fresh episodes from a step-dependent seed
                raw, info = envs.reset(seed=t.seed + run.step)
                obs, mask = observe(raw, update=True), masks.reset(info)
            else:
                obs, mask = restored
        # One iteration is one rollout of n_steps * E env steps; Run evaluates and checkpoints
        # only in end_iteration, after the update, so a checkpoint never holds half a rollout.
        while not run.done:
            # -- collect one rollout
            storage.reset()
            for _ in range(p.n_steps):
                actions, logp, values = policy.act(obs, mask)
                raw, reward, term, trunc, info = envs.step(policy.env_actions(actions))
                done = term | trunc
                final_values = np.zeros(E, np.float32)
                boot = np.flatnonzero(trunc & ~term)  # truncated: bootstrap from V(final obs)
                if boot.size:
                    finals = stack_obs([info["final_obs"][i] for i in boot])
                    final_values[boot] = policy.value(observe(finals, update=False))
                # -- store
                scaled = reward_scaler(reward, done)
                storage.add(obs, actions, logp, values, scaled, term, done, final_values, mask)
                run.track(reward, done, info)  # E env steps; episode returns (unscaled)
                obs = observe(raw, update=True)
                mask = masks.acting(info)
            # -- learn: GAE, then minibatch epochs
            storage.finish(policy.value(obs), p.gamma, p.gae_lambda)
            lr = p.lr * max(1.0 - updates / num_updates, 0.0) if p.anneal_lr else p.lr
            learner.set_lr(lr)
            stats = learner.update(lambda: storage.epoch(p.num_minibatches))
            updates += 1
            stats["lr"] = lr
            stats["explained_var"] = _explained_variance(storage.values, storage.returns)
            run.end_iteration(scalars)
        return run.finish(scalars())


def _restore(
    run: Run,
    net: torch.nn.Module,
    learner: PPOLearner,
    obs_norm: ObsNormalizer,
    reward_scaler: RewardScaler,
    envs: Any,
) -> tuple[int, tuple[np.ndarray, np.ndarray | None] | None]:
    """Load what ``state`` saved into the loop's parts; returns (updates, (obs, mask)), with
    None in place of (obs, mask) when the envs' state was not saved (the caller resets them)."""
    assert run.loaded is not None
    tensors, meta = run.loaded
    if meta.get("kind") != "ppo":
        raise UserError(f"{run.run_dir} holds a {meta.get('kind')} checkpoint, not a PPO one")
    load_module("ac", net, tensors)
    obs_norm.rms.load(meta["obs_rms"])
    reward_scaler.load(meta["reward_rms"])
    device = next(net.parameters()).device
    return meta["updates"], restore_rollout_loop(run, learner.optimizer, device, envs)


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
