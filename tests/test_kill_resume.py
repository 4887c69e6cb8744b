"""A real ``drlzero train`` process killed with SIGKILL, twice, then resumed with ``--resume``,
ends with the same weights (every tensor of ``last.safetensors``), ``eval.json`` and
``episodes.csv`` as the same run left alone: DQN (replay buffer saved), PPO (checkpoints only
at rollout boundaries) and SAC (replay buffer, three optimizers, the entropy coefficient)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from drlzero import train
from drlzero.config import load_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

COMMON = [
    "train.progress=false",
    "train.tensorboard=false",
    "train.threads=1",
]
#: preset, overrides, total steps. Checkpoints come often, so each kill lands mid-run.
CASES = {
    "dqn": (
        "cartpole-dqn",
        [
            "dqn.learning_starts=500",
            "dqn.gradient_steps=8",
            "train.eval_freq=1000",
            "train.eval_episodes=2",
            "train.log_freq=500",
            "train.checkpoint_freq=500",
        ],
        5000,
    ),
    # 4 envs x 128 steps: a rollout is 512 env steps; the 'last' checkpoints land on its ends
    "ppo": (
        "cartpole-ppo",
        [
            "train.eval_freq=1024",
            "train.eval_episodes=2",
            "train.log_freq=512",
            "train.checkpoint_freq=512",
        ],
        2048,
    ),
    # a small network and batch keep the 400 updates cheap; the first kill lands before
    # learning starts, the second after
    "sac": (
        "pendulum-sac",
        [
            "sac.learning_starts=200",
            "sac.batch_size=32",
            "encoder.hidden=[32,32]",
            "train.eval_freq=300",
            "train.eval_episodes=1",
            "train.log_freq=100",
            "train.checkpoint_freq=100",
        ],
        600,
    ),
}


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _checkpoint_step(run: Path) -> int | None:
    try:  # replaced by rename, so a read sees a whole file, old or new
        return json.loads((run / "checkpoints" / "last.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _kill_after_checkpoint(
    args: list[str], run: Path, min_step: int, delay_s: float, log: Path
) -> int:
    """Start ``drlzero train ARGS``; SIGKILL it ``delay_s`` after a 'last' checkpoint of step
    >= ``min_step`` appears; returns that checkpoint's step."""
    cmd = [sys.executable, "-m", "drlzero", "train", *args]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            while (step := _checkpoint_step(run)) is None or step < min_step:
                assert proc.poll() is None, f"run ended before the kill: {log.read_text()}"
                assert time.monotonic() < deadline, "no checkpoint within 120 s"
                time.sleep(0.002)
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL, "run ended before the kill"
            return step
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize(
    "algo",
    # SAC: ~50 s on the shared 2-core CPU (four process starts and 400 updates per run)
    ["dqn", "ppo", pytest.param("sac", marks=pytest.mark.slow)],
)
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, algo: str) -> None:
    preset, extra, total = CASES[algo]
    overrides = [f"train.total_steps={total}", *extra, *COMMON]
    part = tmp_path / "part"
    # 1: right after the first 'last', written with the first metrics row
    args = [preset, "--out", str(part), *overrides]
    first = _kill_after_checkpoint(args, part, 1, 0.0, tmp_path / "err1.txt")
    assert first < total // 2
    # 2: the resumed run, a moment after a later checkpoint (mid-run, possibly mid-save)
    second = _kill_after_checkpoint(
        ["--resume", str(part)], part, total // 2, 0.05, tmp_path / "e2"
    )
    assert second >= total // 2
    done = subprocess.run(
        [sys.executable, "-m", "drlzero", "train", "--resume", str(part)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    full = train(load_config(preset, overrides=overrides), out=tmp_path / "full").run_dir
    a = load_file(str(part / "checkpoints" / "last.safetensors"))
    b = load_file(str(full / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys()
    if algo != "ppo":
        assert any(k.startswith("buffer.") for k in a)  # the replay buffer is compared too
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert (a[k] == b[k]).all(), k
    assert json.loads((part / "eval.json").read_text()) == json.loads(
        (full / "eval.json").read_text()
    )
    assert (part / "episodes.csv").read_text() == (full / "episodes.csv").read_text()
