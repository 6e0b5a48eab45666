"""The false-negative audit."""

from __future__ import annotations

import pytest

from retrievers.audit import audit, bucket_labels, format_table, plot_audit, read_qrels_file
from retrievers.errors import InputError
from retrievers.mining.negatives import MinedQuery, Negative

RECORDS = [
    MinedQuery(
        "q1",
        "x",
        ["p"],
        [
            Negative("a", 1, 9.0, "bm25"),
            Negative("b", 5, 8.0, "bm25"),
            Negative("c", 20, 7.0, "dense"),
            Negative("d", 50, 6.0, "dense"),
        ],
    ),
    MinedQuery("q2", "y", ["p"], [Negative("e", 2, 1.0, "bm25")]),
    MinedQuery("q9", "z", ["p"], [Negative("a", 1, 1.0, "bm25")]),  # not in qrels
]
QRELS = {"q1": {"p": 1, "b": 2, "c": 1, "d": 0}, "q2": {"e": 1}}


def test_bucket_labels():
    assert bucket_labels([1, 11, 31]) == ["1-10", "11-30", ">=31"]
    assert bucket_labels([1, 2]) == ["1", ">=2"]


def test_audit_counts_by_bucket_and_retriever():
    rows, info = audit(RECORDS, QRELS, edges=[1, 11, 31])
    got = {(r.retriever, r.bucket): (r.negatives, r.false_negatives) for r in rows}
    assert got == {
        ("bm25", "1-10"): (3, 2),
        ("bm25", "all"): (3, 2),
        ("dense", "11-30"): (1, 1),
        ("dense", ">=31"): (1, 0),
        ("dense", "all"): (2, 1),
    }
    assert info == {"queries_audited": 2, "queries_not_in_qrels": 1}
    rows2, _ = audit(RECORDS, QRELS, edges=[1, 11, 31], min_relevance=2)
    assert {(r.retriever, r.bucket): r.false_negatives for r in rows2}[("bm25", "all")] == 1
    table = format_table(rows)
    assert "66.67%" in table and "dense" in table


def test_plot_and_qrels_formats(tmp_path):
    rows, _ = audit(RECORDS, QRELS)
    plot_audit(rows, tmp_path / "audit.png")
    assert (tmp_path / "audit.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "q.trec").write_text("q1 0 b 2\nq2 0 e 1\n")
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tb\t2\nq2\te\t1\n")
    assert read_qrels_file(tmp_path / "q.trec") == read_qrels_file(tmp_path / "q.tsv")


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="right file"):
        audit(RECORDS, {"zz": {"a": 1}})
    with pytest.raises(InputError, match="increase from 1"):
        audit(RECORDS, QRELS, edges=[5, 10])
    (tmp_path / "bad").write_text("q1 b\n")
    with pytest.raises(InputError, match=":1"):
        read_qrels_file(tmp_path / "bad")


def test_pool_coverage_on_a_hand_made_pool():
    """f = judged true negatives / true negatives, the ceiling 0.5 + f/2 (issue 26)."""
    from retrievers.audit import pool_coverage

    # q1: a and d are true negatives, a judged (in the pool); b, c hidden positives.
    # q2: e a hidden positive; q9 has no full judgments (left out)
    pool = {"q1": {"p", "a"}, "q2": {"p"}, "q9": {"a"}}
    got = pool_coverage(RECORDS, QRELS, pool)
    assert got == {
        "queries": 2,
        "negatives": 5,
        "hidden_positives": 3,
        "true_negatives": 2,
        "judged_true_negatives": 1,
        "f": 0.5,
        "auc_ceiling": 0.75,
    }
    assert pool_coverage(RECORDS, QRELS, {"q1": {"p", "a", "d"}})["f"] == 1.0
    assert pool_coverage(RECORDS, QRELS, pool, min_relevance=2)["true_negatives"] == 4  # c, e: grade 1
    with pytest.raises(InputError, match="both the qrels and the pool"):
        pool_coverage(RECORDS, QRELS, {"zz": {"a"}})
