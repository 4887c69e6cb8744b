"""LoRA fine-tuning against frozen MiniLM + cache on multimodal BabyAI GoToLocal: env steps/s.

Target: LoRA at least 30% of frozen + cache's env steps/s on ``babyai-gotolocal-lora`` vs
``babyai-gotolocal-frozen``. Variants (the same preset, only ``encoder.*`` differs):

- ``frozen``: frozen MiniLM, mission embeddings cached at the env boundary;
- ``lora``: the preset: LoRA in the top layer, the lower 5 layers' output cached, rows
  deduplicated, the target memoised;
- ``lora_top2`` / ``lora_top1``: the same with LoRA in the top 2 layers / the top layer;
- ``lora_no_dedup``: the same without deduplication;
- ``lora_plain``: LoRA in every layer, no cache, no dedup (the path before these speed-ups).

Two methods:

- ``--method interleaved`` (default): the machine is shared and its load changes by the minute,
  so whole training runs one after another do not compare. One process builds every variant's
  Q-network, target and learner from its preset, fills one set of GoToLocal transitions (random
  actions, 8 envs), and then times, variant after variant in many short interleaved rounds, what
  one vector step of the training loop costs after ``learning_starts``: the env boundary on the
  8 new observations, acting on them, and one DQN update on a 64-row minibatch (the same
  minibatches for every variant). The 8-env step itself is timed in the same rounds. Env
  steps/s = 8 / (t_env + t_variant); ratios are medians over rounds.
- ``--method loop``: each variant through the real training loop, env steps/s from metrics.csv
  after ``learning_starts`` (what a user sees, but exposed to the load of the moment).

Usage:
    nice -n 19 python benchmarks/lm_finetune_throughput.py [--rounds 8] [--method loop]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

from _results import add_result_args, out_dir_for, write_result

import drlzero

QUIET = ["train.progress=false", "train.tensorboard=false", "train.eval_freq=0"]
VARIANTS = {
    "frozen": ("babyai-gotolocal-frozen", []),
    "lora": ("babyai-gotolocal-lora", []),
    "lora_no_dedup": ("babyai-gotolocal-lora", ["encoder.dedup=false"]),
    "lora_top1": ("babyai-gotolocal-lora", ["encoder.lora_layers=1"]),
    "lora_top2": ("babyai-gotolocal-lora", ["encoder.lora_layers=2"]),
    "lora_plain": (
        "babyai-gotolocal-lora",
        ["encoder.lora_layers=0", "encoder.cache=false", "encoder.dedup=false"],
    ),
}


def steps_per_second(run_dir: Path, after: int) -> float:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    rows = [r for r in rows if r["step"] and float(r["step"]) >= after]
    first, last = rows[0], rows[-1]
    dt = float(last["time_s"]) - float(first["time_s"])
    return (float(last["step"]) - float(first["step"])) / dt


def interleaved(names: list[str], rounds: int, steps: int, n_transitions: int) -> list[dict]:
    """Per round: {variant: seconds per vector step, "env": seconds per 8-env step}."""
    import numpy as np
    import torch

    from drlzero.algos.dqn import DQNLearner
    from drlzero.buffers import Batch
    from drlzero.encoders import env_boundary
    from drlzero.envs import make_vec_env
    from drlzero.nets import build_q_network, make_target, param_groups

    torch.set_num_threads(1)
    base = drlzero.load_config(VARIANTS[names[0]][0])
    envs = make_vec_env(base.env)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    rng = np.random.default_rng(0)
    raw, _ = envs.reset(seed=0)
    frames, actions, rewards, dones = [raw], [], [], []
    while len(frames) * envs.num_envs < n_transitions:
        a = rng.integers(act_space.n, size=envs.num_envs)
        raw, r, term, _trunc, _ = envs.step(a)
        frames.append(raw)
        actions.append(a)
        rewards.append(r)
        dones.append(term)
    nets = {}
    for name in names:
        preset, over = VARIANTS[name]
        cfg = drlzero.load_config(preset, overrides=over)
        torch.manual_seed(0)
        q = build_q_network(cfg, obs_space, act_space)
        groups = param_groups(q, cfg.dqn.lr, cfg.encoder.backbone_lr, cfg.encoder.warmup)
        learner = DQNLearner(q, make_target(q), cfg.dqn, groups)
        prep = env_boundary(q.encoder)
        stored = np.concatenate([prep(f) for f in frames])  # every frame through the boundary
        nets[name] = (q, learner, prep, stored, cfg.dqn.batch_size)
    n_frames = len(frames) - 1
    out: list[dict] = []
    E = envs.num_envs
    stack = {k: np.stack(v) for k, v in (("a", actions), ("r", rewards), ("d", dones))}
    for r in range(rounds):
        idx_rng = np.random.default_rng(r)
        times: dict[str, list[float]] = {n: [] for n in ["env", *names]}
        # Variants alternate step by step, so a change in the machine's load hits all alike.
        for k in range(steps):
            t0 = time.perf_counter()
            envs.step(rng.integers(act_space.n, size=E))
            times["env"].append(time.perf_counter() - t0)
            pick = idx_rng.integers(n_frames * E, size=64)
            f = k % n_frames
            for name in names:
                q, learner, prep, stored, bs = nets[name]
                i = pick[:bs]
                t_, e_ = i // E % n_frames, i % E
                batch = Batch(
                    obs=torch.from_numpy(stored[i]),
                    actions=torch.from_numpy(stack["a"][t_, e_]).long(),
                    rewards=torch.from_numpy(stack["r"][t_, e_]).float(),
                    next_obs=torch.from_numpy(stored[np.minimum(i + E, len(stored) - 1)]),
                    terminated=torch.from_numpy(stack["d"][t_, e_]).float(),
                )
                t0 = time.perf_counter()
                obs = prep(frames[f + 1])  # the env boundary on the 8 new observations
                with torch.no_grad():
                    q(torch.from_numpy(obs)).argmax(1)  # acting
                learner.update(batch)
                times[name].append(time.perf_counter() - t0)
        # medians: robust to a load spike on the shared machine
        row = {n: statistics.median(v) for n, v in times.items()}
        out.append(row)
        print({k: round(v * 1000, 1) for k, v in row.items()}, "ms per vector step", flush=True)
    envs.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4000, help="env steps per run")
    ap.add_argument("--after", type=int, default=2000, help="env step where timing starts")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--log-freq", type=int, default=200, help="env steps between timing rows")
    default = "frozen,lora,lora_no_dedup,lora_plain"
    ap.add_argument("--only", default=default, help=f"comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--method", default="interleaved", choices=["interleaved", "loop"])
    ap.add_argument("--vector-steps", type=int, default=10, help="interleaved: per round")
    ap.add_argument("--transitions", type=int, default=4096, help="interleaved: filled first")
    add_result_args(ap)
    args = ap.parse_args()
    extra = [f"train.log_freq={args.log_freq}", f"dqn.learning_starts={args.after}"]
    name = "gotolocal" if args.only == default else "gotolocal_" + args.only.replace(",", "_")
    if args.smoke:
        args.steps, args.after, args.rounds = 48, 32, 1
        args.only = "frozen,lora"
        extra = ["dqn.learning_starts=32", "dqn.batch_size=8", "train.log_freq=8"]
    names = args.only.split(",")
    rounds: list[dict[str, float]] = []
    if args.method == "interleaved":
        if args.smoke:
            args.vector_steps, args.transitions, args.rounds = 2, 64, 1
        per_step = interleaved(names, args.rounds, args.vector_steps, args.transitions)
        # env steps/s of the loop: 8 env steps per vector step
        rounds = [{n: 8 / (r["env"] + r[n]) for n in names} for r in per_step]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds if args.method == "loop" else 0):
            row: dict[str, float] = {}
            for name in names:
                preset, over = VARIANTS[name]
                t0 = time.perf_counter()
                res = drlzero.train(
                    preset,
                    out=Path(tmp) / f"{name}-{r}",
                    overrides=[*QUIET, *extra, *over],
                    total_steps=args.steps,
                )
                row[name] = steps_per_second(res.run_dir, args.after)
                print(
                    f"round {r} {name}: {row[name]:.1f} env steps/s "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
            rounds.append(row)
    median = {n: statistics.median(r[n] for r in rounds) for n in names}
    ratios: dict[str, float] = {}
    if "frozen" in names:
        for n in names:
            if n != "frozen":
                ratios[f"{n}_vs_frozen"] = statistics.median(r[n] / r["frozen"] for r in rounds)
    print("| variant (multimodal GoToLocal) | env steps/s (median) | vs frozen + cache |")
    print("|---|---|---|")
    for n in names:
        rel = ratios.get(f"{n}_vs_frozen", 1.0 if n == "frozen" else float("nan"))
        print(f"| {n} | {median[n]:.1f} | {100 * rel:.0f}% |")
    payload = {
        "method": args.method,
        "seconds_per_vector_step": per_step if args.method == "interleaved" else None,
        "vector_steps_per_round": args.vector_steps,
        "steps": args.steps,
        "timed_from_step": args.after,
        "overrides": extra,
        "variants": {n: " ".join([VARIANTS[n][0], *VARIANTS[n][1]]) for n in names},
        "rounds": rounds,
        "median_sps": median,
        "ratios": ratios,
        "target_lora_vs_frozen": 0.30,
    }
    out_dir = out_dir_for(args)
    print("wrote", write_result("lm_finetune_throughput", name, payload, out_dir=out_dir))


if __name__ == "__main__":
    main()
