"""Write ``experiments/results/NAME.md``: provenance, expected-score checks, tables and plots."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ranker.experiments.expect import Check
from ranker.experiments.machine import machine_description
from ranker.experiments.paths import portable
from ranker.experiments.runner import RunResult
from ranker.experiments.spec import Section, Spec
from ranker.experiments.variables import Context, combinations, substitute
from retrievers.io.atomic import atomic_write

STATUS = {"ok": "ok", "drift": "**DRIFT**", "missing": "**MISSING**", "unpinned": "not pinned"}


def _git_commit(folder: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=folder,
            text=True,
            capture_output=True,
            check=False,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            text=True,
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("+changes" if dirty.stdout.strip() else "")


def _brief(value: Any) -> Any:
    """A setting as shown in the results: mappings by their ``name`` (or keys)."""
    if isinstance(value, dict):
        return value.get("name", "{" + ", ".join(map(str, value)) + "}")
    if isinstance(value, list):
        return "[" + ", ".join(str(_brief(v)) for v in value) + "]"
    return value


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def json_table(data: Any) -> str:
    """A markdown table of a JSON object of objects ({row: {column: value}}) or list of objects."""
    if isinstance(data, dict) and isinstance(data.get("rows"), list):  # e.g. `ranker audit --json`
        # more lists of rows (e.g. the audit's pool_coverage) get tables of their own
        tables = [json_table(v) for k, v in data.items() if isinstance(v, list)]
        rest = {k: v for k, v in data.items() if not isinstance(v, list)}
        return "\n\n".join(tables) + ("\n\n" + json_table(rest) if rest else "")
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        rows = [{"": key, **value} for key, value in data.items()]
    elif isinstance(data, list) and all(isinstance(v, dict) for v in data):
        rows = data
    elif isinstance(data, dict):
        rows = [{"key": k, "value": v} for k, v in data.items()]
    else:
        return f"```\n{json.dumps(data, indent=1)}\n```"
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            _number(row.get(c, "")) if not isinstance(row.get(c), dict | list) else json.dumps(row.get(c))
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table(path: Path) -> str:
    if not path.is_file():
        return f"*(not produced: {path.name} is missing)*"
    if path.suffix == ".json":
        return json_table(json.loads(path.read_text()))
    return path.read_text().strip()


def _checks_table(checks: list[Check]) -> list[str]:
    lines = [
        "| scores | run | metric | expected | measured | tolerance | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        e = c.expectation
        lines.append(
            f"| {e.scores} | {e.run} | {e.metric} | "
            f"{'' if c.expected is None else f'{c.expected:.4f}'} | "
            f"{'' if c.measured is None else f'{c.measured:.4f}'} | ±{e.tolerance:g} | "
            f"{STATUS[c.status]} |"
        )
    return lines


def write_results(
    spec: Spec, context: Context, result: RunResult, checks: list[Check], out: Path, command: str
) -> Path:
    """Write the results file and copy its plots beside it (``NAME.<plot file name>``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    total = sum(p.seconds or 0 for p in result.steps)
    lines = [f"# {spec.name}", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [
        f"Produced with profile **{context.profile}** by `{command}` on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} (commit {_git_commit(spec.path.parent)}; "
        f"{total:.0f} s of step time). Every table below comes from this profile.",
        "",
        f"Machine: {machine_description()}.",
        "",
    ]
    settings = {k: _brief(v) for k, v in context.settings.items()}
    if settings:
        lines += ["Profile settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    if checks:
        lines += ["## Expected scores", "", *_checks_table(checks), ""]
    for section, each in _sections(spec, context):
        lines += _section(section, each, out)
    lines += ["## Steps", "", "| step | command | seconds | this run |", "|---|---|---|---|"]
    for p in result.steps:
        argv = " ".join(p.argv)
        seconds = "" if p.seconds is None else f"{p.seconds:.1f}"
        lines.append(f"| {p.step.name} | `ranker {argv}` | {seconds} | {'cached' if p.cached else 'ran'} |")
    text = portable("\n".join(lines).rstrip() + "\n", context.work, context.spec_dir, work_as="")
    with atomic_write(out) as handle:
        handle.write(text)
    return out


def summary(spec: Spec, context: Context) -> str:
    """The tables of the report sections marked ``summary: true`` (printed after a run)."""
    parts = [
        f"{substitute(section.title, each, section.line)}\n\n{_table(_in_work(section.table, each))}"
        for section, each in _sections(spec, context)
        if section.summary and section.table
    ]
    return portable("\n\n".join(parts), context.work, context.spec_dir, work_as="")


def _sections(spec: Spec, context: Context) -> Iterator[tuple[Section, Context]]:
    """The report sections of this profile, once per matrix combination."""
    for section in spec.report:
        if section.profiles is None or context.profile in section.profiles:
            for each in combinations(section.matrix, context, section.line):
                yield section, each


def _section(section: Section, context: Context, out: Path) -> list[str]:
    lines = [f"## {substitute(section.title, context, section.line)}", ""]
    if section.text:
        lines += [substitute(section.text, context, section.line), ""]
    if section.table:
        lines += [_table(_in_work(section.table, context)), ""]
    if section.plot:
        source = _in_work(section.plot, context)
        if source.is_file():
            rel = source.relative_to(context.work) if context.work in source.parents else source
            target = out.with_name(f"{out.stem}.{str(rel).replace('/', '.')}")
            shutil.copyfile(source, target)
            lines += [f"![{substitute(section.title, context)}]({target.name})", ""]
        else:
            lines += [f"*(plot not produced: {source.name} is missing)*", ""]
    return lines


def _in_work(text: str, context: Context) -> Path:
    path = Path(substitute(text, context))
    return path if path.is_absolute() else context.work / path
