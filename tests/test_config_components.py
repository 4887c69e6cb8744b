"""The config by component: Literal choices and field checks next to each key, the replay and
head sections split out of dqn, and the renamed keys still read (with a warning naming the new
key for user input, silently for saved runs)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from drlzero.checks import check_checkpoint_config
from drlzero.cli import _keys_epilog
from drlzero.config import (
    RENAMED_KEYS,
    Config,
    all_keys,
    config_from_dict,
    load_config,
    preset_names,
    read_config,
    save_config,
    set_key,
)
from drlzero.errors import CheckpointError, ConfigError
from drlzero.tune import parse_space

#: A value other than the default for each renamed key, as an override string would give it.
OLD_VALUES: dict[str, Any] = {
    "dqn.buffer_size": 500,
    "dqn.prioritized": True,
    "dqn.per_alpha": 0.5,
    "dqn.per_beta": 0.25,
    "dqn.per_eps": 1e-3,
    "dqn.dueling": True,
    "dqn.distributional": "qr",
    "dqn.num_atoms": 11,
    "dqn.v_min": -5.0,
    "dqn.v_max": 5.0,
    "dqn.noisy": True,
    "dqn.noisy_sigma": 0.25,
}


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def test_the_table_covers_every_renamed_key() -> None:
    assert set(OLD_VALUES) == set(RENAMED_KEYS)
    keys = {k for k, *_ in all_keys()}
    assert set(RENAMED_KEYS.values()) <= keys  # every new name is a key ...
    assert not set(RENAMED_KEYS) & keys  # ... and no old name is listed any more


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dqn.loss", "l1", "dqn.loss='l1' is not one of: huber, mse"),
        ("head.distributional", "iqn", "head.distributional='iqn' is not one of: none, c51, qr"),
        ("encoder.mode", "half", "encoder.mode='half' is not one of: frozen, lora, top_k, full"),
        ("train.strategy", "ddp", "train.strategy='ddp' is not one of: ddp_spawn, ddp_fork"),
        ("algo", "a2c", "algo='a2c' is not one of: dqn, drrn, ppo, lmppo, sac, qlearning,"),
        ("env.wrappers", ["atari", "x"], "env.wrappers[]='x' is not one of: atari"),
    ],
)
def test_a_literal_key_refuses_other_values(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:  # at once, when the key is set ...
        set_key(Config(), key, value)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    cfg = Config()  # ... and by validate, for a config built in Python
    section, _, name = key.rpartition(".")
    setattr(getattr(cfg, section) if section else cfg, name, value)
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("replay.alpha=1.5", "replay.alpha=1.5 must be in [0, 1]"),
        ("replay.eps=0", "replay.eps=0.0 must be > 0"),
        ("replay.buffer_size=0", "replay.buffer_size=0 must be > 0"),
        ("head.num_atoms=1", "head.num_atoms=1 must be >= 2"),
        ("head.noisy_sigma=-1", "head.noisy_sigma=-1.0 must be > 0"),
        ("dqn.tau=0", "dqn.tau=0.0 must be in (0, 1]; use 1.0 for a hard copy"),
        ("dqn.rmsprop_alpha=1", "dqn.rmsprop_alpha=1.0 must be in (0, 1), e.g. 0.95"),
        ("dqn.max_grad_norm=0", "dqn.max_grad_norm=0.0 must be > 0"),
        ("encoder.hidden=[64,0]", "encoder.hidden=[64, 0] must be a list of positive integers"),
        ("encoder.lora_dropout=1", "encoder.lora_dropout=1.0 must be in [0, 1)"),
        ("distributed.object_store_mb=50", "distributed.object_store_mb=50 must be >= 80"),
        ("train.seed=-1", "train.seed=-1 must be >= 0"),
        ("lm.actions=[a,a]", "lm.actions=['a', 'a'] repeats a name"),
    ],
)
def test_the_check_next_to_a_field_fires(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("cartpole-dqn", overrides=[override])
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_optional_checks_let_none_through() -> None:
    cfg = load_config(None, overrides=["dqn.max_grad_norm=null", "encoder.backbone_lr=null"])
    assert cfg.dqn.max_grad_norm is None and cfg.encoder.backbone_lr is None


def test_cross_key_rules_live_in_their_sections() -> None:
    with pytest.raises(ConfigError, match=r"head\.v_min=5.0 must be < head\.v_max=5.0"):
        load_config(None, overrides=["head.v_min=5", "head.v_max=5"])
    with pytest.raises(ConfigError, match=r"set head\.noisy=false"):
        load_config(None, overrides=["distributed.mode=apex", "head.noisy=true"])
    with pytest.raises(ConfigError, match="drop the Rainbow keys"):
        load_config(None, overrides=["train.devices=2", "replay.prioritized=true"])
    # epsilon is a probability, a softmax temperature only positive
    load_config(None, overrides=["exploration.kind=softmax", "exploration.start=5"])
    with pytest.raises(ConfigError, match=r"exploration\.start=5.0 must be in \[0, 1\]"):
        load_config(None, overrides=["exploration.start=5"])


@pytest.mark.parametrize("old", list(RENAMED_KEYS))
def test_an_old_key_sets_its_new_one_with_a_warning(old: str, tmp_path: Path) -> None:
    new, value = RENAMED_KEYS[old], OLD_VALUES[old]
    section, name = old.split(".")
    with pytest.warns(DeprecationWarning, match=rf"{old} is renamed {new}") as seen:
        by_override = load_config("cartpole-dqn", overrides=[f"{old}={_yaml_value(value)}"])
    assert all(new in str(w.message) for w in seen)
    with pytest.warns(DeprecationWarning, match=new):
        by_keyword = load_config("cartpole-dqn", **{f"{section}__{name}": value})
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump({"env": {"id": "CartPole-v1"}, section: {name: value}}))
    with pytest.warns(DeprecationWarning, match=new):
        by_yaml = load_config(f)
    with pytest.warns(DeprecationWarning, match=new):
        set_key(by_set := Config(), old, value)
    for cfg in (by_override, by_keyword, by_yaml, by_set):
        assert _get(cfg, new) == value
    assert by_override == by_keyword


def _old_shape(cfg: Config) -> dict[str, Any]:
    """``cfg.to_dict()`` as a version before the replay/head split saved it: the renamed keys
    flat in ``dqn`` under their old names, no ``replay`` or ``head`` section."""
    data = copy.deepcopy(cfg.to_dict())
    for old, new in RENAMED_KEYS.items():
        new_section, new_name = new.split(".")
        data["dqn"][old.split(".")[1]] = data[new_section].pop(new_name)
    del data["replay"], data["head"]
    return data


def test_an_old_runs_config_yaml_loads_into_the_new_shape(tmp_path: Path) -> None:
    cfg = load_config("cartpole-rainbow", overrides=["replay.alpha=0.5", "head.num_atoms=21"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_old_shape(cfg), sort_keys=False))
    assert "per_alpha: 0.5" in path.read_text() and "replay:" not in path.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a saved run's config is read silently
        again = read_config(path)
        assert config_from_dict(_old_shape(cfg)) == cfg
    assert again == cfg
    assert again.replay.alpha == 0.5 and again.head.num_atoms == 21 and again.head.noisy
    save_config(again, path)  # saved again: the new shape
    assert yaml.safe_load(path.read_text())["replay"]["alpha"] == 0.5
    assert "per_alpha" not in path.read_text()


def test_an_old_checkpoints_config_is_compared_under_the_new_names() -> None:
    cfg = load_config("cartpole-rainbow")
    check_checkpoint_config(cfg, {"config": _old_shape(cfg)}, "last.pt")  # the same run
    other = load_config("cartpole-rainbow", overrides=["head.num_atoms=21"])
    with pytest.raises(CheckpointError, match=r"head\.num_atoms=21 but config\.yaml says"):
        check_checkpoint_config(cfg, {"config": _old_shape(other)}, "last.pt")


def test_every_preset_loads_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in preset_names():
            load_config(name)


def test_presets_use_the_new_sections() -> None:
    cfg = load_config("cartpole-rainbow")
    assert cfg.replay.prioritized and cfg.head.dueling and cfg.head.noisy
    assert cfg.head.distributional == "c51" and (cfg.head.v_min, cfg.head.v_max) == (0.0, 100.0)
    assert "buffer_size" not in load_config("cartpole-dqn").to_dict()["dqn"]


def test_all_keys_and_help_show_the_choices_and_the_renames() -> None:
    rows = {key: tp for key, tp, _default, _doc in all_keys()}
    assert rows["dqn.loss"] == "huber | mse"
    assert rows["head.distributional"] == "none | c51 | qr"
    assert rows["replay.alpha"] == "float"
    assert rows["dqn.max_grad_norm"] == "float | None"
    epilog = _keys_epilog()
    assert "head.distributional" in epilog and "[none | c51 | qr, default 'none']" in epilog
    assert "dqn.per_alpha" in epilog and "-> replay.alpha" in epilog


def test_a_tune_space_with_an_old_key_searches_the_new_one() -> None:
    with pytest.warns(DeprecationWarning, match="replay.alpha"):
        (dim,) = parse_space(["dqn.per_alpha=0.4:0.8"], base=load_config("cartpole-dqn"))
    assert dim.key == "replay.alpha" and dim.kind == "float"
    (dim,) = parse_space(["head.distributional=none,qr"])
    assert dim.kind == "categorical" and dim.choices == ("none", "qr")
