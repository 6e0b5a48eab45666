"""Lucene BM25 through Anserini: indexing, fast batch search, agreement with Pyserini."""

from __future__ import annotations

import json

import pytest

from retrievers.bm25 import BM25Searcher, build_bm25_index, parse_top_docs
from retrievers.errors import InputError
from retrievers.index_meta import read_meta
from retrievers.io.dataset import load_dataset


@pytest.fixture()
def tiny_index(tiny_beir, tmp_path):
    return build_bm25_index(load_dataset(tiny_beir), tmp_path / "index", threads=1)


def test_parse_top_docs_decodes_ids_from_sort_field_bytes():
    text = (
        'org.apache.lucene.search.TopFieldDocs@1[fields={<score>,<string_val: "id">},'
        "scoreDocs={doc=4 score=8.5 shardIndex=-1 fields=[8.5, [64 31]],"
        "doc=0 score=1.25E-4 shardIndex=-1 fields=[1.25E-4, [c3 a9 2d 78]]},totalHits=2 hits]"
    )
    assert parse_top_docs(text) == [("d1", 8.5), ("é-x", 1.25e-4)]


def test_index_records_what_built_it(tiny_index, tiny_beir):
    meta = read_meta(tiny_index)
    assert meta["retriever"] == "bm25"
    assert meta["documents"] == 4
    assert meta["dataset"]["path"] == str(tiny_beir.resolve())


def test_search_ranks_matching_document_first(tiny_index):
    with BM25Searcher(tiny_index) as searcher:
        results = dict(
            searcher.search_batch({"a": "cats purr", "b": "fish", "c": "zebra"}, k=10, progress=False)
        )
        assert results["a"][0][0] == "d1"
        assert {d for d, _ in results["a"]} == {"d1", "d2"}  # only documents that mention cats
        assert results["b"] == [("d3", results["b"][0][1])]
        assert results["c"] == []
        assert searcher.search("barking dogs", k=1)[0][0] == "d2"
        assert searcher.num_docs == 4


def test_results_come_back_in_query_order_with_small_chunks(tiny_index):
    queries = {f"q{i}": text for i, text in enumerate(["cats", "dogs", "fish", "birds", "cats dogs"])}
    with BM25Searcher(tiny_index, threads=2) as searcher:
        order = [qid for qid, _ in searcher.search_batch(queries, k=3, chunk_size=2, progress=False)]
    assert order == list(queries)


def test_k_limits_hits_and_ties_break_by_docid(tmp_path):
    root = tmp_path / "ties"
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as out:
        for docid in ["z", "m", "a", "q"]:  # identical texts: identical scores
            out.write(json.dumps({"_id": docid, "text": "same words here"}) + "\n")
    (root / "queries.jsonl").write_text('{"_id": "1", "text": "words"}\n')
    (root / "qrels" / "test.tsv").write_text("1\ta\t1\n")
    index = build_bm25_index(load_dataset(root), tmp_path / "index")
    with BM25Searcher(index) as searcher:
        hits = searcher.search("words", k=3)
    assert [d for d, _ in hits] == ["a", "m", "q"]


def test_bad_index_folder_and_parameters(tmp_path, tiny_index):
    with pytest.raises(InputError, match="not a Lucene index"):
        BM25Searcher(tmp_path)
    with pytest.raises(InputError, match="out of range"):
        BM25Searcher(tiny_index, b=1.5)


def test_failed_indexing_leaves_no_folder(tiny_beir, tmp_path):
    with (tiny_beir / "corpus.jsonl").open("a") as out:
        out.write(json.dumps({"_id": "d2", "text": "duplicate"}) + "\n")
    target = tmp_path / "index"
    with pytest.raises(InputError, match="duplicate document id 'd2'"):
        build_bm25_index(load_dataset(tiny_beir), target)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no temporary folder left either


@pytest.mark.integration
def test_same_rankings_and_scores_as_pyserini(tiny_index):
    from retrievers.java import start_jvm

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher

    peer = LuceneSearcher(str(tiny_index))
    peer.set_bm25(0.9, 0.4)
    with BM25Searcher(tiny_index) as ours:
        for text in ["cats purr", "dogs bark at cats", "birds"]:
            theirs = [(h.docid, h.score) for h in peer.search(text, k=10)]
            mine = ours.search(text, k=10)
            assert [d for d, _ in mine] == [d for d, _ in theirs]
            # Anserini's SimpleSearcher rounds scores to 4 decimals; ours keep float32 precision.
            assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], abs=5.1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("layout", ["scifact_dir", "scifact_msmarco_dir"])
def test_scifact_bm25_matches_pyserini_published_numbers(layout, request, tmp_path_factory):
    import ranx

    dataset = load_dataset(request.getfixturevalue(layout))
    index = build_bm25_index(dataset, tmp_path_factory.mktemp("scifact") / "index")
    with BM25Searcher(index) as searcher:
        run = {
            qid: dict(hits)
            for qid, hits in searcher.search_batch(dataset.queries("test"), k=1000, progress=False)
        }
    scores = ranx.evaluate(ranx.Qrels(dataset.qrels("test")), ranx.Run(run), ["ndcg@10", "recall@100"])
    assert scores["ndcg@10"] == pytest.approx(0.6789, abs=0.0005)
    assert scores["recall@100"] == pytest.approx(0.9253, abs=0.001)
