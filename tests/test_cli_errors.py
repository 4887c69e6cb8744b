"""Every command turns a user mistake into exit code 2 and one line that names the fix.

Bad inputs (paths, damaged or mismatched run directories, bad flag values) are run through the
CLI's ``main`` in-process; each must return 2, print exactly one line on stderr, no traceback,
and leave nothing behind that is lost or blocks a retry. A few run as real processes too. Also:
``train PRESET --resume RUN`` with the run's own preset, ``drlzero list``'s DQN switches and
preset combinations, and ``eval --baseline random`` on several kinds of env.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import drlzero
from drlzero.cli import main

FAST = ["train.progress=false", "train.tensorboard=false"]
TINY = [
    *FAST,
    "train.total_steps=300",
    "dqn.learning_starts=100",
    "train.eval_episodes=1",
    "train.eval_freq=0",
    "env.max_episode_steps=100",
]


def _parses(text: str) -> bool:
    import yaml

    try:
        yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return True


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One tiny CartPole run and one tiny Acrobot run, damaged copies of the CartPole run, a
    plain file and a small dataset: every path the bad inputs below refer to."""
    root = tmp_path_factory.mktemp("errors")
    cp = drlzero.train("cartpole-dqn", out=root / "cp", overrides=TINY).run_dir
    ac = drlzero.train("acrobot-dqn", out=root / "ac", overrides=TINY).run_dir
    bad = root / "bad"
    bad.mkdir()
    (bad / "afile").write_text("not a folder\n")
    (bad / "notrun").mkdir()
    (bad / "notrun" / "notes.txt").write_text("hello\n")

    def copy(name: str) -> Path:
        return Path(shutil.copytree(cp, bad / name))

    def halve(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    # cut short at the first point past halfway where the YAML no longer parses (a cut at a
    # fixed byte may land on a valid YAML prefix)
    text = (copy("cfg_cut") / "config.yaml").read_text()
    at = next(i for i in range(len(text) // 2, len(text)) if not _parses(text[:i]))
    (bad / "cfg_cut" / "config.yaml").write_text(text[:at])
    lines = (copy("cfg_lines") / "config.yaml").read_text().splitlines(True)
    (bad / "cfg_lines" / "config.yaml").write_text("".join(lines[: len(lines) // 2]))  # valid
    (copy("cfg_empty") / "config.yaml").write_text("")
    (copy("cfg_binary") / "config.yaml").write_bytes(bytes(range(256)))
    (copy("nocfg") / "config.yaml").unlink()
    shutil.rmtree(copy("nockpt") / "checkpoints")
    for kind, suffix in (("json", ".json"), ("st", ".safetensors")):
        cut, empty = copy(f"{kind}_half"), copy(f"{kind}_empty")
        for name in ("best", "last"):
            halve(cut / "checkpoints" / f"{name}{suffix}")
            (empty / "checkpoints" / f"{name}{suffix}").write_bytes(b"")
    swapped = copy("swapped")  # CartPole's config.yaml, Acrobot's checkpoints
    shutil.rmtree(swapped / "checkpoints")
    shutil.copytree(ac / "checkpoints", swapped / "checkpoints")
    # config.yaml edited so the network no longer fits, in checkpoints that carry no config
    edited = copy("edited")
    text = (edited / "config.yaml").read_text()
    (edited / "config.yaml").write_text(text.replace("dueling: false", "dueling: true"))
    for name in ("best", "last"):
        meta_path = edited / "checkpoints" / f"{name}.json"
        meta = json.loads(meta_path.read_text())
        meta.pop("config")
        meta_path.write_text(json.dumps(meta))
    ds = root / "ds"
    drlzero.collect(["drlzero/CatchBall-v0"], "random", out=ds, steps=200)
    shutil.copytree(ds, bad / "ds_cut")
    halve(bad / "ds_cut" / "shard-00000" / "obs.npy")
    out = {"cp": str(cp), "ac": str(ac), "ds": str(ds), "root": str(root)}
    out.update({p.name: str(p) for p in bad.iterdir()})
    return out


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 1
    got = capsys.readouterr()
    return code, got.out, got.err


def _fails_in_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = _main(args, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (args, err)
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    assert lines[0].startswith("drlzero: error: ")
    return lines[0]


# (command line with {placeholders} from the fixture and {tmp}, a fragment of the message)
CASES: list[tuple[str, str]] = [
    # --out that cannot be a folder, on every command that writes one
    ("train cartpole-dqn --out {afile}", "is a file, not a folder; choose a folder path"),
    ("train cartpole-dqn --out {afile}/run", "is a file, so no folder can be made inside it"),
    ("train cartpole-dqn --out /proc/drlzero-run", "choose a folder you can write to"),
    ("train cartpole-dqn --out {cp}", "use --resume"),
    ("distill {cp} --steps 50 --out {afile}", "choose a folder path for --out"),
    ("distill {cp} --steps 50 --out /proc/drlzero-run", "choose a folder you can write to"),
    ("distill {cp} --steps 50 --out {cp}", "already holds a run"),
    ("collect --env CartPole-v1 --policy random --episodes 1 --out {afile}", "choose a folder"),
    ("collect --env CartPole-v1 --policy random --episodes 1 --out {afile}/d", "no folder can"),
    ("collect --env CartPole-v1 --policy random --episodes 1 --out /proc/x", "you can write to"),
    ("collect --env CartPole-v1 --policy random --episodes 1 --out {cp}", "choose another --out"),
    ("pretrain --data {ds} --out {afile} --steps 1", "choose a folder path for --out"),
    ("pretrain --data {ds} --out /proc/drlzero-model --steps 1", "you can write to"),
    ("pretrain --data {ds} --out {cp} --steps 1", "choose a new or empty folder"),
    ("sweep cartpole-dqn --out {afile}", "choose a folder path for --out"),
    ("sweep cartpole-dqn --out {afile}/s", "no folder can be made inside it"),
    ("record {cp} --out {afile}/x.gif", "choose a folder path for --out"),
    ("record {cp} --out {notrun}", "give a file name"),
    ("record {cp} --out {tmp}/x.txt", "must end in .gif"),
    # folders that are not runs, damaged runs, mismatched runs
    *[
        (f"{cmd} {{{name}}}", fragment)
        for cmd in ("eval", "record", "distill", "collect --episodes 1 --out {tmp}/c --policy")
        for name, fragment in (
            ("afile", "is a file, not a run directory"),
            ("notrun", "is not a run directory (no config.yaml)"),
            ("nocfg", "is not a run directory (no config.yaml)"),
            ("cfg_cut", "is not valid YAML"),
            ("cfg_lines", "cut short?); restore the run's own config.yaml"),
            ("cfg_empty", "is empty; restore the run's own config.yaml"),
            ("cfg_binary", "is not text (corrupt); restore"),
            ("nockpt", "train first"),
            ("json_half", "is corrupt (not JSON); use another checkpoint"),
            ("json_empty", "is corrupt (not JSON); use another checkpoint"),
            ("st_half", "does not match its checksum"),
            ("st_empty", "does not match its checksum"),
            ("swapped", "env.id='Acrobot-v1' but config.yaml says env.id='CartPole-v1'"),
            ("edited", "put back the run's own config.yaml"),
        )
    ],
    ("eval {tmp}/no-such-run", "does not exist"),
    # report: inputs that are not runs, outputs that cannot be written
    ("report {tmp}/no-such-run", "does not exist; pass a run directory or a sweep directory"),
    ("report {afile}", "is a file; pass a run directory or a sweep directory"),
    ("report {notrun}", "is not a run directory (no config.yaml) and holds no runs"),
    ("report {cp} {nocfg}", "holds no runs"),
    ("report {cfg_cut}", "is not valid YAML"),
    ("report {cp} --out {tmp}/r.pdf", "must end in .html"),
    ("report {cp} --out {notrun}", "give a file name"),
    ("report {cp} --out {afile}/r.html", "choose a folder path for --out"),
    ("report {cp} --out /proc/drlzero-report/r.html", "choose a folder you can write to"),
    ("report {cp} --max-steps 0", "--max-steps 0 must be > 0"),
    ("collect --policy {tmp}/no-such-run --episodes 1 --out {tmp}/c", "unknown policy"),
    # train --resume: damaged runs, budgets that train nothing, changes a resume cannot make
    ("train --resume {afile}", "cannot resume"),
    ("train --resume {notrun}", "cannot resume"),
    ("train --resume {nockpt}", "cannot resume"),
    ("train --resume {cfg_cut} --total-steps 400", "is not valid YAML"),
    ("train --resume {cfg_empty} --total-steps 400", "is empty; restore"),
    ("train --resume {cfg_binary} --total-steps 400", "is not text"),
    ("train --resume {json_half} --total-steps 400", "corrupt (not JSON)"),
    ("train --resume {st_half} --total-steps 400", "does not match its checksum"),
    ("train --resume {swapped} --total-steps 400", "they come from different runs"),
    ("train --resume {edited} --total-steps 400", "put back the run's own config.yaml"),
    ("train --resume {cp}", "pass --total-steps N (more than 300)"),
    ("train --resume {cp} --total-steps 300", "pass a larger --total-steps"),
    ("train --resume {cp} --total-steps 100", "pass a larger --total-steps"),
    ("train --resume {cp} --total-steps -1", "pass a larger --total-steps"),
    ("train --resume {cp} --total-steps 400 --out {tmp}/r2", "drop --out"),
    ("train --resume {cp} --total-steps 400 --seed 2", "drop --env, --algo and --seed"),
    ("train --resume {cp} --total-steps 400 dqn.lr=0.1", "'dqn.lr' cannot change"),
    ("train acrobot-dqn --resume {cp} --total-steps 400", "pass 'cartpole-dqn' or no preset"),
    ("train {presets}/acrobot-dqn.yaml --resume {cp} --total-steps 400", "pass 'cartpole-dqn'"),
    ("train no-such-preset --resume {cp} --total-steps 400", "unknown preset"),
    # train flags
    ("train cartpole-dqn --seed -1 --out {tmp}/r", "train.seed=-1 must be >= 0"),
    ("train cartpole-dqn --total-steps 0 --out {tmp}/r", "must be > 0"),
    ("train cartpole-dqn --total-steps ten --out {tmp}/r", "invalid int value"),
    ("train cartpole-dqn --device gpu7 --out {tmp}/r", "use auto, cpu, cuda or mps"),
    ("train cartpole-dqn --algo foo --out {tmp}/r", "is not one of"),
    ("train {cfg_binary}/config.yaml --out {tmp}/r", "is not text; pass a YAML file"),
    ("train {tmp}/no-such.yaml --out {tmp}/r", "not found; check the path"),
    # eval
    ("eval {cp} --episodes 0", "must be a positive number of episodes"),
    ("eval {cp} --episodes -3", "must be a positive number of episodes"),
    ("eval {cp} --episodes x", "invalid int value"),
    ("eval {cp} --seed -1", "--seed -1 must be >= 0"),
    ("eval {cp} --checkpoint worst", "invalid choice"),
    ("eval {cp} --paraphrases {tmp}/none.json", "no such file"),
    ("eval {cp} --paraphrases {afile}", "is not drlzero/BabyAIText-v0"),
    ("eval {cp} --held-out", "is not drlzero/BabyAIText-v0"),
    ("eval", "eval needs a run directory"),
    ("eval --baseline random", "needs --env"),
    ("eval {cp} --baseline random --env CartPole-v1", "no run directory"),
    ("eval --baseline random --env NoSuchEnv-v0", "unknown environment"),
    ("eval --baseline random --env CartPole-v1 --episodes 0", "positive number of episodes"),
    ("eval --baseline random --env CartPole-v1 --seed -5", "must be >= 0"),
    ("eval --baseline track --env CartPole-v1", "it has only 'random'"),
    ("eval --baseline trak --env drlzero/CatchBall-v0", "did you mean 'track'?"),
    ("eval --baseline track --env no-such-preset-or-env", "unknown environment"),
    # record
    ("record {cp} --episodes 0", "must be a positive number of episodes"),
    ("record {cp} --episodes -1", "must be a positive number of episodes"),
    ("record {tmp}/no-such-run", "does not exist"),
    # collect
    ("collect --env CartPole-v1 --policy random --episodes 0 --out {tmp}/c", "positive number"),
    ("collect --env CartPole-v1 --policy random --steps -5 --out {tmp}/c", "positive number"),
    ("collect --env CartPole-v1 --policy random --steps x --out {tmp}/c", "invalid int value"),
    ("collect --env CartPole-v1 --policy random --out {tmp}/c", "--episodes --steps is required"),
    ("collect --env CartPole-v1 --policy random --episodes 1", "required: --out"),
    ("collect --env NoSuch-v0 --policy random --episodes 1 --out {tmp}/c", "unknown environment"),
    ("collect --env CartPole-v1 --policy nope --episodes 1 --out {tmp}/c", "use random, baseline"),
    ("collect --env CartPole-v1 --policy baseline:track --episodes 1 --out {tmp}/c", "only"),
    ("collect --env drlzero/CatchBall-v0 --policy baseline:x --episodes 1 --out {tmp}/c", "one of"),
    ("collect --policy random --episodes 1 --out {tmp}/c", "needs at least one --env"),
    ("collect --env CartPole-v1 --policy random --episodes 1 --epsilon 2 --out {tmp}/c", "[0, 1]"),
    (
        "collect --env CartPole-v1 --policy random --episodes 1 --epsilon nan --out {tmp}/c",
        "[0, 1]",
    ),
    (
        "collect --env CartPole-v1 --policy random --episodes 1 --num-envs 0 --out {tmp}/c",
        "positive",
    ),
    ("collect --env CartPole-v1 --policy random --episodes 1 --seed -1 --out {tmp}/c", ">= 0"),
    (
        "collect --env Pendulum-v1 --policy random --episodes 1 --epsilon 0.5 --out {tmp}/c",
        "Discrete",
    ),
    ("collect --env Acrobot-v1 --policy {cp} --episodes 1 --out {tmp}/c", "trained on CartPole-v1"),
    (
        "collect --env CartPole-v1 --env CartPole-v1 --policy random --episodes 1 --out {tmp}/c",
        "once",
    ),
    # distill
    ("distill {cp} --steps 0", "--steps 0 must be > 0"),
    ("distill {cp} --steps -5", "--steps -5 must be > 0"),
    ("distill {cp} --hidden 0,32", "must be positive sizes, e.g. 32,32"),
    ("distill {cp} --hidden abc", "must be sizes like 32,32"),
    ("distill {cp} --hidden 32,,32", "must be sizes like 32,32"),
    ("distill {cp} --features-dim 0", "--features-dim 0 must be > 0"),
    ("distill {cp} --loss foo", "is not one of: kl, mse, nll"),
    ("distill {cp} --tau 0", "--tau 0.0 must be > 0"),
    ("distill {cp} --teacher-fraction 1.5", "--teacher-fraction 1.5 must be in [0, 1]"),
    ("distill {cp} --teacher-epsilon -1", "--teacher-epsilon -1.0 must be in [0, 1]"),
    ("distill {cp} --student-epsilon 2", "--student-epsilon 2.0 must be in [0, 1]"),
    ("distill {cp} --lr nan", "--lr nan must be > 0"),
    ("distill {cp} --batch-size 0", "--batch-size 0 must be > 0"),
    ("distill {cp} --eval-episodes 0", "--eval-episodes 0 must be > 0"),
    ("distill {cp} --seed -1", "--seed -1 must be >= 0"),
    ("distill {cp} {cp} --steps 10", "one teacher per env"),
    # pretrain (values are checked before the data is read)
    ("pretrain --data {ds} --out {tmp}/m --steps -1", "--steps -1 must be >= 0"),
    ("pretrain --data {ds} --out {tmp}/m --batch-size 0", "--batch-size 0 must be > 0"),
    ("pretrain --data {ds} --out {tmp}/m --lr -1", "--lr -1.0 must be > 0"),
    ("pretrain --data {ds} --out {tmp}/m --d-model 65", "must be divisible by --n-heads"),
    ("pretrain --data {ds} --out {tmp}/m --n-layers 0", "--n-layers 0 must be > 0"),
    ("pretrain --data {ds} --out {tmp}/m --bins 1", "--bins 1 must be >= 2"),
    ("pretrain --data {ds} --out {tmp}/m --pooling max", "must be cls or mean"),
    ("pretrain --data {ds} --out {tmp}/m --mask-prob 1.5", "--mask-prob must be in (0, 1)"),
    ("pretrain --data {ds} --out {tmp}/m --k-max 0", "--k-max 0 must be > 0"),
    ("pretrain --data {ds} --out {tmp}/m --log-every -1", "--log-every -1 must be >= 0"),
    ("pretrain --data {ds} --out {tmp}/m --seed -1", "--seed -1 must be >= 0"),
    ("pretrain --data {ds} --out {tmp}/m --objectives foo", "give distinct names from"),
    ("pretrain --data {ds} --out {tmp}/m --objectives mask,mask", "give distinct names"),
    ("pretrain --data {ds} --out {tmp}/m --weights 1,2", "one non-negative weight per objective"),
    ("pretrain --data {ds} --out {tmp}/m --weights a,b,c", "must be comma-separated numbers"),
    (
        "pretrain --data {ds} --out {tmp}/m --weights nan,1,1",
        "one non-negative weight per objective",
    ),
    ("pretrain --data {tmp}/no-such-data --out {tmp}/m", "does not exist"),
    (
        "pretrain --data {cp} --out {tmp}/m",
        "has no manifest.json: not a drlzero trajectory dataset",
    ),
    # sweep (all refused before Ray starts)
    ("sweep cartpole-dqn --seeds x", "must be comma-separated integers"),
    ("sweep cartpole-dqn --seeds 1,1", "must list distinct integers >= 0"),
    ("sweep cartpole-dqn --seeds -1", "must list distinct integers >= 0"),
    ("sweep cartpole-dqn --grid dqn.lr", "must look like section.key=v1,v2"),
    ("sweep cartpole-dqn --grid =1,2", "must look like section.key=v1,v2"),
    ("sweep cartpole-dqn --grid dqn.lr=", "must look like section.key=v1,v2"),
    ("sweep cartpole-dqn --grid head.nosy=1,2", "did you mean 'head.noisy'?"),
    ("sweep cartpole-dqn --grid dqn.lr=a,b", "has the wrong type: expected float"),
    ("sweep cartpole-dqn --grid dqn.lr=1,2 --grid dqn.lr=3", "give all its values at once"),
    ("sweep cartpole-dqn --grid dqn.gamma=0.9,2", "dqn.gamma=2.0 must be in [0, 1]"),
    ("sweep cartpole-dqn --total-steps 0", "train.total_steps=0 must be > 0"),
    ("sweep no-such-preset", "run 'drlzero list' to see presets"),
]


def _expand(line: str, paths: dict[str, str], tmp: Path) -> list[str]:
    presets = str(resources.files("drlzero") / "presets")
    return line.format(**paths, tmp=tmp, presets=presets).split()


@pytest.mark.parametrize(("line", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(
    line: str,
    fragment: str,
    paths: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if line.startswith("pretrain"):
        pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would land here
    message = _fails_in_one_line(_expand(line, paths, tmp_path), capsys)
    assert fragment in message
    # a refused command leaves no output folder behind (it would block the retry)
    for name in ("r", "r2", "c", "m"):
        assert not (tmp_path / name).exists(), name
    assert not (tmp_path / "runs").exists()


def test_damaged_dataset_is_one_line(
    paths: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    args = ["pretrain", "--data", paths["ds_cut"], "--out", str(tmp_path / "m"), "--steps", "1"]
    assert "the dataset is damaged; collect it again" in _fails_in_one_line(args, capsys)
    assert not (tmp_path / "m").exists()  # made for the model, removed with the failure


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_refused_resumes_change_nothing(
    paths: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Path(shutil.copytree(paths["cp"], tmp_path / "run"))
    before = _digests(run)
    for extra in (
        ["--total-steps", "100"],
        ["--total-steps", "400", "dqn.lr=0.1"],
        ["--total-steps", "400", "--out", str(tmp_path / "x")],
    ):
        _fails_in_one_line(["train", "--resume", str(run), *extra], capsys)
    _fails_in_one_line(
        ["train", "acrobot-dqn", "--resume", str(run), "--total-steps", "400"], capsys
    )
    assert _digests(run) == before  # config.yaml keeps its budget; checkpoints untouched


def test_refused_train_leaves_no_folder_and_retry_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    # Pendulum has Box actions: DQN refuses it only once the env is built, after the folder is
    msg = _fails_in_one_line(
        ["train", "cartpole-dqn", "--env", "Pendulum-v1", "--out", str(out), *FAST], capsys
    )
    assert "Discrete action" in msg
    assert not out.exists()
    code, _out, _err = _main(["train", "cartpole-dqn", "--out", str(out), *TINY], capsys)
    assert code == 0 and (out / "checkpoints" / "last.json").is_file()


def test_file_as_out_is_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    _fails_in_one_line(["train", "cartpole-dqn", "--out", str(target), *FAST], capsys)
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "cartpole-dqn", "--out", "{afile}"], "choose a folder path for --out"),
        (["eval", "{swapped}"], "they come from different runs"),
        (["train", "--resume", "{cfg_empty}", "--total-steps", "400"], "is empty; restore"),
    ],
)
def test_real_process_prints_one_line(
    args: list[str], fragment: str, paths: dict[str, str]
) -> None:
    argv = [a.format(**paths) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "drlzero", *argv], capture_output=True, text=True, timeout=300
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# ----------------------------------------------------------------------- resume with a preset


def test_resume_accepts_the_runs_own_preset(
    paths: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = shutil.copytree(paths["cp"], tmp_path / "run")
    code, out, err = _main(
        ["train", "cartpole-dqn", "--resume", str(run), "--total-steps", "400"], capsys
    )
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["steps"] == 400
    yaml_path = str(resources.files("drlzero") / "presets" / "cartpole-dqn.yaml")
    code, out, err = _main(
        ["train", yaml_path, "--resume", str(run), "--total-steps", "500", "--no-progress"], capsys
    )
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["steps"] == 500
    assert "total_steps: 500" in (run / "config.yaml").read_text()


def test_resume_preset_check_in_python() -> None:
    from drlzero.api import _check_resume_preset
    from drlzero.config import load_config

    cfg = load_config("cartpole-dqn")
    _check_resume_preset("cartpole-dqn", cfg, Path("run"))
    _check_resume_preset(load_config("cartpole-dqn"), cfg, Path("run"))
    with pytest.raises(drlzero.UserError, match="pass 'cartpole-dqn' or no preset"):
        _check_resume_preset("cartpole-rainbow", cfg, Path("run"))
    with pytest.raises(drlzero.UserError, match="not 'acrobot-dqn'"):
        _check_resume_preset(load_config("acrobot-dqn"), cfg, Path("run"))


# ------------------------------------------------------------------------------------ list


def _list_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, _err = _main(["list"], capsys)
    assert code == 0
    return out.splitlines()


def test_list_shows_the_dqn_switches(capsys: pytest.CaptureFixture[str]) -> None:
    text = "\n".join(_list_lines(capsys))
    for setting in (
        "dqn.double=true",
        "head.dueling=true",
        "replay.prioritized=true",
        "dqn.n_step=N",
        "head.distributional=c51|qr",
        "head.noisy=true",
    ):
        assert f"  {setting} " in text, setting
    assert "Rainbow = all six" in text


def test_list_shows_what_each_preset_combines(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _list_lines(capsys)

    def row(name: str) -> str:
        return next(ln for ln in lines if ln.split()[:1] == [name])

    assert row("cartpole-rainbow").endswith(
        "dqn = Rainbow (double, dueling, prioritized, n_step=3, c51, noisy) on CartPole-v1 "
        "(mlp encoder)"
    )
    assert row("cartpole-dqn").endswith("dqn + double on CartPole-v1 (mlp encoder)")
    assert row("catchball-dqn").endswith("dqn + double on drlzero/CatchBall-v0 (mlp encoder)")
    assert row("frozenlake-qlearning").split()[1:3] == ["qlearning", "on"]
    assert "pretrained/lora encoder" in row("babyai-goto-lora")
    for name in drlzero.config.preset_names():  # every preset has its combination line
        assert " on " in row(name), name


def test_preset_combination_names_each_switch() -> None:
    from drlzero.cli import preset_combination
    from drlzero.config import load_config

    cfg = load_config(
        "cartpole-dqn", overrides=["head.distributional=qr", "head.noisy=true", "dqn.n_step=5"]
    )
    assert (
        preset_combination(cfg) == "dqn + double, n_step=5, qr, noisy on CartPole-v1 (mlp encoder)"
    )


# ------------------------------------------------------------------------ random baseline

KEYS = {"mean_return", "std_return", "mean_length", "success_rate", "episodes"}


@pytest.mark.parametrize(
    "env_id",
    [
        "CartPole-v1",  # Box obs, Discrete actions
        "Pendulum-v1",  # Box actions
        "drlzero/CatchBall-v0",  # a scenario
        "drlzero/TrafficGrid-v0",  # MultiDiscrete actions
        "drlzero/TextTreasure-v0",  # Dict observations
        "drlzero/CatchBallText-v0",  # Text observations
        "drlzero/BabyAIText-v0",  # BabyAI in words (needs minigrid)
    ],
)
def test_random_baseline_on_every_kind_of_env(
    env_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if env_id.startswith("drlzero/BabyAI"):
        pytest.importorskip("minigrid")
    args = ["eval", "--baseline", "random", "--env", env_id, "--episodes", "3", "--json"]
    code, out, err = _main(args, capsys)
    assert code == 0, err
    res = json.loads(out)
    assert set(res) >= KEYS
    assert res["episodes"] == 3
    assert res["mean_length"] >= 1


def test_random_baseline_is_chance_level_and_seeded() -> None:
    from drlzero.api import evaluate_baseline

    a = evaluate_baseline("CartPole-v1", "random", episodes=20, seed=1)
    b = evaluate_baseline("CartPole-v1", "random", episodes=20, seed=1)
    c = evaluate_baseline("CartPole-v1", "random", episodes=20, seed=2)
    assert a == b and a != c
    # uniform random CartPole balances ~22 steps on average (far from a trained 500)
    assert 10 <= a["mean_length"] <= 45
    assert a["mean_return"] == a["mean_length"]  # reward 1 per step
    pend = evaluate_baseline("Pendulum-v1", "random", episodes=2, seed=0)
    assert pend["mean_length"] == 200 and pend["mean_return"] < -500  # time limit; swinging
    preset = evaluate_baseline("cartpole-dqn", "random", episodes=2, seed=0)
    assert preset["success_rate"] == 0.0  # the preset's success_return=475 is applied


def test_random_controller_stays_in_the_action_space() -> None:
    from drlzero.config import EnvConfig
    from drlzero.envs.baselines import random_controller

    grid = random_controller(EnvConfig(id="drlzero/TrafficGrid-v0"), seed=0)(np.zeros((5, 32)))
    assert grid.shape == (5, 4) and set(np.unique(grid)) <= {0, 1}
    torque = random_controller(EnvConfig(id="Pendulum-v1"), seed=0)(np.zeros((3, 3)))
    assert torque.shape == (3, 1) and np.all(np.abs(torque) <= 2.0)
    text = random_controller(EnvConfig(id="drlzero/CatchBallText-v0"), seed=0)(("a", "b"))
    assert text.shape == (2,) and set(text.tolist()) <= {0, 1, 2}
