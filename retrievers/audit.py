"""False-negative audit: which mined negatives are judged relevant in fuller judgments.

Mining treats every unjudged document as non-relevant; with shallow (pooled) judgments
some mined "negatives" are in fact relevant (Qu et al., 2021, RocketQA; Zhou et al., 2022,
"Simans: Simple ambiguous negatives sampling for dense text retrieval"). Given the negatives
mined from pooled labels and the full qrels, this counts them by rank bucket and retriever.

Given the judging pool too (the ``pool.<split>.tsv`` ``ranker pool`` writes),
:func:`pool_coverage` measures what a CET selection model can learn there: f, the share of the
mined *true* negatives that were judged (inside the pool). Hidden positives are outside the
pool by construction, so even a selection model that knows the pool exactly ranks a hidden
positive below a true negative only when that negative was judged: its weight AUC (hidden
positives vs true negatives) is at most ``0.5 + f / 2``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from retrievers.errors import InputError
from retrievers.io.adhoc import read_qrels_file
from retrievers.io.trec import QrelsDict
from retrievers.mining.negatives import MinedQuery

__all__ = [
    "AuditRow",
    "PromotedRow",
    "audit",
    "audit_promoted",
    "bucket_labels",
    "format_table",
    "plot_audit",
    "pool_coverage",
    "read_qrels_file",
]

DEFAULT_EDGES = (1, 11, 31, 101, 1001)


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """Labels of the rank buckets ``[edges[i], edges[i+1])``, plus one past the last edge."""
    labels = [f"{lo}-{hi - 1}" if hi - 1 > lo else str(lo) for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">={edges[-1]}"]


@dataclass(frozen=True)
class AuditRow:
    """False negatives among one retriever's negatives in one rank bucket."""

    retriever: str
    bucket: str
    negatives: int
    false_negatives: int

    @property
    def rate(self) -> float:
        """Fraction of these negatives judged relevant (0 when there are none)."""
        return self.false_negatives / self.negatives if self.negatives else 0.0


def audit(
    records: Iterable[MinedQuery],
    qrels: QrelsDict,
    edges: Sequence[int] = DEFAULT_EDGES,
    min_relevance: int = 1,
) -> tuple[list[AuditRow], dict[str, int]]:
    """Count negatives judged relevant (grade >= ``min_relevance``) in ``qrels``.

    Negatives of queries absent from ``qrels`` cannot be judged and are left out (counted).

    Returns:
        Rows per (retriever, bucket) and per retriever over all ranks (bucket ``all``), and
        counts of queries audited and left out.

    Raises:
        InputError: no query of the negatives file is in ``qrels`` (wrong file?).
    """
    if list(edges) != sorted(set(edges)) or edges[0] != 1:
        raise InputError(f"rank bucket edges must increase from 1, got {list(edges)}")
    labels = bucket_labels(edges)
    counts: dict[tuple[str, str], list[int]] = {}
    audited = unjudged = 0
    for rec in records:
        if rec.qid not in qrels:
            unjudged += 1
            continue
        audited += 1
        judged = qrels[rec.qid]
        for neg in rec.negatives:
            label = labels[bisect.bisect_right(edges, neg.rank) - 1]
            relevant = int(judged.get(neg.docid, 0) >= min_relevance)
            for key in ((neg.retriever, label), (neg.retriever, "all")):
                cell = counts.setdefault(key, [0, 0])
                cell[0] += 1
                cell[1] += relevant
    if not audited:
        raise InputError("no query of the negatives file is in the qrels; is it the right file?")
    order = {label: i for i, label in enumerate([*labels, "all"])}
    rows = [
        AuditRow(r, b, n, fn)
        for (r, b), (n, fn) in sorted(counts.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))
    ]
    return rows, {"queries_audited": audited, "queries_not_in_qrels": unjudged}


@dataclass(frozen=True)
class PromotedRow:
    """What full judgments say of the documents one judge promoted to positives.

    Attributes:
        judge: The judge's name, as recorded in the negatives file.
        promoted: Promoted documents of queries in the qrels.
        relevant: Of those, judged relevant (true positives: the promotion was right).
        non_relevant: Judged, below ``min_relevance``.
        unjudged: Absent from the query's qrels.
    """

    judge: str
    promoted: int
    relevant: int
    non_relevant: int
    unjudged: int

    @property
    def precision(self) -> float:
        """Fraction of the promoted documents judged relevant (0 when none)."""
        return self.relevant / self.promoted if self.promoted else 0.0


def audit_promoted(
    records: Iterable[MinedQuery], qrels: QrelsDict, min_relevance: int = 1
) -> list[PromotedRow]:
    """Per judge, how many of its promoted documents the qrels judge relevant (queries absent
    from ``qrels`` are left out); empty when the file has no promoted document."""
    counts: dict[str, list[int]] = {}
    for rec in records:
        if rec.qid not in qrels:
            continue
        judged = qrels[rec.qid]
        for docid, info in rec.promoted.items():
            cell = counts.setdefault(str(info["judge"]), [0, 0, 0, 0])
            cell[0] += 1
            if docid not in judged:
                cell[3] += 1
            elif judged[docid] >= min_relevance:
                cell[1] += 1
            else:
                cell[2] += 1
    return [PromotedRow(judge, *cell) for judge, cell in sorted(counts.items())]


def pool_coverage(
    records: Iterable[MinedQuery],
    qrels: QrelsDict,
    pool: Mapping[str, Set[str]],
    min_relevance: int = 1,
) -> dict[str, float | int]:
    """f and the selection-AUC ceiling of one negatives file under a judging pool.

    Only queries in both ``qrels`` (the full judgments) and ``pool`` count. A negative is a
    hidden positive if ``qrels`` judge it relevant, else a true negative, which was judged if
    it is in the query's pool.

    Returns:
        ``queries``, ``negatives``, ``hidden_positives``, ``true_negatives``,
        ``judged_true_negatives``, ``f`` (judged / true negatives; NaN without true negatives)
        and ``auc_ceiling`` (``0.5 + f / 2``).

    Raises:
        InputError: no query of the negatives file is in both the qrels and the pool.
    """
    queries = negatives = hidden = true_negatives = judged = 0
    for rec in records:
        if rec.qid not in qrels or rec.qid not in pool:
            continue
        queries += 1
        for neg in rec.negatives:
            negatives += 1
            if qrels[rec.qid].get(neg.docid, 0) >= min_relevance:
                hidden += 1
                continue
            true_negatives += 1
            judged += neg.docid in pool[rec.qid]
    if not queries:
        raise InputError("no query of the negatives file is in both the qrels and the pool")
    f = judged / true_negatives if true_negatives else math.nan
    return {
        "queries": queries,
        "negatives": negatives,
        "hidden_positives": hidden,
        "true_negatives": true_negatives,
        "judged_true_negatives": judged,
        "f": f,
        "auc_ceiling": 0.5 + f / 2,
    }


def format_table(rows: Sequence[AuditRow]) -> str:
    """A plain-text table: retriever, rank bucket, negatives, false negatives, rate."""
    header = f"{'retriever':<16} {'ranks':>10} {'negatives':>10} {'false neg.':>10} {'rate':>7}"
    lines = [header, "-" * len(header)]
    lines += [
        f"{r.retriever:<16} {r.bucket:>10} {r.negatives:>10} {r.false_negatives:>10} {r.rate:>7.2%}"
        for r in rows
    ]
    return "\n".join(lines)


def plot_audit(rows: Sequence[AuditRow], path: str | Path, title: str = "") -> None:
    """Bar chart of the false-negative rate per rank bucket, one bar group per retriever."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retrievers.io.atomic import atomic_write

    retrievers = sorted({r.retriever for r in rows})
    buckets = list(dict.fromkeys(r.bucket for r in rows if r.bucket != "all"))
    buckets.sort(key=lambda b: int(b.lstrip(">=").split("-")[0]))
    cell = {(r.retriever, r.bucket): r for r in rows}
    width = 0.8 / max(1, len(retrievers))
    fig, ax = plt.subplots(figsize=(1.6 * len(buckets) + 2, 3.6))
    for i, name in enumerate(retrievers):
        xs = [j + i * width for j in range(len(buckets))]
        ys = [100 * cell[(name, b)].rate if (name, b) in cell else 0.0 for b in buckets]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + width * (len(retrievers) - 1) / 2 for j in range(len(buckets))], buckets)
    ax.set_xlabel("rank of the mined negative")
    ax.set_ylabel("judged relevant (%)")
    ax.set_title(title or "False negatives among mined negatives")
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as out:
        fig.savefig(out, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
