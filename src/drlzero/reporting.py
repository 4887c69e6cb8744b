"""``drlzero report``: one self-contained HTML page about one or more runs.

What it shows (docs/report.md explains how to read each part):

- learning curves: the greedy evaluations of ``metrics.csv`` and the training episodes of
  ``episodes.csv``; runs whose configs differ only in the seed form a group, drawn as the mean
  over seeds with a ±1 std band;
- the evaluation table (``eval.json`` of each run, and the mean over a group's seeds);
- the config keys in which the runs differ;
- per group (its first run): a recorded greedy episode (GIF) and the explanations along it:
  the Q-values (DQN) or action probabilities (PPO) with the chosen action marked, the
  integrated-gradients attribution of the chosen action's score to each input (vector and grid
  observations: heatmaps), and for pretrained text encoders the attribution to each word of the
  observation text (:mod:`drlzero.explain`).

The page needs no network: plots are inline SVG (matplotlib), the episode a base64 GIF, the
style and the little script inline.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from drlzero.checks import check_out_file, make_out_dir, read_run_config
from drlzero.config import Config
from drlzero.errors import UserError

#: Keys that do not change what a run computes: runs differing only in these are seeds of one
#: setting.
SEED_KEYS = frozenset(
    {"train.seed", "train.progress", "train.device", "train.threads", "train.tensorboard"}
)

#: Names of the observation features and actions of a few classic-control envs (others: x0..).
FEATURE_NAMES = {
    "CartPole-v1": ["cart position", "cart velocity", "pole angle", "pole angular velocity"],
    "MountainCar-v0": ["position", "velocity"],
    "Acrobot-v1": ["cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1 velocity", "θ2 velocity"],
}
ACTION_NAMES = {
    "CartPole-v1": ["push left", "push right"],
    "MountainCar-v0": ["left", "none", "right"],
    "Acrobot-v1": ["torque -1", "torque 0", "torque +1"],
}


# ---------------------------------------------------------------------------------------------
# Finding and reading runs


@dataclasses.dataclass
class RunData:
    """What the report reads from one run directory."""

    path: Path
    config: Config
    flat: dict[str, str]
    eval: dict[str, Any] | None
    metrics: list[dict[str, str]]
    episodes: list[dict[str, str]]

    @property
    def label(self) -> str:
        return self.path.name


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: a run directory itself, or a folder holding runs (a
    ``drlzero sweep`` directory: the runs of its ``summary.json``, else every run below it)."""
    if not paths:
        raise UserError("report needs at least one run directory or sweep directory")
    runs: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UserError(f"{p} does not exist; pass a run directory or a sweep directory")
        if not p.is_dir():
            raise UserError(f"{p} is a file; pass a run directory or a sweep directory")
        if _is_run(p):
            runs.append(p)
            continue
        found: list[Path] = []
        summary = p / "summary.json"
        if summary.is_file():
            try:
                rows = json.loads(summary.read_text()).get("settings", [])
                for row in rows:
                    for d in row.get("run_dirs", []):
                        # the sweep may have moved: its runs are its own subfolders
                        q = p / Path(d).name
                        found.append(q if _is_run(q) else Path(d))
            except (ValueError, AttributeError, TypeError):
                found = []
            found = [q for q in found if _is_run(q)]
        if not found:
            found = sorted(q.parent for q in p.rglob("config.yaml") if q.parent != p)
            found = [q for q in found if _is_run(q)]
        if not found:
            raise UserError(
                f"{p} is not a run directory (no config.yaml) and holds no runs; pass a folder "
                "that 'drlzero train' or 'drlzero sweep' wrote"
            )
        runs += found
    unique: list[Path] = []
    for r in runs:
        if r.resolve() not in {u.resolve() for u in unique}:
            unique.append(r)
    return unique


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(tree, sort_keys=True, default=str)}


def read_run(path: Path) -> RunData:
    cfg = read_run_config(path)
    ev = None
    if (path / "eval.json").is_file():
        try:
            ev = json.loads((path / "eval.json").read_text())
        except ValueError:
            ev = None
    return RunData(
        path=path,
        config=cfg,
        flat=_flatten(dataclasses.asdict(cfg)),
        eval=ev,
        metrics=_read_csv(path / "metrics.csv"),
        episodes=_read_csv(path / "episodes.csv"),
    )


def group_runs(runs: list[RunData]) -> list[list[RunData]]:
    """Runs whose configs agree on every key but :data:`SEED_KEYS`, in first-seen order."""
    groups: dict[tuple[tuple[str, str], ...], list[RunData]] = {}
    for r in runs:
        key = tuple(sorted((k, v) for k, v in r.flat.items() if k not in SEED_KEYS))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def config_differences(runs: list[RunData]) -> list[tuple[str, list[str]]]:
    """(key, value per run) for each config key whose value is not the same in every run."""
    keys = sorted({k for r in runs for k in r.flat})
    out = []
    for k in keys:
        vals = [r.flat.get(k, "—") for r in runs]
        if len(set(vals)) > 1:
            out.append((k, vals))
    return out


def group_labels(groups: list[list[RunData]]) -> list[str]:
    """Each group's name: its preset name, followed, among groups of the same preset, by the
    (at most 3) config values that tell them apart, e.g. ``cartpole-dqn lr=0.01``."""
    labels = []
    for g in groups:
        name = g[0].config.name
        peers = [h[0] for h in groups if h[0].config.name == name]
        parts = []
        if len(peers) > 1:
            for k, vals in config_differences(peers):
                if k not in SEED_KEYS:
                    v = vals[peers.index(g[0])]
                    parts.append(f"{k.rsplit('.', 1)[-1]}={v.strip(chr(34))}")
        extra = " ".join(parts[:3]) + (" …" if len(parts) > 3 else "")
        labels.append(f"{name} {extra}".strip())
    return labels


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib -> inline SVG)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    plt.rcParams["svg.hashsalt"] = "drlzero"  # stable ids: the same page for the same runs
    return plt


def _svg(fig: Any) -> str:
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue and doctype: inline in HTML


def _floats(rows: list[dict[str, str]], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for r in rows:
        try:
            xv, yv = float(r.get(x) or "nan"), float(r.get(y) or "nan")
        except ValueError:
            continue
        if math.isfinite(xv) and math.isfinite(yv):
            xs.append(xv)
            ys.append(yv)
    return np.asarray(xs), np.asarray(ys)


def _hold(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """(runs, len(grid)): each curve's last value at or before each grid step (its first
    value before it starts), so a run that stopped early keeps its last value."""
    return np.stack(
        [v[np.clip(np.searchsorted(s, grid, side="right") - 1, 0, None)] for s, v in curves]
    )


def _smooth_episodes(steps: np.ndarray, returns: np.ndarray, window: int = 10) -> np.ndarray:
    """Mean return of the last ``window`` finished episodes at each episode's end."""
    c = np.cumsum(np.concatenate([[0.0], returns]))
    idx = np.arange(1, len(returns) + 1)
    lo = np.clip(idx - window, 0, None)
    return (c[idx] - c[lo]) / (idx - lo)


def curves_svg(groups: list[list[RunData]], labels: list[str]) -> str:
    """Greedy-eval and training-episode returns against env steps, per group mean ± std."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    for ax, what in zip(axes, ("eval", "train"), strict=True):
        for group, label in zip(groups, labels, strict=True):
            curves = []
            for r in group:
                if what == "eval":
                    s, v = _floats(r.metrics, "step", "eval_return_mean")
                else:
                    s, v = _floats(r.episodes, "step", "return")
                    v = _smooth_episodes(s, v) if len(v) else v
                if len(s):
                    curves.append((s, v))
            if not curves:
                continue
            grid = np.unique(np.concatenate([s for s, _ in curves]))
            if what == "train" and len(grid) > 400:  # enough points for a line, a small page
                grid = np.linspace(grid[0], grid[-1], 400)
            ys = _hold(curves, grid)
            mean, std = ys.mean(0), ys.std(0)
            marker = "o" if what == "eval" and len(grid) <= 30 else None
            line = ax.plot(
                grid, mean, lw=1.6, marker=marker, ms=3, label=f"{label} (n={len(curves)})"
            )
            if len(curves) > 1:
                ax.fill_between(grid, mean - std, mean + std, color=line[0].get_color(), alpha=0.2)
        ax.set_xlabel("env steps")
        ax.set_ylabel("greedy eval return" if what == "eval" else "training return (last 10 ep.)")
        ax.set_title("evaluation" if what == "eval" else "training episodes", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _svg(fig)


# ---------------------------------------------------------------------------------------------
# One explained episode


@dataclasses.dataclass
class Explained:
    """What the report shows for one run's recorded greedy episode."""

    run: str
    steps: int
    episode_return: float
    gif: str | None = None  # data URI
    scores_svg: str | None = None
    attribution_svg: str | None = None
    words_html: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def _action_names(env: Any, env_id: str, n: int) -> list[str]:
    if env_id in ACTION_NAMES and len(ACTION_NAMES[env_id]) == n:
        return ACTION_NAMES[env_id]
    base = getattr(env, "unwrapped", env)
    acts = getattr(base, "actions", None)
    try:
        names = [a.name for a in acts]  # type: ignore[union-attr]  # MiniGrid's Actions enum
        if len(names) >= n:
            return names[:n]
    except TypeError:
        pass
    meanings = getattr(base, "get_action_meanings", None)
    if callable(meanings):
        names = list(meanings())
        if len(names) == n:
            return names
    return [f"a{i}" for i in range(n)]


def _gif_uri(
    frames: list[np.ndarray], fps: int = 15, max_frames: int = 240, width: int = 320
) -> str | None:
    from PIL import Image

    if not frames:
        return None
    stride = max(1, math.ceil(len(frames) / max_frames))
    from drlzero.api import frame_uint8

    images = []
    for f in frames[::stride]:
        img = Image.fromarray(frame_uint8(f))
        if img.width != width:  # tiny grids (MinAtar: 10x10) grow with sharp pixels
            size = (width, max(1, round(img.height * width / img.width)))
            img = img.resize(size, Image.Resampling.NEAREST if img.width < width else None)
        images.append(img)
    buf = io.BytesIO()
    duration = max(1, round(1000 * stride / fps))
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
    )
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _scores_fn(agent: Any) -> tuple[Any, str] | None:
    """(model input (B, ...) tensor -> per-action scores (B, A), "q" | "logits"), or None when
    the agent has no per-action scores (tabular, SAC, continuous PPO)."""
    net = agent.net
    if net is None:
        return None
    if agent.config.algo == "ppo":
        if getattr(net, "kind", "") != "discrete":
            return None
        return (lambda x: net.policy_head(net.encoder(x))), "logits"
    if agent.config.algo in ("dqn",):
        return (lambda x: net(x)), "q"
    return None


def _head_from_features(agent: Any, kind: str) -> Any:
    net = agent.net
    if kind == "logits":
        return net.policy_head

    def head(f: Any) -> Any:
        out = net.head(f)
        return net.head.q_values(out) if hasattr(net.head, "q_values") else out

    return head


def _model_inputs(agent: Any, obs: list[Any]) -> np.ndarray:
    """The network's input for the episode's observations (one row per step)."""
    if isinstance(obs[0], dict):  # Dict observations batch key by key
        batch: Any = {k: np.stack([np.asarray(o[k]) for o in obs]) for k in obs[0]}
    else:
        batch = np.stack([np.asarray(o) for o in obs])
    x = np.asarray(agent.prep(batch))
    if agent.norm is not None:
        x = agent.norm(x)
    return x.astype(np.float32)


def _scores_svg(
    values_TA: np.ndarray, actions: list[int], names: list[str], kind: str, title: str
) -> str:
    plt = _plt()
    T, A = values_TA.shape
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    t = np.arange(T)
    for a in range(A):
        line = ax.plot(t, values_TA[:, a], lw=1.3, label=names[a])[0]
        chosen = np.asarray(actions) == a
        ax.scatter(t[chosen], values_TA[chosen, a], s=14, color=line.get_color(), zorder=3)
    ax.set_xlabel("step of the episode (dots: the action taken)")
    ax.set_ylabel("Q-value" if kind == "q" else "action probability")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=min(A, 4))
    fig.tight_layout()
    return _svg(fig)


def _actions_svg(actions_TD: np.ndarray) -> str:
    """Continuous actions (SAC, Box PPO) along the episode, one line per dimension."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    for d in range(actions_TD.shape[1]):
        ax.plot(actions_TD[:, d], lw=1.3, label=f"action[{d}]")
    ax.set_xlabel("step of the episode")
    ax.set_ylabel("action (deterministic)")
    ax.set_title("the actions along the episode", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=min(actions_TD.shape[1], 4))
    fig.tight_layout()
    return _svg(fig)


def _vector_attr_svg(attr_TD: np.ndarray, names: list[str], title: str) -> str:
    plt = _plt()
    D = attr_TD.shape[1]
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(11, 0.45 * D + 2.0), dpi=100, gridspec_kw={"width_ratios": [4, 1]}
    )
    lim = float(np.abs(attr_TD).max()) or 1.0
    im = ax.imshow(
        attr_TD.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
    )
    ax.set_yticks(range(D), names)
    ax.set_xlabel("step of the episode")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="attribution")
    share = np.abs(attr_TD).mean(0)
    bx.barh(range(D), share, color="#777")
    bx.set_yticks(range(D), [""] * D)
    bx.set_ylim(D - 0.5, -0.5)
    bx.set_xlabel("mean |attribution|")
    fig.tight_layout()
    return _svg(fig)


def _grid_attr_svg(attr_THWC: np.ndarray, title: str) -> str:
    plt = _plt()
    share_HW = np.abs(attr_THWC).sum(-1).mean(0)
    share_C = np.abs(attr_THWC).sum((1, 2)).mean(0)
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(9, 3.6), dpi=100, gridspec_kw={"width_ratios": [1.3, 1]}
    )
    im = ax.imshow(share_HW, cmap="magma", interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="mean |attribution| (all channels)")
    bx.bar(range(len(share_C)), share_C, color="#777")
    bx.set_xlabel("channel")
    bx.set_ylabel("mean |attribution|")
    bx.set_title("per channel", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def _word_html(words: list[tuple[str, float]], lim: float) -> str:
    spans = []
    for text, a in words:
        alpha = min(1.0, abs(a) / lim) if lim > 0 else 0.0
        color = f"rgba(214,39,40,{alpha:.2f})" if a >= 0 else f"rgba(31,119,180,{alpha:.2f})"
        spans.append(
            f'<span class="w" style="background:{color}" title="{a:+.4f}">'
            f"{html.escape(text)}</span>"
        )
    return " ".join(spans)


def _text_attributions(
    agent: Any,
    obs: list[Any],
    actions: list[int],
    names: list[str],
    kind: str,
    steps: list[int],
    ig_steps: int,
) -> str | None:
    """Per-word integrated gradients on the token embeddings at the given episode steps
    (a pretrained text encoder alone, or inside a multimodal encoder with the image held at the
    step's)."""
    import torch

    from drlzero.encoders.multimodal import MultimodalEncoder
    from drlzero.encoders.pretrained import PretrainedEncoder
    from drlzero.envs.text import load_tokenizer
    from drlzero.explain import token_attributions, words_of, zero_embedding_score

    outer = agent.net.encoder
    enc = outer.text if isinstance(outer, MultimodalEncoder) else outer
    if not isinstance(enc, PretrainedEncoder) or enc.obs_tokenizer is not None:
        return None
    if agent.norm is not None and getattr(agent.norm, "enabled", False):
        return None  # PPO's normaliser of embeddings is NumPy: no gradient through it
    head = _head_from_features(agent, kind)
    label = "Q-value" if kind == "q" else "logit"
    tok = load_tokenizer(enc.model_path)
    special = set(tok.all_special_tokens)
    device = enc.proj[0].weight.device
    embedding = enc.backbone.get_input_embeddings()
    blocks = []
    for t in steps:
        image = None
        if isinstance(outer, MultimodalEncoder):
            ids_L = np.asarray(obs[t][outer.text_key]).astype(np.int64)
            image = torch.as_tensor(np.asarray(obs[t][outer.image_key])[None], device=device)
        else:
            ids_L = np.asarray(obs[t]).astype(np.int64)
        ids_1L = torch.as_tensor(ids_L[None], device=device)
        target = int(actions[t])

        def score(
            ids_NL: torch.Tensor, target: int = target, image: torch.Tensor | None = image
        ) -> torch.Tensor:
            text_NT = enc.proj(enc.embed(ids_NL))
            if image is not None:  # the step's grid, the same on every path point
                img = image.expand(len(ids_NL), *image.shape[1:])
                text_NT = outer.fuse(text_NT, img)
            return head(text_NT)[:, target]

        # the path points repeat one token row: the encoder must not deduplicate them
        dedup, enc.dedup = enc.dedup, False
        try:
            attr = token_attributions(embedding, ids_1L, score, steps=ig_steps)[0].cpu().numpy()
            with torch.no_grad():
                full = float(score(ids_1L)[0])
            gap = full - float(zero_embedding_score(embedding, ids_1L, score)[0])
        finally:
            enc.dedup = dedup
        n = len(attr)
        tokens = tok.convert_ids_to_tokens([int(i) for i in ids_L[:n]])
        words = []
        for g in words_of(tokens, special):
            text = tok.convert_tokens_to_string([tokens[i] for i in g])
            words.append((text, float(attr[g].sum())))
        lim = max((abs(a) for _, a in words), default=0.0)
        total = float(attr.sum())
        blocks.append(
            f'<div class="step" data-step="{t}"><p class="meta">step {t}: action '
            f"<b>{html.escape(names[target])}</b>, {label} {full:+.3f}; the attributions "
            f"sum to {total:+.3f}, the {label} minus that of all-zero word embeddings is "
            f"{gap:+.3f}</p>"
            f'<p class="text">{_word_html(words, lim)}</p></div>'
        )
    return "\n".join(blocks)


def explain_run(
    run: RunData, *, max_steps: int = 200, ig_steps: int = 32, text_steps: int = 4
) -> Explained:
    """Play the greedy episode ``drlzero record`` plays first, and explain it."""
    import torch

    from drlzero.api import Episode, load_agent, play_episode
    from drlzero.envs import make_env
    from drlzero.explain import integrated_gradients
    from drlzero.train.run import RECORD_SEED_OFFSET

    agent = load_agent(run.path)
    cfg = agent.config
    try:
        env = make_env(cfg.env, render_mode="rgb_array", training=False)
    except Exception:  # an env without rgb_array: play it unrendered
        env = make_env(cfg.env, training=False)
    trace = Episode([], [], [], [], [])
    seed = cfg.train.seed + RECORD_SEED_OFFSET
    try:
        play_episode(agent, env, seed=seed, trace=trace, max_steps=max_steps)
        if getattr(env, "render_mode", None) == "rgb_array":
            trace.frames.append(env.render())
        n_actions = int(env.action_space.n) if hasattr(env.action_space, "n") else 0
        names = _action_names(env, cfg.env.id, n_actions)
    finally:
        env.close()
    out = Explained(run=run.label, steps=len(trace.actions), episode_return=sum(trace.rewards))
    out.gif = _gif_uri(trace.frames)
    if out.gif is None:
        out.notes.append(f"{cfg.env.id} renders no rgb_array frames: no animation.")
    if len(trace.actions) >= max_steps:
        out.notes.append(f"the episode is shown for its first {max_steps} steps.")
    found = _scores_fn(agent)
    if found is None and trace.actions and np.ndim(trace.actions[0]) == 1:
        out.scores_svg = _actions_svg(np.stack([np.asarray(a, float) for a in trace.actions]))
    if found is None or not trace.actions:
        out.notes.append(
            f"no per-action scores to explain for {cfg.algo} "
            "(Q-values, probabilities and attributions cover DQN and discrete-action PPO)."
        )
        return out
    scores, kind = found
    actions = [int(a) for a in trace.actions]
    x = torch.as_tensor(_model_inputs(agent, trace.obs))
    device = next(agent.net.parameters()).device
    x = x.to(device)
    with torch.no_grad():
        s_TA = scores(x)
        masks = trace.masks
        if kind == "logits":
            if all(m is not None for m in masks):
                allowed = torch.as_tensor(np.stack(masks), device=device)
                s_TA = s_TA.masked_fill(~allowed, -1e9)
            shown = torch.softmax(s_TA, -1).cpu().numpy()
        else:
            shown = s_TA.cpu().numpy()
    what = "Q-values" if kind == "q" else "action probabilities"
    out.scores_svg = _scores_svg(shown, actions, names, kind, f"{what} along the episode")

    target = torch.as_tensor(actions, device=device)
    from drlzero.encoders.multimodal import MultimodalEncoder
    from drlzero.encoders.pretrained import PretrainedEncoder

    multimodal = isinstance(agent.net.encoder, MultimodalEncoder)
    if multimodal or isinstance(agent.net.encoder, PretrainedEncoder):
        T = len(actions)
        picks = sorted(
            {round(i * (T - 1) / max(1, text_steps - 1)) for i in range(min(T, text_steps))}
        )
        out.words_html = _text_attributions(
            agent, trace.obs, actions, names, kind, picks, max(8, ig_steps // 2)
        )
        if out.words_html is None:
            out.notes.append("this text encoder reads no plain token ids: no word attributions.")
        if multimodal:
            out.notes.append(
                "the grid image enters through embeddings of its integer cells (no gradient): "
                "word attributions only."
            )
        return out
    if isinstance(trace.obs[0], dict):
        out.notes.append("Dict observations without a text encoder: no input attributions.")
        return out
    obs_dim = np.asarray(trace.obs[0]).ndim
    if x.dim() not in (2, 4) or obs_dim not in (1, 3):
        out.notes.append(f"observations of shape {tuple(x.shape[1:])}: no input attributions.")
        return out

    def chosen(path: torch.Tensor) -> torch.Tensor:
        return scores(path).gather(1, target.repeat(len(path) // len(target))[:, None])[:, 0]

    attr = integrated_gradients(chosen, x, steps=ig_steps).cpu().numpy()
    label = "Q-value" if kind == "q" else "logit"
    if attr.ndim == 2:
        D = attr.shape[1]
        feat = FEATURE_NAMES.get(cfg.env.id, [f"x{i}" for i in range(D)])
        if len(feat) != D:
            feat = [f"x{i}" for i in range(D)]
        out.attribution_svg = _vector_attr_svg(
            attr, feat, f"integrated gradients of the chosen action's {label} (baseline 0)"
        )
    else:
        from drlzero.encoders.cnn import channels_last

        hwc = attr if channels_last(attr.shape[1:]) else attr.transpose(0, 2, 3, 1)
        out.attribution_svg = _grid_attr_svg(
            hwc, f"where the chosen action's {label} comes from (mean over steps)"
        )
    return out


# ---------------------------------------------------------------------------------------------
# The page

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1150px;padding:0 18px 40px}
body{color:#222}h1{font-size:22px;margin:18px 0 4px}
h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}nav a{margin-right:14px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}
tr.group td{background:#fafafa;font-weight:600}.meta{color:#555;font-size:13px;margin:4px 0}
.text{font-family:ui-monospace,monospace;font-size:13px;line-height:1.9}
.w{padding:1px 2px;border-radius:3px}
.plot svg{max-width:100%;height:auto}.episode{display:flex;gap:18px;align-items:flex-start}
.note{color:#8a5a00}.steps button{margin-right:6px}
"""

# Vanilla JS: a step picker for the word attributions and a count of the plots (a check that
# the script ran). It writes nothing to the console.
_JS = """
(function(){
  document.querySelectorAll('.words').forEach(function(box){
    var steps=box.querySelectorAll('.step'); if(steps.length<2) return;
    var bar=document.createElement('div'); bar.className='steps';
    steps.forEach(function(s,i){
      var b=document.createElement('button'); b.textContent='step '+s.dataset.step;
      b.onclick=function(){steps.forEach(function(o,j){o.style.display=j===i?'':'none';});};
      bar.appendChild(b); if(i>0) s.style.display='none';
    });
    box.insertBefore(bar, box.firstChild);
  });
  document.body.dataset.plots=String(document.querySelectorAll('.plot svg').length);
})();
"""


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else "—"
    return html.escape(str(v))


def _eval_table(groups: list[list[RunData]], labels: list[str]) -> str:
    head = (
        "<tr><th>run</th><th>seed</th><th>algo</th><th>env</th><th>step</th><th>return</th>"
        "<th>length</th><th>success</th><th>episodes</th><th>checkpoint</th></tr>"
    )
    rows = []
    for group, label in zip(groups, labels, strict=True):
        vals = []
        for r in group:
            e = r.eval or {}
            sr = e.get("success_rate")
            if e.get("mean_return") is not None:
                vals.append(float(e["mean_return"]))
            rows.append(
                f"<tr><td>{html.escape(r.label)}</td><td>{r.config.train.seed}</td>"
                f"<td>{html.escape(r.config.algo)}</td><td>{html.escape(r.config.env.id)}</td>"
                f"<td>{_fmt(e.get('step'))}</td>"
                f"<td>{_fmt(e.get('mean_return'))} ± {_fmt(e.get('std_return'))}</td>"
                f"<td>{_fmt(e.get('mean_length'), 1)}</td>"
                f"<td>{'—' if sr is None else f'{100 * float(sr):.0f}%'}</td>"
                f"<td>{_fmt(e.get('episodes'))}</td><td>{_fmt(e.get('checkpoint'))}</td></tr>"
                if e
                else f"<tr><td>{html.escape(r.label)}</td><td>{r.config.train.seed}</td>"
                f"<td>{html.escape(r.config.algo)}</td><td>{html.escape(r.config.env.id)}</td>"
                '<td colspan="6">no eval.json</td></tr>'
            )
        if len(group) > 1 and vals:
            rows.append(
                f'<tr class="group"><td colspan="5">{html.escape(label)}: mean over '
                f"{len(vals)} seeds</td><td>{np.mean(vals):.2f} ± {np.std(vals):.2f}</td>"
                '<td colspan="4">(± : std over seeds of the mean returns)</td></tr>'
            )
    return f"<table>{head}{''.join(rows)}</table>"


def _diff_table(runs: list[RunData], diffs: list[tuple[str, list[str]]]) -> str:
    if len(runs) < 2:
        return "<p>One run: nothing to compare.</p>"
    if not diffs:
        return "<p>The runs share every config key.</p>"
    head = "<tr><th>key</th>" + "".join(f"<th>{html.escape(r.label)}</th>" for r in runs) + "</tr>"
    body = "".join(
        f"<tr><td>{html.escape(k)}</td>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in vals)
        + "</tr>"
        for k, vals in diffs
    )
    return f"<table>{head}{body}</table>"


def _explained_html(ex: Explained, label: str) -> str:
    parts = [f"<h3>{html.escape(label)}: run {html.escape(ex.run)}</h3>"]
    if ex.steps:
        parts.append(
            f'<p class="meta">greedy episode (the first of <code>drlzero record</code>): '
            f"{ex.steps} steps, return {ex.episode_return:.2f}</p>"
        )
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in ex.notes]
    episode = []
    if ex.gif:
        episode.append(f'<img alt="recorded episode of {html.escape(ex.run)}" src="{ex.gif}">')
    if ex.scores_svg:
        episode.append(f'<div class="plot">{ex.scores_svg}</div>')
    if episode:
        parts.append(f'<div class="episode">{"".join(episode)}</div>')
    if ex.attribution_svg:
        parts.append(f'<div class="plot">{ex.attribution_svg}</div>')
    if ex.words_html:
        parts.append(
            '<p class="meta">word attributions for the chosen action (red: raises its score, '
            "blue: lowers it; hover for the value)</p>"
            f'<div class="words">{ex.words_html}</div>'
        )
    return "\n".join(parts)


def build_report(
    paths: list[str | Path],
    out: str | Path | None = None,
    *,
    explain: bool = True,
    max_steps: int = 200,
    ig_steps: int = 32,
) -> Path:
    """Write the HTML report of the runs under ``paths``; returns its path.

    Args:
        paths: run directories and/or folders holding runs (``drlzero sweep`` directories).
        out: the ``.html`` file (default: ``report.html`` in the one folder given, else in the
            current directory).
        explain: record and explain one greedy episode per group of seeds.
        max_steps: explain at most this many steps of the episode.
        ig_steps: integrated-gradients path points.
    """
    if out is not None:
        target = check_out_file(out, (".html", ".htm"))
    else:
        target = (Path(paths[0]) if len(paths) == 1 else Path(".")) / "report.html"
    run_dirs = find_runs(paths)
    if out is None:
        check_out_file(target, (".html",))
    make_out_dir(target.parent)  # fail now (e.g. a read-only mount), not after the work
    runs = [read_run(p) for p in run_dirs]
    groups = group_runs(runs)
    diffs = config_differences(runs)
    labels = group_labels(groups)
    if len(set(labels)) < len(labels):
        labels = [f"{lab} [{g[0].label}]" for lab, g in zip(labels, groups, strict=True)]

    explained = []
    if explain:
        for g, label in zip(groups, labels, strict=True):
            try:
                ex = explain_run(g[0], max_steps=max_steps, ig_steps=ig_steps)
            except UserError as exc:  # e.g. no checkpoint yet: the rest of the page still helps
                ex = Explained(run=g[0].label, steps=0, episode_return=0.0, notes=[str(exc)])
            explained.append(_explained_html(ex, label))

    title = "drlzero report: " + ", ".join(sorted({r.config.name for r in runs}))
    sections = [
        (
            "curves",
            "Learning curves",
            f'<div class="plot">{curves_svg(groups, labels)}</div>'
            '<p class="meta">Runs whose configs differ only in the seed are one line: the mean '
            "over seeds, with a ±1 std band.</p>",
        ),
        ("eval", "Evaluation", _eval_table(groups, labels)),
        ("config", "Config differences", _diff_table(runs, diffs)),
    ]
    if explain:
        sections.append(("episodes", "Episodes and explanations", "\n".join(explained)))
    nav = "".join(f'<a href="#{sid}">{name}</a>' for sid, name, _ in sections)
    body = "".join(f'<h2 id="{sid}">{name}</h2>{content}' for sid, name, content in sections)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">{len(runs)} run(s) in {len(groups)} group(s); written '
        f"{time.strftime('%Y-%m-%d %H:%M')}</p><nav>{nav}</nav>{body}"
        f"<script>{_JS}</script></body></html>\n"
    )
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise UserError(
            f"cannot write {target} ({exc.strerror or exc}); choose another --out"
        ) from None
    return target
