"""Inference precision of an encoder: which dtype, and how it is applied (``--dtype``).

Four paths, recorded beside every index and encoding so that queries are encoded as the
documents were:

- ``float32``: float32 weights and arithmetic in PyTorch (bit-exact reproduction);
- ``openvino``: the backbone compiled by OpenVINO (:mod:`ranker.encoders.openvino`), in
  bf16 (``bfloat16-openvino``: the fastest CPU path on CPUs with native bf16 arithmetic,
  AMX or AVX512-BF16) or float32 (``float32-openvino``: faster than PyTorch's float32 on
  CPUs without it); poolers compute in float32 on its float32 outputs;
- ``weights``: the backbone's weights cast to bfloat16, no autocast (the fast GPU path, and
  the CPU path where OpenVINO is not installed);
- ``autocast``: float32 weights under ``torch.autocast`` (the ``bfloat16`` of earlier
  releases, kept to reproduce results measured with it).

``auto`` picks, on a CPU, OpenVINO in bf16 where bf16 arithmetic is native and in float32
elsewhere (PyTorch's bf16 weights, or float32, when OpenVINO is not installed: bf16
emulated on a CPU without those units is slower than float32); on a GPU, bf16 weights where
the GPU supports bf16, float32 elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# --dtype choices (see the module docstring)
DTYPE_CHOICES = (
    "auto",
    "float32",
    "bfloat16-openvino",
    "float32-openvino",
    "bfloat16",
    "bfloat16-autocast",
    "float16-autocast",
)
DTYPE_HELP = (
    "encoding precision: auto (the default: on a CPU, OpenVINO in bf16 where the CPU has "
    "native bf16 arithmetic, AMX or AVX512-BF16, else in float32; on a GPU, bf16 weights), "
    "float32 (PyTorch, bit-exact), bfloat16-openvino / float32-openvino (the backbone "
    "compiled by OpenVINO), bfloat16 (PyTorch with bf16 weights) or bfloat16-autocast "
    "(float32 weights under autocast, the bfloat16 of earlier releases)"
)
PATHS = ("float32", "openvino", "weights", "autocast")


@dataclass(frozen=True)
class Precision:
    """How an encoder computes: ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``) and
    ``path`` (``"float32"``, ``"openvino"``, ``"weights"`` or ``"autocast"``)."""

    dtype: str = "float32"
    path: str = "float32"
    # what ``auto`` falls back to where OpenVINO cannot convert the model (not compared)
    fallback: Precision | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"precision path must be one of {PATHS}, got {self.path!r}")
        if self.path == "openvino":
            if self.dtype not in ("bfloat16", "float32"):
                raise ValueError(f"OpenVINO computes in bfloat16 or float32, not {self.dtype!r}")
        elif (self.dtype == "float32") != (self.path == "float32"):
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


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU has native bf16 units (``flags``: its feature flags, read from
    ``/proc/cpuinfo`` when not given); without them bf16 is emulated, slower than float32."""
    return bf16_units(cpu_flags() if flags is None else flags) is not None


def resolve_precision(
    requested: str | None,
    device: Any = "cpu",
    flags: set[str] | None = None,
    openvino: bool | None = None,
) -> Precision:
    """The precision a ``--dtype`` value selects on ``device``. ``auto`` (or None) is, on a
    CPU, OpenVINO (``openvino``: whether it is installed, checked when not given) in bf16
    where the CPU has native bf16 units (``flags``: its feature flags, read from
    ``/proc/cpuinfo`` when not given) and in float32 elsewhere, or without OpenVINO bf16
    weights / float32; on a GPU, bf16 weights where it supports bf16, float32 elsewhere."""
    import torch

    from retrievers.errors import InputError

    name = requested or "auto"
    if name == "auto":
        kind = torch.device(device).type
        if kind == "cuda":
            return Precision("bfloat16", "weights") if torch.cuda.is_bf16_supported() else FLOAT32
        if kind != "cpu":
            return FLOAT32
        native = native_bf16(flags)
        if openvino is None:
            from ranker.encoders.openvino import available

            openvino = available()
        torch_path = Precision("bfloat16", "weights") if native else FLOAT32
        if openvino:
            return Precision("bfloat16" if native else "float32", "openvino", fallback=torch_path)
        return torch_path
    if name == "float32":
        return FLOAT32
    if name == "bfloat16":
        return Precision("bfloat16", "weights")
    dtype, _, path = name.partition("-")
    if path == "autocast" and dtype in ("bfloat16", "float16"):
        return Precision(dtype, "autocast")
    if path == "openvino" and dtype in ("bfloat16", "float32"):
        if torch.device(device).type != "cpu":
            raise InputError(f"--dtype {name} runs on the CPU, not on {device}")
        return Precision(dtype, "openvino")
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


def apply_precision(model: Any, precision: Precision) -> Precision:
    """Set a :class:`~ranker.models.BiEncoder` (or one :class:`~ranker.encoders.Encoder`)
    to compute in ``precision``: casts the backbones' weights for the ``weights`` path (the
    poolers and any interaction head stay float32), sets autocast for ``autocast``, hands
    inference forwards to OpenVINO for ``openvino`` (the model must be on the CPU; each
    tower is compiled here, on one trial text). Returns the precision in effect: where
    OpenVINO cannot convert the model, ``auto``'s choice falls back to its PyTorch path with
    a warning, and an explicit ``--dtype ...-openvino`` is an :class:`InputError`."""
    import torch

    from retrievers.errors import InputError

    if precision.path == "openvino":
        from ranker.encoders.openvino import available

        if not available():  # before the model is touched
            raise InputError(f"--dtype {precision.name} needs OpenVINO: pip install openvino")
    towers = [model] if hasattr(model, "backbone") else [model.query_encoder, model.doc_encoder]
    dtype = getattr(torch, precision.dtype)
    backbones: dict[int, Any] = {}
    for tower in towers:
        tower.backbone.to(dtype if precision.path == "weights" else torch.float32)
        tower.backbone.runtime = None
        tower.dtype = dtype if precision.path == "autocast" else None
        backbones[id(tower.backbone)] = tower.backbone
    if precision.path == "openvino":
        fallback = _compile_openvino(towers, list(backbones.values()), precision)
        if fallback is not None:
            return apply_precision(model, fallback)
    logger.info("encoding in %s (%s)", precision.dtype, precision.path)
    return precision


def _compile_openvino(towers: list[Any], backbones: list[Any], precision: Precision) -> Precision | None:
    """Hand the backbones' inference forwards to OpenVINO (a shared backbone is compiled
    once) and compile each tower's graph on a trial text. None when that worked; where
    OpenVINO cannot convert the model, ``precision``'s fallback (warned), or an InputError
    when it has none."""
    from retrievers.errors import InputError, first_line

    for tower in towers:  # inference only: a tower in training mode would drop the compiled copy
        tower.eval()
    for backbone in backbones:
        backbone.use_openvino(precision.dtype)
    try:
        for tower in towers:  # compiles each (input names, layers) graph the towers use
            tower.encode(["a trial text"], batch_size=1)
    except Exception as err:  # conversion fails in many ways (tracing, the frontend)
        for backbone in backbones:
            backbone.runtime = None
        name = type(backbones[0].base_model).__name__
        reason = first_line(err)
        if precision.fallback is None:
            raise InputError(
                f"--dtype {precision.name}: OpenVINO could not convert {name} ({reason}); "
                "--dtype bfloat16 or float32 encodes it in PyTorch"
            ) from None
        logger.warning(
            "OpenVINO could not convert %s (%s); encoding in PyTorch (%s) instead",
            name,
            reason,
            precision.fallback.name,
        )
        return precision.fallback
    return None
