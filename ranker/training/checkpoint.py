"""Checkpoints: weights as safetensors, the rest (optimizer, scheduler, RNG) as tensors and
plain containers that ``torch.load(weights_only=True)`` accepts, plus JSON metadata.

A checkpoint is a directory ``step-<N>/`` built under a temporary name and renamed when
complete, so a kill at any moment leaves either the previous checkpoints or the new one, never
a half-written one. ``latest.json`` (written atomically) names the newest complete one.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from retrievers.errors import InputError, first_line
from retrievers.io.atomic import atomic_directory, atomic_write

logger = logging.getLogger(__name__)

LATEST = "latest.json"


def rng_state() -> dict[str, Any]:
    """Python and torch (CPU and CUDA) generator states."""
    version, state, gauss = random.getstate()
    out: dict[str, Any] = {"python": [version, list(state), gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: Path,
    step: int,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    meta: dict[str, Any],
    config: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``root/step-<step>`` atomically, point ``latest.json`` at it, prune old ones."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{step}"
    if target.exists():  # a checkpoint of this step already exists (e.g. written before a kill)
        return target
    with atomic_directory(target) as tmp:
        for name, model in models.items():
            save_model(model, str(tmp / f"{name}.safetensors"))
        state = {
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "rng": rng_state(),
        }
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=1))
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
    with atomic_write(root / LATEST) as out:
        json.dump({"step": step, "path": target.name}, out)
    steps = sorted(int(p.name.split("-")[1]) for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    logger.info("checkpoint %s", target)
    return target


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    pointer = root / LATEST
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["path"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"not a checkpoint pointer ({type(err).__name__}: {err})", pointer) from None
    path = root / str(name)
    return path if path.is_dir() else None


def load_checkpoint(
    path: Path,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Load weights, optimizer/scheduler/RNG states in place; returns the metadata.

    Only safetensors weights and a ``state.pt`` that ``torch.load(weights_only=True)`` accepts
    are read: a checkpoint holding pickled objects is refused, never unpickled.

    Raises:
        InputError: a file of the checkpoint is missing, truncated or holds pickled objects.
    """
    from ranker.encoders.folders import check_safetensors

    for name, model in models.items():
        weights = path / f"{name}.safetensors"
        check_safetensors(weights)
        try:
            load_model(model, str(weights), device=str(device))
        except RuntimeError as err:  # other tensor names or shapes: another model
            first = str(err).strip().splitlines()[0]
            raise InputError(f"weights do not fit the model being trained: {first}", weights) from None
    if not (path / "state.pt").is_file():
        raise InputError("missing state.pt (optimizer, schedule and RNG states)", path)
    try:
        state = torch.load(path / "state.pt", map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(
            "refused: holds pickled objects that torch.load(weights_only=True) does not load",
            path / "state.pt",
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        first = first_line(err)
        raise InputError(f"cannot read checkpoint state (truncated?): {first}", path / "state.pt") from None
    for k, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][k])
    for k, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][k])
    rng = state["rng"]
    rng["torch"] = rng["torch"].cpu()
    if "cuda" in rng:
        rng["cuda"] = [s.cpu() for s in rng["cuda"]]
    set_rng_state(rng)
    return json.loads((path / "meta.json").read_text())
