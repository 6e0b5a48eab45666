"""``ranker train --resume``: the config must be the one the run was started with.

A checkpoint's optimizer, schedule and RNG states belong to the config that wrote them:
resuming with another ``lr``, ``max_steps`` or ``seed`` would silently keep the old values
for some parts and take the new ones for others. So a resume compares the new config with
the saved ``OUT/config.yaml`` (or the latest checkpoint's ``config.json``) and refuses any
change, except to :data:`SAFE_KEYS`, which do not touch the trajectory of the weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from ranker.training import checkpoint as ckpt
from ranker.training.config import TrainConfig, build_config
from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
# Changing these on resume leaves the weights, losses and weights dump identical.
SAFE_KEYS = frozenset({"output_dir", "keep_checkpoints", "save_every", "log_every", "eval_batch_size"})


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def saved_config(out: Path) -> tuple[Path, TrainConfig] | None:
    """The config a run in ``out`` was started with (and the file it is in), or None."""
    path = out / CONFIG_FILE
    latest = ckpt.latest_checkpoint(out / "checkpoints")
    if not path.is_file():
        if latest is None or not (latest / "config.json").is_file():
            return None
        path = latest / "config.json"
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(f"cannot read the saved config of the run to resume: {err}", path) from None
    if not isinstance(values, dict):
        raise InputError("the saved config of the run to resume is not a mapping", path)
    return path, build_config(values, str(path))


def changed_keys(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for every key (dotted for nested ones) whose value differs."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_resume(config: TrainConfig) -> None:
    """Refuse to resume ``config.output_dir`` with a changed config (one line naming the keys).

    Changes to :data:`SAFE_KEYS` are allowed and logged; so is any change when nothing has
    been checkpointed yet (the run starts over).

    Raises:
        InputError: a key outside :data:`SAFE_KEYS` differs from the saved config, whose file
            the message names, with each changed key as ``key old -> new``.
    """
    out = Path(config.output_dir)
    found = saved_config(out)
    if found is None:
        return
    path, old = found
    changes = changed_keys(old, config)
    has_checkpoint = ckpt.latest_checkpoint(out / "checkpoints") is not None
    unsafe = {k: v for k, v in changes.items() if k not in SAFE_KEYS}
    if unsafe and has_checkpoint:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in unsafe.items())
        raise InputError(
            f"--resume with a changed config ({listed}); the checkpoints were trained with the "
            "saved values: resume with the same config, or train into another output_dir",
            path,
        )
    if changes:
        logger.info(
            "--resume: %s: %s",
            "nothing checkpointed yet, starting over with the new config" if unsafe else "changed",
            ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()),
        )


def record_config(config: TrainConfig) -> None:
    """Write ``OUT/config.yaml`` (atomically) unless it already holds ``config``."""
    path = Path(config.output_dir) / CONFIG_FILE
    text = yaml.safe_dump(config.to_dict())
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(text)
