"""Saved bi-encoders load in sentence-transformers and give the same embeddings there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ranker.models import BiEncoder, load_biencoder

TEXTS = ["cats purr", "the big dogs bark at the small cats in the house", "fish swim", "birds"]


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "last", "weighted_mean"])
def test_parameter_free_poolers_load_in_plain_sentence_transformers(tiny_bert, tmp_path, mode):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder.from_pretrained(tiny_bert, pooling=mode, normalize=True)
    model.save(tmp_path / "m")
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    assert modules[1]["type"] == "sentence_transformers.models.Pooling"
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")  # no trust_remote_code needed
    np.testing.assert_allclose(st.encode(TEXTS), model.encode(TEXTS), atol=1e-6)


@pytest.mark.parametrize("mode", ["ggem", "latent", "mltp", "layerwise"])
def test_trainable_poolers_load_in_sentence_transformers(tiny, tmp_path, mode):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder.from_pretrained(
        tiny, pooling=mode, normalize=False, query_prefix="query ", doc_prefix="document "
    )
    model.save(tmp_path / "m")
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu", trust_remote_code=True)
    # Prompts travel as sentence-transformers prompts; decoders' EOS travels in the tokenizer.
    np.testing.assert_allclose(
        st.encode(TEXTS, prompt_name="document"), model.encode_corpus(TEXTS), atol=1e-5
    )
    np.testing.assert_allclose(st.encode(TEXTS, prompt_name="query"), model.encode_queries(TEXTS), atol=1e-5)


def test_layer_selection_with_a_native_mode_uses_the_ranker_module(tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder.from_pretrained(tiny_bert, pooling="mean", layers=[-2, -1])
    model.save(tmp_path / "m")
    assert "ranker_pooling" in json.loads((tmp_path / "m" / "modules.json").read_text())[1]["type"]
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu", trust_remote_code=True)
    np.testing.assert_allclose(st.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


@pytest.fixture(params=["bert", "llama"])
def tiny(request, tiny_bert, tiny_llama):
    return tiny_bert if request.param == "bert" else tiny_llama


@pytest.mark.integration
def test_minilm_mean_pooling_equals_sentence_transformers(minilm_path, scifact_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    docs = []
    with (scifact_dir / "corpus.jsonl").open() as lines:
        for line, _ in zip(lines, range(48), strict=False):
            row = json.loads(line)
            docs.append((row.get("title", "") + " " + row["text"]).strip())
    ours = load_biencoder(minilm_path)
    assert ours.query_encoder.pooler.mode == "mean" and ours.query_encoder.normalize
    st = SentenceTransformer(str(minilm_path), device="cpu")
    expected = st.encode(docs, batch_size=16)
    got = ours.encode(docs, batch_size=16)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    unnormalized = load_biencoder(minilm_path, normalize=False).encode(docs[:8])
    st_raw = st.encode(docs[:8], normalize_embeddings=False, output_value="sentence_embedding")
    assert np.abs(unnormalized).max() > 0
    np.testing.assert_allclose(
        unnormalized / np.linalg.norm(unnormalized, axis=1, keepdims=True), st_raw, atol=1e-6
    )
    ours.save(tmp_path / "saved")
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(docs, batch_size=16), got, atol=1e-6)
