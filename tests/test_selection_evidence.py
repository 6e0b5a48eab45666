"""CET's feature selection model sees positives and negatives through the same evidence.

``ranker mine`` records, per retriever, the rank and score of every negative *and* positive
(``--evidence-index`` adds retrievers that only give evidence, e.g. the judging pool's BM25);
the feature encoder turns that into one layout for both classes, with the same "not
retrieved" value for a document either class may have.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from ranker.training.data import BatchMaker, load_training_examples
from ranker.training.selection import EVIDENCE_FEATURES, FeatureEncoder, FeatureSelector
from retrievers.errors import InputError
from retrievers.mining import MiningConfig, mine

DOCS = [f"d{i:02d}" for i in range(40)]


class Ranked:
    """A searcher ranking DOCS in a per-query order; ``stride`` changes the order."""

    def __init__(self, stride: int, offset: int = 0):
        self.stride, self.offset = stride, offset

    def search_batch(self, queries, k):
        for qid in queries:
            q = int(qid[1:])
            order = sorted(DOCS, key=lambda d: (int(d[1:]) * self.stride + q + self.offset) % 41)
            yield qid, [(d, float(50 - r) / 7) for r, d in enumerate(order[:k])]


@pytest.fixture()
def mined(tmp_path):
    queries = {f"q{i}": f"query {i}" for i in range(12)}
    # positives: some near the top of "dense", some that "dense" never returns in its top 15
    positives = {q: [DOCS[(i * 5) % 40], DOCS[(i * 5 + 17) % 40]] for i, q in enumerate(queries)}
    out = tmp_path / "neg.jsonl"
    mine(
        queries,
        positives,
        {"dense": Ranked(7)},
        out,
        MiningConfig(depth=15, num_negatives=6),
        progress=False,
        evidence={"bm25": Ranked(3, 11)},
    )
    return out, positives


def test_mining_records_the_evidence_of_negatives_and_positives(mined):
    out, positives = mined
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines
    for line in lines:
        assert set(line["evidence_lists"]) == {"dense", "bm25"}
        assert line["evidence_lists"]["dense"]["depth"] == 15
        assert set(line["positive_evidence"]) == set(positives[line["qid"]])
        for negative in line["negatives"]:
            assert negative["retriever"] == "dense"  # evidence indexes give no candidates
            assert negative["evidence"]["dense"] == [negative["rank"], negative["score"]]
    # the evidence index really was searched: some negatives are in BM25's list, some not
    in_bm25 = [("bm25" in n["evidence"]) for line in lines for n in line["negatives"]]
    assert any(in_bm25) and not all(in_bm25)


def test_positives_cannot_be_told_from_negatives_by_a_constant(mined):
    out, _ = mined
    examples, encoder = load_training_examples(out)
    assert encoder.evidence == ["bm25", "dense"]
    assert encoder.size == len(EVIDENCE_FEATURES) * 2
    pos = np.array([f for e in examples for f in e.positive_features])
    neg = np.array([f for e in examples for f in e.features])
    assert len(pos) == sum(len(e.positives) for e in examples)
    assert len(np.unique(pos, axis=0)) > 1  # not one "missing" vector for every positive
    for column, name in enumerate(encoder.names):
        shared = set(np.unique(pos[:, column])) & set(np.unique(neg[:, column]))
        only_pos = set(np.unique(pos[:, column])) - shared
        # no column holds a value that every positive has and no negative has
        assert not (len(np.unique(pos[:, column])) == 1 and only_pos), name
    # a document BM25 did not return has the same BM25 features whichever class it is in
    bm25 = slice(0, len(EVIDENCE_FEATURES))
    example = next(e for e in examples if any(f[0] == 0.0 for f in e.features))
    unretrieved_neg = next(f for f in example.features if f[0] == 0.0)
    for features in example.positive_features:
        if features[0] == 0.0:
            assert features[bm25] == unretrieved_neg[bm25]


def test_a_retrieved_positive_gets_its_rank_and_score(mined):
    out, _ = mined
    line = json.loads(out.read_text().splitlines()[0])
    examples, _ = load_training_examples(out)
    example = next(e for e in examples if e.qid == line["qid"])
    lists = line["evidence_lists"]
    for docid, features in zip(example.positives, example.positive_features, strict=True):
        found = line["positive_evidence"][docid]
        dense = features[3:6]  # evidence sources are sorted: bm25, dense
        if "dense" in found:
            rank, score = found["dense"]
            stats = lists["dense"]
            assert dense == pytest.approx((1.0, np.log1p(rank), (score - stats["mean"]) / stats["std"]))
        else:
            assert dense[0] == 0.0 and dense[1] == pytest.approx(np.log1p(16))


def test_batches_carry_the_sampled_positives_features(mined):
    out, _ = mined
    examples, encoder = load_training_examples(out)
    texts = {d: d for e in examples for d in (*e.positives, *e.negatives)}
    batches = BatchMaker(examples, texts, 2, 4, 0, encoder.missing())
    batch = batches.batch(0)
    by_qid = {e.qid: e for e in examples}
    for row, (qid, pos) in enumerate(zip(batch.qids, batch.pos_ids, strict=True)):
        example = by_qid[qid]
        expected = example.positive_features[example.positives.index(pos)]
        assert batch.pos_features[row].tolist() == pytest.approx(list(expected))
    selector = FeatureSelector(encoder)
    assert selector(batch.pos_features).shape == (4,)
    assert selector(batch.neg_features).shape == (4, 2)


def test_feature_selector_round_trip_keeps_the_evidence_layout(tmp_path, mined):
    out, _ = mined
    _, encoder = load_training_examples(out)
    selector = FeatureSelector(encoder)
    selector.save(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "selector.json").read_text())
    assert meta["evidence"] == ["bm25", "dense"] and len(meta["features"]) == encoder.size
    loaded = FeatureSelector.load(tmp_path / "s")
    x = torch.randn(5, encoder.size)
    assert torch.equal(loaded(x), selector(x))


def test_an_old_file_without_evidence_still_trains_and_says_why_it_is_weaker(tmp_path, caplog):
    path = tmp_path / "old.jsonl"
    rows = [
        {
            "qid": f"q{i}",
            "query": "text",
            "positives": ["p"],
            "negatives": [
                {"docid": f"n{j}", "rank": j + 1, "score": 1.0 - j / 10, "retriever": "bm25"}
                for j in range(3)
            ],
        }
        for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.INFO):
        examples, encoder = load_training_examples(path)
    assert "no retriever evidence" in caplog.text
    assert encoder.evidence == [] and examples[0].positive_features == ()
    batches = BatchMaker(examples, {d: d for d in ["p", "n0", "n1", "n2"]}, 1, 2, 0, encoder.missing())
    assert batches.batch(0).pos_features.tolist() == [encoder.missing()] * 2


def test_an_evidence_index_cannot_also_give_candidates(tmp_path):
    with pytest.raises(InputError, match="both a candidate and an evidence index"):
        mine(
            {"q1": "x"},
            {"q1": ["d01"]},
            {"bm25": Ranked(3)},
            tmp_path / "n.jsonl",
            MiningConfig(depth=5, num_negatives=2),
            progress=False,
            evidence={"bm25": Ranked(5)},
        )


def test_encoder_names_match_its_size():
    assert len(FeatureEncoder(["bm25"]).names) == FeatureEncoder(["bm25"]).size
    assert len(FeatureEncoder(["x"], ["a", "b"]).names) == FeatureEncoder(["x"], ["a", "b"]).size


def test_a_feature_s_sees_the_pools_systems_unless_told_otherwise(mined, tmp_path, caplog):
    """Issue 26, fix (i): by default S's features are the evidence-only retrievers' (the
    systems that built the pool), not the mining retriever's; it gets the miner's when asked."""
    out, _ = mined
    _, pool = load_training_examples(out, "pool")
    assert pool.evidence == ["bm25"] and pool.size == len(EVIDENCE_FEATURES)
    _, both = load_training_examples(out, ["dense", "bm25"])
    assert both.evidence == ["bm25", "dense"]
    examples, _ = load_training_examples(out, ["bm25"])
    full, _ = load_training_examples(out, "all")
    # the same BM25 columns as in the full layout (bm25 comes first there)
    assert [f[:3] for f in full[0].features] == list(examples[0].features)
    assert [f[:3] for f in full[0].positive_features] == list(examples[0].positive_features)
    with pytest.raises(InputError, match=r"selection_evidence names \['splade'\]"):
        load_training_examples(out, ["splade"])
    # no evidence-only retriever: every retriever, and a warning saying what that risks
    alone = tmp_path / "alone.jsonl"
    mine(
        {"q1": "x", "q2": "y"},
        {"q1": ["d01"], "q2": ["d02"]},
        {"dense": Ranked(7)},
        alone,
        MiningConfig(depth=10, num_negatives=3),
        progress=False,
    )
    with caplog.at_level(logging.WARNING):
        _, fallback = load_training_examples(alone, "pool")
    assert fallback.evidence == ["dense"] and "learn relevance instead of selection" in caplog.text


def test_the_training_pipeline_defaults_a_feature_s_to_the_pool_evidence(mined, tmp_path):
    from ranker.training.config import build_config
    from ranker.training.pipeline import make_batches

    out, _ = mined
    docs = {d: f"text {d}" for d in DOCS}

    class Corpus:
        def docs(self):
            from retrievers.io.dataset import Document

            return [Document(d, t) for d, t in docs.items()]

    base = {"dataset": "x", "negatives": str(out), "output_dir": "o", "model": "m", "batch_size": 2}
    _, encoder = make_batches(build_config({**base, "selection": "features"}), Corpus())
    assert encoder.evidence == ["bm25"]
    _, encoder = make_batches(
        build_config({**base, "selection": "features", "selection_evidence": ["bm25", "dense"]}), Corpus()
    )
    assert encoder.evidence == ["bm25", "dense"]
