"""The ``drlzero`` command line: parse, validate, call one library function.

User errors exit with code 2 and one line on stderr; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import NoReturn

from drlzero.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"drlzero: error: {message} (see '{self.prog} --help')\n")


def _keys_epilog() -> str:
    from drlzero.config import all_keys

    lines = ["config keys (set with key=value, e.g. dqn.lr=0.001 train.seed=3):"]
    for key, tp, default, doc in all_keys():
        lines.append(f"  {key:<30} {doc} [{tp}, default {default!r}]")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="drlzero", description="Deep RL on PyTorch 2 with pretrained encoders.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "train",
        help="train an agent from a preset or YAML file",
        epilog=_keys_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("preset", nargs="?", help="preset name ('drlzero list') or YAML file")
    t.add_argument("overrides", nargs="*", help="section.key=value overrides")
    t.add_argument("--env", help="environment id (env.id)")
    t.add_argument("--algo", help="dqn | qlearning | sarsa | expected_sarsa")
    t.add_argument("--total-steps", type=int, help="env steps to train (train.total_steps)")
    t.add_argument("--seed", type=int, help="random seed (train.seed)")
    t.add_argument("--device", help="auto | cpu | cuda | mps (train.device)")
    t.add_argument("--out", help="run directory to create (default runs/NAME-sSEED-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no live progress bar")
    t.add_argument(
        "--distributed", choices=["apex"], help="Ape-X DQN on Ray (distributed.mode; drlzero[ray])"
    )
    t.add_argument("--actors", type=int, help="Ape-X actor processes (distributed.actors)")
    t.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray)")

    s = sub.add_parser("sweep", help="train seeds x a grid of settings in parallel on Ray")
    s.add_argument("preset", help="preset name or YAML file")
    s.add_argument("overrides", nargs="*", help="section.key=value overrides for every trial")
    s.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 1,2,3")
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and its values; repeat for a product grid",
    )
    s.add_argument("--total-steps", type=int, help="env steps per trial (train.total_steps)")
    s.add_argument("--out", help="sweep directory (default runs/sweep-NAME-TIME)")
    s.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray)")

    e = sub.add_parser("eval", help="evaluate a trained run greedily, or a baseline controller")
    e.add_argument("run_dir", nargs="?", help="run directory (not with --baseline)")
    e.add_argument("--baseline", metavar="NAME", help="evaluate this hand-written controller")
    e.add_argument("--env", help="with --baseline: env id or preset name")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, help="evaluation seed (default: derived from the run's)")
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])
    e.add_argument(
        "--paraphrases",
        metavar="FILE",
        help="JSON mission template -> paraphrases; adds paraphrase_success_rate",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    r = sub.add_parser("record", help="render greedy episodes of a run to a GIF")
    r.add_argument("run_dir")
    r.add_argument("--episodes", type=int, default=1)
    r.add_argument("--out", help="output file (default RUN_DIR/episodes.gif)")

    sub.add_parser("list", help="presets, algorithms, encoders, explorers and environments")
    return p


def _train(args: argparse.Namespace) -> int:
    from drlzero.api import summary_of, train
    from drlzero.config import load_config

    if args.resume:
        if args.preset or args.overrides or args.env or args.algo or args.seed is not None:
            raise UserError(
                "--resume continues a run with its saved config; only --total-steps may change"
            )
        if args.distributed or args.actors is not None:
            raise UserError("--resume keeps the run's distributed settings; drop --distributed")
        result = train(
            resume=args.resume, total_steps=args.total_steps, ray_address=args.ray_address
        )
    else:
        if args.preset is None:
            raise UserError("train needs a preset or YAML file, e.g. 'drlzero train cartpole-dqn'")
        overrides = list(args.overrides)
        if "=" in args.preset:  # ``drlzero train key=value`` with no preset
            overrides.insert(0, args.preset)
            args.preset = None
        for flag, key in (
            ("env", "env.id"),
            ("algo", "algo"),
            ("total_steps", "train.total_steps"),
            ("seed", "train.seed"),
            ("device", "train.device"),
        ):
            value = getattr(args, flag)
            if value is not None:
                overrides.append(f"{key}={value}")
        if args.no_progress:
            overrides.append("train.progress=false")
        if args.actors is not None and args.distributed is None:
            raise UserError("--actors needs --distributed apex")
        if args.distributed is not None:
            overrides.append(f"distributed.mode={args.distributed}")
        if args.actors is not None:
            overrides.append(f"distributed.actors={args.actors}")
        cfg = load_config(args.preset, overrides=overrides)
        result = train(cfg, out=args.out, ray_address=args.ray_address)
    print(json.dumps(summary_of(result)))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from drlzero.distributed.sweep import parse_grid, parse_seeds, sweep

    overrides = list(args.overrides)
    if args.total_steps is not None:
        overrides.append(f"train.total_steps={args.total_steps}")
    summary = sweep(
        args.preset,
        seeds=parse_seeds(args.seeds),
        grid=parse_grid(args.grid),
        overrides=overrides,
        out=args.out,
        ray_address=args.ray_address,
    )
    print(json.dumps(summary))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from drlzero.api import evaluate, evaluate_baseline

    if args.baseline is not None:
        if args.run_dir is not None or args.env is None:
            raise UserError("--baseline NAME needs --env ENV_ID (or a preset) and no run directory")
        result = evaluate_baseline(args.env, args.baseline, episodes=args.episodes, seed=args.seed)
    elif args.run_dir is None or args.env is not None:
        raise UserError("eval needs a run directory (or --baseline NAME --env ENV_ID)")
    else:
        result = evaluate(
            args.run_dir,
            episodes=args.episodes,
            seed=args.seed,
            checkpoint=args.checkpoint,
            paraphrases=args.paraphrases,
        )
    if args.json:
        print(json.dumps(result))
    else:
        sr = result["success_rate"]
        print(
            f"{result['episodes']} episodes: return {result['mean_return']:.2f} "
            f"± {result['std_return']:.2f}, length {result['mean_length']:.1f}"
            + (f", success {100 * sr:.0f}%" if sr is not None else "")
            + (
                f", paraphrased-mission success {100 * result['paraphrase_success_rate']:.0f}%"
                if result.get("paraphrase_success_rate") is not None
                else ""
            )
        )
    return 0


def _record(args: argparse.Namespace) -> int:
    from drlzero.api import record

    print(record(args.run_dir, episodes=args.episodes, out=args.out))
    return 0


def _list(_args: argparse.Namespace) -> int:
    from drlzero.config import ALGOS, preset_names, preset_summary
    from drlzero.encoders import ENCODERS
    from drlzero.envs import registered_env_ids

    print("presets:")
    for name in preset_names():
        print(f"  {name:<30} {preset_summary(name)}")
    print("algorithms:  " + ", ".join(ALGOS))
    print("encoders:    auto, " + ", ".join(ENCODERS))
    print("explorers:   epsilon_greedy, softmax (schedules: constant, linear, exponential)")
    print("environments (Gymnasium registry):")
    ids = registered_env_ids()
    for i in range(0, len(ids), 4):
        print("  " + "  ".join(f"{x:<28}" for x in ids[i : i + 4]).rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come anywhere after the preset, also after options.
    args, extra = parser.parse_known_args(argv)
    takes_overrides = args.command in ("train", "sweep")
    stray = [x for x in extra if not takes_overrides or x.startswith("-") or "=" not in x]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if takes_overrides:
        args.overrides = [*args.overrides, *extra]
    handlers = {"train": _train, "sweep": _sweep, "eval": _eval, "record": _record, "list": _list}
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"drlzero: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drlzero: interrupted", file=sys.stderr)
        return 130
