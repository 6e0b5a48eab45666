"""The cached-backbone tier: `ranker cache-states`, training from the cache, indexing from it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tiny_encoders import WORDS, assert_same_outputs, make_tiny

from ranker.encoders.cached import CachedBackbone, freeze_backbone
from ranker.encoders.states import StatesCache, StateWriter
from ranker.models import BiEncoder, load_biencoder
from ranker.pooling import POOLERS
from retrievers.errors import InputError

MAX_LENGTH = 12


def _write_dataset(root: Path, n_queries: int = 12, n_docs: int = 30, seed: int = 0) -> tuple[Path, Path]:
    """A BEIR folder of tiny-vocabulary texts and a negatives file whose queries are the
    dataset's (as `ranker mine` writes them)."""
    rng = random.Random(seed)
    content = WORDS[10:]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    docs = [" ".join(rng.choices(content, k=rng.randint(3, 14))) for _ in range(n_docs)]
    queries = [" ".join(docs[q].split()[:2] + rng.choices(content, k=1)) for q in range(n_queries)]
    with (root / "corpus.jsonl").open("w") as out:
        for d, text in enumerate(docs):
            out.write(json.dumps({"_id": f"d{d}", "title": "", "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as out:
        for q, text in enumerate(queries):
            out.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
    with (root / "qrels" / "train.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        out.writelines(f"q{q}\td{q}\t1\n" for q in range(n_queries))
    negatives = root / "negatives.jsonl"
    with negatives.open("w") as out:
        for q, text in enumerate(queries):
            pool = rng.sample([d for d in range(n_docs) if d != q], 4)
            negs = [
                {"docid": f"d{d}", "rank": r + 1, "score": 5.0 - r, "retriever": "bm25"}
                for r, d in enumerate(pool)
            ]
            out.write(
                json.dumps({"qid": f"q{q}", "query": text, "positives": [f"d{q}"], "negatives": negs}) + "\n"
            )
    return root, negatives


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(model, dataset, negatives, float32 cache, bf16 cache), built once."""
    import ranker.cli

    root = tmp_path_factory.mktemp("states")
    model = make_tiny(root / "bert", "bert")
    data, negatives = _write_dataset(root / "data")
    caches = {}
    for dtype in ("float32", "bfloat16"):
        out = root / f"cache-{dtype}"
        argv = ["-q", "cache-states", str(data), "--model", str(model), "--max-length", str(MAX_LENGTH)]
        rc = ranker.cli.main([*argv, "--dtype", dtype, "--batch-size", "5", "--out", str(out)])
        assert rc == 0
        caches[dtype] = out
    return model, data, negatives, caches["float32"], caches["bfloat16"]


def _texts(data: Path) -> tuple[list[str], list[str]]:
    docs = [json.loads(line)["text"] for line in (data / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").open()]
    return queries, docs


def _pair(model: Path, cache: Path, pooling: str, seed: int = 3, **kw) -> tuple[BiEncoder, BiEncoder]:
    """The same bi-encoder twice (same pooler weights): a live frozen copy and a cached one."""
    torch.manual_seed(seed)
    live = load_biencoder(str(model), pooling=pooling, max_length=MAX_LENGTH)
    torch.manual_seed(seed)
    cached = load_biencoder(str(model), pooling=pooling, max_length=MAX_LENGTH)
    cached.load_state_dict(live.state_dict())
    if kw.get("adapter"):
        live.add_adapter()
        cached.add_adapter()
    freeze_backbone(live, kw.get("freeze", "all"))
    freeze_backbone(cached, kw.get("freeze", "all"), str(cache))
    return live.eval(), cached.eval()


@pytest.mark.parametrize("pooling", sorted(POOLERS))
def test_every_pooler_gives_the_live_embeddings_losses_and_gradients(setup, pooling):
    model, data, _, cache, _ = setup
    live, cached = _pair(model, cache, pooling, adapter=True)
    queries, docs = _texts(data)
    assert_same_outputs(cached.encode_corpus(docs, batch_size=7), live.encode_corpus(docs, batch_size=7))
    assert_same_outputs(cached.encode_queries(queries), live.encode_queries(queries))
    # one InfoNCE step's loss and every trainable gradient match
    losses = []
    for m in (live, cached):
        q = m.embed_queries(m.tokenize_queries(queries[:4]))
        d = m.embed_docs(m.tokenize_docs(docs[:4]))
        loss = torch.nn.functional.cross_entropy(20 * q @ d.T, torch.arange(4))
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)
    trainable_live = {
        n.split("encoder.", 1)[1]: p.grad for n, p in live.named_parameters() if p.requires_grad
    }
    trainable_cached = {
        n.split("encoder.", 1)[1]: p.grad for n, p in cached.named_parameters() if p.requires_grad
    }
    assert trainable_live.keys() == trainable_cached.keys()
    assert any(name.startswith("adapter") for name in trainable_live)
    for name, grad in trainable_live.items():
        other = trainable_cached[name]
        assert grad is not None and other is not None, name
        np.testing.assert_allclose(other.numpy(), grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    # nothing below the frozen boundary trains or receives a gradient
    for m in (live, cached):
        assert not any(
            p.requires_grad or p.grad is not None for p in m.query_encoder.backbone.base_model.parameters()
        )


def test_bfloat16_cache_is_close_to_the_live_float32_model(setup):
    model, data, _, _, cache16 = setup
    live, cached = _pair(model, cache16, "mltp")
    _queries, docs = _texts(data)
    a, b = live.encode_corpus(docs), cached.encode_corpus(docs)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999  # bf16 keeps ~3 significant digits per state
    assert not np.array_equal(a, b)  # the cache really is bf16


def test_freeze_bottom_trains_the_top_layers_live_on_cached_states(setup):
    model, data, _, cache, _ = setup
    live, cached = _pair(model, cache, "mean", freeze={"bottom": 1})
    assert isinstance(cached.query_encoder.backbone, CachedBackbone)
    _queries, docs = _texts(data)
    assert_same_outputs(cached.encode_corpus(docs), live.encode_corpus(docs))
    for m in (live, cached):
        e = m.embed_docs(m.tokenize_docs(docs[:5]))
        (e**2).sum().backward()
    names = {n: p for n, p in cached.query_encoder.backbone.base_model.named_parameters()}
    live_params = dict(live.query_encoder.backbone.base_model.named_parameters())
    for name, param in names.items():
        trains = name.startswith("encoder.layer.1.")
        assert param.requires_grad == trains, name
        assert (param.grad is not None) == trains, name
        if trains:
            np.testing.assert_allclose(
                param.grad.numpy(), live_params[name].grad.numpy(), rtol=1e-4, atol=1e-6
            )


def test_a_cache_from_another_model_is_refused_naming_both_sides(setup, tmp_path, cli):
    _model, data, _, cache, _ = setup
    other = make_tiny(tmp_path / "other", "bert", seed=1)
    with pytest.raises(InputError, match=r"weights: cache has '[0-9a-f]+', this run has '[0-9a-f]+'"):
        freeze_backbone(load_biencoder(str(other), max_length=MAX_LENGTH), "all", str(cache))
    rc, _out, err = cli(
        "index",
        data,
        "--retriever",
        "dense",
        "--model",
        other,
        "--states",
        cache,
        "--index",
        tmp_path / "idx",
    )
    errors = [line for line in err.splitlines() if line.startswith("ranker index: error")]
    assert rc == 2 and len(errors) == 1 and "weights: cache has" in errors[0], err
    assert not (tmp_path / "idx").exists()


def test_texts_outside_the_cache_and_other_lengths_are_refused(setup):
    model, _data, _, cache, _ = setup
    m = freeze_backbone(load_biencoder(str(model), max_length=MAX_LENGTH), "all", str(cache))
    with pytest.raises(InputError, match="text not in the states cache"):
        m.encode_queries(["cats that were never cached"])
    with pytest.raises(InputError, match="differs from the states cache's 12"):
        m.query_encoder.max_length = 8


def test_cache_records_layers_lengths_and_token_ids(setup):
    model, data, _, cache, _ = setup
    states = StatesCache(cache)
    assert states.layers == [0, 1, 2] and states.max_length == MAX_LENGTH
    backbone = load_biencoder(str(model), max_length=MAX_LENGTH).query_encoder.backbone
    queries, docs = _texts(data)
    expected = backbone.tokenize(docs, MAX_LENGTH, pad=False)["input_ids"]
    assert states.token_ids(states.locate(docs)) == expected
    assert len(states) == len(set(queries) | set(docs))


def test_interrupted_caching_resumes_to_the_same_files(setup, tmp_path):
    model, data, _, _, _ = setup
    backbone = load_biencoder(str(model), max_length=MAX_LENGTH).eval().query_encoder.backbone
    _, docs = _texts(data)
    items = [(f"d{i}", t) for i, t in enumerate(docs)]
    calls = {"n": 0}

    def forward(features, fail_after=None):
        calls["n"] += 1
        if fail_after is not None and calls["n"] > fail_after:
            raise KeyboardInterrupt
        return backbone(features, all_layers=True)

    def writer(fail_after=None):
        return StateWriter(
            forward=lambda f: forward(f, fail_after),
            tokenize=lambda texts: backbone.tokenize(texts, MAX_LENGTH, pad=False)["input_ids"],
            pad=backbone.pad,
            layers=[0, 2],
            hidden=backbone.hidden_size,
            dtype="float32",
            batch_size=4,
            block_size=8,
        )

    with pytest.raises(KeyboardInterrupt):
        writer(fail_after=3).write(tmp_path / "a", items, show_progress=False)
    progress = json.loads(next((tmp_path / "a").glob("shard-*/progress.json")).read_text())
    assert 0 < progress["done"] < len(items) and not progress["complete"]
    calls["n"] = 0
    writer().write(tmp_path / "a", items, show_progress=False)
    assert calls["n"] < len(items) // 4 + 2  # resumed, not restarted
    writer().write(tmp_path / "b", items, show_progress=False)
    for name in ("layer-00.f32", "layer-02.f32", "input_ids.i32", "offsets.i64", "keys.u64"):
        a = next((tmp_path / "a").glob(f"shard-*/{name}")).read_bytes()
        assert a == next((tmp_path / "b").glob(f"shard-*/{name}")).read_bytes(), name


def test_trained_from_the_cache_saves_a_normal_model_that_indexes_like_live(setup, tmp_path, cli):
    from sentence_transformers import SentenceTransformer

    from ranker.cli.retrieval import _stored_vectors

    model, data, _, cache, _ = setup
    path = _train_config(tmp_path, setup, pooling="mltp", loss="infonce", n_negatives=1, max_steps=12)
    rc, _, err = cli("-q", "train", path)
    assert rc == 0, err
    losses = [float(r.split(",")[2]) for r in (tmp_path / "run/metrics.csv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]  # the pooler and adapter learned
    saved = tmp_path / "run/model"
    loaded = BiEncoder.load(saved)
    _queries, docs = _texts(data)
    ours = loaded.encode_corpus(docs)
    untrained = load_biencoder(str(model), pooling="mltp", max_length=MAX_LENGTH).encode_corpus(docs)
    assert not np.allclose(ours, untrained, atol=1e-3)
    st = SentenceTransformer(str(saved), trust_remote_code=True, device="cpu")
    assert_same_outputs(st.encode(docs, normalize_embeddings=False), ours)
    # float32: the cache holds float32 states, so the live index must encode in float32 too
    live_argv = ["index", data, "--retriever", "dense", "--model", saved, "--dtype", "float32"]
    rc, _, err = cli(*live_argv, "--index", tmp_path / "live")
    assert rc == 0, err
    argv = ["index", data, "--retriever", "dense", "--model", saved, "--states", cache]
    rc, _, err = cli(*argv, "--index", tmp_path / "cached")
    assert rc == 0, err
    _, ids_live, live = _stored_vectors(tmp_path / "live")
    _, ids_cached, cached = _stored_vectors(tmp_path / "cached")
    assert ids_live == ids_cached
    assert_same_outputs(np.asarray(cached), np.asarray(live))
    rc, _, err = cli(
        "search", data, "--split", "train", "--index", tmp_path / "cached", "--out", tmp_path / "r.trec"
    )
    assert rc == 0, err


def test_patience_stops_training_early_and_keeps_the_best(setup, tmp_path, cli):
    path = _train_config(
        tmp_path,
        setup,
        pooling="mean",
        loss="infonce",
        n_negatives=1,
        max_steps=400,
        lr=0.5,  # far too high: the dev score stops improving quickly
        eval_split="train",
        eval_every=2,
        patience=2,
    )
    rc, _, err = cli("-q", "train", path)
    assert rc == 0, err
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    evals = [json.loads(line) for line in (tmp_path / "run/eval.jsonl").open()]
    assert summary["stopped_early"] and summary["steps"] < 400
    best = max(e["ndcg@10"] for e in evals)
    assert summary["best"]["value"] == best
    assert [e["step"] for e in evals][-1] == summary["steps"]
    later = [e for e in evals if e["step"] > summary["best"]["step"]]
    assert len(later) == 2 and all(e["ndcg@10"] <= best for e in later)
    assert (tmp_path / "run/best").is_dir()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backbone": {"states": "x"}}, "needs backbone.freeze"),
        ({"model_type": "cross", "loss": "listwise", "backbone": {"freeze": "all"}}, "for bi-encoders"),
        ({"patience": 3}, "needs eval_split and eval_every"),
        ({"backbone": {"freeze": {"top": 2}}}, "backbone.freeze"),
    ],
)
def test_backbone_config_errors_are_one_line(values, message):
    from ranker.training.config import build_config

    base = {"dataset": "d", "negatives": "n", "output_dir": "o", "model": "m", "model_type": "bi"}
    with pytest.raises(InputError, match=message):
        build_config({**base, **values})


def _train_config(tmp_path: Path, setup, **extra) -> Path:
    model, data, negatives, cache, _ = setup
    config = {
        "dataset": str(data),
        "negatives": str(negatives),
        "output_dir": str(tmp_path / "run"),
        "model_type": "bi",
        "model": str(model),
        "max_length": MAX_LENGTH,
        "loss": "listwise",
        "n_negatives": 2,
        "batch_size": 4,
        "max_steps": 6,
        "lr": 5e-3,
        "warmup_steps": 0,
        "save_every": 0,
        "adapter": True,
        "backbone": {"freeze": "all", "states": str(cache)},
        **extra,
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "cfg.yaml"


def test_cet_text_selection_model_trains_on_the_cache(setup, tmp_path, cli):
    from ranker.models import load_biencoder as load

    model, data, _, cache, _ = setup
    path = _train_config(tmp_path, setup, selection="text", selection_states=str(cache), selection_lr=0.05)
    rc, _, err = cli("-q", "train", path)
    assert rc == 0, err
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert float(rows[-1].split(",")[header.index("selection_loss")]) > 0
    weights = [json.loads(line) for line in (tmp_path / "run/weights.jsonl").open()]
    assert len({round(w["weight"], 6) for w in weights}) > 1  # S's scores differ per document
    selection = BiEncoder.load(tmp_path / "run/selection")
    assert selection.query_encoder.adapter is not None
    _, docs = _texts(data)
    start = load(str(model), max_length=MAX_LENGTH)
    start.add_adapter()  # S starts as mean pooling with an identity adapter
    assert not np.allclose(selection.encode_corpus(docs), start.encode_corpus(docs), atol=1e-4)
    saved = selection.query_encoder.backbone.base_model.state_dict()
    for name, value in start.query_encoder.backbone.base_model.state_dict().items():
        if not name.startswith("pooler."):  # BERT's unused head: random in this tiny checkpoint
            assert torch.equal(saved[name], value), name  # the frozen backbone is saved untouched


def test_pooling_search_runs_on_cached_states(setup, tmp_path):
    from ranker.search.run import pooling_search

    model, data, negatives, cache, _ = setup
    config = {
        "train": {
            "dataset": str(data),
            "negatives": str(negatives),
            "output_dir": str(tmp_path / "search"),
            "model": str(model),
            "model_type": "bi",
            "loss": "infonce",
            "batch_size": 3,
            "n_negatives": 1,
            "lr": 1e-2,
            "max_length": MAX_LENGTH,
            "device": "cpu",
            "backbone": {"freeze": "all", "states": str(cache)},
        },
        "space": {"pooling": ["mean", "mltp"]},
        "search": {"supernets": 2, "steps": 3, "dev_split": "train", "dev_fraction": 0.34},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    result = pooling_search(tmp_path / "s.yaml")
    assert len(result["mixture"]["scores"]) == 2 and all(0 <= s <= 1 for s in result["mixture"]["scores"])
    assert sum(map(sum, result["mixture"]["counts"])) == 3


def test_a_decoder_caches_with_freeze_all_and_refuses_freeze_bottom(setup, tiny_llama, tmp_path, cli):
    _, data, _, _, _ = setup
    rc, _, err = cli(
        "-q",
        "cache-states",
        data,
        "--model",
        tiny_llama,
        "--max-length",
        MAX_LENGTH,
        "--layers",
        "-1",
        "--out",
        tmp_path / "c",
    )
    assert rc == 0, err
    live, cached = _pair(tiny_llama, tmp_path / "c", "last")
    _queries, docs = _texts(data)
    assert_same_outputs(cached.encode_corpus(docs), live.encode_corpus(docs))
    with pytest.raises(InputError, match="needs a BERT-family encoder"):
        freeze_backbone(
            load_biencoder(str(tiny_llama), max_length=MAX_LENGTH), {"bottom": 1}, str(tmp_path / "c")
        )
    with pytest.raises(InputError, match=r"hidden state 1 is not cached \(cached: \[2\]\)"):
        _pair(tiny_llama, tmp_path / "c", "mltp")[1].encode_corpus(docs)


def test_two_ranks_write_their_own_shards_and_read_as_one(setup, tmp_path, cli, monkeypatch):
    model, data, _, cache, _ = setup
    argv = ["-q", "cache-states", data, "--model", model, "--max-length", MAX_LENGTH, "--out", tmp_path / "c"]
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        rc, _, err = cli(*argv)
        assert rc == 0, err
    assert len(list((tmp_path / "c" / "corpus").glob("shard-*-of-00002"))) == 2
    from ranker.cli import build_parser, outputs_of

    parsed = build_parser().parse_args([str(a) for a in argv[1:]])
    assert outputs_of(parsed) == []  # rank 1 writes its shard beside rank 0, which holds the lock
    monkeypatch.setenv("RANK", "0")
    assert outputs_of(parsed) == [str(tmp_path / "c")]
    _queries, docs = _texts(data)
    one, two = StatesCache(cache), StatesCache(tmp_path / "c")
    assert len(one) == len(two)
    for layer in one.layers:
        a = one.gather(layer, one.locate(docs), MAX_LENGTH, left=False)
        b = two.gather(layer, two.locate(docs), MAX_LENGTH, left=False)
        assert_same_outputs(b.numpy(), a.numpy())  # other batches, other kernel blocking


def test_a_text_selection_model_reads_r_s_cache_unless_it_names_another_model(setup, tmp_path):
    from ranker.training.build import build_selection
    from ranker.training.config import load_config

    model, _, _, cache, _ = setup
    config = load_config(_train_config(tmp_path, setup, selection="text"))
    selection = build_selection(config, [])
    assert isinstance(selection.query_encoder.backbone, CachedBackbone)
    assert selection.query_encoder.backbone.cache.directory == Path(cache)
    other = load_config(_train_config(tmp_path, setup, selection="text", selection_model=str(model)))
    assert not hasattr(build_selection(other, []), "query_encoder")  # a cross-encoder S, as asked
