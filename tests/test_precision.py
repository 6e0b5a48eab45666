"""Encoding precision: ``--dtype auto`` resolution, bf16 weights, and what indexes record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ranker.precision as precision
from ranker.precision import (
    FLOAT32,
    Precision,
    apply_precision,
    bf16_units,
    cpu_flags,
    recorded_precision,
    resolve_precision,
)
from retrievers.errors import InputError

BF16_WEIGHTS = Precision("bfloat16", "weights")
BF16_OV = Precision("bfloat16", "openvino")
FP32_OV = Precision("float32", "openvino")


def test_cpu_flags_and_bf16_units(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    )
    assert cpu_flags(info) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
    assert bf16_units({"amx_bf16", "avx512_bf16"}) == "AMX"
    assert bf16_units({"avx512_bf16"}) == "AVX512-BF16"
    assert bf16_units({"avx512f", "avx2"}) is None


@pytest.mark.parametrize(
    ("flags", "with_openvino", "without"),
    [
        ({"avx512f", "amx_bf16", "amx_tile"}, BF16_OV, BF16_WEIGHTS),
        ({"avx512f", "avx512_bf16"}, BF16_OV, BF16_WEIGHTS),
        ({"avx2", "avx512f"}, FP32_OV, FLOAT32),  # bf16 would be emulated, slower than float32
        (set(), FP32_OV, FLOAT32),
    ],
)
def test_auto_follows_the_cpu(flags, with_openvino, without):
    assert resolve_precision("auto", "cpu", flags, openvino=True) == with_openvino
    assert resolve_precision(None, "cpu", flags, openvino=True) == with_openvino
    # where OpenVINO cannot convert a model, auto falls back to the PyTorch path
    assert resolve_precision("auto", "cpu", flags, openvino=True).fallback == without
    assert resolve_precision("auto", "cpu", flags, openvino=False) == without


def test_auto_reads_proc_cpuinfo_and_finds_openvino_when_not_told(monkeypatch):
    import ranker.encoders.openvino as ov

    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    assert resolve_precision("auto") == BF16_OV  # openvino is a dependency: installed
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    assert resolve_precision("auto") == FP32_OV
    monkeypatch.setattr(ov, "available", lambda: False)
    assert resolve_precision("auto") == FLOAT32


def test_auto_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda", set()) == BF16_WEIGHTS
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda", {"amx_bf16"}) == FLOAT32
    with pytest.raises(InputError, match="bfloat16-openvino runs on the CPU, not on cuda"):
        resolve_precision("bfloat16-openvino", "cuda")


def test_explicit_choices_ignore_the_cpu():
    for flags in (set(), {"amx_bf16"}):
        assert resolve_precision("float32", "cpu", flags) == FLOAT32
        assert resolve_precision("bfloat16", "cpu", flags) == BF16_WEIGHTS
        assert resolve_precision("bfloat16-autocast", "cpu", flags) == Precision("bfloat16", "autocast")
        assert resolve_precision("bfloat16-openvino", "cpu", flags) == BF16_OV
        assert resolve_precision("float32-openvino", "cpu", flags) == FP32_OV
    assert resolve_precision("float16-autocast").record() == {"dtype": "float16", "path": "autocast"}
    for name in ("float32", "bfloat16", "bfloat16-autocast", "float16-autocast", "bfloat16-openvino"):
        assert resolve_precision(name).name == name
    with pytest.raises(InputError, match="--dtype must be one of"):
        resolve_precision("int8")
    with pytest.raises(InputError, match="--dtype must be one of"):
        resolve_precision("float16-openvino")
    with pytest.raises(ValueError, match="does not go with"):
        Precision("bfloat16", "float32")
    with pytest.raises(ValueError, match="OpenVINO computes in bfloat16 or float32"):
        Precision("float16", "openvino")


def test_recorded_precision_reads_old_and_new_records():
    assert recorded_precision(None) == FLOAT32
    assert recorded_precision({"attention": "causal"}) == FLOAT32
    # before bf16 weights, a recorded bfloat16 was autocast
    assert recorded_precision({"dtype": "bfloat16"}) == Precision("bfloat16", "autocast")
    assert recorded_precision({"dtype": "bfloat16", "path": "weights"}) == BF16_WEIGHTS
    assert recorded_precision({"dtype": "float32", "path": "float32"}) == FLOAT32
    assert recorded_precision({"dtype": "bfloat16", "path": "openvino"}) == BF16_OV
    with pytest.raises(InputError, match="idx: unreadable encoding precision"):
        recorded_precision({"dtype": "bfloat16", "path": "onnx"}, "idx")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


TEXTS = [
    "cats purr in the big red house",
    "dogs bark",
    "the study results show a small effect of the gene on patients in one trial",
    "fish swim in blue water and birds fly to the green tree",
] * 3


@pytest.mark.parametrize("pooling", ["mean", "latent"])
def test_bf16_weights_are_close_to_fp32(tiny_bert, pooling):
    from ranker.models import BiEncoder

    torch.manual_seed(0)
    model = BiEncoder.from_pretrained(tiny_bert, pooling=pooling)
    reference = model.encode(TEXTS, batch_size=5)
    apply_precision(model, BF16_WEIGHTS)
    backbone, pooler = model.doc_encoder.backbone, model.doc_encoder.pooler
    assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in pooler.parameters()} <= {torch.float32}  # poolers stay float32
    assert model.doc_encoder.dtype is None  # no autocast on top of bf16 weights
    bf16 = model.encode(TEXTS, batch_size=5)
    assert bf16.dtype == np.float32
    cosine = _cosines(reference, bf16)
    assert cosine.min() > 0.999, cosine
    assert not np.array_equal(reference, bf16)  # it really computed in bf16
    apply_precision(model, FLOAT32)
    np.testing.assert_allclose(model.encode(TEXTS, batch_size=5), reference, rtol=0, atol=1e-2)


@pytest.mark.parametrize(
    ("model", "pooling", "attention"),
    [
        ("tiny_bert", "mean", None),
        ("tiny_bert", "layerwise", None),  # every layer's states come out of OpenVINO
        ("tiny_llama", "last", None),  # causal, left padding: the last token is the text's
        ("tiny_llama", "mean", "bidirectional"),
    ],
)
def test_openvino_reproduces_pytorch(request, model, pooling, attention):
    """Float32 through OpenVINO matches PyTorch's float32 on batches padded to different
    lengths (the padding mask is honoured, not traced away); bf16 stays close."""
    from ranker.models import BiEncoder

    folder = request.getfixturevalue(model)
    options = {"attention": attention} if attention else {}
    torch.manual_seed(0)
    model = BiEncoder.from_pretrained(folder, pooling=pooling, **options)
    reference = model.encode(TEXTS, batch_size=5)
    apply_precision(model, FP32_OV)
    backbone = model.doc_encoder.backbone
    assert backbone.runtime is not None and {p.dtype for p in backbone.parameters()} == {torch.float32}
    np.testing.assert_allclose(model.encode(TEXTS, batch_size=5), reference, rtol=0, atol=1e-4)
    single = model.encode(TEXTS[2:3], batch_size=1)  # another shape, no padding at all
    np.testing.assert_allclose(single, reference[2:3], rtol=0, atol=1e-4)
    apply_precision(model, BF16_OV)
    bf16 = model.encode(TEXTS, batch_size=5)
    assert not np.array_equal(bf16, reference)  # it really computed in bf16
    assert _cosines(reference, bf16).min() > 0.999
    apply_precision(model, FLOAT32)  # back to PyTorch
    assert backbone.runtime is None
    np.testing.assert_allclose(model.encode(TEXTS, batch_size=5), reference, rtol=0, atol=1e-6)


def test_openvino_is_for_inference_only(tiny_bert):
    """Forwards with gradients run in PyTorch; training mode drops the compiled copy, whose
    weights would go stale."""
    from ranker.models import BiEncoder

    model = BiEncoder.from_pretrained(tiny_bert)
    assert apply_precision(model, FP32_OV) == FP32_OV
    features = model.doc_encoder.tokenize(TEXTS[:2])
    with torch.no_grad():
        assert not model.doc_encoder(features).requires_grad
    vectors = model.doc_encoder(features)  # gradients on: PyTorch
    assert vectors.requires_grad
    vectors.sum().backward()
    assert any(p.grad is not None for p in model.doc_encoder.backbone.parameters())
    model.train()
    assert model.doc_encoder.backbone.runtime is None


def test_openvino_converts_without_usage_reports(tiny_bert, monkeypatch):
    """OpenVINO's converter reports usage to Google Analytics unless opted out; ours never
    does (the converter's own no-op stub stands in)."""
    import openvino_telemetry

    from ranker.models import BiEncoder

    sent = []
    monkeypatch.setattr(openvino_telemetry.Telemetry, "send_event", lambda *a, **k: sent.append(a))
    monkeypatch.setattr(openvino_telemetry.Telemetry, "start_session", lambda *a, **k: sent.append(a))
    model = BiEncoder.from_pretrained(tiny_bert)
    apply_precision(model, BF16_OV)
    model.encode(TEXTS[:2])
    assert sent == []
    from openvino.tools.ovc import convert_impl

    assert convert_impl.tm is openvino_telemetry  # restored after the conversion


def test_openvino_missing_is_one_clear_error(tiny_bert, monkeypatch):
    import ranker.encoders.openvino as ov
    from ranker.models import BiEncoder

    monkeypatch.setattr(ov, "available", lambda: False)
    with pytest.raises(InputError, match="--dtype bfloat16-openvino needs OpenVINO: pip install openvino"):
        apply_precision(BiEncoder.from_pretrained(tiny_bert), BF16_OV)


def test_openvino_failing_to_convert_falls_back_under_auto_and_errs_when_asked(
    tiny_bert, monkeypatch, caplog
):
    """A model OpenVINO cannot trace: ``auto`` encodes it in its PyTorch path (and says so;
    the precision returned, which indexes record, is that path); an explicit
    ``--dtype ...-openvino`` is one clear error."""
    import logging

    import openvino

    from ranker.models import BiEncoder

    def refuse(*args, **kwargs):  # as OpenVINO's converter fails: root logger left at ERROR
        logging.getLogger().setLevel(logging.ERROR)
        raise RuntimeError("Couldn't get TorchScript module by tracing.\nmore detail")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    root_level = logging.getLogger().level
    model = BiEncoder.from_pretrained(tiny_bert)
    reference = model.encode(TEXTS)
    auto = resolve_precision("auto", "cpu", {"avx512_bf16"}, openvino=True)
    with caplog.at_level("WARNING", logger="ranker.precision"):
        assert apply_precision(model, auto) == BF16_WEIGHTS
    assert "OpenVINO could not convert BertModel (Couldn't get TorchScript module by tracing.)" in caplog.text
    assert logging.getLogger().level == root_level  # the converter's logging setting undone
    assert model.doc_encoder.backbone.runtime is None
    assert {p.dtype for p in model.doc_encoder.backbone.parameters()} == {torch.bfloat16}
    assert _cosines(reference, model.encode(TEXTS)).min() > 0.999
    with pytest.raises(InputError, match=r"--dtype float32-openvino: OpenVINO could not convert BertModel"):
        apply_precision(BiEncoder.from_pretrained(tiny_bert), FP32_OV)


def test_autocast_path_keeps_float32_weights(tiny_bert):
    from ranker.models import BiEncoder

    model = BiEncoder.from_pretrained(tiny_bert)
    reference = model.encode(TEXTS)
    apply_precision(model, Precision("bfloat16", "autocast"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.query_encoder.dtype is torch.bfloat16
    assert _cosines(reference, model.encode(TEXTS)).min() > 0.999


def _index(cli, tiny_beir, tiny_bert, folder, *extra):
    rc, _, err = cli(
        "index", tiny_beir, "--retriever", "dense", "--model", tiny_bert, "--index", folder, *extra
    )
    assert rc == 0, err
    return json.loads((folder / "ranker-index.json").read_text())["encoder_options"]


@pytest.fixture()
def loads(monkeypatch):
    """Every precision ``load_encoder`` is called with."""
    import ranker.cli.retrieval as retrieval

    real, seen = retrieval.load_encoder, []

    def spy(*args, **kwargs):
        seen.append(args[5] if len(args) > 5 else kwargs.get("precision", FLOAT32))
        return real(*args, **kwargs)

    monkeypatch.setattr(retrieval, "load_encoder", spy)
    return seen


@pytest.mark.parametrize(("flags", "expected"), [({"avx512_bf16"}, BF16_OV), ({"avx2"}, FP32_OV)])
def test_index_records_auto_and_search_encodes_queries_alike(
    tiny_bert, tiny_beir, tmp_path, cli, monkeypatch, loads, flags, expected
):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    options = _index(cli, tiny_beir, tiny_bert, tmp_path / "idx")  # --dtype auto by default
    assert options == expected.record()
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16", "amx_bf16"})  # another CPU
    out = tmp_path / "run.trec"
    assert cli("search", tiny_beir, "--index", tmp_path / "idx", "--out", out)[0] == 0
    assert loads == [expected, expected]  # the index's precision, not this CPU's auto
    assert cli("search", tiny_beir, "--index", tmp_path / "idx", "--out", out, "--dtype", "float32")[0] == 0
    assert loads[-1] == FLOAT32  # unless asked for


def test_old_bf16_index_is_searched_with_autocast(tiny_bert, tiny_beir, tmp_path, cli, loads):
    folder = tmp_path / "idx"
    _index(cli, tiny_beir, tiny_bert, folder, "--dtype", "bfloat16-autocast")
    meta_path = folder / "ranker-index.json"
    meta = json.loads(meta_path.read_text())
    meta["encoder_options"] = {"dtype": "bfloat16"}  # as earlier releases wrote it
    meta_path.write_text(json.dumps(meta))
    assert cli("search", tiny_beir, "--index", folder, "--out", tmp_path / "run.trec")[0] == 0
    assert loads[-1] == Precision("bfloat16", "autocast")


def test_encode_records_precision_and_index_from_embeddings_keeps_it(tiny_bert, tiny_beir, tmp_path, cli):
    out = tmp_path / "enc"
    rc, _, err = cli(
        "encode", tiny_beir, "--model", tiny_bert, "--out", out, "--dtype", "bfloat16", "--no-progress"
    )
    assert rc == 0, err
    config = json.loads((out / "encode_config.json").read_text())
    assert (config["dtype"], config["path"]) == ("bfloat16", "weights")
    rc, _, err = cli("index", "--retriever", "dense", "--embeddings", out, "--index", tmp_path / "idx")
    assert rc == 0, err
    options = json.loads((tmp_path / "idx" / "ranker-index.json").read_text())["encoder_options"]
    assert options == BF16_WEIGHTS.record()


def test_bad_dtype_is_one_clear_line(tiny_beir, tmp_path, cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli("index", tiny_beir, "--retriever", "dense", "--model", "m", "--index", tmp_path / "idx",
            "--dtype", "int8")  # fmt: skip
    assert exit_.value.code == 2
    assert "argument --dtype: invalid choice: 'int8' (choose from 'auto'" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize(
    ("setting", "device", "flags", "expected"),
    [
        ("native", "cpu", {"avx512_bf16"}, True),
        ("native", "cpu", {"amx_bf16", "avx512f"}, True),
        ("native", "cpu", {"avx2", "avx512f"}, False),
        ("native", "cuda", set(), True),
        ("auto", "cpu", {"avx512_bf16"}, False),
        ("auto", "cuda", set(), True),
        ("bf16", "cpu", set(), True),
        ("fp32", "cuda", {"avx512_bf16"}, False),
    ],
)
def test_training_precision_native_follows_the_cpu(setting, device, flags, expected):
    """Training's ``precision: native`` autocasts to bf16 only where bf16 is native."""
    from ranker.training.config import TrainConfig

    config = TrainConfig(precision=setting)
    assert config.bf16_on(device, cpu_flags=flags) is expected


def test_index_records_the_fallback_it_encoded_in(cli, tiny_beir, tiny_bert, tmp_path, monkeypatch):
    """``ranker index`` with ``auto`` on a model OpenVINO cannot convert records the PyTorch
    path it fell back to, so that search encodes queries that way too."""
    import ranker.cli.retrieval as retrieval
    import ranker.encoders.openvino as ov

    def refuse(self, names, all_layers):
        raise RuntimeError("unordered_map::at")

    monkeypatch.setattr(ov.OpenVINOForward, "_compile", refuse)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    retrieval.load_encoder.cache_clear()
    try:
        assert _index(cli, tiny_beir, tiny_bert, tmp_path / "idx") == {"dtype": "bfloat16", "path": "weights"}
    finally:
        retrieval.load_encoder.cache_clear()
