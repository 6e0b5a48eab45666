"""Hostile inputs to the readers and writers: one error naming the file (and line), or the
right result for valid-but-odd input (a BOM, gzip)."""

from __future__ import annotations

import gzip
import os

import pytest

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.io.trec import read_run, read_trec_qrels
from retrievers.mining.negatives import read_negatives

NEG = (
    '{"qid": "q1", "query": "%s", "positives": ["d1"], '
    '"negatives": [{"docid": "%s", "rank": 1, "score": %s, "retriever": "bm25"}]}\n'
)

CASES = [
    ("run", "q1 Q0 d1 1 nan x\n", 1),
    ("run", "q1 Q0 d1 1 inf x\n", 1),
    ("run", "q1 Q0 d1 -1 1.0 x\n", 1),
    ("run", "q1 Q0 d1 one 1.0 x\n", 1),
    ("run", "q1 Q0 d\x001 1 1.0 x\n", 1),
    ("run", "", None),
    ("qrels", "q1 0 d1 1_0\n", 1),
    ("qrels", "", None),
    ("neg", NEG % ("cats", "d2", "NaN"), 1),
    ("neg", NEG % ("cats", "d1", "1.0"), 1),
    ("neg", NEG % ("  ", "d2", "1.0"), 1),
]


@pytest.mark.parametrize(("kind", "text", "line"), CASES)
def test_refused_with_file_and_line(tmp_path, kind, text, line):
    path = tmp_path / f"input.{kind}"
    path.write_text(text)
    reader = {"run": read_run, "qrels": read_trec_qrels, "neg": read_negatives}[kind]
    with pytest.raises(InputError) as info:
        reader(path)
    assert info.value.path == str(path) and info.value.line == line
    assert "\n" not in str(info.value)


def test_bom_and_gzip_are_read(tmp_path):
    bom = tmp_path / "run.trec"
    bom.write_bytes("\ufeffq1 Q0 d1 1 1.0 x\n".encode())
    assert read_run(bom) == {"q1": {"d1": 1.0}}
    gz = tmp_path / "run.trec.gz"
    gz.write_bytes(gzip.compress(b"q1 Q0 d1 1 1.0 x\n"))
    assert read_run(gz) == {"q1": {"d1": 1.0}}
    bad = tmp_path / "bad.trec.gz"
    bad.write_bytes(gzip.compress(b"q1 Q0 d1 1 1.0 x\n" * 100)[:30])
    with pytest.raises(InputError, match="gzip"):
        read_run(bad)


def test_output_path_that_is_a_directory(tmp_path):
    with pytest.raises(InputError, match="directory"), atomic_write(tmp_path) as out:
        out.write("x")


# --- the file system under a writer, two writers, bounded YAML, numbers at their limits -------


def test_output_folder_removed_while_writing(tmp_path):
    import shutil

    folder = tmp_path / "sub"
    with pytest.raises(InputError) as info, atomic_write(folder / "out.txt") as out:
        out.write("x")
        shutil.rmtree(folder)
    assert info.value.path == str(folder / "out.txt") and "folder was removed" in info.value.message


def test_a_symlinked_output_is_written_through_the_link(tmp_path):
    target = tmp_path / "elsewhere" / "out.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    with atomic_write(link) as out:
        out.write("new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_a_native_writer_running_out_of_space_is_one_error_naming_the_output(tmp_path):
    from retrievers.io.atomic import replace_directory

    def save(folder):  # what safetensors raises on a full disk
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(InputError, match="No space left on device") as info:
        replace_directory(tmp_path / "model", save)
    assert info.value.path == str(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_the_output_lock_names_its_holder_and_is_released(tmp_path):
    from retrievers.io.lock import OutputBusyError, output_lock

    out = tmp_path / "new" / "out.trec"
    with output_lock(out) as lock:
        assert lock.read_text() == f"{os.getpid()}\n"
        busy = pytest.raises(OutputBusyError, match=f"another process \\(pid {os.getpid()}\\)")
        with busy as info, output_lock(out):
            pass
        assert info.value.path == str(out)
    assert not (tmp_path / "new").exists()  # the folder it made for the lock, removed again
    (tmp_path / ".x.lock").write_text("999999999\n")  # left by a process long gone
    with output_lock(tmp_path / "x"):
        assert (tmp_path / ".x.lock").read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / ".x.lock").exists()


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (
            "a: &a [x, x]\n"
            + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else f'b{i - 1}'}] \n" for i in range(3)),
            None,
            "",
        ),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested more than 100 levels"),
        (
            "a: &a " + "x" * 100_000 + "\nb: [" + ", ".join(["*a"] * 200) + "]\n",
            2,
            "once its aliases are expanded",
        ),
        ("a: &a [x]\n" + "b: [" + ", ".join(["*a"] * 10_001) + "]\n", 2, "more than 10,000 aliases"),
    ],
)
def test_yaml_is_read_within_bounds(tmp_path, text, line, what):
    from ranker.yamlfile import read_yaml

    path = tmp_path / "c.yaml"
    path.write_text(text)
    if line is None:  # aliases within the bounds are fine
        assert read_yaml(path)["b2"] == [[[["x", "x"]]]]
        return
    with pytest.raises(InputError, match=what) as info:
        read_yaml(path)
    assert info.value.path == str(path) and info.value.line == line


def test_mining_seed_must_be_a_numpy_seed():
    from retrievers.mining import MiningConfig

    with pytest.raises(InputError, match="seed must be from 0 to 4294967295, got -1"):
        MiningConfig(seed=-1)


def test_a_damaged_partial_mining_file_is_cut_back_not_fatal(tmp_path):
    """Two old writers of one negatives file left a query twice in the hidden partial file:
    a rerun keeps the whole chunks before the damage and mines the rest again."""
    import json

    from retrievers.mining.pipeline import _paths, _resume

    partial, state_path, _ = _paths(tmp_path / "neg.jsonl")
    state = {"config": {"seed": 42}}
    state_path.write_text(json.dumps(state))
    lines = [NEG % ("cats", f"d{i + 2}", "1.0") for i in range(3)]
    lines = [line.replace('"q1"', f'"q{i}"') for i, line in enumerate(lines)]
    partial.write_text("".join(lines[:2] + lines[:2] + lines[2:]))  # q0 q1 q0 q1 q2
    assert _resume(partial, state_path, state, chunk_size=1) == {"q0", "q1"}
    assert partial.read_text() == "".join(lines[:2])
