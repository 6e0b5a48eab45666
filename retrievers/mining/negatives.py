"""The mined-negatives file: the toolkit's JSONL format, its reader, and exports.

One line per query::

    {"qid": str, "query": str, "positives": [docid, ...],
     "negatives": [{"docid": str, "rank": int, "score": float, "retriever": str}, ...]}

Negatives may carry more keys (``ce_score`` when a cross-encoder rescored them); lines may
carry ``filter_counts`` (what each filter dropped for that query) and ``promoted``: the
positives a judge promoted from the candidates (``ranker mine --promote-above``; RLHN
relabelling), each also listed in ``positives``, so readers that ignore the key train on
them as positives::

    "promoted": {docid: {"judge": str, "judge_score": float, ...}} Exports write the layouts
other trainers read: sentence-transformers triplets, FlagEmbedding and Tevatron.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.io.dataset import Document
from retrievers.io.lines import check_id, read_jsonl

EXPORT_FORMATS = ("sentence-transformers", "flagembedding", "tevatron")


@dataclass(frozen=True)
class Negative:
    """One mined negative: where it came from and how it scored."""

    docid: str
    rank: int
    score: float
    retriever: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written for this negative."""
        return {
            "docid": self.docid,
            "rank": self.rank,
            "score": self.score,
            "retriever": self.retriever,
            **self.extra,
        }


@dataclass(frozen=True)
class MinedQuery:
    """One line of a negatives file."""

    qid: str
    query: str
    positives: list[str]
    negatives: list[Negative]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    path: str | None = field(default=None, compare=False, repr=False)  # where it was read
    line: int | None = field(default=None, compare=False, repr=False)

    def negative_ids(self) -> list[str]:
        """The negatives' document ids, in file order."""
        return [n.docid for n in self.negatives]

    @property
    def promoted(self) -> dict[str, dict[str, Any]]:
        """The positives a judge promoted: docid -> ``{"judge", "judge_score", ...}``."""
        return dict(self.extra.get("promoted") or {})

    def to_json(self) -> str:
        """The JSON line (no newline) for this query."""
        return json.dumps(
            {
                "qid": self.qid,
                "query": self.query,
                "positives": self.positives,
                "negatives": [n.to_dict() for n in self.negatives],
                **self.extra,
            },
            ensure_ascii=False,
        )


def _negative(obj: Any, path: Path, line: int) -> Negative:
    if not isinstance(obj, dict):
        raise InputError("each negative must be an object with docid, rank, score, retriever", path, line)
    missing = [key for key in ("docid", "rank", "score", "retriever") if key not in obj]
    if missing:
        raise InputError(f"negative is missing {', '.join(missing)}", path, line)
    docid, rank, score, retriever = obj["docid"], obj["rank"], obj["score"], obj["retriever"]
    if not isinstance(docid, str) or not isinstance(retriever, str):
        raise InputError("negative docid and retriever must be strings", path, line)
    check_id(docid, "negative document id", path, line)
    if not retriever.strip():
        raise InputError("negative retriever name is empty", path, line)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InputError(f"negative rank must be a positive integer, got {rank!r}", path, line)
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InputError(f"negative score must be a finite number, got {score!r}", path, line)
    extra = {k: v for k, v in obj.items() if k not in ("docid", "rank", "score", "retriever")}
    return Negative(docid, rank, float(score), retriever, extra)


def _check_promoted(promoted: Any, positives: list[str], path: Path, line: int) -> None:
    """A line's ``promoted`` object: docid -> {"judge": str, "judge_score": number, ...}, each
    docid one of the line's positives."""
    if not isinstance(promoted, dict):
        raise InputError("promoted must be an object mapping document ids to judge records", path, line)
    for docid, info in promoted.items():
        if docid not in positives:
            raise InputError(f"promoted document {docid!r} is not listed in positives", path, line)
        if not isinstance(info, dict) or not isinstance(info.get("judge"), str):
            raise InputError(f"promoted document {docid!r} needs a judge name (string)", path, line)
        score = info.get("judge_score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise InputError(
                f"promoted document {docid!r} needs a finite judge_score, got {score!r}", path, line
            )


def iter_negatives(path: str | Path) -> Iterator[MinedQuery]:
    """Stream a negatives file, validating every line.

    Raises:
        InputError: naming the file and line of a malformed record or a repeated query id.
    """
    path = Path(path)
    seen: set[str] = set()
    for line, obj in read_jsonl(path):
        for key in ("qid", "query", "positives", "negatives"):
            if key not in obj:
                raise InputError(
                    f"missing field {key!r} (expected qid, query, positives, negatives)", path, line
                )
        qid, query = obj["qid"], obj["query"]
        positives, negatives = obj["positives"], obj["negatives"]
        if not isinstance(qid, str) or not isinstance(query, str):
            raise InputError("qid and query must be strings", path, line)
        check_id(qid, "qid", path, line)
        if not query.strip():
            raise InputError(f"query {qid!r} has an empty text (expected non-empty text)", path, line)
        if qid in seen:
            raise InputError(f"query {qid!r} appears twice", path, line)
        seen.add(qid)
        if not isinstance(positives, list) or not all(isinstance(p, str) for p in positives):
            raise InputError("positives must be a list of document ids", path, line)
        for docid in positives:
            check_id(docid, "positive document id", path, line)
        if not isinstance(negatives, list):
            raise InputError("negatives must be a list", path, line)
        parsed = [_negative(n, path, line) for n in negatives]
        known = set(positives)
        clash = next((n.docid for n in parsed if n.docid in known), None)
        if clash is not None:
            raise InputError(
                f"document {clash!r} of query {qid!r} is listed both as a positive and as a negative",
                path,
                line,
            )
        if "promoted" in obj:
            _check_promoted(obj["promoted"], positives, path, line)
        extra = {k: v for k, v in obj.items() if k not in ("qid", "query", "positives", "negatives")}
        yield MinedQuery(qid, query, positives, parsed, extra, str(path), line)


def read_negatives(path: str | Path) -> list[MinedQuery]:
    """Read a whole negatives file (see :func:`iter_negatives` to stream it)."""
    return list(iter_negatives(path))


def _doc(docs: Mapping[str, Document], docid: str, rec: MinedQuery) -> Document:
    try:
        return docs[docid]
    except KeyError:
        raise InputError(
            f"document {docid!r} (query {rec.qid!r}) is not in the corpus", rec.path, rec.line
        ) from None


def export_rows(
    records: Iterable[MinedQuery], fmt: str, docs: Mapping[str, Document]
) -> Iterator[dict[str, Any]]:
    """Rows of ``fmt`` for ``records``, with texts looked up in ``docs``.

    * ``sentence-transformers``: ``{"query", "positive", "negative"}`` triplets, one row per
      (positive, negative) pair, as ``mine_hard_negatives(output_format="triplet")`` gives.
    * ``flagembedding``: ``{"query", "pos": [text], "neg": [text]}`` per query.
    * ``tevatron``: ``{"query_id", "query", "positive_passages", "negative_passages"}``
      with ``{"docid", "title", "text"}`` passages.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    for rec in records:
        pos = [_doc(docs, d, rec) for d in rec.positives]
        neg = [_doc(docs, n.docid, rec) for n in rec.negatives]
        if fmt == "sentence-transformers":
            for p in pos:
                for n in neg:
                    yield {"query": rec.query, "positive": p.contents, "negative": n.contents}
        elif fmt == "flagembedding":
            yield {"query": rec.query, "pos": [p.contents for p in pos], "neg": [n.contents for n in neg]}
        else:
            yield {
                "query_id": rec.qid,
                "query": rec.query,
                "positive_passages": [{"docid": p.id, "title": p.title, "text": p.text} for p in pos],
                "negative_passages": [{"docid": n.id, "title": n.title, "text": n.text} for n in neg],
            }


def export_negatives(
    records: Iterable[MinedQuery], fmt: str, docs: Mapping[str, Document], out: str | Path
) -> int:
    """Write ``records`` in ``fmt`` as JSON lines (atomically); returns the number of rows."""
    count = 0
    with atomic_write(out) as handle:
        for row in export_rows(records, fmt, docs):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
