"""TREC run and qrels files: strict readers and atomic writers.

Runs and qrels are held as ranx's :class:`ranx.Run` and :class:`ranx.Qrels` once loaded;
these helpers read and write the plain dict-of-dicts form with validation ranx does not do
(duplicate lines, malformed scores), and write runs in a deterministic order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.io.lines import read_lines

RunDict = dict[str, dict[str, float]]
QrelsDict = dict[str, dict[str, int]]


def read_run(path: str | Path) -> RunDict:
    """Read a TREC run (``qid Q0 docid rank score tag``, whitespace-separated).

    Raises:
        InputError: a line has the wrong number of fields, a bad score, or repeats a
            (query, document) pair already seen in the file.
    """
    run: RunDict = {}
    for number, text in read_lines(path):
        fields = text.split()
        if len(fields) != 6:
            raise InputError(
                f"found {len(fields)} field(s); expected 6: qid Q0 docid rank score tag", path, number
            )
        qid, _, docid, _, score, _ = fields
        try:
            value = float(score)
        except ValueError:
            raise InputError(f"score {score!r} is not a number", path, number) from None
        docs = run.setdefault(qid, {})
        if docid in docs:
            raise InputError(f"duplicate line for query {qid!r} and document {docid!r}", path, number)
        docs[docid] = value
    return run


def iter_trec_qrels(path: str | Path) -> Iterator[tuple[int, str, str, str]]:
    """Yield ``(line_number, qid, docid, relevance)`` for each line of TREC qrels
    (``qid iter docid rel``, whitespace-separated); the relevance is checked by the caller."""
    for number, text in read_lines(path):
        fields = text.split()
        if len(fields) != 4:
            raise InputError(
                f"found {len(fields)} field(s); expected 4: qid iter docid relevance", path, number
            )
        yield number, fields[0], fields[2], fields[3]


def read_trec_qrels(path: str | Path) -> QrelsDict:
    """Read TREC qrels (``qid iter docid rel``, whitespace-separated, integer relevance)."""
    qrels: QrelsDict = {}
    for number, qid, docid, rel in iter_trec_qrels(path):
        add_judgment(qrels, qid, docid, rel, path, number)
    return qrels


def add_judgment(qrels: QrelsDict, qid: str, docid: str, rel: str, path: str | Path, line: int) -> None:
    """Add one judgment, checking the relevance is an integer and the pair is new."""
    try:
        value = int(rel)
    except ValueError:
        raise InputError(f"relevance {rel!r} is not an integer", path, line) from None
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
