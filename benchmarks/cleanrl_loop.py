"""drlzero DQN vs a CleanRL-style DQN loop on CartPole-v1, side by side in one run.

CleanRL's ``dqn.py`` is the peer most users copy. Its PyPI package is stale (it pins gymnasium
0.29), so this script reproduces its training loop step for step on Gymnasium 1.x: a one-env
``SyncVectorEnv`` with episode statistics, ``random.random() < epsilon`` exploration that skips
the forward pass, a forward with autograd on when acting greedily (as in the script), Stable-
Baselines3's ``ReplayBuffer`` (``handle_timeout_termination=False``), one update every
``train_frequency`` steps with an MSE loss on the taken action, a hard target copy every 500
steps through the same ``param.data.copy_`` loop, and TensorBoard scalars every 100 steps. The
only change: CleanRL prints SPS to stdout every 100 steps; we do not print.

Hyperparameters (CleanRL's defaults): 500k steps, Adam lr 2.5e-4, buffer 10k, batch 128, gamma
0.99, 120-84 MLP, epsilon 1 -> 0.05 over half the run, learning starts at 10k, train every 10
steps, target every 500. drlzero runs the ``cartpole-dqn-cleanrl`` preset, which holds the same
numbers, with its default logging (CSV, TensorBoard, checkpoints).

Table rows:
- ``cleanrl``: the reproduced loop, one env.
- ``drlzero``: the preset, one env.
- ``drlzero-8env`` (with ``--envs8``): 8 sync envs with the same updates per env step (train every
  5 vector steps = 40 env steps, 4 gradient steps each = 1 update per 10 env steps).
- ``drlzero-compiled`` (with ``--compile``): the one-env preset with ``train.compile=true``.

Each run uses one torch thread; runs alternate between the rows, seed by seed, so machine noise
hits all alike. Steps per second count env steps over the training loop's wall time (for drlzero
``TrainResult.loop_time_s``: its periodic checkpoints and logs count, its final evaluation,
checkpoint and plot do not, as the CleanRL-style timer stops when its loop ends; the final
greedy evaluation reported is 10 episodes on fresh seeds, outside the timing).

Usage:
    python benchmarks/cleanrl_loop.py [--steps 500000] [--seeds 3] [--envs8] [--compile]

The CleanRL-style loop uses Stable-Baselines3's ``ReplayBuffer`` (the ``bench`` extra); without
it that row is skipped. Raw per-seed results: ``benchmarks/results/cleanrl_loop/cleanrl_loop.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from _results import add_result_args, out_dir_for, peer_float_mode, write_result
from gymnasium.vector import AutoresetMode
from torch import nn

import drlzero
from drlzero.config import load_config
from drlzero.train.evaluate import evaluate_policy

PRESET = "cartpole-dqn-cleanrl"


class CleanRLQNetwork(nn.Module):
    """CleanRL's CartPole Q-network: obs -> 120 -> 84 -> actions."""

    def __init__(self, obs_dim: int, num_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(obs_dim, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_actions),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def run_cleanrl(seed: int, steps: int, overrides: list[str]) -> dict[str, float]:
    """CleanRL's dqn.py loop (see the module docstring for the one deviation)."""
    from stable_baselines3.common.buffers import ReplayBuffer
    from torch.utils.tensorboard import SummaryWriter

    peer_float_mode()
    cfg = load_config(PRESET, overrides=overrides)  # read the shared numbers from the preset
    d, e = cfg.dqn, cfg.exploration
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device("cpu")

    def make_env() -> Callable[[], gym.Env]:
        def thunk() -> gym.Env:
            env = gym.make("CartPole-v1")
            env = gym.wrappers.RecordEpisodeStatistics(env)
            env.action_space.seed(seed)
            return env

        return thunk

    # Gymnasium 1.x: SAME_STEP autoreset gives the pre-1.0 semantics CleanRL was written for.
    envs = gym.vector.SyncVectorEnv([make_env()], autoreset_mode=AutoresetMode.SAME_STEP)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_act = int(envs.single_action_space.n)
    q_network = CleanRLQNetwork(obs_dim, n_act).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=d.lr)
    target_network = CleanRLQNetwork(obs_dim, n_act).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(
        cfg.replay.buffer_size,
        envs.single_observation_space,
        envs.single_action_space,
        device,
        handle_timeout_termination=False,
    )
    logdir = tempfile.mkdtemp(prefix="cleanrl-")
    writer = SummaryWriter(logdir)
    returns: list[float] = []
    start_time = time.perf_counter()
    obs, _ = envs.reset(seed=seed)
    for global_step in range(steps):
        epsilon = linear_schedule(e.start, e.end, e.fraction * steps, global_step)
        if random.random() < epsilon:
            actions = np.array([envs.single_action_space.sample() for _ in range(envs.num_envs)])
        else:
            q_values = q_network(torch.Tensor(obs).to(device))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        if "episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                returns.append(float(infos["episode"]["r"][i]))
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)
        real_next_obs = next_obs.copy()
        for idx, trunc in enumerate(truncations):
            if trunc:
                real_next_obs[idx] = infos["final_obs"][idx]
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)
        obs = next_obs
        if global_step > d.learning_starts:
            if global_step % d.train_freq == 0:
                data = rb.sample(d.batch_size)
                with torch.no_grad():
                    target_max, _ = target_network(data.next_observations).max(dim=1)
                    td_target = data.rewards.flatten() + d.gamma * target_max * (
                        1 - data.dones.flatten()
                    )
                old_val = q_network(data.observations).gather(1, data.actions).squeeze()
                loss = F.mse_loss(td_target, old_val)
                if global_step % 100 == 0:
                    writer.add_scalar("losses/td_loss", loss, global_step)
                    writer.add_scalar("losses/q_values", old_val.mean().item(), global_step)
                    sps = int(global_step / (time.perf_counter() - start_time))
                    writer.add_scalar("charts/SPS", sps, global_step)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if global_step % d.target_update_interval == 0:
                for tp, qp in zip(target_network.parameters(), q_network.parameters(), strict=True):
                    tp.data.copy_(d.tau * qp.data + (1.0 - d.tau) * tp.data)
    wall = time.perf_counter() - start_time
    envs.close()
    writer.close()

    def greedy(obs_BO: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return q_network(torch.as_tensor(obs_BO, dtype=torch.float32)).argmax(1).numpy()

    # drlzero's evaluation code and episodes (what drlzero.evaluate(seed=7000) runs)
    final = evaluate_policy(greedy, cfg.env, episodes=10, seed=7_000)["mean_return"]
    return {"sps": steps / wall, "wall_s": wall, "final": final}


def run_drlzero(seed: int, steps: int, extra: list[str]) -> dict[str, float]:
    cfg = load_config(
        PRESET,
        overrides=[
            "train.progress=false",
            f"train.total_steps={steps}",
            f"train.seed={seed}",
            "train.threads=1",
            *extra,
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = drlzero.train(cfg, out=Path(tmp) / "run")
        final = drlzero.evaluate(result.run_dir, episodes=10, seed=7_000, write=False)
    # the training loop's time, as for the CleanRL-style loop (whose timer stops when its loop
    # ends): drlzero's final evaluation, checkpoint and plot come after it
    loop_s = result.loop_time_s or result.wall_time_s
    return {"sps": result.steps / loop_s, "wall_s": loop_s, "final": final["mean_return"]}


EIGHT_ENVS = ["env.num_envs=8", "dqn.train_freq=5", "dqn.gradient_steps=4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--envs8", action="store_true", help="add the 8-env drlzero row")
    ap.add_argument("--compile", action="store_true", help="add the compiled drlzero row")
    add_result_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(1)
    # smoke: a few hundred steps with learning from step 200, so every row trains a little
    common = ["dqn.learning_starts=200"] if args.smoke else []
    if args.smoke:
        args.steps, args.seeds, args.envs8 = 600, 1, True

    rows: dict[str, Callable[[int], dict[str, float]]] = {}
    if importlib.util.find_spec("stable_baselines3") is not None:
        rows["cleanrl"] = lambda s: run_cleanrl(s, args.steps, common)
    else:
        print("stable-baselines3 (its ReplayBuffer) is not installed: the cleanrl row is skipped")
    rows["drlzero"] = lambda s: run_drlzero(s, args.steps, common)
    if args.envs8:
        rows["drlzero-8env"] = lambda s: run_drlzero(s, args.steps, [*common, *EIGHT_ENVS])
    if args.compile:
        rows["drlzero-compiled"] = lambda s: run_drlzero(
            s, args.steps, [*common, "train.compile=true"]
        )
    results: dict[str, list[dict[str, float]]] = {k: [] for k in rows}
    for seed in range(1, args.seeds + 1):
        for name, fn in rows.items():
            r = fn(seed)
            results[name].append(r)
            print(
                f"seed {seed} {name:<17} {r['sps']:8.0f} steps/s  {r['wall_s']:7.1f} s  "
                f"final greedy {r['final']:6.1f}",
                flush=True,
            )

    medians = {name: statistics.median(r["sps"] for r in rs) for name, rs in results.items()}
    base = medians.get("cleanrl", math.nan)
    print(f"\nCartPole-v1, {args.steps} steps, {args.seeds} seeds, CleanRL hyperparameters")
    print(f"{'loop':<17} {'median steps/s':>15} {'x cleanrl':>10} {'finals (greedy, 10 ep)':>26}")
    for name, rs in results.items():
        finals = " / ".join(f"{r['final']:.0f}" for r in rs)
        print(f"{name:<17} {medians[name]:15.0f} {medians[name] / base:10.2f} {finals:>26}")
    payload = {
        "preset": PRESET,
        "steps": args.steps,
        "seeds": list(range(1, args.seeds + 1)),
        "overrides": common,
        "median_sps": medians,
        "runs": results,
    }
    print("wrote", write_result("cleanrl_loop", "cleanrl_loop", payload, out_dir=out_dir_for(args)))


if __name__ == "__main__":
    main()
