"""Metrics: ranx under trec_eval conventions, checked against trec_eval (pytrec_eval)."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_runs import pseudo_run

from ranker.evaluation.metrics import canonical_metric, evaluate_run, trec_eval_order
from retrievers.errors import InputError

pytrec_eval = pytest.importorskip("pytrec_eval")

# Our metric -> (trec_eval measure, whether the run is cut to the top 10 first).
TREC_EVAL = {
    "ndcg@10": ("ndcg_cut_10", False),
    "mrr@10": ("recip_rank", True),
    "recall@100": ("recall_100", False),
    "map": ("map", False),
    "map@100": ("map_cut_100", False),
    "precision@10": ("P_10", False),
}


def trec_eval_scores(run, qrels, queries):
    """Per-query trec_eval scores (0 for judged queries missing from the run, as ``-c``)."""
    measures = {name for name, _ in TREC_EVAL.values()}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: {d: docs[d] for d in trec_eval_order(docs)[:10]} for q, docs in run.items()}
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out = {}
    for metric, (measure, cut10) in TREC_EVAL.items():
        source = cut if cut10 else full
        out[metric] = np.array([source.get(q, {}).get(measure, 0.0) for q in queries])
    return out


def test_metric_names_and_aliases():
    assert canonical_metric("nDCG@10") == "ndcg@10"
    assert canonical_metric("P@10") == "precision@10"
    assert canonical_metric("recip_rank@10") == "mrr@10"
    assert canonical_metric("map") == "map"
    for bad in ("ndcg@0", "ndcg@x", "bleu@10", "@10", ""):
        with pytest.raises(InputError):
            canonical_metric(bad)


def test_ties_follow_trec_eval_docid_descending():
    docs = {"d1": 1.0, "d3": 2.0, "d2": 1.0, "d10": 1.0}
    assert trec_eval_order(docs) == ["d3", "d2", "d10", "d1"]


def test_conventions_missing_and_unjudged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"d": 1}}
    run = {"q1": {"a": 3.0, "x": 2.0}, "q2": {"c": 1.0, "b": 0.5}, "q9": {"a": 1.0}}
    ev = evaluate_run(run, qrels, ["ndcg@10", "recall@100"], name="r")
    assert ev.queries == ("q1", "q2", "q3")
    assert ev.missing == ("q3",) and ev.unjudged == ("q9",)
    assert ev.scores["recall@100"].tolist() == [1.0, 1.0, 0.0]
    assert ev.means["recall@100"] == pytest.approx(2 / 3)
    reference = trec_eval_scores(run, qrels, ev.queries)
    np.testing.assert_allclose(ev.scores["ndcg@10"], reference["ndcg@10"], atol=1e-12)
    assert "1 judged queries missing" in ev.describe_queries()
    assert "1 run queries without judgments" in ev.describe_queries()


def test_query_with_only_nonrelevant_judgments_scores_zero_like_trec_eval():
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    run = {"q1": {"a": 1.0}, "q2": {"b": 1.0}}
    ev = evaluate_run(run, qrels, list(TREC_EVAL), name="r")
    reference = trec_eval_scores(run, qrels, ev.queries)
    for metric in TREC_EVAL:
        np.testing.assert_allclose(ev.scores[metric], reference[metric], atol=1e-12)


def test_result_does_not_depend_on_dict_order():
    qrels = {"q2": {"b": 1}, "q1": {"a": 1}}
    run = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"a": 2.0, "b": 1.0}}
    ev = evaluate_run(run, qrels, ["mrr@10"])
    assert dict(zip(ev.queries, ev.scores["mrr@10"], strict=True)) == {"q1": 1.0, "q2": 0.5}


@pytest.mark.integration
def test_agrees_with_trec_eval_on_scifact(scifact_dir):
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(scifact_dir)
    qrels = dataset.qrels("test")
    docids = [doc.id for doc in dataset.docs()]
    for seed in (0, 1):
        run = pseudo_run(qrels, docids, seed=seed, depth=150)
        del run[sorted(run)[seed]]  # one judged query missing from the run
        ev = evaluate_run(run, qrels, list(TREC_EVAL), name=f"pseudo{seed}")
        assert len(ev.queries) == 300 and len(ev.missing) == 1
        reference = trec_eval_scores(run, qrels, ev.queries)
        for metric in TREC_EVAL:
            np.testing.assert_allclose(ev.scores[metric], reference[metric], atol=1e-6, err_msg=metric)
            assert ev.means[metric] == pytest.approx(reference[metric].mean(), abs=1e-6)
        # Ties are common enough that breaking them by id ascending would disagree.
        flipped = {
            q: {d: s - 1e-9 * (sorted(docs).index(d) / len(docs)) for d, s in docs.items()}
            for q, docs in run.items()
        }
        other = evaluate_run(flipped, qrels, ["ndcg@10"])
        assert np.abs(other.scores["ndcg@10"] - reference["ndcg@10"]).max() > 1e-3


def test_tied_scores_do_not_depend_on_input_order():
    import random

    qrels = {"q1": {"d050": 1}}
    for seed in range(4):
        ids = [f"d{i:03d}" for i in range(200)]
        random.Random(seed).shuffle(ids)
        run = {"q1": dict.fromkeys(ids, 1.0)}  # ranx alone gives 0.005..0.06 here
        ev = evaluate_run(run, qrels, ["mrr", "ndcg@200"])
        assert ev.scores["mrr"][0] == pytest.approx(1 / 150)  # d199 .. d050: rank 150
    assert pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q1"][
        "recip_rank"
    ] == pytest.approx(1 / 150)
