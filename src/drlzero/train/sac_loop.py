"""The SAC training loop for Box actions: collect -> store -> learn;
:class:`~drlzero.train.run.Run` does the evaluation, logs and checkpoints (the same run
directory as :func:`drlzero.train.loop.train_dqn`).

Counting: ``step`` is env steps summed over the E parallel envs; ``sac.train_freq`` counts
vector steps; ``sac.learning_starts``, logging, evaluation and checkpoints count env steps.
Each training phase makes ``sac.gradient_steps`` critic steps, one freshly sampled minibatch each.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drlzero.accel import accelerate_sac
from drlzero.algos.sac import SACLearner, SACPolicy
from drlzero.config import Config
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import real_next_obs
from drlzero.nets.sac import build_actor, build_critic
from drlzero.replay.storage import ReplayStorage
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
from drlzero.utils import pick_device


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def train_sac(
    cfg: Config, run_dir: Path, *, resume: bool = False, on_eval: EvalCallback | None = None
) -> TrainResult:
    """Train SAC as ``cfg`` says, writing everything into ``run_dir``."""
    t, s = cfg.train, cfg.sac
    device, envs = open_envs(cfg)
    E = envs.num_envs
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    actor = build_actor(cfg, obs_space, act_space).to(device)
    critic = build_critic(cfg, obs_space, act_space).to(device)
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    A = int(act_space.shape[0])
    learner = accelerate_sac(t.fast_path)(actor, critic, critic_target, s, A)
    policy = SACPolicy(actor, act_space, device)
    prep = env_boundary(actor.encoder)
    obs_shape, obs_dtype = stored_spec(actor.encoder, obs_space)
    if obs_dtype == np.float64:  # MuJoCo observations: float32 halves replay memory
        obs_dtype = np.dtype(np.float32)
    # Capacity from the config alone (not the step budget), so a resume with a larger
    # --total-steps keeps the ring's order; np.zeros pages are only committed when written.
    buffer = ReplayStorage(
        s.buffer_size,
        obs_shape,
        obs_dtype,
        device=device,
        seed=t.seed + 1,
        action_shape=(A,),
        action_dtype=np.float32,
    )
    rng = np.random.default_rng(t.seed + 2)  # uniform actions before learning_starts
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET)
    obs = prep(envs.reset(seed=t.seed)[0])
    nets = {"actor": actor, "critic": critic, "critic_target": critic_target}
    vec_steps = updates = 0
    stats: dict[str, torch.Tensor] = {}

    def evaluate() -> dict[str, float]:
        actor.eval()
        result = evaluator(lambda o: policy.deterministic(prep(o)))
        actor.train()
        return result

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for key, net in nets.items():
            tensors.update(module_tensors(key, net))
        meta: dict[str, Any] = {"vec_steps": vec_steps, "updates": updates}
        for key, opt in learner.optimizers().items():
            opt_tensors, groups = optimizer_tensors(opt)
            tensors.update(_prefixed(key, opt_tensors))
            meta[f"{key}_groups"] = groups
        tensors["log_alpha"] = learner.log_alpha.detach().clone()
        tensors["rng.torch"] = torch.get_rng_state()
        meta["learner"] = learner.extra_state()
        loop_tensors, loop_meta = replay_and_env_state(cfg, name, buffer, envs, obs, rng)
        tensors.update(loop_tensors)
        meta.update(loop_meta)
        return tensors, meta

    def scalars() -> dict[str, float]:
        loss, q_mean = (float(stats[k]) if stats else math.nan for k in ("loss", "q_mean"))
        return {"explore": float(learner.alpha[0]), "loss": loss, "q_mean": q_mean}  # alpha

    with Run(
        cfg,
        run_dir,
        kind="sac",
        resume=resume,
        on_eval=on_eval,
        evaluate=evaluate,
        state=state,
        title=f"{cfg.name}: SAC on {cfg.env.id}",
        device=device,
        closing=[envs, evaluator],
        num_envs=E,
    ) as run:
        if run.loaded is not None:
            vec_steps, updates, restored = _restore(run, nets, learner, buffer, envs, rng)
            obs = prep(envs.reset(seed=t.seed + run.step)[0]) if restored is None else restored
        while not run.done:
            # -- collect: uniform actions until learning_starts, then the squashed Gaussian
            if run.step < s.learning_starts:
                a_EA = rng.uniform(-1.0, 1.0, (E, A)).astype(np.float32)
            else:
                a_EA = policy.explore(obs)
            raw_next, reward, term, trunc, info = envs.step(policy.env_action(a_EA))
            next_obs = prep(raw_next)
            done = term | trunc
            # -- store (the true last observation of an ended episode)
            real_next = real_next_obs(next_obs, bool(done.any()), info, prep)
            buffer.add(obs, a_EA, reward, real_next, term)
            obs = next_obs
            run.track(reward, done, info)  # E env steps; episode returns, lengths, successes
            vec_steps += 1
            # -- learn
            if run.step > s.learning_starts and vec_steps % s.train_freq == 0:
                for _ in range(s.gradient_steps):
                    stats = learner.update(buffer.sample(s.batch_size))
                updates += s.gradient_steps
            run.end_iteration(scalars)
        return run.finish(scalars())


def _restore(
    run: Run,
    nets: dict[str, torch.nn.Module],
    learner: SACLearner,
    buffer: ReplayStorage,
    envs: Any,
    rng: np.random.Generator,
) -> tuple[int, int, np.ndarray | None]:
    """Load what ``state`` saved into the loop's parts; returns (vec_steps, updates, obs), obs
    None when the envs' state was not saved (the caller resets them)."""
    assert run.loaded is not None
    tensors, meta = run.loaded
    for name, net in nets.items():
        load_module(name, net, tensors)
    for name, opt in learner.optimizers().items():
        load_optimizer(opt, _unprefixed(name, tensors), meta[f"{name}_groups"])
    learner.load_extra_state(tensors["log_alpha"], meta["learner"])
    torch.set_rng_state(tensors["rng.torch"].cpu())
    set_rng_state(rng, meta["rng_numpy"])
    if not restore_replay_and_envs(run, buffer, envs):
        return meta["vec_steps"], meta["updates"], None
    return meta["vec_steps"], meta["updates"], tensors["loop.obs"].cpu().numpy()


def load_sac_policy(
    cfg: Config, tensors: dict[str, torch.Tensor], device: str = "cpu"
) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic action function (obs batch -> env actions) of a saved SAC actor."""
    from drlzero.envs import make_env

    env = make_env(cfg.env)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    actor = build_actor(cfg, obs_space, act_space)
    load_module("actor", actor, tensors)
    dev = pick_device(device)
    actor.to(dev).eval()
    policy = SACPolicy(actor, act_space, dev)  # type: ignore[arg-type]
    prep = env_boundary(actor.encoder)
    return lambda obs: policy.deterministic(prep(obs))
