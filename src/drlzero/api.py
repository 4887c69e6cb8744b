"""The Python API; each CLI command is one call here."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drlzero.config import TABULAR_ALGOS, Config, EnvConfig, load_config, read_config
from drlzero.errors import CheckpointError, UserError
from drlzero.train.checkpoint import load_checkpoint, load_module
from drlzero.train.evaluate import evaluate_policy
from drlzero.train.run import TrainResult, json_safe, new_run_dir, resume_config, write_eval_json

if TYPE_CHECKING:
    from drlzero.train.distill import DistillResult


def train(
    config: Config | str | Path | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overrides: list[str] | None = None,
    total_steps: int | None = None,
    ray_address: str | None = None,
) -> TrainResult:
    """Train an agent and write its run directory.

    Args:
        config: a :class:`Config`, a preset name or a YAML path (ignored with ``resume``).
        out: the run directory to create (default ``runs/<name>-s<seed>-<time>``).
        resume: a run directory to continue from its last checkpoint, exactly.
        overrides: ``section.key=value`` strings applied on top of the preset.
        total_steps: with ``resume``, a new (larger) step budget.
        ray_address: with ``distributed.mode=apex``, the Ray cluster to join (None: a local Ray).

    Example:
        >>> result = train("cartpole-dqn", overrides=["train.total_steps=2000"])  # doctest: +SKIP
    """
    if resume is not None:
        run_dir = Path(resume)
        cfg = resume_config(run_dir, total_steps)
        _check_distributed(cfg, ray_address)
    else:
        cfg = config if isinstance(config, Config) else load_config(config, overrides=overrides)
        if total_steps is not None:
            cfg.train.total_steps = total_steps
        cfg.validate()
        _check_distributed(cfg, ray_address)
        run_dir = new_run_dir(cfg, out)
    if cfg.distributed.mode == "apex":  # issue 8: Ape-X on Ray
        from drlzero.distributed.apex import train_apex

        return train_apex(cfg, run_dir, resume=resume is not None, ray_address=ray_address)
    if cfg.algo in TABULAR_ALGOS:
        from drlzero.algos.tabular import train_tabular

        return train_tabular(cfg, run_dir, resume=resume is not None)
    if cfg.algo == "sac":
        from drlzero.train.sac_loop import train_sac

        return train_sac(cfg, run_dir, resume=resume is not None)
    from drlzero.train.loop import train_dqn

    return train_dqn(cfg, run_dir, resume=resume is not None)


def _check_distributed(cfg: Config, ray_address: str | None) -> None:
    if ray_address is not None and cfg.distributed.mode == "none":
        raise UserError("--ray-address needs a distributed run (--distributed apex)")
    if cfg.distributed.mode != "none":
        from drlzero.distributed import require_ray

        require_ray()  # fail in one line before the run directory is created


class Agent:
    """A trained agent loaded from a run directory: ``agent.act(obs_batch) -> actions``."""

    def __init__(self, cfg: Config, act_fn: Any, checkpoint: str) -> None:
        self.config = cfg
        self.act = act_fn
        self.checkpoint = checkpoint


def load_agent(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> Agent:
    """Rebuild the greedy policy of a run from ``config.yaml`` and a checkpoint.

    ``checkpoint`` is ``best`` (falls back to ``last`` if a run never evaluated) or ``last``.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(
            f"run directory {run} does not exist; pass a folder that 'drlzero train' wrote"
        )
    cfg = read_config(run / "config.yaml")
    folder = run / "checkpoints"
    if checkpoint == "best" and not (folder / "best.json").is_file():
        checkpoint = "last"
    if checkpoint not in ("best", "last"):
        raise UserError(f"checkpoint {checkpoint!r} must be 'best' or 'last'")
    tensors, _meta = load_checkpoint(folder, checkpoint, "cpu")
    if cfg.algo in TABULAR_ALGOS:
        from drlzero.algos.tabular import TabularPolicy

        if "q_table" not in tensors:
            raise CheckpointError(f"{folder}/{checkpoint} holds no Q table; is config.yaml right?")
        return Agent(cfg, TabularPolicy(tensors["q_table"].numpy()).greedy, checkpoint)
    if cfg.algo == "sac":  # deterministic action: tanh(mean) rescaled to the Box
        from drlzero.train.sac_loop import load_sac_policy

        return Agent(cfg, load_sac_policy(cfg, tensors, device), checkpoint)

    from drlzero.algos.dqn import QPolicy, build_q_network
    from drlzero.encoders import env_boundary
    from drlzero.envs import make_env
    from drlzero.utils import pick_device

    env = make_env(cfg.env)
    dev = pick_device(device)
    q_net = build_q_network(cfg, env.observation_space, env.action_space)
    env.close()
    load_module("q", q_net, tensors)
    q_net.to(dev).eval()
    greedy = QPolicy(q_net, None, dev).greedy
    prep = env_boundary(q_net.encoder)  # tokens -> cached embeddings etc. (issue 4)
    return Agent(cfg, lambda obs: greedy(prep(obs)), checkpoint)


def evaluate(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    seed: int | None = None,
    checkpoint: str = "best",
    write: bool = True,
    paraphrases: str | Path | None = None,
) -> dict[str, Any]:
    """Greedy evaluation of a run's checkpoint; writes ``eval.json`` into the run directory.

    Args:
        paraphrases: a JSON file mapping mission templates to paraphrase templates (see
            :mod:`drlzero.paraphrase`); the same episodes are then evaluated again with the
            missions rewritten (text envs with missions only, e.g. drlzero/BabyAIText-v0).

    Returns:
        ``mean_return``, ``std_return``, ``mean_length``, ``success_rate`` (None when the env
        defines no success) and ``episodes``; with ``paraphrases`` also
        ``paraphrase_success_rate`` and ``paraphrase_mean_return``.
    """
    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    agent = load_agent(run_dir, checkpoint)
    cfg = agent.config
    eval_seed = cfg.train.seed + 20_000 if seed is None else seed
    result = evaluate_policy(agent.act, cfg.env, episodes, eval_seed)
    if paraphrases is not None:
        import dataclasses

        from drlzero.paraphrase import load_paraphrases

        if cfg.env.id != "drlzero/BabyAIText-v0":
            raise UserError(
                f"--paraphrases rewrites BabyAI missions; {cfg.env.id} is not drlzero/BabyAIText-v0"
            )
        mapping = load_paraphrases(paraphrases)
        env_cfg = dataclasses.replace(cfg.env, kwargs={**cfg.env.kwargs, "paraphrases": mapping})
        para = evaluate_policy(agent.act, env_cfg, episodes, eval_seed)
        result["paraphrase_success_rate"] = para["success_rate"]
        result["paraphrase_mean_return"] = para["mean_return"]
    out = json_safe(result)
    if write:
        write_eval_json(Path(run_dir), {**out, "checkpoint": agent.checkpoint})
    return out


def evaluate_baseline(
    env: str | EnvConfig, name: str, *, episodes: int = 10, seed: int | None = None
) -> dict[str, Any]:
    """Evaluate a hand-written baseline controller (``drlzero eval --baseline NAME --env ENV``).

    Args:
        env: an env id, a preset name (its ``env`` section is used, so the baseline sees exactly
            the preset's env), or an :class:`EnvConfig`.
        name: the baseline, e.g. ``fixed_time`` (see :data:`drlzero.envs.baselines.BASELINES`).
        episodes: evaluation episodes.
        seed: evaluation seed; the default 20000 is what ``evaluate`` uses for a seed-0 run, so
            both see the same episodes.

    Returns:
        The same keys as :func:`evaluate`.
    """
    from drlzero.config import preset_names
    from drlzero.envs.baselines import evaluate_baseline as _evaluate_baseline

    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    if isinstance(env, EnvConfig):
        env_cfg = env
    elif env in preset_names():
        env_cfg = load_config(env).env
    else:
        env_cfg = EnvConfig(id=env)
    return json_safe(_evaluate_baseline(env_cfg, name, episodes, 20_000 if seed is None else seed))


def record(
    run_dir: str | Path, *, episodes: int = 1, out: str | Path | None = None, fps: int = 30
) -> Path:
    """Render greedy episodes of a run to a GIF (``RUN_DIR/episodes.gif`` by default)."""
    from PIL import Image

    from drlzero.envs import make_env

    if episodes <= 0:
        raise UserError(f"--episodes {episodes} must be a positive number of episodes")
    agent = load_agent(run_dir)
    env = make_env(agent.config.env, render_mode="rgb_array", training=False)  # whole games
    if env.render_mode != "rgb_array":
        raise UserError(f"{agent.config.env.id} cannot render rgb_array frames; nothing to record")
    frames: list[np.ndarray] = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=agent.config.train.seed + 30_000 + ep)
        frames.append(env.render())  # type: ignore[arg-type]
        done = False
        while not done:
            action = agent.act(np.asarray(obs)[None])[0]
            obs, _r, term, trunc, _ = env.step(action if np.ndim(action) else int(action))
            done = term or trunc
            frames.append(env.render())  # type: ignore[arg-type]
    env.close()
    path = Path(out) if out is not None else Path(run_dir) / "episodes.gif"
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    duration_ms = max(1, round(1000 / fps))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def pretrain(data: str | Path, out: str | Path, **settings: Any) -> dict[str, Any]:
    """Self-supervised pretraining of a state encoder (``drlzero pretrain``, issue 7).

    Args:
        data: a trajectory dataset directory (see :mod:`drlzero.pretrain.dataset`).
        out: the Hugging Face model directory to write.
        settings: fields of :class:`drlzero.pretrain.trainer.PretrainConfig` (``objectives``,
            ``steps``, ``d_model`` ...).

    Example:
        >>> pretrain("data/catchball", "models/cb", steps=2000)  # doctest: +SKIP
    """
    from drlzero.pretrain.trainer import PretrainConfig
    from drlzero.pretrain.trainer import pretrain as _pretrain

    try:
        cfg = PretrainConfig(**settings)
    except TypeError as exc:
        raise UserError(f"pretrain settings: {exc}") from None
    return _pretrain(data, out, cfg)


def summary_of(result: TrainResult) -> dict[str, Any]:
    return json_safe(
        {
            "run_dir": str(result.run_dir),
            "steps": result.steps,
            "final_eval": result.final_eval,
            "best_eval_return": result.best_eval_return
            if math.isfinite(result.best_eval_return)
            else None,
            "solved_at_step": result.solved_at_step,
            "wall_time_s": round(result.wall_time_s, 2),
        }
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
) -> list[Path]:
    """Roll out a policy and write trajectory datasets (``drlzero collect``, issue #7).

    See :func:`drlzero.data.collect.collect` for the arguments and docs/data.md for the format.
    """
    from drlzero.data.collect import collect as _collect

    return _collect(
        list(envs or []),
        policy,
        out=out,
        episodes=episodes,
        steps=steps,
        epsilon=epsilon,
        seed=seed,
        num_envs=num_envs,
    )


def distill(
    teachers: list[str | Path], *, out: str | Path | None = None, **settings: Any
) -> DistillResult:
    """Distil DQN teachers into a smaller (multi-task) student run (``drlzero distill``).

    ``settings`` are the fields of :class:`drlzero.train.distill.DistillConfig` (``hidden``,
    ``loss``, ``tau``, ``total_steps``, ...). Returns a ``DistillResult`` (run_dir, report).
    """
    from drlzero.train.distill import DistillConfig
    from drlzero.train.distill import distill as _distill

    known = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"unknown distill setting(s) {unknown}; known: {', '.join(sorted(known))}")
    return _distill(list(teachers), out, DistillConfig(**settings))
