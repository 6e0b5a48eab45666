"""Encoders as the dense retriever sees them, and resumable corpus encoding to disk.

``retrievers`` never imports ``ranker``: a dense retriever takes any object with
``encode(texts) -> np.ndarray``; when the object also has ``encode_queries`` /
``encode_corpus`` (asymmetric models, prompts), those are used for queries and documents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.io.dataset import Document
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)

# Documents encoded per encoder call (the progress bar moves this often).
PROGRESS_STEP = 1024


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns a list of texts into a ``(len(texts), dim)`` array."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _as_matrix(out: Any, n: int) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().float().cpu().numpy()
    array = np.asarray(out, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(f"encoder returned shape {array.shape}; expected ({n}, dim)")
    return array


def l2_normalize(array: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero); returns a new array."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def encode_queries(encoder: Encoder, texts: Sequence[str], normalize: bool) -> np.ndarray:
    """Encode queries with ``encode_queries`` when the encoder has it, else ``encode``."""
    fn = getattr(encoder, "encode_queries", None) or encoder.encode
    array = _as_matrix(fn(list(texts)), len(texts))
    return l2_normalize(array) if normalize else array


def encode_documents(encoder: Encoder, texts: Sequence[str], normalize: bool) -> np.ndarray:
    """Encode documents with ``encode_corpus`` when the encoder has it, else ``encode``."""
    fn = getattr(encoder, "encode_corpus", None) or encoder.encode
    array = _as_matrix(fn(list(texts)), len(texts))
    return l2_normalize(array) if normalize else array


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_corpus_shards(
    encoder: Encoder,
    docs: Iterable[Document],
    work_dir: Path,
    settings: dict[str, Any],
    shard_size: int = 4096,
    normalize: bool = True,
    total: int | None = None,
) -> list[Path]:
    """Encode a corpus into ``.npy`` shards under ``work_dir``, resuming a previous attempt.

    Each shard (``shard-NNNNN.npy`` + ``shard-NNNNN.ids``) is written atomically, so an
    interrupted run leaves only complete shards; a rerun with the same ``settings`` skips
    them (checking their document ids still match the corpus) and encodes the rest.

    Args:
        encoder: The document encoder.
        docs: The corpus, streamed in a stable order.
        work_dir: Where shards live (created if missing).
        settings: What must not change between attempts (model, pooling, corpus, ...).
        shard_size: Documents per shard.
        normalize: L2-normalize embeddings (cosine similarity via inner product).
        total: Number of documents, for the progress bar only.

    Returns:
        The shard paths (``.npy``), in corpus order.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    settings_path = work_dir / "settings.json"
    wanted = {**settings, "shard_size": shard_size, "normalize": normalize}
    if settings_path.exists():
        previous = json.loads(settings_path.read_text(encoding="utf-8"))
        if previous != wanted:
            raise InputError(
                "an interrupted build with different settings is in this folder; "
                "delete it or build with the same settings to resume",
                work_dir,
            )
    else:
        with atomic_write(settings_path) as out:
            json.dump(wanted, out, indent=2, sort_keys=True)
    shards: list[Path] = []
    resumed = 0
    with tqdm(total=total, desc="encoding corpus", unit="doc", disable=bars_disabled()) as bar:
        for number, batch in enumerate(_batches(docs, shard_size)):
            npy = work_dir / f"shard-{number:05d}.npy"
            ids_path = npy.with_suffix(".ids")
            ids = [doc.id for doc in batch]
            if npy.exists() and ids_path.exists():
                if ids_path.read_text(encoding="utf-8").split("\n")[:-1] != ids:
                    raise InputError(
                        f"corpus changed since the interrupted build ({npy.name} "
                        "holds other documents); delete the folder to start over",
                        work_dir,
                    )
                resumed += 1
                bar.update(len(batch))
            else:
                parts = []
                for start in range(0, len(batch), PROGRESS_STEP):
                    part = batch[start : start + PROGRESS_STEP]
                    parts.append(encode_documents(encoder, [d.contents for d in part], normalize))
                    bar.update(len(part))
                with atomic_write(npy, "wb") as out:
                    np.save(out, np.concatenate(parts))
                with atomic_write(ids_path) as out:
                    out.write("".join(f"{docid}\n" for docid in ids))
            shards.append(npy)
    if resumed:
        logger.info("resumed: %d of %d shards were already encoded", resumed, len(shards))
    return shards
