"""The numpy metrics give ranx's numbers (random runs with ties, graded and negative labels)."""

from __future__ import annotations

import numpy as np
import pytest

from ranker.evaluation.measures import score_query, supported
from ranker.evaluation.metrics import rank_scores, trec_eval_order

METRICS = [
    "ndcg", "ndcg@3", "ndcg@50", "ndcg_burges@5", "ndcg_burges", "map", "map@4", "mrr", "mrr@2",
    "recall@5", "recall", "precision@3", "precision@40", "precision", "hit_rate@2", "hits@5",
    "hits", "f1@3", "f1", "r-precision",
]  # fmt: skip


def test_numpy_metrics_equal_ranx():
    from ranx import evaluate

    rng = np.random.default_rng(0)
    docs = [f"d{j}" for j in range(30)]
    qrels, run = {}, {}
    for i in range(150):
        judged = rng.choice(docs, size=int(rng.integers(1, 12)), replace=False)
        qrels[f"q{i}"] = {d: int(rng.integers(-1, 4)) for d in judged}  # -1 and 0: not relevant
        retrieved = rng.choice(docs, size=int(rng.integers(1, 25)), replace=False)
        run[f"q{i}"] = {d: float(rng.integers(0, 5)) for d in retrieved}  # many ties
    expected = evaluate(
        qrels,
        {q: rank_scores(r) for q, r in run.items()},
        METRICS,
        return_mean=False,
        save_results_in_run=False,
    )
    assert all(supported(m) for m in METRICS)
    for metric in METRICS:
        mine = [score_query(trec_eval_order(run[q]), qrels[q], [metric])[metric] for q in qrels]
        np.testing.assert_allclose(mine, expected[metric], rtol=0, atol=1e-12, err_msg=metric)


def test_only_nonrelevant_judgments_score_zero_and_unsupported_names():
    assert score_query(["a"], {"a": 0}, ["ndcg@10", "map"]) == {"ndcg@10": 0.0, "map": 0.0}
    assert not supported("r-precision@5")
    with pytest.raises(ValueError):
        score_query(["a"], {"a": 1}, ["bpref"])
