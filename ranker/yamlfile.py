"""Read a user's YAML file (a training config, an experiment spec) safely, with line numbers.

The loader is :class:`yaml.SafeLoader` (the subset ``yaml.safe_load`` accepts: no
``!!python/...`` tags), extended to remember the line of every mapping key and to reject
duplicate keys. Every failure is one :class:`~retrievers.errors.InputError` naming the file
(and the line where YAML gives one): a missing file, a directory, invalid UTF-8, a syntax
error, an unsafe tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from retrievers.errors import InputError


class LineDict(dict):
    """A mapping that remembers the line of each key (``lines``) and of itself (``line``)."""

    line: int = 0
    lines: dict[str, int]


class LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers and rejects duplicate keys."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineDict:
    seen: set = set()
    for key_node, _ in node.value:  # duplicates among the mapping's own keys are an error
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise InputError(f"key {key!r} appears twice", loader.name, key_node.start_mark.line + 1)
        seen.add(key)
    loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor); own keys override merged ones
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[str(key)] = key_node.start_mark.line + 1
    return mapping


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Parse ``path``; mappings come back as :class:`LineDict`.

    Args:
        path: The file.
        what: What the file is, for the messages ("training config", "experiment spec").

    Raises:
        InputError: naming the file (and line) for every reason the file cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} is a directory, not a file", path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path) from None
    except UnicodeDecodeError as err:
        raise InputError(f"{what} is not valid UTF-8 (byte {err.start})", path) from None
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror}", path) from None
    loader = LineLoader(text.removeprefix("\ufeff"))
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise InputError(
            f"not valid YAML: {problem}", path, mark.line + 1 if mark is not None else None
        ) from None
    finally:
        loader.dispose()
