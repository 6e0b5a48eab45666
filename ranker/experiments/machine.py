"""Where a result was measured: the CPU, the GPU and the library versions.

bf16 kernels differ between CPU generations (and GPUs), so a pinned score can move by more
than run-to-run noise on another machine; the results file names the machine it came from.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from ranker.precision import bf16_units

LIBRARIES = ("torch", "transformers", "faiss-cpu", "pyserini")


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``"Intel(R) Xeon(R) Processor (family 6 model 207, AMX)"`` (or ``AVX512-BF16``: the
    CPU's native bf16 units, which ``--dtype auto`` looks for); the platform's name elsewhere."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                if fields:
                    break  # the first processor's block is enough
                continue
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    details = []
    if "cpu family" in fields and "model" in fields:
        details.append(f"family {fields['cpu family']} model {fields['model']}")
    if units := bf16_units(set(fields.get("flags", "").split())):
        details.append(units)
    return f"{name} ({', '.join(details)})" if details else name


def machine_description() -> str:
    """One line: CPU, the CPUs this process may use, the GPU if any, and library versions."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 0
    parts = [f"{cpu_description()}, {cpus} CPUs"]
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    except ImportError:
        pass
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    if versions:
        parts.append(", ".join(versions))
    return "; ".join(parts)
