"""Relabelling (``--promote-above``, RLHN): the promotion rule, the negatives file's
``promoted`` object (old files still load), the trainer's use of promoted positives, and
the audit of promoted documents against full judgments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_mining import DOCS, POSITIVES, QUERIES, FakeSearcher

from ranker.training.data import BatchMaker, load_training_examples
from retrievers.audit import audit_promoted
from retrievers.errors import InputError
from retrievers.mining import MiningConfig, mine, read_negatives
from retrievers.mining.candidates import Candidate
from retrievers.mining.filters import QueryContext
from retrievers.mining.promote import Judge, Promote


def ranked(qid: str) -> list[str]:
    """The FakeSearcher's ranking for ``qid`` (the positive is second)."""
    start = int(qid[1:]) * 3 % 30
    return DOCS[start:] + DOCS[:start]


def table_judge(table: dict[tuple[str, str], float], calls: list | None = None) -> Judge:
    """A judge reading scores from ``{(query, doc text): score}`` (0 when absent)."""

    def score(queries, docs):
        if calls is not None:
            calls.append(len(docs))
        return np.array([table.get((q, d), 0.0) for q, d in zip(queries, docs, strict=True)])

    return Judge("table-judge", score)


def test_promotion_rule_hand_computed():
    """Positives judged 1.0 and 0.2 (the best, 1.0, is the reference); margin 0.5: a
    candidate needs a judge score above 1.5."""
    table = {("q", "p1"): 1.0, ("q", "p2"): 0.2, ("q", "a"): 2.0, ("q", "b"): 1.5, ("q", "c"): 1.6}
    cands = [Candidate(d, r, 10.0 - r, "bm25") for r, d in enumerate(["a", "b", "c", "d"], start=1)]
    promote = Promote(table_judge(table), lambda d: d, margin=0.5)
    kept, promoted = promote(QueryContext("q1", "q", frozenset({"p1", "p2"}), {}), cands)
    assert [c.docid for c in kept] == ["b", "d"]  # 1.5 is not above 1.5
    assert list(promoted) == ["a", "c"]
    assert promoted["a"] == {
        "judge": "table-judge",
        "judge_score": 2.0,
        "positive_judge_score": 1.0,
        "margin": 0.5,
        "rank": 1,
        "score": 9.0,
        "retriever": "bm25",
    }
    # a negative margin promotes candidates just below the best positive
    _, loose = Promote(table_judge(table), lambda d: d, margin=-0.9)(
        QueryContext("q1", "q", frozenset({"p1", "p2"}), {}), cands
    )
    assert list(loose) == ["a", "b", "c"]


def mined_with_promotion(tmp_path, name="neg.jsonl", margin=0.5, **config):
    """Per query: the positive (rank 2) judged 1.0, rank 1 judged 2.0, rank 3 judged 1.4."""
    table = {}
    for qid, text in QUERIES.items():
        order = ranked(qid)
        table.update({(text, order[1]): 1.0, (text, order[0]): 2.0, (text, order[2]): 1.4})
    calls: list[int] = []
    out = tmp_path / name
    stats = mine(
        QUERIES,
        POSITIVES,
        {"bm25": FakeSearcher()},
        out,
        MiningConfig(depth=20, max_rank=10, num_negatives=4, promote_margin=margin, **config),
        doc_text=lambda d: d,
        progress=False,
        judge=table_judge(table, calls),
    )
    return out, stats, calls


def test_mined_file_marks_promoted_positives(tmp_path):
    out, stats, calls = mined_with_promotion(tmp_path)
    assert calls == [10] * len(QUERIES)  # one call a query: its positive and 9 window candidates
    records = read_negatives(out)
    for rec in records:
        order = ranked(rec.qid)
        assert rec.positives == [order[1], order[0]]  # the known positive, then the promoted one
        assert rec.promoted == {
            order[0]: {
                "judge": "table-judge",
                "judge_score": 2.0,
                "positive_judge_score": 1.0,
                "margin": 0.5,
                "rank": 1,
                "score": 100.0,
                "retriever": "bm25",
            }
        }
        assert order[0] not in rec.negative_ids() and order[2] in rec.negative_ids()
        assert rec.negatives[0].rank == 3
        assert set(rec.extra["positive_evidence"]) == {order[0], order[1]}
        assert rec.extra["filter_counts"]["promoted"] == 1
    assert stats["promoted"] == len(QUERIES) and stats["judge"] == "table-judge"
    assert stats["dropped"]["promoted"] == len(QUERIES)


def test_promotion_is_deterministic_and_resumable_state_names_the_judge(tmp_path):
    one, _, _ = mined_with_promotion(tmp_path, "a.jsonl", sampling="random", seed=3)
    two, _, _ = mined_with_promotion(tmp_path, "b.jsonl", sampling="random", seed=3)
    assert one.read_bytes() == two.read_bytes()


def test_promotion_needs_judge_margin_and_texts(tmp_path):
    judge = table_judge({})
    with pytest.raises(InputError, match="judge and promote_margin"):
        mine(QUERIES, POSITIVES, {"bm25": FakeSearcher()}, tmp_path / "a", MiningConfig(), judge=judge)
    with pytest.raises(InputError, match="doc_text"):
        mine(
            QUERIES,
            POSITIVES,
            {"bm25": FakeSearcher()},
            tmp_path / "b",
            MiningConfig(promote_margin=0.0),
            judge=judge,
        )


def _line(**extra) -> str:
    base = {
        "qid": "q1",
        "query": "cats",
        "positives": ["d1", "d2"],
        "negatives": [{"docid": "d3", "rank": 2, "score": 1.0, "retriever": "bm25"}],
    }
    return json.dumps({**base, **extra})


@pytest.mark.parametrize(
    "promoted, message",
    [
        ([], "promoted must be an object"),
        ({"d9": {"judge": "j", "judge_score": 1.0}}, "'d9' is not listed in positives"),
        ({"d2": {"judge_score": 1.0}}, "needs a judge name"),
        ({"d2": {"judge": "j", "judge_score": "high"}}, "finite judge_score"),
    ],
)
def test_bad_promoted_object_names_file_and_line(tmp_path, promoted, message):
    path = tmp_path / "neg.jsonl"
    path.write_text(_line().replace('"q1"', '"q0"') + "\n" + _line(promoted=promoted) + "\n")
    with pytest.raises(InputError, match=message) as err:
        read_negatives(path)
    assert f"{path}:2" in str(err.value)


def test_old_files_without_promoted_still_load(tmp_path):
    path = tmp_path / "neg.jsonl"
    path.write_text(_line() + "\n")
    (rec,) = read_negatives(path)
    assert rec.promoted == {} and rec.positives == ["d1", "d2"]


def test_trainer_samples_promoted_documents_as_positives_never_as_negatives(tmp_path):
    out, _, _ = mined_with_promotion(tmp_path)
    examples, _ = load_training_examples(out)
    texts = {d: d for d in DOCS}
    maker = BatchMaker(examples, texts, n_negatives=2, batch_size=5, seed=0, missing_features=[0.0])
    promoted = {ranked(q)[0] for q in QUERIES}
    seen_pos: set[str] = set()
    for index in range(40):
        batch = maker.batch(index)
        seen_pos.update(batch.pos_ids)
        for qid, negs in zip(batch.qids, batch.neg_ids, strict=True):
            assert ranked(qid)[0] not in negs  # never its own query's negative
    assert promoted <= seen_pos  # every promoted document serves as a positive
    assert {POSITIVES[q][0] for q in QUERIES} <= seen_pos
    assert all(len(e.positive_features) == 2 for e in examples)  # evidence for both positives


def test_audit_counts_promoted_true_positives(tmp_path):
    out, _, _ = mined_with_promotion(tmp_path)
    records = read_negatives(out)
    # full qrels: q0..q4's promoted documents are relevant, q5's is judged non-relevant,
    # q6..q8's are unjudged, q9 is not in the qrels at all
    qrels: dict[str, dict[str, int]] = {}
    for i in range(9):
        qid = f"q{i}"
        qrels[qid] = {POSITIVES[qid][0]: 1}
        if i < 5:
            qrels[qid][ranked(qid)[0]] = 2
        elif i == 5:
            qrels[qid][ranked(qid)[0]] = 0
    (row,) = audit_promoted(records, qrels)
    assert (row.judge, row.promoted, row.relevant, row.non_relevant, row.unjudged) == (
        "table-judge",
        9,
        5,
        1,
        3,
    )
    assert row.precision == pytest.approx(5 / 9)
    (strict,) = audit_promoted(records, qrels, min_relevance=2)
    assert strict.relevant == 5
    assert audit_promoted(records[:0], qrels) == []
