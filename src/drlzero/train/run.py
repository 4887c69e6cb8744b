"""The run directory and :class:`Run`, the bookkeeping every training loop shares.

Contract (other tools read it):
  config.yaml, metrics.csv, episodes.csv, TensorBoard events (events.out.tfevents.*),
  checkpoints/{last,best}.{safetensors,json}, eval.json, learning_curve.png.

A loop owns what is its own (networks, optimizer, buffers, envs, RNGs) and tells a :class:`Run`
how many env steps it took, which episodes ended and where an iteration ends; the run does the
rest: the log / eval / checkpoint schedule, best and last checkpoints, stop-on-solve, resume of
its own counters, the final evaluation, ``eval.json``, the plot and the :class:`TrainResult`.

Example (the shape of every loop):
    >>> run = Run(cfg, run_dir, kind="ppo", resume=False, evaluate=evaluate,
    ...           state=state, title="ppo on CartPole-v1", closing=[envs])  # doctest: +SKIP
    >>> if run.loaded is not None:  # doctest: +SKIP
    ...     restore(*run.loaded)  # the loop's own tensors and meta
    >>> while not run.done:  # doctest: +SKIP
    ...     ...  # collect; after each vector step: run.track(reward_E, done_E, info)
    ...     ...  # learn
    ...     run.end_iteration(lambda: {"loss": loss})  # eval / log / checkpoint when due
    >>> result = run.finish({})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from drlzero.checks import check_checkpoint_config, make_out_dir, read_run_config
from drlzero.config import Config, TrainConfig, save_config
from drlzero.envs import episode_successes, make_vec_env
from drlzero.envs.state import get_vec_env_state, set_vec_env_state
from drlzero.errors import CheckpointError, UserError
from drlzero.results import Result
from drlzero.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from drlzero.train.logger import RunLogger
from drlzero.train.plots import plot_learning_curve
from drlzero.train.tracking import make_trackers
from drlzero.utils import pick_device, seed_everything

#: Evaluates the current policy (greedy or deterministic episodes) -> ``mean_return`` etc.
EvalFn = Callable[[], dict[str, float]]
#: The loop's part of a checkpoint named ``best`` or ``last``: (tensors, JSON-able meta).
StateFn = Callable[[str], tuple[dict[str, torch.Tensor], dict[str, Any]]]
#: Scalars of a metrics row; called only when a row is written (so it may sync a GPU).
ScalarsFn = Callable[[], dict[str, float]]
#: Called after each periodic evaluation with (env step, evaluation); it may raise to stop the
#: run (a tuner's pruning). The evaluation that ends the run (budget spent, solved, or the one
#: :meth:`Run.finish` adds) is not passed to it: that one is the run's result.
EvalCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult(Result):
    """What :func:`drlzero.train` returns; :meth:`to_dict` is the line ``drlzero train``
    prints."""

    run_dir: Path
    steps: int
    final_eval: dict[str, float]
    best_eval_return: float
    solved_at_step: int | None = None
    eval_history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0  # the whole run: training loop, final eval, checkpoint, plot
    loop_time_s: float | None = None  # the training loop alone (what throughput is taken over)

    def to_dict(self) -> dict[str, Any]:
        """``run_dir``, ``steps``, ``final_eval``, ``best_eval_return`` (None before any
        evaluation), ``solved_at_step`` and ``wall_time_s`` (rounded to 10 ms)."""
        best = self.best_eval_return
        return json_safe(
            {
                "run_dir": str(self.run_dir),
                "steps": self.steps,
                "final_eval": dict(self.final_eval),
                "best_eval_return": best if math.isfinite(best) else None,
                "solved_at_step": self.solved_at_step,
                "wall_time_s": round(self.wall_time_s, 2),
            }
        )


def new_run_dir(cfg: Config, out: str | Path | None) -> Path:
    """Create the run directory (``out``, or ``runs/<name>-s<seed>-<time>``) and save the config.

    Refuses a folder that already holds a run (it would be overwritten) and a path that cannot be
    a folder, before anything is written.
    """
    if out is not None:
        run_dir = Path(out)
        if (run_dir / "checkpoints").exists():
            raise UserError(
                f"{run_dir} already holds a run; use --resume {run_dir} to continue it, "
                "or choose another --out"
            )
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{cfg.name}-s{cfg.train.seed}-{stamp}"
    make_out_dir(run_dir, "--out")
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def _last_meta(run_dir: Path) -> dict[str, Any] | None:
    """The JSON of the ``last`` checkpoint (or of the pair an unfinished save left), or None
    when neither parses (the loader then reports it)."""
    folder = run_dir / "checkpoints"
    for name in ("last.json", "last.prev.json"):
        try:
            meta = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            return meta
    return None


def resume_config(
    run_dir: Path,
    total_steps: int | None = None,
    *,
    check: Callable[[Config], None] | None = None,
) -> Config:
    """The saved config of a run to resume, with an optionally larger step budget.

    Checks, before anything is written, that the run's checkpoint belongs to its config.yaml,
    that the budget leaves steps to train and whatever ``check`` (the caller's own test of the
    config, e.g. a preset that must be the run's) raises; only then is a new budget saved.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(
            f"cannot resume {run_dir}: no such run directory; "
            "pass the run directory that 'drlzero train' created"
        )
    if not has_checkpoint(run_dir / "checkpoints", "last"):
        raise CheckpointError(
            f"cannot resume {run_dir}: no checkpoints/last.json there; "
            "pass the run directory that 'drlzero train' created"
        )
    cfg = read_run_config(run_dir)
    meta = _last_meta(run_dir)
    if meta is not None:
        check_checkpoint_config(cfg, meta, run_dir / "checkpoints" / "last.json")
        done = meta.get("step")
        if isinstance(done, int):
            if total_steps is None and done >= cfg.train.total_steps:
                raise UserError(
                    f"run {run_dir} has done all its {cfg.train.total_steps} steps; "
                    f"pass --total-steps N (more than {done}) to train it further"
                )
            if total_steps is not None and total_steps <= done:
                raise UserError(
                    f"--total-steps {total_steps} is not more than the {done} steps run "
                    f"{run_dir} has done; pass a larger --total-steps to continue it"
                )
    if check is not None:
        check(cfg)
    if total_steps is not None:
        cfg.train.total_steps = total_steps
        cfg.validate()
        # a temporary file and a rename: a crash never leaves the run a cut-short config.yaml
        tmp = run_dir / ".config.yaml.tmp"
        save_config(cfg, tmp)
        os.replace(tmp, run_dir / "config.yaml")
    return cfg


def json_safe(obj: Any) -> Any:
    """NaN -> None, NumPy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_eval_json(run_dir: Path, result: dict[str, Any]) -> None:
    (run_dir / "eval.json").write_text(json.dumps(json_safe(result), indent=1) + "\n")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


def apply_cpu_settings(t: TrainConfig) -> None:
    """torch's CPU threads and, with ``flush_denormal``, subnormals flushed to zero.

    Where a gradient entry stays exactly zero (a dead ReLU unit's weights), Adam's first moment
    decays by ``beta1`` per step into the subnormal range (below 1.2e-38 in float32) and stays
    there for ~150 steps before it underflows to zero; x86 computes on subnormals in microcode
    (an element-wise multiply over them ran 15x slower here), so a fused Adam step over such a
    state runs several times slower. Flushing changes values only below 1.2e-38;
    :func:`drlzero.train` puts the flag back as it found it when the run ends. The flag lives in
    the calling thread's MXCSR: with ``threads: 1`` (the default) every op runs there; with
    more, torch's worker threads keep their own and go on computing subnormals.
    """
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    if t.flush_denormal:
        torch.set_flush_denormal(True)  # False where the CPU has no FTZ/DAZ: nothing to do


def flushing_subnormals() -> bool:
    """Whether this thread flushes subnormals now (1e-39 is one in float32; DAZ reads it as 0)."""
    return bool(torch.tensor([1e-39]).mul(1.0).item() == 0.0)


@contextlib.contextmanager
def cpu_float_mode_kept() -> Iterator[None]:
    """Put subnormal flushing back as it was once the block ends: a run that turned it on
    (:func:`apply_cpu_settings`) leaves the caller's NumPy and torch maths as they were."""
    before = flushing_subnormals()
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def open_envs(cfg: Config) -> tuple[torch.device, Any]:
    """What every vector-env loop does first: torch's CPU settings, every seed, the device, the
    vector env."""
    t = cfg.train
    apply_cpu_settings(t)
    seed_everything(t.seed)
    return pick_device(t.device), make_vec_env(cfg.env)


class _Closeable(Protocol):
    def close(self) -> None: ...


# The seeds of every evaluation, here and nowhere else: each kind plays its own episodes, none
# of which a training env (seeded ``train.seed + step``) plays.
#: Evaluation envs reset from ``train.seed + EVAL_SEED_OFFSET``: episodes no training env sees.
EVAL_SEED_OFFSET = 10_000
#: ``drlzero eval`` (and the distillation report) reset from ``train.seed + REPORT_SEED_OFFSET``;
#: a baseline evaluated with no seed uses ``REPORT_SEED_OFFSET`` (a seed-0 run's episodes).
REPORT_SEED_OFFSET = 20_000
#: ``record`` (and the report's episodes) play seed ``train.seed + RECORD_SEED_OFFSET + k``.
RECORD_SEED_OFFSET = 30_000


def report_seed(train_seed: int, seed: int | None = None) -> int:
    """The first seed of a ``drlzero eval`` evaluation: ``seed`` when given, else
    ``train_seed + REPORT_SEED_OFFSET``."""
    return train_seed + REPORT_SEED_OFFSET if seed is None else seed


#: Env steps between progress-bar refreshes that write no metrics row.
PROGRESS_EVERY = 256


class Run:
    """The cadence and bookkeeping of one training run (see the module docstring).

    Schedule, in env steps (summed over parallel envs) unless said otherwise; it is checked at
    :meth:`end_iteration`, so a loop that takes many steps per iteration (a PPO rollout) is
    evaluated and checkpointed only between iterations, where its state is whole:

    - an evaluation every ``train.eval_freq`` steps; a better ``score`` (by default the mean
      return) saves ``best``; a mean return >= ``train.stop_return`` ends the run (``done``);
    - a metrics row every ``train.log_freq`` steps and with every evaluation;
    - ``last`` every ``train.checkpoint_freq`` steps, every ``train.checkpoint_every_s``
      seconds of wall clock, and once with the first metrics row of a fresh run (so a run
      killed before its first periodic checkpoint is resumable; the replay buffer is still
      small then, so that checkpoint is cheap); :meth:`finish` writes the final one.

    Args:
        cfg: the run's config (``train`` section; saved whole in every checkpoint).
        run_dir: the run directory.
        kind: the checkpoint's ``kind`` (``dqn``, ``tabular``, ...).
        resume: continue from ``checkpoints/last``; the loop restores its own part from
            :attr:`loaded`.
        evaluate: runs one evaluation of the current policy.
        state: the loop's tensors and meta for a checkpoint of the given name.
        title: the learning-curve title.
        device: where loaded tensors go.
        closing: what :meth:`close` closes besides the logger (envs, evaluators).
        num_envs: for a vector-env loop, its width E: :meth:`track` then keeps each env's
            running episode return and length (saved in ``last``, restored on resume).
        score: what ``best`` maximises, from an evaluation (default its ``mean_return``).
        on_eval: called after each periodic evaluation but the last (see :data:`EvalCallback`),
            once its metrics row is written; None (the default) changes nothing in the run.
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        *,
        kind: str,
        resume: bool,
        evaluate: EvalFn,
        state: StateFn,
        title: str,
        device: torch.device | str = "cpu",
        closing: tuple[_Closeable, ...] | list[_Closeable] = (),
        num_envs: int | None = None,
        score: Callable[[dict[str, float]], float] | None = None,
        on_eval: EvalCallback | None = None,
    ) -> None:
        t = cfg.train
        self._on_eval = on_eval
        self.cfg = cfg
        self.run_dir = run_dir
        self.kind = kind
        self.title = title
        self._evaluate = evaluate
        self._score = score or (lambda evaluation: evaluation["mean_return"])
        self._state = state
        self._closing = list(closing)
        self._closed = False
        self.step = 0
        self.best = -math.inf
        self.solved_at: int | None = None
        self.evaluation: dict[str, float] | None = None  # of the last end_iteration, if any
        #: The ``last`` checkpoint resumed from, ``(tensors, meta)``, for the loop to restore.
        self.loaded: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
        elapsed, recent, episodes = 0.0, {}, 0
        if resume:
            self.loaded = load_checkpoint(self.folder, "last", device)
            meta = self.loaded[1]
            self.step = meta["step"]
            self.best = -math.inf if meta["best_eval_return"] is None else meta["best_eval_return"]
            elapsed, recent, episodes = meta["elapsed_s"], meta["recent"], meta["episodes"]
        self.logger = RunLogger(
            run_dir,
            t.total_steps,
            tensorboard=t.tensorboard,
            progress=t.progress,
            resume_step=self.step if resume else None,
            elapsed=elapsed,
            trackers=make_trackers(cfg, run_dir, resume=resume),
        )
        for key, dq in (
            ("returns", self.logger.recent_returns),
            ("lengths", self.logger.recent_lengths),
            ("success", self.logger.recent_success),
        ):
            dq.extend(recent.get(key, []))
        self.logger.episodes = episodes
        self._has_last = resume
        # Per-step episode bookkeeping without NumPy in-place adds where it can: each costs
        # ~1 µs inside a training loop, a measurable share of a ~75 µs CartPole DQN step.
        # Returns: a Python float for one env (the same float64 sums), an array for several.
        # Lengths: vector steps since each env's episode began.
        self._num_envs = num_envs or 0
        self._tracks = num_envs is not None
        self._ret = 0.0
        self._ret_E = np.zeros(self._num_envs)
        self._vec_steps = 0
        self._ep_start_E = np.zeros(self._num_envs, dtype=np.int64)
        if self.loaded is not None and self._tracks and "loop.ep_ret" in self.loaded[0]:
            self._set_returns(self.loaded[0]["loop.ep_ret"].cpu().numpy().astype(np.float64))
            self._ep_start_E = -self.loaded[0]["loop.ep_len"].cpu().numpy().astype(np.int64)

        def after(freq: int) -> float:  # the first multiple of freq past the current step
            return (self.step // freq + 1) * freq if freq else math.inf

        self._next_log = after(t.log_freq)
        self._next_eval = after(t.eval_freq)
        self._next_ckpt = after(t.checkpoint_freq)
        self._next_progress = self.step + PROGRESS_EVERY
        self._every_s = t.checkpoint_every_s or math.inf
        self._save_by = time.monotonic() + self._every_s  # the time-based 'last' is due then
        self._total = t.total_steps
        self._next_due = min(self._next_eval, self._next_log, self._next_ckpt, self._next_progress)

    # -- what the loop calls ------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def done(self) -> bool:
        """The step budget is spent or an evaluation reached ``train.stop_return``."""
        return self.solved_at is not None or self.step >= self._total

    def count(self, env_steps: int) -> None:
        """``env_steps`` env steps were just taken (one vector step: the number of envs)."""
        self.step += env_steps

    def episode(self, ret: float, length: int, success: float = math.nan) -> None:
        """An episode ended at the current step (``success``: 1, 0 or NaN for unknown)."""
        self.logger.episode(self.step, ret, length, success)

    def track(self, reward_E: np.ndarray, done_E: np.ndarray, info: dict[str, Any]) -> None:
        """One vector step of the E envs (needs ``num_envs``): counts E env steps, adds to each
        env's running episode and reports the episodes that ended (``done_E``: terminated or
        truncated; success from the env's ``is_success`` or ``env.success_return``)."""
        self._vec_steps += 1
        self.step += self._num_envs
        if self._num_envs == 1:
            self._ret += float(reward_E[0])
            if not done_E[0]:
                return
        else:
            self._ret_E += reward_E
            if not done_E.any():
                return
        ret, length = self.ep_ret_E, self.ep_len_E
        succ = episode_successes(info, done_E, ret, self.cfg.env.success_return)
        for i in np.flatnonzero(done_E):
            self.logger.episode(self.step, float(ret[i]), int(length[i]), float(succ[i]))
        ret[done_E] = 0.0
        self._set_returns(ret)
        self._ep_start_E[done_E] = self._vec_steps

    @property
    def ep_ret_E(self) -> np.ndarray:
        """Return so far of each env's current episode (a copy for one env)."""
        return np.array([self._ret]) if self._num_envs == 1 else self._ret_E

    @property
    def ep_len_E(self) -> np.ndarray:
        """Length so far of each env's current episode (env steps of that env)."""
        return self._vec_steps - self._ep_start_E

    def _set_returns(self, ret_E: np.ndarray) -> None:
        if self._num_envs == 1:
            self._ret = float(ret_E[0])
        else:
            self._ret_E = ret_E

    def new_episodes(self) -> None:
        """The envs were reset (a resume that could not restore them): episodes start over."""
        self._set_returns(np.zeros(self._num_envs))
        self._ep_start_E[:] = self._vec_steps

    def end_iteration(self, scalars: ScalarsFn) -> None:
        """The loop's state is whole here: evaluate, log and checkpoint if due."""
        self.evaluation = None
        step = self.step
        # most iterations: nothing is due (three comparisons and a clock read)
        if step < self._next_due and time.monotonic() < self._save_by and step < self._total:
            return
        t = self.cfg.train
        if step >= self._next_eval:
            while self._next_eval <= step:
                self._next_eval += t.eval_freq
            self.evaluation = self._evaluate()
            self._keep_best(self.evaluation)
            if t.stop_return is not None and self.evaluation["mean_return"] >= t.stop_return:
                self.solved_at = step
        logged = step >= self._next_log or self.evaluation is not None
        if logged:
            self.logger.log(step, scalars(), self.evaluation)
            while self._next_log <= step:
                self._next_log += t.log_freq
            if self.evaluation is not None and self._on_eval is not None and not self.done:
                self._on_eval(step, self.evaluation)
        elif step >= self._next_progress:
            self.logger.progress(step)
            self._next_progress = step + PROGRESS_EVERY
        if self.done:
            return  # finish() writes the final 'last'
        due_by_step = step >= self._next_ckpt
        if due_by_step or (logged and not self._has_last) or time.monotonic() >= self._save_by:
            self.save("last")
        if due_by_step:
            while self._next_ckpt <= step:
                self._next_ckpt += t.checkpoint_freq
        self._next_due = min(self._next_eval, self._next_log, self._next_ckpt, self._next_progress)

    def finish(self, scalars: dict[str, float]) -> TrainResult:
        """The final evaluation (unless the last iteration just evaluated), the final ``last``
        checkpoint, ``eval.json``, the learning curve; ``scalars`` go in the final row."""
        loop_time = self.logger.elapsed()
        final = self.evaluation
        if final is None:
            final = self._evaluate()
            self.logger.log(self.step, scalars, final)
            self._keep_best(final)
        self.save("last")
        write_eval_json(self.run_dir, {**final, "step": self.step, "checkpoint": "last"})
        plot_learning_curve(self.run_dir, title=self.title)
        self.close()  # after the plot: a tracker logs it as the run's media
        return TrainResult(
            run_dir=self.run_dir,
            steps=self.step,
            final_eval=final,
            best_eval_return=self.best,
            solved_at_step=self.solved_at,
            eval_history=self.logger.eval_history,
            wall_time_s=self.logger.elapsed(),
            loop_time_s=loop_time,
        )

    def save(self, name: str) -> None:
        """Write checkpoint ``name`` (``best`` or ``last``): the loop's state and the run's."""
        self.logger.flush()  # rows up to this step are on disk before the checkpoint says so
        tensors, loop_meta = self._state(name)
        if self._tracks:
            tensors["loop.ep_ret"] = torch.from_numpy(self.ep_ret_E.copy())
            tensors["loop.ep_len"] = torch.from_numpy(self.ep_len_E)
        lg = self.logger
        meta = {
            "kind": self.kind,
            "step": self.step,
            **loop_meta,
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
        save_checkpoint(self.folder, name, tensors, meta)
        if name == "last":
            self._has_last = True
            self._save_by = time.monotonic() + self._every_s

    def close(self) -> None:
        """Close the logger and everything in ``closing`` (once; also on an exception)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.logger.close()
        finally:
            for c in self._closing:
                c.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep_best(self, evaluation: dict[str, float]) -> None:
        score = self._score(evaluation)
        if score > self.best:  # NaN never wins
            self.best = score
            self.save("best")


def replay_and_env_state(
    cfg: Config, name: str, buffer: Any, envs: Any, obs: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What an off-policy loop adds to a checkpoint beyond its learner: the current
    observations, the NumPy RNG, the envs' state and (in ``last``, unless
    ``train.save_buffer`` is off) the replay; :func:`restore_replay_and_envs` reads it back."""
    tensors = {"loop.obs": torch.from_numpy(np.ascontiguousarray(obs))}
    meta: dict[str, Any] = {"rng_numpy": rng_state(rng), "env_state": get_vec_env_state(envs)}
    if cfg.train.save_buffer and name == "last":
        tensors.update(buffer.state_tensors())
        meta["buffer"] = buffer.state_meta()
    return tensors, meta


def restore_replay_and_envs(run: Run, buffer: Any, envs: Any) -> bool:
    """Put an off-policy loop's replay and env states back from :attr:`Run.loaded`.

    Returns False when the envs' state could not be saved as data (e.g. MuJoCo): the run then
    starts fresh episodes and the caller resets the envs.
    """
    assert run.loaded is not None
    tensors, meta = run.loaded
    if "buffer.obs" in tensors:
        buffer.load_state({k: v.cpu() for k, v in tensors.items()}, meta["buffer"])
    else:
        warnings.warn("checkpoint has no replay buffer: resume refills it", stacklevel=3)
    if meta.get("env_state") is None:
        warnings.warn(
            f"{run.cfg.env.id} state cannot be saved as data: resume starts fresh episodes",
            stacklevel=3,
        )
        run.new_episodes()
        return False
    set_vec_env_state(envs, meta["env_state"])
    return True
