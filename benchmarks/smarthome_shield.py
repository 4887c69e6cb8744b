"""The house-rule shield on SmartHome: masked vs unmasked DQN, same steps and seeds.

Trains ``smarthome-dqn`` (the policy ignores the rules) and ``smarthome-dqn-masked`` (the same
settings with ``env.action_mask=info``: it acts, learns and is evaluated among the allowed
actions only) for each seed, then runs greedy episodes of each run's best checkpoint on the same
evaluation days and reports the mean return (EUR/day) and the house-rule violations per episode
(the env's ``rule_violations`` on the final step; see ``drlzero.envs.scenarios.smart_home``).

Target: the masked policy breaks no rule, at a mean return within 5% of the unmasked one.

Usage (the preset budget, 150k env steps per run, six runs)::

    python benchmarks/smarthome_shield.py
    python benchmarks/smarthome_shield.py --steps 20000 --seeds 0,1,2   # a smaller budget
    python benchmarks/smarthome_shield.py --smoke   # seed 0, 300 env steps, 1 episode per run

Writes ``benchmarks/results/smarthome_shield/steps<N>.json`` (the report under ``result``) and
prints it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import add_result_args, out_dir_for, write_result

import drlzero
from drlzero.config import load_config
from drlzero.envs import make_vec_env
from drlzero.masks import read_mask

VARIANTS = {"unmasked": "smarthome-dqn", "masked": "smarthome-dqn-masked"}
EVAL_SEED = 20_000  # what `drlzero eval` uses for a seed-0 run; training evals use 10_000+
SCRIPT = "smarthome_shield"
# --smoke: 300 env steps (about three 96-step days) with learning from step 100, so both variants
# make 100 gradient updates; the loop's own final evaluation and ours play one day each
SMOKE_STEPS = 300
SMOKE_OVERRIDES = ["dqn.learning_starts=100", "train.eval_episodes=1"]


def greedy_episodes(run_dir: Path, episodes: int, seed: int, masked: bool) -> dict[str, Any]:
    """Greedy episodes of a run's best checkpoint: returns and rule violations per episode."""
    agent = drlzero.load_agent(run_dir)
    cfg = agent.config
    n = min(episodes, 10)
    envs = make_vec_env(cfg.env, num_envs=n, training=False)
    num_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    done_count = np.zeros(n, dtype=int)
    ep_ret = np.zeros(n)
    returns: list[float] = []
    violations: list[int] = []
    obs, info = envs.reset(seed=seed)
    while (done_count < quota).any():
        mask = read_mask(info, n, num_actions) if masked else None
        obs, reward, term, trunc, info = envs.step(agent.act(obs, mask))
        ep_ret += reward
        for i in np.flatnonzero(term | trunc):
            if done_count[i] < quota[i]:
                returns.append(float(ep_ret[i]))
                violations.append(int(info["final_info"]["rule_violations"][i]))
            done_count[i] += 1
            ep_ret[i] = 0.0
    envs.close()
    return {
        "mean_return": float(np.mean(returns)),
        "violations_per_episode": float(np.mean(violations)),
        "episodes_with_violations": int(np.count_nonzero(violations)),
        "episodes": len(returns),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (preset's)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--episodes", type=int, default=30, help="greedy episodes per run")
    add_result_args(parser)
    args = parser.parse_args()
    extra: list[str] = []
    if args.smoke:
        args.steps, args.seeds, args.episodes = SMOKE_STEPS, "0", 1
        extra = SMOKE_OVERRIDES
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give comma-separated integers, e.g. 0,1,2")
    steps = args.steps or load_config(VARIANTS["masked"]).train.total_steps
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="smarthome-shield-") as tmp:
        for seed in seeds:
            for variant, preset in VARIANTS.items():
                t0 = time.perf_counter()
                result = drlzero.train(
                    preset,
                    out=Path(tmp) / f"{variant}-s{seed}",
                    overrides=[
                        f"train.seed={seed}",
                        f"train.total_steps={steps}",
                        "train.progress=false",
                        "train.tensorboard=false",
                        "train.threads=1",
                        *extra,
                    ],
                )
                ev = greedy_episodes(result.run_dir, args.episodes, EVAL_SEED, variant == "masked")
                ev.update(seed=seed, train_s=round(time.perf_counter() - t0, 1))
                runs[variant].append(ev)
                print(variant, json.dumps(ev), flush=True)

    def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
        ret = [r["mean_return"] for r in rows]
        return {
            "mean_return": float(np.mean(ret)),
            "std_return_over_seeds": float(np.std(ret)),
            "violations_per_episode": float(np.mean([r["violations_per_episode"] for r in rows])),
        }

    s_masked, s_plain = summary(runs["masked"]), summary(runs["unmasked"])
    gap = (s_plain["mean_return"] - s_masked["mean_return"]) / abs(s_plain["mean_return"])
    report = {
        "env": "drlzero/SmartHome-v0",
        "steps_per_run": steps,
        "seeds": seeds,
        "eval_episodes_per_run": args.episodes,
        "eval_seed": EVAL_SEED,
        "overrides": extra,
        "masked": s_masked,
        "unmasked": s_plain,
        # > 0: the masked policy's days cost that fraction more than the unmasked one's
        "return_shortfall_vs_unmasked": float(gap),
        "target_met": bool(s_masked["violations_per_episode"] == 0.0 and gap <= 0.05),
        "runs": runs,
    }
    path = write_result(SCRIPT, f"steps{steps}", report, out_dir=out_dir_for(args))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
