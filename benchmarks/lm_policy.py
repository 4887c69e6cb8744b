"""The LM policy on CPU: KV-cached action scoring vs one forward per action, LoRA PPO
throughput and peak memory on BabyAI GoToObj, zero-shot success vs the random policy.

Three figures, measured side by side in one process (the machine is shared: compare ratios):

1. ``scoring``: the log-likelihoods of the 6 BabyAI action names after B real GoToObj prompts,
   from one prompt forward whose KV cache serves every candidate (``action_loglik``) against
   one full forward per (prompt, action) (``naive_action_loglik``); median of ``--repeats``
   timings each, no grad, and the largest difference between the two.
2. ``ppo``: ``drlzero train babyai-gotoobj-lmpolicy`` for ``--ppo-steps`` env steps: env
   steps/s over the training loop, peak resident memory, trainable-parameter fraction, the
   final greedy success.
3. ``zero_shot``: the untrained LM policy (greedy and sampled) and the random policy over the
   named actions, on the same ``--episodes`` GoToObj episodes.

The model is SmolLM2-135M-Instruct (``lm.model_path=smollm2``); ``--smoke`` uses a tiny random
Llama with a word-level tokenizer built here, so the script runs in seconds without it.

Usage:
    nice -n 19 python benchmarks/lm_policy.py                   # the real model, ~15-30 min
    python benchmarks/lm_policy.py --smoke --results-dir /tmp/r
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import add_result_args, write_result

BABYAI_WORDS = (
    "a an the is are you see no objects wall step steps ahead and to your left right in front of "
    "mission go pick up put open door key ball box red green blue purple yellow grey one two "
    "three four five six closed locked possible actions turn forward drop toggle next action"
)


def tiny_model_dir(root: Path) -> Path:
    """A tiny random Llama + word-level tokenizer over BabyAI's words (for --smoke)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", ".", ",", ":", "\n", *dict.fromkeys(BABYAI_WORDS.split())]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    LlamaForCausalLM(cfg).save_pretrained(str(root))
    fast.save_pretrained(str(root))
    return root


def _config(model: str, overrides: list[str]):
    from drlzero.config import load_config

    return load_config(
        "babyai-gotoobj-lmpolicy",
        overrides=[
            f"lm.model_path={model}",
            f"env.kwargs={{level: BabyAI-GoToObj-v0, tokenizer: '{model}', max_tokens: 64}}",
            "train.progress=false",
            "train.tensorboard=false",
            *overrides,
        ],
    )


def bench_scoring(model: str, batch: int, repeats: int, threads: int) -> dict:
    from drlzero.algos.lm_policy import action_loglik, build_lm_actor_critic, naive_action_loglik
    from drlzero.envs import make_vec_env

    cfg = _config(model, [f"env.num_envs={batch}", f"train.threads={threads}"])
    torch.set_num_threads(threads)
    envs = make_vec_env(cfg.env)
    obs, _ = envs.reset(seed=0)
    envs.close()
    net, _ = build_lm_actor_critic(cfg, 7, torch.device("cpu"))
    net.eval()
    c = net.codec
    prompt_BP, len_B = c.prompts(obs)
    lists = c.prompt_lists(obs)
    times_kv, times_naive = [], []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            ll, _h = action_loglik(net.lm, prompt_BP, len_B, c.actions_AL, c.action_len_A)
            times_kv.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref = naive_action_loglik(net.lm, lists, c.action_ids)
            times_naive.append(time.perf_counter() - t0)
    kv, naive = statistics.median(times_kv), statistics.median(times_naive)
    return {
        "batch_prompts": batch,
        "actions": len(c.names),
        "prompt_tokens_mean": float(len_B.float().mean()),
        "action_tokens": c.action_len_A.tolist(),
        "kv_cached_ms": 1000 * kv,
        "naive_ms": 1000 * naive,
        "speedup": naive / kv,
        "max_abs_diff": float((ll - ref).abs().max()),
        "repeats": repeats,
        "threads": threads,
    }


def bench_ppo(model: str, steps: int, threads: int, out: Path, eval_episodes: int) -> dict:
    import drlzero
    from drlzero.algos.lm_policy import build_lm_actor_critic, count_params

    cfg_envs = _config(model, []).env.num_envs

    cfg = _config(
        model,
        [
            f"train.total_steps={steps}",
            f"ppo.n_steps={max(steps // cfg_envs, 4)}",  # one rollout = the whole budget
            "train.eval_freq=0",
            f"train.eval_episodes={eval_episodes}",
            f"train.threads={threads}",
            f"train.log_freq={max(steps // 4, 1)}",
        ],
    )
    t0 = time.perf_counter()
    result = drlzero.train(cfg, out=out)
    wall = time.perf_counter() - t0
    loop = result.loop_time_s or wall
    net, _ = build_lm_actor_critic(cfg, 7, torch.device("cpu"))
    trainable, total = count_params(net)
    return {
        "env_steps": result.steps,
        "num_envs": cfg.env.num_envs,
        "loop_time_s": loop,
        "env_steps_per_s": result.steps / loop,
        "wall_time_s": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": trainable / total,
        "final_success_rate": result.final_eval.get("success_rate"),
        "final_eval_episodes": eval_episodes,
        "threads": threads,
    }


def bench_zero_shot(model: str, episodes: int, threads: int) -> dict:
    import drlzero

    cfg = _config(model, [f"train.threads={threads}"])
    return drlzero.evaluate_zero_shot(cfg, episodes=episodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="lm.model_path (default SmolLM2)")
    ap.add_argument("--batch", type=int, default=8, help="prompts scored together")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ppo-steps", type=int, default=64, help="env steps of LoRA PPO")
    ap.add_argument("--episodes", type=int, default=16, help="zero-shot episodes")
    ap.add_argument("--eval-episodes", type=int, default=4, help="PPO final eval episodes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", default="scoring,zero_shot,ppo")
    add_result_args(ap)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if args.smoke:
        model = str(tiny_model_dir(Path(tmp.name) / "tiny"))
        args.batch, args.repeats, args.ppo_steps = 2, 1, 32
        args.episodes, args.eval_episodes = 2, 2
    parts = [p for p in ("scoring", "ppo", "zero_shot") if p in args.parts.split(",")]
    result: dict = {"model": args.model if not args.smoke else "tiny-random-llama"}
    if "scoring" in parts:
        result["scoring"] = bench_scoring(model, args.batch, args.repeats, args.threads)
        print("scoring:", result["scoring"], flush=True)
        write_result("lm_policy", "lm_policy", result, out_dir=args.results_dir)  # so far
    if "ppo" in parts:
        run = Path(tmp.name) / "run"
        result["ppo"] = bench_ppo(model, args.ppo_steps, args.threads, run, args.eval_episodes)
        print("ppo:", result["ppo"], flush=True)
        write_result("lm_policy", "lm_policy", result, out_dir=args.results_dir)  # so far
    if "zero_shot" in parts:
        result["zero_shot"] = bench_zero_shot(model, args.episodes, args.threads)
        print("zero-shot:", result["zero_shot"], flush=True)
    path = write_result("lm_policy", "lm_policy", result, out_dir=args.results_dir)
    print(f"wrote {path}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
