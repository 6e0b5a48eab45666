"""How much of the gap between two runs a third one closes.

For a weak run ``low`` and a strong run ``high`` (e.g. training on a biased pool vs on the full
judgments), the share of the gap a run ``r`` recovers on a metric is
``(mean_r - mean_low) / (mean_high - mean_low)``: 0 is no better than ``low``, 1 is as good as
``high``. Its 95% interval is a paired percentile bootstrap over queries (the same resamples
for every run, seeded), taken over the resamples where the gap is positive; when the gap
itself is not positive the share is undefined (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ranker.evaluation.metrics import RunEvaluation
from ranker.evaluation.resampling import bootstrap_means, percentile_interval
from retrievers.errors import InputError


@dataclass(frozen=True)
class GapShare:
    """The share of the ``low`` -> ``high`` gap that one run recovers on one metric."""

    metric: str
    run: str
    share: float
    ci_low: float
    ci_high: float
    gap: float  # mean_high - mean_low


@dataclass(frozen=True)
class Gap:
    """The shares of one ``low`` -> ``high`` gap (run names), every run and metric."""

    low: str
    high: str
    shares: list[GapShare]


def gap_shares(
    evaluations: Sequence[RunEvaluation],
    low: int,
    high: int,
    metrics: Sequence[str],
    n_resamples: int = 10_000,
    seed: int = 42,
) -> list[GapShare]:
    """Every run's (except ``low`` and ``high``) share of the gap, per metric.

    Raises:
        InputError: ``low`` and ``high`` are the same run.
    """
    if low == high:
        raise InputError("the gap needs two different runs (low and high)")
    out = []
    for metric in metrics:
        scores = np.stack([ev.scores[metric] for ev in evaluations], axis=1)
        means = scores.mean(axis=0)
        boot = bootstrap_means(scores, n_resamples, seed)
        gap, boot_gap = means[high] - means[low], boot[:, high] - boot[:, low]
        for r, evaluation in enumerate(evaluations):
            if r in (low, high):
                continue
            if gap <= 0:
                out.append(GapShare(metric, evaluation.name, math.nan, math.nan, math.nan, float(gap)))
                continue
            keep = boot_gap > 0
            shares = (boot[keep, r] - boot[keep, low]) / boot_gap[keep]
            ci_low, ci_high = percentile_interval(shares) if len(shares) else (math.nan, math.nan)
            share = (means[r] - means[low]) / gap
            out.append(
                GapShare(metric, evaluation.name, float(share), float(ci_low), float(ci_high), float(gap))
            )
    return out


def format_gap(shares: Sequence[GapShare], low: str, high: str, fmt: str = "md") -> str:
    """A table of the shares (Markdown, plain text or LaTeX rows)."""
    header = ["metric", "run", f"gap ({high} - {low})", "share recovered", "95% CI"]
    rows = [
        [
            s.metric,
            s.run,
            f"{s.gap:+.4f}",
            "n/a (no gap)" if math.isnan(s.share) else f"{s.share:+.1%}",
            "" if math.isnan(s.ci_low) else f"[{s.ci_low:+.1%}, {s.ci_high:+.1%}]",
        ]
        for s in shares
    ]
    if fmt == "latex":
        return "\n".join(" & ".join(r).replace("%", r"\%") + r" \\" for r in [header, *rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    note = (
        f"Share of the {low} -> {high} gap each run recovers: (run - {low}) / ({high} - {low}); "
        "0 = no better than the low run, 1 = as good as the high run. CI: paired bootstrap over "
        "queries."
    )
    return "\n".join(lines) + "\n\n- " + note
