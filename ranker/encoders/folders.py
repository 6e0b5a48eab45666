"""Checks on a model folder before anything loads it, so a bad one is one clear error.

A folder that does not exist, has no ``config.json``, holds only pickled PyTorch weights
(``pytorch_model.bin``: loading them runs pickle, so they are refused; only safetensors are
read), asks for its own code to be run (a ``config.json`` ``auto_map`` for a model type
transformers does not know: ``trust_remote_code`` stays off) or a truncated ``.safetensors``
file raises :class:`~retrievers.errors.InputError`
naming the folder (or file), instead of a traceback from deep inside transformers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from retrievers.errors import InputError

# What the Hugging Face Hub accepts as a model id: "name" or "owner/name".
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")


def is_local(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` means a local folder (it exists, or cannot be a hub id)."""
    text = str(name_or_path)
    return Path(text).exists() or not HUB_ID.match(text) or text.startswith((".", "~"))


def check_safetensors(path: Path) -> None:
    """Refuse a missing or unreadable (truncated, not safetensors) weights file."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise InputError(f"missing weights file {path.name}", path.parent)
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as err:
        reason = " ".join(str(err).split())
        raise InputError(f"not a readable safetensors file (truncated?): {reason}", path) from None


def check_remote_code(folder: Path) -> None:
    """Refuse a folder whose model only loads by running the folder's own code."""
    from transformers import CONFIG_MAPPING

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"config.json is not readable JSON: {err}", folder) from None
    if not isinstance(config, dict):
        raise InputError("config.json is not a JSON object", folder)
    model_type = config.get("model_type")
    if config.get("auto_map") and model_type not in CONFIG_MAPPING:
        raise InputError(
            f"the model (model_type {model_type!r}) needs the folder's own Python code (config.json "
            "auto_map), which ranker never runs (trust_remote_code is off); use a model transformers knows",
            folder,
        )


def check_model_folder(name_or_path: str | Path, trust_remote_code: bool = False) -> None:
    """Refuse a local model folder transformers could not load safely (no-op for a hub id).

    Raises:
        InputError: the folder is missing or not a folder, has no ``config.json``, asks for
            its own code to be run (unless ``trust_remote_code``), has only pickled weights,
            or a ``.safetensors`` file in it is unreadable.
    """
    if not is_local(name_or_path):
        return
    folder = Path(name_or_path)
    if not folder.exists():
        raise InputError("model folder not found", folder)
    if not folder.is_dir():
        raise InputError("expected a model folder, got a file", folder)
    if not (folder / "config.json").is_file():
        raise InputError("not a transformers model folder (no config.json)", folder)
    if not trust_remote_code:
        check_remote_code(folder)
    if not any(folder.glob("model*.safetensors")):
        pickled = [name for name in PICKLED if (folder / name).exists()]
        if pickled:
            raise InputError(
                f"holds pickled PyTorch weights ({pickled[0]}), which are not loaded (unpickling "
                "can run code); save the model with safetensors (save_pretrained(..., "
                "safe_serialization=True))",
                folder,
            )
        raise InputError("no model weights (model*.safetensors) in the folder", folder)
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file of a saved model; a missing or invalid one names the file."""
    if not path.is_file():
        raise InputError(f"not a saved {what} (no {path.name})", path.parent)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not valid JSON: {err}", path) from None
