"""The trainer's own output files: metrics CSV and JSON-lines logs, truncated on resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from retrievers.io.atomic import atomic_write

COLUMNS = [
    "step",
    "lr",
    "loss",
    "loss_unweighted",
    "selection_loss",
    "w_mean",
    "w_std",
    "w_min",
    "w_max",
    "w_clipped",
    "samples_per_s",
    "elapsed_s",
]


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
