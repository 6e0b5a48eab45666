"""TREC run and qrels files: strict reading, deterministic and atomic writing."""

from __future__ import annotations

import pytest

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_directory, atomic_write
from retrievers.io.trec import ranked, read_run, read_trec_qrels, write_run, write_trec_qrels


def test_run_round_trip_and_tie_order(tmp_path):
    path = tmp_path / "run.trec"
    write_run(path, {"q1": {"b": 1.0, "a": 1.0, "c": 2.0}, "q2": {"x": 0.5}}, tag="t")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 c 1 2.000000 t"
    assert [line.split()[2] for line in lines[:3]] == ["c", "a", "b"]  # ties: doc id ascending
    assert read_run(path) == {"q1": {"c": 2.0, "a": 1.0, "b": 1.0}, "q2": {"x": 0.5}}


def test_ranked_is_deterministic():
    assert ranked({"z": 1.0, "y": 1.0, "x": 3.0}) == [("x", 3.0), ("y", 1.0), ("z", 1.0)]


def test_duplicate_run_line_is_an_error(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\nq1 Q0 d1 3 0.5 t\n")
    with pytest.raises(InputError, match=r"run.trec:3: duplicate line for query 'q1' and document 'd1'"):
        read_run(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 Q0 d1 1 2.0\n", "expected 6"),
        ("q1 Q0 d1 1 high t\n", "not a number"),
    ],
)
def test_malformed_run(tmp_path, text, message):
    path = tmp_path / "run.trec"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_run(path)


def test_qrels_round_trip(tmp_path):
    path = tmp_path / "qrels.txt"
    write_trec_qrels(path, {"q1": {"d1": 1, "d2": 0}})
    assert read_trec_qrels(path) == {"q1": {"d1": 1, "d2": 0}}


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(RuntimeError), atomic_write(target) as out:
        out.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "precious"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_directory_refuses_to_clobber(tmp_path):
    existing = tmp_path / "index"
    existing.mkdir()
    (existing / "mine").write_text("user data")
    with pytest.raises(FileExistsError), atomic_directory(existing):
        pass
    assert (existing / "mine").read_text() == "user data"
    with pytest.raises(ValueError), atomic_directory(tmp_path / "new") as tmp:
        (tmp / "x").write_text("half")
        raise ValueError
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os
    import stat

    with atomic_write(tmp_path / "f.txt") as out:
        out.write("x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask
