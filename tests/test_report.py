"""``drlzero report``: the page's content from tiny runs, sweep folders, text attributions, and
the page opened in a real headless browser (Debian's chromium; CI installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import drlzero
from drlzero.cli import main
from drlzero.reporting import find_runs

FAST = ["train.progress=false", "train.tensorboard=false"]
TINY = [
    *FAST,
    "train.total_steps=300",
    "dqn.learning_starts=100",
    "dqn.train_freq=50",
    "dqn.gradient_steps=8",
    "train.eval_episodes=2",
    "train.eval_freq=100",
    "env.max_episode_steps=60",
]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two seeds of one CartPole DQN setting, a third run with another learning rate, and a
    tiny discrete PPO run: three groups."""
    root = tmp_path_factory.mktemp("report")
    out = {}
    for name, over in (
        ("dqn-s0", ["train.seed=0"]),
        ("dqn-s1", ["train.seed=1"]),
        ("dqn-lr", ["train.seed=0", "dqn.lr=0.01"]),
    ):
        out[name] = drlzero.train("cartpole-dqn", out=root / name, overrides=[*TINY, *over]).run_dir
    ppo = [*FAST, "train.total_steps=256", "ppo.n_steps=32", "env.num_envs=2"]
    ppo += ["train.eval_episodes=2", "train.eval_freq=128", "env.max_episode_steps=60"]
    out["ppo"] = drlzero.train("cartpole-ppo", out=root / "ppo", overrides=ppo).run_dir
    return out


@pytest.fixture(scope="module")
def page(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    return drlzero.report(list(runs.values()), out=out, max_steps=40).path


def _svgs(text: str) -> int:
    return len(re.findall(r"<svg\b", text))


def test_page_sections_and_numbers(page: Path, runs: dict[str, Path]) -> None:
    text = page.read_text()
    # curves (1), and per group the scores and attributions plots (3 groups x 2)
    assert _svgs(text) == 1 + 3 * 2
    for section in ("Learning curves", "Evaluation", "Config differences", "Episodes"):
        assert f">{section}" in text
    assert text.count("data:image/gif;base64,") == 3  # one recorded episode per group
    assert "Q-values along the episode" in text and "action probabilities along" in text
    assert "integrated gradients of the chosen action" in text
    # seeds 0 and 1 are one group: its mean over seeds is in the table
    finals = [json.loads((runs[k] / "eval.json").read_text())["mean_return"] for k in runs]
    mean01 = (finals[0] + finals[1]) / 2
    assert f"mean over 2 seeds</td><td>{mean01:.2f} ±" in text
    # groups are named by preset, and by the values that tell a preset's groups apart
    for label in (
        "cartpole-dqn lr=0.0023 (n=2)",
        "cartpole-dqn lr=0.01 (n=1)",
        "cartpole-ppo (n=1)",
    ):
        assert label in text, label
    for k, v in zip(runs, finals, strict=True):
        assert f"<td>{k}</td>" in text and f"{v:.2f} ±" in text
    # config differences name the keys that differ, not those all runs share
    diff = text[text.index('id="config"') : text.index('id="episodes"')]
    for key in ("dqn.lr", "train.seed", "algo"):
        assert f"<td>{key}</td>" in diff
    assert "<td>dqn.gamma</td>" not in diff
    # self-contained: nothing is fetched (only data: URIs and in-page anchors)
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    assert "<link" not in text and "@import" not in text


def test_sweep_folder_finds_its_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    """A folder ``drlzero sweep`` wrote (summary.json naming its runs; moved elsewhere), and a
    plain folder of runs without one."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    names = ["dqn-s0", "dqn-s1"]
    for n in names:
        shutil.copytree(runs[n], sweep / n)
    rows = [{"label": "default", "run_dirs": [f"/elsewhere/{n}" for n in names]}]
    (sweep / "summary.json").write_text(json.dumps({"settings": rows}))
    assert [p.name for p in find_runs([sweep])] == names
    (sweep / "summary.json").unlink()
    assert [p.name for p in find_runs([sweep])] == names
    assert main(["report", str(sweep), "--no-explain"]) == 0
    text = (sweep / "report.html").read_text()
    assert "mean over 2 seeds" in text and _svgs(text) == 1


def test_a_run_without_checkpoints_still_gets_its_curves(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """A run that has not checkpointed yet: curves and tables, and a note instead of an episode."""
    run = Path(shutil.copytree(runs["dqn-s0"], tmp_path / "young"))
    shutil.rmtree(run / "checkpoints")
    text = drlzero.report(run).path.read_text()
    assert _svgs(text) == 1 and "data:image/gif" not in text
    assert re.search(r'class="note">[^<]*train first', text)


def _chromium(page: Path, tmp: Path) -> tuple[str, list[str], Path]:
    """Open ``page`` headless: (the DOM after its script ran, console messages, screenshot)."""
    shot = tmp / f"{page.stem}.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
        "--window-size=1200,2400",
        f"--screenshot={shot}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Every console message (the page writes none: any is an error or a warning).
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console, shot


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium here (apt-get install -y chromium; CI installs it in .ci/run)",
)
def test_page_renders_in_a_headless_browser(page: Path, tmp_path: Path) -> None:
    # the check itself: a page with a script error is caught
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><svg></svg><script>console.error('x'); nope();</script>")
    _dom, console, _ = _chromium(broken, tmp_path)
    assert any("nope is not defined" in ln for ln in console), console

    dom, console, shot = _chromium(page, tmp_path)
    assert console == []
    # the script ran: it counted the plots it found in the rendered DOM
    count = re.search(r'data-plots="(\d+)"', dom)
    assert count is not None and int(count.group(1)) == 7
    assert _svgs(dom) >= 7 and re.search(r"<svg[^>]*>.*?<path", dom, re.S)
    assert shot.stat().st_size > 20_000  # a page of plots, not a blank image
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_word_attributions_with_frozen_minilm(tmp_path: Path) -> None:
    """The frozen-MiniLM BabyAI presets (text alone, and text + grid image) at a tiny budget:
    the page highlights the words of the observation and mission, and each step's attributions
    add up to the Q-value minus that of all-zero word embeddings (integrated gradients'
    completeness). Dict observations are recorded too (batched key by key)."""
    pytest.importorskip("transformers")
    over = [*FAST, "train.total_steps=40", "dqn.learning_starts=20", "env.num_envs=1"]
    over += ["train.eval_episodes=1", "train.eval_freq=0", "env.max_episode_steps=4"]
    text_run = drlzero.train("babyai-goto-frozen", out=tmp_path / "bb", overrides=over).run_dir
    mm = "babyai-goto-multimodal-frozen"
    mm_run = drlzero.train(mm, out=tmp_path / "mm", overrides=over).run_dir
    page = drlzero.report([text_run, mm_run], out=tmp_path / "r.html", max_steps=4)
    text = page.path.read_text()
    parts = text.split("<h3>")
    assert len(parts) == 3 and "run bb" in parts[1] and "run mm" in parts[2]
    for part, n_words in ((parts[1], 10), (parts[2], 5)):
        steps = re.findall(
            r"attributions sum to ([-+.\d]+), the Q-value minus that of all-zero word "
            r"embeddings is ([-+.\d]+)",
            part,
        )
        assert len(steps) >= 2
        for total, gap in steps:
            assert abs(float(total) - float(gap)) <= 0.15 * abs(float(gap)) + 2e-3, steps
        words = re.findall(r'<span class="w"[^>]*title="([-+.\d]+)">([^<]*)</span>', part)
        said = {w for _a, w in words}
        assert {"mission", "go", "to"} <= said, said  # the mission's words, one span each
        assert len(said) >= n_words and not said & {"[CLS]", "[SEP]"}
        assert any(float(a) != 0.0 for a, _w in words)
        assert part.count("data:image/gif;base64,") == 1
    assert "word attributions only" in parts[2]  # the grid part is said to be unexplained


def test_grid_attributions_and_frames_on_minatar(tmp_path: Path) -> None:
    """A grid observation (MinAtar Breakout, 10x10x4) gets the spatial attribution map, and its
    float [0, 1] frames are scaled to visible pixels, not truncated to black."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    pytest.importorskip("minatar")
    over = [*FAST, "train.total_steps=150", "dqn.learning_starts=100", "train.eval_episodes=1"]
    over += ["train.eval_freq=0", "env.max_episode_steps=20"]
    run = drlzero.train("minatar-breakout-dqn", out=tmp_path / "mb", overrides=over).run_dir
    text = drlzero.report(run, max_steps=20).path.read_text()
    assert "where the chosen action's Q-value comes from" in text and _svgs(text) == 3
    gif = re.search(r'src="data:image/gif;base64,([^"]+)"', text)
    assert gif is not None
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(gif.group(1)))).convert("RGB"))
    assert first.shape[1] == 320 and first.max() > 100
