"""Systems against one baseline, sorted by score: a table with cost columns, and a forest plot.

Reads the JSON of ``ranker compare --baseline B --format json`` (scores, 95% CIs, paired
deltas, effect sizes, corrected p-values) for one metric.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrievers.errors import InputError


@dataclasses.dataclass(frozen=True)
class Row:
    """One system: its score and CI, and (except the baseline) its paired test."""

    run: str
    score: float
    ci: tuple[float, float]
    delta: float | None = None
    delta_ci: tuple[float, float] | None = None
    effect_size: float | None = None
    p_corrected: float | None = None
    significant: bool = False


def read_rows(path: str | Path, metric: str) -> tuple[str, list[Row], dict[str, Any]]:
    """``(baseline, rows sorted by score (best first), report)`` from a compare JSON file."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("compare report not found", path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not JSON (expected `ranker compare --format json` output): {err}", path) from None
    if not isinstance(report, dict) or not report.get("baseline") or "runs" not in report:
        raise InputError("expected the JSON of `ranker compare --baseline RUN --format json`", path)
    baseline = report["baseline"]
    tests = {
        c["run"]: c
        for c in report.get("comparisons", [])
        if c["metric"] == metric and c["against"] == baseline
    }
    rows = []
    for run, entry in report["runs"].items():
        if metric not in entry.get("scores", {}):
            raise InputError(f"run {run!r} has no {metric} (metrics: {', '.join(entry['scores'])})", path)
        test = tests.get(run)
        rows.append(
            Row(
                run=run,
                score=entry["scores"][metric],
                ci=tuple(entry["ci95"][metric]),
                delta=test["delta"] if test else None,
                delta_ci=tuple(test["ci95"]) if test else None,
                effect_size=test["effect_size"] if test else None,
                p_corrected=test["p_corrected"] if test else None,
                significant=bool(test and test["significant"]),
            )
        )
    rows.sort(key=lambda r: -r.score)
    return baseline, rows, report


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


def markdown(
    baseline: str,
    rows: list[Row],
    metric: str,
    costs: Mapping[str, Any] | None = None,
    report: Mapping[str, Any] | None = None,
) -> str:
    """The ranked table; with ``costs`` (label -> :class:`~ranker.models.cost.EncodingCost`),
    parameters added and encoding time relative to the baseline's."""
    costs = costs or {}
    head = f"| rank | run | {metric} [95% CI] | Δ vs {baseline} [95% CI] | d | p (corrected) |"
    rule = "|---|---|---|---|---|---|"
    base_cost = costs.get(baseline)
    if costs:
        head += " params added | encode time vs " + baseline + " |"
        rule += "---|---|"
    lines = [head, rule]
    for rank, row in enumerate(rows, 1):
        name = f"**{row.run}**" if row.run == baseline else row.run
        delta = (
            "baseline"
            if row.delta is None
            else f"{row.delta:+.4f} [{row.delta_ci[0]:+.4f}, {row.delta_ci[1]:+.4f}]"  # type: ignore[index]
            + (" *" if row.significant else "")
        )
        effect = "" if row.effect_size is None else f"{row.effect_size:+.2f}"
        cells = [str(rank), name, f"{row.score:.4f} [{row.ci[0]:.4f}, {row.ci[1]:.4f}]", delta, effect]
        cells.append(_p(row.p_corrected))
        if costs:
            cost = costs.get(row.run)
            if cost is None:
                cells += ["", ""]
            else:
                share = cost.added_params / cost.backbone_params if cost.backbone_params else 0.0
                cells.append(f"{cost.added_params:,} ({100 * share:.2f}%)")
                ratio = cost.seconds_per_doc / base_cost.seconds_per_doc if base_cost else float("nan")
                cells.append(f"{ratio:.2f}x ({1000 * cost.seconds_per_doc:.1f} ms/doc)")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if report is not None:
        lines.append(
            f"Paired {report.get('test', '')} test against {baseline} over "
            f"{report.get('n_queries', '?')} queries, {report.get('correction', '')}-corrected; "
            f"* significant at alpha {report.get('alpha', 0.05)}; d: effect size (mean delta / sd)."
        )
    if costs:
        lines.append(
            "Params added: parameters outside the backbone (the pooler's), with their share of "
            "the backbone's. Encode time: median over rounds in which the models took turns on "
            "the same documents."
        )
    return "\n".join(lines) + "\n"


def forest_plot(baseline: str, rows: list[Row], metric: str, path: str | Path, title: str = "") -> None:
    """Runs sorted by score with 95% CIs; the baseline's score a dashed line; significantly
    better runs green, worse red, the rest grey and hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ranker.evaluation.plots import figure_format, save_figure

    figure_format(path)  # before drawing
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.32 * len(rows)))
    base = next((r.score for r in rows if r.run == baseline), None)
    for y, row in enumerate(reversed(rows)):
        if row.run == baseline:
            color, face = "black", "black"
        elif row.significant:
            color = "tab:green" if (row.delta or 0) > 0 else "tab:red"
            face = color
        else:
            color, face = "grey", "white"
        ax.errorbar(
            row.score,
            y,
            xerr=[[row.score - row.ci[0]], [row.ci[1] - row.score]],
            fmt="o",
            color=color,
            markerfacecolor=face,
            capsize=3,
        )
    if base is not None:
        ax.axvline(base, linestyle="--", color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [r.run for r in reversed(rows)])
    ax.set_xlabel(f"{metric} (95% CI)")
    ax.set_title(title or f"against {baseline}: green/red significantly better/worse, grey n.s.", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
