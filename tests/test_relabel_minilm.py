"""Must-show (issue 25): a MiniLM bi-encoder trains from the CLI on promoted positives and on
SimANS-sampled negatives, mined from a SciFact subset with all-MiniLM-L6-v2 as the dense
retriever and as the judge (integration: real weights and ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scifact_subset import write_subset

from ranker.cli import main
from retrievers.mining import read_negatives

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def subset(scifact_dir, minilm_path, tmp_path_factory) -> tuple[Path, Path]:
    """12 SciFact train queries, their positives and 80 other documents, with a MiniLM
    dense index."""
    base = tmp_path_factory.mktemp("scifact-sub")
    root = write_subset(scifact_dir, base / "data")
    idx = base / "idx"
    args = ["index", str(root), "--retriever", "dense", "--model", str(minilm_path), "--pooling", "mean"]
    # float32, as the judge scores: promotions are compared with the index's own scores
    assert main([*args, "--faiss", "flat", "--dtype", "float32", "--index", str(idx)]) == 0
    return root, idx


def train(root: Path, negatives: Path, out: Path, minilm: Path) -> dict:
    sets = {
        "dataset": root,
        "negatives": negatives,
        "output_dir": out,
        "model": minilm,
        "model_type": "bi",
        "pooling": "mean",
        "loss": "infonce",
        "batch_size": 4,
        "n_negatives": 2,
        "max_steps": 3,
        "max_length": 64,
        "warmup_steps": 0,
        "seed": 3,
        "device": "cpu",
        "dump_weights": False,
    }
    argv = ["train"] + [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "model" / "ranker_config.json").exists()
    return summary


def test_minilm_trains_on_positives_a_minilm_judge_promoted(subset, minilm_path, tmp_path):
    root, idx = subset
    neg = tmp_path / "promoted.jsonl"
    args = ["mine", str(root), "--index", str(idx), "--depth", "10", "--num-negatives", "4"]
    judge = ["--promote-above", "0.0", "--judge", str(minilm_path)]
    assert main([*args, *judge, "--out", str(neg)]) == 0
    records = read_negatives(neg)
    promoted = [(rec, d, info) for rec in records for d, info in rec.promoted.items()]
    assert promoted, "the judge promoted nothing"
    # the judge is the retriever's own model: it promotes exactly the candidates the index
    # scores above the best positive (cosine, up to float32 and batching rounding)
    for _rec, _docid, info in promoted:
        assert info["judge"] == str(minilm_path)
        assert info["judge_score"] == pytest.approx(info["score"], abs=1e-3)
        assert info["judge_score"] > info["positive_judge_score"]
    summary = train(root, neg, tmp_path / "run-promoted", minilm_path)
    assert summary["steps"] == 3 and np.isfinite(summary["last"]["loss"])


def test_minilm_trains_on_simans_sampled_negatives(subset, minilm_path, tmp_path):
    root, idx = subset
    neg = tmp_path / "simans.jsonl"
    args = ["mine", str(root), "--index", str(idx), "--depth", "30", "--num-negatives", "4"]
    simans = ["--sampling", "simans", "--simans-a", "20", "--simans-b", "-0.05", "--seed", "1"]
    assert main([*args, *simans, "--out", str(neg)]) == 0
    stats = json.loads((tmp_path / "simans.stats.json").read_text())
    assert stats["simans_uniform_fallback"] == 0 and stats["negatives"] == 4 * stats["queries_written"]
    summary = train(root, neg, tmp_path / "run-simans", minilm_path)
    assert summary["steps"] == 3 and np.isfinite(summary["last"]["loss"])
