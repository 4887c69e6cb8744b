"""Time of one DQN gradient step and of one action: textbook PyTorch vs drlzero, eager and compiled.

Update table. The textbook step is what SB3 and CleanRL run: a target forward per step,
per-tensor ``zero_grad``, ``clip_grad_norm_`` and ``Adam.step`` (for-loop implementation, the CPU
default). drlzero's keeps all weights and grads in one flat tensor, runs the networks' flat
forwards (``drlzero.accel.trace``), and computes the target network's values for a whole training
phase at once. Columns:

- ``textbook``: as above;
- ``drlzero G=1``: one gradient step per phase (CleanRL's and the MinAtar setting: train every
  N env steps, one step each time);
- ``drlzero phase``: ``--steps`` gradient steps per phase (the Zoo's gradient_steps);
- ``compiled G=1``: ``train.compile=true`` (``torch.compile`` of forward + loss), G=1.

Act table: one observation -> Q-values, ``nn.Module`` call vs the flat forward vs compiled.

All use the same network, batch and Huber loss; repeats are interleaved and medians printed.

Usage:
    python benchmarks/update_step.py [--threads 1] [--repeats 7] [--no-compile]

Raw medians (µs) go to ``benchmarks/results/update_step/update_step.json``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from _results import add_result_args, out_dir_for, write_result
from torch import nn

from drlzero.accel import FastDQNLearner
from drlzero.accel.trace import flat_forward, numpy_forward
from drlzero.algos.dqn import compiled
from drlzero.config import DQNConfig
from drlzero.encoders.cnn import MinAtarCNN
from drlzero.encoders.mlp import MLPEncoder
from drlzero.nets.heads import LinearHead, QNetwork
from drlzero.replay.storage import Batch

# name -> (network factory, observation shape, batch size)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "Zoo CartPole: 256x256 MLP, batch 64": (
        lambda: QNetwork(MLPEncoder((4,), hidden=[256, 256]), LinearHead(256, 2)),
        (4,),
        64,
    ),
    "CleanRL CartPole: 120x84 MLP, batch 128": (
        lambda: QNetwork(MLPEncoder((4,), hidden=[120, 84]), LinearHead(84, 2)),
        (4,),
        128,
    ),
    "MinAtar CNN (10x10x4, 6 actions), batch 32": (
        lambda: QNetwork(MinAtarCNN((10, 10, 4)), LinearHead(128, 6)),
        (10, 10, 4),
        32,
    ),
}


def make_batch(n: int, obs_shape: tuple[int, ...], num_actions: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        torch.rand(n, *obs_shape, generator=g),
        torch.randint(0, num_actions, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.rand(n, *obs_shape, generator=g),
        torch.zeros(n),
    )


def textbook(q: nn.Module, batch: Batch, steps: int, b: int) -> float:
    target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    for i in range(steps):
        s = slice(i * b, (i + 1) * b)
        with torch.no_grad():
            y = (
                batch.rewards[s]
                + 0.99 * (1 - batch.terminated[s]) * target(batch.next_obs[s]).max(1).values
            )
        q_sa = q(batch.obs[s]).gather(1, batch.actions[s, None]).squeeze(1)
        loss = F.smooth_l1_loss(q_sa, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(q.parameters(), 10.0)
        opt.step()
    return (time.perf_counter() - t0) / steps


def ours(learner: FastDQNLearner, parts: list[Batch], per_phase: int) -> float:
    t0 = time.perf_counter()
    for part in parts:
        learner.update_phase(part, per_phase)
    return (time.perf_counter() - t0) / (len(parts) * per_phase)


def _slice(batch: Batch, s: slice) -> Batch:
    return Batch(*(None if x is None else x[s] for x in batch))


def bench_update(
    factory: Callable[[], nn.Module],
    obs_shape: tuple[int, ...],
    b: int,
    args: argparse.Namespace,
) -> tuple[dict[str, float], nn.Module]:
    """Median µs per gradient step of each column; returns the textbook net for the act table."""
    cfg = DQNConfig(max_grad_norm=10.0)
    torch.manual_seed(0)
    nets = {k: factory() for k in ("tb", "g1", "ph", "co")}
    n_act = nets["tb"](torch.zeros(1, *obs_shape)).shape[1]
    batch = make_batch(b * args.steps, obs_shape, n_act)
    ones = [_slice(batch, slice(i * b, (i + 1) * b)) for i in range(args.steps)]
    keys = ["g1", "ph"] + ([] if args.no_compile else ["co"])
    learners = {
        k: FastDQNLearner(nets[k], copy.deepcopy(nets[k]), cfg, compile=(k == "co")) for k in keys
    }
    runs: dict[str, Callable[[], float]] = {
        "tb": partial(textbook, nets["tb"], batch, args.steps, b),
        "g1": partial(ours, learners["g1"], ones, 1),
        "ph": partial(ours, learners["ph"], [batch], args.steps),
    }
    if "co" in learners:
        runs["co"] = partial(ours, learners["co"], ones, 1)
    for fn in runs.values():  # warm-up (and compile)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            times[k].append(fn())
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}, nets["tb"]


def act_time(fn: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor, n: int) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(n):
            fn(obs)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled columns")
    ap.add_argument("--act-calls", type=int, default=2000, help="timed actions per repeat")
    add_result_args(ap)
    args = ap.parse_args()
    if args.smoke:  # torch.compile alone takes ~20 s: left out of the smoke run
        args.repeats, args.steps, args.act_calls, args.no_compile = 1, 2, 20, True
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps per repeat")
    print(
        f"{'update step, µs':<44} {'textbook':>9} {'G=1':>7} {'phase':>7} {'compiled':>9}"
        f" {'x (G=1)':>8}"
    )
    act_rows = []
    update_rows: dict[str, dict[str, float]] = {}
    for name, (factory, obs_shape, b) in CASES.items():
        med, net = bench_update(factory, obs_shape, b, args)
        update_rows[name] = med
        co = f"{med['co']:9.0f}" if "co" in med else f"{'-':>9}"
        print(
            f"{name:<44} {med['tb']:9.0f} {med['g1']:7.0f} {med['ph']:7.0f} {co}"
            f" {med['tb'] / med['g1']:7.2f}x",
            flush=True,
        )
        # acting: one observation
        obs = torch.rand(1, *obs_shape)
        fns = {"module": net, "flat": flat_forward(net, obs)}
        np_fwd = numpy_forward(net, obs.numpy())
        if np_fwd is not None:  # small MLPs: what drlzero's QPolicy acts with on CPU
            obs_np = obs.numpy()
            fns["numpy"] = lambda _o, f=np_fwd, x=obs_np: f(x)
        if not args.no_compile:
            fns["compiled"] = compiled(net)
        for fn in fns.values():
            act_time(fn, obs, 50)
        at: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for k, fn in fns.items():
                at[k].append(act_time(fn, obs, args.act_calls))
        act_rows.append((name, {k: statistics.median(v) * 1e6 for k, v in at.items()}))
    print(
        f"\n{'one action (batch 1 forward), µs':<44} {'module':>9} {'flat':>7} {'numpy':>7}"
        f" {'compiled':>9}"
    )
    for name, m in act_rows:
        co = f"{m['compiled']:9.1f}" if "compiled" in m else f"{'-':>9}"
        nu = f"{m['numpy']:7.1f}" if "numpy" in m else f"{'-':>7}"
        print(f"{name:<44} {m['module']:9.1f} {m['flat']:7.1f} {nu} {co}")
    payload = {
        "threads": args.threads,
        "repeats": args.repeats,
        "steps_per_repeat": args.steps,
        "act_calls": args.act_calls,
        # update: median µs per gradient step (tb textbook, g1 G=1, ph phase, co compiled)
        "update_us": update_rows,
        "act_us": dict(act_rows),  # median µs per batch-1 forward, by path
    }
    print("wrote", write_result("update_step", "update_step", payload, out_dir=out_dir_for(args)))


if __name__ == "__main__":
    main()
