"""``ranker audit --judge``: the judge's hidden-positive estimate per rank bucket, its Wilson
interval, its seeded sample, and the comparison with the real rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrievers.errors import InputError
from retrievers.judge_audit import estimate_hidden_positives, format_estimates, wilson_interval
from retrievers.mining.negatives import MinedQuery, Negative
from retrievers.mining.promote import Judge


def test_wilson_interval_hand_computed():
    z = 1.959963984540054
    k, n = 2, 10
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert (low, high) == pytest.approx((0.0567, 0.5098), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 20)[0] == pytest.approx(0.0, abs=1e-12)


def records(n_queries: int = 6) -> list[MinedQuery]:
    """Each query: positives p{i}a, p{i}b; negatives at ranks 1..40 (doc n{i}_{rank})."""
    return [
        MinedQuery(
            f"q{i}",
            f"query {i}",
            [f"p{i}a", f"p{i}b"],
            [Negative(f"n{i}_{r}", r, 50.0 - r, "bm25") for r in range(1, 41)],
        )
        for i in range(n_queries)
    ]


def judge(calls: list | None = None) -> Judge:
    """Positive a scores 1.0, b 3.0 (the best); negatives at ranks 1-5 score 4.0, rank 12 scores
    3.2, every other negative 0.0."""

    def score(queries, docs):
        if calls is not None:
            calls.extend(docs)
        out = []
        for doc in docs:
            if doc.startswith("p"):
                out.append(3.0 if doc.endswith("b") else 1.0)
            else:
                rank = int(doc.split("_")[1])
                out.append(4.0 if rank <= 5 else 3.2 if rank == 12 else 0.0)
        return np.array(out)

    return Judge("fake", score)


def test_estimate_counts_negatives_the_judge_puts_above_the_best_positive():
    rows = estimate_hidden_positives(records(), judge(), lambda d: d, per_bucket=1000, edges=(1, 11, 31))
    by = {r.bucket: r for r in rows}
    assert list(by) == ["1-10", "11-30", ">=31"]
    assert (by["1-10"].negatives, by["1-10"].sampled, by["1-10"].flagged) == (60, 60, 30)  # ranks 1-5
    assert (by["11-30"].sampled, by["11-30"].flagged) == (120, 6)  # rank 12: 3.2 > 3.0
    assert by[">=31"].flagged == 0
    assert by["1-10"].estimate == 0.5
    assert (by["1-10"].low, by["1-10"].high) == pytest.approx(wilson_interval(30, 60))
    # with margin 0.5, rank 12 (3.2) is no longer above 3.0 + 0.5
    strict = estimate_hidden_positives(
        records(), judge(), lambda d: d, per_bucket=1000, edges=(1, 11, 31), margin=0.5
    )
    assert [r.flagged for r in strict] == [30, 0, 0]


def test_sample_is_seeded_sized_and_judged_once_per_query():
    calls: list[str] = []
    one = estimate_hidden_positives(records(), judge(calls), lambda d: d, per_bucket=7, seed=3, edges=(1, 11))
    assert [r.sampled for r in one] == [7, 7] and [r.negatives for r in one] == [60, 180]
    sampled = [d for d in calls if d.startswith("n")]
    assert len(sampled) == 14 == len(set(sampled))
    again: list[str] = []
    estimate_hidden_positives(records(), judge(again), lambda d: d, per_bucket=7, seed=3, edges=(1, 11))
    assert again == calls
    other: list[str] = []
    estimate_hidden_positives(records(), judge(other), lambda d: d, per_bucket=7, seed=4, edges=(1, 11))
    assert sorted(d for d in other if d.startswith("n")) != sorted(sampled)


def test_real_rate_from_qrels_and_coverage():
    # truth: ranks 1-3 of every query are relevant (the judge flags 1-5 and 12)
    recs = records()
    qrels = {rec.qid: {f"n{rec.qid[1:]}_{r}": 1 for r in (1, 2, 3)} for rec in recs[:5]}  # q5 unjudged
    rows = estimate_hidden_positives(recs, judge(), lambda d: d, per_bucket=1000, edges=(1, 11), qrels=qrels)
    top, rest = rows
    assert (top.negatives, top.true_relevant, top.sample_relevant) == (50, 15, 15)
    assert (top.flagged, top.flagged_relevant, rest.flagged, rest.flagged_relevant) == (25, 15, 5, 0)
    assert top.true_rate == pytest.approx(0.3) and top.estimate == pytest.approx(0.5)
    assert top.covered is False  # the judge over-flags: 25 of 50 against 15 true
    assert rest.true_rate == 0.0 and rest.covered is False  # flags rank 12: 5 of 150
    text = format_estimates(rows)
    assert "true rate" in text and "30.00%" in text and "50.00%" in text


def test_bad_arguments():
    with pytest.raises(InputError, match="at least 1"):
        estimate_hidden_positives(records(), judge(), lambda d: d, per_bucket=0)
    with pytest.raises(InputError, match="edges"):
        estimate_hidden_positives(records(), judge(), lambda d: d, edges=(2, 10))
    with pytest.raises(InputError, match="no mined negative"):
        estimate_hidden_positives(records(), judge(), lambda d: d, qrels={"other": {}})
