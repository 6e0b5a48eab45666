"""Inference precision of an encoder: which dtype, and how it is applied (``--dtype``).

Three paths, recorded beside every index and encoding so that queries are encoded as the
documents were:

- ``float32``: float32 weights and arithmetic (bit-exact reproduction);
- ``weights``: the backbone's weights cast to bfloat16, no autocast (the fastest CPU path
  on CPUs with native bf16 arithmetic, AMX or AVX512-BF16, and on GPUs); poolers still
  compute in float32 on the bf16 hidden states;
- ``autocast``: float32 weights under ``torch.autocast`` (the ``bfloat16`` of earlier
  releases, kept to reproduce results measured with it).

``auto`` picks ``bfloat16`` (weights) where bf16 arithmetic is native and ``float32``
elsewhere: bf16 emulated on a CPU without those units is slower than float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# --dtype choices: auto, float32, bfloat16 (bf16 weights), bfloat16-autocast, float16-autocast
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "bfloat16-autocast", "float16-autocast")
DTYPE_HELP = (
    "encoding precision: auto (the default: bfloat16 on CPUs with native bf16 arithmetic, "
    "AMX or AVX512-BF16, and on GPUs; float32 elsewhere), float32 (bit-exact), bfloat16 "
    "(bf16 weights, the fastest path) or bfloat16-autocast (float32 weights under autocast, "
    "the bfloat16 of earlier releases)"
)
PATHS = ("float32", "weights", "autocast")


@dataclass(frozen=True)
class Precision:
    """How an encoder computes: ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``) and
    ``path`` (``"float32"``, ``"weights"`` or ``"autocast"``)."""

    dtype: str = "float32"
    path: str = "float32"

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"precision path must be one of {PATHS}, got {self.path!r}")
        if (self.dtype == "float32") != (self.path == "float32"):
            raise ValueError(f"dtype {self.dtype!r} does not go with path {self.path!r}")

    @property
    def name(self) -> str:
        """The ``--dtype`` value that selects this precision."""
        return self.dtype if self.path in ("float32", "weights") else f"{self.dtype}-{self.path}"

    def record(self) -> dict[str, str]:
        """The ``dtype`` / ``path`` keys written into index and encoding records."""
        return {"dtype": self.dtype, "path": self.path}


FLOAT32 = Precision()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first processor's feature flags (empty where ``/proc/cpuinfo`` is unreadable)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("flags", "Features"):
                return set(value.split())
    except OSError:
        pass
    return set()


def bf16_units(flags: set[str]) -> str | None:
    """``"AMX"`` or ``"AVX512-BF16"``: the CPU's native bf16 matrix arithmetic, if any."""
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def resolve_precision(requested: str | None, device: Any = "cpu", flags: set[str] | None = None) -> Precision:
    """The precision a ``--dtype`` value selects on ``device``; ``auto`` (or None) is
    bfloat16 weights on a GPU with bf16 support or a CPU with native bf16 units
    (``flags``: the CPU's, read from ``/proc/cpuinfo`` when not given), float32 otherwise."""
    import torch

    from retrievers.errors import InputError

    name = requested or "auto"
    if name == "auto":
        kind = torch.device(device).type
        if kind == "cuda":
            native = torch.cuda.is_bf16_supported()
        elif kind == "cpu":
            native = bf16_units(cpu_flags() if flags is None else flags) is not None
        else:
            native = False
        return Precision("bfloat16", "weights") if native else FLOAT32
    if name == "float32":
        return FLOAT32
    if name == "bfloat16":
        return Precision("bfloat16", "weights")
    dtype, _, path = name.partition("-")
    if path == "autocast" and dtype in ("bfloat16", "float16"):
        return Precision(dtype, "autocast")
    raise InputError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}, got {name!r}")


def recorded_precision(record: dict[str, Any] | None, where: Any = None) -> Precision:
    """The precision an index or encoding record names: ``dtype`` and ``path`` keys; a
    record without ``path`` predates bf16 weights, so its bf16/fp16 meant autocast, and one
    without ``dtype`` was float32."""
    from retrievers.errors import InputError

    record = record or {}
    dtype = record.get("dtype") or "float32"
    default_path = "float32" if dtype == "float32" else "autocast"
    try:
        return Precision(str(dtype), str(record.get("path") or default_path))
    except ValueError as err:
        raise InputError(f"unreadable encoding precision: {err}", where) from None


def apply_precision(model: Any, precision: Precision) -> Any:
    """Set a :class:`~ranker.models.BiEncoder` (or one :class:`~ranker.encoders.Encoder`)
    to compute in ``precision``: casts the backbones' weights for the ``weights`` path (the
    poolers and any interaction head stay float32), sets autocast for ``autocast``; returns
    the model."""
    import torch

    towers = [model] if hasattr(model, "backbone") else [model.query_encoder, model.doc_encoder]
    dtype = getattr(torch, precision.dtype)
    for tower in towers:
        tower.backbone.to(dtype if precision.path == "weights" else torch.float32)
        tower.dtype = dtype if precision.path == "autocast" else None
    logger.info("encoding in %s (%s)", precision.dtype, precision.path)
    return model
