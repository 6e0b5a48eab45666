"""Text reports of evaluations and comparisons: aligned table, Markdown, LaTeX, JSON.

Significance markers follow ranx: runs are labelled ``a``, ``b``, ``c`` ... in the order
given, and a score carries the superscript letters of the runs it is significantly better
than on that metric (after the correction). With a baseline only comparisons with the
baseline are made, so a run significantly better than baseline ``a`` shows ``ᵃ``, and the
baseline shows the letters of runs it beats. Markdown and the plain table use Unicode
superscripts (as ranx prints them); LaTeX uses ``$^{ab}$``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ranker.evaluation.compare import Comparison
from ranker.evaluation.metrics import RunEvaluation
from retrievers.io.atomic import atomic_write

FORMATS = ("table", "md", "latex", "json")
_SUPERSCRIPT = dict(
    zip("abcdefghijklmnoprstuvwxyz0123456789", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ⁰¹²³⁴⁵⁶⁷⁸⁹", strict=True)
)


def letter(index: int) -> str:
    """Label of the run at ``index``: a, b, ..., z, then a1, b1, ... (ranx stops at z)."""
    letters = "abcdefghijklmnoprstuvwxyz"  # no "q": Unicode has no superscript q
    base = letters[index % len(letters)]
    return base if index < len(letters) else f"{base}{index // len(letters)}"


def _superscript(labels: Sequence[str]) -> str:
    return "".join(_SUPERSCRIPT.get(c, c) for label in labels for c in label)


def _marker(labels: Sequence[str], latex: bool) -> str:
    """Significance marker: Unicode superscripts, or ``$^{ab}$`` in LaTeX."""
    if not latex:
        return _superscript(labels)
    return f"$^{{{''.join(labels)}}}$" if labels else ""


def _latex_escape(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
    ):
        text = text.replace(char, escaped)
    return text


def _number(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _pvalue(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def _grid(header: list[str], rows: list[list[str]], fmt: str) -> str:
    """Render a grid as an aligned text table, a Markdown table or a LaTeX tabular."""
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    if fmt == "latex":
        spec = "l" * 1 + "r" * (len(header) - 1)
        lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
        lines += [" & ".join(row) + r" \\" for row in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    line += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(line)


def scores_json(evaluations: Sequence[RunEvaluation]) -> dict[str, dict[str, float]]:
    """``{run: {metric: mean}}``, the shape ``ranker evaluate --format json`` prints."""
    return {ev.name: {m: float(v) for m, v in ev.means.items()} for ev in evaluations}


def format_scores(evaluations: Sequence[RunEvaluation], fmt: str = "table") -> str:
    """Mean scores of each run (rows) on each metric (columns)."""
    if fmt == "json":
        return json.dumps(scores_json(evaluations), indent=2)
    metrics = list(evaluations[0].scores)
    esc = _latex_escape if fmt == "latex" else str
    header = ["run", *[esc(m) for m in metrics]]
    rows = [[esc(ev.name), *[_number(ev.means[m]) for m in metrics]] for ev in evaluations]
    notes = [ev.describe_queries() for ev in evaluations]
    prefix = {"latex": "% ", "md": "- "}.get(fmt, "")
    return _grid(header, rows, fmt) + "\n\n" + "\n".join(prefix + esc(n) for n in notes)


def nan_as_null(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every float NaN replaced by None (JSON null; JSON has no NaN)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """Everything in a comparison as plain JSON types (NaN becomes null)."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    names = comparison.runs
    return {
        "test": comparison.test,
        "correction": comparison.correction,
        "alpha": comparison.alpha,
        "seed": comparison.seed,
        "n_resamples": comparison.n_resamples,
        "n_queries": comparison.n_queries,
        "baseline": None if comparison.baseline is None else names[comparison.baseline],
        "runs": {
            name: {
                "label": letter(r),
                "scores": {m: float(comparison.means[m][r]) for m in comparison.metrics},
                "ci95": {m: [float(x) for x in comparison.ci[m][r]] for m in comparison.metrics},
                "better_than": {
                    m: [names[o] for o in comparison.better_than(m, r)] for m in comparison.metrics
                },
            }
            for r, name in enumerate(names)
        },
        "comparisons": [
            {
                "metric": p.metric,
                "run": names[p.b],
                "against": names[p.a],
                "delta": p.delta,
                "ci95": [p.ci_low, p.ci_high],
                "effect_size": clean(p.effect_size),
                "p_value": p.p_value,
                "p_corrected": p.p_corrected,
                "significant": p.significant,
            }
            for p in comparison.pairs
        ],
        "queries": list(comparison.query_notes),
        "notes": list(comparison.notes),
    }


def format_comparison(comparison: Comparison, fmt: str = "md") -> str:
    """A score table with significance markers, then one row per test."""
    if fmt == "json":
        return json.dumps(comparison_json(comparison), indent=2)
    latex = fmt == "latex"
    esc = _latex_escape if latex else str
    names = comparison.runs
    header = ["", "run", *[esc(m) for m in comparison.metrics]]
    rows = []
    for r, name in enumerate(names):
        cells = []
        for metric in comparison.metrics:
            labels = [letter(o) for o in comparison.better_than(metric, r)]
            cells.append(_number(comparison.means[metric][r]) + _marker(labels, latex))
        rows.append([letter(r), esc(name), *cells])
    scores = _grid(header, rows, fmt)
    test_header = ["metric", "run", "vs", "delta", "95% CI", "effect d", "p", "p corrected", "sig."]
    test_rows = [
        [
            esc(p.metric),
            letter(p.b),
            letter(p.a),
            f"{p.delta:+.4f}",
            f"[{p.ci_low:+.4f}, {p.ci_high:+.4f}]",
            _number(p.effect_size, 3),
            _pvalue(p.p_value),
            _pvalue(p.p_corrected),
            "yes" if p.significant else "no",
        ]
        for p in comparison.pairs
    ]
    tests = _grid([esc(h) for h in test_header], test_rows, fmt)
    legend = (
        f"Test: {comparison.test}; correction: {comparison.correction} per metric; "
        f"alpha = {comparison.alpha}; seed = {comparison.seed}; "
        f"{comparison.n_queries} queries. A superscript letter marks a run significantly "
        "better than the run with that letter. CIs: paired bootstrap, "
        f"{comparison.n_resamples} resamples. Effect d: mean difference / its SD."
    )
    prefix = {"latex": "% ", "md": "- "}.get(fmt, "")
    notes = [legend, *comparison.notes, *comparison.query_notes]
    return "\n\n".join([scores, tests, "\n".join(prefix + esc(n) for n in notes)])


def write_per_query(path: str | Path, evaluations: Sequence[RunEvaluation]) -> None:
    """Write per-query scores as CSV (``run,query,<metric>...``), atomically.

    Judged queries missing from a run appear with score 0, as they are averaged.
    """
    metrics = list(evaluations[0].scores)
    with atomic_write(path) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["run", "query", *metrics])
        for ev in evaluations:
            for row, qid in enumerate(ev.queries):
                writer.writerow([ev.name, qid, *[repr(float(ev.scores[m][row])) for m in metrics]])
