"""Check the scores a run produced against the spec's expected values (Pyserini 2CR style)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ranker.experiments.spec import Expectation
from ranker.experiments.variables import Context, substitute


@dataclass(frozen=True)
class Check:
    """One expected score and what was measured.

    ``status`` is ``ok``, ``drift`` (outside the tolerance), ``missing`` (the score file or
    entry does not exist) or ``unpinned`` (the spec gives no value for this profile).
    """

    expectation: Expectation
    expected: float | None
    measured: float | None
    status: str

    @property
    def failed(self) -> bool:
        return self.status in ("drift", "missing")

    def describe(self) -> str:
        """One line saying what drifted, for the terminal."""
        e = self.expectation
        where = f"{e.scores} [{e.run}] {e.metric}"
        if self.status == "missing" or self.measured is None:
            return f"{where}: no such score was written"
        if self.expected is None:
            return f"{where}: measured {self.measured:.4f}, no expected value for this profile"
        return (
            f"{where}: measured {self.measured:.4f}, expected {self.expected:.4f} "
            f"± {e.tolerance:g} (off by {self.measured - self.expected:+.4f})"
        )


def _lookup(scores: Path, run: str, metric: str) -> float | None:
    try:
        table = json.loads(scores.read_text())
    except (OSError, ValueError):
        return None
    row = table.get(run) if isinstance(table, dict) else None
    if not isinstance(row, dict):
        return None
    value = row.get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def check_expectations(expectations: list[Expectation], context: Context) -> list[Check]:
    """Compare each expectation with ``scores[run][metric]`` read from the work folder."""
    checks = []
    for e in expectations:
        path = Path(substitute(e.scores, context, e.line))
        path = path if path.is_absolute() else context.work / path
        measured = _lookup(path, substitute(e.run, context, e.line), e.metric)
        expected = e.values.get(context.profile)
        if measured is None:
            status = "missing" if expected is not None else "unpinned"
        elif expected is None:
            status = "unpinned"
        else:
            status = "ok" if abs(measured - expected) <= e.tolerance + 1e-12 else "drift"
        checks.append(Check(e, expected, measured, status))
    return checks
