"""The pooling-bias study's pieces end to end through the CLI (issue 26): a pool of two
systems, the clean-negatives oracle (``ranker mine --exclude-relevant``) and f per negatives
file (``ranker audit --pool``)."""

from __future__ import annotations

import json

import pytest
from dense_helpers import HashEncoder, write_beir

from ranker.cli import main
from retrievers.audit import pool_coverage
from retrievers.io.adhoc import read_qrels_file
from retrievers.io.trec import write_run
from retrievers.judging_pool import read_pool
from retrievers.mining import read_negatives

WORDS = ["cats", "dogs", "fish", "birds", "trees", "rivers", "stars", "rocks", "clouds", "roads"]


@pytest.fixture()
def hash_encoder(monkeypatch):
    import ranker.cli.retrieval as retrieval

    monkeypatch.setattr(retrieval, "load_encoder", lambda *a, **k: HashEncoder())


@pytest.fixture()
def deep(tmp_path):
    """12 documents, 4 queries with 3 relevant documents each (deep judgments)."""
    docs = {f"d{i:02d}": f"{WORDS[i % 10]} {WORDS[(i * 3) % 10]} {WORDS[(i * 7) % 10]}" for i in range(12)}
    queries = {f"q{i}": f"{WORDS[i]} {WORDS[i + 4]}" for i in range(4)}
    qrels = {q: {f"d{(3 * i + j) % 12:02d}": 1 for j in range(3)} for i, q in enumerate(queries)}
    return write_beir(tmp_path / "deep", docs, queries, {"test": qrels})


def test_two_system_pool_oracle_negatives_and_f(deep, tmp_path, hash_encoder, capsys):
    full = read_qrels_file(deep / "qrels" / "test.tsv")
    # two systems: "bm25" ranks each query's first relevant document on top, "dense" its second
    for name, pick in (("bm25", 0), ("dense", 1)):
        run = {}
        for q, docs in full.items():
            top = sorted(docs)[pick]
            order = [top] + [f"d{k:02d}" for k in range(12) if f"d{k:02d}" != top]
            run[q] = {d: 12.0 - r for r, d in enumerate(order)}
        write_run(tmp_path / f"{name}.trec", run)
    pooled = tmp_path / "pooled"
    args = ["pool", str(deep), "--pool-run", str(tmp_path / "bm25.trec"), "--pool-run"]
    assert main([*args, str(tmp_path / "dense.trec"), "--depth", "1", "--out", str(pooled)]) == 0
    pool = read_pool(pooled / "pool.test.tsv")
    kept = read_qrels_file(pooled / "qrels" / "test.tsv")
    assert all(len(docs) == 2 for docs in pool.values())  # the union of the two top-1s
    assert all(len(docs) == 2 for docs in kept.values())  # both judged relevant; one hidden each
    index = tmp_path / "dense-index"
    assert main(["index", str(pooled), "--retriever", "dense", "--model", "h", "--index", str(index)]) == 0

    def mine(out, *extra):
        cmd = ["mine", str(pooled), "--split", "test", "--index", str(index), "--depth", "12"]
        assert main([*cmd, "--num-negatives", "20", *extra, "--out", str(tmp_path / out)]) == 0
        return {r.qid: r for r in read_negatives(tmp_path / out)}

    plain = mine("plain.jsonl")
    hidden = tmp_path / "pooled" / "qrels" / "test-hidden.tsv"
    oracle = mine("oracle.jsonl", "--exclude-relevant", str(hidden))
    hidden_docs = read_qrels_file(hidden)
    for qid, rec in plain.items():
        negatives = [n.docid for n in rec.negatives]
        assert set(hidden_docs[qid]) <= set(negatives)  # every hidden positive was mined
        assert oracle[qid].positives == rec.positives  # the same pooled positives
        assert [n.docid for n in oracle[qid].negatives] == [d for d in negatives if d not in hidden_docs[qid]]
    stats = json.loads((tmp_path / "oracle.stats.json").read_text())
    assert stats["dropped"]["hidden_positive"] == sum(map(len, hidden_docs.values())) == 4
    assert stats["source"]["exclude_relevant"] == str(hidden.resolve())

    capsys.readouterr()
    out, pool_path = tmp_path / "audit.json", pooled / "pool.test.tsv"
    cmd = ["audit", str(tmp_path / "plain.jsonl"), str(tmp_path / "oracle.jsonl"), "--qrels"]
    assert (
        main(
            [
                *cmd,
                str(deep / "qrels" / "test.tsv"),
                "--pool",
                str(pool_path),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "selection-AUC ceiling" in capsys.readouterr().out
    coverage = json.loads(out.read_text())["pool_coverage"]
    expected = pool_coverage(read_negatives(tmp_path / "plain.jsonl"), full, read_pool(pool_path))
    assert coverage[0] == {"negatives_file": str(tmp_path / "plain.jsonl"), **expected}
    # a pool holds only judged documents; here none of them is a negative (both were relevant)
    assert expected["judged_true_negatives"] == 0 and expected["f"] == 0.0
    assert coverage[1]["hidden_positives"] == 0 and coverage[0]["hidden_positives"] == 4


def test_the_audit_table_of_the_report_shows_pool_coverage():
    from ranker.experiments.report import json_table

    table = json_table(
        {"rows": [{"retriever": "dense", "rate": 0.1}], "pool_coverage": [{"negatives_file": "x", "f": 0.25}]}
    )
    assert "| negatives_file | f |" in table and "| x | 0.2500 |" in table
