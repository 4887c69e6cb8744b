"""A target network that shares tensors with the online one (full fine-tuning with
``encoder.target_share: share``) checkpoints once and loads back."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from drlzero.errors import CheckpointError
from drlzero.train.checkpoint import load_checkpoint, load_module, module_tensors, save_checkpoint


def _pair() -> tuple[nn.Module, nn.Module]:
    enc = nn.Linear(4, 8)
    q = nn.Sequential(enc, nn.ReLU(), nn.Linear(8, 2))
    target = nn.Sequential(enc, nn.ReLU(), copy.deepcopy(q[2]))  # encoder shared, head copied
    return q, target


def test_shared_encoder_is_saved_once_and_restored(tmp_path: Path) -> None:
    torch.manual_seed(0)
    q, target = _pair()
    with torch.no_grad():
        target[2].weight.add_(1.0)  # the lagging head differs from the online one
    tensors = {**module_tensors("q", q), **module_tensors("target", target, shared_with=q)}
    assert "target.0.weight" not in tensors and "target.2.weight" in tensors
    save_checkpoint(tmp_path, "last", tensors, {"kind": "test"})  # safetensors accepts it

    torch.manual_seed(1)
    q2, target2 = _pair()
    loaded, _ = load_checkpoint(tmp_path, "last", torch.device("cpu"))
    load_module("q", q2, loaded)
    load_module("target", target2, loaded, shared_with=q2)
    assert target2[0] is q2[0]
    for a, b in zip(
        [*q.state_dict().values(), *target.state_dict().values()],
        [*q2.state_dict().values(), *target2.state_dict().values()],
        strict=True,
    ):
        assert torch.equal(a, b)


def test_a_missing_unshared_tensor_is_an_error(tmp_path: Path) -> None:
    q, target = _pair()
    tensors = module_tensors("target", target, shared_with=q)
    del tensors["target.2.bias"]
    with pytest.raises(CheckpointError, match=r"missing key target\.2\.bias"):
        load_module("target", target, tensors, shared_with=q)
