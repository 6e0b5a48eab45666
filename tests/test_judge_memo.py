"""A bi-encoder judge embeds each document once across queries (relabelling a corpus's
candidates), with the scores it gives without the memo, and a bounded memory."""

from __future__ import annotations

import numpy as np

from ranker.models.biencoder import DocumentMemo
from ranker.models.judge import load_judge
from ranker.models.loading import load_biencoder

DOCS = ["the cat sat on the mat", "dogs bark at night", "a bird in the hand", "fish swim in water"]


def test_memo_scores_equal_plain_scores_and_encode_each_document_once(tiny_bert, monkeypatch):
    model = load_biencoder(tiny_bert, pooling="mean")
    model.eval()
    plain = model.score(["cats", "cats", "dogs"], DOCS[:3])
    encoded: list[str] = []
    encode = model.encode_corpus

    def counting(texts, **kw):
        encoded.extend(texts)
        return encode(texts, **kw)

    monkeypatch.setattr(model, "encode_corpus", counting)
    memo = DocumentMemo()
    first = model.score(["cats", "cats", "dogs"], DOCS[:3], doc_memo=memo)
    again = model.score(["birds", "fish"], [DOCS[2], DOCS[3]], doc_memo=memo)
    np.testing.assert_allclose(first, plain, rtol=1e-5, atol=1e-6)
    assert sorted(encoded) == sorted(DOCS)  # DOCS[2] was embedded once, not twice
    expected = load_biencoder(tiny_bert, pooling="mean").score(["birds", "fish"], [DOCS[2], DOCS[3]])
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=1e-6)


def test_memo_keeps_at_most_its_limit_least_recently_used_out():
    memo = DocumentMemo(limit=2)
    calls: list[list[str]] = []

    def encode(texts):
        calls.append(list(texts))
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    out = memo.embed(["a", "bb", "a"], encode)
    assert out[:, 0].tolist() == [1.0, 2.0, 1.0]
    memo.embed(["ccc"], encode)  # evicts "bb" (used before "a")
    memo.embed(["a", "bb"], encode)
    assert calls == [["a", "bb"], ["ccc"], ["bb"]]


def test_a_bi_encoder_judge_scores_the_same_pairs_alike_from_its_memo(tiny_bert):
    judge = load_judge(str(tiny_bert))
    first = judge.score(["cats", "dogs"], DOCS[:2])
    again = judge.score(["cats", "dogs"], DOCS[:2])
    np.testing.assert_allclose(first, again, rtol=1e-6)
