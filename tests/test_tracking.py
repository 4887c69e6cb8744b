"""``train.wandb=true``: a tiny run logs offline (no network) the same scalars as TensorBoard,
the config and the learning curve, read back from the offline run's ``.wandb`` file; the extra's
absence is one line; the mode follows ``WANDB_MODE`` and defaults to offline without a key."""

from __future__ import annotations

import csv
import json
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import drlzero
from drlzero.cli import main
from drlzero.train.tracking import wandb_mode

TINY = [
    "train.progress=false",
    "train.total_steps=400",
    "dqn.learning_starts=100",
    "dqn.train_freq=64",
    "dqn.gradient_steps=4",
    "train.eval_freq=200",
    "train.eval_episodes=1",
    "train.log_freq=100",
    "env.max_episode_steps=50",
]


def _records(path: Path) -> Iterator[bytes]:
    """The protobuf records of a ``.wandb`` file: a 7-byte header (':W&B', magic, version),
    then LevelDB log blocks of 32 KiB, each record a 7-byte header (CRC32, length, type: full,
    first, middle, last) and its bytes."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if pos + 7 + length > len(data):  # a record still being written
            return
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            parts = chunk
        elif kind == 3:
            parts += chunk
        elif kind == 4:
            yield parts + chunk


def _read(file: Path, pb: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The history rows and the config in a ``.wandb`` file."""
    history: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    for raw in _records(file):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            items = rec.history.item
            history.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
            )
        elif kind == "run":  # the run record carries the config given to wandb.init
            config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
    return history, config


def test_wandb_offline_logs_tensorboard_scalars_config_and_curve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run = drlzero.train("cartpole-dqn", out=tmp_path / "run", overrides=[*TINY, "train.wandb=true"])
    (file,) = (run.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    # wandb-core's writer process may append the last records a moment after finish() returns
    for _ in range(40):
        history, config = _read(file, pb)
        if any(h.get("media/learning_curve/_type") == "image-file" for h in history):
            break
        time.sleep(0.25)
    assert config["algo"] == "dqn" and config["train"]["total_steps"] == 400
    with (run.run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    with (run.run_dir / "episodes.csv").open() as fh:
        episodes = list(csv.DictReader(fh))
    logged_rows = [h for h in history if "train/sps" in h]
    assert [h["env_step"] for h in logged_rows] == [int(r["step"]) for r in rows]
    evals = [
        (h["env_step"], h["train/eval_return_mean"])
        for h in logged_rows
        if "train/eval_return_mean" in h
    ]
    assert evals == [
        (int(r["step"]), float(r["eval_return_mean"])) for r in rows if r["eval_return_mean"]
    ]
    returns = [h["rollout/episode_return"] for h in history if "rollout/episode_return" in h]
    assert returns == pytest.approx([float(e["return"]) for e in episodes], rel=1e-5)
    # the curve as an image, stored beside the offline run
    assert any(h.get("media/learning_curve/_type") == "image-file" for h in history)
    assert list(file.parent.glob("files/media/images/**/learning_curve*.png"))
    assert (run.run_dir / "wandb_id.txt").read_text().strip() in file.name


def test_missing_wandb_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    out = tmp_path / "run"
    code = main(["train", "cartpole-dqn", "train.wandb=true", "--out", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "pip install 'drlzero[track]'" in err
    assert not out.exists()


def test_wandb_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"
