"""Ape-X on Ray against the single-process loop on CartPole, and what Ray itself costs (issue 8).

Prints (and writes ``--json``):
  * Ray start-up time and memory (RSS and USS of the driver and every Ray process it started);
  * micro figures: actor round trip, object-store put/get of weights (CartPole MLP and a
    Nature-CNN-sized net), replay-shard calls/s for ``add`` (64-transition chunks) and
    ``sample`` (256 transitions);
  * collection throughput (env steps/s, learner idle) with actors = 1, 2;
  * wall time to solve CartPole (greedy eval >= 475) with the ``cartpole-dqn`` preset: the
    single-process loop, then Ape-X with actors = 1, 2 (``distributed.max_update_lag=64``).

Run: ``PYTHONPATH=src python benchmarks/apex.py [--seeds 0] [--json out.json]``.
The report is also written to ``benchmarks/results/apex/apex.json`` (``apex/budget-PRESET.json``
with ``--budget-preset``).
On a 2-core machine shared with other jobs the absolute figures move by 20-30% run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from _results import add_result_args, out_dir_for, write_result

os.environ.setdefault("OMP_NUM_THREADS", "1")
FAST = ["train.progress=false", "train.tensorboard=false"]


def tree_memory_mb() -> dict[str, float]:
    """RSS (double-counts shared pages) and USS (private pages) of this process and its tree."""
    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    rss = uss = 0.0
    for p in procs:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        uss += info.uss
    return {"processes": len(procs), "rss_mb": rss / 2**20, "uss_mb": uss / 2**20}


def ray_costs(ray: Any) -> dict[str, Any]:
    from drlzero.distributed import init_ray

    before = tree_memory_mb()
    t0 = time.perf_counter()
    init_ray(None, object_store_mb=384)
    start_s = time.perf_counter() - t0
    time.sleep(2.0)  # let the idle workers Ray pre-starts settle
    after = tree_memory_mb()
    return {"init_s": start_s, "before": before, "after_init": after}


def micro(ray: Any, calls: int = 500) -> dict[str, Any]:
    """Ray call costs: ``calls`` actor round trips, ``calls / 25`` weight puts and gets,
    ``0.6 * calls`` replay-shard adds and samples."""
    from drlzero.config import ReplayConfig
    from drlzero.distributed.apex import ReplayShard, Transitions, weights_of
    from drlzero.encoders.cnn import NatureCNN

    out: dict[str, Any] = {}

    @ray.remote
    class Echo:
        def ping(self) -> int:
            return 1

    echo = Echo.remote()
    ray.get(echo.ping.remote())
    t0 = time.perf_counter()
    for _ in range(calls):
        ray.get(echo.ping.remote())
    out["actor_round_trip_ms"] = 1e3 * (time.perf_counter() - t0) / calls
    n_w, n_r = max(calls // 25, 2), max(calls * 3 // 5, 2)

    mlp = torch.nn.Sequential(
        torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.Linear(64, 2)
    )
    cnn = NatureCNN((4, 84, 84), features_dim=512)
    for name, net in (("cartpole_mlp", mlp), ("nature_cnn", cnn)):
        w = weights_of(net)
        size = sum(a.nbytes for a in w.values())
        t0 = time.perf_counter()
        for _ in range(n_w):
            ref = ray.put(w)
        put_ms = 1e3 * (time.perf_counter() - t0) / n_w
        t0 = time.perf_counter()
        for _ in range(n_w):
            ray.get(ref)
        get_ms = 1e3 * (time.perf_counter() - t0) / n_w
        out[f"weights_{name}"] = {"bytes": size, "put_ms": put_ms, "get_ms": get_ms}

    shard = ray.remote(num_cpus=0)(ReplayShard).remote(
        100_000, (4,), np.dtype(np.float32), ReplayConfig(), total_steps=100_000, seed=0
    )
    ray.get(shard.size.remote())  # wait for the actor to start: not part of a call's cost
    k = 64
    chunk = Transitions(
        np.random.rand(k, 4).astype(np.float32),
        np.zeros(k, np.int64),
        np.ones(k, np.float32),
        np.random.rand(k, 4).astype(np.float32),
        np.zeros(k, np.float32),
        np.full(k, 0.99, np.float32),
        np.random.rand(k).astype(np.float32),
    )
    t0 = time.perf_counter()
    for _ in range(n_r):
        ray.get(shard.add.remote(chunk))
    out["replay_add_calls_per_s"] = n_r / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(n_r):
        ray.get(shard.sample.remote(256, 0))
    out["replay_sample256_calls_per_s"] = n_r / (time.perf_counter() - t0)
    ray.kill(shard)
    ray.kill(echo)
    return out


def solve(
    kind: str,
    actors: int,
    seed: int,
    root: Path,
    extra: list[str],
    preset: str = "cartpole-dqn",
) -> dict[str, Any]:
    from drlzero.api import train
    from drlzero.config import load_config

    over = [*FAST, f"train.seed={seed}", *extra]
    if kind == "apex":
        over += ["distributed.mode=apex", f"distributed.actors={actors}"]
    cfg = load_config(preset, overrides=over)
    t0 = time.perf_counter()
    result = train(cfg, out=root / f"{kind}{actors}-s{seed}-{len(extra)}")
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {
        "kind": kind,
        "actors": actors,
        "seed": seed,
        "wall_s": wall,
        "steps": result.steps,
        "env_steps_per_s": result.steps / wall,
        "solved_at_step": result.solved_at_step,
        "best_eval": result.best_eval_return,
    }
    stats = result.run_dir / "distributed.json"
    if stats.is_file():
        d = json.loads(stats.read_text())
        for key in (
            "learner_updates",
            "learner_update_ms",
            "learner_sample_wait_ms",
            "replay_calls_per_s",
            "actor_chunk_ms",
            "weights_put_ms",
            "weights_published",
        ):
            row[key] = d[key]
    return row


def budget(preset: str, steps: int, seeds: list[int]) -> dict[str, Any]:
    """A fixed env-step budget on a preset too slow to solve here (e.g. MinAtar on CPU)."""
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="apex-budget-"))
    extra = [
        f"train.total_steps={steps}",
        f"train.eval_freq={steps}",
        "train.checkpoint_freq=0",
        "distributed.max_update_lag=64",
    ]
    rows = []
    for seed in seeds:
        for kind, actors in (("local", 0), ("apex", 1), ("apex", 2)):
            over = [x for x in extra if kind == "apex" or not x.startswith("distributed.")]
            r = solve(kind, actors, seed, root, over, preset=preset)
            rows.append(r)
            print(r, flush=True)
    print(f"\n{preset}, {steps} env steps each")
    print(f"{'run':<10} {'seed':>4} {'env steps/s':>12} {'wall s':>8} {'final eval':>11}")
    for r in rows:
        name = "local" if r["kind"] == "local" else f"apex x{r['actors']}"
        print(
            f"{name:<10} {r['seed']:>4} {r['env_steps_per_s']:12.0f} {r['wall_s']:8.0f}"
            f" {r['best_eval']:11.2f}"
        )
    return {"preset": preset, "steps": steps, "runs": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-solve", action="store_true")
    ap.add_argument("--micro-only", action="store_true", help="Ray costs and micro figures only")
    ap.add_argument(
        "--budget-preset",
        help="instead: this preset (e.g. minatar-breakout-dqn) for --budget-steps env steps, "
        "single process vs Ape-X actors=1,2: env steps/s and final greedy return",
    )
    ap.add_argument("--budget-steps", type=int, default=50_000)
    add_result_args(ap)
    args = ap.parse_args()
    if args.budget_preset:
        rep = budget(args.budget_preset, args.budget_steps, [int(s) for s in args.seeds.split(",")])
        name = f"budget-{args.budget_preset}"
        print("wrote", write_result("apex", name, rep, out_dir=out_dir_for(args)))
        return
    if args.smoke:  # Ray's start-up, a few calls of each kind, and two 600-step runs
        smoke(args)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    import ray

    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    root = Path(tempfile.mkdtemp(prefix="apex-bench-"))
    rows: list[dict[str, Any]] = []
    if not (args.skip_solve or args.micro_only):
        for seed in seeds:  # the single-process loop, before Ray exists in this process
            rows.append(solve("local", 0, seed, root, []))
            print(rows[-1], flush=True)
    report["ray"] = ray_costs(ray)
    print(report["ray"], flush=True)
    report["micro"] = micro(ray)
    print(report["micro"], flush=True)
    for actors in () if args.micro_only else (1, 2):  # collection alone: the learner never starts
        no_learning = ["dqn.learning_starts=100000", "train.total_steps=20000"]
        r = solve("apex", actors, 0, root, no_learning)
        r["kind"] = "apex-collect-only"
        rows.append(r)
        print(r, flush=True)
    if not (args.skip_solve or args.micro_only):
        for seed in seeds:
            for actors in (1, 2):
                rows.append(solve("apex", actors, seed, root, ["distributed.max_update_lag=64"]))
                print(rows[-1], flush=True)
    report["runs"] = rows
    report["load_avg_end"] = os.getloadavg()
    ray.shutdown()
    print(json.dumps(report, indent=1, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    print("wrote", write_result("apex", "apex", report, out_dir=out_dir_for(args)))


def smoke(args: argparse.Namespace) -> None:
    """Every part of the benchmark once, at a budget that only checks it runs."""
    torch.set_num_threads(1)
    import ray

    root = Path(tempfile.mkdtemp(prefix="apex-smoke-"))
    tiny = ["train.total_steps=600", "dqn.learning_starts=200", "train.eval_freq=600"]
    report: dict[str, Any] = {"runs": [solve("local", 0, 0, root, tiny)]}
    report["ray"] = ray_costs(ray)
    report["micro"] = micro(ray, calls=10)
    report["runs"].append(solve("apex", 1, 0, root, [*tiny, "distributed.max_update_lag=64"]))
    ray.shutdown()
    print(json.dumps(report, indent=1, default=float))
    print("wrote", write_result("apex", "apex", report, out_dir=out_dir_for(args)))


if __name__ == "__main__":
    main()
