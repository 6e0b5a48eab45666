"""Line-level readers that report the file and line of every problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrievers.errors import InputError


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line, decoding UTF-8 strictly.

    Raises:
        InputError: the file is missing, or a line is not valid UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found (expected a readable file)", path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"invalid UTF-8 at byte {err.start} (expected UTF-8 text)", path, number
                ) from None
            text = text.rstrip("\r\n")
            if text.strip():
                yield number, text


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each line of a JSON-lines file."""
    for number, text in read_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(
                f"malformed JSON ({err.msg}); expected one JSON object per line", path, number
            ) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object on each line", path, number)
        yield number, obj


def read_tsv(
    path: str | Path, min_fields: int, max_fields: int | None = None, expected: str = ""
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for a tab-separated file, checking the field count."""
    max_fields = min_fields if max_fields is None else max_fields
    for number, text in read_lines(path):
        fields = text.split("\t")
        if not min_fields <= len(fields) <= max_fields:
            want = expected or f"{min_fields} tab-separated fields"
            raise InputError(f"found {len(fields)} field(s); expected {want}", path, number)
        yield number, fields


def require_str(obj: dict[str, Any], key: str, path: str | Path, line: int, allow_empty: bool = True) -> str:
    """Return ``obj[key]`` as a string, or raise an error naming the file and line."""
    if key not in obj:
        raise InputError(f"missing field {key!r}", path, line)
    value = obj[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"field {key!r} must be a string, got {type(value).__name__}", path, line)
    if not allow_empty and not value.strip():
        raise InputError(f"field {key!r} is empty (expected non-empty text)", path, line)
    return value
