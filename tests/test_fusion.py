"""Fusion of TREC runs through ranx."""

from __future__ import annotations

import pytest

from retrievers.errors import InputError
from retrievers.fusion import fuse_files, fuse_runs
from retrievers.io.trec import read_run, write_run

A = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 1.0, "y": 0.5}}
B = {"q1": {"c": 9.0, "a": 8.0, "d": 7.0}, "q2": {"y": 2.0, "x": 1.0}}


def test_rrf_matches_the_formula():
    fused = fuse_runs([A, B], "rrf", params={"k": 60})
    expected_a = 1 / 61 + 1 / 62
    expected_c = 1 / 63 + 1 / 61
    assert fused["q1"]["a"] == pytest.approx(expected_a)
    assert fused["q1"]["c"] == pytest.approx(expected_c)
    assert fused["q1"]["d"] == pytest.approx(1 / 63)
    assert fused["q1"]["b"] == pytest.approx(1 / 62)
    assert fused["q2"]["x"] == pytest.approx(fused["q2"]["y"])


def test_wsum_with_weights_and_min_max():
    fused = fuse_runs([A, B], "wsum", params={"weights": [1.0, 0.0]})
    assert max(fused["q1"], key=fused["q1"].get) == "a"


def test_fuse_files_writes_ranked_run(tmp_path):
    write_run(tmp_path / "a.trec", A)
    write_run(tmp_path / "b.trec", B)
    fuse_files([tmp_path / "a.trec", tmp_path / "b.trec"], tmp_path / "f.trec", depth=2)
    lines = (tmp_path / "f.trec").read_text().splitlines()
    assert lines[0].split()[:4] == ["q1", "Q0", "a", "1"]
    assert lines[1].split()[2] == "c"
    assert len(read_run(tmp_path / "f.trec")["q1"]) == 2
    assert lines[-1].split()[2] == "y"  # x and y tie at the same fused score: doc id order


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="unknown fusion method"):
        fuse_runs([A, B], "magic")
    with pytest.raises(InputError, match="no parameter"):
        fuse_runs([A, B], "rrf", params={"gamma": 1})
    with pytest.raises(InputError, match="at least two"):
        fuse_runs([A], "rrf")
    with pytest.raises(InputError, match="one weight per run"):
        fuse_runs([A, B], "wsum", params={"weights": [1.0]})
    with pytest.raises(InputError, match="different queries") as err:
        fuse_runs([A, {"q1": B["q1"]}], "rrf", names=["a.trec", "b.trec"])
    assert "b.trec" in str(err.value)


def test_rrf_without_ranx_equals_ranx_rrf():
    import numpy as np
    from ranx import Run, fuse

    rng = np.random.default_rng(1)
    runs = []
    for _ in range(3):
        run = {}
        for q in range(20):
            docs = rng.choice(50, size=int(rng.integers(1, 30)), replace=False)
            run[f"q{q}"] = {f"d{d}": float(rng.random()) for d in docs}  # no ties: ranx's order is ours
        runs.append(run)
    ours = fuse_runs(runs, "rrf", params={"k": 10})
    theirs = fuse([Run(r) for r in runs], norm=None, method="rrf", params={"k": 10}).to_dict()
    assert ours.keys() == theirs.keys()
    for qid in ours:
        assert ours[qid] == pytest.approx(dict(theirs[qid]), abs=1e-12)


def test_rrf_ties_are_ranked_by_document_id():
    fused = fuse_runs([{"q": {"b": 1.0, "a": 1.0}}, {"q": {"c": 1.0}}], "rrf", params={"k": 0})
    assert fused["q"]["a"] == 1.0 and fused["q"]["b"] == 0.5 and fused["q"]["c"] == 1.0
