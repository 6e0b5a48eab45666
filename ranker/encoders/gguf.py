"""Turn a GGUF checkpoint (llama.cpp format) into a plain transformers folder, once.

transformers can read GGUF files (dequantizing them; needs the ``gguf`` package), but such a
model refuses ``save_pretrained`` while its config carries the GGUF ``quantization_config``.
We drop it and save ordinary safetensors weights, so later loads are fast, plain
``AutoModel.from_pretrained(folder)`` calls.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_directory

logger = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def cache_root() -> Path:
    """Where converted models are cached: ``$RANKER_CACHE/gguf`` or ``~/.cache/ranker/gguf``."""
    base = os.environ.get("RANKER_CACHE") or Path.home() / ".cache" / "ranker"
    return Path(base) / "gguf"


def convert_gguf(gguf_path: str | Path, out: str | Path, dtype: str = "bfloat16") -> Path:
    """Dequantize ``gguf_path`` and save model + tokenizer to the new folder ``out``.

    Args:
        gguf_path: A ``.gguf`` file.
        out: New (or empty) output folder; written atomically.
        dtype: Weight dtype of the saved model (bfloat16, float16 or float32).

    Raises:
        InputError: the file is missing or not a GGUF file.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise InputError("no such GGUF file", gguf_path)
    with gguf_path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise InputError("not a GGUF file (expected the GGUF magic bytes)", gguf_path)
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    folder, name = str(gguf_path.parent), gguf_path.name
    logger.info("dequantizing %s (this takes a while once)", gguf_path)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=DTYPES[dtype])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
    model.hf_quantizer = None
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {gguf_path.resolve()}\n", encoding="utf-8")
    logger.info("saved %s", out)
    return Path(out)


def cached_hf_folder(gguf_path: str | Path, dtype: str = "bfloat16") -> Path:
    """The converted folder for ``gguf_path`` in the cache, converting it on first use."""
    gguf_path = Path(gguf_path)
    out = cache_root() / f"{gguf_path.stem}-{dtype}"
    if (out / "config.json").is_file():
        return out
    return convert_gguf(gguf_path, out, dtype=dtype)
