"""drlzero PPO vs Stable-Baselines3 PPO vs a CleanRL-style PPO loop, same settings, side by side.

Settings (``--env``): the RL Zoo's PPO hyperparameters for CartPole-v1 (8 envs x 32 steps,
batch 256, 20 epochs, gamma 0.98, lambda 0.8, no entropy bonus, lr 1e-3 annealed linearly),
CleanRL ``ppo.py``'s defaults on CartPole-v1 (``cartpole-cleanrl``: the ``cartpole-ppo`` preset
without its value clipping) and for LunarLander-v3 (the ``lunarlander-ppo`` preset: 16 envs x
1024 steps, batch 64, 4 epochs, gamma 0.999, lambda 0.98, ent 0.01, lr 3e-4). All three sides
use the same env, budget,
network (separate 64-64 tanh MLPs for actor and critic, orthogonal init), Adam eps 1e-5,
per-minibatch advantage normalisation, no value clipping, gradient-norm clip 0.5, and a
constant clip range 0.2 (the Zoo anneals CartPole's; SB3 could, the others do not). SB3's
value loss is ``vf_coef * mean((V - R)^2)`` while drlzero's and CleanRL's carry a factor 0.5,
so drlzero and the CleanRL loop get twice SB3's ``vf_coef``: the three objectives are equal.

Timing: env steps / wall time of the training loop alone (drlzero ``loop_time_s``, SB3
``learn()``, the CleanRL loop's own loop), one torch thread each, no periodic evaluation;
then one greedy evaluation of 10 episodes on the same seeds for all three ("return at the same
budget"). Runs alternate between the libraries seed by seed, so machine noise hits all alike.

The CleanRL-style loop follows ``cleanrl/ppo.py``'s structure (written here, not copied): a
Gymnasium 1.x SyncVectorEnv in SAME_STEP autoreset, and, as CleanRL does, ``done = terminated
or truncated`` with no bootstrap of truncated episodes (drlzero and SB3 bootstrap them).

Usage:
    python benchmarks/ppo_vs_sb3.py [--env cartpole|lunarlander|both] [--seeds 3] [--steps N]
    python benchmarks/ppo_vs_sb3.py --env cartpole --seeds 1 --steps 4096   # a quick check
    python benchmarks/ppo_vs_sb3.py --smoke   # CartPole, 1 seed, 512 env steps, 2 eval episodes

Stable-Baselines3 is the ``bench`` extra; without it the SB3 arm is skipped. Writes
``benchmarks/results/ppo_vs_sb3/<env>.json`` (per-run rows and medians).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _results import add_result_args, out_dir_for, peer_float_mode, write_result
from torch import nn
from torch.distributions import Categorical

import drlzero
from drlzero.config import load_config

SCRIPT = "ppo_vs_sb3"
QUIET = ["train.progress=false", "train.tensorboard=false", "train.checkpoint_freq=0"]
EVAL_EPISODES = 10
# --smoke: two CartPole iterations of 8 envs x 32 steps (40 updates of 20 epochs x 1 minibatch)
SMOKE_STEPS, SMOKE_EVAL_EPISODES = 512, 2


@dataclass(frozen=True)
class Setting:
    """One benchmark setting; ``vf_coef`` is SB3's (drlzero and CleanRL get twice it)."""

    env_id: str
    num_envs: int
    n_steps: int
    batch_size: int
    n_epochs: int
    gamma: float
    gae_lambda: float
    ent_coef: float
    vf_coef: float
    lr: float
    anneal_lr: bool
    total_steps: int
    clip: float = 0.2
    max_grad_norm: float = 0.5

    @property
    def num_minibatches(self) -> int:
        return self.num_envs * self.n_steps // self.batch_size


SETTINGS = {
    "cartpole": Setting("CartPole-v1", 8, 32, 256, 20, 0.98, 0.8, 0.0, 0.5, 1e-3, True, 100_000),
    # CleanRL ppo.py's defaults (the cartpole-ppo preset): 4 envs x 128 steps, 4 minibatches,
    # 4 epochs, gamma 0.99, lambda 0.95, ent 0.01, vf 0.5 on 0.5 (V - R)^2 (SB3's 0.25), lr 2.5e-4
    # annealed, 500k steps; value clipping off on all sides (SB3's clip_range_vf is another loss)
    "cartpole-cleanrl": Setting(
        "CartPole-v1", 4, 128, 128, 4, 0.99, 0.95, 0.01, 0.25, 2.5e-4, True, 500_000
    ),
    "lunarlander": Setting(
        "LunarLander-v3", 16, 1024, 64, 4, 0.999, 0.98, 0.01, 0.5, 3e-4, False, 1_000_000
    ),
}


def greedy_eval(act: Any, env_id: str, seed: int, episodes: int = EVAL_EPISODES) -> float:
    """Mean return of ``act(obs) -> action`` over ``episodes`` episodes seeded seed, seed+1..."""
    env = gym.make(env_id)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(int(act(obs)))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns))


# ---------------------------------------------------------------------------------------------
# drlzero


def run_drlzero(
    s: Setting, seed: int, steps: int, episodes: int = EVAL_EPISODES
) -> dict[str, float]:
    overrides = [
        *QUIET,
        "algo=ppo",
        f"env.id={s.env_id}",
        f"env.num_envs={s.num_envs}",
        "encoder.name=mlp",
        "encoder.hidden=[64,64]",
        "encoder.activation=tanh",
        f"ppo.n_steps={s.n_steps}",
        f"ppo.num_minibatches={s.num_minibatches}",
        f"ppo.n_epochs={s.n_epochs}",
        f"ppo.gamma={s.gamma}",
        f"ppo.gae_lambda={s.gae_lambda}",
        f"ppo.ent_coef={s.ent_coef}",
        f"ppo.vf_coef={2 * s.vf_coef}",
        f"ppo.lr={s.lr}",
        f"ppo.anneal_lr={str(s.anneal_lr).lower()}",
        f"ppo.clip_coef={s.clip}",
        "ppo.clip_vloss=false",
        f"ppo.max_grad_norm={s.max_grad_norm}",
        "ppo.shared_encoder=false",
        "train.eval_freq=0",
        "train.eval_episodes=1",
        "train.device=cpu",
        f"train.seed={seed}",
        f"train.total_steps={steps}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        result = drlzero.train(load_config(None, overrides=overrides), out=Path(tmp) / "run")
        agent = drlzero.load_agent(result.run_dir, checkpoint="last")
        final = greedy_eval(
            lambda o: agent.act(np.asarray(o)[None])[0], s.env_id, 20_000 + seed, episodes
        )
    loop = result.loop_time_s or result.wall_time_s
    return {"steps": result.steps, "loop_s": loop, "sps": result.steps / loop, "final_eval": final}


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3


def run_sb3(s: Setting, seed: int, steps: int, episodes: int = EVAL_EPISODES) -> dict[str, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    peer_float_mode()
    envs = make_vec_env(s.env_id, n_envs=s.num_envs, seed=seed)
    lr: Any = (lambda progress: progress * s.lr) if s.anneal_lr else s.lr
    model = PPO(
        "MlpPolicy",
        envs,
        learning_rate=lr,
        n_steps=s.n_steps,
        batch_size=s.batch_size,
        n_epochs=s.n_epochs,
        gamma=s.gamma,
        gae_lambda=s.gae_lambda,
        clip_range=s.clip,
        ent_coef=s.ent_coef,
        vf_coef=s.vf_coef,
        max_grad_norm=s.max_grad_norm,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": nn.Tanh},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    loop = time.perf_counter() - t0
    final = greedy_eval(
        lambda o: model.predict(o, deterministic=True)[0], s.env_id, 20_000 + seed, episodes
    )
    envs.close()
    done = model.num_timesteps
    return {"steps": done, "loop_s": loop, "sps": done / loop, "final_eval": final}


# ---------------------------------------------------------------------------------------------
# A CleanRL-style single-file PPO loop


def _layer(inp: int, out: int, gain: float) -> nn.Linear:
    layer = nn.Linear(inp, out)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class CleanAgent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        g = float(np.sqrt(2))
        self.critic = nn.Sequential(
            _layer(obs_dim, 64, g), nn.Tanh(), _layer(64, 64, g), nn.Tanh(), _layer(64, 1, 1.0)
        )
        self.actor = nn.Sequential(
            _layer(obs_dim, 64, g),
            nn.Tanh(),
            _layer(64, 64, g),
            nn.Tanh(),
            _layer(64, n_actions, 0.01),
        )


def run_cleanrl(
    s: Setting, seed: int, steps: int, episodes: int = EVAL_EPISODES
) -> dict[str, float]:
    peer_float_mode()
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(s.env_id) for _ in range(s.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    E, T = s.num_envs, s.n_steps
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = CleanAgent(obs_dim, int(envs.single_action_space.n))  # type: ignore[attr-defined]
    opt = torch.optim.Adam(agent.parameters(), lr=s.lr, eps=1e-5)
    obs_b = torch.zeros((T, E, obs_dim))
    act_b = torch.zeros((T, E), dtype=torch.long)
    logp_b, rew_b, done_b, val_b = (torch.zeros((T, E)) for _ in range(4))
    batch = T * E
    iterations = max(steps // batch, 1)
    mb = s.batch_size
    next_obs = torch.tensor(envs.reset(seed=seed)[0], dtype=torch.float32)
    next_done = torch.zeros(E)
    t0 = time.perf_counter()
    for it in range(iterations):
        if s.anneal_lr:
            opt.param_groups[0]["lr"] = (1.0 - it / iterations) * s.lr
        for t in range(T):
            obs_b[t], done_b[t] = next_obs, next_done
            with torch.no_grad():
                dist = Categorical(logits=agent.actor(next_obs))
                a = dist.sample()
                val_b[t] = agent.critic(next_obs).flatten()
            act_b[t], logp_b[t] = a, dist.log_prob(a)
            o, r, term, trunc, _ = envs.step(a.numpy())
            rew_b[t] = torch.as_tensor(r, dtype=torch.float32)
            next_obs = torch.tensor(o, dtype=torch.float32)
            next_done = torch.as_tensor(term | trunc, dtype=torch.float32)
        with torch.no_grad():  # GAE; done_b[t] says s_t began a new episode
            next_v = agent.critic(next_obs).flatten()
            adv = torch.zeros((T, E))
            last = torch.zeros(E)
            for t in reversed(range(T)):
                nonterm = 1.0 - (next_done if t == T - 1 else done_b[t + 1])
                nv = next_v if t == T - 1 else val_b[t + 1]
                delta = rew_b[t] + s.gamma * nv * nonterm - val_b[t]
                last = delta + s.gamma * s.gae_lambda * nonterm * last
                adv[t] = last
            ret = adv + val_b
        f_obs, f_act, f_logp = obs_b.reshape(batch, -1), act_b.reshape(-1), logp_b.reshape(-1)
        f_adv, f_ret = adv.reshape(-1), ret.reshape(-1)
        for _ in range(s.n_epochs):
            perm = torch.randperm(batch)
            for i in range(0, batch, mb):
                idx = perm[i : i + mb]
                dist = Categorical(logits=agent.actor(f_obs[idx]))
                ratio = (dist.log_prob(f_act[idx]) - f_logp[idx]).exp()
                a_n = (f_adv[idx] - f_adv[idx].mean()) / (f_adv[idx].std() + 1e-8)
                pg = torch.max(-a_n * ratio, -a_n * ratio.clamp(1 - s.clip, 1 + s.clip)).mean()
                v_loss = 0.5 * ((agent.critic(f_obs[idx]).flatten() - f_ret[idx]) ** 2).mean()
                loss = pg - s.ent_coef * dist.entropy().mean() + 2 * s.vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), s.max_grad_norm)
                opt.step()
    loop = time.perf_counter() - t0
    envs.close()

    def act(o: np.ndarray) -> int:
        with torch.no_grad():
            return int(agent.actor(torch.as_tensor(o, dtype=torch.float32)).argmax())

    final = greedy_eval(act, s.env_id, 20_000 + seed, episodes)
    done = iterations * batch
    return {"steps": done, "loop_s": loop, "sps": done / loop, "final_eval": final}


# ---------------------------------------------------------------------------------------------

RUNNERS = {"drlzero": run_drlzero, "sb3": run_sb3, "cleanrl": run_cleanrl}


def bench(
    name: str,
    seeds: int,
    steps: int | None,
    episodes: int = EVAL_EPISODES,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every available library on setting ``name`` and write ``ppo_vs_sb3/<name>.json``.

    Args:
        name: A key of :data:`SETTINGS`.
        seeds: Seeds 0..seeds-1, the libraries alternating within each seed.
        steps: Env steps per run (``None``: the setting's RL Zoo budget).
        episodes: Greedy evaluation episodes per run after the budget.
        out_dir: The results root for :func:`write_result` (``None``: its default).

    Returns:
        The payload written.
    """
    s = SETTINGS[name]
    budget = steps or s.total_steps
    runners = dict(RUNNERS)
    if importlib.util.find_spec("stable_baselines3") is None:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): SB3 arm skipped")
        del runners["sb3"]
    print(f"{name}: {s.env_id}, {budget} env steps, RL Zoo PPO settings, 1 torch thread")
    print(f"{'seed':>4} {'lib':>8} {'steps/s':>9} {'loop s':>8} {'return':>8}")
    rows: dict[str, list[dict[str, float]]] = {lib: [] for lib in runners}
    for seed in range(seeds):
        for lib, fn in runners.items():
            r = fn(s, seed, budget, episodes)
            rows[lib].append(r)
            print(
                f"{seed:>4} {lib:>8} {r['sps']:9.0f} {r['loop_s']:8.1f} {r['final_eval']:8.1f}",
                flush=True,
            )
    medians = {
        lib: {k: statistics.median(r[k] for r in rs) for k in ("sps", "final_eval")}
        for lib, rs in rows.items()
    }
    for lib, m in medians.items():
        print(f"median {lib:>8}: {m['sps']:7.0f} steps/s, return {m['final_eval']:.1f}")
    out = {"setting": name, "env_id": s.env_id, "budget": budget, "seeds": seeds}
    out.update({"eval_episodes": episodes, "config": s.__dict__})
    out.update({"runs": rows, "medians": medians})
    print(f"wrote {write_result(SCRIPT, name, out, out_dir=out_dir)}\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--env", choices=[*SETTINGS, "both"], default="both")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="env steps (default: the Zoo's)")
    add_result_args(ap)
    args = ap.parse_args()
    episodes = EVAL_EPISODES
    if args.smoke:
        args.env, args.seeds, args.steps = "cartpole", 1, SMOKE_STEPS
        episodes = SMOKE_EVAL_EPISODES
    torch.set_num_threads(1)
    for name in ("cartpole", "lunarlander") if args.env == "both" else (args.env,):
        bench(name, args.seeds, args.steps, episodes, out_dir_for(args))


if __name__ == "__main__":
    main()
