"""kill -9 at a fixed point (no timing): a rerun of the same command finishes the job and
leaves no temporary file or folder behind.

The child process replaces one function by a version that does part of the work and then
SIGKILLs its own process, exactly where a kill would hurt most; the parent then reruns the
same command in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ranker.cli

REPO = Path(__file__).resolve().parents[1]


def run_child(code: str, cwd: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, timeout=300)
    return done.returncode


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.integration
def test_killed_mine_export_is_finished_by_the_same_command(tiny_beir, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    assert ranker.cli.main(["index", str(tiny_beir), "--index", str(work / "bm25")]) == 0
    argv = [
        "mine",
        str(tiny_beir),
        "--split",
        "test",
        "--index",
        str(work / "bm25"),
        "--depth",
        "4",
        "--num-negatives",
        "2",
        "--out",
        str(work / "neg.jsonl"),
        "--export",
        "sentence-transformers",
    ]
    rc = run_child(
        f"""
        import os, signal
        import retrievers.mining
        from retrievers.io.atomic import atomic_write

        def dying_export(records, fmt, docs, out):
            with atomic_write(out) as handle:  # a half-written export, then kill -9
                handle.write("{{}}\\n")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        retrievers.mining.export_negatives = dying_export
        import ranker.cli
        ranker.cli.main({argv!r})
        """,
        work,
    )
    assert rc == -9
    export = work / "neg.sentence-transformers.jsonl"
    assert (work / "neg.jsonl").exists() and not export.exists()
    assert any(name.endswith(".tmp") for name in hidden(work))  # the killed writer's temporary
    assert ranker.cli.main(argv) == 0  # the same command again: finishes the export
    assert export.exists() and export.read_text().strip()
    assert not [n for n in hidden(work) if n.endswith(".tmp")]
    assert ranker.cli.main(argv) == 2  # and once complete, it refuses to overwrite


@pytest.mark.integration
def test_killed_bm25_index_leaves_nothing_a_rerun_does_not_clean(tiny_beir, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    index = work / "bm25"
    rc = run_child(
        f"""
        import os, signal
        import retrievers.bm25

        def dying_meta(folder, meta):  # Lucene has written the index; kill before the rename
            os.kill(os.getpid(), signal.SIGKILL)

        retrievers.bm25.write_meta = dying_meta
        import ranker.cli
        ranker.cli.main(["index", {str(tiny_beir)!r}, "--index", {str(index)!r}])
        """,
        work,
    )
    assert rc == -9
    assert not index.exists()
    assert hidden(work)  # the hidden index and corpus folders of the killed run
    assert ranker.cli.main(["index", str(tiny_beir), "--index", str(index)]) == 0
    assert index.is_dir() and hidden(work) == []
