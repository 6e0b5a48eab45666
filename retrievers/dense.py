"""Dense retrieval: build a FAISS index folder from any encoder, and search it in batches.

The index folder holds ``index.faiss``, ``docids.txt``, ``embeddings.npy`` (the document
vectors, used to score given pairs such as query-positive) and ``ranker-index.json``
(model, pooling, normalization and FAISS settings), so a searcher can be rebuilt from the
folder alone plus the same encoder. Dense passage retrieval: Karpukhin et al., 2020,
"Dense Passage Retrieval for Open-Domain Question Answering".
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from retrievers.encoding import Encoder, encode_corpus_shards, encode_documents, encode_queries, l2_normalize
from retrievers.errors import InputError
from retrievers.faiss_index import (
    FaissConfig,
    build_index,
    configure_search,
    load_index,
    save_index,
)
from retrievers.index_meta import read_meta, write_meta
from retrievers.io.atomic import atomic_write, resolve_output, write_failure
from retrievers.io.dataset import Dataset
from retrievers.io.trec import ranked
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)

Hits = list[tuple[str, float]]


def _hits(scores: np.ndarray, rows: np.ndarray, docids: Sequence[str]) -> Hits:
    """One query's FAISS result as ranked hits (rows of -1, FAISS's "no result", dropped)."""
    return ranked({docids[i]: float(s) for s, i in zip(scores, rows, strict=True) if i >= 0})


def exact_search(
    encoder: Encoder,
    queries: Mapping[str, str],
    docs: Mapping[str, str],
    k: int = 1000,
    normalize: bool = False,
    chunk_size: int = 1024,
) -> dict[str, Hits]:
    """Exact inner-product search of ``queries`` over an in-memory corpus (FAISS flat index).

    For corpora small enough to embed in one go (evaluation during training); a corpus on
    disk goes through :func:`build_dense_index` and :class:`DenseSearcher` instead, which rank
    the same way. Queries are searched ``chunk_size`` at a time, so no query x corpus matrix
    is held.

    Args:
        encoder: Encodes documents (``encode_corpus`` or ``encode``) and queries
            (``encode_queries`` or ``encode``).
        queries: Query id -> text.
        docs: Document id -> text.
        k: Hits per query (at most the corpus size).
        normalize: L2-normalize both sides (cosine similarity).
        chunk_size: Queries encoded and searched at a time.

    Returns:
        Query id -> hits ranked by score, ties broken by document id.
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    docids = list(docs)
    if not docids:
        return {qid: [] for qid in queries}
    vectors = encode_documents(encoder, [docs[d] for d in docids], normalize)
    index = build_index(FaissConfig("flat"), vectors.shape[1], [vectors])
    k = min(k, len(docids))
    items = list(queries.items())
    out: dict[str, Hits] = {}
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        q = encode_queries(encoder, [text for _, text in chunk], normalize)
        scores, rows = index.search(np.ascontiguousarray(q), k)
        for (qid, _), srow, irow in zip(chunk, scores, rows, strict=True):
            out[qid] = _hits(srow, irow, docids)
    return out


def partial_dir(index_dir: Path) -> Path:
    """Where an interrupted build keeps its encoded shards (beside the index folder)."""
    return index_dir.parent / f".{index_dir.name}.partial"


def build_dense_index(
    dataset: Dataset,
    index_dir: str | Path,
    encoder: Encoder,
    *,
    model: str,
    pooling: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    faiss_config: FaissConfig | None = None,
    normalize: bool = True,
    shard_size: int = 4096,
    seed: int = 0,
) -> Path:
    """Encode ``dataset``'s corpus with ``encoder`` and write a FAISS index folder.

    Encoding streams the corpus in shards and resumes after an interruption (rerun the
    same command). The finished folder appears at ``index_dir`` only when complete.

    Args:
        dataset: The corpus to index (documents as ``title + " " + text``).
        index_dir: Output folder; must not exist or be empty.
        encoder: Object with ``encode`` (and optionally ``encode_corpus``).
        model: Model name or path, recorded so searchers can load the same encoder.
        pooling: Pooling mode, recorded likewise.
        encoder_options: Further loader options (e.g. ``{"attention": "bidirectional"}``),
            recorded likewise; omitted from the record when empty.
        faiss_config: FAISS settings (default: exact flat inner product).
        normalize: L2-normalize vectors (cosine similarity).
        shard_size: Documents encoded per resumable shard.
        seed: Seed for the IVF-PQ training sample.
    """
    index_dir = resolve_output(index_dir)  # a symlinked output: written through the link
    config = faiss_config or FaissConfig()
    if index_dir.exists() and any(index_dir.iterdir()):
        raise FileExistsError(
            f"{index_dir}: index folder exists and is not empty; remove it or choose another"
        )
    work = partial_dir(index_dir)
    settings = {"model": model, "pooling": pooling, "dataset": dataset.describe()}
    if encoder_options:
        settings["encoder_options"] = dict(encoder_options)
    shards = encode_corpus_shards(encoder, dataset.docs(), work, settings, shard_size, normalize)
    if not shards:
        raise InputError("the corpus is empty; nothing to index", dataset.name)
    docids: list[str] = []
    for shard in shards:
        docids.extend(shard.with_suffix(".ids").read_text(encoding="utf-8").split("\n")[:-1])
    dim = int(np.load(shards[0], mmap_mode="r").shape[1])
    out = work / "index"
    out.mkdir(exist_ok=True)
    embeddings = _new_memmap(out / "embeddings.npy", (len(docids), dim))
    row = 0
    for shard in shards:
        array = np.load(shard)
        embeddings[row : row + len(array)] = array
        row += len(array)
    embeddings.flush()
    meta = {"model": model, "pooling": pooling, "normalize": normalize, "dataset": dataset.describe()}
    if encoder_options:
        meta["encoder_options"] = dict(encoder_options)
    _write_index(out, embeddings, docids, config, meta, seed)
    del embeddings
    _move_into_place(out, index_dir)
    shutil.rmtree(work)
    logger.info("dense index written to %s", index_dir)
    return index_dir


def build_dense_index_from_vectors(
    vectors: np.ndarray,
    docids: Sequence[str],
    index_dir: str | Path,
    *,
    model: str,
    pooling: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    faiss_config: FaissConfig | None = None,
    normalize: bool = True,
    dataset: dict[str, Any] | None = None,
    source: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a FAISS index folder from document vectors computed earlier (no encoding).

    Encode once, index many ways: ``vectors`` come from ``ranker encode`` or from another
    dense index's ``embeddings.npy`` (memory-mapped is fine: they are copied chunk by chunk).
    The folder is the same as :func:`build_dense_index` writes for that model and pooling,
    so :class:`DenseSearcher` gives the same results.

    Args:
        vectors: ``(len(docids), dim)`` float array, in ``docids`` order.
        docids: The document ids.
        index_dir: Output folder; must not exist or be empty.
        model, pooling, encoder_options: What encoded ``vectors`` (recorded for searchers).
        faiss_config: FAISS settings (default: exact flat inner product).
        normalize: L2-normalize the vectors (and queries at search time).
        dataset: The corpus description recorded by the encoding, if any.
        source: Where the vectors came from (recorded as ``embeddings_from``).
        seed: Seed for the IVF-PQ training sample.
    """
    index_dir = resolve_output(index_dir)  # a symlinked output: written through the link
    config = faiss_config or FaissConfig()
    if index_dir.exists() and any(index_dir.iterdir()):
        raise FileExistsError(
            f"{index_dir}: index folder exists and is not empty; remove it or choose another"
        )
    if vectors.ndim != 2 or len(vectors) != len(docids):
        raise InputError(f"vectors of shape {vectors.shape} do not match {len(docids)} document ids")
    if not len(docids):
        raise InputError("no document vectors; nothing to index")
    if len(set(docids)) != len(docids):
        raise InputError("the embeddings list a document id twice")
    work = index_dir.parent / f".{index_dir.name}.from-embeddings"
    if work.exists():  # left by a killed attempt; nothing in it is reused
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        embeddings = _new_memmap(work / "embeddings.npy", vectors.shape)
        for start in range(0, len(vectors), _STEP):
            chunk = np.asarray(vectors[start : start + _STEP], dtype=np.float32)
            if not np.isfinite(chunk).all():
                raise InputError(f"the embeddings hold NaN or infinite values (rows from {start})")
            embeddings[start : start + len(chunk)] = l2_normalize(chunk) if normalize else chunk
        embeddings.flush()
        meta = {"model": model, "pooling": pooling, "normalize": normalize, "dataset": dataset}
        if encoder_options:
            meta["encoder_options"] = dict(encoder_options)
        if source:
            meta["embeddings_from"] = source
        _write_index(work, embeddings, list(docids), config, meta, seed)
        del embeddings
        _move_into_place(work, index_dir)
    finally:
        if work.exists():
            shutil.rmtree(work)
    logger.info("dense index written to %s from stored vectors (no encoding)", index_dir)
    return index_dir


_STEP = 65536  # vectors added to FAISS (and copied) at a time


def _new_memmap(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A new float32 ``.npy`` file, memory-mapped, with its disk space reserved first: a full
    disk is an ``OSError`` here, not a SIGBUS when a page of the map is written later."""
    embeddings = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    with open(path, "r+b") as handle:
        os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    return embeddings


def _write_index(
    out: Path,
    embeddings: np.ndarray,
    docids: list[str],
    config: FaissConfig,
    meta: dict[str, Any],
    seed: int,
) -> None:
    """FAISS index, ``docids.txt`` and ``ranker-index.json`` of ``embeddings`` into ``out``."""
    count, dim = embeddings.shape
    sample = None
    if config.kind == "ivfpq":
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(count, size=min(count, 100_000), replace=False))
        sample = np.asarray(embeddings[rows])
    chunks = (np.asarray(embeddings[i : i + _STEP]) for i in range(0, count, _STEP))
    logger.info("building FAISS %s index over %d vectors (dim %d)", config.kind, count, dim)
    save_index(build_index(config, dim, chunks, sample), out / "index.faiss")
    with atomic_write(out / "docids.txt") as handle:
        handle.write("".join(f"{docid}\n" for docid in docids))
    write_meta(
        out,
        {"retriever": "dense", **meta, "faiss": config.to_dict(), "dim": int(dim), "num_docs": int(count)},
    )


def _move_into_place(out: Path, index_dir: Path) -> None:
    try:
        if index_dir.exists():
            index_dir.rmdir()
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out, index_dir)
    except OSError as err:
        raise write_failure(index_dir, err) from None


def read_index_vectors(index_dir: str | Path) -> tuple[dict[str, Any], list[str], np.ndarray]:
    """``(metadata, docids, vectors)`` stored in a dense index folder (vectors memory-mapped)."""
    index_dir = Path(index_dir)
    meta = read_meta(index_dir)
    if meta["retriever"] != "dense":
        raise InputError(f"index was built by retriever {meta['retriever']!r}, not dense", index_dir)
    path = index_dir / "embeddings.npy"
    if not path.is_file():
        raise InputError("embeddings.npy is missing from the dense index", index_dir)
    docids = (index_dir / "docids.txt").read_text(encoding="utf-8").split("\n")[:-1]
    vectors = np.load(path, mmap_mode="r")
    if len(vectors) != len(docids):
        raise InputError(f"holds {len(vectors)} vectors for {len(docids)} document ids", path)
    return meta, docids, vectors


class DenseSearcher:
    """Batch search over a folder written by :func:`build_dense_index`.

    Args:
        index_dir: The index folder.
        encoder: The query encoder (the same model the index was built with).
        gpu: Search on the GPU (``None``: when FAISS sees one).
        chunk_size: Queries encoded and searched at a time.
    """

    def __init__(
        self, index_dir: str | Path, encoder: Encoder, gpu: bool | None = None, chunk_size: int = 1024
    ):
        self.index_dir = Path(index_dir)
        self.meta: dict[str, Any] = read_meta(self.index_dir)
        if self.meta["retriever"] != "dense":
            raise InputError(
                f"index was built by retriever {self.meta['retriever']!r}, not dense", self.index_dir
            )
        self.encoder = encoder
        self.normalize = bool(self.meta.get("normalize", True))
        self.config = FaissConfig(**self.meta["faiss"])
        self.index = load_index(self.index_dir / "index.faiss", self.config, gpu)
        ids_text = (self.index_dir / "docids.txt").read_text(encoding="utf-8")
        self.docids = ids_text.split("\n")[:-1]
        self._row = {docid: i for i, docid in enumerate(self.docids)}
        self.chunk_size = chunk_size
        self._embeddings: np.ndarray | None = None
        self._recent: dict[str, np.ndarray] = {}

    def close(self) -> None:
        """Release the index (searching afterwards is an error)."""
        self.index = None
        self._embeddings = None

    def __enter__(self) -> DenseSearcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, docid: str) -> bool:
        return docid in self._row

    def search_batch(
        self, queries: Mapping[str, str], k: int = 1000, progress: bool = True
    ) -> Iterator[tuple[str, Hits]]:
        """Yield ``(qid, [(docid, score), ...])`` per query in input order.

        Hits are ranked by score, ties broken by document id; queries are encoded and
        searched ``chunk_size`` at a time, so no query x corpus matrix is ever held.
        """
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        k = min(k, len(self.docids))
        configure_search(self.index, self.config, k)
        items = list(queries.items())
        with tqdm(total=len(items), desc="dense search", unit="q", disable=bars_disabled(progress)) as bar:
            for start in range(0, len(items), self.chunk_size):
                chunk = items[start : start + self.chunk_size]
                vectors = encode_queries(self.encoder, [text for _, text in chunk], self.normalize)
                # kept for score_pairs on the same queries (mining scores their positives)
                self._recent = {text: vec for (_, text), vec in zip(chunk, vectors, strict=True)}
                scores, rows = self.index.search(np.ascontiguousarray(vectors), k)
                for (qid, _), srow, irow in zip(chunk, scores, rows, strict=True):
                    yield qid, _hits(srow, irow, self.docids)
                bar.update(len(chunk))

    def search(self, query: str, k: int = 10) -> Hits:
        """Search one query (convenience; use :meth:`search_batch` for many)."""
        return next(self.search_batch({"q": query}, k, progress=False))[1]

    def score_pairs(self, query_texts: Sequence[str], docids: Sequence[str]) -> np.ndarray:
        """Exact similarity of each (query, document) pair, from the stored document vectors.

        Queries of the chunk last searched are not encoded again.
        """
        if self._embeddings is None:
            self._embeddings = np.load(self.index_dir / "embeddings.npy", mmap_mode="r")
        unknown = [d for d in docids if d not in self._row]
        if unknown:
            raise InputError(f"document id {unknown[0]!r} is not in the index", self.index_dir)
        if not len(docids):
            return np.zeros(0, dtype=np.float32)
        missing = list(dict.fromkeys(t for t in query_texts if t not in self._recent))
        fresh = (
            dict(zip(missing, encode_queries(self.encoder, missing, self.normalize), strict=True))
            if missing
            else {}
        )
        vectors = np.stack([self._recent[t] if t in self._recent else fresh[t] for t in query_texts])
        docs = np.asarray(self._embeddings[[self._row[d] for d in docids]])
        return np.einsum("ij,ij->i", vectors, docs)
