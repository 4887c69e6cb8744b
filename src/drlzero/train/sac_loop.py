"""The SAC training loop for Box actions: collect -> replay -> learn, with evaluation, logs and
checkpoints (the same run directory as :func:`drlzero.train.loop.train_dqn`).

Counting: ``step`` is env steps summed over the E parallel envs; ``sac.train_freq`` counts
vector steps; ``sac.learning_starts``, logging, evaluation and checkpoints count env steps.
Each training phase makes ``sac.gradient_steps`` critic steps, one freshly sampled minibatch each.

The function has two parts: the SAC step (collect, store, learn) and the run bookkeeping
(counters, cadence of logs / evaluations / checkpoints, best and last, stop-on-solve, resume),
kept in :class:`_Bookkeeping` so it can move to a shared run engine unchanged.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drlzero.algos.sac import SACLearner, SACPolicy, build_actor, build_critic
from drlzero.buffers import ReplayBuffer
from drlzero.config import Config
from drlzero.encoders import env_boundary, stored_spec
from drlzero.envs import episode_successes, make_vec_env
from drlzero.envs.state import get_vec_env_state, set_vec_env_state
from drlzero.envs.text import stack_obs
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
from drlzero.train.loop import EVAL_SEED_OFFSET
from drlzero.train.plots import plot_learning_curve
from drlzero.train.run import TrainResult, rng_state, set_rng_state, write_eval_json
from drlzero.utils import pick_device, seed_everything


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _true_next_obs(
    next_obs: np.ndarray, done_E: np.ndarray, info: dict, prep: Callable[[Any], np.ndarray]
) -> np.ndarray:
    """Under SAME_STEP autoreset an ended env returns the next episode's first observation; the
    stored transition needs the true last one, ``info["final_obs"]``."""
    if not done_E.any():
        return next_obs
    real = next_obs.copy()
    idx = np.flatnonzero(info["_final_obs"])
    real[idx] = prep(stack_obs([info["final_obs"][i] for i in idx]))
    return real


class _Bookkeeping:
    """Counters, cadence and the run-level state a checkpoint carries besides the learner's.

    Holds nothing algorithm-specific: ``save`` gets the learner's tensors and meta from a
    callback, so the same object serves any loop.
    """

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.step = self.vec_steps = self.updates = 0
        self.best = -math.inf
        self.elapsed = 0.0
        self.recent: dict[str, list[float]] = {}
        self.episodes = 0
        self.solved_at: int | None = None

    def restore(self, meta: dict[str, Any]) -> None:
        self.step, self.vec_steps, self.updates = meta["step"], meta["vec_steps"], meta["updates"]
        self.best = -math.inf if meta["best_eval_return"] is None else meta["best_eval_return"]
        self.elapsed, self.recent = meta["elapsed_s"], meta["recent"]
        self.episodes = meta["episodes"]

    def open_logger(self, resume: bool) -> RunLogger:
        t = self.cfg.train
        logger = RunLogger(
            self.run_dir,
            t.total_steps,
            tensorboard=t.tensorboard,
            progress=t.progress,
            resume_step=self.step if resume else None,
            elapsed=self.elapsed,
        )
        for key, dq in (
            ("returns", logger.recent_returns),
            ("lengths", logger.recent_lengths),
            ("success", logger.recent_success),
        ):
            dq.extend(self.recent.get(key, []))
        logger.episodes = self.episodes
        self.logger = logger
        t = self.cfg.train
        s = self.step
        self.next_log = (s // t.log_freq + 1) * t.log_freq
        self.next_eval = (s // t.eval_freq + 1) * t.eval_freq if t.eval_freq else math.inf
        self.next_ckpt = (
            (s // t.checkpoint_freq + 1) * t.checkpoint_freq if t.checkpoint_freq else math.inf
        )
        return logger

    def meta(self, kind: str) -> dict[str, Any]:
        lg = self.logger
        return {
            "kind": kind,
            "step": self.step,
            "vec_steps": self.vec_steps,
            "updates": self.updates,
            "best_eval_return": self.best if math.isfinite(self.best) else None,
            "elapsed_s": lg.elapsed(),
            "recent": {
                "returns": list(lg.recent_returns),
                "lengths": list(lg.recent_lengths),
                "success": list(lg.recent_success),
            },
            "episodes": lg.episodes,
            "config": self.cfg.to_dict(),
        }

    def after_step(
        self,
        evaluate: Callable[[], dict[str, float]],
        checkpoint: Callable[[str], None],
        scalars: Callable[[], dict[str, float]],
    ) -> dict[str, float] | None:
        """Evaluate / log / checkpoint as their cadences say; returns this step's evaluation."""
        t = self.cfg.train
        evaluation = None
        if self.step >= self.next_eval:
            evaluation = evaluate()
            self.next_eval += t.eval_freq
            if evaluation["mean_return"] > self.best:
                self.best = evaluation["mean_return"]
                checkpoint("best")
            if t.stop_return is not None and evaluation["mean_return"] >= t.stop_return:
                self.solved_at = self.step
        if self.step >= self.next_log or evaluation is not None:
            self.logger.log(self.step, scalars(), evaluation)
            while self.next_log <= self.step:
                self.next_log += t.log_freq
        elif self.vec_steps % 64 == 0:
            self.logger.progress(self.step)
        if self.solved_at is None and self.step >= self.next_ckpt:
            checkpoint("last")
            self.next_ckpt += t.checkpoint_freq
        return evaluation

    def finish(
        self,
        evaluation: dict[str, float] | None,
        evaluate: Callable[[], dict[str, float]],
        checkpoint: Callable[[str], None],
        scalars: dict[str, float],
    ) -> dict[str, float]:
        """The final evaluation (reusing one made at the last step) and the 'last' checkpoint."""
        final = evaluation
        if final is None:
            final = evaluate()
            self.logger.log(self.step, scalars, final)
            if final["mean_return"] > self.best:
                self.best = final["mean_return"]
                checkpoint("best")
        checkpoint("last")
        return final


def train_sac(cfg: Config, run_dir: Path, *, resume: bool = False) -> TrainResult:
    """Train SAC as ``cfg`` says, writing everything into ``run_dir``."""
    t, s = cfg.train, cfg.sac
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    seed_everything(t.seed)
    device = pick_device(t.device)
    envs = make_vec_env(cfg.env)
    E = envs.num_envs
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    actor = build_actor(cfg, obs_space, act_space).to(device)
    critic = build_critic(cfg, obs_space, act_space).to(device)
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    A = int(act_space.shape[0])
    learner = SACLearner(actor, critic, critic_target, s, A)
    policy = SACPolicy(actor, act_space, device)
    prep = env_boundary(actor.encoder)
    obs_shape, obs_dtype = stored_spec(actor.encoder, obs_space)
    if obs_dtype == np.float64:  # MuJoCo observations: float32 halves replay memory
        obs_dtype = np.dtype(np.float32)
    # Capacity from the config alone (not the step budget), so a resume with a larger
    # --total-steps keeps the ring's order; np.zeros pages are only committed when written.
    buffer = ReplayBuffer(
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
    book = _Bookkeeping(cfg, run_dir)
    ep_ret = np.zeros(E)
    ep_len = np.zeros(E, dtype=np.int64)
    obs = prep(envs.reset(seed=t.seed)[0])

    nets = {"actor": actor, "critic": critic, "critic_target": critic_target}
    if resume:
        tensors, meta = load_checkpoint(run_dir / "checkpoints", "last", device)
        for name, net in nets.items():
            load_module(name, net, tensors)
        for name, opt in learner.optimizers().items():
            load_optimizer(opt, _unprefixed(name, tensors), meta[f"{name}_groups"])
        learner.load_extra_state(tensors["log_alpha"], meta["learner"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        set_rng_state(rng, meta["rng_numpy"])
        book.restore(meta)
        if "buffer.obs" in tensors:
            buffer.load_state({k: v.cpu() for k, v in tensors.items()}, meta["buffer"])
        else:
            warnings.warn("checkpoint has no replay buffer: resume refills it", stacklevel=2)
        if meta.get("env_state") is not None:
            set_vec_env_state(envs, meta["env_state"])
            obs = tensors["loop.obs"].cpu().numpy()
            ep_ret = tensors["loop.ep_ret"].cpu().numpy().astype(np.float64)
            ep_len = tensors["loop.ep_len"].cpu().numpy()
        else:
            warnings.warn(
                f"{cfg.env.id} state cannot be saved as data: resume starts fresh episodes",
                stacklevel=2,
            )
            obs = prep(envs.reset(seed=t.seed + book.step)[0])
    logger = book.open_logger(resume)

    def checkpoint(name: str) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for key, net in nets.items():
            tensors.update(module_tensors(key, net))
        meta = book.meta("sac")
        for key, opt in learner.optimizers().items():
            opt_t, groups = optimizer_tensors(opt)
            tensors.update(_prefixed(key, opt_t))
            meta[f"{key}_groups"] = groups
        tensors["log_alpha"] = learner.log_alpha.detach().clone()
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["loop.obs"] = torch.from_numpy(np.ascontiguousarray(obs))
        tensors["loop.ep_ret"] = torch.from_numpy(ep_ret.copy())
        tensors["loop.ep_len"] = torch.from_numpy(ep_len.copy())
        meta["learner"] = learner.extra_state()
        meta["rng_numpy"] = rng_state(rng)
        meta["env_state"] = get_vec_env_state(envs)
        if t.save_buffer and name == "last":
            tensors.update(buffer.state_tensors())
            meta["buffer"] = buffer.state_meta()
        save_checkpoint(run_dir / "checkpoints", name, tensors, meta)

    def run_eval() -> dict[str, float]:
        actor.eval()
        result = evaluator(lambda o: policy.deterministic(prep(o)))
        actor.train()
        return result

    last_stats: dict[str, torch.Tensor] = {}

    def scalars() -> dict[str, float]:
        return {
            "explore": float(learner.alpha[0]),  # the entropy coefficient alpha
            "loss": float(last_stats["loss"]) if last_stats else math.nan,
            "q_mean": float(last_stats["q_mean"]) if last_stats else math.nan,
        }

    evaluation: dict[str, float] | None = None
    try:
        while book.step < t.total_steps:
            # ---- SAC: collect, store, learn ---------------------------------------------
            if book.step < s.learning_starts:
                a_EA = rng.uniform(-1.0, 1.0, (E, A)).astype(np.float32)
            else:
                a_EA = policy.explore(obs)
            raw_next, reward, term, trunc, info = envs.step(policy.env_action(a_EA))
            next_obs = prep(raw_next)
            done = term | trunc
            buffer.add(obs, a_EA, reward, _true_next_obs(next_obs, done, info, prep), term)
            ep_ret += reward
            ep_len += 1
            book.step += E
            book.vec_steps += 1
            if done.any():
                succ = episode_successes(info, done, ep_ret, cfg.env.success_return)
                for i in np.flatnonzero(done):
                    logger.episode(book.step, float(ep_ret[i]), int(ep_len[i]), float(succ[i]))
                ep_ret[done] = 0.0
                ep_len[done] = 0
            obs = next_obs
            if book.step > s.learning_starts and book.vec_steps % s.train_freq == 0:
                for _ in range(s.gradient_steps):
                    last_stats = learner.update(buffer.sample(s.batch_size))
                book.updates += s.gradient_steps
            # ---- bookkeeping --------------------------------------------------------------
            evaluation = book.after_step(run_eval, checkpoint, scalars)
            if book.solved_at is not None:
                break
        loop_time = logger.elapsed()
        final_eval = book.finish(evaluation, run_eval, checkpoint, scalars())
    finally:
        logger.close()
        envs.close()
        evaluator.close()
    write_eval_json(run_dir, {**final_eval, "step": book.step, "checkpoint": "last"})
    plot_learning_curve(run_dir, title=f"{cfg.name}: SAC on {cfg.env.id}")
    return TrainResult(
        run_dir=run_dir,
        steps=book.step,
        final_eval=final_eval,
        best_eval_return=book.best,
        solved_at_step=book.solved_at,
        eval_history=logger.eval_history,
        wall_time_s=logger.elapsed(),
        loop_time_s=loop_time,
    )


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
