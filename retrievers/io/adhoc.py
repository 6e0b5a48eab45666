"""Bare queries and qrels files given on the command line (``--queries``, ``--qrels``).

Pyserini and trec_eval users keep queries and judgments as loose files rather than a
dataset folder. The formats are recognised from the file, gzip included:

* queries: ``.jsonl`` (``_id`` or ``id``, and ``text``), otherwise ``qid<TAB>text`` (TSV);
* qrels: TREC (``qid iter docid rel``) or BEIR TSV (``query-id corpus-id score``, header
  optional), told apart by the number of fields of the first judgment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retrievers.errors import InputError
from retrievers.io.lines import check_id, read_jsonl, read_lines, require_str, strip_gz
from retrievers.io.trec import QrelsDict, add_judgment

BEIR_HEADER = "query-id"


def read_queries_file(path: str | Path) -> dict[str, str]:
    """Queries of a bare file: JSON lines when named ``.jsonl``/``.json``, else ``qid<TAB>text``.

    Raises:
        InputError: a malformed line, an empty query, a duplicate id or an empty file,
            naming the file and line.
    """
    path = Path(path)
    queries: dict[str, str] = {}
    name = strip_gz(path.name).lower()
    if name.endswith((".jsonl", ".json")):
        for number, obj in read_jsonl(path):
            key = "_id" if "_id" in obj else "id"
            qid = check_id(require_str(obj, key, path, number), f"id {key!r}", path, number)
            _add_query(queries, qid, require_str(obj, "text", path, number), path, number)
    else:
        for number, text in read_lines(path):
            fields = text.split("\t")
            if len(fields) != 2:
                raise InputError(
                    f"found {len(fields)} field(s); expected qid<TAB>query text "
                    "(or name the file .jsonl for JSON lines)",
                    path,
                    number,
                )
            _add_query(queries, check_id(fields[0], "query id", path, number), fields[1], path, number)
    if not queries:
        raise InputError("the queries file is empty", path)
    return queries


def _add_query(queries: dict[str, str], qid: str, text: str, path: Path, number: int) -> None:
    if not text.strip():
        raise InputError(f"query {qid!r} is empty (expected non-empty text)", path, number)
    if qid in queries:
        raise InputError(f"duplicate query id {qid!r}", path, number)
    queries[qid] = text


def _qrels_lines(path: Path) -> Iterator[tuple[int, str, str, str]]:
    """``(line, qid, docid, rel)`` of TREC (4 fields) or BEIR (3 fields, header optional)
    qrels; the first judgment line decides which, and every other line must follow it."""
    width = 0
    for number, text in read_lines(path):
        fields = text.split()
        if not width and fields[:1] == [BEIR_HEADER]:
            continue
        if not width and len(fields) in (3, 4):
            width = len(fields)
        if len(fields) != width:
            expected = {
                0: "4 (TREC qrels: qid iter docid relevance) or 3 (BEIR qrels: query-id corpus-id score)",
                4: "4, as the first line (TREC qrels: qid iter docid relevance)",
                3: "3, as the first line (BEIR qrels: query-id corpus-id score)",
            }[width]
            raise InputError(f"found {len(fields)} field(s); expected {expected}", path, number)
        if width == 4:
            yield number, fields[0], fields[2], fields[3]
        else:
            yield number, fields[0], fields[1], fields[2]


def read_qrels_file(path: str | Path) -> QrelsDict:
    """Judgments of a bare qrels file, TREC or BEIR layout (see the module docstring).

    Raises:
        InputError: a malformed line, a non-integer relevance, a duplicate judgment, or a
            file with no judgments, naming the file and line.
    """
    path = Path(path)
    qrels: QrelsDict = {}
    for number, qid, docid, rel in _qrels_lines(path):
        add_judgment(qrels, qid, docid, rel, path, number)
    if not qrels:
        raise InputError("the qrels file holds no judgments", path)
    return qrels
