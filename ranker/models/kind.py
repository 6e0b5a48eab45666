"""One answer to "what kind of saved model is this?" for every command that takes a model.

Kinds, from the files a folder holds:

* ``biencoder`` / ``crossencoder``: saved by ranker (``ranker_config.json`` says which);
* ``sentence-transformers``: a sentence-transformers folder (``modules.json``) not from ranker;
* ``sequence-classification``: a plain transformers folder whose ``config.json`` names a
  ``*ForSequenceClassification`` architecture (a cross-encoder trained elsewhere);
* ``transformers``: any other plain transformers folder (a backbone);
* ``gguf``: a ``.gguf`` file (converted on load, see :mod:`ranker.encoders.gguf`);
* ``hub``: a name that is no local path, left to transformers to resolve as a hub id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from retrievers.errors import InputError

CONFIG_NAME = "ranker_config.json"
"""The file that marks a folder saved by ranker, with its ``type``."""

ModelKind = Literal[
    "biencoder",
    "crossencoder",
    "sentence-transformers",
    "sequence-classification",
    "transformers",
    "gguf",
    "hub",
]
RANKER_KINDS = ("biencoder", "crossencoder")
DESCRIPTIONS: dict[str, str] = {
    "biencoder": "a bi-encoder saved by ranker",
    "crossencoder": "a cross-encoder saved by ranker",
    "sentence-transformers": "a sentence-transformers model",
    "sequence-classification": "a transformers sequence-classification model",
    "transformers": "a transformers model",
    "gguf": "a GGUF file",
    "hub": "not a local path (a hub id?)",
}
EXPECTED = (
    f"expected a folder saved by ranker ({CONFIG_NAME}), a sentence-transformers folder "
    "(modules.json) or a transformers folder (config.json)"
)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not valid JSON ({err})", path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path)
    return data


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def model_kind(model: str | Path) -> ModelKind:
    """The kind of model ``model`` names (see the module docstring).

    Raises:
        InputError: one line naming the folder, when it does not exist (and is no hub id),
            holds none of the files above, or has an unreadable or unknown ranker config.
    """
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return "gguf"
    if not path.exists():
        if _looks_like_path(str(model)):
            raise InputError("model folder not found", path)
        return "hub"
    if not path.is_dir():
        raise InputError(f"not a model folder; {EXPECTED}", path)
    ranker = path / CONFIG_NAME
    if ranker.is_file():
        kind = _read_json(ranker).get("type")
        if kind not in RANKER_KINDS:
            raise InputError(f"type {kind!r}: expected one of {', '.join(map(repr, RANKER_KINDS))}", ranker)
        return kind
    if (path / "modules.json").is_file():
        return "sentence-transformers"
    config = path / "config.json"
    if config.is_file():
        architectures = _read_json(config).get("architectures") or []
        if any(str(a).endswith("ForSequenceClassification") for a in architectures):
            return "sequence-classification"
        return "transformers"
    raise InputError(f"not a saved model; {EXPECTED}", path)


def require_kind(model: str | Path, allowed: tuple[ModelKind, ...], what: str) -> ModelKind:
    """``model_kind(model)``, refusing (one line naming the folder) kinds not in ``allowed``;
    ``what`` says what the command needs (e.g. ``"a cross-encoder"``)."""
    kind = model_kind(model)
    if kind not in allowed:
        raise InputError(f"{DESCRIPTIONS[kind]}; expected {what}", model)
    return kind
