"""The DQN training loop: collect -> store -> learn; :class:`~drlzero.train.run.Run` does the
evaluation, logs and checkpoints.

Counting: ``step`` is env steps summed over the E parallel envs; ``train_freq`` counts vector
steps; ``target_update_interval``, ``learning_starts``, the exploration schedule, logging,
evaluation and checkpoints count env steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drlzero.accel import accelerate
from drlzero.algos.base import DataParallel, Learner, QLearner
from drlzero.algos.dqn import DQNLearner, compile_setting
from drlzero.algos.rainbow import RainbowLearner
from drlzero.config import Config, DQNConfig
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import real_next_obs
from drlzero.exploration import build_explorer
from drlzero.masks import MaskSource
from drlzero.nets import apply_warmup, build_q_network, make_target, param_groups, uses_family
from drlzero.nets.noisy import NoiseResetter, noisy_layers
from drlzero.replay.memory import Replay
from drlzero.replay.storage import Batch, ReplayStorage
from drlzero.train.checkpoint import load_module, load_optimizer, module_tensors, optimizer_tensors
from drlzero.train.evaluate import Evaluator
from drlzero.train.run import (
    EVAL_SEED_OFFSET,
    EvalCallback,
    Run,
    TrainResult,
    open_envs,
    replay_and_env_state,
    restore_replay_and_envs,
    set_rng_state,
)


def _learn(learner: QLearner, buffer: Replay, d: DQNConfig, step: int) -> dict[str, torch.Tensor]:
    """A training phase of ``d.gradient_steps`` updates on minibatches from ``buffer``.

    Uniform replay: one sample of ``gradient_steps * batch_size`` transitions, cut into the
    phase's minibatches (the target network is fixed within the phase); its mean stats.
    Prioritized: priorities change after every step, so each minibatch is sampled anew (its
    importance weights in ``batch.weights``); the last update's stats.
    """
    if buffer.per is None:
        batch, _, _ = buffer.sample(d.batch_size * d.gradient_steps, step)
        return learner.update_phase(batch, d.gradient_steps)
    stats: dict[str, torch.Tensor] = {}
    for _ in range(d.gradient_steps):
        batch, idx, weights = buffer.sample(d.batch_size, step)
        stats = learner.update(batch._replace(weights=weights))
        buffer.update_priorities(idx, stats["priorities"])
    return stats


def train_dqn(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    on_eval: EvalCallback | None = None,
    dp: DataParallel | None = None,
) -> TrainResult:
    """Train DQN as ``cfg`` says, writing everything into ``run_dir`` (``dp``: this process's
    part of data-parallel learning, see ``drlzero.train.parallel``)."""
    t, d = cfg.train, cfg.dqn
    device, envs = open_envs(cfg)
    E = envs.num_envs
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    q_net = build_q_network(cfg, obs_space, act_space).to(device)
    # Frozen weights (a pretrained backbone) are shared with the target, not copied.
    target_net = make_target(q_net, share_encoder=cfg.encoder.target_share == "share")
    groups = param_groups(q_net, d.lr, cfg.encoder.backbone_lr, cfg.encoder.warmup)
    mode = compile_setting(t.compile, t.cuda_graphs, device)
    # PER / n-step / C51 / QR / noisy learn with Rainbow's learner, plain DQN with its own; the
    # fast path (drlzero.accel) computes the same steps with less overhead per call.
    learner_cls, policy_cls = accelerate(
        RainbowLearner if uses_family(cfg) else DQNLearner, on=t.fast_path
    )
    learner = learner_cls(q_net, target_net, d, groups, compile=mode)
    learner.dp = dp
    prep = env_boundary(q_net.encoder)  # e.g. frozen LM: tokens -> cached embeddings
    explorer = build_explorer(cfg.exploration, int(act_space.n), t.total_steps)
    policy = policy_cls(q_net, explorer, device, compile=mode)
    reset_acting_noise = NoiseResetter(noisy_layers(q_net))
    masks = MaskSource(cfg.env.action_mask, E, int(act_space.n))  # action masks (off: None)
    capacity = min(cfg.replay.buffer_size, max(t.total_steps, d.batch_size))
    spec = stored_spec(q_net.encoder, obs_space)  # what a stored observation is
    # with masks on, each transition also keeps its next state's mask (for the target's max)
    n_mask = int(act_space.n) if masks.on else None
    storage = ReplayStorage(capacity, *spec, device=device, seed=t.seed + 1, num_actions=n_mask)
    buffer = Replay(storage, d, cfg.replay, num_envs=E, total_steps=t.total_steps, seed=t.seed + 3)
    rng = np.random.default_rng(t.seed + 2)
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET, masked=masks.on)
    raw_obs, reset_info = envs.reset(seed=t.seed)
    obs, mask = prep(raw_obs), masks.reset(reset_info)  # mask: the acting mask (or None)
    next_mask: np.ndarray | None = None  # with masks off: None throughout
    vec_steps = updates = 0
    stats: dict[str, torch.Tensor] = {}

    def evaluate() -> dict[str, float]:
        q_net.eval()
        result = evaluator(lambda o, m=None: policy.greedy(prep(o), m))  # m: action mask
        q_net.train()
        return result

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = _learner_state(q_net, target_net, learner)
        loop_tensors, loop_meta = replay_and_env_state(cfg, name, buffer, envs, obs, rng)
        tensors.update(loop_tensors)
        if mask is not None:  # the acting mask of loop.obs
            tensors["loop.mask"] = torch.from_numpy(mask.copy())
        meta.update(loop_meta, vec_steps=vec_steps, updates=updates)
        return tensors, meta

    def scalars() -> dict[str, float]:
        loss, q_mean = (float(stats[k]) if stats else math.nan for k in ("loss", "q_mean"))
        return {"explore": explorer.value(run.step), "loss": loss, "q_mean": q_mean}

    with Run(
        cfg,
        run_dir,
        kind="dqn",
        resume=resume,
        on_eval=on_eval,
        evaluate=evaluate,
        state=state,
        title=f"{cfg.name}: DQN on {cfg.env.id}",
        device=device,
        closing=[envs, evaluator],
        num_envs=E,
    ) as run:
        if run.loaded is not None:
            vec_steps, updates, obs, mask = _restore(
                run, q_net, target_net, learner, buffer, envs, rng, prep, masks
            )
        while not run.done:
            reset_acting_noise()  # fresh exploration noise for every acting step (no-op without)
            actions = policy.act(obs, run.step, rng, mask)
            raw_next, reward, term, trunc, info = envs.step(actions)
            next_obs = prep(raw_next)
            done = term | trunc
            any_done = bool(done[0]) if E == 1 else bool(done.any())  # indexing: ~10x cheaper
            real_next = real_next_obs(next_obs, any_done, info, prep)
            if masks.on:  # the acting mask and each transition's next-state mask
                mask, next_mask = masks.step(info, done)
            buffer.add(obs, actions, reward, real_next, term, trunc, next_mask)
            obs = next_obs
            prev_step = run.step
            run.track(reward, done, info)  # E env steps; episode returns, lengths, successes
            vec_steps += 1

            step = run.step
            if step > d.learning_starts and vec_steps % d.train_freq == 0:
                apply_warmup(learner.optimizer, updates)
                stats = _learn(learner, buffer, d, step)
                updates += d.gradient_steps
            if step // d.target_update_interval != prev_step // d.target_update_interval:
                learner.sync_target()
            run.end_iteration(scalars)
        return run.finish({"explore": explorer.value(run.step)})


def _learner_state(
    q_net: torch.nn.Module, target_net: torch.nn.Module, learner: Learner[Batch]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Networks, optimizer and torch RNG as checkpoint tensors (+ the optimizer's groups)."""
    tensors = {
        **module_tensors("q", q_net),
        **module_tensors("target", target_net, shared_with=q_net),
    }
    opt_tensors, opt_groups = optimizer_tensors(learner.optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    return tensors, {"optim_groups": opt_groups}


def _restore(
    run: Run,
    q_net: torch.nn.Module,
    target_net: torch.nn.Module,
    learner: Learner[Batch],
    buffer: Replay,
    envs: Any,
    rng: np.random.Generator,
    prep: Callable[[Any], np.ndarray],
    masks: MaskSource,
) -> tuple[int, int, np.ndarray, np.ndarray | None]:
    """Load what ``state`` saved into the loop's parts; returns (vec_steps, updates, obs,
    acting mask)."""
    assert run.loaded is not None
    tensors, meta = run.loaded
    load_module("q", q_net, tensors)
    load_module("target", target_net, tensors, shared_with=q_net)
    load_optimizer(learner.optimizer, tensors, meta["optim_groups"])
    torch.set_rng_state(tensors["rng.torch"].cpu())
    set_rng_state(rng, meta["rng_numpy"])
    if not restore_replay_and_envs(run, buffer, envs):
        raw_obs, info = envs.reset(seed=run.cfg.train.seed + meta["step"])
        return meta["vec_steps"], meta["updates"], prep(raw_obs), masks.reset(info)
    mask = tensors["loop.mask"].numpy() if masks.on else None
    return meta["vec_steps"], meta["updates"], tensors["loop.obs"].cpu().numpy(), mask
