"""The mining pipeline: output format, stats sidecar, resume, determinism, exports, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dense_helpers import HashEncoder, write_beir

from retrievers.dense import DenseSearcher, build_dense_index
from retrievers.errors import InputError
from retrievers.io.dataset import Document, load_dataset
from retrievers.mining import (
    MiningConfig,
    export_negatives,
    mine,
    positives_from_qrels,
    read_negatives,
)

DOCS = [f"d{i:02d}" for i in range(30)]


class FakeSearcher:
    """Ranks the 30 documents in a fixed per-query order; counts calls."""

    def __init__(self, shift=0, fail_on_call=None):
        self.shift, self.fail_on_call, self.calls = shift, fail_on_call, 0

    def search_batch(self, queries, k):
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise KeyboardInterrupt
        for qid in queries:
            start = (int(qid[1:]) * 3 + self.shift) % len(DOCS)
            order = DOCS[start:] + DOCS[:start]
            yield qid, [(d, float(100 - r)) for r, d in enumerate(order[:k])]


QUERIES = {f"q{i}": f"query {i}" for i in range(10)}
POSITIVES = {q: [DOCS[(int(q[1:]) * 3 + 1) % 30]] for q in QUERIES}  # each at rank 2


def test_output_format_and_stats(tmp_path):
    out = tmp_path / "neg.jsonl"
    config = MiningConfig(depth=20, min_rank=1, max_rank=10, num_negatives=4)
    stats = mine(QUERIES, POSITIVES, {"bm25": FakeSearcher()}, out, config, progress=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["qid"] for rec in lines] == list(QUERIES)
    first = lines[0]
    assert set(first) >= {"qid", "query", "positives", "negatives"}
    assert first["positives"] == ["d01"]
    assert first["negatives"][0] == {
        "docid": "d00",
        "rank": 1,
        "score": 100.0,
        "retriever": "bm25",
        "evidence": {"bm25": [1, 100.0]},
    }
    assert first["positive_evidence"] == {"d01": {"bm25": [2, 99.0]}}
    assert first["evidence_lists"]["bm25"]["depth"] == 20 and first["evidence_lists"]["bm25"]["n"] == 20
    assert [n["rank"] for n in first["negatives"]] == [1, 3, 4, 5]  # positive at rank 2 excluded
    sidecar = json.loads((tmp_path / "neg.stats.json").read_text())
    assert sidecar == {**stats, "config": sidecar["config"]}
    assert stats["candidates"] == 200 and stats["negatives"] == 40
    assert stats["dropped"] == {"known_positive": 10, "rank_window": 100, "sampled_out": 50}
    assert not list(tmp_path.glob(".*partial*"))
    recs = read_negatives(out)
    assert recs[0].negatives[1].docid == "d02" and recs[0].negatives[1].rank == 3


def test_same_seed_same_file_and_resume_without_duplicates(tmp_path):
    config = MiningConfig(depth=30, min_rank=3, num_negatives=5, sampling="random", seed=3, chunk_size=3)
    full = tmp_path / "full.jsonl"
    mine(QUERIES, POSITIVES, {"bm25": FakeSearcher()}, full, config, progress=False)
    again = tmp_path / "again.jsonl"
    mine(QUERIES, POSITIVES, {"bm25": FakeSearcher()}, again, config, progress=False)
    assert full.read_bytes() == again.read_bytes()
    other = tmp_path / "other.jsonl"
    mine(
        QUERIES,
        POSITIVES,
        {"bm25": FakeSearcher()},
        other,
        MiningConfig(depth=30, min_rank=3, num_negatives=5, sampling="random", seed=4, chunk_size=3),
        progress=False,
    )
    assert other.read_bytes() != full.read_bytes()

    resumed = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):  # dies on the 3rd chunk: 6 queries written
        mine(QUERIES, POSITIVES, {"bm25": FakeSearcher(fail_on_call=3)}, resumed, config, progress=False)
    assert not resumed.exists()
    partial = tmp_path / ".resumed.jsonl.partial"
    assert len(partial.read_text().splitlines()) == 6
    lines = full.read_text().splitlines(keepends=True)
    # the crash also left q6 (first query of chunk 3) and a line cut short
    partial.write_text("".join(lines[:7]) + '{"qid": "q7", "que')
    searcher = FakeSearcher()
    mine(QUERIES, POSITIVES, {"bm25": searcher}, resumed, config, progress=False)
    assert searcher.calls == 2  # the 4 remaining queries, on the original chunk grid (3 + 1)
    assert resumed.read_bytes() == full.read_bytes()


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "neg.jsonl"
    with pytest.raises(KeyboardInterrupt):
        mine(
            QUERIES,
            POSITIVES,
            {"bm25": FakeSearcher(fail_on_call=2)},
            out,
            MiningConfig(depth=10, chunk_size=3),
            progress=False,
        )
    with pytest.raises(InputError, match="other settings"):
        mine(
            QUERIES,
            POSITIVES,
            {"bm25": FakeSearcher()},
            out,
            MiningConfig(depth=11, chunk_size=3),
            progress=False,
        )


def test_two_retrievers_and_relative_filter(tmp_path):
    out = tmp_path / "neg.jsonl"
    config = MiningConfig(depth=5, num_negatives=20, max_relative=0.97)
    mine(
        {"q0": "x"},
        {"q0": ["d01"]},
        {"bm25": FakeSearcher(), "dense": FakeSearcher(shift=10)},
        out,
        config,
        progress=False,
    )
    rec = read_negatives(out)[0]
    # bm25: positive d01 scores 99; keep scores <= 96.03: only rank 5 (score 96)
    # dense: positive not retrieved -> its score unknown -> all 5 kept
    got = [(n.docid, n.rank, n.retriever) for n in rec.negatives]
    assert got == [
        ("d10", 1, "dense"),
        ("d11", 2, "dense"),
        ("d12", 3, "dense"),
        ("d13", 4, "dense"),
        ("d04", 5, "bm25"),
        ("d14", 5, "dense"),
    ]


def test_dense_candidates_use_exact_positive_scores(tmp_path):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(40)]
    docs = {f"d{i}": " ".join(rng.choice(words, 6)) for i in range(50)}
    queries = {f"q{i}": docs[f"d{i}"].split(" ", 3)[-1] for i in range(5)}
    root = write_beir(tmp_path / "data", docs, queries, {"train": {q: {f"d{q[1:]}": 1} for q in queries}})
    dataset = load_dataset(root)
    index = build_dense_index(dataset, tmp_path / "idx", HashEncoder(), model="hash")
    searcher = DenseSearcher(index, HashEncoder(), gpu=False)
    positives = positives_from_qrels(
        dataset.queries("train"), dataset.qrels("train"), corpus=searcher.__contains__
    )
    out = tmp_path / "neg.jsonl"
    mine(
        queries,
        positives,
        {"dense": searcher},
        out,
        MiningConfig(depth=20, num_negatives=3, margin=0.05),
        progress=False,
    )
    for rec in read_negatives(out):
        pos = searcher.score_pairs([rec.query], rec.positives)[0]
        assert all(n.score <= pos - 0.05 + 1e-6 for n in rec.negatives)
        assert not set(rec.positives) & {n.docid for n in rec.negatives}


def test_exports(tmp_path):
    out = tmp_path / "neg.jsonl"
    mine(
        {"q0": "find"},
        {"q0": ["d01"]},
        {"bm25": FakeSearcher()},
        out,
        MiningConfig(depth=5, num_negatives=2),
        progress=False,
    )
    docs = {d: Document(d, f"text {d}", f"T{d}") for d in DOCS}
    recs = read_negatives(out)
    st = tmp_path / "st.jsonl"
    assert export_negatives(recs, "sentence-transformers", docs, st) == 2
    assert json.loads(st.read_text().splitlines()[0]) == {
        "query": "find",
        "positive": "Td01 text d01",
        "negative": "Td00 text d00",
    }
    fe = tmp_path / "fe.jsonl"
    export_negatives(recs, "flagembedding", docs, fe)
    assert json.loads(fe.read_text()) == {
        "query": "find",
        "pos": ["Td01 text d01"],
        "neg": ["Td00 text d00", "Td02 text d02"],
    }
    tev = tmp_path / "tev.jsonl"
    export_negatives(recs, "tevatron", docs, tev)
    row = json.loads(tev.read_text())
    assert row["query_id"] == "q0" and row["query"] == "find"
    assert row["positive_passages"] == [{"docid": "d01", "title": "Td01", "text": "text d01"}]
    assert [p["docid"] for p in row["negative_passages"]] == ["d00", "d02"]
    with pytest.raises(InputError, match="not in the corpus"):
        export_negatives(recs, "tevatron", {}, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_input(tmp_path):
    searchers = {"bm25": FakeSearcher()}
    cfg = MiningConfig(depth=5)
    with pytest.raises(InputError, match="no query has a positive"):
        mine(QUERIES, {}, searchers, tmp_path / "a.jsonl", cfg, progress=False)
    with pytest.raises(InputError, match="has no text"):
        positives_from_qrels({"q1": "x"}, {"q9": {"d1": 1}})
    with pytest.raises(InputError, match="not in the index"):
        positives_from_qrels({"q1": "x"}, {"q1": {"nope": 1}}, corpus=set(DOCS).__contains__)
    assert positives_from_qrels({"q1": "x", "q2": "y"}, {"q1": {"d1": 0}, "q2": {"d2": 2}}) == {"q2": ["d2"]}
    with pytest.raises(InputError, match="rank window"):
        MiningConfig(depth=10, min_rank=20)
    with pytest.raises(InputError):
        MiningConfig(num_negatives=0)
    (tmp_path / "exists.jsonl").write_text("mine\n")
    with pytest.raises(FileExistsError):
        mine(QUERIES, POSITIVES, searchers, tmp_path / "exists.jsonl", cfg, progress=False)
    assert (tmp_path / "exists.jsonl").read_text() == "mine\n"


def test_empty_candidate_lists_are_left_out_and_counted(tmp_path):
    class Empty:
        def search_batch(self, queries, k):
            for qid in queries:
                yield qid, [] if qid == "q1" else [("d01", 1.0), ("d05", 0.5)]

    out = tmp_path / "neg.jsonl"
    stats = mine(
        {"q0": "a", "q1": "b", "q2": "c"},
        {"q0": ["d01"], "q1": ["d01"]},
        {"bm25": Empty()},
        out,
        MiningConfig(depth=5),
        progress=False,
    )
    assert [r.qid for r in read_negatives(out)] == ["q0"]
    assert stats["queries_without_negatives"] == 1 and stats["queries_without_positives"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"qid": "q", "query": "x", "positives": []}', "missing field 'negatives'"),
        ('{"qid": "q", "query": "x", "positives": [], "negatives": [{"docid": "d"}]}', "missing rank"),
        ('{"qid": "q", "query": "x", "positives": [1], "negatives": []}', "list of document ids"),
        (
            '{"qid": "q", "query": "x", "positives": [], "negatives": [{"docid": "d", "rank": 0, '
            '"score": 1, "retriever": "r"}]}',
            "positive integer",
        ),
        ("not json", "malformed JSON"),
    ],
)
def test_read_negatives_rejects_bad_lines(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"qid": "a", "query": "x", "positives": ["d"], "negatives": []}'
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(InputError, match=message) as err:
        read_negatives(path)
    assert f"{path}:2" in str(err.value)
