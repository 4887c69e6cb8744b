from pathlib import Path

import pytest

from drlzero.config import config_from_dict, load_config, preset_names, read_config, save_config
from drlzero.errors import ConfigError


def test_every_preset_loads_and_validates() -> None:
    names = preset_names()
    for expected in (
        "cartpole-dqn",
        "acrobot-dqn",
        "mountaincar-dqn",
        "lunarlander-dqn",
        "frozenlake-qlearning",
        "taxi-sarsa",
        "cliffwalking-expected-sarsa",
    ):
        assert expected in names
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_overrides_are_typed() -> None:
    cfg = load_config("cartpole-dqn", overrides=["dqn.lr=1e-3", "train.seed=7", "dqn.double=false"])
    assert cfg.dqn.lr == pytest.approx(1e-3) and isinstance(cfg.dqn.lr, float)
    assert cfg.train.seed == 7
    assert cfg.dqn.double is False
    cfg = load_config(None, overrides=["encoder.hidden=[32, 16]", "env.max_episode_steps=null"])
    assert cfg.encoder.hidden == [32, 16]
    assert cfg.env.max_episode_steps is None


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("dqn.lrr=0.1", "did you mean 'dqn.lr'"),
        ("dqn.gamma=1.5", "dqn.gamma=1.5 must be in [0, 1]"),
        ("dqn.batch_size=abc", "wrong type"),
        ("dqn.batch_size=0", "must be > 0"),
        ("exploration.kind=random", "is not one of"),
        ("nosuch=1", "unknown config key"),
        ("dqn.lr", "must look like"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_config("cartpole-dqn", overrides=[override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_preset_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cartpole-dqn'"):
        load_config("cartpole-dq")


def test_yaml_file_and_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("algo: sarsa\nenv: {id: Taxi-v4}\ntabular: {lr: 0.2}\n")
    cfg = load_config(f)
    assert cfg.algo == "sarsa" and cfg.tabular.lr == 0.2
    save_config(cfg, tmp_path / "config.yaml")
    assert read_config(tmp_path / "config.yaml") == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
