"""Envs in words with named actions (drlzero.envs.named): the names cover the game's actions,
the masks mark the valid ones, the dynamics and rewards equal the underlying envs', the words
follow the state, and an LM-policy run with ``env.action_mask=info`` never takes a masked action.

The tokenizer and the causal LM are tiny ones built here offline (a word-level tokenizer over the
envs' words, a random 2-layer Llama), as in tests/test_lm_policy.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

import drlzero
from drlzero.config import load_config, preset_summary
from drlzero.envs.named import (
    SMART_HOME_ACTIONS,
    TEXT_TREASURE_ACTIONS,
    TextTreasureNamed,
    make_smart_home_named,
    make_text_treasure_named,
)
from drlzero.envs.scenarios.smart_home import SmartHomeEnv, describe
from drlzero.envs.text import TextTreasure, load_tokenizer

# Every word the two envs, the action names and the prompts use (lower-cased); digits are single
# tokens, so different numbers give different ids.
_VOCAB = """
[UNK] [PAD] . , : ; % - ' ( ) possible actions next action you run a room s thermostat curtains
and lamp for its occupant are in the kitchen hall garden cellar attic library study porch see
key locked chest is empty exits north south east west to carry nothing go take open look around
it outside c hours sunlight electricity eur per kwh inside home asleep awake away prefers change
needed h off heat cool with closed on 0 1 2 3 4 5 6 7 8 9
"""
WORDS = _VOCAB.split()


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(dict.fromkeys(WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal-LM directory (safetensors + tokenizer), as any local HF model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny-llama-named")
    tok = _tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,  # SmartHome's prompt: ~110 names + ~110 observation ids
    )
    LlamaForCausalLM(cfg).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


def _words(tok: Any, ids: np.ndarray) -> str:
    return str(tok.decode([int(i) for i in ids if i >= 0]))


# ---------------------------------------------------------------------------------------------
# TextTreasure with named actions


def _expected_valid(game: TextTreasure) -> set[str]:
    """The strings the game offers, from its state (exits, key, chest) rather than its list."""
    valid = {f"go {d}" for d in game.exits[game.room]} | {"look around"}
    if not game.has_key and game.room == game.key_room:
        valid.add("take key")
    if game.room == game.chest_room:
        valid.add("open chest")
    return valid


def _mask_walk(env: TextTreasureNamed, seeds: range, steps: int = 30):
    """Yield the mask of every state of episodes of uniformly random allowed actions."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        _, info = env.reset(seed=seed)
        for _ in range(steps):
            yield info["action_mask"]
            a = int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, _, term, _, info = env.step(a)
            if term:
                break


def test_names_cover_exactly_the_games_actions_and_the_mask_the_valid_ones(lm_dir: Path) -> None:
    env = TextTreasureNamed(rooms=4, tokenizer=str(lm_dir))
    assert env.action_space == gym.spaces.Discrete(len(TEXT_TREASURE_ACTIONS))
    assert len(set(TEXT_TREASURE_ACTIONS)) == len(TEXT_TREASURE_ACTIONS)
    offered: set[str] = set()
    steps = 0
    for mask in _mask_walk(env, range(40)):
        game = env.game
        assert set(game.valid) <= set(TEXT_TREASURE_ACTIONS)  # every string has a name
        offered |= set(game.valid)
        named = {n for n, ok in zip(TEXT_TREASURE_ACTIONS, mask, strict=True) if ok}
        assert named == set(game.valid) == _expected_valid(game)
        steps += 1
    assert offered == set(TEXT_TREASURE_ACTIONS)  # ... and every name is offered somewhere
    assert steps > 200


def test_a_named_action_equals_the_same_string_in_text_treasure(lm_dir: Path) -> None:
    named = gym.make("drlzero/TextTreasureNamed-v0", tokenizer=str(lm_dir))
    plain = gym.make("drlzero/TextTreasure-v0", tokenizer=str(lm_dir))
    returns = []
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        obs_n, info = named.reset(seed=seed)
        obs_p, _ = plain.reset(seed=seed)
        assert obs_n.shape == named.observation_space.shape and obs_n.dtype == np.int32
        np.testing.assert_array_equal(obs_n, obs_p["text"])
        total, done = 0.0, False
        while not done:
            a = int(rng.choice(np.flatnonzero(info["action_mask"])))
            game = plain.unwrapped
            assert isinstance(game, TextTreasure)
            obs_n, r_n, term_n, trunc_n, info = named.step(a)
            obs_p, r_p, term_p, trunc_p, info_p = plain.step(
                game.valid.index(TEXT_TREASURE_ACTIONS[a])
            )
            np.testing.assert_array_equal(obs_n, obs_p["text"])
            assert (r_n, term_n, trunc_n) == (r_p, term_p, trunc_p)
            assert info["is_success"] == info_p["is_success"] and not info["invalid_action"]
            total += r_n
            done = term_n or trunc_n
        returns.append(total)
    assert 0.0 in returns and 1.0 in returns  # both ways an episode can end were compared


def test_a_masked_text_action_changes_nothing_and_the_words_follow_the_state(
    lm_dir: Path,
) -> None:
    tok = load_tokenizer(str(lm_dir))
    env = TextTreasureNamed(rooms=3, tokenizer=str(lm_dir))
    for seed in range(50):
        obs, info = env.reset(seed=seed)
        if env.game.room == env.game.key_room and env.game.room != env.game.chest_room:
            break
    mask = info["action_mask"]
    chest = TEXT_TREASURE_ACTIONS.index("open chest")
    assert not mask[chest]
    room, carried = env.game.room, env.game.has_key
    again, reward, term, _, info = env.step(chest)
    assert info["invalid_action"] and reward == 0.0 and not term
    np.testing.assert_array_equal(again, obs)  # nothing changed, so the same words
    assert (env.game.room, env.game.has_key) == (room, carried)
    assert "you see a key" in _words(tok, obs)
    taken, _, _, _, info = env.step(TEXT_TREASURE_ACTIONS.index("take key"))
    assert "carry the key" in _words(tok, taken) and "carry nothing" in _words(tok, obs)
    assert not info["action_mask"][TEXT_TREASURE_ACTIONS.index("take key")]


# ---------------------------------------------------------------------------------------------
# SmartHome in words with named actions


def test_smart_home_names_follow_the_action_encoding() -> None:
    assert len(SMART_HOME_ACTIONS) == len(set(SMART_HOME_ACTIONS)) == 12
    for a, name in enumerate(SMART_HOME_ACTIONS):
        thermostat, curtains, light = a // 4, (a // 2) % 2, a % 2
        assert f"thermostat {('off', 'heat', 'cool')[thermostat]}" in name
        assert f"curtains {('closed', 'open')[curtains]}" in name
        assert name.endswith(f"lamp {('off', 'on')[light]}")
        assert "," not in name  # the prompt's header joins the names with ", "


def test_smart_home_named_rewards_and_masks_equal_smart_home(lm_dir: Path) -> None:
    named = gym.make("drlzero/SmartHomeNamed-v0", tokenizer=str(lm_dir))
    plain = gym.make("drlzero/SmartHome-v0")
    assert named.action_space == plain.action_space == gym.spaces.Discrete(12)
    assert named.spec is not None and named.spec.max_episode_steps == 96
    rng = np.random.default_rng(5)
    for seed in (0, 1):
        _, info_n = named.reset(seed=seed)
        _, info_p = plain.reset(seed=seed)
        done, steps = False, 0
        while not done:
            np.testing.assert_array_equal(info_n["action_mask"], info_p["action_mask"])
            a = int(rng.integers(12))  # masked actions too: the rules never change dynamics
            _, r_n, term_n, trunc_n, info_n = named.step(a)
            _, r_p, term_p, trunc_p, info_p = plain.step(a)
            assert (r_n, term_n, trunc_n) == (r_p, term_p, trunc_p)
            assert info_n["rule_violations"] == info_p["rule_violations"]
            done, steps = term_n or trunc_n, steps + 1
        assert steps == 96 and info_n["is_success"] == info_p["is_success"]
        assert info_n["rule_violations"] > 0  # some random actions broke a rule


def test_smart_home_words_describe_the_state(lm_dir: Path) -> None:
    tok = load_tokenizer(str(lm_dir))
    env = make_smart_home_named(tokenizer=str(lm_dir))
    obs, _ = env.reset(seed=3)
    home = env.unwrapped
    assert isinstance(home, SmartHomeEnv)
    sentence = describe(home.state_vector())
    np.testing.assert_array_equal(obs, env.observation(sentence))  # the obs is that sentence
    assert (obs >= 0).sum() < env.observation_space.shape[0]  # not cut short
    ids = {}
    for t_in in (15.0, 25.0):
        home.t_in = t_in
        text = describe(home.state_vector())
        assert f"Inside {t_in:.1f} C" in text
        ids[t_in] = env.observation(text)
    assert not np.array_equal(ids[15.0], ids[25.0])  # other temperature, other tokens
    assert "inside 1 5 . 0 c" in _words(tok, ids[15.0])


# ---------------------------------------------------------------------------------------------
# The presets and the LM policy on both envs

VIOLATIONS: list[tuple[str, int]] = []
CHECKED: dict[str, int] = {}


class MaskChecker(gym.Wrapper):
    """Records every action taken in a state whose mask forbids it."""

    def __init__(self, env: gym.Env, label: str) -> None:
        super().__init__(env)
        self.label, self.mask = label, None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.mask = info["action_mask"]
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        CHECKED[self.label] = CHECKED.get(self.label, 0) + 1
        if not self.mask[int(action)]:
            VIOLATIONS.append((self.label, int(action)))
        out = self.env.step(action)
        self.mask = out[4]["action_mask"]
        return out


def _checked_treasure(**kwargs: Any) -> gym.Env:
    return MaskChecker(make_text_treasure_named(**kwargs), "treasure")


def _checked_home(**kwargs: Any) -> gym.Env:
    return MaskChecker(make_smart_home_named(**kwargs), "home")


for _id, _entry, _limit in (
    ("drlzero-test/CheckedTextTreasureNamed-v0", _checked_treasure, 30),
    ("drlzero-test/CheckedSmartHomeNamed-v0", _checked_home, 24),
):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry, max_episode_steps=_limit)

PRESETS = {
    "texttreasure-lmpolicy": (TEXT_TREASURE_ACTIONS, "drlzero-test/CheckedTextTreasureNamed-v0"),
    "smarthome-lmpolicy": (SMART_HOME_ACTIONS, "drlzero-test/CheckedSmartHomeNamed-v0"),
}


def _tiny(preset: str, lm_dir: Path, env_id: str, *extra: str) -> Any:
    """The preset on the tiny LM and tokenizer, at a budget of a few dozen steps."""
    kwargs = load_config(preset).env.kwargs
    kwargs = {**kwargs, "tokenizer": str(lm_dir)}
    flow = ", ".join(f"{k}: {v}" for k, v in kwargs.items())
    return load_config(
        preset,
        overrides=[
            f"env.id={env_id}",
            f"env.kwargs={{{flow}}}",
            "env.num_envs=2",
            f"lm.model_path={lm_dir}",
            "lm.lora_targets=[q_proj, v_proj]",
            "ppo.n_steps=8",
            "ppo.num_minibatches=2",
            "train.total_steps=48",
            "train.eval_freq=0",
            "train.eval_episodes=1",
            "train.progress=false",
            "train.tensorboard=false",
            *extra,
        ],
    )


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_names_the_envs_actions(preset: str) -> None:
    cfg = load_config(preset)
    names, _ = PRESETS[preset]
    assert cfg.algo == "lmppo" and cfg.env.action_mask == "info"
    assert cfg.lm.actions == list(names)
    assert cfg.env.kwargs["tokenizer"] == cfg.lm.model_path == "smollm2"
    assert "not measured on this CPU" in preset_summary(preset)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_masked_actions_get_zero_probability_from_the_lm_policy(preset: str, lm_dir: Path) -> None:
    from drlzero.lmpolicy.agent import load_lm_policy

    names, _ = PRESETS[preset]
    cfg = _tiny(preset, lm_dir, load_config(preset).env.id)
    actor = load_lm_policy(cfg, None, None, "cpu")
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    obs, masks = [], []
    for seed in range(4):
        o, info = env.reset(seed=seed)
        obs.append(o)
        masks.append(info["action_mask"])
    mask = np.stack(masks)
    assert (~mask).any()  # some action is forbidden in these states
    probs = actor.probs(np.stack(obs), mask)
    assert probs.shape == (4, len(names))
    assert (probs[~mask] == 0).all() and (probs[mask] > 0).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_an_lm_policy_run_never_takes_a_masked_action(
    preset: str, lm_dir: Path, tmp_path: Path
) -> None:
    _, env_id = PRESETS[preset]
    label = "treasure" if "Treasure" in env_id else "home"
    for mode in ("info", "none"):
        VIOLATIONS.clear()
        CHECKED.pop(label, None)
        cfg = _tiny(preset, lm_dir, env_id, f"env.action_mask={mode}")
        result = drlzero.train(cfg, out=tmp_path / mode)
        assert result.steps == 48
        # 48 training steps plus the greedy evaluation episode, each checked against its mask
        assert CHECKED[label] > 48
        if mode == "info":
            assert VIOLATIONS == []
        else:  # the same policy blind to the masks breaks them: the check does catch it
            assert len(VIOLATIONS) > 0
