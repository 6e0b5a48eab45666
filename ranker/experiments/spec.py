"""Experiment specs: a YAML file of ranker commands, their outputs, profiles and expected scores.

A spec is read with a :class:`yaml.SafeLoader` (the same safe subset as ``yaml.safe_load``)
that also remembers line numbers, so every error names the file, the line and the key.
Unknown keys are rejected, in the spirit of Pyserini's ``2cr/*.yaml`` files, each condition
is a command plus the scores it must reproduce.

Layout (see docs/experiments.md)::

    name: quickstart
    description: ...
    vars: {k: 1000}                      # defaults, overridden per profile
    profiles:
      small: {train_steps: 60}
      full: {train_steps: 2000}
    steps:
      - name: bm25-index
        run: [index, scifact, --index, bm25-index]
        outputs: [bm25-index]
    report:
      - {title: ..., text: ..., table: compare.md, plot: compare.png}
    expected:
      - {scores: eval.json, run: bm25.trec, metric: ndcg@10, small: 0.6789, tolerance: 0.0005}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ranker.yamlfile import LineDict, read_yaml
from retrievers.errors import InputError

TOP_KEYS = {
    "name",
    "description",
    "vars",
    "profiles",
    "default_profile",
    "steps",
    "report",
    "expected",
    "tolerance",
}
STEP_KEYS = {"name", "description", "run", "outputs", "inputs", "resumable", "profiles", "matrix"}
REPORT_KEYS = {"title", "text", "table", "plot", "profiles", "matrix", "summary"}
EXPECTED_KEYS = {"scores", "run", "metric", "tolerance", "note"}
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_TOLERANCE = 0.0005


@dataclass(frozen=True)
class Step:
    """One ranker command with the outputs it promises to write (paths relative to the work folder)."""

    name: str
    run: list[Any]
    outputs: list[str]
    inputs: list[str] = field(default_factory=list)
    resumable: bool = False
    profiles: list[str] | None = None
    description: str = ""
    matrix: dict[str, Any] | None = None
    line: int = 0


@dataclass(frozen=True)
class Section:
    """A part of the results file: prose, a table (a .md file or a .json file) and/or a plot."""

    title: str
    text: str = ""
    table: str | None = None
    plot: str | None = None
    profiles: list[str] | None = None
    matrix: dict[str, Any] | None = None
    summary: bool = False  # also print this section's table at the end of `ranker run`
    line: int = 0


@dataclass(frozen=True)
class Expectation:
    """A score the spec must reproduce: ``scores[run][metric]`` within ``tolerance`` per profile."""

    scores: str
    run: str
    metric: str
    values: dict[str, float]
    tolerance: float
    note: str = ""
    line: int = 0


@dataclass(frozen=True)
class Spec:
    """A parsed experiment spec."""

    path: Path
    name: str
    description: str
    vars: dict[str, Any]
    profiles: dict[str, dict[str, Any]]
    default_profile: str
    steps: list[Step]
    report: list[Section]
    expected: list[Expectation]

    def settings(self, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``vars`` with ``profile``'s overrides applied, then ``overrides`` (``--set``).

        Raises:
            InputError: an unknown profile, or an override naming no variable.
        """
        if profile not in self.profiles:
            raise InputError(
                f"unknown profile {profile!r}; this spec has: {', '.join(self.profiles)}", self.path
            )
        settings = {**self.vars, **self.profiles[profile]}
        unknown = sorted(set(overrides or {}) - settings.keys())
        if unknown:
            raise InputError(
                f"--set {unknown[0]}: no such variable in 'vars' or profile {profile!r} "
                f"(known: {', '.join(sorted(settings))})",
                self.path,
            )
        return {**settings, **(overrides or {})}


def _check_keys(
    mapping: Any,
    allowed: set[str],
    what: str,
    path: Path,
    line: int,
    extra: set[str] | frozenset[str] = frozenset(),
) -> LineDict:
    if not isinstance(mapping, dict):
        raise InputError(f"{what}: expected a mapping, got {type(mapping).__name__}", path, line)
    for key in mapping:
        if key not in allowed and key not in extra:
            known = ", ".join(sorted(allowed | extra))
            raise InputError(
                f"unknown key {key!r} in {what} (expected one of: {known})",
                path,
                getattr(mapping, "lines", {}).get(str(key), line),
            )
    return cast(LineDict, mapping)


def _str_list(value: Any, what: str, path: Path, line: int) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{what}: expected a list of strings", path, line)
    return list(value)


def _is_arg(value: Any) -> bool:
    """A ``run`` entry: a string or number, or ``{each: LIST, arg: TEMPLATE}`` (one per item)."""
    if isinstance(value, dict):
        return set(value) == {"each", "arg"} and isinstance(value["arg"], str)
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _parse_step(raw: Any, index: int, path: Path, profiles: set[str]) -> Step:
    line = getattr(raw, "line", 0)
    named = isinstance(raw, dict) and isinstance(raw.get("name"), str)
    _check_keys(raw, STEP_KEYS, f"step {raw['name']!r}" if named else f"step {index + 1}", path, line)
    for key in ("name", "run", "outputs"):
        if key not in raw:
            raise InputError(f"step {index + 1}: missing key {key!r}", path, line)
    name = raw["name"]
    if not isinstance(name, str) or not STEP_NAME.match(re.sub(r"\$\{[^}]*\}", "x", name)):
        raise InputError(
            f"step {index + 1}: name {name!r} must be letters, digits, '_', '.', '-'", path, line
        )
    matrix = _matrix(raw.get("matrix"), f"step {name!r}", path, line)
    run = raw["run"]
    if not isinstance(run, list) or not run or not all(_is_arg(a) for a in run):
        raise InputError(
            f"step {name!r}: 'run' must be a non-empty list of ranker arguments "
            "(strings, numbers, or {each: LIST, arg: TEMPLATE}), e.g. "
            "[search, scifact, --k, 100]",
            path,
            line,
        )
    if run[0] == "run":
        raise InputError(f"step {name!r}: a step cannot run another spec", path, line)
    if isinstance(run[0], str) and "${" not in run[0]:
        from ranker.cli import COMMANDS

        if run[0] not in COMMANDS:
            known = ", ".join(c for c in COMMANDS if c != "run")
            raise InputError(
                f"step {name!r}: unknown ranker command {run[0]!r} (expected one of: {known})",
                path,
                line,
            )
    only = raw.get("profiles")
    if only is not None:
        only = _str_list(only, f"step {name!r}: profiles", path, line)
        for p in only:
            if p not in profiles:
                raise InputError(f"step {name!r}: unknown profile {p!r}", path, line)
    return Step(
        name=name,
        run=list(run),
        outputs=_str_list(raw["outputs"], f"step {name!r}: outputs", path, line),
        inputs=_str_list(raw.get("inputs", []), f"step {name!r}: inputs", path, line),
        resumable=bool(raw.get("resumable", False)),
        profiles=only,
        description=str(raw.get("description", "")),
        matrix=matrix,
        line=line,
    )


def _matrix(value: Any, what: str, path: Path, line: int) -> dict[str, Any] | None:
    """``matrix: {KEY: [values] or "${profile.LIST}"}``: the step repeats for each combination."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise InputError(f"{what}: 'matrix' must be a mapping of KEY: [values]", path, line)
    for key, values in value.items():
        if not isinstance(values, list | str) or (isinstance(values, list) and not values):
            raise InputError(
                f"{what}: matrix {key!r} must be a non-empty list or a ${{profile.KEY}} naming one",
                path,
                line,
            )
    return dict(value)


def _parse_expectation(raw: Any, index: int, path: Path, profiles: set[str], tolerance: float) -> Expectation:
    line = getattr(raw, "line", 0)
    _check_keys(raw, EXPECTED_KEYS, f"expected entry {index + 1}", path, line, extra=profiles)
    for key in ("scores", "run", "metric"):
        if key not in raw:
            raise InputError(f"expected entry {index + 1}: missing key {key!r}", path, line)
    values = {}
    for profile in profiles & set(raw):
        value = raw[profile]
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise InputError(f"expected entry {index + 1}: {profile} must be a finite number", path, line)
        values[profile] = float(value)
    return Expectation(
        scores=str(raw["scores"]),
        run=str(raw["run"]),
        metric=str(raw["metric"]),
        values=values,
        tolerance=_tolerance(raw.get("tolerance", tolerance), path, line),
        note=str(raw.get("note", "")),
        line=line,
    )


def _tolerance(value: Any, path: Path, line: int) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise InputError(f"'tolerance' must be a finite number >= 0, got {value!r}", path, line)
    return float(value)


def _flag(value: Any, key: str, path: Path, line: int) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{key!r} must be true or false, got {value!r}", path, line)
    return value


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file.

    Raises:
        InputError: the file is not valid YAML, has an unknown key, a missing key, a duplicate
            step name, or a value of the wrong type (the message names the file and line).
    """
    path = Path(path)
    raw = read_yaml(path, "experiment spec")
    _check_keys(raw, TOP_KEYS, "the spec", path, 1)
    if "steps" not in raw or not isinstance(raw["steps"], list) or not raw["steps"]:
        raise InputError("the spec needs a non-empty 'steps' list", path, 1)
    profiles_raw = raw.get("profiles") or {"default": {}}
    _check_keys(profiles_raw, set(profiles_raw), "profiles", path, raw.lines.get("profiles", 1))
    profiles = {}
    for name, values in profiles_raw.items():
        if not isinstance(values, dict):
            raise InputError(
                f"profile {name!r}: expected a mapping of variables",
                path,
                getattr(profiles_raw, "lines", {}).get(name),
            )
        profiles[str(name)] = dict(values)
    default = raw.get("default_profile", "small" if "small" in profiles else next(iter(profiles)))
    if default not in profiles:
        raise InputError(
            f"default_profile {default!r} is not a profile", path, raw.lines.get("default_profile")
        )
    variables = raw.get("vars") or {}
    if not isinstance(variables, dict):
        raise InputError("'vars' must be a mapping", path, raw.lines.get("vars"))
    steps = [_parse_step(s, i, path, set(profiles)) for i, s in enumerate(raw["steps"])]
    seen: dict[str, Step] = {}
    for step in steps:
        if step.matrix is None and step.name in seen:  # matrix names are checked once expanded
            raise InputError(f"step name {step.name!r} is used twice", path, step.line)
        seen[step.name] = step
    report = []
    for i, section in enumerate(raw.get("report") or []):
        _check_keys(section, REPORT_KEYS, f"report section {i + 1}", path, getattr(section, "line", 0))
        line = getattr(section, "line", 0)
        report.append(
            Section(
                title=str(section.get("title", f"Section {i + 1}")),
                text=str(section.get("text", "")).strip(),
                table=section.get("table"),
                plot=section.get("plot"),
                profiles=section.get("profiles"),
                matrix=_matrix(section.get("matrix"), f"report section {i + 1}", path, line),
                summary=_flag(section.get("summary", False), "summary", path, line),
                line=line,
            )
        )
    tolerance = _tolerance(raw.get("tolerance", DEFAULT_TOLERANCE), path, raw.lines.get("tolerance", 1))
    expected = [
        _parse_expectation(e, i, path, set(profiles), tolerance)
        for i, e in enumerate(raw.get("expected") or [])
    ]
    return Spec(
        path=path,
        name=str(raw.get("name", path.stem)),
        description=str(raw.get("description", "")).strip(),
        vars=dict(variables),
        profiles=profiles,
        default_profile=default,
        steps=steps,
        report=report,
        expected=expected,
    )
