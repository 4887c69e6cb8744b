"""Run logging: per-episode and periodic CSV rows, TensorBoard scalars and a live progress bar."""

from __future__ import annotations

import csv
import io
import math
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drlzero.train.tracking import Tracker

METRIC_COLUMNS = [
    "step",
    "time_s",
    "episodes",
    "return_mean",
    "length_mean",
    "success_rate",
    "loss",
    "q_mean",
    "explore",
    "sps",
    "eval_return_mean",
    "eval_return_std",
    "eval_success_rate",
]
EPISODE_COLUMNS = ["step", "return", "length", "success"]


def _mean(values: Any) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _truncate_csv(path: Path, columns: list[str], max_step: int) -> None:
    """Drop rows written after the checkpoint we resume from (they will be produced again).

    A process killed mid-write can leave a torn last line (buffered writes end anywhere); a
    whole row always ends in a newline, so an unterminated last line is dropped.
    """
    if not path.is_file():
        return
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = [r for r in csv.DictReader(io.StringIO(text)) if int(float(r["step"])) <= max_step]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


class RunLogger:
    """Writes ``metrics.csv``, ``episodes.csv`` and TensorBoard events into the run directory.

    Args:
        run_dir: the run directory.
        total_steps: for the progress bar.
        tensorboard: write TensorBoard events.
        progress: show a live progress bar (rich).
        resume_step: when resuming, rows after this step are dropped and appending continues.
        window: episodes in the rolling training-return mean.
        trackers: receive every TensorBoard scalar too (``drlzero.train.tracking``); each is
            finished by :meth:`close`.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        *,
        tensorboard: bool = True,
        progress: bool = True,
        resume_step: int | None = None,
        window: int = 20,
        elapsed: float = 0.0,
        trackers: list[Tracker] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.trackers = list(trackers or [])
        self.total_steps = total_steps
        self.recent_returns: deque[float] = deque(maxlen=window)
        self.recent_lengths: deque[float] = deque(maxlen=window)
        self.recent_success: deque[float] = deque(maxlen=window)
        self.episodes = 0
        self.t0 = time.perf_counter() - elapsed
        self._last_step = resume_step or 0
        self._last_time = time.perf_counter()
        self.eval_history: list[dict[str, float]] = []
        m_path, e_path = run_dir / "metrics.csv", run_dir / "episodes.csv"
        if resume_step is not None:
            _truncate_csv(m_path, METRIC_COLUMNS, resume_step)
            _truncate_csv(e_path, EPISODE_COLUMNS, resume_step)
        self._m_file = m_path.open("a", newline="")
        self._e_file = e_path.open("a", newline="")
        self._m = csv.DictWriter(self._m_file, fieldnames=METRIC_COLUMNS)
        self._e = csv.writer(self._e_file)
        if m_path.stat().st_size == 0:
            self._m.writeheader()
        if e_path.stat().st_size == 0:
            self._e.writerow(EPISODE_COLUMNS)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir), purge_step=resume_step)
        self._progress = None
        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            self._task = self._progress.add_task(
                "train", total=total_steps, completed=resume_step or 0, status=""
            )
            self._progress.start()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def episode(self, step: int, ret: float, length: int, success: float) -> None:
        self.episodes += 1
        self.recent_returns.append(ret)
        self.recent_lengths.append(length)
        self.recent_success.append(success)
        self._e.writerow([step, f"{ret:.6g}", length, "" if math.isnan(success) else int(success)])
        if self.tb is not None:
            self.tb.add_scalar("rollout/episode_return", ret, step)
            self.tb.add_scalar("rollout/episode_length", length, step)
        for tracker in self.trackers:
            tracker.log(step, {"rollout/episode_return": ret, "rollout/episode_length": length})

    def log(
        self, step: int, scalars: dict[str, float], evaluation: dict[str, float] | None = None
    ) -> dict[str, Any]:
        """Write one metrics row (rolling episode stats + ``scalars`` + an optional eval)."""
        now = time.perf_counter()
        sps = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        row: dict[str, Any] = {
            "step": step,
            "time_s": round(self.elapsed(), 3),
            "episodes": self.episodes,
            "return_mean": _mean(self.recent_returns),
            "length_mean": _mean(self.recent_lengths),
            "success_rate": _mean(self.recent_success),
            "sps": round(sps, 1),
            **scalars,
        }
        if evaluation is not None:
            row["eval_return_mean"] = evaluation["mean_return"]
            row["eval_return_std"] = evaluation["std_return"]
            row["eval_success_rate"] = evaluation["success_rate"]
            self.eval_history.append({"step": step, "time_s": row["time_s"], **evaluation})
        self._m.writerow(
            {
                k: ("" if isinstance(v, float) and math.isnan(v) else v)
                for k, v in row.items()
                if k in METRIC_COLUMNS
            }
        )
        self._m_file.flush()
        self._e_file.flush()
        if self.tb is not None or self.trackers:
            named = {
                f"train/{k}": v
                for k, v in row.items()
                if k not in ("step",) and isinstance(v, (int, float)) and not math.isnan(v)
            }
            if self.tb is not None:
                for k, v in named.items():
                    self.tb.add_scalar(k, v, step)
            for tracker in self.trackers:
                tracker.log(step, named)
        self.progress(step, row)
        return row

    def progress(self, step: int, row: dict[str, Any] | None = None) -> None:
        if self._progress is None:
            return
        if row is None:
            self._progress.update(self._task, completed=step)
            return
        parts = [f"return {row['return_mean']:.1f}" if not math.isnan(row["return_mean"]) else ""]
        if "eval_return_mean" in row:
            parts.append(f"eval {row['eval_return_mean']:.1f}")
        parts.append(f"{row['sps']:.0f} sps")
        self._progress.update(self._task, completed=step, status="  ".join(p for p in parts if p))

    def flush(self) -> None:
        """Hand the CSV rows written so far to the OS (before a checkpoint: a run killed after
        it resumes with every row up to the checkpoint's step on disk)."""
        self._m_file.flush()
        self._e_file.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self.tb is not None:
            self.tb.close()
        self._m_file.close()
        self._e_file.close()
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish(self.run_dir)
