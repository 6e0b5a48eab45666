"""FAISS index construction and loading for dense retrieval.

Three index kinds, all with inner-product similarity (cosine when the embeddings are
L2-normalized):

* ``flat``: exact search (:class:`faiss.IndexFlatIP`).
* ``hnsw``: graph search (Malkov & Yashunin, 2018, "Efficient and robust approximate nearest
  neighbor search using Hierarchical Navigable Small World graphs").
* ``ivfpq``: inverted lists with product quantization (Jégou et al., 2011, "Product
  Quantization for Nearest Neighbor Search").

GPU FAISS (the ``faiss-gpu`` extra) is used for searching when a GPU is visible and the index
kind supports it; otherwise everything runs on the CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievers.errors import InputError

logger = logging.getLogger(__name__)

FAISS_KINDS = ("flat", "hnsw", "ivfpq")
# FAISS's k-means warns below this many training points per centroid.
MIN_POINTS_PER_CENTROID = 39


@dataclass(frozen=True)
class FaissConfig:
    """How to build a FAISS index.

    Attributes:
        kind: ``flat`` (exact), ``hnsw`` or ``ivfpq``.
        hnsw_m: Neighbours per node of the HNSW graph.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search-time beam width (raised to ``k`` when smaller).
        nlist: IVF lists; 0 picks ``4 * sqrt(n)`` capped so each list trains on >= 39 points.
        pq_m: PQ sub-quantizers; 0 picks the largest divisor of the dimension <= dim / 4.
        nprobe: IVF lists visited per query.
    """

    kind: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int = 0
    pq_m: int = 0
    nprobe: int = 16

    def __post_init__(self) -> None:
        if self.kind not in FAISS_KINDS:
            raise InputError(
                f"unknown FAISS index kind {self.kind!r}; expected one of {', '.join(FAISS_KINDS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as recorded in the index metadata."""
        return asdict(self)


def _faiss():
    import faiss

    return faiss


def _pq_m(dim: int, wanted: int) -> int:
    if wanted:
        if dim % wanted:
            raise InputError(f"pq_m={wanted} must divide the embedding dimension {dim}")
        return wanted
    return max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)


def build_index(
    config: FaissConfig, dim: int, chunks: Iterable[np.ndarray], train_sample: np.ndarray | None = None
):
    """Build a CPU FAISS index from embedding chunks (each ``(n, dim)`` float32).

    Args:
        config: Index settings.
        dim: Embedding dimension.
        chunks: Embeddings in document order, added chunk by chunk (never all in memory for
            ``flat`` and ``hnsw`` beyond what the index itself stores).
        train_sample: Vectors to train ``ivfpq`` on (required for that kind).
    """
    faiss = _faiss()
    metric = faiss.METRIC_INNER_PRODUCT
    if config.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, metric)
        index.hnsw.efConstruction = config.ef_construction
    else:
        if train_sample is None or len(train_sample) == 0:
            raise InputError("ivfpq needs training vectors (an empty corpus cannot be indexed)")
        n = len(train_sample)
        nlist = config.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        nbits = max(1, min(8, int(math.log2(max(2, n // 4)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, _pq_m(dim, config.pq_m), nbits, metric)
        centroids = max(nlist, 2**nbits)
        if n < MIN_POINTS_PER_CENTROID * centroids:
            # FAISS would print its clustering warning for every sub-quantizer; say it once
            logger.warning(
                "the corpus is small for IVF-PQ: %d training vectors for %d IVF lists and %d PQ "
                "centroids per sub-quantizer (FAISS wants %d per centroid); results may be poor, "
                "a flat or hnsw index is exact or close at this size",
                n,
                nlist,
                2**nbits,
                MIN_POINTS_PER_CENTROID,
            )
            index.cp.min_points_per_centroid = 1
            index.pq.cp.min_points_per_centroid = 1
        logger.info("training IVF-PQ (nlist=%d, nbits=%d) on %d vectors", nlist, nbits, n)
        index.train(np.ascontiguousarray(train_sample, dtype=np.float32))
    for chunk in chunks:
        index.add(np.ascontiguousarray(chunk, dtype=np.float32))
    return index


def configure_search(index, config: FaissConfig, k: int) -> None:
    """Set the search-time knobs (HNSW beam width, IVF probes) on a loaded index."""
    faiss = _faiss()
    if config.kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = max(config.ef_search, k)
    elif config.kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = config.nprobe


def save_index(index, path: str | Path) -> None:
    """Write a CPU index to ``path`` (atomically; a full disk is one error naming ``path``)."""
    from retrievers.io.atomic import atomic_write

    faiss = _faiss()
    with atomic_write(path, "wb") as handle:  # through Python: OS errors keep their errno
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))


def load_index(path: str | Path, config: FaissConfig, gpu: bool | None = None):
    """Read an index; move it to the GPU(s) when ``gpu`` is true or ``None`` and one is present.

    HNSW has no GPU implementation and always stays on the CPU.
    """
    faiss = _faiss()
    if not Path(path).is_file():
        raise InputError("FAISS index file missing (rebuild the index with `ranker index`)", path)
    index = faiss.read_index(str(path))
    gpus = getattr(faiss, "get_num_gpus", lambda: 0)()
    if gpu is None:
        gpu = gpus > 0
    if gpu and gpus == 0:
        raise InputError("GPU search requested but FAISS sees no GPU (install the faiss-gpu extra)")
    if gpu and config.kind != "hnsw":
        logger.info("moving the FAISS index to %d GPU(s)", gpus)
        index = faiss.index_cpu_to_all_gpus(index)
    return index
