"""Fuse ranked lists from several retrievers: RRF in plain Python, other methods with ranx.

Reciprocal rank fusion (Cormack et al., 2009, "Reciprocal rank fusion outperforms Condorcet
and individual rank learning methods") and ranx's other unsupervised methods (Bassani &
Romelli, 2022, "ranx.fuse: A Python Library for Metasearch").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrievers.errors import InputError
from retrievers.io.trec import RunDict, ranked, read_run, write_run

logger = logging.getLogger(__name__)

# Methods that need no training data, and the parameters ranx accepts for each.
METHODS: dict[str, tuple[str, ...]] = {
    "rrf": ("k",),
    "isr": (),
    "log_isr": (),
    "logn_isr": ("sigma",),
    "rbc": ("phi",),
    "sum": (),
    "max": (),
    "min": (),
    "med": (),
    "anz": (),
    "mnz": (),
    "gmnz": ("gamma",),
    "bordafuse": (),
    "condorcet": (),
    "wsum": ("weights",),
    "wmnz": ("weights",),
    "w_bordafuse": ("weights",),
    "w_condorcet": ("weights",),
    "mixed": ("weights",),
}
RANK_BASED = {
    "rrf",
    "isr",
    "log_isr",
    "logn_isr",
    "rbc",
    "bordafuse",
    "condorcet",
    "w_bordafuse",
    "w_condorcet",
}
NORMS = ("min-max", "max", "sum", "zmuv", "rank", "borda")


def fuse_runs(
    runs: Sequence[RunDict],
    method: str = "rrf",
    norm: str | None = None,
    params: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
) -> RunDict:
    """Fuse runs (query -> document -> score) into one.

    Args:
        runs: Two or more runs over the same queries.
        method: A ranx fusion method (see :data:`METHODS`).
        norm: Score normalization before fusing (``None``: none for rank-based methods,
            ``min-max`` otherwise).
        params: Method parameters, e.g. ``{"k": 60}`` for RRF or ``{"weights": [0.3, 0.7]}``.
        names: What to call each run in error messages (file names).

    Raises:
        InputError: unknown method or parameter, fewer than two runs, or runs over
            different queries.
    """
    names = list(names or [f"run {i + 1}" for i in range(len(runs))])
    params = dict(params or {})
    if method not in METHODS:
        raise InputError(f"unknown fusion method {method!r}; expected one of {', '.join(METHODS)}")
    unknown = set(params) - set(METHODS[method])
    if unknown:
        raise InputError(
            f"fusion method {method!r} takes no parameter {sorted(unknown)[0]!r} "
            f"(it takes: {', '.join(METHODS[method]) or 'none'})"
        )
    if "weights" in METHODS[method] and len(params.get("weights", [])) != len(runs):
        raise InputError(f"fusion method {method!r} needs one weight per run ({len(runs)})")
    if len(runs) < 2:
        raise InputError("fusion needs at least two runs")
    if norm is not None and norm not in NORMS:
        raise InputError(f"unknown normalization {norm!r}; expected one of {', '.join(NORMS)}")
    first = set(runs[0])
    for name, run in zip(names[1:], runs[1:], strict=True):
        if set(run) != first:
            missing = sorted(first ^ set(run))[0]
            raise InputError(
                f"runs cover different queries (e.g. {missing!r}); fuse runs over the same queries", name
            )
    if method == "rrf" and norm is None:
        return reciprocal_rank_fusion(runs, int(params.get("k", 60)))
    if norm is None and method not in RANK_BASED:
        norm = "min-max"
    return _ranx_fuse(runs, names, method, norm, params)


def reciprocal_rank_fusion(runs: Sequence[RunDict], k: int = 60) -> RunDict:
    """RRF without ranx (no numba start-up): each document scores ``sum 1 / (k + rank)``
    over the runs that retrieved it, ranks counted from 1 in each run's order (score
    descending, ties by document id, as :func:`~retrievers.io.trec.ranked`)."""
    if k < 0:
        raise InputError(f"rrf needs k >= 0, got {k}")
    fused: RunDict = {}
    for run in runs:
        for qid, docs in run.items():
            scores = fused.setdefault(qid, {})
            for rank, (docid, _) in enumerate(ranked(docs), start=1):
                scores[docid] = scores.get(docid, 0.0) + 1.0 / (k + rank)
    return fused


def _ranx_fuse(
    runs: Sequence[RunDict], names: Sequence[str], method: str, norm: str | None, params: dict[str, Any]
) -> RunDict:
    """Every other method and normalization, through ranx (numba warnings kept quiet)."""
    import warnings

    from ranx import Run, fuse

    with warnings.catch_warnings():
        from numba.core.errors import NumbaWarning

        warnings.simplefilter("ignore", NumbaWarning)
        fused = fuse(
            [
                Run({q: dict(d) for q, d in run.items()}, name=name)
                for name, run in zip(names, runs, strict=True)
            ],
            norm=norm,
            method=method,
            params=params,
        )
    return {
        qid: {docid: float(score) for docid, score in docs.items()} for qid, docs in fused.to_dict().items()
    }


def fuse_files(
    paths: Sequence[str | Path],
    out: str | Path,
    method: str = "rrf",
    norm: str | None = None,
    params: Mapping[str, Any] | None = None,
    depth: int | None = None,
) -> RunDict:
    """Read TREC runs, fuse them, and write the fused run atomically (top ``depth`` kept)."""
    runs = [read_run(path) for path in paths]
    fused = fuse_runs(runs, method, norm, params, [str(p) for p in paths])
    if depth is not None:
        fused = {q: dict(ranked(d)[:depth]) for q, d in fused.items()}
    order = list(runs[0])
    write_run(out, ((qid, fused.get(qid, {})) for qid in order), tag=method)
    logger.info("fused %d runs with %s -> %s", len(runs), method, out)
    return fused
