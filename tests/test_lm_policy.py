"""The LM policy: KV-cached scoring = naive forwards, normalisations, masks, LoRA, checkpoints,
resume, splits, bad inputs, and a short learning test on a tiny text task.

The model is a tiny randomly initialised LlamaForCausalLM with a hand-made word-level
tokenizer, both built here offline; one test loads the real SmolLM2 when it is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

import drlzero
from drlzero.algos.lm_policy import (
    LMActorCritic,
    action_loglik,
    adapt_lm,
    count_params,
    naive_action_loglik,
    normalized_scores,
)
from drlzero.cli import main
from drlzero.config import load_config
from drlzero.envs.text import load_tokenizer
from drlzero.errors import UserError
from drlzero.lmpolicy.splits import load_action_synonyms, renamed

WORDS = [
    "[UNK]",
    "[PAD]",
    "possible",
    "actions",
    ":",
    ",",
    ".",
    "\n",
    "next",
    "action",
    "go",
    "left",
    "right",
    "goal",
    "is",
    "the",
    "at",
    "move",
    "ahead",
    "step",
    "forward",
    "turn",
    "pick",
    "up",
    "drop",
    "toggle",
    "mission",
    "you",
    "see",
    "no",
    "objects",
    "a",
    "wall",
]
WORDS = [w for w in dict.fromkeys(WORDS) if w]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def _tiny_lm(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal-LM directory (safetensors + tokenizer), as any local HF model."""
    d = tmp_path_factory.mktemp("tiny-llama")
    _tiny_lm().save_pretrained(str(d))
    _tokenizer().save_pretrained(str(d))
    return d


class LeftRight(gym.Env):
    """One-step text task: "goal is left" / "goal is right"; the action of that name wins."""

    def __init__(self, tokenizer: str = "", max_tokens: int = 8) -> None:
        self.tok = load_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        self.observation_space = gym.spaces.Box(-1, len(self.tok) - 1, (max_tokens,), np.int32)
        self.action_space = gym.spaces.Discrete(3)  # action 2 is never named: probability 0
        self.side = 0

    def _obs(self) -> np.ndarray:
        ids = self.tok.encode(f"goal is {('left', 'right')[self.side]}", add_special_tokens=False)
        out = np.full(self.max_tokens, -1, np.int32)
        out[: len(ids)] = ids
        return out

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.side = int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        assert int(action) < 2, "an unnamed action was chosen"
        win = int(action) == self.side
        return self._obs(), float(win), True, False, {"is_success": win}


gym.register("drlzero-test/LeftRight-v0", entry_point=LeftRight, disable_env_checker=True)


def _overrides(lm_dir: Path, *extra: str) -> list[str]:
    return [
        "algo=lmppo",
        "env.id=drlzero-test/LeftRight-v0",
        f"env.kwargs={{tokenizer: {lm_dir}}}",
        "env.num_envs=4",
        f"lm.model_path={lm_dir}",
        "lm.actions=[go left, go right]",
        "lm.mode=full",
        "lm.micro_batch=8",
        "ppo.n_steps=8",
        "ppo.num_minibatches=2",
        "ppo.n_epochs=2",
        "train.eval_episodes=8",
        "train.progress=false",
        "train.tensorboard=false",
        "train.threads=1",
        *extra,
    ]


# ---------------------------------------------------------------------------------------------
# Scoring


def test_kv_cached_loglik_equals_naive_forwards_with_padding() -> None:
    lm = _tiny_lm()
    prompts = [[2, 3, 4, 5, 6], [7, 8], [9, 10, 11, 12, 13, 14, 15, 16], [3]]
    actions = [[5], [6, 7, 8], [9, 10], [11, 12, 13, 14]]
    P, La = max(map(len, prompts)), max(map(len, actions))
    prompt_BP = torch.full((len(prompts), P), 1)  # padding ids are masked, any id works
    for b, p in enumerate(prompts):
        prompt_BP[b, : len(p)] = torch.tensor(p)
    act_AL = torch.zeros(len(actions), La, dtype=torch.long)
    for a, c in enumerate(actions):
        act_AL[a, : len(c)] = torch.tensor(c)
    with torch.no_grad():
        ll, hidden = action_loglik(
            lm,
            prompt_BP,
            torch.tensor([len(p) for p in prompts]),
            act_AL,
            torch.tensor([len(c) for c in actions]),
        )
        ref = naive_action_loglik(lm, prompts, actions)
        last = [lm.model(input_ids=torch.tensor([p])).last_hidden_state[0, -1] for p in prompts]
    assert ll.shape == (4, 4)
    torch.testing.assert_close(ll, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden, torch.stack(last), atol=1e-5, rtol=0)


def test_policy_scores_equal_naive_on_the_prompt_codec() -> None:
    tok = _tokenizer()
    net = LMActorCritic(
        _tiny_lm(), tok, ["go left", "move ahead", "pick up"], num_actions=4, normalize="sum"
    )
    obs = np.full((2, 6), -1, np.int32)
    obs[0, :3] = tok.encode("goal is left", add_special_tokens=False)
    obs[1, :1] = tok.encode("wall", add_special_tokens=False)
    with torch.no_grad():
        logits, _ = net.scores(obs)
        ref = naive_action_loglik(net.lm, net.codec.prompt_lists(obs), net.codec.action_ids)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)


def test_the_three_normalisations_by_hand() -> None:
    ll = torch.tensor([[-2.0, -6.0, -3.0]])
    n_tok, n_word = torch.tensor([1, 3, 2]), torch.tensor([1, 2, 1])
    assert normalized_scores(ll, n_tok, n_word, "sum").tolist() == [[-2.0, -6.0, -3.0]]
    assert normalized_scores(ll, n_tok, n_word, "token").tolist() == [[-2.0, -2.0, -1.5]]
    assert normalized_scores(ll, n_tok, n_word, "word").tolist() == [[-2.0, -3.0, -3.0]]
    # the policy: softmax of the normalised scores
    p = torch.softmax(normalized_scores(ll, n_tok, n_word, "token"), -1)[0]
    e = np.exp([-2.0, -2.0, -1.5])
    np.testing.assert_allclose(p.numpy(), e / e.sum(), rtol=1e-6)


def test_masked_and_unnamed_actions_get_zero_probability() -> None:
    tok = _tokenizer()
    net = LMActorCritic(_tiny_lm(), tok, ["go left", "go right", "turn"], num_actions=5)
    obs = np.full((2, 4), -1, np.int32)
    obs[:, 0] = 5
    mask = torch.tensor([[True, False, True, True, True], [False, True, False, False, False]])
    with torch.no_grad():
        dist, value = net(obs, mask)
    probs = dist.cats[0].probs
    assert value.shape == (2,)
    assert probs[0, 1] == 0 and probs[0, 3] == 0 and probs[0, 4] == 0  # masked / unnamed
    assert probs[1].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    sample = dist.cats[0].sample((200,))
    assert not (sample == 1)[:, 0].any() and (sample[:, 1] == 1).all()


def test_lora_trains_adapters_and_heads_only() -> None:
    lm = adapt_lm(_tiny_lm(), "lora", r=2, alpha=4, dropout=0.0, targets=["q_proj", "v_proj"])
    net = LMActorCritic(lm, _tokenizer(), ["go left", "go right"], num_actions=2)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("value_head") for n in names)
    trainable, total = count_params(net)
    assert 0 < trainable < total
    # a fresh adapter is zero: the policy equals the base model's
    base = LMActorCritic(_tiny_lm(), _tokenizer(), ["go left", "go right"], num_actions=2)
    obs = np.array([[5, 6, -1]], np.int32)
    with torch.no_grad():
        torch.testing.assert_close(net.scores(obs)[0], base.scores(obs)[0])


def test_lora_on_smollm2_trains_at_most_two_percent() -> None:
    from drlzero.lmpolicy.model import cache_dir

    pytest.importorskip("gguf")
    if not (cache_dir() / "models" / "SmolLM2-135M-Instruct" / "config.json").is_file():
        pytest.skip("SmolLM2 not converted yet (drlzero convert-lm, ~35 s)")
    from drlzero.algos.lm_policy import build_lm_actor_critic

    cfg = load_config("babyai-gotoobj-lmpolicy")
    net, sha = build_lm_actor_critic(cfg, 7, torch.device("cpu"))
    trainable, total = count_params(net)
    assert 134_000_000 < total < 140_000_000 and len(sha) == 64
    assert trainable / total <= 0.02


# ---------------------------------------------------------------------------------------------
# Training, checkpoints, resume, evaluation splits


def test_train_checkpoint_holds_adapters_heads_and_base_hash(tmp_path: Path, lm_dir: Path) -> None:
    cfg = load_config(
        overrides=_overrides(
            lm_dir, "lm.mode=lora", "lm.lora_targets=[q_proj, v_proj]", "train.total_steps=64"
        )
    )
    result = drlzero.train(cfg, out=tmp_path / "run")
    assert result.steps == 64
    meta = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert meta["kind"] == "lmppo" and len(meta["base_sha256"]) == 64
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    lm_keys = [k for k in saved if k.startswith("lm.")]
    assert lm_keys and all("lora_" in k or k.startswith("lm.value_head") for k in lm_keys)
    out = drlzero.evaluate(tmp_path / "run", episodes=4)
    assert 0.0 <= out["success_rate"] <= 1.0


def test_resume_of_a_killed_run_equals_an_uninterrupted_one(
    tmp_path: Path, lm_dir: Path, monkeypatch
) -> None:
    from safetensors.torch import load_file

    from drlzero.algos.lm_policy import LMPolicyActor

    extra = ("train.total_steps=96", "train.checkpoint_freq=32", "train.log_freq=32")
    full = drlzero.train(load_config(overrides=_overrides(lm_dir, *extra)), out=tmp_path / "full")
    calls = {"n": 0}
    real_act = LMPolicyActor.act

    def dying_act(self, obs, mask):
        calls["n"] += 1
        if calls["n"] == 19:  # inside the 3rd rollout (8 steps each), after the 32-step ckpt
            raise KeyboardInterrupt
        return real_act(self, obs, mask)

    monkeypatch.setattr(LMPolicyActor, "act", dying_act)
    with pytest.raises(KeyboardInterrupt):
        drlzero.train(load_config(overrides=_overrides(lm_dir, *extra)), out=tmp_path / "killed")
    monkeypatch.setattr(LMPolicyActor, "act", real_act)
    resumed = drlzero.train(resume=tmp_path / "killed")
    assert resumed.steps == full.steps == 96
    a = load_file(str(full.run_dir / "checkpoints" / "last.safetensors"))
    b = load_file(str(resumed.run_dir / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    read = lambda p: (p / "episodes.csv").read_text()  # noqa: E731
    assert read(full.run_dir) == read(resumed.run_dir)


@pytest.mark.learning
def test_lm_policy_learns_the_left_right_task(tmp_path: Path, lm_dir: Path) -> None:
    # Full fine-tuning of the tiny random LM; measured with evaluations every 256 steps:
    # success 0.56, 0.44, 1.0, 1.0 (32 episodes each), so 1024 steps leave one eval of margin.
    cfg = load_config(
        overrides=_overrides(
            lm_dir,
            "train.total_steps=1024",
            "train.eval_freq=0",
            "train.eval_episodes=32",
            "ppo.lr=0.01",
            "ppo.n_epochs=4",
            "lm.value_lr=0.01",
            "ppo.ent_coef=0.0",
            "lm.micro_batch=16",  # one forward per minibatch: the same gradient, fewer ops
        )
    )
    zero = drlzero.evaluate_zero_shot(cfg, episodes=32)
    result = drlzero.train(cfg, out=tmp_path / "run")
    # the random policy over the two named actions succeeds half of the time
    assert 0.25 <= zero["random_success_rate"] <= 0.75
    assert result.final_eval["success_rate"] >= 0.9


def test_synonym_split_renames_the_actions_and_reports_retention(
    tmp_path: Path, lm_dir: Path
) -> None:
    cfg = load_config(overrides=_overrides(lm_dir, "train.total_steps=32"))
    drlzero.train(cfg, out=tmp_path / "run")
    syn = tmp_path / "syn.json"
    syn.write_text(json.dumps({"go left": ["move ahead"], "go right": ["step forward"]}))
    out = drlzero.evaluate(tmp_path / "run", episodes=8, action_synonyms=syn)
    assert out["synonym_names"] == ["move ahead", "step forward"]
    for key in ("synonym_success_rate", "random_success_rate", "success_rate"):
        assert 0.0 <= out[key] <= 1.0
    # the env is unchanged by renaming actions: its random policy is the original's
    assert out["synonym_random_success_rate"] == out["random_success_rate"]
    assert "synonym_retention" in out
    again = drlzero.evaluate(tmp_path / "run", episodes=8)  # the names are put back
    assert again["success_rate"] == out["success_rate"]


# ---------------------------------------------------------------------------------------------
# Bad inputs: one line, exit code 2


def test_bad_synonym_files_are_one_line_errors(tmp_path: Path) -> None:
    names = ["go left", "go right"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_action_synonyms(bad, names)
    bad.write_text(json.dumps({"fly": ["soar"]}))
    with pytest.raises(UserError, match="unknown action 'fly'"):
        load_action_synonyms(bad, names)
    bad.write_text(json.dumps({"go left": []}))
    with pytest.raises(UserError, match="non-empty list"):
        load_action_synonyms(bad, names)
    bad.write_text(json.dumps(["go left"]))
    with pytest.raises(UserError, match="JSON object"):
        load_action_synonyms(bad, names)
    with pytest.raises(UserError, match="no such file"):
        load_action_synonyms(tmp_path / "missing.json", names)
    with pytest.raises(UserError, match="share a name"):
        renamed(names, {"go left": ["go right"]})


def test_cli_errors_for_the_lm_policy(tmp_path: Path, capsys, lm_dir: Path) -> None:
    assert main(["eval", "--zero-shot", "cartpole-dqn"]) == 2
    assert "algo=dqn" in capsys.readouterr().err
    assert main(["train", "babyai-gotoobj-lmpolicy", "lm.normalize=mean"]) == 2
    err = capsys.readouterr().err
    assert "lm.normalize='mean' is not one of" in err and "Traceback" not in err
    assert main(["train", "babyai-gotoobj-lmpolicy", "env.kwargs={tokenizer: minilm}"]) == 2
    assert "differ" in capsys.readouterr().err
    # token ids cannot be standardised, and the LM's checkpoint keeps no reward moments
    out = str(tmp_path / "x")
    for key in ("ppo.normalize_obs", "ppo.normalize_reward"):
        assert main(["train", "babyai-gotoobj-lmpolicy", f"{key}=true", "--out", out]) == 2
        err = capsys.readouterr().err
        assert "set ppo.normalize_obs=false and ppo.normalize_reward=false" in err
    assert not (tmp_path / "x").exists()  # refused before a run directory is made
    # a DQN run has no named actions to rename
    drlzero.train(
        "cartpole-dqn",
        out=tmp_path / "dqn",
        overrides=[
            "train.total_steps=50",
            "dqn.learning_starts=10",
            "train.eval_episodes=1",
            "train.progress=false",
        ],
    )
    syn = tmp_path / "s.json"
    syn.write_text(json.dumps({"go forward": ["move ahead"]}))
    assert main(["eval", str(tmp_path / "dqn"), "--action-synonyms", str(syn)]) == 2
    assert "algo=dqn" in capsys.readouterr().err
    with pytest.raises(Exception, match="not modules of this model"):
        adapt_lm(_tiny_lm(), "lora", r=2, alpha=4, dropout=0.0, targets=["query"])
