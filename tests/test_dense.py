"""FAISS dense retrieval: exactness of flat search, resumable encoding, ANN recall."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dense_helpers import HashEncoder, write_beir

from retrievers.dense import DenseSearcher, build_dense_index, partial_dir
from retrievers.errors import InputError
from retrievers.faiss_index import FaissConfig
from retrievers.index_meta import read_meta
from retrievers.io.dataset import load_dataset

WORDS = [f"w{i}" for i in range(60)]


@pytest.fixture()
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    docs = {f"d{i:03d}": " ".join(rng.choice(WORDS, size=8)) for i in range(300)}
    queries = {f"q{i}": " ".join(rng.choice(WORDS, size=3)) for i in range(20)}
    qrels = {"test": {q: {"d000": 1} for q in queries}}
    return write_beir(tmp_path / "data", docs, queries, qrels), docs, queries


def brute_force(docs, queries, k):
    enc = HashEncoder()
    ids = list(docs)
    d = enc.encode([docs[i] for i in ids])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    out = {}
    for qid, text in queries.items():
        q = enc.encode([text])[0]
        q /= np.linalg.norm(q)
        scores = d @ q
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]
        out[qid] = [(ids[i], float(scores[i])) for i in order]
    return out


def test_flat_matches_brute_force(corpus, tmp_path):
    root, docs, queries = corpus
    index = build_dense_index(
        load_dataset(root), tmp_path / "idx", HashEncoder(), model="hash", shard_size=64
    )
    meta = read_meta(index)
    assert meta["retriever"] == "dense" and meta["faiss"]["kind"] == "flat"
    assert meta["model"] == "hash" and meta["num_docs"] == 300
    searcher = DenseSearcher(index, HashEncoder(), gpu=False, chunk_size=7)
    got = dict(searcher.search_batch(queries, k=10, progress=False))
    assert list(got) == list(queries)
    expected = brute_force(docs, queries, 10)
    for qid in queries:
        assert [d for d, _ in got[qid]] == [d for d, _ in expected[qid]]
        assert np.allclose([s for _, s in got[qid]], [s for _, s in expected[qid]], atol=1e-5)
    pair = searcher.score_pairs([queries["q0"]], [got["q0"][3][0]])
    assert pair[0] == pytest.approx(got["q0"][3][1], abs=1e-5)
    calls = searcher.encoder.calls
    pair = searcher.score_pairs([queries["q19"], queries["q0"]], [got["q19"][0][0], "d001"])
    assert pair[0] == pytest.approx(got["q19"][0][1], abs=1e-5)
    assert searcher.encoder.calls == calls + 1  # q19 (last chunk) reused, q0 encoded
    assert not partial_dir(tmp_path / "idx").exists()


def test_hnsw_and_ivfpq_recall(corpus, tmp_path):
    root, docs, queries = corpus
    expected = brute_force(docs, queries, 10)
    for kind, floor in [("hnsw", 0.9), ("ivfpq", 0.3)]:
        index = build_dense_index(
            load_dataset(root),
            tmp_path / kind,
            HashEncoder(),
            model="hash",
            faiss_config=FaissConfig(kind=kind, nprobe=64),
        )
        got = dict(DenseSearcher(index, HashEncoder(), gpu=False).search_batch(queries, k=10, progress=False))
        overlap = np.mean([len({d for d, _ in got[q]} & {d for d, _ in expected[q]}) / 10 for q in queries])
        assert overlap >= floor, (kind, overlap)


class Interrupting(HashEncoder):
    def __init__(self, fail_after):
        super().__init__()
        self.fail_after = fail_after

    def encode(self, texts):
        if self.calls >= self.fail_after:
            raise KeyboardInterrupt
        return super().encode(texts)


def test_encoding_resumes_after_interrupt(corpus, tmp_path):
    root, _, queries = corpus
    target = tmp_path / "idx"
    with pytest.raises(KeyboardInterrupt):
        build_dense_index(load_dataset(root), target, Interrupting(2), model="hash", shard_size=64)
    assert not target.exists()
    assert len(list(partial_dir(target).glob("shard-*.npy"))) == 2
    second = HashEncoder()
    build_dense_index(load_dataset(root), target, second, model="hash", shard_size=64)
    assert second.calls == 3  # 300 docs / 64 = 5 shards, 2 reused (one call per shard)
    fresh = build_dense_index(
        load_dataset(root), tmp_path / "fresh", HashEncoder(), model="hash", shard_size=64
    )
    a = dict(DenseSearcher(target, HashEncoder(), gpu=False).search_batch(queries, 5, False))
    b = dict(DenseSearcher(fresh, HashEncoder(), gpu=False).search_batch(queries, 5, False))
    assert a == b


def test_resume_with_other_settings_refused(corpus, tmp_path):
    root, _, _ = corpus
    target = tmp_path / "idx"
    with pytest.raises(KeyboardInterrupt):
        build_dense_index(load_dataset(root), target, Interrupting(1), model="hash", shard_size=64)
    with pytest.raises(InputError, match="different settings"):
        build_dense_index(load_dataset(root), target, HashEncoder(), model="other", shard_size=64)


def test_refuses_existing_folder_and_wrong_meta(corpus, tmp_path):
    root, _, _ = corpus
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "mine.txt").write_text("user file")
    with pytest.raises(FileExistsError):
        build_dense_index(load_dataset(root), tmp_path / "idx", HashEncoder(), model="hash")
    assert (tmp_path / "idx" / "mine.txt").read_text() == "user file"
    bm25 = tmp_path / "bm25"
    bm25.mkdir()
    (bm25 / "ranker-index.json").write_text(json.dumps({"retriever": "bm25"}))
    with pytest.raises(InputError, match="not dense"):
        DenseSearcher(bm25, HashEncoder())
