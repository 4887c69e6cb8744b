"""Time of one DQN gradient step: a textbook PyTorch update vs drlzero's ``DQNLearner.update``.

The textbook step is what SB3 and CleanRL run: per-tensor ``zero_grad``, ``clip_grad_norm_`` and
``Adam.step`` (for-loop implementation, the CPU default). drlzero's keeps all weights and grads in
one flat tensor and computes the target network's values for a whole training phase at once.
Both use the same network, batch and Huber loss; repeats are interleaved and the median is printed.

Usage:
    python benchmarks/update_step.py [--threads 1] [--repeats 7]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from drlzero.algos.dqn import DQNLearner
from drlzero.buffers import Batch
from drlzero.config import DQNConfig

CASES = {
    "Zoo CartPole: 256x256 MLP, batch 64": ((256, 256), 64),
    "CleanRL CartPole: 120x84 MLP, batch 128": ((120, 84), 128),
}


def mlp(hidden: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    d = 4
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, 2))


def make_batch(n: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        torch.randn(n, 4, generator=g),
        torch.randint(0, 2, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, 4, generator=g),
        torch.zeros(n),
    )


def textbook(hidden: tuple[int, ...], batch: Batch, steps: int, b: int) -> float:
    q = mlp(hidden)
    target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
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


def ours(hidden: tuple[int, ...], batch: Batch, steps: int) -> float:
    q = mlp(hidden)
    learner = DQNLearner(q, copy.deepcopy(q), DQNConfig(max_grad_norm=10.0))
    t0 = time.perf_counter()
    learner.update(batch, steps)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps per repeat")
    print(f"{'case':<42} {'textbook us':>12} {'drlzero us':>11} {'speed-up':>9}")
    for name, (hidden, b) in CASES.items():
        batch = make_batch(b * args.steps)
        textbook(hidden, batch, 16, b)  # warm-up
        ours(hidden, batch, 16)
        tb, us = [], []
        for _ in range(args.repeats):
            tb.append(textbook(hidden, batch, args.steps, b))
            us.append(ours(hidden, batch, args.steps))
        a, c = statistics.median(tb) * 1e6, statistics.median(us) * 1e6
        print(f"{name:<42} {a:12.0f} {c:11.0f} {a / c:8.2f}x")


if __name__ == "__main__":
    main()
