"""TREC run and qrels files: strict readers and atomic writers.

Runs and qrels are held as ranx's :class:`ranx.Run` and :class:`ranx.Qrels` once loaded;
these helpers read and write the plain dict-of-dicts form with validation ranx does not do
(duplicate lines, malformed scores), and write runs in a deterministic order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.io.lines import BAD_ID_CHAR, check_id, read_lines

RunDict = dict[str, dict[str, float]]
QrelsDict = dict[str, dict[str, int]]

_INTEGER = re.compile(r"[+-]?[0-9]+")  # not int()'s Python literals: "1_0" is not 10


def read_run(path: str | Path) -> RunDict:
    """Read a TREC run (``qid Q0 docid rank score tag``, whitespace-separated; gzip allowed).

    Raises:
        InputError: the file is empty, a line has the wrong number of fields, an id with a
            control character, a rank that is not a non-negative integer, a score that is not
            a finite number, or repeats a (query, document) pair already seen in the file.
    """
    run: RunDict = {}
    last_qid, docs = None, {}
    for number, text in read_lines(path):
        fields = text.split()
        if len(fields) != 6:
            raise InputError(
                f"found {len(fields)} field(s); expected 6: qid Q0 docid rank score tag", path, number
            )
        qid, _, docid, rank, score, _ = fields
        if qid != last_qid:  # lines come grouped by query: check and look up each query once
            if qid not in run:
                check_id(qid, "query id", path, number)
            last_qid, docs = qid, run.setdefault(qid, {})
        if BAD_ID_CHAR.search(docid):
            check_id(docid, "document id", path, number)
        if not (rank.isdigit() and rank.isascii()) and (not _INTEGER.fullmatch(rank) or int(rank) < 0):
            raise InputError(f"rank {rank!r} is not a non-negative integer", path, number)
        try:
            value = float(score)
        except ValueError:
            value = parse_score(score, path, number)
        if value - value != 0.0:  # NaN or infinite
            parse_score(score, path, number)
        if docid in docs:
            raise InputError(f"duplicate line for query {qid!r} and document {docid!r}", path, number)
        docs[docid] = value
    if not run:
        raise InputError("the run is empty (expected lines: qid Q0 docid rank score tag)", path)
    return run


def parse_score(text: str, path: str | Path, line: int) -> float:
    """A finite float, or an error naming the file and line (NaN and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"score {text!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise InputError(f"score {text!r} is not a finite number", path, line)
    return value


def iter_trec_qrels(path: str | Path) -> Iterator[tuple[int, str, str, str]]:
    """Yield ``(line_number, qid, docid, relevance)`` for each line of TREC qrels
    (``qid iter docid rel``, whitespace-separated); the relevance is checked by the caller."""
    empty = True
    for number, text in read_lines(path):
        fields = text.split()
        if len(fields) != 4:
            raise InputError(
                f"found {len(fields)} field(s); expected 4: qid iter docid relevance", path, number
            )
        empty = False
        yield number, fields[0], fields[2], fields[3]
    if empty:
        raise InputError("the qrels file is empty (expected lines: qid iter docid relevance)", path)


def read_trec_qrels(path: str | Path) -> QrelsDict:
    """Read TREC qrels (``qid iter docid rel``, whitespace-separated, integer relevance)."""
    qrels: QrelsDict = {}
    for number, qid, docid, rel in iter_trec_qrels(path):
        add_judgment(qrels, qid, docid, rel, path, number)
    return qrels


def add_judgment(qrels: QrelsDict, qid: str, docid: str, rel: str, path: str | Path, line: int) -> None:
    """Add one judgment, checking the ids, that the relevance is an integer and the pair is new."""
    check_id(qid, "query id", path, line)
    check_id(docid, "document id", path, line)
    if not _INTEGER.fullmatch(rel):
        raise InputError(f"relevance {rel!r} is not an integer", path, line)
    value = int(rel)
    docs = qrels.setdefault(qid, {})
    if docid in docs:
        raise InputError(f"duplicate judgment for query {qid!r} and document {docid!r}", path, line)
    docs[docid] = value


def ranked(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """Sort by score descending; ties are broken by document id ascending (deterministic)."""
    return sorted(docs.items(), key=lambda item: (-item[1], item[0]))


def format_run_lines(qid: str, hits: Sequence[tuple[str, float]], tag: str) -> str:
    """Format one query's hits (already ranked) as TREC run lines."""
    return "".join(
        f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n" for rank, (docid, score) in enumerate(hits, start=1)
    )


def write_run(
    path: str | Path,
    run: Mapping[str, Mapping[str, float]] | Iterable[tuple[str, Mapping[str, float]]],
    tag: str = "ranker",
) -> None:
    """Write a run atomically, queries in the given order, documents ranked by :func:`ranked`."""
    items = run.items() if isinstance(run, Mapping) else run
    with atomic_write(path) as out:
        for qid, docs in items:
            out.write(format_run_lines(qid, ranked(docs), tag))


def write_trec_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write TREC qrels atomically (``qid 0 docid rel``, tab-separated)."""
    with atomic_write(path) as out:
        for qid, docs in qrels.items():
            for docid, rel in docs.items():
                out.write(f"{qid}\t0\t{docid}\t{rel}\n")
