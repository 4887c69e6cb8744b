"""The on-policy (PPO) training loop: collect a rollout -> GAE -> minibatch epochs.

Counting: ``step`` is env steps summed over the E parallel envs; one rollout is
``ppo.n_steps * E`` env steps. Evaluation, logging and checkpoints happen at rollout boundaries
(the first boundary at or past each cadence mark). Checkpoints are taken only there, so a
checkpoint holds weights, optimizer, torch RNG, normalisers, env states, the current
observations and episode counters, and no partial rollout: ``--resume`` of a killed run replays
the interrupted rollout exactly. The learning rate anneals over ``ceil(total_steps / rollout)``
updates, so resuming with a larger ``--total-steps`` stretches the rest of the schedule.

Under SAME_STEP autoreset the step that ends an episode returns the next episode's first
observation; the true last one (``info["final_obs"]``) gives the bootstrap value of a truncated
episode. Action masks come from ``info["action_mask"]`` or the observation key
``ppo.mask_key`` and always belong to the observation they arrive with.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlzero.algos.ppo import PPOLearner, PPOPolicy, build_actor_critic
from drlzero.config import Config
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import episode_successes, make_vec_env
from drlzero.envs.state import get_vec_env_state, set_vec_env_state
from drlzero.envs.text import stack_obs
from drlzero.errors import ConfigError, UserError
from drlzero.masks import INFO_KEY, mask_from_obs, read_mask
from drlzero.rollout import ObsNormalizer, RewardScaler, RolloutBuffer
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
from drlzero.train.run import TrainResult, write_eval_json
from drlzero.utils import pick_device, seed_everything

EVAL_SEED_OFFSET = 10_000


class ObsView:
    """Turns raw vector-env observations into (policy observation, mask source).

    With ``mask_key`` the observation is a Dict; the mask is read from that key and the policy
    sees the one remaining key's array.

    Args:
        obs_space: the env's single observation space.
        mask_key: the Dict key holding the mask ('' when masks come from info, or none).
    """

    def __init__(self, obs_space: gym.Space, mask_key: str) -> None:
        self.mask_key = mask_key
        self.data_key: str | None = None
        self.space = obs_space
        if mask_key:
            if not isinstance(obs_space, gym.spaces.Dict) or mask_key not in obs_space.spaces:
                raise ConfigError(
                    f"ppo.mask_key={mask_key!r} needs a Dict observation with that key, got "
                    f"{obs_space}; set ppo.mask_key='' for masks in info['action_mask']"
                )
            rest = [k for k in obs_space.spaces if k != mask_key]
            if len(rest) != 1:
                raise ConfigError(
                    f"ppo.mask_key={mask_key!r}: the observation must hold one other key, got "
                    f"{rest}; flatten the rest into one array"
                )
            self.data_key = rest[0]
            self.space = obs_space[self.data_key]

    def split(self, raw: Any) -> Any:
        return raw if self.data_key is None else raw[self.data_key]


def _num_actions(space: gym.Space) -> int | None:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else None


def train_ppo(cfg: Config, run_dir: Path, *, resume: bool = False) -> TrainResult:
    """Train PPO as ``cfg`` says, writing everything into ``run_dir``."""
    t, p = cfg.train, cfg.ppo
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    seed_everything(t.seed)
    device = pick_device(t.device)
    envs = make_vec_env(cfg.env)
    E = envs.num_envs
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    view = ObsView(obs_space, p.mask_key)
    net = build_actor_critic(cfg, view.space, act_space).to(device)
    learner = PPOLearner(net, p)
    policy = PPOPolicy(net, act_space, device)
    prep = env_boundary(net.encoder)  # e.g. frozen LM: tokens -> cached embeddings
    obs_shape, obs_dtype = stored_spec(net.encoder, view.space)
    obs_norm = ObsNormalizer(obs_shape, enabled=p.normalize_obs, clip=p.clip_obs)
    if p.normalize_obs:
        obs_dtype = np.dtype(np.float32)
    reward_scaler = RewardScaler(E, p.gamma, enabled=p.normalize_reward, clip=p.clip_reward)
    A = _num_actions(act_space)

    def masks_of(raw: Any, info: dict[str, Any], n: int) -> np.ndarray | None:
        """The (n, A) mask that goes with ``raw``, or None when the env gives none."""
        if A is None:
            if p.mask_key or info.get(INFO_KEY) is not None:
                raise UserError(
                    f"action masks are supported for Discrete actions; {cfg.env.id} has "
                    f"{act_space}: drop the mask or use a Discrete action space"
                )
            return None
        if p.mask_key:
            return mask_from_obs(raw, p.mask_key, n, A)
        return read_mask(info, n, A)

    def observe(raw: Any, update: bool) -> np.ndarray:
        """Raw observations -> what the network reads (env boundary, then normalisation)."""
        return obs_norm(np.asarray(prep(view.split(raw))), update=update)

    raw, info = envs.reset(seed=t.seed)
    obs = observe(raw, update=True)
    mask = masks_of(raw, info, E)
    rollout_len = p.n_steps * E
    storage = RolloutBuffer(
        p.n_steps,
        E,
        obs_shape,
        obs_dtype,
        tuple(act_space.shape or ()),
        torch.float32 if net.kind == "box" else torch.int64,
        num_actions=A if mask is not None else None,
        device=device,
    )
    num_updates = math.ceil(t.total_steps / rollout_len)
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET)

    # ---- run bookkeeping (counters, cadence, best/last, resume): one block, for a shared Run
    step = updates = 0
    best = -math.inf
    ep_ret = np.zeros(E)
    ep_len = np.zeros(E, dtype=np.int64)
    elapsed = 0.0
    recent: dict[str, list[float]] = {}
    episodes = 0
    if resume:
        tensors, meta = load_checkpoint(run_dir / "checkpoints", "last", device)
        if meta.get("kind") != "ppo":
            raise UserError(f"{run_dir} holds a {meta.get('kind')} checkpoint, not a PPO one")
        load_module("ac", net, tensors)
        load_optimizer(learner.optimizer, tensors, meta["optim_groups"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        if "rng.cuda" in tensors and device.type == "cuda":  # actions are sampled on the GPU
            torch.cuda.set_rng_state(tensors["rng.cuda"].cpu(), device)
        step, updates = meta["step"], meta["updates"]
        best = -math.inf if meta["best_eval_return"] is None else meta["best_eval_return"]
        elapsed, recent, episodes = meta["elapsed_s"], meta["recent"], meta["episodes"]
        obs_norm.rms.load(meta["obs_rms"])
        reward_scaler.load(meta["reward_rms"])
        if meta.get("env_state") is not None:
            set_vec_env_state(envs, meta["env_state"])
            obs = tensors["loop.obs"].cpu().numpy()
            mask = tensors["loop.mask"].cpu().numpy() if "loop.mask" in tensors else None
            ep_ret = tensors["loop.ep_ret"].cpu().numpy().astype(np.float64)
            ep_len = tensors["loop.ep_len"].cpu().numpy()
        else:
            warnings.warn(
                f"{cfg.env.id} state cannot be saved as data: resume starts fresh episodes",
                stacklevel=2,
            )
            raw, info = envs.reset(seed=t.seed + step)
            obs, mask = observe(raw, update=True), masks_of(raw, info, E)

    logger = RunLogger(
        run_dir,
        t.total_steps,
        tensorboard=t.tensorboard,
        progress=t.progress,
        resume_step=step if resume else None,
        elapsed=elapsed,
    )
    for key, dq in (
        ("returns", logger.recent_returns),
        ("lengths", logger.recent_lengths),
        ("success", logger.recent_success),
    ):
        dq.extend(recent.get(key, []))
    logger.episodes = episodes

    def checkpoint(name: str) -> None:
        tensors = module_tensors("ac", net)
        opt_t, groups = optimizer_tensors(learner.optimizer)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        tensors["loop.obs"] = torch.from_numpy(np.ascontiguousarray(obs))
        if mask is not None:
            tensors["loop.mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        tensors["loop.ep_ret"] = torch.from_numpy(ep_ret.copy())
        tensors["loop.ep_len"] = torch.from_numpy(ep_len.copy())
        meta = {
            "kind": "ppo",
            "step": step,
            "updates": updates,
            "best_eval_return": best if math.isfinite(best) else None,
            "elapsed_s": logger.elapsed(),
            "optim_groups": groups,
            "env_state": get_vec_env_state(envs),
            "obs_rms": obs_norm.rms.state(),
            "reward_rms": reward_scaler.state(),
            "recent": {
                "returns": list(logger.recent_returns),
                "lengths": list(logger.recent_lengths),
                "success": list(logger.recent_success),
            },
            "episodes": logger.episodes,
            "config": cfg.to_dict(),
        }
        save_checkpoint(run_dir / "checkpoints", name, tensors, meta)

    def greedy(raw_obs: Any, eval_info: dict[str, Any]) -> np.ndarray:
        n = len(next(iter(raw_obs.values()))) if isinstance(raw_obs, dict) else len(raw_obs)
        return policy.greedy(observe(raw_obs, update=False), masks_of(raw_obs, eval_info, n))

    def run_eval() -> dict[str, float]:
        net.eval()
        result = evaluator(greedy, pass_info=True)
        net.train()
        return result

    solved_at: int | None = None
    final_eval: dict[str, float] | None = None
    evaluation: dict[str, float] | None = None
    stats: dict[str, float] = {}
    next_log = (step // t.log_freq + 1) * t.log_freq
    next_eval = (step // t.eval_freq + 1) * t.eval_freq if t.eval_freq else math.inf
    next_ckpt = (
        (step // t.checkpoint_freq + 1) * t.checkpoint_freq if t.checkpoint_freq else math.inf
    )
    # ---- end of bookkeeping setup
    try:
        while step < t.total_steps:
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
                scaled = reward_scaler(reward, done)
                storage.add(obs, actions, logp, values, scaled, term, done, final_values, mask)
                ep_ret += reward
                ep_len += 1
                step += E
                if done.any():
                    succ = episode_successes(info, done, ep_ret, cfg.env.success_return)
                    for i in np.flatnonzero(done):
                        logger.episode(step, float(ep_ret[i]), int(ep_len[i]), float(succ[i]))
                    ep_ret[done] = 0.0
                    ep_len[done] = 0
                obs = observe(raw, update=True)
                mask = masks_of(raw, info, E)
            # -- learn
            storage.finish(policy.value(obs), p.gamma, p.gae_lambda)
            lr = p.lr * max(1.0 - updates / num_updates, 0.0) if p.anneal_lr else p.lr
            learner.set_lr(lr)
            stats = learner.update(lambda: storage.epoch(p.num_minibatches))
            updates += 1
            stats["lr"] = lr
            stats["explained_var"] = _explained_variance(storage.values, storage.returns)

            # -- bookkeeping at the rollout boundary (evaluate, log, checkpoint, stop)
            evaluation = None
            if step >= next_eval:
                evaluation = run_eval()
                while next_eval <= step:
                    next_eval += t.eval_freq
                if evaluation["mean_return"] > best:
                    best = evaluation["mean_return"]
                    checkpoint("best")
                if t.stop_return is not None and evaluation["mean_return"] >= t.stop_return:
                    solved_at = step
            if step >= next_log or evaluation is not None:
                logger.log(step, dict(stats), evaluation)
                while next_log <= step:
                    next_log += t.log_freq
            else:
                logger.progress(step)
            if solved_at is not None:
                final_eval = evaluation
                break
            if step >= next_ckpt:
                checkpoint("last")
                while next_ckpt <= step:
                    next_ckpt += t.checkpoint_freq
        loop_time = logger.elapsed()
        if evaluation is not None:
            final_eval = evaluation  # the last rollout ended with an evaluation
        if final_eval is None:
            final_eval = run_eval()
            logger.log(step, dict(stats), final_eval)
            if final_eval["mean_return"] > best:
                best = final_eval["mean_return"]
                checkpoint("best")
        checkpoint("last")
    finally:
        logger.close()
        envs.close()
        evaluator.close()
    write_eval_json(run_dir, {**final_eval, "step": step, "checkpoint": "last"})
    plot_learning_curve(run_dir, title=f"{cfg.name}: PPO on {cfg.env.id}")
    return TrainResult(
        run_dir=run_dir,
        steps=step,
        final_eval=final_eval,
        best_eval_return=best,
        solved_at_step=solved_at,
        eval_history=logger.eval_history,
        wall_time_s=logger.elapsed(),
        loop_time_s=loop_time,
    )


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R): how much of the return's variance the critic explains."""
    var = float(returns.var())
    return math.nan if var == 0 else 1.0 - float((returns - values).var()) / var
