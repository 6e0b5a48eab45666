"""Hostile inputs to the readers and writers: one error naming the file (and line), or the
right result for valid-but-odd input (a BOM, gzip)."""

from __future__ import annotations

import gzip

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
