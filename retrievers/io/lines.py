"""Line-level readers that report the file and line of every problem.

Every reader here streams its file (never reads it whole), reads gzip transparently (by
the ``.gz`` name or by the gzip header, so a gzipped run named ``run.trec`` works too),
drops a UTF-8 byte-order mark at the start, and decodes UTF-8 strictly.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from retrievers.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# Whitespace (str.isspace, Unicode included) or a control character: not allowed in ids.
BAD_ID_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")
BOM = "\ufeff"


def with_gz(path: str | Path) -> Path:
    """``path`` if it exists, else ``path.gz`` if that exists, else ``path`` (for the error)."""
    path = Path(path)
    if path.exists():
        return path
    gz = path.with_name(path.name + ".gz")
    return gz if gz.exists() else path


def strip_gz(name: str) -> str:
    """A file name without its ``.gz`` suffix (``queries.test.tsv.gz`` -> ``queries.test.tsv``)."""
    return name[: -len(".gz")] if name.endswith(".gz") else name


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts with the gzip header."""
    with Path(path).open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a readable file in binary mode, decompressing gzip on the fly.

    Raises:
        InputError: the file is missing or a directory, or is named ``.gz`` but is not gzip.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("is a directory (expected a readable file)", path)
    if not path.is_file():
        raise InputError("file not found (expected a readable file)", path)
    try:
        gz = is_gzip(path)
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", path) from None
    if path.name.endswith(".gz") and not gz and path.stat().st_size > 0:
        raise InputError("not a gzip file (named .gz but has no gzip header)", path)
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else path.open("rb")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line, decoding UTF-8 strictly.

    A byte-order mark at the start of the file is dropped; gzip is decompressed.

    Raises:
        InputError: the file is missing, a line is not valid UTF-8, or a gzip file is corrupt.
    """
    path = Path(path)
    number = 0
    with open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise InputError(
                        f"invalid UTF-8 at byte {err.start} (expected UTF-8 text)", path, number
                    ) from None
                if number == 1 and text.startswith(BOM):
                    text = text[1:]
                text = text.rstrip("\r\n")
                if text.strip():
                    yield number, text
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"corrupt or truncated gzip data after line {number} ({reason})", path) from None
        except OSError as err:
            raise InputError(f"cannot read ({err.strerror or err})", path) from None


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


def check_id(value: str, what: str, path: str | Path | None, line: int | None) -> str:
    """Return ``value`` if it is a usable id: non-empty, no whitespace, no control characters.

    Ids end up as columns of TREC files, where a space or a NUL byte silently breaks them.
    """
    if not value:
        raise InputError(f"empty {what}", path, line)
    if BAD_ID_CHAR.search(value) is None:  # the common case, fast
        return value
    bad = next((c for c in value if c.isspace() or ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        kind = "whitespace" if bad.isspace() else "a control character"
        raise InputError(f"{what} {value!r} contains {kind} ({bad!r}); ids must be single tokens", path, line)
    return value


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


def require_id(obj: dict[str, Any], key: str, path: str | Path, line: int) -> str:
    """``obj[key]`` as an id (see :func:`check_id`)."""
    return check_id(require_str(obj, key, path, line), f"id {key!r}", path, line)
