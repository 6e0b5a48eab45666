"""``ranker train-summary``: how long each training run trained, what a step cost, and its
best dev score."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-summary",
        help="table of training runs: steps trained, early stop, ms/step, best dev step and score",
        description="Read summary.json of each training output folder and write a Markdown "
        "table with one row per LABEL: the runs (seeds) it groups, the steps each trained "
        "(early stopped or not), the mean wall-clock milliseconds per optimizer step, the step "
        "of its best dev evaluation and the mean best score. "
        "Example: ranker train-summary 'b-dense=runs/b-dense/s*' 'f-clean=runs/f-clean/s*' "
        "--out train.md (a LABEL given twice is one row: 'mltp=runs/mltp' 'mltp=runs/mltp-s*')",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="[LABEL=]DIR",
        help="a training output folder, or LABEL=GLOB grouping several (e.g. seeds); "
        "matches without summary.json are skipped",
    )
    parser.add_argument("--out", required=True, help="Markdown file to write")
    parser.set_defaults(func=run)


def read_group(label: str, pattern: str) -> dict:
    """The summaries of the folders ``pattern`` names (a glob or one folder)."""
    import glob
    import json
    from pathlib import Path

    from retrievers.errors import InputError

    folders = (
        sorted(Path(p) for p in glob.glob(pattern)) if any(c in pattern for c in "*?[") else [Path(pattern)]
    )
    summaries = []
    for folder in folders:
        path = folder / "summary.json"
        if not path.is_file():
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise InputError(f"not valid JSON: {err}", path) from None
        summaries.append((folder.resolve(), summary))
    return {"label": label, "runs": summaries, "pattern": pattern}


COST_NOTE = (
    "ms/step: wall-clock time of the training loop up to its last logged step "
    "(summary.json's last.elapsed_s) over that step, mean over the runs with a timing (blank: "
    "none). It includes the dev evaluations and checkpoints made before that step (not the final "
    "ones), not model loading; a resumed run is timed from its resume only (so it reads low)."
)


def ms_per_step(summary: dict) -> float | None:
    """Milliseconds per optimizer step of one run's ``summary.json`` (None without a timing)."""
    last = summary.get("last") or {}
    elapsed, steps = last.get("elapsed_s"), last.get("step", summary.get("steps"))
    if not isinstance(elapsed, int | float) or not isinstance(steps, int | float) or steps <= 0:
        return None
    return 1000.0 * elapsed / steps


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from retrievers.errors import InputError
    from retrievers.io.atomic import atomic_write

    by_label: dict[str, dict] = {}  # a label given again adds its runs to the same row
    for item in args.runs:
        label, sep, pattern = item.partition("=")
        if not sep:
            label, pattern = Path(item).name, item
        group = read_group(label.rstrip("*"), pattern)
        if group["label"] in by_label:
            known = {folder for folder, _ in by_label[group["label"]]["runs"]}
            by_label[group["label"]]["runs"] += [r for r in group["runs"] if r[0] not in known]
        else:
            by_label[group["label"]] = group
    groups = list(by_label.values())
    for group in groups:
        if not group["runs"]:
            raise InputError(f"{group['label']}: no training run (summary.json) matches {group['pattern']!r}")
    lines = [
        "| run | seeds | steps trained | early stop | ms/step | best dev step | best dev score (mean) |",
        "|---|---:|---|---|---:|---|---:|",
    ]
    for group in groups:
        runs = [s for _, s in group["runs"]]
        best = [s.get("best") or {} for s in runs]
        values = [b["value"] for b in best if "value" in b]
        costs = [c for s in runs if (c := ms_per_step(s)) is not None]
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} |".format(
                group["label"],
                len(runs),
                " / ".join(str(s.get("steps", "?")) for s in runs),
                " / ".join("yes" if s.get("stopped_early") else "no" for s in runs),
                f"{sum(costs) / len(costs):.1f}" if costs else "",
                " / ".join(str(b.get("step", "-")) for b in best),
                f"{sum(values) / len(values):.4f}" if values else "-",
            )
        )
    metric = next((b.get("metric") for g in groups for _, s in g["runs"] if (b := s.get("best"))), None)
    note = "\n" + COST_NOTE + "\n"
    if metric:
        note += f"Best dev score: {metric} on the dev split, evaluated during training.\n"
    with atomic_write(args.out) as out:
        out.write("\n".join(lines) + "\n" + note)
    logger.info("wrote %s (%d groups)", args.out, len(groups))
    return 0
