"""drlzero SAC vs Stable-Baselines3 SAC vs a CleanRL-style SAC loop on Pendulum-v1.

All three run the RL Zoo's Pendulum-v1 settings (read from the ``pendulum-sac`` preset, so every
side sees the same numbers): learning rate 1e-3 for actor, critics and alpha, batch 256,
buffer 1e6, learning_starts 100 (uniform random actions before), tau 0.005, gamma 0.99, one
gradient step per env step, the actor and alpha updated at every step, alpha autotuned from 1.0
towards -dim(A), [256, 256] ReLU MLPs for the actor and each of the twin critics, one env.

Timing: env steps per second over the training loop alone (drlzero's ``loop_time_s`` with no
periodic evaluation or checkpoint, SB3's ``learn()``, the CleanRL loop's own ``for``), each with
one torch thread, the libraries alternating seed by seed so machine noise hits all alike.
Return: the mean of ``--eval-episodes`` deterministic episodes (tanh of the mean) after the
budget, on the same seeded start states for every library.

Float mode: drlzero flushes subnormals to zero (``train.flush_denormal``, its default); the
peers run as their users get them (no flushing), and ``--libs ...,sb3-ftz`` adds an SB3 arm
with flushing on, to show how much of a gap that setting alone makes.

The CleanRL-style loop is written here after the structure of CleanRL's
``sac_continuous_action.py`` (one file, NumPy replay, tanh-squashed Gaussian with log-std
squashed into [-5, 2], actions rescaled by the Box bounds), with the shared settings above.

Usage:
    python benchmarks/sac_vs_sb3.py [--env pendulum|halfcheetah|pendulum-cleanrl] [--seeds 3]
        [--first-seed 0] [--steps 20000] [--eval-episodes 10]
        [--libs drlzero,sb3,sb3-ftz,cleanrl]
    python benchmarks/sac_vs_sb3.py --smoke   # 1 seed, 120 env steps (20 updates), 1 episode

``--env halfcheetah`` runs the ``halfcheetah-sac`` preset's settings (the Zoo's MuJoCo ones:
lr 3e-4, learning_starts 10000) on HalfCheetah-v5 instead (extra ``mujoco``).

``--env pendulum-cleanrl`` runs CleanRL's ``sac_continuous_action.py`` defaults on Pendulum-v1:
policy lr 3e-4, critic and alpha lr 1e-3, learning_starts 5000, delayed policy updates
(``policy_frequency`` 2: every second critic step, two actor and alpha steps), alpha autotuned
from 1.0 (log alpha starts at 0), batch 256, buffer 1e6, tau 0.005, gamma 0.99. SB3's SAC has no
delayed policy update, so that setting compares drlzero with the CleanRL-style loop only.

Stable-Baselines3 is the ``bench`` extra; without it the SB3 arm is skipped. Writes
``benchmarks/results/sac_vs_sb3/sac_vs_sb3.json`` (``sac_vs_sb3_halfcheetah.json``; or under
``--results-dir``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from _results import add_result_args, out_dir_for, peer_float_mode, write_result
from torch import nn

import drlzero
from drlzero.config import Config, load_config

SCRIPT = "sac_vs_sb3"
# --env: the preset whose settings every side runs, its env, overrides of the preset's settings,
# the settings' source (printed and saved) and whether SB3 can run them
SETTINGS: dict[str, tuple[str, str, list[str], str, bool]] = {
    "pendulum": ("pendulum-sac", "Pendulum-v1", [], "RL Zoo", True),
    "halfcheetah": ("halfcheetah-sac", "HalfCheetah-v5", [], "RL Zoo", True),
    "pendulum-cleanrl": (
        "pendulum-sac",
        "Pendulum-v1",
        [
            "sac.actor_lr=0.0003",
            "sac.critic_lr=0.001",
            "sac.alpha_lr=0.001",
            "sac.learning_starts=5000",
            "sac.policy_frequency=2",
            "sac.init_alpha=1.0",
            "sac.batch_size=256",
            "sac.buffer_size=1000000",
            "sac.tau=0.005",
            "sac.gamma=0.99",
        ],
        "CleanRL sac_continuous_action.py",
        False,
    ),
}
PRESET, ENV_ID, OVERRIDES, SOURCE, SB3_OK = SETTINGS["pendulum"]
# --smoke: 120 env steps, the first 100 random (the preset's learning_starts), so each arm makes
# 20 gradient updates; one 200-step evaluation episode
SMOKE_STEPS, SMOKE_EVAL_EPISODES = 120, 1
QUIET = [
    "train.progress=false",
    "train.tensorboard=false",
    "train.checkpoint_freq=0",
    "train.eval_freq=0",
    "train.eval_episodes=1",  # the loop's own final evaluation; ours below is separate
]


def preset(seed: int, steps: int) -> Config:
    return load_config(
        PRESET,
        overrides=[*OVERRIDES, *QUIET, f"train.seed={seed}", f"train.total_steps={steps}"],
    )


def deterministic_eval(act: Any, episodes: int, seed: int) -> float:
    """Mean return of ``act(obs) -> action`` over seeded episodes (the same for every library)."""
    env = gym.make(ENV_ID)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns))


# ------------------------------------------------------------------------------------ drlzero


def run_drlzero(seed: int, steps: int, episodes: int) -> dict[str, float]:
    cfg = preset(seed, steps)
    with tempfile.TemporaryDirectory() as tmp:
        result = drlzero.train(cfg, out=Path(tmp) / "run")
        agent = drlzero.load_agent(result.run_dir, checkpoint="last")
        ret = deterministic_eval(lambda o: agent.act(o[None])[0], episodes, 20_000 + seed)
    loop = result.loop_time_s or result.wall_time_s
    return {"sps": result.steps / loop, "loop_s": loop, "return": ret}


# ------------------------------------------------------------------------------------ SB3


def run_sb3(seed: int, steps: int, episodes: int, *, flush: bool = False) -> dict[str, float]:
    from stable_baselines3 import SAC

    peer_float_mode(flush)
    s = preset(seed, steps).sac
    model = SAC(
        "MlpPolicy",
        gym.make(ENV_ID),
        learning_rate=s.actor_lr,
        buffer_size=s.buffer_size,
        learning_starts=s.learning_starts,
        batch_size=s.batch_size,
        tau=s.tau,
        gamma=s.gamma,
        train_freq=s.train_freq,
        gradient_steps=s.gradient_steps,
        ent_coef=f"auto_{s.init_alpha}",
        target_update_interval=1,
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    loop = time.perf_counter() - t0
    ret = deterministic_eval(
        lambda o: model.predict(o, deterministic=True)[0], episodes, 20_000 + seed
    )
    return {"sps": steps / loop, "loop_s": loop, "return": ret}


# ------------------------------------------------------------------------------------ CleanRL


class _SoftQ(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + act_dim, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(torch.cat([x, a], 1)))
        return self.fc3(F.relu(self.fc2(h)))


class _Actor(nn.Module):
    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, space: gym.spaces.Box) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, 256)
        self.fc2 = nn.Linear(256, 256)
        n = int(space.shape[0])
        self.fc_mean = nn.Linear(256, n)
        self.fc_logstd = nn.Linear(256, n)
        self.register_buffer("scale", torch.tensor((space.high - space.low) / 2.0))
        self.register_buffer("bias", torch.tensor((space.high + space.low) / 2.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc2(F.relu(self.fc1(x))))
        log_std = torch.tanh(self.fc_logstd(h))  # squashed into [LOG_STD_MIN, LOG_STD_MAX]
        span = self.LOG_STD_MAX - self.LOG_STD_MIN
        return self.fc_mean(h), self.LOG_STD_MIN + 0.5 * span * (log_std + 1)

    def get_action(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, log_std = self(x)
        normal = torch.distributions.Normal(mean, log_std.exp())
        x_t = normal.rsample()
        y_t = torch.tanh(x_t)
        action = y_t * self.scale + self.bias
        log_prob = normal.log_prob(x_t) - torch.log(self.scale * (1 - y_t.pow(2)) + 1e-6)
        return action, log_prob.sum(1, keepdim=True), torch.tanh(mean) * self.scale + self.bias


def run_cleanrl(seed: int, steps: int, episodes: int) -> dict[str, float]:
    peer_float_mode(False)
    s = preset(seed, steps).sac
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    env = gym.make(ENV_ID)
    space = env.action_space
    space.seed(seed)  # the uniform warm-up actions
    obs_dim, act_dim = int(env.observation_space.shape[0]), int(space.shape[0])
    actor = _Actor(obs_dim, space)
    qf1, qf2 = _SoftQ(obs_dim, act_dim), _SoftQ(obs_dim, act_dim)
    qf1_t, qf2_t = _SoftQ(obs_dim, act_dim), _SoftQ(obs_dim, act_dim)
    qf1_t.load_state_dict(qf1.state_dict())
    qf2_t.load_state_dict(qf2.state_dict())
    q_opt = torch.optim.Adam([*qf1.parameters(), *qf2.parameters()], lr=s.critic_lr)
    a_opt = torch.optim.Adam(actor.parameters(), lr=s.actor_lr)
    target_entropy = -float(act_dim)
    log_alpha = torch.full((1,), float(np.log(s.init_alpha)), requires_grad=True)
    alpha = log_alpha.exp().item()
    al_opt = torch.optim.Adam([log_alpha], lr=s.alpha_lr)
    cap = min(s.buffer_size, steps)
    b_obs = np.zeros((cap, obs_dim), np.float32)
    b_next = np.zeros((cap, obs_dim), np.float32)
    b_act = np.zeros((cap, act_dim), np.float32)
    b_rew = np.zeros(cap, np.float32)
    b_term = np.zeros(cap, np.float32)
    obs, _ = env.reset(seed=seed)
    t0 = time.perf_counter()
    for step in range(steps):
        if step < s.learning_starts:
            action = space.sample()
        else:
            with torch.no_grad():
                action = actor.get_action(torch.as_tensor(obs[None], dtype=torch.float32))[0][0]
                action = action.numpy()
        next_obs, reward, term, trunc, _ = env.step(action)
        i = step % cap
        b_obs[i], b_next[i], b_act[i], b_rew[i], b_term[i] = obs, next_obs, action, reward, term
        obs = env.reset()[0] if term or trunc else next_obs
        if step >= s.learning_starts:
            idx = rng.integers(0, min(step + 1, cap), s.batch_size)
            o, no = torch.as_tensor(b_obs[idx]), torch.as_tensor(b_next[idx])
            a, r, d = torch.as_tensor(b_act[idx]), torch.as_tensor(b_rew[idx]), b_term[idx]
            with torch.no_grad():
                na, nlogp, _ = actor.get_action(no)
                min_q = torch.min(qf1_t(no, na), qf2_t(no, na)) - alpha * nlogp
                y = r + (1 - torch.as_tensor(d)) * s.gamma * min_q.view(-1)
            q1, q2 = qf1(o, a).view(-1), qf2(o, a).view(-1)
            q_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
            q_opt.zero_grad()
            q_loss.backward()
            q_opt.step()
            if step % s.policy_frequency == 0:
                for _ in range(s.policy_frequency):
                    pi, logp, _ = actor.get_action(o)
                    min_q_pi = torch.min(qf1(o, pi), qf2(o, pi))
                    loss = (alpha * logp - min_q_pi).mean()
                    a_opt.zero_grad()
                    loss.backward()
                    a_opt.step()
                    with torch.no_grad():
                        _, logp, _ = actor.get_action(o)
                    al_loss = (-log_alpha.exp() * (logp + target_entropy)).mean()
                    al_opt.zero_grad()
                    al_loss.backward()
                    al_opt.step()
                    alpha = log_alpha.exp().item()
            with torch.no_grad():
                for net, tgt in ((qf1, qf1_t), (qf2, qf2_t)):
                    for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                        tp.mul_(1 - s.tau).add_(p, alpha=s.tau)
    loop = time.perf_counter() - t0
    env.close()

    def act(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor.get_action(torch.as_tensor(o[None], dtype=torch.float32))[2][0].numpy()

    return {
        "sps": steps / loop,
        "loop_s": loop,
        "return": deterministic_eval(act, episodes, 20_000 + seed),
    }


def run_sb3_ftz(seed: int, steps: int, episodes: int) -> dict[str, float]:
    """SB3 with subnormals flushed to zero, as drlzero runs by default."""
    return run_sb3(seed, steps, episodes, flush=True)


RUNNERS = {
    "drlzero": run_drlzero,
    "sb3": run_sb3,
    "sb3-ftz": run_sb3_ftz,
    "cleanrl": run_cleanrl,
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--env", choices=sorted(SETTINGS), default="pendulum")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from this one up")
    ap.add_argument("--steps", type=int, default=20_000, help="env steps per run")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--libs", default="drlzero,sb3,cleanrl")
    add_result_args(ap)
    args = ap.parse_args()
    global PRESET, ENV_ID, OVERRIDES, SOURCE, SB3_OK
    PRESET, ENV_ID, OVERRIDES, SOURCE, SB3_OK = SETTINGS[args.env]
    if args.smoke:
        args.seeds, args.steps, args.eval_episodes = 1, SMOKE_STEPS, SMOKE_EVAL_EPISODES
    torch.set_num_threads(1)
    libs = args.libs.split(",")
    unknown = sorted(set(libs) - set(RUNNERS))
    if unknown:
        ap.error(f"--libs: unknown {', '.join(unknown)}; choose from {', '.join(RUNNERS)}")
    sb3_arms = [lib for lib in libs if lib.startswith("sb3")]
    if sb3_arms and not SB3_OK:
        print(f"SB3's SAC cannot run {SOURCE}'s settings (no delayed policy update): SB3 skipped")
        libs = [lib for lib in libs if lib not in sb3_arms]
    elif sb3_arms and importlib.util.find_spec("stable_baselines3") is None:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): SB3 arm skipped")
        libs = [lib for lib in libs if lib not in sb3_arms]
    rows: dict[str, list[dict[str, float]]] = {lib: [] for lib in libs}
    print(f"{ENV_ID}, {SOURCE} SAC settings, {args.steps} env steps, 1 torch thread")
    print(f"{'seed':>4} {'lib':>8} {'steps/s':>9} {'loop s':>8} {'return':>9}")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for lib in libs:
            r = RUNNERS[lib](seed, args.steps, args.eval_episodes)
            rows[lib].append({"seed": seed, **r})
            print(f"{seed:>4} {lib:>8} {r['sps']:9.1f} {r['loop_s']:8.1f} {r['return']:9.1f}")
    summary = {
        lib: {
            "median_sps": statistics.median(r["sps"] for r in rs),
            "median_return": statistics.median(r["return"] for r in rs),
            "mean_sps": statistics.fmean(r["sps"] for r in rs),
            "mean_return": statistics.fmean(r["return"] for r in rs),
        }
        for lib, rs in rows.items()
    }
    for lib, s in summary.items():
        print(
            f"{lib:>8}: median {s['median_sps']:.1f} steps/s, return {s['median_return']:.1f}; "
            f"mean {s['mean_sps']:.1f} steps/s, return {s['mean_return']:.1f}"
        )
    report = {
        "env": ENV_ID,
        "steps": args.steps,
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "eval_episodes": args.eval_episodes,
        "preset": PRESET,
        "source": SOURCE,
        "overrides": OVERRIDES,
        "settings": load_config(PRESET, overrides=OVERRIDES).to_dict()["sac"],
        "runs": rows,
        "summary": summary,
    }
    name = SCRIPT if args.env == "pendulum" else f"{SCRIPT}_{args.env}"
    if args.first_seed:
        name += f"_from_seed{args.first_seed}"
    print("wrote", write_result(SCRIPT, name, report, out_dir=out_dir_for(args)))


if __name__ == "__main__":
    main()
