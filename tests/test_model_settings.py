"""Model settings reach every place a model is built. Decoder attention: the training config
(R and a text S), ``ranker index --retriever dense`` (recorded, and used again by search) and
``ranker encode``; a saved model refuses to be loaded with other attention. Gradient
checkpointing: the training config turns it on in R and a text S, and gradients still flow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ranker.cli import main
from ranker.encoders import read_embeddings
from ranker.models import load_biencoder
from ranker.training.build import build_relevance, build_selection
from ranker.training.config import build_config
from retrievers.errors import InputError
from retrievers.io.dataset import load_dataset


def _config(model, **extra):
    return build_config({"dataset": "d", "negatives": "n", "output_dir": "o", "model": str(model), **extra})


def _attention(model) -> set[str | None]:
    from ranker.encoders.backbone import Backbone

    return {m.attention for m in model.modules() if isinstance(m, Backbone)}


@pytest.mark.parametrize("model_type", ["bi", "cross"])
def test_training_config_sets_decoder_attention(tiny_llama, model_type):
    causal = build_relevance(_config(tiny_llama, model_type=model_type))
    assert _attention(causal) == {"causal"}
    bidi = build_relevance(_config(tiny_llama, model_type=model_type, attention="bidirectional"))
    assert _attention(bidi) == {"bidirectional"}
    if model_type == "cross":
        s = build_selection(
            _config(tiny_llama, model_type="cross", selection="text", attention="bidirectional"),
            ["bm25"],
        )
        assert _attention(s) == {"bidirectional"}


def test_bad_or_conflicting_attention_is_refused(tiny_llama, tiny_bert, tmp_path):
    with pytest.raises(InputError, match="attention"):
        _config(tiny_llama, attention="sideways")
    with pytest.raises(ValueError, match="encoder"):
        build_relevance(_config(tiny_bert, model_type="bi", attention="causal"))
    saved = tmp_path / "bi"
    build_relevance(_config(tiny_llama, model_type="bi", attention="bidirectional")).save(saved)
    reloaded = build_relevance(_config(saved, model_type="bi"))
    assert _attention(reloaded) == {"bidirectional"}
    with pytest.raises(InputError, match="bidirectional attention"):
        build_relevance(_config(saved, model_type="bi", attention="causal"))
    with pytest.raises(ValueError, match="bidirectional attention"):
        load_biencoder(saved, attention="causal")


def test_dense_index_records_attention_and_search_uses_it(tiny_beir, tiny_llama, tmp_path):
    from ranker.cli.retrieval import load_encoder

    runs = {}
    for attention in ("causal", "bidirectional"):
        index = tmp_path / f"idx-{attention}"
        assert (
            main(
                [
                    "index",
                    str(tiny_beir),
                    "--retriever",
                    "dense",
                    "--model",
                    str(tiny_llama),
                    "--attention",
                    attention,
                    "--index",
                    str(index),
                ]
            )
            == 0
        )
        meta = json.loads((index / "ranker-index.json").read_text())
        assert meta["encoder_options"]["attention"] == attention
        run = tmp_path / f"{attention}.trec"
        assert (
            main(
                [
                    "search",
                    str(tiny_beir),
                    "--split",
                    "test",
                    "--index",
                    str(index),
                    "--k",
                    "3",
                    "--out",
                    str(run),
                ]
            )
            == 0
        )
        runs[attention] = run.read_text()
    # search loaded each index's own encoder, so the two rankings' scores differ
    assert runs["causal"] != runs["bidirectional"]
    assert load_encoder.cache_info().currsize >= 2


def test_encode_cli_attention(tiny_beir, tiny_llama, tmp_path):
    docs = [d.contents for d in load_dataset(tiny_beir).docs()]
    for attention in ("causal", "bidirectional"):
        out = tmp_path / attention
        assert (
            main(
                [
                    "encode",
                    str(tiny_beir),
                    "--model",
                    str(tiny_llama),
                    "--attention",
                    attention,
                    "--out",
                    str(out),
                    "--no-progress",
                    "--device",
                    "cpu",
                    "--dtype",
                    "float32",  # compared with encode_corpus in float32
                ]
            )
            == 0
        )
        _, vectors = read_embeddings(out)
        expected = load_biencoder(tiny_llama, attention=attention).encode_corpus(docs)
        np.testing.assert_allclose(np.asarray(vectors), expected, atol=1e-5)
    _, causal = read_embeddings(tmp_path / "causal")
    _, bidi = read_embeddings(tmp_path / "bidirectional")
    assert not np.allclose(np.asarray(causal), np.asarray(bidi), atol=1e-4)


@pytest.mark.parametrize("model_type", ["bi", "cross"])
def test_training_config_turns_on_gradient_checkpointing(tiny_llama, model_type):
    import torch

    from ranker.encoders.backbone import Backbone

    config = _config(
        tiny_llama,
        model_type=model_type,
        selection="text" if model_type == "cross" else "none",
        gradient_checkpointing=True,
    )
    models = [build_relevance(config)]
    if model_type == "cross":
        models.append(build_selection(config, ["bm25"]))
    for model in models:
        backbones = [m for m in model.modules() if isinstance(m, Backbone)]
        assert backbones and all(b.model.is_gradient_checkpointing for b in backbones)
    plain = build_relevance(_config(tiny_llama, model_type=model_type))
    assert not any(m.model.is_gradient_checkpointing for m in plain.modules() if isinstance(m, Backbone))
    model = models[0].train()
    if model_type == "bi":
        out = model.embed_docs(model.tokenize_docs(["alpha beta", "gamma"]))
    else:
        out = model(model.tokenize(["q one", "q two"], ["alpha beta", "gamma"]))
    out.float().pow(2).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_dropout_detection_on_real_architectures(tiny_bert, tiny_llama):
    """``weight_pass: auto`` shares CET's scores only for models whose train and eval modes
    agree: Llama (no dropout) yes; BERT (dropout) and the layer-wise pooler (RReLU) no."""
    from ranker.training.trainer import has_dropout

    assert not has_dropout(load_biencoder(tiny_llama, pooling="last"))
    assert has_dropout(load_biencoder(tiny_llama, pooling="layerwise"))
    assert has_dropout(load_biencoder(tiny_bert, pooling="mean"))
