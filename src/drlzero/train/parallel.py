"""Data-parallel learning of DQN and PPO on N processes with Lightning Fabric.

``train.devices=N`` (extra ``drlzero[fabric]``) launches N processes (``train.strategy``:
``ddp_spawn``, or ``ddp_fork`` where spawning cannot re-import the caller) over one process
group (gloo on CPU, NCCL on GPUs), one device each. What is parallel, and what is not:

- **parallel**: the learner. Every minibatch is split into N equal contiguous shares; each
  process runs the forward and backward on its share, the gradients are averaged with one
  all-reduce (a flat vector), then every process clips and steps the same optimizer on the
  same gradient. The mean of the N share-gradients of the mean loss is the gradient of the
  mean loss over the whole minibatch, so a step on N processes equals the step on one process
  up to float rounding (``tests/test_parallel.py``).
- **replicated**: collection. Every process runs the same envs from the same seed, the same
  replay and the same sampling, so all processes hold the same minibatch and take the same
  decisions (evaluation, stop-on-solve, PPO's ``target_kl``: its loss terms are averaged too)
  with no further communication. This buys learner speed for large networks or batches
  (a pretrained encoder), not env throughput: for that, see Ape-X (``distributed.mode=apex``).

Rank 0 writes the run directory (logs, checkpoints, eval.json); the others run in scratch
folders ``RUN_DIR/.ranks/rank-K`` (removed at the end) and, on ``--resume``, start from rank
0's checkpoint, which holds the whole state of every process. ``train.precision=bf16-mixed``
runs the learner's forward under Fabric's autocast (also with one device).
"""

from __future__ import annotations

import contextlib
import copy
import shutil
from pathlib import Path
from typing import Any

import torch

from drlzero.config import Config
from drlzero.errors import UserError
from drlzero.train.run import TrainResult


def require_fabric() -> Any:
    try:
        import lightning_fabric
    except ImportError:
        raise UserError(
            "train.devices > 1 or train.precision needs Lightning Fabric: "
            "pip install 'drlzero[fabric]'"
        ) from None
    return lightning_fabric


def uses_fabric(cfg: Config) -> bool:
    return cfg.train.devices > 1 or cfg.train.precision != "32-true"


class FabricDataParallel:
    """:class:`drlzero.algos.base.DataParallel` over a launched Fabric."""

    def __init__(self, fabric: Any) -> None:
        self.fabric = fabric
        self.rank = int(fabric.global_rank)
        self.world = int(fabric.world_size)

    def take(self, x: torch.Tensor) -> torch.Tensor:
        share = x.shape[0] // self.world
        return x[self.rank * share : (self.rank + 1) * share]

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        return self.fabric.autocast()

    def mean_grads(self, params: list[torch.Tensor]) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = self.fabric.all_reduce(torch.cat([g.reshape(-1) for g in grads]), reduce_op="mean")
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.world == 1 else self.fabric.all_reduce(x, reduce_op="mean")


def make_fabric(cfg: Config) -> Any:
    """A Fabric for ``cfg.train`` (not launched)."""
    require_fabric()
    from lightning_fabric import Fabric

    t = cfg.train
    gpu = t.device.startswith("cuda") or (t.device == "auto" and torch.cuda.is_available())
    strategy = t.strategy if t.devices > 1 else "auto"
    return Fabric(
        accelerator="cuda" if gpu else "cpu",
        devices=t.devices,
        strategy=strategy,
        precision=t.precision,  # type: ignore[arg-type]
    )


def train_parallel(cfg: Config, run_dir: Path, *, resume: bool) -> TrainResult:
    """Run DQN or PPO as ``cfg`` says on ``train.devices`` processes; rank 0's result."""
    fabric = make_fabric(cfg)
    return fabric.launch(_rank_main, cfg, str(run_dir), resume)


def _rank_main(fabric: Any, cfg: Config, run_dir: str, resume: bool) -> TrainResult:
    from drlzero.train.loop import train_dqn
    from drlzero.train.onpolicy import train_ppo

    rank = int(fabric.global_rank)
    cfg = copy.deepcopy(cfg)
    cfg.train.device = str(fabric.device)
    root = Path(run_dir)
    own = root
    if rank > 0:  # a scratch run directory: rank 0 writes the real one
        own = root / ".ranks" / f"rank-{rank}"
        shutil.rmtree(own, ignore_errors=True)
        own.mkdir(parents=True)
        if resume:
            shutil.copytree(root / "checkpoints", own / "checkpoints")
        cfg.train.progress = cfg.train.tensorboard = cfg.train.wandb = False
    train = train_ppo if cfg.algo == "ppo" else train_dqn
    try:
        result = train(cfg, own, resume=resume, dp=FabricDataParallel(fabric))
    finally:
        if rank > 0:
            shutil.rmtree(own, ignore_errors=True)
    fabric.barrier()
    if rank == 0:
        shutil.rmtree(root / ".ranks", ignore_errors=True)
    return result
