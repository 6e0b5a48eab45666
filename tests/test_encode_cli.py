"""``ranker encode``: output layout, resume after interruption, torchrun shards."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from ranker.cli import encode as encode_cli
from ranker.encoders import read_embeddings
from ranker.encoders.corpus import shard_range
from ranker.models import load_biencoder
from retrievers.errors import InputError
from retrievers.io.dataset import load_dataset


def run_encode(argv: list[str]) -> int:
    """``ranker encode`` in float32 (compared with ``encode_corpus``) unless ``--dtype`` is given."""
    parser = argparse.ArgumentParser()
    encode_cli.register(parser.add_subparsers())
    args = parser.parse_args(["encode", *argv, *([] if "--dtype" in argv else ["--dtype", "float32"])])
    return args.func(args)


def expected_vectors(tiny_beir, model_path):
    docs = list(load_dataset(tiny_beir).docs())
    model = load_biencoder(model_path)
    return [d.id for d in docs], model.encode_corpus([d.contents for d in docs])


def test_encode_writes_ids_and_vectors_in_corpus_order(tiny_beir, tiny_bert, tmp_path):
    out = tmp_path / "emb"
    assert (
        run_encode(
            [
                str(tiny_beir),
                "--model",
                str(tiny_bert),
                "--out",
                str(out),
                "--batch-size",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    ids, vectors = read_embeddings(out)
    want_ids, want = expected_vectors(tiny_beir, tiny_bert)
    assert ids == want_ids == ["d1", "d2", "d3", "d4"]
    assert isinstance(vectors, np.memmap) and vectors.shape == (4, 32)
    np.testing.assert_allclose(vectors, want, atol=1e-5)
    # Rerunning a complete encoding is a no-op; other settings are refused.
    assert run_encode([str(tiny_beir), "--model", str(tiny_bert), "--out", str(out), "--no-progress"]) == 0
    with pytest.raises(InputError, match=r"different settings.*pooling"):
        run_encode([str(tiny_beir), "--model", str(tiny_bert), "--pooling", "max", "--out", str(out)])


class Interrupted(Exception):
    pass


def test_interrupted_encoding_resumes_without_redoing_blocks(tiny_beir, tiny_bert, tmp_path, monkeypatch):
    from ranker.encoders.encoder import Encoder

    original = Encoder.encode
    calls: list[int] = []

    def flaky(self, texts, **kw):
        calls.append(len(texts))
        if len(calls) == 3:
            raise Interrupted
        return original(self, texts, **kw)

    monkeypatch.setattr(Encoder, "encode", flaky)
    out = tmp_path / "emb"
    argv = [
        str(tiny_beir),
        "--model",
        str(tiny_bert),
        "--out",
        str(out),
        "--block-size",
        "1",
        "--no-progress",
    ]
    with pytest.raises(Interrupted):
        run_encode(argv)
    with pytest.raises(InputError, match="incomplete"):
        read_embeddings(out)
    calls.clear()
    assert run_encode(argv) == 0
    assert calls == [1, 1]  # only documents 3 and 4 were encoded again
    monkeypatch.undo()
    _ids, vectors = read_embeddings(out)
    np.testing.assert_allclose(vectors, expected_vectors(tiny_beir, tiny_bert)[1], atol=1e-5)


def test_torchrun_shards_read_back_as_one(tiny_beir, tiny_bert, tmp_path, monkeypatch):
    out = tmp_path / "emb"
    argv = [str(tiny_beir), "--model", str(tiny_bert), "--out", str(out), "--no-progress"]
    monkeypatch.setenv("WORLD_SIZE", "3")
    for rank in (2, 0):
        monkeypatch.setenv("RANK", str(rank))
        run_encode(argv)
    with pytest.raises(InputError, match="shard 1 of 3 is missing"):
        read_embeddings(out)
    monkeypatch.setenv("RANK", "1")
    run_encode(argv)
    ids, vectors = read_embeddings(out)
    want_ids, want = expected_vectors(tiny_beir, tiny_bert)
    assert ids == want_ids and not isinstance(vectors, np.memmap)
    np.testing.assert_allclose(vectors, want, atol=1e-5)
    assert [shard_range(4, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 4)]


def test_refuses_a_folder_with_other_files(tiny_beir, tiny_bert, tmp_path):
    out = tmp_path / "emb"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="other files"):
        run_encode([str(tiny_beir), "--model", str(tiny_bert), "--out", str(out)])
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="must be positive"):
        run_encode([str(tiny_beir), "--model", str(tiny_bert), "--out", str(out), "--batch-size", "0"])
