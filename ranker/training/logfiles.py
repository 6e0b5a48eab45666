"""The trainer's own output files: metrics CSV and JSON-lines logs, truncated on resume, and
the TensorBoard mirror of the metrics."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from retrievers.io.atomic import atomic_write

logger = logging.getLogger(__name__)

# What one optimizer step reports: means over its micro-batches (and ranks), summed into a
# logging window. ``w_*`` summarize the CET weights of R's loss (:class:`WeightStats`);
# ``distill_loss`` is the distillation term (before its weight), ``guide_masked`` the share of
# negatives a guide masked out of the softmax.
STEP_STATS = (
    "loss",
    "loss_unweighted",
    "selection_loss",
    "w_mean",
    "w_std",
    "w_min",
    "w_max",
    "w_clipped",
    "distill_loss",
    "guide_masked",
)
# metrics.csv columns, in order
COLUMNS = ["step", "lr", *STEP_STATS, "samples_per_s", "elapsed_s"]


def zero_stats() -> dict[str, float]:
    """Every step statistic at 0, ready to accumulate into."""
    return dict.fromkeys(STEP_STATS, 0.0)


def append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in COLUMNS})


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def truncate_csv(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (written by a run killed before its next checkpoint)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
    with atomic_write(path) as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in COLUMNS} for r in rows)


def truncate_jsonl(path: Path, step: int) -> None:
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and json.loads(line)["step"] <= step
    ]
    with atomic_write(path) as out:
        out.write("".join(line + "\n" for line in keep))


class TensorBoardLog:
    """Mirrors metrics rows to TensorBoard under ``folder`` when the package is installed
    (created on the main rank only; without tensorboard it does nothing)."""

    def __init__(self, folder: Path) -> None:
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.debug("tensorboard is not installed; metrics go to metrics.csv only")
            return
        self.writer = SummaryWriter(str(folder))

    def log(self, row: dict[str, Any]) -> None:
        """Add the row's float values as ``train/<key>`` scalars at ``row["step"]``."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "step" and isinstance(value, float):
                self.writer.add_scalar(f"train/{key}", value, row["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
