"""BiEncoder / CrossEncoder / backbones on tiny random BERT and Llama models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_encoders import assert_same_outputs

from ranker.encoders import Backbone
from ranker.models import BiEncoder, CrossEncoder, load_biencoder
from ranker.pooling import POOLERS

TEXTS = [
    "cats purr",
    "the big dogs bark at the small cats in the house",
    "fish swim in blue water",
    "birds",
]


@pytest.fixture(params=["bert", "llama"])
def tiny(request, tiny_bert, tiny_llama):
    return tiny_bert if request.param == "bert" else tiny_llama


def _embed_alone_and_in_batches(model: BiEncoder, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    model.query_encoder.backbone.tokenizer.padding_side = side
    with torch.no_grad():
        alone = model.embed_docs(model.tokenize_docs([TEXTS[0]]))
        batch = model.embed_docs(model.tokenize_docs([TEXTS[1], TEXTS[0], TEXTS[3]]))[1:2]
    return alone, batch


@pytest.mark.parametrize("mode", sorted(POOLERS))
def test_same_text_same_embedding_whatever_batch_and_padding_side(tiny, mode):
    model = BiEncoder.from_pretrained(tiny, pooling=mode, normalize=False).eval()
    alone_right, batch_right = _embed_alone_and_in_batches(model, "right")
    alone_left, batch_left = _embed_alone_and_in_batches(model, "left")
    for got in (batch_right, alone_left, batch_left):
        torch.testing.assert_close(got, alone_right, atol=2e-5, rtol=2e-5)
    assert torch.isfinite(alone_right).all()


@pytest.mark.parametrize("mode", ["mean", "ggem", "latent", "mltp", "layerwise"])
def test_gradients_reach_backbone_and_pooler(tiny, mode):
    model = BiEncoder.from_pretrained(tiny, pooling=mode).train()
    q = model.embed_queries(model.tokenize_queries(TEXTS[:2]))
    d = model.embed_docs(model.tokenize_docs(TEXTS[2:]))
    model.similarity(q, d).logsumexp(-1).sum().backward()
    for name, param in model.query_encoder.pooler.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    embeddings = model.query_encoder.backbone.base_model.get_input_embeddings().weight
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0


def test_encode_matches_embed_in_input_order_and_normalizes(tiny):
    model = BiEncoder.from_pretrained(tiny, pooling="mean", normalize=True)
    model.eval()
    arrays = model.encode(TEXTS, batch_size=2)
    with torch.no_grad():
        direct = model.embed_docs(model.tokenize_docs(TEXTS)).numpy()
    assert arrays.dtype == np.float32 and arrays.shape == (4, 32)
    np.testing.assert_allclose(arrays, direct, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(arrays, axis=1), 1.0, atol=1e-5)
    assert model.for_queries().encode(TEXTS[:1]).shape == (1, 32)


def test_prefixes_temperature_and_separate_towers(tiny_bert):
    model = BiEncoder.from_pretrained(
        tiny_bert, query_prefix="query ", doc_prefix="document ", temperature=0.05
    )
    q = model.tokenize_queries(["cats"])["input_ids"][0].tolist()
    d = model.tokenize_docs(["cats"])["input_ids"][0].tolist()
    assert q != d and len(q) == len(d) == 4  # [CLS] prefix cats [SEP]
    emb = torch.ones(1, 32)
    assert model.similarity(emb, emb).item() == pytest.approx(32 / 0.05)
    separate = BiEncoder.from_pretrained(tiny_bert, shared=False)
    assert separate.query_encoder.backbone is not separate.doc_encoder.backbone
    with torch.no_grad():
        next(separate.doc_encoder.backbone.parameters()).add_(1.0)
    assert not np.allclose(separate.encode_queries(["cats"]), separate.encode_corpus(["cats"]))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("mode", ["mean", "mltp"])
def test_biencoder_save_load_round_trip(tiny, tmp_path, mode, shared):
    model = BiEncoder.from_pretrained(
        tiny, pooling=mode, shared=shared, query_prefix="query ", temperature=0.1, max_length=16
    )
    with torch.no_grad():
        for p in model.query_encoder.pooler.parameters():
            p.add_(0.3)
    model.save(tmp_path / "m")
    again = BiEncoder.load(tmp_path / "m")
    assert again.temperature == 0.1 and again.shared == shared
    assert again.query_encoder.max_length == 16 and again.query_encoder.prefix == "query "
    assert_same_outputs(model.encode_queries(TEXTS), again.encode_queries(TEXTS))
    assert_same_outputs(model.encode_corpus(TEXTS), again.encode_corpus(TEXTS))
    assert load_biencoder(tmp_path / "m").query_encoder.pooler.mode == mode
    with pytest.raises(ValueError, match="saved with pooling"):
        load_biencoder(tmp_path / "m", pooling="cls" if mode != "cls" else "max")


def test_save_refuses_to_overwrite(tiny_bert, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mine.txt").write_text("user file")
    with pytest.raises(FileExistsError):
        BiEncoder.from_pretrained(tiny_bert).save(tmp_path / "m")
    assert (tmp_path / "m" / "mine.txt").read_text() == "user file"


def test_load_biencoder_defaults_by_architecture(tiny_bert, tiny_llama):
    assert load_biencoder(tiny_bert).query_encoder.pooler.mode == "mean"
    assert load_biencoder(tiny_llama).query_encoder.pooler.mode == "last"
    assert load_biencoder(tiny_llama, pooling="mltp", num_latents=3).query_encoder.pooler.num_latents == 3


def test_decoders_append_eos_and_encoders_do_not(tiny_bert, tiny_llama):
    llama = Backbone.from_pretrained(tiny_llama)
    ids = llama.tokenize(["cats purr"], max_length=3)["input_ids"][0].tolist()
    assert ids[-1] == llama.tokenizer.eos_token_id and len(ids) == 3
    bert = Backbone.from_pretrained(tiny_bert)
    assert not bert.append_eos and bert.attention is None


def _first_token_state(backbone: Backbone, text: str) -> torch.Tensor:
    with torch.no_grad():
        return backbone(backbone.tokenize([text], max_length=32))[-1][0, 1]


def test_bidirectional_switch_lets_tokens_see_later_tokens(tiny_llama, tiny_bert):
    causal = Backbone.from_pretrained(tiny_llama).eval()
    bidir = Backbone.from_pretrained(tiny_llama, attention="bidirectional").eval()
    a, b = "cats purr and sleep", "cats bark and fly"  # same first word, different later ones
    torch.testing.assert_close(_first_token_state(causal, a), _first_token_state(causal, b))
    assert not torch.allclose(_first_token_state(bidir, a), _first_token_state(bidir, b), atol=1e-4)
    # switching back restores causal behaviour
    from ranker.encoders import set_attention

    set_attention(bidir.model, "causal")
    torch.testing.assert_close(_first_token_state(bidir, a), _first_token_state(causal, a))
    with pytest.raises(ValueError, match="encoder"):
        Backbone.from_pretrained(tiny_bert, attention="causal")


def test_bidirectional_biencoder_round_trips(tiny_llama, tmp_path):
    model = BiEncoder.from_pretrained(tiny_llama, pooling="mean", attention="bidirectional")
    model.save(tmp_path / "m")
    again = BiEncoder.load(tmp_path / "m")
    assert again.query_encoder.backbone.attention == "bidirectional"
    assert_same_outputs(model.encode(TEXTS), again.encode(TEXTS))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_half_precision(tiny, dtype):
    model = BiEncoder.from_pretrained(tiny, pooling="mltp", dtype=dtype)
    full = BiEncoder.from_pretrained(tiny, pooling="mltp")
    full.load_state_dict(model.state_dict())
    half, ref = model.encode(TEXTS), full.encode(TEXTS)
    assert np.isfinite(half).all()
    assert (np.sum(half * ref, axis=1) > 0.98).all()


def test_lora_trains_only_adapters_and_saves_merged(tiny_llama, tmp_path):
    model = BiEncoder.from_pretrained(tiny_llama, pooling="mean", lora={"r": 4})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    loss = model.embed_docs(model.tokenize_docs(TEXTS)).sum()
    loss.backward()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    before = model.encode(TEXTS)
    model.save(tmp_path / "m")
    assert any("lora" in n for n, _ in model.named_parameters())  # training model keeps adapters
    np.testing.assert_allclose(BiEncoder.load(tmp_path / "m").encode(TEXTS), before, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_bert):
    grads = []
    for checkpointing in (False, True):
        model = BiEncoder.from_pretrained(tiny_bert, gradient_checkpointing=checkpointing).train()
        model.query_encoder.backbone.model.config.hidden_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        model.embed_docs(model.tokenize_docs(TEXTS)).sum().backward()
        grads.append(model.query_encoder.backbone.base_model.get_input_embeddings().weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("mode", [None, "mean"])
def test_crossencoder_scores_and_round_trip(tiny, tmp_path, mode):
    model = CrossEncoder.from_pretrained(tiny, pooling=mode, max_length=24)
    if mode is None and "llama" not in str(tiny):
        assert model.standard  # BERT's own sequence-classification head
    else:
        assert model.pooler is not None and model.pooler.mode == (mode or "last")
    queries, docs = ["cats", "fish", "birds"], TEXTS[:3]
    scores = model.score(queries, docs, batch_size=2)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    with torch.no_grad():
        one = model(model.tokenize(queries[1:2], docs[1:2])).numpy()
    np.testing.assert_allclose(scores[1:2], one, atol=2e-5)
    features = model.tokenize(["cats " * 30], ["dogs " * 30])
    assert features["input_ids"].shape[1] <= 24
    model.save(tmp_path / "ce")
    again = CrossEncoder.load(tmp_path / "ce")
    assert_same_outputs(again.score(queries, docs, batch_size=2), scores)
    assert json.loads((tmp_path / "ce" / "ranker_config.json").read_text())["type"] == "crossencoder"
    with pytest.raises(ValueError, match="queries but"):
        model.tokenize(["a"], ["b", "c"])
