"""Read a user's YAML file (a training config, an experiment spec) safely, with line numbers.

The loader is :class:`yaml.SafeLoader` (the subset ``yaml.safe_load`` accepts: no
``!!python/...`` tags), extended to remember the line of every mapping key and to reject
duplicate keys. Every failure is one :class:`~retrievers.errors.InputError` naming the file
(and the line where YAML gives one): a missing file, a directory, invalid UTF-8, a syntax
error, an unsafe tag.

Reading is bounded, so that a file built to exhaust the reader is refused in one line before
anything is built from it: at most :data:`MAX_ALIASES` aliases (``*name``), nesting at most
:data:`MAX_DEPTH` levels deep, and at most :data:`MAX_EXPANDED` nodes and characters once
every alias is expanded (a "billion laughs" chain, or a big anchor aliased many times).
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


class YAMLLimitError(InputError):
    """YAML refused for exceeding a reading bound (aliases, depth, expanded size)."""


MAX_ALIASES = 10_000
MAX_DEPTH = 100
MAX_EXPANDED = 10_000_000


class LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers, rejects duplicate keys and bounds the reading
    (aliases, nesting depth, expanded size; see the module's docstring)."""

    name: str
    _aliases = 0
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(f"refused: more than {MAX_ALIASES:,} aliases (*name)", self.name, line)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimitError(f"refused: nested more than {MAX_DEPTH} levels deep", self.name, line)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, {}, self.name)
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], name: str) -> int:
    """Nodes plus scalar characters of ``node`` with every alias expanded (each shared node
    measured once); raises past :data:`MAX_EXPANDED` or on an alias inside its own anchor."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise YAMLLimitError(
                "refused: an alias refers to the node that contains it", name, node.start_mark.line + 1
            )
        return sizes[key]
    sizes[key] = -1
    if isinstance(node, yaml.ScalarNode):
        size = 1 + len(node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes, name) for child in node.value)
    else:
        size = 1 + sum(_expanded_size(k, sizes, name) + _expanded_size(v, sizes, name) for k, v in node.value)
    if size > MAX_EXPANDED:
        raise YAMLLimitError(
            f"refused: more than {MAX_EXPANDED:,} nodes and characters once its aliases are expanded",
            name,
            node.start_mark.line + 1,
        )
    sizes[key] = size
    return size


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
    return parse_yaml(text.removeprefix("\ufeff"), path)


def parse_yaml(text: str, name: str | Path = "<text>") -> Any:
    """Parse YAML ``text`` as :func:`read_yaml` parses a file (``name`` names it in errors)."""
    path = name
    loader = LineLoader(text)
    loader.name = str(name)
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
