"""Per-query effectiveness metrics, computed by ranx under trec_eval's conventions.

ranx computes the numbers; this module fixes what ranx leaves open so that results match
``trec_eval -c`` (checked against pytrec_eval in the tests):

* **Ties.** ranx sorts each query's documents by score with an unstable sort over hashed
  document ids, so equal scores land in an order that can change between processes. We rank
  documents as trec_eval does -- score descending, then document id descending (byte order)
  -- and hand ranx strictly decreasing scores that encode that order. The rank column of a
  run file is ignored, as trec_eval ignores it.
* **Query sets.** Queries in a run but not in the qrels are ignored; judged queries missing
  from a run score 0 on every metric (``trec_eval -c``). :class:`RunEvaluation` counts both.
* **Query order.** ranx pairs queries by position, so qrels and run are passed to it in one
  shared (sorted) order.

Metric names are ranx's (``ndcg@10``, ``recall@100``, ``mrr@10``, ``map``, ``map@100``,
``precision@10`` ...), with a few trec_eval spellings accepted as aliases (``P@10``,
``recip_rank@10``, ``R@100``). Reference: Järvelin & Kekäläinen, "Cumulated gain-based
evaluation of IR techniques", TOIS 2002 (nDCG with linear gain, as trec_eval's ``ndcg_cut``).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrievers.errors import InputError

logger = logging.getLogger(__name__)

# ranx metric names we expose (a ``@k`` cut-off is allowed on each).
RANX_METRICS = (
    "ndcg",
    "ndcg_burges",
    "map",
    "mrr",
    "recall",
    "precision",
    "r-precision",
    "hit_rate",
    "hits",
    "f1",
)
ALIASES = {
    "p": "precision",
    "r": "recall",
    "recip_rank": "mrr",
    "ap": "map",
    "rprec": "r-precision",
    "success": "hit_rate",
}
_METRIC = re.compile(r"^(?P<name>[a-z_\-]+?)(?:@(?P<k>\d+))?$")


def canonical_metric(name: str) -> str:
    """The ranx spelling of a metric name (``P@10`` -> ``precision@10``).

    Raises:
        InputError: the name is not a supported metric or has a bad cut-off.
    """
    match = _METRIC.match(name.strip().lower())
    if match is None:
        raise InputError(
            f"metric {name!r} is malformed; expected NAME or NAME@K, e.g. ndcg@10, recall@100, map"
        )
    base = ALIASES.get(match["name"], match["name"])
    if base not in RANX_METRICS:
        raise InputError(
            f"unknown metric {name!r}; expected one of {', '.join(RANX_METRICS)} (optionally @K)"
        )
    k = match["k"]
    if k is not None and int(k) < 1:
        raise InputError(f"metric {name!r}: the cut-off must be a positive integer")
    return base if k is None else f"{base}@{int(k)}"


def trec_eval_order(docs: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval's ranking order: score descending, ties by id descending."""
    # Two stable sorts: by id descending, then by score descending.
    ids = sorted(docs, reverse=True)
    return sorted(ids, key=lambda docid: -docs[docid])


def rank_scores(docs: Mapping[str, float]) -> dict[str, float]:
    """Strictly decreasing scores that encode :func:`trec_eval_order` (no ties left for ranx)."""
    order = trec_eval_order(docs)
    n = len(order)
    return {docid: float(n - rank) for rank, docid in enumerate(order)}


@dataclass(frozen=True)
class RunEvaluation:
    """Per-query scores of one run.

    Attributes:
        name: What identifies the run (its path on the command line).
        queries: Judged query ids, sorted; the rows of :attr:`scores`.
        scores: Metric name (as requested) -> per-query scores aligned with :attr:`queries`.
        missing: Judged queries absent from the run (scored 0).
        unjudged: Queries in the run that have no judgments (ignored).
    """

    name: str
    queries: tuple[str, ...]
    scores: dict[str, np.ndarray]
    missing: tuple[str, ...] = ()
    unjudged: tuple[str, ...] = ()
    members: tuple[str, ...] = ()  # the runs averaged into this one (e.g. seeds); () for one run
    means: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        means = {m: float(v.mean()) if len(v) else 0.0 for m, v in self.scores.items()}
        object.__setattr__(self, "means", means)

    def describe_queries(self) -> str:
        """One line stating how many queries were evaluated, missing and ignored."""
        averaged = f" (mean of {len(self.members)} runs)" if self.members else ""
        return (
            f"{self.name}{averaged}: {len(self.queries)} judged queries evaluated; "
            f"{len(self.missing)} judged queries missing from the run (scored 0); "
            f"{len(self.unjudged)} run queries without judgments (ignored)"
        )


def judged_queries(qrels: Mapping[str, Mapping[str, int]]) -> tuple[str, ...]:
    """The query ids that are evaluated: every query in the qrels, sorted.

    As trec_eval, a query whose judgments are all non-relevant still counts (it scores 0).
    """
    return tuple(sorted(qrels))


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str],
    name: str = "run",
) -> RunEvaluation:
    """Score one run on each metric, per judged query, with ranx.

    Args:
        run: Query id -> document id -> retrieval score.
        qrels: Query id -> document id -> relevance grade (>= 1 is relevant).
        metrics: Metric names, e.g. ``["ndcg@10", "recall@100"]`` (see :func:`canonical_metric`).
        name: A label for the run, kept in the result.

    Returns:
        The per-query scores; judged queries missing from the run score 0.
    """
    from ranker.evaluation.measures import score_query, supported

    canonical = {m: canonical_metric(m) for m in metrics}
    queries = judged_queries(qrels)
    if not queries:
        raise InputError("the qrels judge no query; nothing to evaluate")
    present = [q for q in queries if q in run and len(run[q]) > 0]
    missing = tuple(q for q in queries if q not in run or len(run[q]) == 0)
    unjudged = tuple(sorted(q for q in run if q not in qrels))
    if missing:
        logger.info("%s: %d judged queries are missing from the run; they score 0", name, len(missing))
    if unjudged:
        logger.info("%s: ignoring %d run queries without judgments", name, len(unjudged))
    scores = {m: np.zeros(len(queries), dtype=np.float64) for m in metrics}
    position = {q: i for i, q in enumerate(queries)}
    local = sorted({c for c in canonical.values() if supported(c)})
    if present and local:  # plain numpy: no ranx import, no numba compilation
        for q in present:
            values = score_query(trec_eval_order(run[q]), qrels[q], local)
            for metric, spelled in canonical.items():
                if spelled in values:
                    scores[metric][position[q]] = values[spelled]
    rest = sorted({c for c in canonical.values() if not supported(c)})
    if present and rest:
        _ranx_scores(run, qrels, present, rest, canonical, position, scores)
    return RunEvaluation(name=name, queries=queries, scores=scores, missing=missing, unjudged=unjudged)


def _ranx_scores(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    present: Sequence[str],
    wanted: list[str],
    canonical: Mapping[str, str],
    position: Mapping[str, int],
    scores: dict[str, np.ndarray],
) -> None:
    """Fill ``scores`` for the metrics only ranx computes (in place)."""
    from ranx import evaluate

    if present:
        sub_qrels = {q: {d: int(r) for d, r in qrels[q].items()} for q in present}
        sub_run = {q: rank_scores(run[q]) for q in present}
        # ranx 0.3.21 raises KeyError for a single metric with return_mean=False: ask twice.
        with warnings.catch_warnings():  # numba's uint64 -> int64 cast notice on hashed ids
            warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
            result = evaluate(
                sub_qrels,
                sub_run,
                wanted * 2 if len(wanted) == 1 else wanted,
                return_mean=False,
                save_results_in_run=False,
            )
        index = np.array([position[q] for q in present], dtype=np.int64)
        for metric, ranx_name in canonical.items():
            if ranx_name in wanted:
                scores[metric][index] = np.asarray(result[ranx_name], dtype=np.float64)


def average_evaluations(evaluations: Sequence[RunEvaluation], name: str) -> RunEvaluation:
    """One system from several runs of it (e.g. seeds): per query, the mean of their scores.

    Paired tests over the result treat the seed-averaged per-query score as the system's, so
    seed noise is averaged out before queries are compared, and the test's unit stays the
    query; the member runs' names are kept in ``members``.

    Raises:
        InputError: the runs were scored on different query sets or metrics.
    """
    if not evaluations:
        raise InputError(f"run group {name!r} has no runs")
    first = evaluations[0]
    for other in evaluations[1:]:
        if other.queries != first.queries or other.scores.keys() != first.scores.keys():
            raise InputError(
                f"run group {name!r}: {other.name} and {first.name} differ in queries or metrics"
            )
    scores = {m: np.mean([e.scores[m] for e in evaluations], axis=0) for m in first.scores}
    missing = tuple(sorted({q for e in evaluations for q in e.missing}))
    unjudged = tuple(sorted({q for e in evaluations for q in e.unjudged}))
    return RunEvaluation(
        name=name,
        queries=first.queries,
        scores=scores,
        missing=missing,
        unjudged=unjudged,
        members=tuple(e.name for e in evaluations),
    )
