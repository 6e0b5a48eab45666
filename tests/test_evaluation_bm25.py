"""Integration: a real Lucene BM25 run on SciFact test, scored by us and by trec_eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ranker.cli
from ranker.evaluation.metrics import evaluate_run, trec_eval_order
from retrievers.io.trec import write_run

pytrec_eval = pytest.importorskip("pytrec_eval")
try:
    from retrievers import bm25
except ImportError as err:  # retrievers/bm25.py not on this branch yet
    pytest.skip(f"retrievers.bm25 unavailable: {err}", allow_module_level=True)

pytestmark = pytest.mark.integration
MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map": "map"}


@pytest.fixture(scope="module")
def bm25_run(scifact_dir, tmp_path_factory):
    """SciFact test queries searched with Lucene BM25 (k1=0.9, b=0.4), k=1000."""
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(scifact_dir)
    index = tmp_path_factory.mktemp("bm25") / "index"
    bm25.build_bm25_index(dataset, index)
    queries = dataset.queries("test")
    with bm25.BM25Searcher(index) as searcher:
        hits = dict(searcher.search_batch(queries, k=1000, progress=False))
    return {qid: dict(docs) for qid, docs in hits.items()}, dataset.qrels("test")


def test_bm25_scores_agree_with_trec_eval(bm25_run):
    run, qrels = bm25_run
    ev = evaluate_run(run, qrels, [*MEASURES, "mrr@10"], name="bm25")
    reference = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES.values())).evaluate(run)
    top10 = {q: {d: docs[d] for d in trec_eval_order(docs)[:10]} for q, docs in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    for metric, measure in MEASURES.items():
        expected = np.array([reference.get(q, {}).get(measure, 0.0) for q in ev.queries])
        np.testing.assert_allclose(ev.scores[metric], expected, atol=1e-6, err_msg=metric)
    expected = np.array([rr.get(q, {}).get("recip_rank", 0.0) for q in ev.queries])
    np.testing.assert_allclose(ev.scores["mrr@10"], expected, atol=1e-6)
    # Pyserini's published BEIR "flat" numbers for SciFact.
    assert ev.means["ndcg@10"] == pytest.approx(0.6789, abs=5e-4)
    assert ev.means["recall@100"] == pytest.approx(0.9253, abs=1e-3)


def test_cli_evaluate_bm25_run_file(bm25_run, scifact_dir, tmp_path, capsys):
    run, _ = bm25_run
    path = tmp_path / "bm25.trec"
    write_run(path, run, tag="bm25")
    rc = ranker.cli.main(
        [
            "evaluate",
            str(scifact_dir),
            "--split",
            "test",
            str(path),
            "--metrics",
            "ndcg@10",
            "recall@100",
            "--format",
            "json",
        ]
    )
    assert rc == 0
    scores = json.loads(capsys.readouterr().out)[str(path)]
    assert scores["ndcg@10"] == pytest.approx(0.6789, abs=5e-4)
    assert scores["recall@100"] == pytest.approx(0.9253, abs=1e-3)
