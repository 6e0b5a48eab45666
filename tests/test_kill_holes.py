"""kill -9 at a fixed point (no timing): a rerun of the same command finishes the job and
leaves no temporary file or folder behind.

The child process replaces one function by a version that does part of the work and then
SIGKILLs its own process, exactly where a kill would hurt most; the parent then reruns the
same command in-process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
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


# --- two writers of one output, a full disk, a folder removed, a symlinked output -----------

GATED = """
import importlib, os, sys
module = importlib.import_module("{module}")
real = module.{name}

def gated(*args, **kwargs):  # the output lock is held here: tell the parent, wait for its word
    os.write({ready}, b"holding")
    os.read({go}, 1)
    return real(*args, **kwargs)

setattr(module, "{name}", gated)
import ranker.cli
sys.exit(ranker.cli.main({argv!r}))
"""


class Holder:
    """A child process running ``ranker ARGV`` that stops once it holds the output lock, and
    goes on only when told (a barrier made of two pipes: no sleep, no timing)."""

    def __init__(self, gate: str, argv: list[str], cwd: Path):
        ready_r, ready_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        module, name = gate.rsplit(".", 1)  # the function that runs once the lock is held
        code = GATED.format(module=module, name=name, ready=ready_w, go=self.go_r, argv=argv)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        self.child = subprocess.Popen(
            [sys.executable, "-c", code], cwd=cwd, env=env, pass_fds=(ready_w, self.go_r)
        )
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            assert ready.read(7) == b"holding", "the child ended before taking the lock"

    def finish(self) -> int:
        os.write(self.go_w, b"g")
        os.close(self.go_w)
        os.close(self.go_r)
        return self.child.wait(timeout=300)

    def kill(self) -> int:
        self.child.kill()
        os.close(self.go_w)
        os.close(self.go_r)
        return self.child.wait(timeout=60)


def _runs(folder: Path, queries: int = 40, depth: int = 50) -> list[str]:
    paths = []
    for name in ("a", "b"):
        path = folder / f"{name}.trec"
        rows = (
            f"q{q} Q0 d{(d * 7 + q + len(name)) % 97} {d + 1} {depth - d}.5 {name}\n"
            for q in range(queries)
            for d in range(depth)
        )
        path.write_text("".join(rows))
        paths.append(str(path))
    return paths


def _train_config(tmp: Path, data: Path, model: Path, out: Path) -> Path:
    import json

    import yaml

    neg = tmp / "n.jsonl"
    negatives = [
        {"docid": d, "rank": r, "score": 1.0 / r, "retriever": "bm25"}
        for r, d in enumerate(["d2", "d3", "d4"], 1)
    ]
    record = {"qid": "q1", "query": "cats purr", "positives": ["d1"], "negatives": negatives}
    neg.write_text(json.dumps(record) + "\n")
    config = tmp / "train.yaml"
    settings = {"n_negatives": 2, "batch_size": 1, "max_steps": 2, "warmup_steps": 0, "max_length": 32}
    values = {"dataset": str(data), "negatives": str(neg), "output_dir": str(out), "model": str(model)}
    config.write_text(yaml.safe_dump({**values, **settings, "device": "cpu", "log_every": 1}))
    return config


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    assert len(err) == 1, err
    return err[0]


def _steps(metrics: Path) -> list[str]:
    return [line.split(",")[0] for line in metrics.read_text().splitlines()]


FUSE_GATE = "ranker.cli.fuse.run"


def test_a_second_writer_is_refused_at_once_and_the_output_is_one_runs(tmp_path, capsys):
    runs = _runs(tmp_path)
    argv = ["fuse", *runs, "--out", str(tmp_path / "out")]
    holder = Holder(FUSE_GATE, ["-q", *argv], tmp_path)
    try:
        assert ranker.cli.main(["-q", *argv]) == 2  # at once: the holder is still waiting
        line = _one_error_line(capsys)
        assert f"{tmp_path / 'out'}: another process (pid {holder.child.pid}) is writing this output" in line
    finally:
        assert holder.finish() == 0
    assert ranker.cli.main(["-q", *argv[:-1], str(tmp_path / "single")]) == 0
    assert (tmp_path / "out").read_bytes() == (tmp_path / "single").read_bytes()  # one run's bytes
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".lock", ".tmp"))]


def test_a_second_training_run_into_one_output_dir_is_refused(
    tmp_path, tiny_beir, tiny_bert, monkeypatch, capsys
):
    """This process trains; once it holds output_dir, a second real `ranker train` process
    into the same folder runs to its end (the barrier): refused in one line naming our pid,
    and metrics.csv holds this run's rows only (two runs at once used to mix theirs)."""
    import ranker.training.pipeline as pipeline

    out = tmp_path / "out"
    config = _train_config(tmp_path, tiny_beir, tiny_bert, out)
    real, seen = pipeline.train_from_config, []

    def second_writer_first(*args, **kwargs):
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        argv = [sys.executable, "-m", "ranker", "-q", "train", str(config)]
        seen.append(subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_from_config", second_writer_first)
    assert ranker.cli.main(["-q", "train", str(config)]) == 0
    second = seen[0]
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"{out}: another process (pid {os.getpid()}) is writing this output" in second.stderr
    assert _steps(out / "metrics.csv") == ["step", "1", "2"] and (out / "model").is_dir()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".lock", ".tmp"))]


def test_a_lock_left_by_a_killed_writer_is_taken_over(tmp_path):
    runs = _runs(tmp_path)
    argv = ["fuse", *runs, "--out", str(tmp_path / "out")]
    holder = Holder(FUSE_GATE, argv, tmp_path)
    assert holder.kill() == -9
    assert (tmp_path / ".out.lock").read_text().strip() == str(holder.child.pid)  # left behind
    assert ranker.cli.main(["-q", *argv]) == 0
    assert ranker.cli.main(["-q", *argv[:-1], str(tmp_path / "single")]) == 0
    assert (tmp_path / "out").read_bytes() == (tmp_path / "single").read_bytes()
    assert not (tmp_path / ".out.lock").exists()


@contextlib.contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` with ``options``, where the machine lets us mount one."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture()
def small_disk(tmp_path):
    """A 64 KiB file system."""
    with _tmpfs(tmp_path / "disk", "size=64k") as disk:
        yield disk


def test_a_read_only_file_system_is_one_line(tmp_path, capsys):
    with _tmpfs(tmp_path / "ro", "size=64k,ro") as disk:
        assert ranker.cli.main(["-q", "fuse", *_runs(tmp_path), "--out", str(disk / "out")]) == 2
        line = _one_error_line(capsys)
        assert f"{disk / 'out'}: cannot write output (Read-only file system)" in line, line


@pytest.mark.parametrize("command", ["fuse", "train", "dense-index"])
def test_a_full_disk_is_one_line_naming_the_output(
    command, small_disk, tmp_path, tiny_beir, tiny_bert, capsys
):
    out = small_disk / "out"
    if command == "fuse":
        argv = ["fuse", *_runs(tmp_path, queries=200), "--out", str(out)]
    elif command == "train":
        argv = ["train", str(_train_config(tmp_path, tiny_beir, tiny_bert, out))]
    else:
        # 300 documents: their vectors, as encoded and as indexed, do not fit in 64 KiB
        corpus = "".join(f'{{"_id": "d{i}", "text": "cats and dogs {i}"}}\n' for i in range(1, 301))
        (tiny_beir / "corpus.jsonl").write_text(corpus)
        argv = [
            "index",
            str(tiny_beir),
            "--retriever",
            "dense",
            "--model",
            str(tiny_bert),
            "--index",
            str(out),
        ]
    (small_disk / "kept.txt").write_text("a user's file\n")
    assert ranker.cli.main(["-q", *argv]) == 2
    line = _one_error_line(capsys)
    assert str(small_disk) in line and "No space left on device" in line, line
    assert sorted(p.name for p in small_disk.iterdir() if not p.name.endswith(".partial")) == ["kept.txt"]
    assert (small_disk / "kept.txt").read_text() == "a user's file\n"


def test_the_output_folder_removed_mid_run_is_one_line(tmp_path, tiny_beir, tiny_bert, monkeypatch, capsys):
    import shutil

    import ranker.training.trainer as trainer

    out = tmp_path / "out"
    real = trainer.append_csv

    def removed_first(path, row):  # someone deletes the output folder while training runs
        shutil.rmtree(out, ignore_errors=True)
        return real(path, row)

    monkeypatch.setattr(trainer, "append_csv", removed_first)
    assert ranker.cli.main(["-q", "train", str(_train_config(tmp_path, tiny_beir, tiny_bert, out))]) == 2
    line = _one_error_line(capsys)
    assert f"{out / 'metrics.csv'}: " in line and "No such file or directory" in line, line


def test_an_output_that_is_a_symlink_to_a_folder_is_written_through(tmp_path, tiny_beir, tiny_bert):
    elsewhere = tmp_path / "other-disk" / "index"
    elsewhere.mkdir(parents=True)
    link = tmp_path / "index"
    link.symlink_to(elsewhere, target_is_directory=True)
    argv = ["index", str(tiny_beir), "--retriever", "dense", "--model", str(tiny_bert), "--index", str(link)]
    assert ranker.cli.main(["-q", *argv]) == 0
    assert link.is_symlink() and (elsewhere / "index.faiss").is_file()
    assert (
        ranker.cli.main(
            [
                "-q",
                "search",
                str(tiny_beir),
                "--split",
                "test",
                "--index",
                str(link),
                "--out",
                str(tmp_path / "r.trec"),
            ]
        )
        == 0
    )
    assert (tmp_path / "r.trec").read_text().strip()
    assert not [p for p in (tmp_path / "other-disk").iterdir() if p.name.startswith(".")]
