"""The Run engine's schedule and resume, checkpoint pairs that survive a crash at any point,
and CSV logs that survive a torn last line."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drlzero.config import Config
from drlzero.errors import CheckpointError
from drlzero.train import checkpoint as ckpt
from drlzero.train import run as run_mod
from drlzero.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from drlzero.train.logger import EPISODE_COLUMNS, _truncate_csv
from drlzero.train.run import Run


# -- checkpoint pairs: a crash at every point of a save leaves a loadable pair ------------------
def _gen(i: int) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3,), float(i)), "b": torch.arange(i + 1)}


class _Crash(Exception):
    pass


def _crashing_ops(monkeypatch: pytest.MonkeyPatch, crash_at: int, links: bool) -> list[str]:
    """Make the k-th file operation of a save (rename, link, unlink) raise; count them all."""
    done: list[str] = []
    real_unlink = Path.unlink

    def op(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if len(done) == crash_at:
                raise _Crash(name)
            done.append(name)
            return fn(*args, **kwargs)

        return wrapped

    def no_link(*args: Any) -> None:
        raise OSError("no hard links here")

    fake_os = types.SimpleNamespace(
        replace=op("replace", ckpt.os.replace),
        link=op("link", ckpt.os.link) if links else no_link,
        fsync=ckpt.os.fsync,
    )
    monkeypatch.setattr(ckpt, "os", fake_os)
    monkeypatch.setattr(Path, "unlink", op("unlink", real_unlink))
    return done


def _count_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool) -> int:
    folder = tmp_path / "count"
    save_checkpoint(folder, "last", _gen(0), {"step": 0})
    with monkeypatch.context() as m:
        done = _crashing_ops(m, 10**9, links)
        save_checkpoint(folder, "last", _gen(1), {"step": 1})
    return len(done)


@pytest.mark.parametrize("links", [True, False], ids=["hardlinks", "renames"])
def test_a_crash_anywhere_in_a_save_leaves_a_whole_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    n_ops = _count_ops(tmp_path, monkeypatch, links)
    assert n_ops >= 4  # at least: 2 renames of the new pair, 2 removals of the previous one
    for k in range(n_ops):
        folder = tmp_path / f"crash{k}"
        save_checkpoint(folder, "last", _gen(1), {"step": 1})
        with monkeypatch.context() as m:
            _crashing_ops(m, k, links)
            with pytest.raises(_Crash):
                save_checkpoint(folder, "last", _gen(2), {"step": 2})
        assert has_checkpoint(folder, "last")
        tensors, meta = load_checkpoint(folder, "last")
        expect = _gen(meta["step"])
        assert meta["step"] in (1, 2), k
        assert all(torch.equal(tensors[key], expect[key]) for key in expect), k
        # a crash in the next save too still leaves a whole pair (after a cut save it takes
        # fewer operations, so it may also complete)
        with monkeypatch.context() as m:
            _crashing_ops(m, k, links)
            with contextlib.suppress(_Crash):
                save_checkpoint(folder, "last", _gen(3), {"step": 3})
        tensors, meta = load_checkpoint(folder, "last")
        assert meta["step"] in (1, 2, 3), k
        assert torch.equal(tensors["w"], _gen(meta["step"])["w"]), k
        # and a save that completes wins and tidies up
        save_checkpoint(folder, "last", _gen(4), {"step": 4})
        tensors, meta = load_checkpoint(folder, "last")
        assert meta["step"] == 4 and torch.equal(tensors["w"], _gen(4)["w"])
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
            "last.json",
            "last.safetensors",
        ], k


def test_torn_weights_file_with_no_previous_pair_is_a_checksum_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "last", _gen(1), {"step": 1})
    w = tmp_path / "last.safetensors"
    w.write_bytes(w.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path, "last")


def test_leftover_temporary_files_are_ignored_and_replaced(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "last", _gen(1), {"step": 1})
    (tmp_path / ".last.safetensors.tmp").write_bytes(b"half a file")
    (tmp_path / ".last.json.tmp").write_text("{")
    assert load_checkpoint(tmp_path, "last")[1]["step"] == 1
    save_checkpoint(tmp_path, "last", _gen(2), {"step": 2})
    assert load_checkpoint(tmp_path, "last")[1]["step"] == 2


# -- CSV logs: a process killed mid-write leaves a torn last line -------------------------------
def test_truncate_csv_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "episodes.csv"
    # the torn line "12" is the start of a row of step 1200: read as step 12 it would be kept
    path.write_text("step,return,length,success\n100,9,9,\n900,20,20,\n12")
    _truncate_csv(path, EPISODE_COLUMNS, max_step=1000)
    assert path.read_text().splitlines() == ["step,return,length,success", "100,9,9,", "900,20,20,"]


# -- the Run schedule, driven by a fake loop and a fake clock -----------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now

    def strftime(self, fmt: str) -> str:
        return "t"


def _cfg(**train: Any) -> Config:
    cfg = Config()
    cfg.train.tensorboard = False
    cfg.train.progress = False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


class _FakeLoop:
    """Counts steps, reports an episode every 10 steps; evaluations return a scripted series."""

    def __init__(self, returns: list[float]) -> None:
        self.returns = list(returns)
        self.evals: list[int] = []
        self.saves: list[tuple[str, int]] = []
        self.run: Run | None = None

    def evaluate(self) -> dict[str, float]:
        assert self.run is not None
        self.evals.append(self.run.step)
        r = self.returns.pop(0)
        return {"mean_return": r, "std_return": 0.0, "success_rate": math.nan, "episodes": 1}

    def state(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        assert self.run is not None
        self.saves.append((name, self.run.step))
        return {"x": torch.tensor([float(self.run.step)])}, {"loop_counter": self.run.step * 2}

    def make(self, cfg: Config, run_dir: Path, resume: bool = False) -> Run:
        self.run = Run(
            cfg,
            run_dir,
            kind="fake",
            resume=resume,
            evaluate=self.evaluate,
            state=self.state,
            title="fake",
        )
        return self.run

    def drive(self, run: Run, clock: _Clock, seconds_per_step: float = 0.0) -> None:
        while not run.done:
            run.count(1)
            clock.now += seconds_per_step
            if run.step % 10 == 0:
                run.episode(float(run.step), 10, 1.0)
            run.end_iteration(lambda: {"loss": 0.5})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(run_mod, "time", c)
    monkeypatch.setattr(run_mod, "plot_learning_curve", lambda *a, **k: None)
    return c


def test_run_schedule_first_last_step_and_time_checkpoints(tmp_path: Path, clock: _Clock) -> None:
    cfg = _cfg(
        total_steps=100, eval_freq=40, log_freq=25, checkpoint_freq=60, checkpoint_every_s=1.0
    )
    loop = _FakeLoop([1.0, 3.0, 2.0])
    run = loop.make(cfg, tmp_path)
    loop.drive(run, clock, seconds_per_step=0.03)  # 1 s of wall clock every 33.3 steps
    res = run.finish({"explore": 0.1})
    assert loop.evals == [40, 80, 100]  # every 40 steps, then the final one (100 is not a multiple)
    # best at each better eval; 'last': with the first metrics row (25), by time (>= 1 s after
    # the previous 'last': 25 -> 59, 60 -> 94), by step (60), and the final one (100).
    assert loop.saves == [
        ("last", 25),
        ("best", 40),
        ("last", 59),
        ("last", 60),
        ("best", 80),
        ("last", 94),
        ("last", 100),
    ]
    assert res.best_eval_return == 3.0 and res.final_eval["mean_return"] == 2.0
    assert res.solved_at_step is None and res.steps == 100
    _, meta = load_checkpoint(tmp_path / "checkpoints", "last")
    assert meta["loop_counter"] == 200 and meta["kind"] == "fake" and meta["episodes"] == 10
    assert meta["best_eval_return"] == 3.0


def test_run_without_time_checkpoints_and_stop_on_solve(tmp_path: Path, clock: _Clock) -> None:
    cfg = _cfg(
        total_steps=1000, eval_freq=30, log_freq=1000, checkpoint_freq=0, checkpoint_every_s=0
    )
    loop = _FakeLoop([1.0, 5.0, 9.0])
    cfg.train.stop_return = 5.0
    run = loop.make(cfg, tmp_path)
    loop.drive(run, clock, seconds_per_step=100.0)  # no time checkpoints however slow
    res = run.finish({})
    assert loop.evals == [30, 60]  # solved at 60: finish() does not evaluate again
    assert res.solved_at_step == 60 and res.steps == 60
    assert res.final_eval["mean_return"] == 5.0
    # first metrics row = first eval (30); no periodic 'last'; the final one at 60
    assert loop.saves == [("best", 30), ("last", 30), ("best", 60), ("last", 60)]


def test_run_resume_restores_counters_best_and_recent_episodes(
    tmp_path: Path, clock: _Clock
) -> None:
    cfg = _cfg(total_steps=50, eval_freq=20, log_freq=10, checkpoint_freq=0, checkpoint_every_s=0)
    first = _FakeLoop([4.0, 1.0, 1.0])
    run = first.make(cfg, tmp_path)
    first.drive(run, clock)
    run.finish({})
    cfg.train.total_steps = 80
    again = _FakeLoop([2.0, 7.0])
    resumed = again.make(cfg, tmp_path, resume=True)
    assert resumed.loaded is not None
    tensors, meta = resumed.loaded
    assert float(tensors["x"]) == 50.0 and meta["loop_counter"] == 100
    assert resumed.step == 50 and resumed.best == 4.0
    assert resumed.logger.episodes == 5
    assert list(resumed.logger.recent_returns) == [10.0, 20.0, 30.0, 40.0, 50.0]
    again.drive(resumed, clock)
    res = resumed.finish({})
    assert again.evals == [60, 80]  # the schedule continues from step 50
    assert res.best_eval_return == 7.0 and res.steps == 80
    assert resumed.logger.episodes == 8


@pytest.mark.parametrize("num_envs", [1, 3])
def test_track_sums_returns_and_lengths_per_env_across_a_resume(
    tmp_path: Path, clock: _Clock, num_envs: int
) -> None:
    """Episode returns and lengths by hand; a save mid-episode and a resume continue them."""
    rng = np.random.default_rng(0)
    E = num_envs
    # rewards and done flags for 12 vector steps; every env ends episodes at its own times
    rewards = rng.normal(size=(12, E))
    dones = rng.random((12, E)) < 0.3
    expected: list[tuple[int, float, int]] = []  # (step, return, length) in logging order
    ret, length = np.zeros(E), np.zeros(E, dtype=np.int64)
    for k in range(12):
        ret += rewards[k]
        length += 1
        for i in np.flatnonzero(dones[k]):
            expected.append(((k + 1) * E, float(ret[i]), int(length[i])))
        ret[dones[k]], length[dones[k]] = 0.0, 0

    cfg = _cfg(total_steps=12 * E, eval_freq=0, log_freq=10**6, checkpoint_freq=0)
    cfg.train.checkpoint_every_s = 0
    seen: list[tuple[int, float, int]] = []

    def make(resume: bool) -> Run:
        run = Run(
            cfg,
            tmp_path,
            kind="fake",
            resume=resume,
            evaluate=lambda: {"mean_return": 0.0, "std_return": 0.0, "episodes": 1},
            state=lambda name: ({}, {}),
            title="fake",
            num_envs=E,
        )
        run.logger.episode = lambda step, r, n, s: seen.append((step, r, n))  # type: ignore[method-assign]
        return run

    run = make(resume=False)
    for k in range(7):
        run.track(rewards[k], dones[k], {})
    run.save("last")
    run.close()
    run = make(resume=True)
    for k in range(7, 12):
        run.track(rewards[k], dones[k], {})
    run.close()
    assert [s for s, _, _ in seen] == [s for s, _, _ in expected]
    assert [n for _, _, n in seen] == [n for _, _, n in expected]
    np.testing.assert_allclose([r for _, r, _ in seen], [r for _, r, _ in expected], rtol=1e-12)
    np.testing.assert_array_equal(run.ep_len_E, length)
    np.testing.assert_allclose(run.ep_ret_E, ret, rtol=1e-12)


# -- CPU settings: subnormals flushed to zero during a run unless the config says not to -------
_FLUSH_SCRIPT = """
import tempfile, torch
from pathlib import Path
from drlzero import train
from drlzero.config import load_config
from drlzero.train.run import flushing_subnormals

base = ["algo=sac", "env.id=Pendulum-v1", "train.total_steps=60", "train.eval_episodes=1",
        "train.eval_freq=30", "train.progress=false", "train.tensorboard=false",
        "sac.learning_starts=50", "sac.batch_size=8", "encoder.hidden=[8]"]
seen = [flushing_subnormals()]
for before, flag in ((False, "false"), (False, "true"), (True, "true")):
    torch.set_flush_denormal(before)
    during = []
    with tempfile.TemporaryDirectory() as tmp:
        train(load_config(None, overrides=[*base, f"train.flush_denormal={flag}"]),
              out=Path(tmp) / "run", on_eval=lambda step, m: during.append(flushing_subnormals()))
    seen.append((set(during), flushing_subnormals()))
print(seen)
"""


def test_training_flushes_subnormals_only_when_asked_and_puts_the_flag_back() -> None:
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    done = subprocess.run(
        [sys.executable, "-c", _FLUSH_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # off at the start; a false flag leaves it off; true turns it on for the run and back off
    # after; a caller who had it on keeps it on
    expected = "[False, ({False}, False), ({True}, False), ({True}, True)]"
    assert done.stdout.strip().splitlines()[-1] == expected
