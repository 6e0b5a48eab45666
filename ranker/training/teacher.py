"""Teacher scores of a negatives file: written by ``ranker score``, read by the trainer.

A scores file is JSON lines. The first line says who made the scores and from what::

    {"format": "ranker-teacher-scores/1", "teacher": NAME, "teacher_path": PATH,
     "teacher_kind": "cross" | "bi", "teacher_max_length": "N" (or "" : the model's own),
     "negatives": PATH, "negatives_sha256": HEX}

then one line per query of the negatives file, in its order::

    {"qid": str, "scores": {docid: float, ...}}   # every positive and every negative

The sha256 of the negatives file's bytes ties the scores to it: a trainer refuses scores of
another file (or of an edited one), and, when asked, scores of another teacher.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from retrievers.errors import InputError
from retrievers.io.lines import read_jsonl
from retrievers.mining.negatives import MinedQuery

logger = logging.getLogger(__name__)

FORMAT = "ranker-teacher-scores/1"
HEADER_KEYS = (
    "format",
    "teacher",
    "teacher_path",
    "teacher_kind",
    "teacher_max_length",
    "negatives",
    "negatives_sha256",
)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _header(obj: Any, path: Path) -> dict[str, str]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(f"the first line is no teacher-scores header (expected format {FORMAT!r})", path, 1)
    missing = [k for k in HEADER_KEYS if not isinstance(obj.get(k), str)]
    if missing:
        raise InputError(f"the header lacks {', '.join(missing)}", path, 1)
    return {k: obj[k] for k in HEADER_KEYS}


def _scores(obj: Any, path: Path, line: int) -> tuple[str, dict[str, float]]:
    qid, scores = obj.get("qid"), obj.get("scores")
    if not isinstance(qid, str) or not isinstance(scores, dict):
        raise InputError("expected {'qid': str, 'scores': {docid: number}}", path, line)
    for docid, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"score of {docid!r} must be a finite number, got {value!r}", path, line)
    return qid, {d: float(v) for d, v in scores.items()}


@dataclass
class TeacherScores:
    """A read scores file: its header and ``qid -> docid -> score``."""

    path: Path
    header: dict[str, str]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def teacher(self) -> str:
        return self.header["teacher"]

    def get(self, qid: str, docid: str) -> float:
        """The teacher's score of (query, document); NaN when it has none."""
        return self.scores.get(qid, {}).get(docid, math.nan)

    def check(self, negatives: str | Path, teacher: str = "") -> None:
        """Refuse scores made from another negatives file, or (with ``teacher``) by another
        teacher, with one line naming this file.

        Raises:
            InputError: the negatives file's sha256 or the teacher differs.
        """
        digest = file_sha256(negatives)
        if digest != self.header["negatives_sha256"]:
            raise InputError(
                f"these teacher scores are of {self.header['negatives']} "
                f"(sha256 {self.header['negatives_sha256'][:12]}), not of {negatives} "
                f"(sha256 {digest[:12]}); run `ranker score {negatives}` again",
                self.path,
                1,
            )
        if teacher and not _same_teacher(teacher, self.header):
            raise InputError(f"these scores are by teacher {self.teacher!r}, not {teacher!r}", self.path, 1)

    def require(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Every ``(qid, docid)`` must have a score.

        Raises:
            InputError: naming this file and the first pair it lacks.
        """
        for qid, docid in pairs:
            if docid not in self.scores.get(qid, {}):
                raise InputError(
                    f"no teacher score for query {qid!r}, document {docid!r}; "
                    "expected one for every positive and negative",
                    self.path,
                )

    def group(
        self, qids: Sequence[str], pos_ids: Sequence[str], neg_ids: Sequence[Sequence[str]]
    ) -> torch.Tensor:
        """``[B, 1 + n]`` float32 scores of each query's positive then its negatives (NaN where
        the file has none)."""
        rows = [
            [self.get(q, p), *(self.get(q, d) for d in negs)]
            for q, p, negs in zip(qids, pos_ids, neg_ids, strict=True)
        ]
        return torch.tensor(rows, dtype=torch.float32)


def _same_teacher(name: str, header: dict[str, str]) -> bool:
    if name == header["teacher"]:
        return True
    return Path(name).exists() and str(Path(name).resolve()) == header["teacher_path"]


def read_teacher_scores(path: str | Path) -> TeacherScores:
    """Read a complete scores file.

    Raises:
        InputError: one line naming the file (and line) when it is missing, has no header,
            or a line is malformed or repeats a query.
    """
    path = Path(path)
    if path.is_dir() or not path.exists():
        raise InputError("teacher scores file not found (write it with `ranker score`)", path)
    header: dict[str, str] | None = None
    scores: dict[str, dict[str, float]] = {}
    for line, obj in read_jsonl(path):
        if header is None:
            header = _header(obj, path)
            continue
        qid, values = _scores(obj, path, line)
        if qid in scores:
            raise InputError(f"query {qid!r} appears twice", path, line)
        scores[qid] = values
    if header is None:
        raise InputError("empty teacher scores file", path)
    return TeacherScores(path, header, scores)


def _resume(partial: Path) -> set[str]:
    """The queries already scored in ``partial``, whose header :func:`check_resumable`
    accepted (a torn last line is cut off)."""
    done: set[str] = set()
    keep = 0
    with partial.open("rb") as handle:
        lines = handle.read().split(b"\n")
    for number, raw in enumerate(lines[:-1], start=1):  # the text after the last newline is torn
        try:
            obj = json.loads(raw)
        except ValueError:
            break
        if number > 1:
            done.add(_scores(obj, partial, number)[0])
        keep += len(raw) + 1
    with partial.open("r+b") as handle:
        handle.truncate(keep)
    return done


def score_negatives(
    score: Callable[[list[str], list[str]], Sequence[float]],
    records: Sequence[MinedQuery],
    texts: dict[str, str],
    out: str | Path,
    header: dict[str, str],
    chunk_pairs: int = 512,
    progress: bool = True,
) -> int:
    """Score every (query, positive) and (query, negative) of ``records`` and write ``out``.

    Lines go to ``OUT.partial`` as each chunk of queries is scored; an interrupted run resumes
    there (same header) and the file becomes ``out`` (a rename) only when complete.

    Args:
        score: ``(queries, docs) -> scores`` of aligned pairs (the teacher, batched inside).
        records: the negatives file's queries.
        texts: document id -> text, for every listed document.
        out: the scores file.
        header: the first line (see the module docstring).
        chunk_pairs: pairs scored between two writes.

    Returns:
        The number of pairs scored by this call.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    check_resumable(out, header)
    done = _resume(partial) if partial.exists() else set()
    if not partial.exists() or partial.stat().st_size == 0:
        partial.write_text(json.dumps(header) + "\n", encoding="utf-8")
    if done:
        logger.info("%s: resuming after %d scored queries", partial, len(done))
    todo = [r for r in records if r.qid not in done]
    scored = 0
    bar = tqdm(total=len(records), initial=len(done), desc="score", unit="query", disable=not progress)
    with partial.open("a", encoding="utf-8") as handle:
        chunk: list[MinedQuery] = []
        for i, record in enumerate(todo):
            chunk.append(record)
            size = sum(len(r.positives) + len(r.negatives) for r in chunk)
            if size < chunk_pairs and i + 1 < len(todo):
                continue
            scored += _write_chunk(score, chunk, texts, handle)
            bar.update(len(chunk))
            chunk = []
    bar.close()
    os.replace(partial, out)
    return scored


def _write_chunk(score, chunk: list[MinedQuery], texts: dict[str, str], handle) -> int:
    docids = [[*r.positives, *(n.docid for n in r.negatives)] for r in chunk]
    queries = [r.query for r, ids in zip(chunk, docids, strict=True) for _ in ids]
    values = [float(v) for v in score(queries, [texts[d] for ids in docids for d in ids])]
    start = 0
    for record, ids in zip(chunk, docids, strict=True):
        row = dict(zip(ids, values[start : start + len(ids)], strict=True))
        start += len(ids)
        handle.write(json.dumps({"qid": record.qid, "scores": row}) + "\n")
    handle.flush()
    os.fsync(handle.fileno())
    return len(values)


def teacher_side(model: str | Path) -> str:
    """``"cross"`` for a cross-encoder (saved by ranker, or a transformers sequence-classification
    folder), else ``"bi"``: how :func:`load_teacher` reads ``model``."""
    from ranker.models.kind import model_kind

    return "cross" if model_kind(model) in ("crossencoder", "sequence-classification") else "bi"


def check_resumable(out: str | Path, header: dict[str, str]) -> None:
    """Refuse (one line) an unfinished ``OUT.partial`` of another teacher or negatives file,
    before any model is loaded."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if not partial.exists():
        return
    with partial.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    try:
        obj = json.loads(first)
    except ValueError:
        return  # a torn header: _resume starts the file again
    found = {k: obj.get(k) for k in HEADER_KEYS} if isinstance(obj, dict) else {}
    if found != header:
        raise InputError(
            "an unfinished scoring run of another teacher or negatives file is here; "
            "delete it or write to another --out",
            partial,
            1,
        )


def load_teacher(model: str | Path) -> tuple[Any, str]:
    """A teacher or guide model and its side (``"cross"`` or ``"bi"``): a cross-encoder saved by
    ranker or a transformers sequence-classification folder is a cross-encoder; any other
    model ranker loads (a saved bi-encoder, a sentence-transformers or transformers folder, a
    hub id) is read as a bi-encoder (:func:`ranker.models.load_biencoder`)."""
    from ranker.models import CrossEncoder, load_biencoder
    from ranker.models.kind import model_kind

    kind = model_kind(model)
    try:
        if kind == "crossencoder":
            return CrossEncoder.load(model).eval(), "cross"
        if kind == "sequence-classification":
            return CrossEncoder.from_pretrained(str(model)).eval(), "cross"
    except ValueError as err:
        raise InputError(f"cannot load this cross-encoder: {err}", model) from None
    return load_biencoder(model).eval(), "bi"
