"""Headless plots of a comparison: per-metric bars with 95% CIs and p-value matrices, and
the shares of a gap each run recovers.

:func:`plot_comparison` draws one figure, two rows: the top row has one bar chart per metric
(mean score of each run with its paired-bootstrap 95% confidence interval as error bars); the
bottom row has one run x run matrix of corrected p-values per metric (cells not tested are
blank; significant cells in bold). :func:`plot_gap_shares` draws one panel per gap and
metric. Rendered with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ranker.evaluation.compare import Comparison
from ranker.evaluation.gap import Gap
from ranker.evaluation.report import letter
from retrievers.io.atomic import atomic_write

logger = logging.getLogger(__name__)

FORMATS = ("png", "pdf", "svg")


def figure_format(path: str | Path) -> str:
    """The file format a plot path asks for (its suffix); a clear error if it is not one."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        from retrievers.errors import InputError

        raise InputError(f"plot file must end in .{', .'.join(FORMATS)}", path)
    return fmt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = figure_format(path)
    with atomic_write(path, "wb") as out:
        fig.savefig(out, format=fmt, dpi=dpi)
    plt.close(fig)
    return path


def plot_comparison(comparison: Comparison, path: str | Path, dpi: int = 150) -> Path:
    """Draw the comparison and write it atomically to ``path`` (png, pdf or svg by suffix).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure_format(path)  # before drawing: a bad suffix fails fast
    metrics, runs = comparison.metrics, comparison.runs
    labels = [letter(r) for r in range(len(runs))]
    width = max(4.0, 0.5 * len(runs) + 2.5)
    fig, axes = plt.subplots(2, len(metrics), figsize=(width * len(metrics), 2 * width - 1), squeeze=False)
    for k, metric in enumerate(metrics):
        _bars(axes[0, k], comparison, metric, labels)
        _matrix(fig, axes[1, k], comparison, metric, labels)
    legend = "  ".join(f"{label}: {Path(name).name}" for label, name in zip(labels, runs, strict=True))
    fig.suptitle(
        f"{comparison.test} test, {comparison.correction} correction, "
        f"alpha={comparison.alpha}, {comparison.n_queries} queries\n{legend}",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi)
    logger.info("wrote %s", path)
    return path


def _bars(ax, comparison: Comparison, metric: str, labels: list[str]) -> None:
    means = comparison.means[metric]
    ci = comparison.ci[metric]
    errors = np.stack([means - ci[:, 0], ci[:, 1] - means]).clip(min=0)
    positions = np.arange(len(labels))
    colours = ["tab:grey" if r == comparison.baseline else "tab:blue" for r in positions]
    ax.bar(positions, means, yerr=errors, capsize=4, color=colours)
    ax.set_xticks(positions, labels)
    ax.set_title(f"{metric} (95% CI)")
    ax.set_ylabel(metric)


def _matrix(fig, ax, comparison: Comparison, metric: str, labels: list[str]) -> None:
    matrix = comparison.pvalue_matrix(metric)
    shown = np.ma.masked_invalid(matrix)
    image = ax.imshow(shown, vmin=0.0, vmax=1.0, cmap="viridis_r")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(f"{metric}: corrected p-values")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if np.isnan(matrix[i, j]):
                continue
            significant = matrix[i, j] <= comparison.alpha
            value = matrix[i, j]
            ax.text(
                j,
                i,
                "<.001" if value < 1e-3 else f"{value:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value < 0.5 else "white",
                fontweight="bold" if significant else "normal",
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def plot_gap_shares(gaps: Sequence[Gap], metrics: Sequence[str], path: str | Path, dpi: int = 150) -> Path:
    """Draw each run's share of every gap, one panel per gap (rows) and metric (columns), and
    write it atomically to ``path`` (png, pdf or svg by suffix).

    A share is a point with its bootstrap 95% CI as a horizontal bar, between vertical lines
    at 0 (no better than the low run) and 1 (as good as the high run). Runs whose share is
    undefined (the gap is not positive) are left out and named in the panel's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure_format(path)
    runs = max((len({s.run for s in gap.shares}) for gap in gaps), default=1)
    fig, axes = plt.subplots(
        len(gaps), len(metrics), figsize=(5.5 * len(metrics), (0.4 * runs + 1.6) * len(gaps)), squeeze=False
    )
    for row, gap in enumerate(gaps):
        for col, metric in enumerate(metrics):
            _shares(axes[row, col], gap, metric)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    logger.info("wrote %s", path)
    return path


def _shares(ax, gap: Gap, metric: str) -> None:
    shares = [s for s in gap.shares if s.metric == metric]
    drawn = [s for s in shares if not math.isnan(s.share)]
    skipped = [s.run for s in shares if math.isnan(s.share)]
    positions = np.arange(len(drawn))
    for y, s in zip(positions, drawn, strict=True):
        has_ci = not math.isnan(s.ci_low)
        errors = [[max(s.share - s.ci_low, 0.0)], [max(s.ci_high - s.share, 0.0)]] if has_ci else None
        ax.errorbar([s.share], [y], xerr=errors, fmt="o", color="tab:blue", capsize=4)
    ax.axvline(0.0, color="tab:grey", linestyle="--", linewidth=1)
    ax.axvline(1.0, color="tab:green", linestyle="--", linewidth=1)
    left, right = ax.get_xlim()
    ax.set_xlim(min(left, -0.1), max(right, 1.1))  # 0 and 1 always in view
    ax.set_yticks(positions, [s.run for s in drawn])
    ax.set_ylim(max(len(drawn), 1) - 0.5, -0.5)  # the first run on top
    ax.set_xlabel(f"share of the {gap.low} -> {gap.high} gap recovered (95% CI)")
    title = f"{metric}: {gap.low} (0) -> {gap.high} (1)"
    if shares and not drawn:
        title += f"\nno gap ({gap.high} - {gap.low} = {shares[0].gap:+.4f}): nothing to draw"
    elif skipped:
        title += f"\nskipped, no gap: {', '.join(skipped)}"
    ax.set_title(title, fontsize=9)
