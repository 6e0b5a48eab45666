"""Datasets: a corpus that streams, plus queries and qrels per split.

Three sources share one interface (:class:`Dataset`):

* a folder in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``;
* a folder in MS MARCO layout: ``collection.tsv``, ``queries.<split>.tsv``,
  ``qrels.<split>.tsv`` (TREC-style qrels);
* an ``ir_datasets`` id, written ``irds:<id>``.

Any file of a folder may be gzipped instead (``corpus.jsonl.gz``, ``qrels/test.tsv.gz``...):
it is read transparently and streamed.

:func:`load_dataset` resolves what a user typed on the command line.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrievers.errors import DatasetUnavailableError, InputError
from retrievers.io.lines import check_id, read_jsonl, read_tsv, require_id, require_str, strip_gz, with_gz
from retrievers.io.trec import QrelsDict, add_judgment, iter_trec_qrels

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class Document:
    """One corpus document."""

    id: str
    text: str
    title: str = ""

    @property
    def contents(self) -> str:
        """Title and text as one field, as Pyserini's BEIR "flat" indexes store them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


class Dataset(abc.ABC):
    """A corpus with queries and relevance judgments for one or more splits."""

    name: str
    layout: str

    @abc.abstractmethod
    def docs(self) -> Iterator[Document]:
        """Stream the corpus; raises :class:`InputError` on a malformed line or duplicate id."""

    @abc.abstractmethod
    def splits(self) -> list[str]:
        """The splits that have judgments."""

    @abc.abstractmethod
    def queries(self, split: str) -> dict[str, str]:
        """Queries of ``split`` (id -> text), in file order."""

    @abc.abstractmethod
    def qrels(self, split: str) -> QrelsDict:
        """Judgments of ``split``: query id -> document id -> relevance."""

    def describe(self) -> dict[str, Any]:
        """What identifies this dataset (recorded next to indexes and runs)."""
        return {"name": self.name, "layout": self.layout}

    def _check_split(self, split: str) -> None:
        available = self.splits()
        if split not in available:
            raise InputError(
                f"dataset {self.name!r} has no split {split!r}; available: {', '.join(available) or 'none'}"
            )


def _unique(ids: set[str], docid: str, path: Path, line: int) -> None:
    if docid in ids:
        raise InputError(f"duplicate document id {docid!r}", path, line)
    ids.add(docid)


def file_stamp(*paths: Path) -> str:
    """A cheap identity of files from their names, sizes and modification times (not their
    contents: a content hash is a *fingerprint*, see ``ranker.experiments.cache``)."""
    digest = hashlib.sha256()
    for path in paths:
        if path.exists():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


class _FolderDataset(Dataset):
    """Shared logic of the two folder layouts."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.name = self.root.name
        self._queries: dict[str, dict[str, str]] = {}
        self._qrels: dict[str, QrelsDict] = {}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": str(self.root.resolve()),
            "corpus_stamp": file_stamp(self.corpus_path),
        }

    @property
    @abc.abstractmethod
    def corpus_path(self) -> Path:
        """The corpus file."""

    def qrels(self, split: str) -> QrelsDict:
        self._check_split(split)
        if split not in self._qrels:
            known = self._known_queries(split)
            path = self._qrels_path(split)
            qrels: QrelsDict = {}
            for number, qid, docid, rel in self._qrels_lines(path):
                if qid not in known:
                    raise InputError(
                        f"qrels name query {qid!r}, which is not in the queries file", path, number
                    )
                add_judgment(qrels, qid, docid, rel, path, number)
            self._qrels[split] = qrels
        return self._qrels[split]

    @abc.abstractmethod
    def _qrels_path(self, split: str) -> Path: ...

    @abc.abstractmethod
    def _qrels_lines(self, path: Path) -> Iterator[tuple[int, str, str, str]]: ...

    @abc.abstractmethod
    def _known_queries(self, split: str) -> dict[str, str]: ...


class BeirDataset(_FolderDataset):
    """A folder in BEIR layout (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)."""

    layout = "beir"

    @property
    def corpus_path(self) -> Path:
        return with_gz(self.root / "corpus.jsonl")

    def docs(self) -> Iterator[Document]:
        seen: set[str] = set()
        path = self.corpus_path
        for number, obj in read_jsonl(path):
            docid = require_id(obj, "_id", path, number)
            _unique(seen, docid, path, number)
            text = require_str(obj, "text", path, number)
            title = require_str(obj, "title", path, number) if "title" in obj else ""
            yield Document(docid, text, title)

    def splits(self) -> list[str]:
        folder = self.root / "qrels"
        files = [*folder.glob("*.tsv"), *folder.glob("*.tsv.gz")]
        return sorted({strip_gz(p.name)[: -len(".tsv")] for p in files})

    def _all_queries(self) -> dict[str, str]:
        if "*" not in self._queries:
            path = with_gz(self.root / "queries.jsonl")
            queries: dict[str, str] = {}
            for number, obj in read_jsonl(path):
                qid = require_id(obj, "_id", path, number)
                if qid in queries:
                    raise InputError(f"duplicate query id {qid!r}", path, number)
                queries[qid] = require_str(obj, "text", path, number, allow_empty=False)
            self._queries["*"] = queries
        return self._queries["*"]

    def _known_queries(self, split: str) -> dict[str, str]:
        return self._all_queries()

    def queries(self, split: str) -> dict[str, str]:
        judged = self.qrels(split)
        return {qid: text for qid, text in self._all_queries().items() if qid in judged}

    def _qrels_path(self, split: str) -> Path:
        return with_gz(self.root / "qrels" / f"{split}.tsv")

    def _qrels_lines(self, path: Path) -> Iterator[tuple[int, str, str, str]]:
        empty = True  # a header alone is a valid empty split (what `ranker pool` writes)
        for number, fields in read_tsv(path, 3, 4, "query-id, corpus-id, score (tab-separated)"):
            first, empty = empty, False
            if first and fields[0] == "query-id":
                continue
            yield number, fields[0], fields[1], fields[-1]
        if empty:
            raise InputError(
                "the qrels file is empty (expected a header and query-id, corpus-id, score lines)", path
            )


class MsMarcoDataset(_FolderDataset):
    """A folder in MS MARCO layout (``collection.tsv``, ``queries.<split>.tsv``, ``qrels.<split>.tsv``)."""

    layout = "msmarco"

    @property
    def corpus_path(self) -> Path:
        return with_gz(self.root / "collection.tsv")

    def docs(self) -> Iterator[Document]:
        seen: set[str] = set()
        path = self.corpus_path
        for number, fields in read_tsv(path, 2, 3, "pid<TAB>text or pid<TAB>title<TAB>text"):
            docid = check_id(fields[0], "document id", path, number)
            _unique(seen, docid, path, number)
            if len(fields) == 3:
                yield Document(docid, fields[2], fields[1])
            else:
                yield Document(docid, fields[1])

    def splits(self) -> list[str]:
        files = [*self.root.glob("qrels.*.tsv"), *self.root.glob("qrels.*.tsv.gz")]
        return sorted({strip_gz(p.name)[len("qrels.") : -len(".tsv")] for p in files})

    def _known_queries(self, split: str) -> dict[str, str]:
        return self.queries(split)

    def queries(self, split: str) -> dict[str, str]:
        self._check_split(split)
        if split not in self._queries:
            path = with_gz(self.root / f"queries.{split}.tsv")
            queries: dict[str, str] = {}
            for number, (qid, text) in read_tsv(path, 2, 2, "qid<TAB>query text"):
                check_id(qid, "query id", path, number)
                if not text.strip():
                    raise InputError(f"query {qid!r} is empty (expected non-empty text)", path, number)
                if qid in queries:
                    raise InputError(f"duplicate query id {qid!r}", path, number)
                queries[qid] = text
            self._queries[split] = queries
        return self._queries[split]

    def _qrels_path(self, split: str) -> Path:
        return with_gz(self.root / f"qrels.{split}.tsv")

    def _qrels_lines(self, path: Path) -> Iterator[tuple[int, str, str, str]]:
        return iter_trec_qrels(path)


def _short_reason(err: BaseException) -> str:
    """``ConnectionError: cannot reach HOST`` rather than urllib3's paragraph."""
    import re

    text = str(err)
    host = re.search(r"host='([^']+)'", text)
    if host:
        return f"{type(err).__name__}: cannot reach {host[1]}"
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first[:120]}" if first else type(err).__name__


def _quiet_ir_datasets() -> None:
    """ir_datasets logs through its own handlers at INFO (download retries, "[error] opening
    zip file"), before the error we report anyway: keep only its errors unless debugging."""
    import ir_datasets.log as irds_log

    if getattr(irds_log.Logger, "_ranker_quiet", False):
        return
    original = irds_log.Logger.logger

    def logger(self):
        log = original(self)
        if not logging.getLogger("retrievers").isEnabledFor(logging.DEBUG):
            log.setLevel(logging.ERROR)
        return log

    irds_log.Logger.logger = logger
    irds_log.Logger._ranker_quiet = True


class IrdsDataset(Dataset):
    """A dataset from ``ir_datasets``.

    Split ``s`` is the sub-dataset ``<id>/s`` (``irds:beir/scifact`` with split ``test`` reads
    ``beir/scifact/test``); ``default`` is the dataset itself. :meth:`splits` lists those with
    judgments. As for folders, an unknown split is an error naming the available ones, and
    duplicate query ids or judgments are refused (the "line" in errors is the record's
    position in ir_datasets' iterator).
    """

    layout = "irds"

    def __init__(self, dataset_id: str):
        import ir_datasets

        _quiet_ir_datasets()
        self._irds = ir_datasets
        self.dataset_id = dataset_id
        self.name = f"irds:{dataset_id}"
        try:
            self._base = ir_datasets.load(dataset_id)
        except KeyError:
            raise InputError(f"unknown ir_datasets id {dataset_id!r}") from None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "id": self.dataset_id}

    def _subsets(self) -> dict[str, Any]:
        """Direct sub-datasets by split name (``beir/scifact/test`` -> ``test``)."""
        prefix = f"{self.dataset_id}/"
        names = [n[len(prefix) :] for n in self._irds.registry if n.startswith(prefix)]
        return {n: self._irds.load(prefix + n) for n in sorted(names) if "/" not in n}

    def _for_split(self, split: str, need: str) -> Any:
        """The ir_datasets dataset of ``split``, which must have ``need`` (queries or qrels)."""
        subsets = self._subsets()
        source = self._base if split == "default" else subsets.get(split)
        if source is None or not getattr(source, f"has_{need}")():
            having = [
                s for s, d in [("default", self._base), *subsets.items()] if getattr(d, f"has_{need}")()
            ]
            what = "no split" if source is None else f"no {need} in split"
            raise InputError(
                f"ir_datasets {self.dataset_id!r} has {what} {split!r}; splits with {need}: "
                f"{', '.join(having) or 'none'}"
            )
        return source

    def _iterate(self, what: str, iterator_factory):
        try:
            yield from iterator_factory()
        except (OSError, ConnectionError, RuntimeError) as err:  # downloads fail offline
            raise DatasetUnavailableError(
                f"could not read {what} of ir_datasets {self.dataset_id!r} ({_short_reason(err)}); "
                "if this machine is offline, put a local copy in BEIR or MS MARCO layout under "
                "$RANKER_DATA and name it by folder"
            ) from None

    def docs(self) -> Iterator[Document]:
        if not self._base.has_docs():
            raise InputError(f"ir_datasets {self.dataset_id!r} has no documents")
        seen: set[str] = set()
        for number, doc in enumerate(self._iterate("documents", self._base.docs_iter), start=1):
            _unique(seen, doc.doc_id, Path(self.name), number)
            yield Document(doc.doc_id, getattr(doc, "text", "") or "", getattr(doc, "title", "") or "")

    def splits(self) -> list[str]:
        candidates = [("default", self._base), *self._subsets().items()]
        return [name for name, dataset in candidates if dataset.has_qrels()]

    def queries(self, split: str) -> dict[str, str]:
        source = self._for_split(split, "queries")
        where = f"{self.name} ({split} queries)"
        queries: dict[str, str] = {}
        for number, query in enumerate(self._iterate("queries", source.queries_iter), start=1):
            qid = check_id(str(query.query_id), "query id", where, number)
            text = getattr(query, "text", None) or getattr(query, "title", "")
            if not str(text).strip():
                raise InputError(f"query {qid!r} is empty (expected non-empty text)", where, number)
            if qid in queries:
                raise InputError(f"duplicate query id {qid!r}", where, number)
            queries[qid] = str(text)
        return queries

    def qrels(self, split: str) -> QrelsDict:
        source = self._for_split(split, "qrels")
        where = f"{self.name} ({split} qrels)"
        qrels: QrelsDict = {}
        for number, qrel in enumerate(self._iterate("qrels", source.qrels_iter), start=1):
            add_judgment(qrels, str(qrel.query_id), str(qrel.doc_id), str(qrel.relevance), where, number)
        return qrels


def open_folder(root: str | Path) -> Dataset:
    """Open a dataset folder, detecting its layout from the files present."""
    root = Path(root)
    if with_gz(root / "corpus.jsonl").is_file():
        return BeirDataset(root)
    if with_gz(root / "collection.tsv").is_file():
        return MsMarcoDataset(root)
    raise InputError(
        "not a dataset folder: expected corpus.jsonl(.gz) (BEIR layout) or collection.tsv(.gz) "
        "(MS MARCO layout)",
        root,
    )


def search_path() -> list[Path]:
    """Where bare dataset names are looked up: ``$RANKER_DATA`` (``:``-separated), then ``data/``."""
    env = os.environ.get("RANKER_DATA", "")
    return [Path(p) for p in env.split(os.pathsep) if p] + [REPO_DATA]


def load_dataset(spec: str | Path) -> Dataset:
    """Resolve a dataset named on the command line.

    Args:
        spec: a folder path, ``irds:<ir_datasets id>``, or a bare name such as ``scifact``
            looked up under ``$RANKER_DATA`` and then the repository's ``data/`` folder.
    """
    text = str(spec)
    if text.startswith("irds:"):
        return IrdsDataset(text[len("irds:") :])
    path = Path(text).expanduser()
    if path.is_dir():
        return open_folder(path)
    if os.sep not in text and "/" not in text:
        for base in search_path():
            if (base / text).is_dir():
                return open_folder(base / text)
    places = ", ".join(str(p) for p in search_path())
    raise DatasetUnavailableError(
        f"dataset {text!r} not found: not a folder, and not under {places}. Give a folder in BEIR "
        "or MS MARCO layout, irds:<ir_datasets id>, or set RANKER_DATA to a folder that holds it"
    )
