"""PPO with a language model as the policy (``algo: lmppo``): collect -> GAE -> epochs.

The loop of :mod:`drlzero.train.onpolicy` with the LM actor-critic of
:mod:`drlzero.algos.lm_policy` in place of the MLP/CNN one: observations are token ids (the
env's words, e.g. ``drlzero/BabyAIText-v0`` with ``env.kwargs.tokenizer`` = ``lm.model_path``),
actions are the names in ``lm.actions``, and the learner accumulates gradients over
micro-batches. :class:`~drlzero.train.run.Run` evaluates, logs and checkpoints.

A checkpoint holds only what trains (LoRA adapters and heads; every LM weight under
``lm.mode=full``), the optimizer, torch's RNG, the env states and the current observations,
plus the SHA-256 of the base model's weight files: loading it on a different base model is a
one-line error. Resume is exact (checkpoints are taken between rollouts).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drlzero.algos.lm_policy import LMActorCritic, LMPPOLearner, build_lm_actor_critic, count_params
from drlzero.config import Config
from drlzero.envs import stack_obs
from drlzero.errors import CheckpointError, ConfigError, UserError
from drlzero.masks import MaskSource
from drlzero.rollout import RolloutBuffer
from drlzero.train.evaluate import Evaluator
from drlzero.train.onpolicy import restore_rollout_loop, rollout_loop_state
from drlzero.train.run import EVAL_SEED_OFFSET, EvalCallback, Run, TrainResult, open_envs

PREFIX = "lm"


def _check_spaces(cfg: Config, obs_space: Any, act_space: Any) -> int:
    import gymnasium as gym

    if not isinstance(act_space, gym.spaces.Discrete):
        raise ConfigError(f"algo=lmppo scores named Discrete actions; {cfg.env.id} has {act_space}")
    if not (isinstance(obs_space, gym.spaces.Box) and obs_space.dtype == np.int32):
        raise ConfigError(
            f"algo=lmppo reads token-id observations (int32 arrays); {cfg.env.id} gives "
            f"{obs_space}: use a text env such as drlzero/BabyAIText-v0"
        )
    return int(act_space.n)


def trained_tensors(net: LMActorCritic) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of the net: ``lm.<name>`` for every trained tensor."""
    return {f"{PREFIX}.{k}": v.detach() for k, v in net.trainable_state().items()}


def load_trained(
    net: LMActorCritic, tensors: dict[str, torch.Tensor], meta: dict, sha: str
) -> None:
    """Load :func:`trained_tensors` back, after checking the base model is the same."""
    if meta.get("base_sha256") not in (None, sha):
        raise CheckpointError(
            f"the checkpoint was trained on a different base model (sha256 "
            f"{str(meta['base_sha256'])[:12]}..., this one {sha[:12]}...); set lm.model_path "
            "to the model it was trained with"
        )
    sub = {k[len(PREFIX) + 1 :]: v for k, v in tensors.items() if k.startswith(PREFIX + ".")}
    want = set(net.trainable_state())
    if set(sub) != want:
        bad = sorted(want ^ set(sub))[0]
        raise CheckpointError(
            f"checkpoint tensors do not fit this LM policy (key {bad}); was lm.mode or "
            "lm.lora_* changed? put back the run's own config.yaml"
        )
    result = net.load_state_dict(sub, strict=False)
    if result.unexpected_keys:
        raise CheckpointError(f"unexpected checkpoint key {result.unexpected_keys[0]}")


class LMPolicyActor:
    """The acting side: token ids (+ masks) -> actions, log-probs, values (NumPy)."""

    def __init__(self, net: LMActorCritic, device: torch.device) -> None:
        self.net, self.device = net, device

    def _mask(self, mask: np.ndarray | None) -> torch.Tensor | None:
        return None if mask is None else torch.as_tensor(mask, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
        dist, value = self.net(obs, self._mask(mask))
        a = dist.sample()
        return a.cpu().numpy(), dist.log_prob(a).cpu().numpy(), value.cpu().numpy()

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.net.value(obs).cpu().numpy()

    @torch.no_grad()
    def greedy(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        dist, _ = self.net(obs, self._mask(mask))
        return dist.mode().cpu().numpy()

    @torch.no_grad()
    def probs(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(B, num_actions) action probabilities (0 for masked and unnamed actions)."""
        dist, _ = self.net(obs, self._mask(mask))
        return dist.cats[0].probs.cpu().numpy()


def train_lmppo(
    cfg: Config, run_dir: Path, *, resume: bool = False, on_eval: EvalCallback | None = None
) -> TrainResult:
    """Train the LM policy with PPO as ``cfg`` says, writing everything into ``run_dir``."""
    t, p = cfg.train, cfg.ppo
    device, envs = open_envs(cfg)
    E = envs.num_envs
    A = _check_spaces(cfg, envs.single_observation_space, envs.single_action_space)
    net, sha = build_lm_actor_critic(cfg, A, device)
    trainable, total = count_params(net)
    learner = LMPPOLearner(net, p, micro_batch=cfg.lm.micro_batch, value_lr=cfg.lm.value_lr)
    actor = LMPolicyActor(net, device)
    masks = MaskSource(cfg.env.action_mask, E, A)  # env.action_mask, as for DQN and PPO

    raw, info = envs.reset(seed=t.seed)
    obs, mask = np.asarray(raw), masks.reset(info)
    storage = RolloutBuffer(
        p.n_steps,
        E,
        tuple(envs.single_observation_space.shape),
        np.dtype(np.int32),
        (),
        torch.int64,
        num_actions=A,
        device=device,
    )
    num_updates = math.ceil(t.total_steps / (p.n_steps * E))
    evaluator = Evaluator(cfg.env, t.eval_episodes, t.seed + EVAL_SEED_OFFSET, masked=masks.on)
    updates = 0
    stats: dict[str, float] = {}

    def evaluate() -> dict[str, float]:
        net.eval()
        result = evaluator(actor.greedy)
        net.train()
        return result

    def scalars() -> dict[str, float]:
        return {**stats, "trainable_fraction": trainable / total}

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = rollout_loop_state(learner.optimizer, obs, mask, envs, device)
        tensors.update(trained_tensors(net))
        meta.update(
            updates=updates,
            base_sha256=sha,
            lm_model_path=cfg.lm.model_path,
            trainable_params=trainable,
            total_params=total,
        )
        return tensors, meta

    with Run(
        cfg,
        run_dir,
        on_eval=on_eval,
        kind="lmppo",
        resume=resume,
        evaluate=evaluate,
        state=state,
        title=f"{cfg.name}: LM-policy PPO on {cfg.env.id}",
        device=device,
        closing=[envs, evaluator],
        num_envs=E,
    ) as run:
        if run.loaded is not None:
            updates, restored = _restore(run, net, learner, sha, envs)
            if restored is None:
                raw, info = envs.reset(seed=t.seed + run.step)
                obs, mask = np.asarray(raw), masks.reset(info)
            else:
                obs, mask = restored
        while not run.done:
            storage.reset()
            net.eval()  # acting: no dropout (LoRA dropout, if any, only in the update)
            for _ in range(p.n_steps):
                actions, logp, values = actor.act(obs, mask)
                raw, reward, term, trunc, info = envs.step(actions)
                done = term | trunc
                final_values = np.zeros(E, np.float32)
                boot = np.flatnonzero(trunc & ~term)  # truncated: bootstrap from V(final obs)
                if boot.size:
                    finals = stack_obs([info["final_obs"][i] for i in boot])
                    final_values[boot] = actor.value(np.asarray(finals))
                storage.add(obs, actions, logp, values, reward, term, done, final_values, mask)
                run.track(reward, done, info)
                obs, mask = np.asarray(raw), masks.acting(info)
            storage.finish(actor.value(obs), p.gamma, p.gae_lambda)
            net.train()
            frac = max(1.0 - updates / num_updates, 0.0) if p.anneal_lr else 1.0
            learner.set_lr(frac)
            stats = learner.update(lambda: storage.epoch(p.num_minibatches))
            updates += 1
            stats["lr"] = p.lr * frac
            run.end_iteration(scalars)
        return run.finish(scalars())


def _restore(
    run: Run, net: LMActorCritic, learner: LMPPOLearner, sha: str, envs: Any
) -> tuple[int, tuple[np.ndarray, np.ndarray | None] | None]:
    assert run.loaded is not None
    tensors, meta = run.loaded
    if meta.get("kind") != "lmppo":
        raise UserError(f"{run.run_dir} holds a {meta.get('kind')} checkpoint, not an lmppo one")
    load_trained(net, tensors, meta, sha)
    device = next(net.parameters()).device
    return meta["updates"], restore_rollout_loop(run, learner.optimizer, device, envs)


def load_lm_policy(
    cfg: Config, tensors: dict[str, torch.Tensor] | None, meta: dict[str, Any] | None, device: str
) -> LMPolicyActor:
    """The LM policy of a run (``tensors``/``meta`` of a checkpoint), or the untrained one
    (``tensors=None``: the pretrained prior, LoRA adapters being zero at the start)."""
    from drlzero.envs import make_env
    from drlzero.utils import pick_device

    if cfg.train.threads is not None:  # as in training: one thread beats two busy ones here
        torch.set_num_threads(cfg.train.threads)
    env = make_env(cfg.env)
    A = _check_spaces(cfg, env.observation_space, env.action_space)
    env.close()
    dev = pick_device(device)
    net, sha = build_lm_actor_critic(cfg, A, dev)
    if tensors is not None:
        load_trained(net, tensors, meta or {}, sha)
    net.eval()
    return LMPolicyActor(net, dev)
