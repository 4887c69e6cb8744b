"""Generalisation splits of BabyAI missions: word synonyms and whole-mission rewrites in
paraphrase files, held-out colour-object compositions, and the random policy and retention above
chance that ``drlzero eval`` reports beside each split."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("minigrid")
pytest.importorskip("transformers")

from drlzero.api import retention
from drlzero.errors import ConfigError
from drlzero.paraphrase import Paraphraser

DATA = Path(__file__).parent / "data"


def test_synonyms_and_whole_mission_rewrites() -> None:
    p = Paraphraser({"red": ["crimson"], "ball": ["sphere"]})
    assert p("go to the red ball") == "go to the crimson sphere"
    assert p("go to the reddish box") == "go to the reddish box"  # whole words only
    assert p.misses == 1
    whole = Paraphraser({"go to the red ball": ["go to the crimson sphere"], "key": ["latch"]})
    assert whole("go to the red ball") == "go to the crimson sphere"
    assert whole("go to the blue key") == "go to the blue latch"
    # Templates first, then synonyms on the result.
    both = Paraphraser({"go to the {color} {type}": ["find the {color} {type}"], "red": ["ruby"]})
    assert both("go to the red key") == "find the ruby key"
    # The packaged synonym file covers every BabyAI colour.
    syn = Paraphraser(str(DATA / "babyai_synonyms.json"))
    for color in ("red", "green", "blue", "purple", "yellow", "grey"):
        assert color not in syn(f"go to the {color} ball").split()


def _missions(split: str, n: int) -> list[str]:
    from drlzero.envs.text import make_babyai_text

    env = make_babyai_text(
        level="BabyAI-GoToObj-v0",
        max_tokens=16,
        held_out_pairs=[["red", "key"]],
        held_out_split=split,
    )
    out = []
    for seed in range(n):
        env.reset(seed=seed)
        out.append(env.env.mission)
    return out


def test_held_out_pairs_leave_training_and_form_the_test_split() -> None:
    train = _missions("train", 60)
    assert not any("red key" in m for m in train)
    assert len(set(train)) > 10
    test = _missions("test", 6)
    assert all("red key" in m for m in test)
    assert _missions("test", 6) == test  # a seed still fixes the episode


def test_held_out_errors_are_one_line() -> None:
    from drlzero.envs.text import make_babyai_text

    with pytest.raises(ConfigError, match="needs held_out_pairs"):
        make_babyai_text(held_out_split="test")
    with pytest.raises(ConfigError, match=r"\[colour, object\] pairs"):
        make_babyai_text(held_out_pairs=[["red"]])
    with pytest.raises(ConfigError, match="'train' or 'test'"):
        make_babyai_text(held_out_pairs=[["red", "key"]], held_out_split="dev")


def test_retention_above_chance() -> None:
    assert retention(0.7, 0.4, 1.0, 0.4) == pytest.approx(0.5)
    assert retention(0.4, 0.4, 0.9, 0.4) == 0.0
    assert retention(0.5, 0.4, 0.4, 0.4) is None  # the original is not above chance
    assert retention(float("nan"), 0.4, 0.9, 0.4) is None


def test_eval_reports_splits_random_policy_and_retention(tmp_path: Path, fast) -> None:
    from drlzero.api import evaluate, evaluate_baseline, train

    over = [
        *fast,
        "env.id=drlzero/BabyAIText-v0",
        "env.num_envs=2",
        "env.kwargs={max_tokens: 16, held_out_pairs: [[red, key]]}",
        "encoder.name=text_transformer",
        "encoder.d_model=16",
        "encoder.n_layers=1",
        "dqn.learning_starts=40",
        "dqn.batch_size=8",
        "train.eval_freq=0",
        "train.eval_episodes=2",
    ]
    train(None, out=tmp_path / "run", overrides=over, total_steps=60)
    out = evaluate(
        tmp_path / "run", episodes=2, paraphrases=DATA / "babyai_synonyms.json", held_out=True
    )
    for split in ("paraphrase", "held_out"):
        for key in ("success_rate", "mean_return", "random_success_rate", "random_mean_return"):
            assert f"{split}_{key}" in out
        assert f"{split}_retention" in out
        expected = retention(
            out[f"{split}_success_rate"],
            out[f"{split}_random_success_rate"],
            out["success_rate"],
            out["random_success_rate"],
        )
        assert out[f"{split}_retention"] == expected
    # The random policy on the original missions is what 'eval --baseline random' gives for the
    # same env and seed: the same episodes.
    from drlzero.api import load_agent

    cfg = load_agent(tmp_path / "run", checkpoint="best").config
    base = evaluate_baseline(cfg.env, "random", episodes=2, seed=cfg.train.seed + 20000)
    assert out["random_mean_return"] == pytest.approx(base["mean_return"])
