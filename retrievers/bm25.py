"""Lucene BM25 through Pyserini's Anserini: build an index, search a batch of queries fast.

Indexing follows Pyserini's BEIR "flat" indexes: title and text in one ``contents`` field,
Lucene's default English analyzer, positions, document vectors and raw documents stored.

Searching scores queries exactly as Anserini's ``SearchCollection`` does, several at a time,
and brings each query's hits across from Java in one piece (see :class:`BM25Searcher`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from tqdm.auto import tqdm

from retrievers.errors import InputError
from retrievers.index_meta import read_meta, write_meta
from retrievers.io.atomic import atomic_directory, scratch_directory
from retrievers.io.dataset import Dataset
from retrievers.java import anserini_jar, detach_thread, java_cast, java_class
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)

Hits = list[tuple[str, float]]


def _threads(threads: int | None) -> int:
    return max(1, threads or os.cpu_count() or 1)


def _parse_args(args_class: str, argv: list[str]):
    """Fill an Anserini ``Args`` object through args4j, exactly as its command line would."""
    args = java_class(args_class)()
    parser = java_class("org.kohsuke.args4j.CmdLineParser")(args)
    values = java_class("java.util.ArrayList")()
    for value in argv:
        values.add(value)
    parser.parseArgument(values)
    return args


def _write_jsonl_shards(dataset: Dataset, folder: Path, shards: int) -> int:
    """Stream the corpus into ``shards`` JsonCollection files; returns the document count."""
    import json

    outs = [(folder / f"docs{i:02d}.jsonl").open("w", encoding="utf-8") for i in range(shards)]
    count = 0
    try:
        for doc in tqdm(
            dataset.docs(), desc="reading corpus", unit="doc", mininterval=1.0, disable=bars_disabled()
        ):
            record = {"id": doc.id, "contents": doc.contents}
            outs[count % shards].write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    finally:
        for out in outs:
            out.close()
    return count


def build_bm25_index(dataset: Dataset, index_dir: str | Path, threads: int | None = None) -> Path:
    """Build a Lucene index of ``dataset``'s corpus in ``index_dir`` (atomically).

    The corpus is streamed to temporary JSON-lines shards (never held in memory) and indexed
    by Anserini's ``IndexCollection``; the folder's ``ranker-index.json`` records what built it.
    Both the index and the shards are built in hidden folders beside ``index_dir``; a killed
    run's leftovers are removed by the next run (see :mod:`retrievers.io.atomic`).
    """
    threads = _threads(threads)
    index_dir = Path(index_dir)
    with contextlib.ExitStack() as stack:
        tmp_index = stack.enter_context(atomic_directory(index_dir))
        staging = str(scratch_directory(index_dir.with_name(index_dir.name + ".corpus")))
        stack.callback(shutil.rmtree, staging, ignore_errors=True)
        count = _write_jsonl_shards(dataset, Path(staging), threads)
        if count == 0:
            raise InputError("the corpus has no documents", getattr(dataset, "name", None))
        args = _parse_args(
            "io.anserini.index.IndexCollection$Args",
            [
                "-collection",
                "JsonCollection",
                "-generator",
                "DefaultLuceneDocumentGenerator",
                "-input",
                staging,
                "-index",
                str(tmp_index),
                "-threads",
                str(threads),
                "-storePositions",
                "-storeDocvectors",
                "-storeRaw",
                "-optimize",
                "-quiet",
            ],
        )
        logger.info("indexing %d documents with Anserini (%d threads)", count, threads)
        indexer = java_class("io.anserini.index.IndexCollection")(args)
        counters = indexer.run()
        indexed = int(counters.indexed.get()) if counters is not None else count
        if indexed != count:
            raise RuntimeError(f"Anserini indexed {indexed} of {count} documents")
        write_meta(
            tmp_index,
            {
                "retriever": "bm25",
                "dataset": dataset.describe(),
                "documents": count,
                "fields": "contents = title + ' ' + text",
                "analyzer": "Lucene default (English)",
                "anserini_jar": anserini_jar().name,
            },
        )
    logger.info("index written to %s", index_dir)
    return index_dir


def _clean(text: str) -> str:
    """Queries go through a TSV topics file: tabs and newlines become spaces."""
    return " ".join(text.split())


_HIT = re.compile(r"doc=\d+ score=\S+ shardIndex=-?\d+ fields=\[(\S+), \[([0-9a-f ]*)\]\]")


def parse_top_docs(text: str) -> Hits:
    """Parse Lucene ``TopFieldDocs`` rendered by commons-lang's ``ReflectionToStringBuilder``.

    Each hit appears as ``doc=N score=S shardIndex=-1 fields=[S, [hex bytes of the id]]``
    (Lucene 9's ``FieldDoc.toString`` and ``BytesRef.toString``); the external id is decoded
    from the sort field's bytes, so no id table is needed.
    """
    return [(bytes.fromhex(raw).decode("utf-8"), float(score)) for score, raw in _HIT.findall(text)]


class BM25Searcher:
    """Batch BM25 search over a Lucene index built by :func:`build_bm25_index` (or by Anserini).

    Queries are analysed and scored exactly as Anserini's ``SearchCollection`` does
    (``DefaultEnglishAnalyzer``, bag-of-words query, ``BM25Similarity(k1, b)``, ties broken by
    document id), but each query's whole result list crosses from Java to Python as one
    string instead of one object per hit, and queries run on several threads (pyjnius
    releases the GIL during Java calls). That is what makes it several times faster than
    ``LuceneSearcher.batch_search`` (see ``benchmarks/bm25_speed.py``).

    Args:
        index_dir: The Lucene index folder.
        k1: BM25 term-frequency saturation (Pyserini's default 0.9).
        b: BM25 length normalization (Pyserini's default 0.4).
        threads: Search threads (default: all cores).
    """

    def __init__(self, index_dir: str | Path, k1: float = 0.9, b: float = 0.4, threads: int | None = None):
        self.index_dir = Path(index_dir)
        if not self.index_dir.is_dir() or not any(self.index_dir.glob("segments_*")):
            raise InputError(
                "not a Lucene index (no segments file); build one with `ranker index`", self.index_dir
            )
        meta_file = self.index_dir / "ranker-index.json"
        self.meta = read_meta(self.index_dir) if meta_file.exists() else {"retriever": "bm25"}
        if self.meta["retriever"] != "bm25":
            raise InputError(
                f"index was built by retriever {self.meta['retriever']!r}, not bm25", self.index_dir
            )
        if k1 <= 0 or not 0 <= b <= 1:
            raise InputError(f"BM25 parameters out of range: k1={k1} (expected > 0), b={b} (expected 0..1)")
        self.k1, self.b, self.threads = k1, b, _threads(threads)
        directory = java_class("org.apache.lucene.store.FSDirectory").open(
            java_class("java.nio.file.Paths").get(str(self.index_dir.resolve()))
        )
        self._reader = java_class("org.apache.lucene.index.DirectoryReader").open(directory)
        self._searcher = java_class("org.apache.lucene.search.IndexSearcher")(
            java_cast("org.apache.lucene.index.IndexReader", self._reader)
        )
        self._searcher.setSimilarity(
            java_class("org.apache.lucene.search.similarities.BM25Similarity")(float(k1), float(b))
        )
        self._analyzer = java_class("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
        self._generator = java_class("io.anserini.search.query.BagOfWordsQueryGenerator")()
        self._sort = java_class("io.anserini.search.SearchCollection").BREAK_SCORE_TIES_BY_DOCID
        self._render = java_class("org.apache.commons.lang3.builder.ReflectionToStringBuilder")

    @property
    def num_docs(self) -> int:
        """Number of documents in the index."""
        return int(self._reader.numDocs())

    def close(self) -> None:
        """Release the index."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BM25Searcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _search_one(self, text: str, k: int) -> Hits:
        query = self._generator.buildQuery("contents", self._analyzer, _clean(text))
        top = self._searcher.search(query, k, self._sort, True)
        return parse_top_docs(self._render.toString(top))

    def _search_many(self, items: list[tuple[str, str]], k: int) -> dict[str, Hits]:
        results: dict[str, Hits] = {}
        errors: list[BaseException] = []

        def work(part: list[tuple[str, str]]) -> None:
            try:
                for qid, text in part:
                    results[qid] = self._search_one(text, k)
            except BaseException as err:  # re-raised in the calling thread
                errors.append(err)
            finally:
                detach_thread()

        workers = [
            threading.Thread(target=work, args=(items[i :: self.threads],), daemon=True)
            for i in range(min(self.threads, len(items)))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]
        return results

    def search_batch(
        self, queries: Mapping[str, str], k: int = 1000, chunk_size: int = 1000, progress: bool = True
    ) -> Iterator[tuple[str, Hits]]:
        """Yield ``(qid, [(docid, score), ...])`` for each query, in input order.

        Hits are ranked by score, ties broken by document id, as Anserini ranks them.
        Queries are searched in chunks of ``chunk_size``, so memory stays bounded whatever
        the number of queries.
        """
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        if self._reader is None:
            raise RuntimeError("searcher is closed")
        items = list(queries.items())
        with tqdm(total=len(items), desc="BM25 search", unit="q", disable=bars_disabled(progress)) as bar:
            for start in range(0, len(items), chunk_size):
                chunk = items[start : start + chunk_size]
                results = self._search_many(chunk, k)
                for qid, _ in chunk:
                    yield qid, results[qid]
                bar.update(len(chunk))

    def search(self, query: str, k: int = 10) -> Hits:
        """Search one query."""
        return self._search_one(query, k)
