"""Hidden-positive rate per rank bucket, estimated from a judge's scores on a seeded sample.

The question users ask about mining is "which rank window avoids false negatives?", usually
without deep judgments. This samples up to ``per_bucket`` mined negatives from each
(retriever, rank bucket) cell (seeded), has a judge score each against the query's positives,
and counts a negative as a hidden positive when the judge scores it above the best positive
by more than ``margin`` (the rule ``ranker mine --promote-above`` applies; see
:mod:`retrievers.mining.promote`). Each cell's rate comes with a Wilson score interval
(Wilson, 1927; statsmodels ``proportion_confint(method="wilson")``). With full qrels, each
row also carries the real rate (over the whole cell and over the sample), so the judge's
estimate can be checked where deep judgments exist.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.proportion import proportion_confint
from tqdm.auto import tqdm

from retrievers.audit import DEFAULT_EDGES, bucket_labels
from retrievers.errors import InputError
from retrievers.io.trec import QrelsDict
from retrievers.mining.negatives import MinedQuery, Negative
from retrievers.mining.promote import Judge, judge_scores, positive_reference
from retrievers.mining.sampler import query_rng


@dataclass(frozen=True)
class EstimateRow:
    """The judge's estimate for one (retriever, rank bucket) cell.

    Attributes:
        negatives: Mined negatives in the cell.
        sampled: How many of them the judge scored.
        flagged: Sampled negatives the judge scores above the best positive (+ margin).
        low, high: Wilson interval of ``flagged / sampled`` at the chosen confidence.
        true_relevant: With qrels, negatives of the whole cell judged relevant.
        sample_relevant: With qrels, sampled negatives judged relevant.
        flagged_relevant: With qrels, flagged negatives judged relevant (the judge's hits).
    """

    retriever: str
    bucket: str
    negatives: int
    sampled: int
    flagged: int
    low: float
    high: float
    true_relevant: int | None = None
    sample_relevant: int | None = None
    flagged_relevant: int | None = None

    @property
    def estimate(self) -> float:
        """The judge's hidden-positive rate on the sample (0 when nothing was sampled)."""
        return self.flagged / self.sampled if self.sampled else 0.0

    @property
    def true_rate(self) -> float | None:
        """The real rate over the whole cell, when qrels were given."""
        if self.true_relevant is None:
            return None
        return self.true_relevant / self.negatives if self.negatives else 0.0

    @property
    def covered(self) -> bool | None:
        """Whether the interval holds the real rate (``None`` without qrels)."""
        rate = self.true_rate
        return None if rate is None else self.low <= rate <= self.high


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (``(0, 1)`` for no trials)."""
    if trials == 0:
        return 0.0, 1.0
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    rate = successes / trials  # rounding can put an end a hair past the rate at 0 or 1
    return min(float(low), rate), max(float(high), rate)


def estimate_hidden_positives(
    records: Iterable[MinedQuery],
    judge: Judge,
    doc_text: Callable[[str], str],
    per_bucket: int = 100,
    seed: int = 42,
    margin: float = 0.0,
    edges: Sequence[int] = DEFAULT_EDGES,
    qrels: QrelsDict | None = None,
    min_relevance: int = 1,
    confidence: float = 0.95,
    progress: bool = True,
) -> list[EstimateRow]:
    """Estimate the hidden-positive rate of each (retriever, rank bucket) cell.

    The sample of a cell depends only on ``seed`` and the cell (retriever and bucket), so it
    is the same whichever other files or buckets are audited. With ``qrels``, queries absent
    from them are left out (their real rate is unknown).

    Raises:
        InputError: bad bucket edges or sample size; no negative to sample.
    """
    if list(edges) != sorted(set(edges)) or edges[0] != 1:
        raise InputError(f"rank bucket edges must increase from 1, got {list(edges)}")
    if per_bucket < 1:
        raise InputError(f"the sample per bucket must be at least 1, got {per_bucket}")
    labels = bucket_labels(edges)
    cells: dict[tuple[str, str], list[tuple[MinedQuery, Negative]]] = {}
    for rec in records:
        if qrels is not None and rec.qid not in qrels:
            continue
        for neg in rec.negatives:
            label = labels[bisect.bisect_right(edges, neg.rank) - 1]
            cells.setdefault((neg.retriever, label), []).append((rec, neg))
    if not cells:
        raise InputError("no mined negative to sample (or no query of the file is in the qrels)")
    order = {label: i for i, label in enumerate(labels)}
    keys = sorted(cells, key=lambda k: (k[0], order[k[1]]))
    samples: dict[tuple[str, str], list[tuple[MinedQuery, Negative]]] = {}
    for key in keys:
        items = cells[key]
        rng = query_rng(seed, f"{key[0]}\t{key[1]}")
        picks = np.sort(rng.choice(len(items), size=min(per_bucket, len(items)), replace=False))
        samples[key] = [items[i] for i in picks]
    flagged = _judge_samples(samples, judge, doc_text, margin, progress)

    def relevant(pairs: Iterable[tuple[MinedQuery, Negative]]) -> int | None:
        if qrels is None:
            return None
        return sum(qrels[rec.qid].get(neg.docid, 0) >= min_relevance for rec, neg in pairs)

    rows = []
    for key in keys:
        hits = sum(flagged[(key, i)] for i in range(len(samples[key])))
        low, high = wilson_interval(hits, len(samples[key]), confidence)
        rows.append(
            EstimateRow(
                key[0],
                key[1],
                len(cells[key]),
                len(samples[key]),
                hits,
                low,
                high,
                relevant(cells[key]),
                relevant(samples[key]),
                relevant(p for i, p in enumerate(samples[key]) if flagged[(key, i)]),
            )
        )
    return rows


def _judge_samples(
    samples: dict[tuple[str, str], list[tuple[MinedQuery, Negative]]],
    judge: Judge,
    doc_text: Callable[[str], str],
    margin: float,
    progress: bool,
) -> dict[tuple[tuple[str, str], int], bool]:
    """Judge every sampled negative, one call per query (its positives and its sampled
    negatives together); ``{(cell, index in the cell's sample): hidden positive?}``."""
    by_query: dict[str, list[tuple[tuple[str, str], int, Negative]]] = {}
    recs: dict[str, MinedQuery] = {}
    for key, pairs in samples.items():
        for i, (rec, neg) in enumerate(pairs):
            by_query.setdefault(rec.qid, []).append((key, i, neg))
            recs[rec.qid] = rec
    out: dict[tuple[tuple[str, str], int], bool] = {}
    for qid, items in tqdm(by_query.items(), desc="judging", unit="q", disable=not progress):
        rec = recs[qid]
        texts = [doc_text(p) for p in rec.positives] + [doc_text(neg.docid) for _, _, neg in items]
        scores = judge_scores(judge, rec.query, texts)
        reference = positive_reference(scores[: len(rec.positives)])
        for (key, i, _), score in zip(items, scores[len(rec.positives) :], strict=True):
            out[(key, i)] = bool(score > reference + margin)
    return out


def format_estimates(rows: Sequence[EstimateRow], confidence: float = 0.95) -> str:
    """A plain-text table of the estimates (and the real rates, when known)."""
    with_truth = any(r.true_relevant is not None for r in rows)
    ci = f"{confidence:.0%} CI"
    header = (
        f"{'retriever':<16} {'ranks':>10} {'negatives':>9} {'sampled':>7} {'flagged':>7} "
        f"{'estimate':>8} {ci:>17}"
    )
    if with_truth:
        header += f" {'true rate':>9} {'in CI':>5} {'flagged & relevant':>18}"
    lines = [header, "-" * len(header)]
    for r in rows:
        line = (
            f"{r.retriever:<16} {r.bucket:>10} {r.negatives:>9} {r.sampled:>7} {r.flagged:>7} "
            f"{r.estimate:>8.2%} {f'{r.low:.2%}-{r.high:.2%}':>17}"
        )
        if with_truth and r.true_rate is not None:
            line += f" {r.true_rate:>9.2%} {'yes' if r.covered else 'no':>5} {r.flagged_relevant:>18}"
        lines.append(line)
    return "\n".join(lines)
