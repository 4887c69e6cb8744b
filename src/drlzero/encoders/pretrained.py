"""A pretrained Hugging Face model as the state representer, frozen or fine-tuned.

Shape legend: B batch, L tokens, H the backbone's hidden size, D ``features_dim``.

Observations are int32 token-id arrays (B, L) padded with ``-1`` (see ``drlzero.envs.text``).
The backbone is any ``AutoModel`` (encoder or decoder) loaded from a local directory, never from
a hub; its hidden states are pooled (``mean`` over real tokens, ``cls`` = first token, ``last`` =
last real token, for decoders) and projected to D features for the Q head.

Non-text observations: a model directory written by ``drlzero pretrain`` carries
``obs_tokenizer.json`` (:mod:`drlzero.pretrain.obs_tokenizer`). The encoder then takes the env's
raw vector (F,) or grid (C, H, W) observations and tokenizes them in :meth:`preprocess`, at the
env boundary, so the buffer stores int32 ids (L,) (or, frozen with the cache, the (H,)
embeddings keyed by those ids: the cache works unchanged, with a lower hit rate on continuous
observations since nearby values share a bin only). Everything below applies as for text.

Fine-tuning modes:

- ``frozen``: no backbone weight trains. With ``cache=True`` the backbone runs at the env
  boundary (:meth:`PretrainedEncoder.preprocess`): each distinct observation is embedded once,
  batched, cached by content, and the replay buffer stores the (H,) embeddings, so the learner
  only runs the projection and head.
- ``lora``: low-rank adapters (Hu et al. 2021, "LoRA", arXiv:2106.09685) via PEFT on
  ``lora_targets``; the base weights stay frozen. ``lora_layers=k`` puts adapters in the last k
  transformer layers only.
- ``top_k``: only the last ``top_k`` transformer layers train.
- ``full``: every weight trains.

Exact speed-ups of the trained modes (each leaves the loss and gradients unchanged up to float
rounding; tests compare them with the plain path):

- ``dedup``: a minibatch's identical token rows (a mission repeats over a whole episode, and
  ``obs``/``next_obs`` share it) go through the backbone once; ``torch.unique`` over rows gives
  the U distinct rows and the inverse index that scatters their features back to B rows. The
  backward of that gather sums the duplicates' gradients, which is what B separate copies give.
- lower-layer cache (``cache=True`` with ``top_k``, or ``lora`` with ``lora_layers``): the layers
  below the first trained one never change, so their output (the input of the first trained
  layer) is computed once per distinct row, cached by content and shared with the target net;
  an update runs only the trained top layers forward and backward. Each row is computed alone
  (its real tokens, no padding), so a cached state does not depend on which batch first saw it
  and runs stay reproducible and exactly resumable.
- padding trimmed to the longest real row of the batch.
- target memo: a target network's backbone does not train (its copied adapters or layers are
  ``requires_grad=False`` and change only when the learner syncs them), so its pooled states are
  memoised per distinct row and recomputed only after its weights change (detected from the
  tensors' in-place version counters, so a sync or a checkpoint load invalidates the memo). Each
  row is computed alone, so a memoised value does not depend on the batch that first asked.

Dropout inside the backbone is switched off: Q-learning regresses on its own targets and does not
want a stochastic network. The backbone's own weights that never train (all of them when frozen,
all but the adapters under LoRA, the lower layers under ``top_k``) are *base* weights: checkpoints
leave them out and record a fingerprint of the model file instead (:attr:`base_sha256`), and
:func:`drlzero.nets.make_target` shares them with the target network instead of copying them.

Example:
    >>> enc = PretrainedEncoder((32,), mode="lora")  # doctest: +SKIP
    >>> enc(torch.randint(0, 1000, (2, 32))).shape  # doctest: +SKIP
    torch.Size([2, 256])
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drlzero.envs.text import LM_EXTRA, resolve_model_path
from drlzero.errors import CheckpointError, ConfigError
from drlzero.pretrain.obs_tokenizer import ObsTokenizer

__all__ = [
    "MODES",
    "POOLINGS",
    "EmbeddingCache",
    "LowerCache",
    "PretrainedEncoder",
    "weights_sha256",
]

MODES = ("frozen", "lora", "top_k", "full")
_MEMO_ITEMS = 100_000  # distinct rows a target memo keeps ((H,) float32 each)
POOLINGS = ("mean", "cls", "last")


@functools.lru_cache(maxsize=8)
def weights_sha256(path: str) -> bytes:
    """SHA-256 of a model directory's weight files (``*.safetensors``, else ``*.bin``): the
    reference a checkpoint keeps instead of a copy of the base model."""
    h = hashlib.sha256()
    files = sorted(Path(path).glob("*.safetensors")) or sorted(Path(path).glob("*.bin"))
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.digest()


def _layers(backbone: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a BERT-, GPT-2- or Llama-style model."""
    slot = _layer_slot(backbone)
    if slot is None:
        raise ConfigError(
            "encoder.mode=top_k (or lora_layers) cannot find the transformer layers of this "
            "model; use lora on every layer, or full"
        )
    return slot[2]


class EmbeddingCache:
    """Content-addressed cache of frozen-backbone embeddings (row bytes -> (H,) float32)."""

    def __init__(self, max_items: int = 200_000) -> None:
        self.max_items = max_items
        self.rows: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.rows)


class LowerCache:
    """Content-addressed cache of the frozen lower layers' output per token row.

    ``rows`` maps the row's real token ids (bytes) to its (n, H) hidden states (n real tokens).
    At most ``max_bytes`` of states are kept; beyond that, misses are computed and not stored.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.rows: dict[bytes, torch.Tensor] = {}
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.rows)


def _layer_slot(backbone: nn.Module) -> tuple[nn.Module, str, nn.ModuleList] | None:
    """(parent module, attribute name, blocks) of a BERT-, GPT-2- or Llama-style model."""
    for path in ("encoder.layer", "layers", "h", "transformer.h", "model.layers", "decoder.layers"):
        parent: Any = backbone
        parts = path.split(".")
        for part in parts[:-1]:
            parent = getattr(parent, part, None)
            if parent is None:
                break
        mod = getattr(parent, parts[-1], None) if parent is not None else None
        if isinstance(mod, nn.ModuleList):
            return parent, parts[-1], mod
    return None


def _input_embedding(backbone: nn.Module) -> nn.Module | None:
    """The module whose output is the first block's input (BERT ``embeddings``, Llama
    ``embed_tokens``); None where the model adds more after it (GPT-2 adds ``wpe``)."""
    for name in ("embeddings", "embed_tokens"):
        mod = getattr(backbone, name, None)
        if isinstance(mod, nn.Module):
            return mod
    return None


class PretrainedEncoder(nn.Module):
    """A Hugging Face backbone + pooling + projection to ``features_dim``.

    Args:
        obs_shape: (L,), the token-array length; with an observation tokenizer in
            ``model_path``, the raw observation shape it was pretrained on.
        model_path: local model directory ("" = the packaged all-MiniLM-L6-v2).
        pooling: mean | cls | last.
        mode: frozen | lora | top_k | full.
        features_dim: D, the projection's output size.
        lora_r, lora_alpha, lora_dropout, lora_targets: the LoRA adapters (PEFT).
        top_k: layers that train under ``mode=top_k``.
        lora_layers: under ``mode=lora``, adapters in the last k layers only (0: every layer).
        cache: in frozen mode, embed at the env boundary and cache by content; under ``top_k``
            or ``lora`` with ``lora_layers``, cache the frozen lower layers' output by content.
        dedup: run the backbone once per distinct token row of a batch.
        bf16: autocast the backbone to bfloat16 on CUDA devices that support it.
        grad_checkpointing: recompute backbone activations in backward (less memory).
        trust_remote_code: let the model directory run its own code (off unless asked).
    """

    features_dim: int

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        *,
        model_path: str = "",
        pooling: str = "mean",
        mode: str = "frozen",
        features_dim: int = 256,
        lora_r: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        lora_targets: Iterable[str] = ("query", "value"),
        top_k: int = 1,
        lora_layers: int = 0,
        cache: bool = True,
        dedup: bool = True,
        bf16: bool = True,
        grad_checkpointing: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES or pooling not in POOLINGS:
            raise ConfigError(f"encoder.mode must be in {MODES}, pooling in {POOLINGS}")
        try:
            import transformers
            from transformers import AutoModel
        except ImportError:
            raise ConfigError(f"the pretrained encoder needs transformers: {LM_EXTRA}") from None
        path = resolve_model_path(model_path)
        # A model from ``drlzero pretrain`` reads raw observations through its own tokenizer.
        self.obs_tokenizer = ObsTokenizer.load(path) if ObsTokenizer.present(path) else None
        if self.obs_tokenizer is not None:
            if tuple(obs_shape) != self.obs_tokenizer.obs_shape:
                raise ConfigError(
                    f"the model at {path} was pretrained on observations "
                    f"{self.obs_tokenizer.obs_shape}, this env gives {tuple(obs_shape)}"
                )
            obs_shape = (self.obs_tokenizer.length,)
        elif len(obs_shape) != 1:
            raise ConfigError(
                f"the pretrained encoder reads token-id arrays (L,), got observations {obs_shape};"
                " use a drlzero/...Text env, wrap the env with drlzero.envs.text.TokenizeText,"
                " or give a model directory written by 'drlzero pretrain'"
            )
        transformers.logging.set_verbosity_error()  # no load reports / progress bars
        transformers.utils.logging.disable_progress_bar()
        self.backbone = AutoModel.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=trust_remote_code
        )
        for m in self.backbone.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        cfg = self.backbone.config
        self.hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0))
        pad = getattr(cfg, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else getattr(cfg, "eos_token_id", 0) or 0)
        self.obs_len = int(obs_shape[0])
        self.model_path = str(path)
        self.pooling = pooling
        self.mode = mode
        self.bf16 = bf16
        self.features_dim = int(features_dim)
        self.dedup = bool(dedup)
        # Blocks below the first trained one: their output never changes (0 = none frozen).
        self.frozen_lower = 0

        self.backbone.requires_grad_(mode == "full")
        if mode == "lora":
            try:
                from peft import LoraConfig, inject_adapter_in_model
            except ImportError:
                raise ConfigError(f"encoder.mode=lora needs peft: {LM_EXTRA}") from None
            upper: dict[str, Any] = {}
            if lora_layers:
                n_layers = len(_layers(self.backbone))
                if not 0 < lora_layers <= n_layers:
                    raise ConfigError(f"encoder.lora_layers={lora_layers} must be in 0..{n_layers}")
                self.frozen_lower = n_layers - lora_layers
                upper["layers_to_transform"] = list(range(self.frozen_lower, n_layers))
            lora = LoraConfig(
                r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
                target_modules=list(lora_targets),
                **upper,
            )
            try:
                self.backbone = inject_adapter_in_model(lora, self.backbone)
            except ValueError as exc:
                msg = str(exc).splitlines()[0]
                raise ConfigError(f"encoder.lora_targets={list(lora_targets)}: {msg}") from None
            for name, p in self.backbone.named_parameters():
                p.requires_grad_("lora_" in name)
        elif mode == "top_k":
            layers = _layers(self.backbone)
            if not 0 < top_k <= len(layers):
                raise ConfigError(f"encoder.top_k={top_k} must be in 1..{len(layers)}")
            for layer in layers[len(layers) - top_k :]:
                layer.requires_grad_(True)
            self.frozen_lower = len(layers) - top_k
        if grad_checkpointing and mode != "frozen":
            self.backbone.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        # Base weights: loaded from the model directory and never trained.
        trainable = {n for n, p in self.backbone.named_parameters() if p.requires_grad}
        self.base_names = set(self.backbone.state_dict(keep_vars=True)) - trainable
        self.register_buffer(
            "base_sha256", torch.frombuffer(bytearray(weights_sha256(str(path))), dtype=torch.uint8)
        )
        self.embed_at_boundary = mode == "frozen" and cache
        self.cache = EmbeddingCache() if self.embed_at_boundary else None
        self.memo: dict[bytes, torch.Tensor] = {}
        self._memo_key: tuple[tuple[int, int], ...] | None = None
        use_lower = cache and self.frozen_lower > 0 and _input_embedding(self.backbone) is not None
        self.lower_cache = LowerCache() if use_lower else None
        self.proj = nn.Sequential(nn.Linear(self.hidden, self.features_dim), nn.ReLU())
        self.register_state_dict_post_hook(_drop_base_weights)
        self.register_load_state_dict_pre_hook(_restore_base_weights)

    # -- what the replay buffer stores --------------------------------------------------------
    @property
    def stored_shape(self) -> tuple[int, ...]:
        return (self.hidden,) if self.embed_at_boundary else (self.obs_len,)

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self.embed_at_boundary else np.int32)

    def preprocess(self, obs: np.ndarray) -> np.ndarray:
        """Env-boundary step: token ids (B, L) -> embeddings (B, H) when frozen with a cache;
        raw observations are first tokenized when the model carries an observation tokenizer."""
        ids = np.asarray(obs)
        if self.obs_tokenizer is not None:
            ids = self.obs_tokenizer.encode(ids)
        if not self.embed_at_boundary:
            return ids
        cache = self.cache
        assert cache is not None
        keys = [row.tobytes() for row in ids]
        out = np.empty((len(keys), self.hidden), np.float32)
        todo: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            row = cache.rows.get(k)
            if row is None:
                todo.setdefault(k, []).append(i)
            else:
                out[i] = row
        # hits: rows served without running the backbone; misses: distinct rows embedded.
        cache.hits += len(keys) - len(todo)
        if todo:
            cache.misses += len(todo)
            first = [v[0] for v in todo.values()]
            device = self.proj[0].weight.device
            with torch.inference_mode():
                ids_t = torch.from_numpy(np.ascontiguousarray(ids[first])).to(device)
                emb = self.embed(ids_t).float().cpu().numpy()
            for (k, rows), e in zip(todo.items(), emb, strict=True):
                out[rows] = e
                if len(cache.rows) < cache.max_items:
                    cache.rows[k] = e
        return out

    # -- forward ------------------------------------------------------------------------------
    def embed(self, ids_BL: torch.Tensor) -> torch.Tensor:
        """Pooled backbone states (B, H) of token ids padded with -1."""
        if self.dedup and self._memo_valid():
            return self._embed_memo(ids_BL)
        if self.dedup and len(ids_BL) > 1:
            uniq_UL, inverse_B = torch.unique(ids_BL, dim=0, return_inverse=True)
            if len(uniq_UL) < len(ids_BL):
                return self._embed_rows(uniq_UL)[inverse_B]
        return self._embed_rows(ids_BL)

    def _memo_valid(self) -> bool:
        """Whether the memo applies (a backbone with trained weights none of which is trainable
        here: a target network) and still matches the weights; resets it when they changed."""
        if self.mode == "frozen":
            return False
        trained = [p for n, p in self.backbone.named_parameters() if n not in self.base_names]
        if not trained or any(p.requires_grad for p in trained):
            return False
        key = tuple((p._version, p.data_ptr()) for p in trained)
        if key != self._memo_key:
            self.memo.clear()
            self._memo_key = key
        return True

    def _embed_memo(self, ids_BL: torch.Tensor) -> torch.Tensor:
        rows = ids_BL.cpu().numpy()
        out: list[torch.Tensor] = []
        for i, row in enumerate(rows):
            key = row[row >= 0].tobytes()
            state_H = self.memo.get(key)
            if state_H is None:
                with torch.no_grad():
                    state_H = self._embed_rows(ids_BL[i : i + 1])[0]
                if len(self.memo) < _MEMO_ITEMS:
                    self.memo[key] = state_H
            out.append(state_H)
        return torch.stack(out)

    def _embed_rows(self, ids_BL: torch.Tensor) -> torch.Tensor:
        mask_BL = ids_BL >= 0
        # Right padding carries no information: drop the columns no row uses (texts are often
        # much shorter than max_tokens, and attention cost grows with L).
        used = int(mask_BL.sum(1).max().clamp(min=1))
        ids_BL, mask_BL = ids_BL[:, :used], mask_BL[:, :used]
        input_BL = torch.where(mask_BL, ids_BL, self.pad_id).long()
        use_bf16 = self.bf16 and ids_BL.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.autocast(ids_BL.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            if self.lower_cache is not None:
                hidden_BLH = self._upper(input_BL, mask_BL, self._lower_states(ids_BL))
            else:
                hidden_BLH = self.backbone(
                    input_ids=input_BL, attention_mask=mask_BL.long()
                ).last_hidden_state
        hidden_BLH = hidden_BLH.float()
        if self.pooling == "cls":
            return hidden_BLH[:, 0]
        if self.pooling == "last":
            last_B = (mask_BL.sum(1) - 1).clamp(min=0)
            return hidden_BLH[torch.arange(len(last_B), device=last_B.device), last_B]
        m_BL1 = mask_BL.unsqueeze(-1).float()
        return (hidden_BLH * m_BL1).sum(1) / m_BL1.sum(1).clamp(min=1.0)

    def _run_blocks(
        self,
        blocks: nn.ModuleList,
        input_BL: torch.Tensor,
        mask_BL: torch.Tensor,
        hook: tuple[nn.Module, Any],
    ) -> torch.Tensor:
        """The backbone with its block list swapped for ``blocks`` and a forward hook
        ``(module, fn)`` set (see
        :meth:`_lower_states`, :meth:`_upper`); the model's own mask and position code run."""
        slot = _layer_slot(self.backbone)
        assert slot is not None
        parent, attr, full = slot
        module, fn = hook
        handle = module.register_forward_hook(fn)
        setattr(parent, attr, blocks)
        try:
            return self.backbone(
                input_ids=input_BL, attention_mask=mask_BL.long()
            ).last_hidden_state
        finally:
            setattr(parent, attr, full)
            handle.remove()

    def _lower_states(self, ids_BL: torch.Tensor) -> torch.Tensor:
        """The frozen lower blocks' output (B, L, H) for trimmed rows ``ids_BL``, zero at padding.

        A miss runs its row alone over its real tokens (no padding, no neighbours), so the cached
        value is a function of the row only.
        """
        cache = self.lower_cache
        assert cache is not None
        blocks = _layers(self.backbone)
        lower = nn.ModuleList(blocks[: self.frozen_lower])
        out_BLH = torch.zeros(
            (*ids_BL.shape, self.hidden), device=ids_BL.device, dtype=torch.float32
        )
        rows = ids_BL.cpu().numpy()
        for i, row in enumerate(rows):
            real = row[row >= 0]
            key = real.tobytes()
            state_nH = cache.rows.get(key)
            if state_nH is None:
                cache.misses += 1
                got: list[torch.Tensor] = []

                def grab(_m: nn.Module, _in: Any, out: Any, got: list = got) -> None:
                    got.append(out[0] if isinstance(out, tuple) else out)

                n = int(np.nonzero(row >= 0)[0].max()) + 1 if len(real) else 1
                ids_1n = ids_BL[i : i + 1, :n]
                mask_1n = ids_1n >= 0
                input_1n = torch.where(mask_1n, ids_1n, self.pad_id).long()
                with torch.no_grad():
                    self._run_blocks(lower, input_1n, mask_1n, (lower[-1], grab))
                state_nH = got[-1][0].detach().float()
                if cache.nbytes + state_nH.nbytes <= cache.max_bytes:
                    cache.rows[key] = state_nH
                    cache.nbytes += state_nH.nbytes
            else:
                cache.hits += 1
            out_BLH[i, : len(state_nH)] = state_nH.to(out_BLH.device)
        return out_BLH

    def _upper(
        self, input_BL: torch.Tensor, mask_BL: torch.Tensor, lower_BLH: torch.Tensor
    ) -> torch.Tensor:
        """The trained top blocks on the cached lower states: the input embedding's output is
        replaced by ``lower_BLH`` and only the blocks from ``frozen_lower`` on run."""
        emb = _input_embedding(self.backbone)
        assert emb is not None
        upper = nn.ModuleList(_layers(self.backbone)[self.frozen_lower :])

        def inject(_m: nn.Module, _in: Any, out: torch.Tensor) -> torch.Tensor:
            return lower_BLH.to(out.dtype)

        return self._run_blocks(upper, input_BL, mask_BL, (emb, inject))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, H) cached embeddings or (B, L) token ids -> features (B, D)."""
        if self.embed_at_boundary:
            return self.proj(obs.float())
        if self.mode == "frozen":
            with torch.no_grad():
                pooled_BH = self.embed(obs)
        else:
            pooled_BH = self.embed(obs)
        return self.proj(pooled_BH)


def _drop_base_weights(module: PretrainedEncoder, state: dict, prefix: str, _meta: Any) -> None:
    """Checkpoints keep trainable weights and the base model's fingerprint, not its weights."""
    for name in module.base_names:
        state.pop(f"{prefix}backbone.{name}", None)


def _restore_base_weights(
    module: PretrainedEncoder, state: dict, prefix: str, *_args: Any, **_kw: Any
) -> None:
    key = f"{prefix}base_sha256"
    if key in state and not torch.equal(state[key].cpu(), module.base_sha256.cpu()):
        raise CheckpointError(
            f"checkpoint was trained on a different base model than {module.model_path}; "
            "set encoder.model_path to the model it was trained with"
        )
    own = module.backbone.state_dict()
    for name in module.base_names:
        state.setdefault(f"{prefix}backbone.{name}", own[name])
