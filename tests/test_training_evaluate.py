"""Training's evaluation: the same scoring path as ``ranker evaluate``, exact search through
``retrievers``, and a cross-encoder without ``eval_run`` refused before training."""

from __future__ import annotations

import numpy as np
import pytest

from ranker.evaluation.metrics import evaluate_run
from ranker.training.config import TrainConfig
from ranker.training.evaluate import dense_search, evaluate_model, mean_scores
from ranker.training.pipeline import make_evaluator
from retrievers.dense import exact_search
from retrievers.errors import InputError


def test_mean_scores_breaks_ties_as_trec_eval():
    # d1 and d2 tie; trec_eval ranks ties by document id descending: d2 first, d1 second
    qrels = {"q1": {"d1": 1}, "q2": {"x": 1}}
    run = {"q1": {"d1": 1.0, "d2": 1.0, "d0": 0.5}}  # q2 missing: scores 0
    scores = mean_scores(qrels, run, ["mrr", "P@1"])
    assert scores == {"mrr": pytest.approx(0.25), "P@1": 0.0}
    assert scores == evaluate_run(run, qrels, ["mrr", "P@1"]).means


class _Vectors:
    """Fixed vectors per text; records the batch sizes it was asked for."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table, self.batch_sizes = table, []
        self.training = False

    def _enc(self, texts, batch_size):
        self.batch_sizes.append(batch_size)
        return np.stack([self.table[t] for t in texts]).astype(np.float32)

    def encode_queries(self, texts, batch_size=64, show_progress=False):
        return self._enc(texts, batch_size)

    def encode_corpus(self, texts, batch_size=64, show_progress=False):
        return self._enc(texts, batch_size)

    def eval(self):
        return self

    def train(self, mode=True):
        return self


def _random_table(n_docs=40, n_queries=6, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    docs = {f"d{i:02d}": f"doc {i}" for i in range(n_docs)}
    queries = {f"q{i}": f"query {i}" for i in range(n_queries)}
    table = {t: rng.standard_normal(dim) for t in [*docs.values(), *queries.values()]}
    return docs, queries, table


def test_dense_search_is_exact_top_k():
    docs, queries, table = _random_table()
    model = _Vectors(table)
    run = dense_search(model, queries, docs, k=5, batch_size=7)
    assert set(model.batch_sizes) == {7}
    d = np.stack([table[t] for t in docs.values()])
    for qid, text in queries.items():
        scores = d @ table[text]
        top = [list(docs)[i] for i in np.argsort(-scores)[:5]]
        assert list(run[qid]) == top
        assert [run[qid][x] for x in top] == pytest.approx(np.sort(scores)[::-1][:5], rel=1e-5)


def test_exact_search_ties_by_docid_and_small_corpus():
    class Same:
        def encode(self, texts):
            return np.ones((len(texts), 3), dtype=np.float32)

    hits = exact_search(Same(), {"q": "a"}, {"b": "x", "a": "y", "c": "z"}, k=10)
    assert hits == {"q": [("a", 3.0), ("b", 3.0), ("c", 3.0)]}
    assert exact_search(Same(), {"q": "a"}, {}, k=3) == {"q": []}
    with pytest.raises(InputError, match="k must be at least 1"):
        exact_search(Same(), {"q": "a"}, {"a": "y"}, k=0)


def test_evaluate_model_bi_scores_judged_queries_only():
    docs, queries, table = _random_table()
    model = _Vectors(table)
    qrels = {"q0": {"d03": 1}, "q1": {"d07": 2}}
    scores, run = evaluate_model(model, "bi", queries, qrels, docs, ["ndcg@10", "recall@100"])
    assert set(run) == {"q0", "q1"}
    assert scores == evaluate_run(run, qrels, ["ndcg@10", "recall@100"]).means
    assert scores["recall@100"] == 1.0  # 40 documents, k = 100: everything is retrieved


def test_cross_encoder_without_eval_run_is_refused_up_front():
    config = TrainConfig(model_type="cross", loss="listwise", eval_split="dev", eval_run="")
    with pytest.raises(InputError, match="eval_run is empty"):
        make_evaluator(config, dataset=None)


def test_unknown_eval_metric_is_refused_up_front():
    config = TrainConfig(model_type="bi", eval_split="dev", eval_metric="ndgc@10")
    with pytest.raises(InputError, match="unknown metric 'ndgc@10'"):
        make_evaluator(config, dataset=None)
