"""The DQN training loop: collect -> replay -> learn, with evaluation, logs and checkpoints.

Counting: ``step`` is env steps summed over the E parallel envs; ``train_freq`` counts vector
steps; ``target_update_interval``, ``learning_starts``, the exploration schedule, logging,
evaluation and checkpoints count env steps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drlzero.algos.dqn import (
    DQNLearner,
    QPolicy,
    build_q_network,
    compile_setting,
    uses_family,
)
from drlzero.algos.rainbow import RainbowLearner
from drlzero.buffers import ReplayBuffer
from drlzero.config import Config
from drlzero.encoders import env_boundary, stored_spec
from drlzero.encoders.pretrained import apply_warmup, make_target, param_groups
from drlzero.envs import episode_successes, make_vec_env
from drlzero.envs.state import get_vec_env_state, set_vec_env_state
from drlzero.envs.text import stack_obs
from drlzero.exploration import build_explorer
from drlzero.masks import MaskSource
from drlzero.noisy import NoiseResetter, noisy_layers
from drlzero.replay.memory import Replay
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
from drlzero.train.run import TrainResult, rng_state, set_rng_state, write_eval_json
from drlzero.utils import pick_device, seed_everything

EVAL_SEED_OFFSET = 10_000


def _real_next_obs(
    next_obs: np.ndarray, any_done: bool, info: dict, prep: Callable[[Any], np.ndarray]
) -> np.ndarray:
    """Under SAME_STEP autoreset, ended envs return the next episode's first observation;
    the transition must store the true last one from ``info["final_obs"]`` (through ``prep``,
    the encoder's env-boundary step)."""
    if not any_done:
        return next_obs
    real = next_obs.copy()
    idx = np.flatnonzero(info["_final_obs"])
    real[idx] = prep(stack_obs([info["final_obs"][i] for i in idx]))
    return real


def train_dqn(cfg: Config, run_dir: Path, *, resume: bool = False) -> TrainResult:
    """Train DQN as ``cfg`` says, writing everything into ``run_dir``."""
    t = cfg.train
    d = cfg.dqn
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    seed_everything(t.seed)
    device = pick_device(t.device)
    envs = make_vec_env(cfg.env)
    E = envs.num_envs
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    q_net = build_q_network(cfg, obs_space, act_space).to(device)
    # Frozen weights (a pretrained backbone) are shared with the target, not copied.
    target_net = make_target(q_net, share_encoder=cfg.encoder.target_share == "share")
    groups = param_groups(q_net, d.lr, cfg.encoder.backbone_lr, cfg.encoder.warmup)
    # Plain DQN keeps the batched fast path; PER / n-step / C51 / QR / noisy use Rainbow's.
    family = uses_family(d)
    mode = compile_setting(t.compile, t.cuda_graphs, device)
    learner = (RainbowLearner if family else DQNLearner)(q_net, target_net, d, groups, compile=mode)
    prep = env_boundary(q_net.encoder)  # e.g. frozen LM: tokens -> cached embeddings
    explorer = build_explorer(cfg.exploration, int(act_space.n), t.total_steps)
    policy = QPolicy(q_net, explorer, device, compile=mode)
    reset_acting_noise = NoiseResetter(noisy_layers(q_net))
    masks = MaskSource(cfg.env.action_mask, E, int(act_space.n))  # action masks (off: None)
    storage = ReplayBuffer(
        min(d.buffer_size, max(t.total_steps, d.batch_size)),
        *stored_spec(q_net.encoder, obs_space),
        device=device,
        seed=t.seed + 1,
        num_actions=int(act_space.n) if masks.on else None,  # action masks: next-state masks
    )
    buffer = Replay(storage, d, num_envs=E, total_steps=t.total_steps, seed=t.seed + 3)
    rng = np.random.default_rng(t.seed + 2)
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET, masked=masks.on)

    step = vec_steps = updates = 0
    best = -math.inf
    ep_ret = np.zeros(E)
    ep_len = np.zeros(E, dtype=np.int64)
    elapsed = 0.0
    recent: dict[str, list[float]] = {}
    episodes = 0
    raw_obs, reset_info = envs.reset(seed=t.seed)
    obs, mask = prep(raw_obs), masks.reset(reset_info)  # action masks: the acting mask
    if resume:
        tensors, meta = load_checkpoint(run_dir / "checkpoints", "last", device)
        load_module("q", q_net, tensors)
        load_module("target", target_net, tensors, shared_with=q_net)
        load_optimizer(learner.optimizer, tensors, meta["optim_groups"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        set_rng_state(rng, meta["rng_numpy"])
        step, vec_steps, updates = meta["step"], meta["vec_steps"], meta["updates"]
        best = -math.inf if meta["best_eval_return"] is None else meta["best_eval_return"]
        elapsed, recent = meta["elapsed_s"], meta["recent"]
        episodes = meta["episodes"]
        if "buffer.obs" in tensors:
            buffer.load_state({k: v.cpu() for k, v in tensors.items()}, meta["buffer"])
        else:
            warnings.warn("checkpoint has no replay buffer: resume refills it", stacklevel=2)
        if meta.get("env_state") is not None:
            set_vec_env_state(envs, meta["env_state"])
            obs = tensors["loop.obs"].cpu().numpy()
            mask = tensors["loop.mask"].numpy() if masks.on else None  # action masks
            ep_ret = tensors["loop.ep_ret"].cpu().numpy().astype(np.float64)
            ep_len = tensors["loop.ep_len"].cpu().numpy()
        else:
            warnings.warn(
                f"{cfg.env.id} state cannot be saved as data: resume starts fresh episodes",
                stacklevel=2,
            )
            raw_obs, reset_info = envs.reset(seed=t.seed + step)
            obs, mask = prep(raw_obs), masks.reset(reset_info)  # action masks

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
        tensors = {
            **module_tensors("q", q_net),
            **module_tensors("target", target_net, shared_with=q_net),
        }
        opt_t, groups = optimizer_tensors(learner.optimizer)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        env_state = get_vec_env_state(envs)
        tensors["loop.obs"] = torch.from_numpy(np.ascontiguousarray(obs))
        tensors["loop.ep_ret"] = torch.from_numpy(ep_ret.copy())
        tensors["loop.ep_len"] = torch.from_numpy(ep_len.copy())
        if mask is not None:  # action masks: the mask of loop.obs
            tensors["loop.mask"] = torch.from_numpy(mask.copy())
        meta = {
            "kind": "dqn",
            "step": step,
            "vec_steps": vec_steps,
            "updates": updates,
            "best_eval_return": best if math.isfinite(best) else None,
            "elapsed_s": logger.elapsed(),
            "optim_groups": groups,
            "rng_numpy": rng_state(rng),
            "env_state": env_state,
            "recent": {
                "returns": list(logger.recent_returns),
                "lengths": list(logger.recent_lengths),
                "success": list(logger.recent_success),
            },
            "episodes": logger.episodes,
            "config": cfg.to_dict(),
        }
        if t.save_buffer and name == "last":
            tensors.update(buffer.state_tensors())
            meta["buffer"] = buffer.state_meta()
        save_checkpoint(run_dir / "checkpoints", name, tensors, meta)

    def run_eval() -> dict[str, float]:
        q_net.eval()
        result = evaluator(lambda o, m=None: policy.greedy(prep(o), m))  # m: action mask
        q_net.train()
        return result

    last_stats: dict[str, torch.Tensor] = {}
    solved_at: int | None = None
    final_eval: dict[str, float] | None = None
    evaluation: dict[str, float] | None = None
    next_log = (step // t.log_freq + 1) * t.log_freq
    next_eval = (step // t.eval_freq + 1) * t.eval_freq if t.eval_freq else math.inf
    next_ckpt = (
        (step // t.checkpoint_freq + 1) * t.checkpoint_freq if t.checkpoint_freq else math.inf
    )
    tui = d.target_update_interval
    progress_every = max(256 // E, 1)
    try:
        while step < t.total_steps:
            reset_acting_noise()  # fresh exploration noise for every acting step (no-op without)
            actions = policy.act(obs, step, rng, mask)  # action masks: acting mask (or None)
            raw_next, reward, term, trunc, info = envs.step(actions)
            next_obs = prep(raw_next)
            done = term | trunc
            any_done = bool(done[0]) if E == 1 else bool(done.any())  # indexing: ~10x cheaper
            real_next = _real_next_obs(next_obs, any_done, info, prep)
            mask, next_mask = masks.step(info, done)  # action masks: acting / stored next-state
            buffer.add(obs, actions, reward, real_next, term, trunc, next_mask)
            ep_ret += reward
            ep_len += 1
            prev_step = step
            step += E
            vec_steps += 1
            if any_done:
                succ = episode_successes(info, done, ep_ret, cfg.env.success_return)
                for i in np.flatnonzero(done):
                    logger.episode(step, float(ep_ret[i]), int(ep_len[i]), float(succ[i]))
                ep_ret[done] = 0.0
                ep_len[done] = 0
            obs = next_obs

            if step > d.learning_starts and vec_steps % d.train_freq == 0:
                apply_warmup(learner.optimizer, updates)
                if buffer.per is None:
                    batch, _, _ = buffer.sample(d.batch_size * d.gradient_steps, step)
                    last_stats = learner.update(batch, d.gradient_steps)
                else:  # priorities change after every step: sample each minibatch anew
                    for _ in range(d.gradient_steps):
                        batch, idx, weights = buffer.sample(d.batch_size, step)
                        last_stats = learner.update(batch, 1, weights)  # type: ignore[call-arg]
                        buffer.update_priorities(idx, last_stats["priorities"])
                updates += d.gradient_steps
            if step // tui != prev_step // tui:
                learner.sync_target()

            evaluation = None
            if step >= next_eval:
                evaluation = run_eval()
                next_eval += t.eval_freq
                if evaluation["mean_return"] > best:
                    best = evaluation["mean_return"]
                    checkpoint("best")
                if t.stop_return is not None and evaluation["mean_return"] >= t.stop_return:
                    solved_at = step
            if step >= next_log or evaluation is not None:
                scalars = {
                    "explore": explorer.value(step),
                    "loss": float(last_stats["loss"]) if last_stats else math.nan,
                    "q_mean": float(last_stats["q_mean"]) if last_stats else math.nan,
                }
                logger.log(step, scalars, evaluation)
                while next_log <= step:
                    next_log += t.log_freq
            elif vec_steps % progress_every == 0:
                logger.progress(step)
            if solved_at is not None:
                final_eval = evaluation
                break
            if step >= next_ckpt:
                checkpoint("last")
                next_ckpt += t.checkpoint_freq
        loop_time = logger.elapsed()
        if evaluation is not None:
            final_eval = evaluation  # the last step was an evaluation step
        if final_eval is None:
            final_eval = run_eval()
            logger.log(step, {"explore": explorer.value(step)}, final_eval)
            if final_eval["mean_return"] > best:
                best = final_eval["mean_return"]
                checkpoint("best")
        checkpoint("last")
    finally:
        logger.close()
        envs.close()
        evaluator.close()
    write_eval_json(run_dir, {**final_eval, "step": step, "checkpoint": "last"})
    plot_learning_curve(run_dir, title=f"{cfg.name}: DQN on {cfg.env.id}")
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
