"""Headless plots of a comparison: per-metric bars with 95% CIs and p-value matrices.

One figure, two rows: the top row has one bar chart per metric (mean score of each run with
its paired-bootstrap 95% confidence interval as error bars); the bottom row has one
run x run matrix of corrected p-values per metric (cells not tested are blank; significant
cells in bold). Rendered with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ranker.evaluation.compare import Comparison
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
