"""Distillation runs: teachers -> a smaller (multi-task) student, written as a run directory.

Data comes first from the teachers acting (epsilon-greedy with ``teacher_epsilon``), then from
the student acting while the teachers label every state it visits (DAgger, Ross et al. 2011):
the student then learns on the states its own mistakes lead to. Every visited observation goes
into a per-task replay memory with the teacher's Q-values (:mod:`drlzero.algos.distill`).

The student's run directory follows the usual contract (``config.yaml``, ``metrics.csv``,
``checkpoints/{best,last}``, ``eval.json``) so ``drlzero eval`` and ``load_agent`` read it; with
several teachers it is task 0's, and ``tasks/<i>-<env>/`` holds one such directory per task.
``distill.json`` has the report: parameter ratio, inference speed ratio and return retention.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drlzero.algos.distill import (
    LOSSES,
    DistillLearner,
    DistillMemory,
    num_params,
    space_dims,
    student_config,
)
from drlzero.checks import make_out_dir
from drlzero.config import TABULAR_ALGOS, Config, save_config
from drlzero.envs import make_vec_env
from drlzero.errors import ConfigError, UserError
from drlzero.masks import MaskSource, uniform_allowed
from drlzero.nets import build_q_network
from drlzero.nets.heads import QNetwork
from drlzero.nets.multitask import MultiTaskStudent
from drlzero.results import Result
from drlzero.train.checkpoint import load_checkpoint, load_module, module_tensors, save_checkpoint
from drlzero.train.evaluate import Evaluator
from drlzero.train.run import EVAL_SEED_OFFSET, Run, json_safe, report_seed, write_eval_json
from drlzero.train.teacher import QRun, load_q_run
from drlzero.utils import seed_everything


@dataclass
class DistillConfig:
    """Settings of a distillation run (saved in ``distill.json``)."""

    hidden: list[int] = field(default_factory=lambda: [32, 32])
    """student MLP hidden sizes (shared trunk of a multi-task student)"""
    features_dim: int | None = None
    """student CNN features (None: the teacher's)"""
    loss: str = "kl"
    """kl | mse | nll"""
    tau: float = 0.01
    """kl: teacher softmax temperature (Rusu et al.: 0.01)"""
    total_steps: int = 20_000
    """env steps per task"""
    teacher_fraction: float = 0.5
    """share of total_steps in which the teacher acts (then the student acts, DAgger)"""
    teacher_epsilon: float = 0.05
    """random-action probability while the teacher acts"""
    student_epsilon: float = 0.0
    """random-action probability while the student acts"""
    buffer_size: int = 50_000
    """replay memory per task (observations with the teacher's q-values)"""
    batch_size: int = 64
    """minibatch per task"""
    lr: float = 1e-3
    """Adam learning rate"""
    max_grad_norm: float | None = 10.0
    """gradient-norm clip"""
    learning_starts: int = 1_000
    """env steps per task before the first update"""
    train_freq: int = 4
    """env steps per task between updates"""
    eval_freq: int = 5_000
    """env steps per task between student evaluations (0: only at the end)"""
    eval_episodes: int = 10
    """episodes per periodic evaluation"""
    final_episodes: int = 20
    """episodes of the final teacher-vs-student evaluation (same seeds for both)"""
    seed: int = 0
    """seed of everything"""
    teacher_checkpoint: str = "best"
    """best | last"""
    timing_calls: int = 200
    """greedy forwards per timing round (inference speed report)"""
    timing_rounds: int = 7
    """alternating timing rounds; the median is reported"""
    progress: bool = True
    """live progress bar"""
    tensorboard: bool = False
    """TensorBoard events"""

    def validate(self) -> DistillConfig:
        """Check every value; a :class:`ConfigError` names the ``drlzero distill`` flag."""
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss {self.loss!r} is not one of: {', '.join(LOSSES)}")
        if not self.hidden or not all(isinstance(h, int) and h > 0 for h in self.hidden):
            raise ConfigError(f"--hidden {self.hidden} must be positive sizes, e.g. 32,32")
        if self.features_dim is not None and self.features_dim <= 0:
            raise ConfigError(f"--features-dim {self.features_dim} must be > 0")
        for key in ("tau", "total_steps", "buffer_size", "batch_size", "lr", "train_freq"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{_flag(key)} {getattr(self, key)} must be > 0")
        for key in ("teacher_fraction", "teacher_epsilon", "student_epsilon"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{_flag(key)} {getattr(self, key)} must be in [0, 1]")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm={self.max_grad_norm} must be > 0 (or None)")
        for key in ("learning_starts", "seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{_flag(key)} {getattr(self, key)} must be >= 0")
        if self.timing_calls <= 0 or self.timing_rounds <= 0:
            raise ConfigError("timing_calls and timing_rounds must be > 0")
        for key in ("eval_episodes", "final_episodes"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{_flag(key)} {getattr(self, key)} must be > 0")
        if self.eval_freq < 0:
            raise ConfigError(f"eval_freq={self.eval_freq} must be >= 0")
        if self.teacher_checkpoint not in ("best", "last"):
            raise ConfigError(f"teacher checkpoint {self.teacher_checkpoint!r}: best or last")
        return self


#: The ``drlzero distill`` flag of each DistillConfig field it sets (others: ``field=``).
_FLAGS = {
    "total_steps": "--steps",
    "final_episodes": "--eval-episodes",
    "tau": "--tau",
    "lr": "--lr",
    "batch_size": "--batch-size",
    "teacher_fraction": "--teacher-fraction",
    "teacher_epsilon": "--teacher-epsilon",
    "student_epsilon": "--student-epsilon",
    "seed": "--seed",
}


def _flag(key: str) -> str:
    return _FLAGS.get(key, f"{key}=")


@dataclass(frozen=True)
class DistillResult(Result):
    """What :func:`distill` returns: the student's run directory and the report of
    ``distill.json`` (:meth:`to_dict`, what ``drlzero distill --json`` prints)."""

    run_dir: Path
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.report)


def _load_teachers(paths: list[str | Path], checkpoint: str) -> list[QRun]:
    teachers = [load_q_run(p, checkpoint) for p in paths]
    for t in teachers:
        if t.config.algo in TABULAR_ALGOS or t.config.algo == "drrn":
            raise UserError(f"{t.run_dir} is a {t.config.algo} run; distill needs DQN teachers")
        if t.prep is not np.asarray:
            raise UserError(
                f"{t.run_dir} preprocesses observations in its encoder "
                f"({t.config.encoder.name}); distill needs plain array observations (mlp, cnn)"
            )
    if len({t.config.env.id for t in teachers}) != len(teachers):
        raise UserError("give one teacher per env: several teachers on one env are not tasks")
    return teachers


def _slug(env_id: str) -> str:
    return env_id.replace("/", "_").replace(":", "_")


@torch.inference_mode()
def time_forward(
    nets: dict[str, nn.Module],
    obs_shape: tuple[int, ...],
    *,
    batch_sizes: tuple[int, ...] = (1, 256),
    calls: int = 200,
    rounds: int = 7,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Median microseconds per greedy forward (q -> argmax) for each net and batch size.

    The nets run side by side in one process, alternating round by round, so drift in the
    machine's speed (other jobs, frequency) hits them alike.

    Returns:
        ``{"b1": {name: us, ...}, "b256": {...}}``.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {}
    for b in batch_sizes:
        obs = torch.randn((b, *obs_shape), generator=gen)
        samples: dict[str, list[float]] = {k: [] for k in nets}
        for net in nets.values():  # warm-up (allocator, lazy init)
            for _ in range(10):
                net(obs).argmax(1)
        for _ in range(rounds):
            for name, net in nets.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    net(obs).argmax(1)
                samples[name].append((time.perf_counter() - t0) / calls * 1e6)
        out[f"b{b}"] = {k: statistics.median(v) for k, v in samples.items()}
    return out


def distill(
    teachers: list[str | Path], out: str | Path | None = None, settings: DistillConfig | None = None
) -> DistillResult:
    """Distil one or several DQN teachers into a smaller student and write its run directory.

    Args:
        teachers: run directories of trained DQN teachers, one per env (task).
        out: the student's run directory (default ``runs/distill-<env>-s<seed>-<time>``).
        settings: a :class:`DistillConfig` (defaults if None).

    Returns:
        The run directory and the report also written to ``distill.json``.

    Example:
        >>> res = distill(["runs/cartpole"], "runs/student")  # doctest: +SKIP
        >>> res.report["tasks"][0]["return_retention"]  # doctest: +SKIP
    """
    s = (settings or DistillConfig()).validate()
    if not teachers:
        raise UserError("distill needs at least one teacher run directory")
    torch.set_num_threads(1)  # small networks: one thread gives ~97% (docs STACK-NOTES)
    tq = _load_teachers(list(teachers), s.teacher_checkpoint)
    seed_everything(s.seed)
    n_tasks = len(tq)
    names = [f"distill-{t.config.name}" for t in tq]
    cfgs: list[Config] = [
        student_config(t.config, s.hidden, s.features_dim, n, s.seed)
        for t, n in zip(tq, names, strict=True)
    ]
    run_dir = _new_dir(out, cfgs[0], s.seed)
    envs = [make_vec_env(c.env, num_envs=1) for c in cfgs]
    dims = [space_dims(e.single_observation_space, e.single_action_space) for e in envs]
    nets: list[QNetwork] = [
        build_q_network(c, e.single_observation_space, e.single_action_space)
        for c, e in zip(cfgs, envs, strict=True)
    ]
    student = MultiTaskStudent(nets)
    learner = DistillLearner(
        student, loss=s.loss, tau=s.tau, lr=s.lr, max_grad_norm=s.max_grad_norm
    )
    memories = [
        DistillMemory(
            s.buffer_size,
            shape,
            np.dtype(e.single_observation_space.dtype),
            a,
            seed=s.seed + 10 + i,
        )
        for i, ((shape, a), e) in enumerate(zip(dims, envs, strict=True))
    ]
    task_dirs = (
        [run_dir]
        if n_tasks == 1
        else [run_dir / "tasks" / f"{i}-{_slug(c.env.id)}" for i, c in enumerate(cfgs)]
    )
    for d, c in zip(task_dirs, cfgs, strict=True):
        d.mkdir(parents=True, exist_ok=True)
        save_config(c, d / "config.yaml")
    if n_tasks > 1:
        save_config(cfgs[0], run_dir / "config.yaml")
    # action masks of each task's env config (a teacher trained with masks): acting, labels'
    # argmax and evaluation among the allowed actions only
    sources = [MaskSource(c.env.action_mask, 1, a) for c, (_, a) in zip(cfgs, dims, strict=True)]
    evaluators = [
        Evaluator(c.env, s.eval_episodes, s.seed + EVAL_SEED_OFFSET, masked=m.on)
        for c, m in zip(cfgs, sources, strict=True)
    ]
    rng = np.random.default_rng(s.seed + 2)
    teacher_steps = int(s.teacher_fraction * s.total_steps)

    score = math.nan  # of the latest evaluation: mean return retention over the tasks
    history: list[dict[str, Any]] = []
    stats: dict[str, torch.Tensor] = {}

    def state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Task 0's student for the run directory; the other tasks' go to ``tasks/`` here."""
        extra = {"retention_periodic": score} if name == "best" else {}
        if n_tasks > 1:
            for i, (d, net) in enumerate(zip(task_dirs, nets, strict=True)):
                doc = {"kind": "distill", "task": i, "step": run.step, **extra}
                doc["config"] = cfgs[i].to_dict()
                save_checkpoint(d / "checkpoints", name, module_tensors("q", net), doc)
        return module_tensors("q", nets[0]), {"task": 0, **extra}

    def evaluate() -> dict[str, float]:
        """Every task's student; task 0's figures for the metrics row, ``retention`` for best."""
        nonlocal score
        student.eval()
        per_task = [
            ev(functools.partial(_greedy, net)) for ev, net in zip(evaluators, nets, strict=True)
        ]
        student.train()
        ratios = [
            _retention(r["mean_return"], t["mean_return"])
            for r, t in zip(per_task, teacher_periodic, strict=True)
        ]
        score = float(np.mean(ratios))
        history.append({"step": run.step, "retention": score, "tasks": per_task})
        return {**per_task[0], "retention": score}

    def scalars() -> dict[str, float]:
        loss, agreement = (float(stats[k]) if stats else math.nan for k in ("loss", "agreement"))
        return {"loss": loss, "agreement": agreement, "explore": eps}

    # the teachers on the periodic evaluation episodes: the scale for choosing 'best'
    teacher_periodic = [ev(_teacher_greedy(t)) for ev, t in zip(evaluators, tq, strict=True)]
    resets = [e.reset(seed=s.seed + 100 * i) for i, e in enumerate(envs)]
    obs = [o for o, _ in resets]
    masks = [m.reset(info) for m, (_, info) in zip(sources, resets, strict=True)]
    ep_ret = np.zeros(n_tasks)
    ep_len = np.zeros(n_tasks, dtype=np.int64)
    eps = s.teacher_epsilon
    with Run(
        _run_config(cfgs[0], s),
        run_dir,
        kind="distill",
        resume=False,
        evaluate=evaluate,
        state=state,
        title=f"distill: {', '.join(c.env.id for c in cfgs)}",
        closing=[*envs, *evaluators],
        score=lambda evaluation: evaluation["retention"],
    ) as run:
        while not run.done:
            teacher_acts = run.step < teacher_steps
            eps = s.teacher_epsilon if teacher_acts else s.student_epsilon
            run.count(1)  # one env step of every task (episodes below end at this step)
            for i in range(n_tasks):
                q_t_BA = tq[i].q_values(obs[i])  # the label, whoever acts
                memories[i].add(obs[i], q_t_BA)
                mask = masks[i]
                greedy = (
                    _masked_argmax(q_t_BA, mask) if teacher_acts else _greedy(nets[i], obs[i], mask)
                )
                n_act = dims[i][1]
                random = rng.random(len(greedy)) < eps
                randoms = (
                    rng.integers(0, n_act, len(greedy))
                    if mask is None
                    else uniform_allowed(rng, mask)
                )
                actions = np.where(random, randoms, greedy)
                nxt, reward, term, trunc, info = envs[i].step(actions)
                masks[i] = sources[i].acting(info)  # the mask of nxt
                ep_ret[i] += reward[0]
                ep_len[i] += 1
                if term[0] or trunc[0]:
                    if i == 0:
                        run.episode(float(ep_ret[i]), int(ep_len[i]), math.nan)
                    ep_ret[i], ep_len[i] = 0.0, 0
                obs[i] = nxt  # SAME_STEP autoreset: already the next episode's start
            if run.step > s.learning_starts and run.step % s.train_freq == 0:
                stats = learner.update([m.sample(s.batch_size) for m in memories])
            run.end_iteration(scalars)
        run.finish(scalars())  # the last evaluation (every task), 'last', the plot

    # The report, on the 'best' checkpoint (what 'drlzero eval' loads by default).
    for d, net in zip(task_dirs, nets, strict=True):
        load_module("q", net, load_checkpoint(d / "checkpoints", "best")[0])
    student.eval()
    report = _report(tq, nets, student, cfgs, dims, s, history)
    report["wall_time_s"] = round(run.logger.elapsed(), 2)
    report["run_dir"] = str(run_dir)
    (run_dir / "distill.json").write_text(json.dumps(json_safe(report), indent=1) + "\n")
    for i, d in enumerate(task_dirs):
        write_eval_json(d, _task_eval(report, i))
    if n_tasks > 1:
        write_eval_json(run_dir, _task_eval(report, 0))
    return DistillResult(run_dir, json_safe(report))


def _run_config(cfg: Config, s: DistillConfig) -> Config:
    """Task 0's student config with the run schedule of ``s`` (what :class:`Run` reads)."""
    train = dataclasses.replace(
        cfg.train,
        total_steps=s.total_steps,
        eval_freq=s.eval_freq,
        eval_episodes=s.eval_episodes,
        log_freq=1000,
        checkpoint_freq=0,
        stop_return=None,
        progress=s.progress,
        tensorboard=s.tensorboard,
    )
    return dataclasses.replace(cfg, train=train)


def _masked_argmax(q_BA: np.ndarray, mask_BA: np.ndarray | None) -> np.ndarray:
    """Greedy actions, among the allowed ones when a mask is given."""
    return (q_BA if mask_BA is None else np.where(mask_BA, q_BA, -np.inf)).argmax(1)


def _greedy(net: nn.Module, obs: np.ndarray, mask_BA: np.ndarray | None = None) -> np.ndarray:
    with torch.inference_mode():
        return _masked_argmax(net(torch.from_numpy(np.asarray(obs))).numpy(), mask_BA)


def _teacher_greedy(t: QRun) -> Any:
    """The teacher's greedy action function, masked when the evaluator hands it a mask."""
    return lambda obs, mask_BA=None: _masked_argmax(t.q_values(obs), mask_BA)


def _retention(student: float, teacher: float) -> float:
    """Student return / teacher return for positive teacher returns; for negative ones (costs,
    e.g. Acrobot) teacher / student, so 0.9 means the student pays 1/0.9 times the cost."""
    if teacher > 0:
        return student / teacher
    if teacher < 0 and student < 0:
        return teacher / student
    return math.nan if teacher == 0 else 1.0 + (student - teacher) / abs(teacher)


def _new_dir(out: str | Path | None, cfg: Config, seed: int) -> Path:
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"distill-{_slug(cfg.env.id)}-s{seed}-{stamp}"
    run_dir = Path(out)
    if (run_dir / "checkpoints").exists():
        unfinished = ""
        if not (run_dir / "distill.json").is_file() and '"kind": "distill"' in _text(
            run_dir / "checkpoints" / "best.json"
        ):
            unfinished = " (an unfinished distill: it has no resume)"
        raise UserError(
            f"{run_dir} already holds a run{unfinished}; choose another --out or delete it"
        )
    return make_out_dir(run_dir)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _report(
    tq: list[QRun],
    nets: list[QNetwork],
    student: MultiTaskStudent,
    cfgs: list[Config],
    dims: list[tuple[tuple[int, ...], int]],
    s: DistillConfig,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    eval_seed = report_seed(s.seed)  # the episodes 'drlzero eval' uses
    tasks: list[dict[str, Any]] = []
    for t, net, c, (shape, _a) in zip(tq, nets, cfgs, dims, strict=True):
        ev = Evaluator(c.env, s.final_episodes, eval_seed, masked=c.env.action_mask != "none")
        try:
            teacher_eval = ev(_teacher_greedy(t))
            student_eval = ev(functools.partial(_greedy, net))
        finally:
            ev.close()
        assert t.q_net is not None
        speed = time_forward(
            {"teacher": t.q_net, "student": net},
            shape,
            calls=s.timing_calls,
            rounds=s.timing_rounds,
            seed=s.seed,
        )
        t_params, s_params = t.num_params, num_params(net)
        tasks.append(
            {
                "env": c.env.id,
                "teacher_run": str(t.run_dir),
                "teacher_checkpoint": t.checkpoint,
                "teacher_params": t_params,
                "student_params": s_params,
                "param_ratio": t_params / s_params,
                "teacher_eval": teacher_eval,
                "student_eval": student_eval,
                "return_retention": _retention(
                    student_eval["mean_return"], teacher_eval["mean_return"]
                ),
                "forward_us": speed,
                "speedup_b1": speed["b1"]["teacher"] / speed["b1"]["student"],
                "speedup_b256": speed["b256"]["teacher"] / speed["b256"]["student"],
            }
        )
    teacher_total = sum(t.num_params for t in tq)
    student_total = num_params(student)
    return {
        "method": "policy distillation (Rusu et al. 2016), DAgger-style student data",
        "settings": dataclasses.asdict(s),
        "eval_seed": eval_seed,
        "eval_episodes": s.final_episodes,
        "student_params": student_total,
        "teacher_params": teacher_total,
        "param_ratio": teacher_total / student_total,
        "return_retention": float(np.mean([t["return_retention"] for t in tasks])),
        "tasks": tasks,
        "history": history,
    }


def _task_eval(report: dict[str, Any], i: int) -> dict[str, Any]:
    t = report["tasks"][i]
    return {
        **t["student_eval"],
        "checkpoint": "best",
        "seed": report["eval_seed"],
        "teacher_mean_return": t["teacher_eval"]["mean_return"],
        "return_retention": t["return_retention"],
        "param_ratio": t["param_ratio"],
        "speedup_b1": t["speedup_b1"],
        "speedup_b256": t["speedup_b256"],
    }
