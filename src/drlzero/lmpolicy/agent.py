"""What ``algo: lmppo`` plugs into the PPO loop (:mod:`drlzero.train.onpolicy`), and the trained
LM policy of a run for evaluation (:func:`load_lm_policy`).

:class:`LMPPOAgent` is a :class:`~drlzero.train.onpolicy.PPOAgent`: observations are token ids
(the env's words, e.g. ``drlzero/BabyAIText-v0`` with ``env.kwargs.tokenizer`` =
``lm.model_path``) stored as they come, actions are the names in ``lm.actions``, rewards are not
scaled (config refuses ``ppo.normalize_obs`` and ``ppo.normalize_reward`` for ``lmppo``),
acting runs the LM in eval mode (no LoRA dropout; dropout only in the update), and the learner
accumulates gradients over micro-batches (:class:`~drlzero.algos.lm_policy.LMPPOLearner`).

Its part of a checkpoint is only what trains (``lm.<name>``: LoRA adapters and heads; every LM
weight under ``lm.mode=full``) plus the SHA-256 of the base model's weight files: loading it on a
different base model is a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drlzero.algos.lm_policy import LMPolicyActor, LMPPOLearner
from drlzero.algos.ppo import Minibatch
from drlzero.config import Config
from drlzero.errors import CheckpointError, ConfigError
from drlzero.nets.lm import LMActorCritic, build_lm_actor_critic, count_params

PREFIX = "lm"


def check_spaces(cfg: Config, obs_space: gym.Space, act_space: gym.Space) -> int:
    """The env's action count, after checking the LM policy can read and act in it."""
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


class LMPPOAgent:
    """The LM actor-critic of ``cfg.lm`` as the PPO loop's agent (see the module docstring).

    Args:
        cfg: the run's config (``lm`` and ``ppo`` sections).
        envs: the training vector env (its single spaces).
        device: where the LM and the rollout live.
    """

    kind = "lmppo"
    title = "LM-policy PPO"

    def __init__(self, cfg: Config, envs: Any, device: torch.device) -> None:
        obs_space = envs.single_observation_space
        self.num_actions: int | None = check_spaces(cfg, obs_space, envs.single_action_space)
        self.net, self.sha = build_lm_actor_critic(cfg, self.num_actions, device)
        self.trainable, self.total = count_params(self.net)
        self.learner = LMPPOLearner(
            self.net, cfg.ppo, micro_batch=cfg.lm.micro_batch, value_lr=cfg.lm.value_lr
        )
        self.optimizer = self.learner.optimizer
        self.actor = LMPolicyActor(self.net, device)
        self.model_path = cfg.lm.model_path
        self.obs_spec = (tuple(obs_space.shape), np.dtype(np.int32))
        self.action_spec: tuple[tuple[int, ...], torch.dtype] = ((), torch.int64)

    def observe(self, raw: Any, update: bool) -> np.ndarray:
        return np.asarray(raw)  # token ids, as the LM reads them

    def scale_rewards(self, reward_E: np.ndarray, done_E: np.ndarray) -> np.ndarray:
        return reward_E

    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
        return self.actor.act(obs, mask)

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        return actions  # action k is lm.actions[k]

    def value(self, obs: np.ndarray) -> np.ndarray:
        return self.actor.value(obs)

    def greedy(self, raw: Any, mask: np.ndarray | None = None) -> np.ndarray:
        return self.actor.greedy(raw, mask)

    def begin_rollout(self) -> None:
        self.net.eval()  # acting: no dropout (LoRA dropout, if any, only in the update)

    def learn(
        self, sample_epoch: Callable[[], list[Minibatch]], lr_frac: float
    ) -> dict[str, float]:
        self.net.train()
        self.learner.set_lr(lr_frac)  # every group (policy, critic) at its own rate * lr_frac
        return self.learner.update(sample_epoch)

    def scalars(self) -> dict[str, float]:
        return {"trainable_fraction": self.trainable / self.total}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        meta = {
            "base_sha256": self.sha,
            "lm_model_path": self.model_path,
            "trainable_params": self.trainable,
            "total_params": self.total,
        }
        return trained_tensors(self.net), meta

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        load_trained(self.net, tensors, meta, self.sha)


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
    A = check_spaces(cfg, env.observation_space, env.action_space)
    env.close()
    dev = pick_device(device)
    net, sha = build_lm_actor_critic(cfg, A, dev)
    if tensors is not None:
        load_trained(net, tensors, meta or {}, sha)
    net.eval()
    return LMPolicyActor(net, dev)
