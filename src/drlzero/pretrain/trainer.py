"""``drlzero pretrain``: self-supervised pretraining of a Transformer state encoder.

Shape legend: B batch, L tokens, H hidden size, V vocabulary, A actions.

The encoder is a standard ``transformers.BertModel`` built from a ``BertConfig`` (no download)
that reads observation tokens (:mod:`drlzero.pretrain.obs_tokenizer`) as ``input_ids``. The
objectives of :mod:`drlzero.pretrain.objectives` are weighted and summed; their small heads
train alongside and are not saved. The output directory is a plain Hugging Face model
(``config.json`` + ``model.safetensors``, ``AutoModel.from_pretrained(dir, local_files_only=True)``
loads it) plus ``obs_tokenizer.json`` and ``pretrain.json`` (settings and loss curve), so the
``pretrained`` encoder fine-tunes it like any other model::

    drlzero pretrain --data DATA --out MODEL --objectives mask,inverse,contrastive --steps 3000
    drlzero train catchball-dqn encoder.name=pretrained encoder.model_path=MODEL encoder.mode=lora

``--steps 0`` writes the randomly initialised model: the same architecture from scratch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drlzero.errors import ConfigError, UserError
from drlzero.pretrain.dataset import PretrainRows
from drlzero.pretrain.objectives import (
    OBJECTIVES,
    info_nce,
    inverse_dynamics_loss,
    mask_tokens,
    masked_token_loss,
)
from drlzero.pretrain.obs_tokenizer import MASK, PAD, ObsTokenizer

__all__ = ["PretrainConfig", "PretrainModel", "pretrain", "save_encoder"]


@dataclass
class PretrainConfig:
    """Settings of ``drlzero pretrain`` (each maps to a ``--flag``)."""

    objectives: list[str] = field(default_factory=lambda: list(OBJECTIVES))
    """mask | inverse | contrastive, any combination."""
    weights: list[float] | None = None
    """loss weight per objective, in the order of ``objectives`` (None: all 1)."""
    steps: int = 2000
    """gradient steps (0: save the randomly initialised model, the from-scratch control)."""
    batch_size: int = 128
    lr: float = 3e-4
    weight_decay: float = 0.01
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    bins: int = 64
    """value bins per vector feature (the observation tokenizer)."""
    pooling: str = "cls"
    """how the inverse and contrastive heads pool the encoder: cls | mean (use the same
    ``encoder.pooling`` when fine-tuning)."""
    mask_prob: float = 0.25
    k_max: int = 4
    """contrastive positives: s_{t+k}, k uniform in 1..k_max."""
    temperature: float = 0.1
    dropout: float = 0.1
    seed: int = 0
    threads: int | None = 1
    log_every: int = 0
    """print a loss line to stderr every this many steps (0: never)."""

    def validate(self) -> PretrainConfig:
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(
                f"--objectives {','.join(self.objectives)}: give distinct names from "
                f"{', '.join(OBJECTIVES)}"
            )
        if self.weights is not None and (
            len(self.weights) != len(self.objectives)
            or not all(math.isfinite(w) and w >= 0 for w in self.weights)
        ):
            raise ConfigError(
                "--weights needs one non-negative weight per objective (finite numbers)"
            )
        for key in ("steps", "log_every", "seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)} must be >= 0")
        if self.bins < 2:
            raise ConfigError(f"--bins {self.bins} must be >= 2 (value bins per feature)")
        for key in ("batch_size", "d_model", "n_layers", "n_heads", "k_max", "lr", "temperature"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)} must be > 0")
        if self.batch_size < 2 and "contrastive" in self.objectives:
            raise ConfigError("the contrastive objective needs --batch-size >= 2 (negatives)")
        if self.d_model % self.n_heads:
            raise ConfigError(f"--d-model {self.d_model} must be divisible by --n-heads")
        if self.pooling not in ("cls", "mean"):
            raise ConfigError(f"--pooling {self.pooling!r} must be cls or mean")
        if not 0.0 < self.mask_prob < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--mask-prob must be in (0, 1) and --dropout in [0, 1)")
        return self


def bert_config(tok: ObsTokenizer, cfg: PretrainConfig) -> Any:
    """A small ``BertConfig`` sized to the observation tokenizer."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        intermediate_size=4 * cfg.d_model,
        max_position_embeddings=max(16, tok.length),
        type_vocab_size=1,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=PAD,
    )


def pool(hidden_BLH: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, L, H) -> (B, H); observation sequences have no padding, so mean is over all L."""
    return hidden_BLH[:, 0] if pooling == "cls" else hidden_BLH.mean(1)


class PretrainModel(nn.Module):
    """The BERT backbone plus one small head per objective (heads are discarded after)."""

    def __init__(self, tok: ObsTokenizer, cfg: PretrainConfig, num_actions: int) -> None:
        super().__init__()
        from transformers import BertModel

        self.pooling = cfg.pooling
        self.backbone = BertModel(bert_config(tok, cfg))
        h = cfg.d_model
        self.mask_head = nn.Sequential(
            nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h), nn.Linear(h, tok.vocab_size)
        )
        # [h_t, h_{t+1}, h_{t+1} - h_t]: the difference makes the action's effect easy to read.
        self.inverse_head = nn.Sequential(nn.Linear(3 * h, h), nn.ReLU(), nn.Linear(h, num_actions))
        self.contrast_head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h))

    def hidden(self, ids_BL: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=ids_BL.long()).last_hidden_state

    def embed(self, ids_BL: torch.Tensor) -> torch.Tensor:
        return pool(self.hidden(ids_BL), self.pooling)


def _losses(
    model: PretrainModel, tok: ObsTokenizer, batch: Any, cfg: PretrainConfig, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """One batch's loss per selected objective."""
    ids_t = torch.from_numpy(tok.encode(batch.obs_t))
    out: dict[str, torch.Tensor] = {}
    if "mask" in cfg.objectives:
        masked_BL, where_BL = mask_tokens(ids_t, cfg.mask_prob, MASK, gen)
        logits_BLV = model.mask_head(model.hidden(masked_BL))
        out["mask"] = masked_token_loss(logits_BLV, ids_t, where_BL)
    need = [o for o in ("inverse", "contrastive") if o in cfg.objectives]
    if need:
        # One backbone pass over [s_t; s_{t+1}; s_{t+k}].
        b = len(ids_t)
        ids_next = torch.from_numpy(tok.encode(batch.obs_next))
        ids_fut = torch.from_numpy(tok.encode(batch.obs_future))
        h_3BH = model.embed(torch.cat([ids_t, ids_next, ids_fut]))
        h_t, h_next, h_fut = h_3BH[:b], h_3BH[b : 2 * b], h_3BH[2 * b :]
        if "inverse" in need:
            logits_BA = model.inverse_head(torch.cat([h_t, h_next, h_next - h_t], -1))
            out["inverse"] = inverse_dynamics_loss(logits_BA, torch.from_numpy(batch.action_t))
        if "contrastive" in need:
            out["contrastive"] = info_nce(
                model.contrast_head(h_t), model.contrast_head(h_fut), cfg.temperature
            )
    return out


def pretrain(
    data: str | Path, out: str | Path, cfg: PretrainConfig | None = None
) -> dict[str, Any]:
    """Pretrain an encoder on a trajectory dataset and save it as a Hugging Face model directory.

    Args:
        data: a `drlzero collect` dataset directory (:mod:`drlzero.data.dataset`).
        out: the model directory to write (created; existing files are overwritten).
        cfg: the settings (default :class:`PretrainConfig`).

    Returns:
        A summary: ``model_dir``, ``steps``, ``params``, ``wall_time_s`` and the first and last
        100-step mean of each objective's loss.

    Raises:
        UserError: a missing or malformed dataset, bad settings, or transformers not installed.
    """
    cfg = (cfg or PretrainConfig()).validate()
    try:
        import transformers
    except ImportError:
        raise UserError("drlzero pretrain needs transformers: pip install 'drlzero[lm]'") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bar
    dataset = PretrainRows(data)
    if "inverse" in cfg.objectives and dataset.num_actions < 2:
        raise UserError(f"{data}: inverse dynamics needs at least 2 actions in the data")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    space = _box_space(dataset.manifest)
    tok = ObsTokenizer.fit(dataset.obs, bins=cfg.bins, space=space)
    model = PretrainModel(tok, cfg, dataset.num_actions)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = dict(zip(cfg.objectives, cfg.weights or [1.0] * len(cfg.objectives), strict=True))
    curve: dict[str, list[float]] = {o: [] for o in cfg.objectives}
    batches = dataset.iter_batches(cfg.batch_size, k_max=cfg.k_max, seed=cfg.seed + 2)
    warmup = max(1, min(100, cfg.steps // 10))
    start = time.perf_counter()
    model.train()
    for step in range(cfg.steps):
        # Linear warm-up, then cosine decay to 10%: stable for small Transformers.
        frac = step / max(1, cfg.steps)
        scale = min(1.0, (step + 1) / warmup) * (0.55 + 0.45 * math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = cfg.lr * scale
        losses = _losses(model, tok, next(batches), cfg, gen)
        total = sum(weights[k] * v for k, v in losses.items())
        opt.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[union-attr]
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        for k, v in losses.items():
            curve[k].append(float(v.detach()))
        if cfg.log_every and (step + 1) % cfg.log_every == 0:
            parts = " ".join(f"{k} {np.mean(v[-cfg.log_every :]):.4f}" for k, v in curve.items())
            print(f"pretrain step {step + 1}/{cfg.steps}: {parts}", file=sys.stderr)
    wall = time.perf_counter() - start
    folder = save_encoder(model, tok, out)
    # Loss summaries over the first and last fifth of training (at most 100 steps each).
    window = max(1, min(100, cfg.steps // 5))
    summary = {
        "model_dir": str(folder),
        "steps": cfg.steps,
        "params": sum(p.numel() for p in model.backbone.parameters()),
        "wall_time_s": round(wall, 2),
        "loss_first": {k: _mean(v[:window]) for k, v in curve.items()},
        "loss_last": {k: _mean(v[-window:]) for k, v in curve.items()},
    }
    record = {
        **summary,
        "config": dataclasses.asdict(cfg),
        "data": str(Path(data)),
        "data_manifest": dataset.manifest,
        # Every 10th step's losses: enough for a curve, small enough to read.
        "loss_curve": {k: [round(x, 5) for x in v[::10]] for k, v in curve.items()},
    }
    (folder / "pretrain.json").write_text(json.dumps(record, indent=2))
    return summary


def save_encoder(model: PretrainModel, tok: ObsTokenizer, out: str | Path) -> Path:
    """Write the backbone as a Hugging Face model directory (``config.json`` +
    ``model.safetensors``) and the observation tokenizer next to it; heads are dropped."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.backbone.save_pretrained(str(folder), safe_serialization=True)
    tok.save(folder)
    return folder


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 5) if values else None


def _box_space(manifest: dict[str, Any]) -> Any:
    """The dataset env's observation Box, for the tokenizer's value ranges (None if unknown)."""
    env_id = manifest.get("env_id")
    if not env_id:
        return None
    try:
        from drlzero.config import EnvConfig
        from drlzero.envs import make_env

        env = make_env(EnvConfig(id=env_id, kwargs=dict(manifest.get("env_kwargs", {}))))
        space = env.observation_space
        env.close()
    except Exception:  # an env we cannot build only loses the nicer bounds
        return None
    return space if hasattr(space, "low") else None
