"""PoNet, pyramid and bilinear poolers: what each computes (against direct loop versions), and
that each trains from a config and reloads to the same embeddings, float32 rounding aside
(BiEncoder.load, SentenceTransformer).

The shared pooler contract (masking, padding side, companions, all-padding rows, gradients,
config round-trip, half precision) runs over every registered pooler in test_pooling.py.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from tiny_encoders import assert_same_outputs

from ranker.models import BiEncoder
from ranker.pooling import build_pooler
from ranker.pooling.ponet import segment_ids, window_max
from ranker.pooling.pyramid import adaptive_bins

HIDDEN, LAYERS, HEADS = 16, 2, 4
NEW = ["ponet", "pyramid", "bilinear"]
TEXTS = ["cats purr", "the big dogs bark at the small cats in the house", "fish swim", "birds"]


def make(mode: str, **kw):
    torch.manual_seed(0)
    return build_pooler(mode, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS, **kw).eval()


def left_padded(x: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, n, H) states left-padded by ``pad`` junk positions, and the mask."""
    n = x.shape[1]
    junk = torch.full((1, pad, x.shape[2]), 7e3)
    return torch.cat([junk, x], 1), torch.cat([torch.zeros(1, pad), torch.ones(1, n)], 1).long()


# -- PoNet -------------------------------------------------------------------------------------
def ponet_reference(pooler, x: torch.Tensor) -> torch.Tensor:
    """PoNet on one unpadded text (n, H), written out token by token."""
    n, dim = x.shape
    heads, d = pooler.attn_heads, dim // pooler.attn_heads
    q, k, o = pooler.dense_q(x), pooler.dense_k(x), pooler.dense_o(x)
    seg, loc = pooler.dense_segment(x), pooler.dense_local(x)
    g = torch.zeros(dim)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        query = q[:, cols].mean(0)
        att = torch.softmax(k[:, cols] @ query / math.sqrt(d), 0)
        g[cols] = att @ k[:, cols]
    bounds = [[t for t in range(n) if t * pooler.segments // n == s] for s in range(pooler.segments)]
    half = pooler.window // 2
    rows = []
    for t in range(n):
        members = next(b for b in bounds if t in b)
        seg_max = seg[members].max(0).values
        loc_max = loc[max(0, t - half) : t + half + 1].max(0).values
        rows.append((g + seg_max) * o[t] + loc_max)
    mixed = torch.stack(rows)
    return pooler.norm(pooler.output(mixed) + x).mean(0)


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_ponet_matches_a_token_by_token_reference(n):
    pooler = make("ponet", segments=3, window=3)
    with torch.no_grad():
        x = torch.randn(1, n, HIDDEN)
        expected = ponet_reference(pooler, x[0])
        torch.testing.assert_close(pooler([x], torch.ones(1, n).long())[0], expected, atol=1e-5, rtol=1e-5)
        padded, mask = left_padded(x, 4)
        torch.testing.assert_close(pooler([padded], mask)[0], expected, atol=1e-5, rtol=1e-5)


def test_ponet_segments_and_windows_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0]])
    assert segment_ids(mask, 3).tolist() == [[3, 3, 0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 3, 3, 3, 3]]
    values = torch.arange(8.0).reshape(1, 8, 1).expand(2, 8, 1)
    pooled = window_max(values, mask, 3)[..., 0]
    assert pooled.tolist() == [[0, 0, 3, 4, 5, 6, 7, 7], [1, 2, 2, 0, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="odd"):
        make("ponet", window=4)


def test_ponet_local_part_is_local():
    """A token outside every window of token 0 changes token 0 only through global/segment."""
    pooler = make("ponet", segments=1, window=3)
    with torch.no_grad():
        pooler.dense_o.weight.zero_()  # kill the global and segment paths: only local remains
        pooler.dense_o.bias.zero_()
        x = torch.randn(1, 6, HIDDEN)
        y = x.clone()
        y[0, 5] += 3.0
        mask = torch.ones(1, 6).long()
        a, b = pooler.mix(x, mask), pooler.mix(y, mask)
    torch.testing.assert_close(a[0, :4], b[0, :4])
    assert not torch.allclose(a[0, 4:], b[0, 4:])


def test_ponet_cost_is_linear_in_length():
    from torch.utils.flop_counter import FlopCounterMode

    pooler = make("ponet", segments=4, window=5)
    counts = []
    for length in (64, 128, 256):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            pooler([torch.randn(2, length, HIDDEN)], torch.ones(2, length).long())
        counts.append(counter.get_total_flops())
    assert counts[1] == 2 * counts[0] and counts[2] == 2 * counts[1]


# -- pyramid -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3, 4, 7])
@pytest.mark.parametrize("bins", [1, 2, 4])
def test_pyramid_bins_are_adaptive_average_pooling_of_the_real_tokens(n, bins):
    x = torch.randn(1, n, HIDDEN)
    expected = F.adaptive_avg_pool1d(x.transpose(1, 2), bins).transpose(1, 2)
    padded, mask = left_padded(x, 3)
    torch.testing.assert_close(adaptive_bins(padded, mask, bins), expected)
    right = torch.cat([x, torch.full((1, 2, HIDDEN), -9e3)], 1)
    torch.testing.assert_close(adaptive_bins(right, torch.tensor([[1] * n + [0, 0]]), bins), expected)


def test_pyramid_matches_a_direct_computation_and_sees_word_order():
    pooler = make("pyramid", levels=3)
    assert pooler.bins == [1, 2, 4] and len(pooler.scales) == 3
    x = torch.randn(1, 6, HIDDEN)
    mask = torch.ones(1, 6).long()
    with torch.no_grad():
        parts = [
            F.gelu(proj(F.adaptive_avg_pool1d(x.transpose(1, 2), b).transpose(1, 2).reshape(1, -1)))
            for b, proj in zip(pooler.bins, pooler.scales, strict=True)
        ]
        expected = x.mean(1) + pooler.fuse(torch.cat(parts, -1))
        torch.testing.assert_close(pooler([x], mask), expected)
        reversed_order = pooler([x.flip(1)], mask)
    assert not torch.allclose(reversed_order, expected)  # mean pooling could not tell


# -- bilinear ----------------------------------------------------------------------------------
def test_bilinear_is_factorized_second_order_pooling_with_power_and_l2_norm():
    pooler = make("bilinear", out_dim=6, factors=3)
    assert pooler.output_dim == 6
    x = torch.randn(1, 5, HIDDEN)
    with torch.no_grad():
        got = pooler([x], torch.ones(1, 5).long())[0]
        u, v = pooler.proj_u(x[0]), pooler.proj_v(x[0])  # (5, 18)
        z = torch.stack([(u[t] * v[t]).reshape(6, 3).sum(-1) for t in range(5)]).mean(0)
        expected = torch.sign(z) * z.abs().sqrt()
        expected = expected / expected.norm()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert got.norm().item() == pytest.approx(1.0, abs=1e-5)
    empty = pooler([x], torch.zeros(1, 5).long())
    assert torch.equal(empty, torch.zeros_like(empty))


# -- end to end: train from a config, reload to the same embeddings ------------------------
@pytest.fixture(params=["bert", "llama"])
def tiny(request, tiny_bert, tiny_llama):
    return tiny_bert if request.param == "bert" else tiny_llama


OPTIONS = {"ponet": {"segments": 2, "window": 5}, "pyramid": {"levels": 2}, "bilinear": {"factors": 2}}


@pytest.mark.parametrize("mode", NEW)
def test_reload_gives_the_same_embeddings_in_ranker_and_sentence_transformers(tiny, tmp_path, mode):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder.from_pretrained(tiny, pooling=mode, normalize=False, **OPTIONS[mode])
    with torch.no_grad():
        for p in model.query_encoder.pooler.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save(tmp_path / "m")
    again = BiEncoder.load(tmp_path / "m")
    assert again.query_encoder.pooler.get_config() == model.query_encoder.pooler.get_config()
    assert_same_outputs(again.encode(TEXTS), model.encode(TEXTS))
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu", trust_remote_code=True)
    assert_same_outputs(st.encode(TEXTS, batch_size=64), model.encode(TEXTS))


def write_negatives(path) -> None:
    """Mined-negatives JSONL for the tiny BEIR fixture (the format `ranker mine` writes)."""
    rows = [("q1", "cats purr", "d1", ["d2", "d3"]), ("q2", "swimming fish", "d3", ["d1", "d4"])]
    with path.open("w") as out:
        for qid, query, pos, negs in rows:
            negatives = [
                {"docid": d, "rank": r + 1, "score": 5.0 - r, "retriever": "bm25"} for r, d in enumerate(negs)
            ]
            out.write(
                json.dumps({"qid": qid, "query": query, "positives": [pos], "negatives": negatives}) + "\n"
            )


@pytest.mark.parametrize("mode", NEW)
def test_trains_from_a_config_with_pooling_options(mode, tiny_beir, tiny_bert, tmp_path):
    from ranker.cli import train as train_cli

    negatives = tmp_path / "negatives.jsonl"
    write_negatives(negatives)
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    values = {
        "dataset": str(tiny_beir),
        "negatives": str(negatives),
        "output_dir": str(out),
        "model": str(tiny_bert),
        "model_type": "bi",
        "pooling": mode,
        "pooling_options": OPTIONS[mode],
        "loss": "infonce",
        "batch_size": 2,
        "n_negatives": 1,
        "max_steps": 2,
        "warmup_steps": 0,
        "log_every": 1,
        "lr": 1e-2,
        "max_length": 16,
        "device": "cpu",
    }
    config.write_text(yaml.safe_dump(values))
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["train", str(config)])
    assert args.func(args) == 0
    trained = BiEncoder.load(out / "model")
    pooler = trained.query_encoder.pooler
    assert pooler.mode == mode and all(pooler.get_config()[k] == v for k, v in OPTIONS[mode].items())
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(math.isfinite(float(r.split(",")[2])) for r in rows)


def test_bad_pooling_options_are_a_config_error(tiny_beir, tiny_bert, tmp_path):
    from ranker.training.build import build_relevance
    from ranker.training.config import build_config
    from retrievers.errors import InputError

    config = build_config(
        {
            "dataset": str(tiny_beir),
            "negatives": "n.jsonl",
            "output_dir": str(tmp_path),
            "model": str(tiny_bert),
            "model_type": "bi",
            "pooling": "ponet",
            "pooling_options": {"levels": 3},
        }
    )
    with pytest.raises(InputError, match=r"pooling_options.*takes no option"):
        build_relevance(config)
    with pytest.raises(InputError, match=r"pooling_options.*expected a valid dictionary"):
        build_config({"pooling_options": "segments=3"})
