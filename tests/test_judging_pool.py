"""The pooling-bias simulator."""

from __future__ import annotations

import json

import pytest
from dense_helpers import write_beir

from retrievers.errors import InputError
from retrievers.io.dataset import load_dataset
from retrievers.io.trec import write_run
from retrievers.judging_pool import judging_pool, simulate_pool, split_qrels, split_queries

RUN_A = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 2.0, "y": 2.0, "z": 1.0}}
RUN_B = {"q1": {"d": 5.0, "a": 4.0}}


def test_pool_is_union_of_top_depth_with_ties_by_docid():
    assert judging_pool([RUN_A, RUN_B], 1) == {"q1": {"a", "d"}, "q2": {"x"}}
    assert judging_pool([RUN_A], 2) == {"q1": {"a", "b"}, "q2": {"x", "y"}}
    with pytest.raises(InputError):
        judging_pool([RUN_A], 0)


def test_split_qrels():
    qrels = {"q1": {"a": 1, "c": 2, "e": 0}, "q3": {"k": 1}}
    kept, hidden = split_qrels(qrels, {"q1": {"a", "b", "e"}})
    assert kept == {"q1": {"a": 1, "e": 0}}
    assert hidden == {"q1": {"c": 2}, "q3": {"k": 1}}


def test_split_queries_is_seeded_and_ordered():
    qids = [f"q{i}" for i in range(10)]
    train, test = split_queries(qids, 0.3, seed=1)
    assert len(train) == 3 and sorted(train + test) == sorted(qids)
    assert (train, test) == split_queries(qids, 0.3, seed=1)
    assert train != split_queries(qids, 0.3, seed=2)[0]
    assert train == [q for q in qids if q in train]


@pytest.fixture()
def deep(tmp_path):
    docs = {d: f"text {d}" for d in "abcdefgh"}
    queries = {"q1": "one", "q2": "two", "q3": "three", "q4": "four"}
    qrels = {"test": {"q1": {"a": 1, "c": 2}, "q2": {"h": 1, "g": 1}, "q3": {"b": 1}, "q4": {"e": 3}}}
    return write_beir(tmp_path / "deep", docs, queries, qrels)


def test_simulate_pool_writes_same_layout(deep, tmp_path):
    run = {
        "q1": {"a": 3.0, "b": 2.0, "c": 1.0},
        "q2": {"h": 1.0, "a": 0.5},
        "q3": {"c": 1.0},
        "q4": {"e": 1.0},
    }
    write_run(tmp_path / "bm25.trec", run)
    summary = simulate_pool(load_dataset(deep), "test", [tmp_path / "bm25.trec"], 2, tmp_path / "pooled")
    pooled = load_dataset(tmp_path / "pooled")
    assert pooled.qrels("test") == {"q1": {"a": 1}, "q2": {"h": 1}, "q4": {"e": 3}}
    assert pooled.qrels("test-hidden") == {"q1": {"c": 2}, "q2": {"g": 1}, "q3": {"b": 1}}
    assert [d.id for d in pooled.docs()] == list("abcdefgh")
    stats = summary["splits"]["test"]
    assert stats["relevant_kept"] == 3 and stats["relevant_hidden"] == 3
    assert stats["queries_without_pooled_relevant"] == 1
    assert json.loads((tmp_path / "pooled" / "pool.json").read_text())["depth"] == 2


def test_simulate_pool_train_fraction(deep, tmp_path):
    run = {q: {d: 1.0 for d in "abcdefgh"} for q in ["q1", "q2", "q3", "q4"]}
    write_run(tmp_path / "r.trec", run)
    simulate_pool(
        load_dataset(deep), "test", [tmp_path / "r.trec"], 1, tmp_path / "p", train_fraction=0.5, seed=3
    )
    pooled = load_dataset(tmp_path / "p")
    assert pooled.splits() == ["test", "train", "train-hidden"]
    train, test = pooled.qrels("train") | pooled.qrels("train-hidden"), pooled.qrels("test")
    assert len(set(train) | set(test)) == 4 and not set(train) & set(test)
    full = load_dataset(deep).qrels("test")
    assert all(test[q] == full[q] for q in test)  # test keeps full judgments
    for docs in pooled.qrels("train").values():
        assert set(docs) <= {"a"}  # depth 1 pool: only doc "a" (ties by id)


def test_simulate_pool_bad_input(deep, tmp_path):
    write_run(tmp_path / "other.trec", {"zz": {"a": 1.0}})
    with pytest.raises(InputError, match="shares no query"):
        simulate_pool(load_dataset(deep), "test", [tmp_path / "other.trec"], 5, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="no split"):
        simulate_pool(load_dataset(deep), "dev", [tmp_path / "other.trec"], 5, tmp_path / "o")


def test_simulate_pool_msmarco_layout(tmp_path):
    root = tmp_path / "mm"
    root.mkdir()
    (root / "collection.tsv").write_text("a\ttext a\nb\ttext b\nc\ttext c\n")
    (root / "queries.test.tsv").write_text("q1\tone\nq2\ttwo\n")
    (root / "qrels.test.tsv").write_text("q1\t0\ta\t1\nq1\t0\tc\t1\nq2\t0\tb\t1\n")
    write_run(tmp_path / "r.trec", {"q1": {"a": 2.0, "c": 1.0}, "q2": {"a": 1.0}})
    simulate_pool(load_dataset(root), "test", [tmp_path / "r.trec"], 1, tmp_path / "out")
    pooled = load_dataset(tmp_path / "out")
    assert pooled.layout == "msmarco"
    assert pooled.qrels("test") == {"q1": {"a": 1}}
    assert pooled.qrels("test-hidden") == {"q1": {"c": 1}, "q2": {"b": 1}}
    assert pooled.queries("test-hidden") == {"q1": "one", "q2": "two"}


def test_a_pool_of_several_systems_is_their_union_and_is_written(deep, tmp_path):
    """MS MARCO-like pools: the top-k of BM25 and of the dense model together; the pool file
    lists each pooled query's judged documents."""
    from retrievers.judging_pool import read_pool

    write_run(tmp_path / "bm25.trec", {"q1": {"a": 3.0, "b": 2.0}, "q2": {"a": 1.0, "b": 0.5}})
    write_run(tmp_path / "dense.trec", {"q1": {"c": 3.0, "d": 2.0}, "q2": {"g": 1.0, "a": 0.5}})
    runs = [tmp_path / "bm25.trec", tmp_path / "dense.trec"]
    summary = simulate_pool(load_dataset(deep), "test", runs, 1, tmp_path / "both")
    pooled = load_dataset(tmp_path / "both")
    # depth 1: BM25 finds a (q1, q2), the dense run c (q1) and g (q2)
    assert pooled.qrels("test") == {"q1": {"a": 1, "c": 2}, "q2": {"g": 1}}
    assert read_pool(tmp_path / "both" / summary["pool_file"]) == {"q1": {"a", "c"}, "q2": {"a", "g"}}
    bm25_only = simulate_pool(load_dataset(deep), "test", runs[:1], 1, tmp_path / "bm25")
    assert read_pool(tmp_path / "bm25" / bm25_only["pool_file"]) == {"q1": {"a"}, "q2": {"a"}}
    # with a query split, the pool of the training queries only
    write_run(tmp_path / "all.trec", {q: {"a": 1.0, "b": 0.5} for q in ["q1", "q2", "q3", "q4"]})
    runs.append(tmp_path / "all.trec")
    split = simulate_pool(load_dataset(deep), "test", runs, 1, tmp_path / "s", train_fraction=0.5, seed=3)
    train_pool = read_pool(tmp_path / "s" / split["pool_file"])
    assert split["pool_file"] == "pool.train.tsv"
    assert set(train_pool) == set(split_queries(["q1", "q2", "q3", "q4"], 0.5, 3)[0])
    assert all("a" in docs for docs in train_pool.values())


def test_a_bad_pool_file_names_its_line(tmp_path):
    from retrievers.judging_pool import read_pool

    path = tmp_path / "pool.tsv"
    path.write_text("q1\ta\nq1 a\n")
    with pytest.raises(InputError, match=r"pool.tsv:2: expected 'qid<TAB>docid'"):
        read_pool(path)
    path.write_text("\n")
    with pytest.raises(InputError, match="lists no document"):
        read_pool(path)
