"""The metadata file every index folder carries: what built it, with which settings."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write

META_FILE = "ranker-index.json"


def write_meta(index_dir: str | Path, meta: dict[str, Any]) -> None:
    """Record ``meta`` (must include ``"retriever"``) in ``index_dir``, with a timestamp."""
    if "retriever" not in meta:
        raise ValueError("index metadata needs a 'retriever' key")
    from retrievers import __version__ as version

    record = {
        **meta,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "toolkit_version": version,
    }
    with atomic_write(Path(index_dir) / META_FILE) as out:
        json.dump(record, out, indent=2, sort_keys=True)
        out.write("\n")


def read_meta(index_dir: str | Path) -> dict[str, Any]:
    """Read an index folder's metadata; errors say what the folder should contain."""
    path = Path(index_dir) / META_FILE
    if not Path(index_dir).is_dir():
        raise InputError("index folder not found (build one with `ranker index`)", index_dir)
    if not path.is_file():
        raise InputError(f"not an index built by ranker: {META_FILE} is missing", index_dir)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"malformed JSON ({err.msg})", path, err.lineno) from None
    if "retriever" not in meta:
        raise InputError("missing key 'retriever'", path)
    return meta
