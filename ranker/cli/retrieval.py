"""Shared CLI wiring for retrieval: dense index options, and opening any index for search.

Index folders record which retriever built them (``ranker-index.json``), so ``ranker
search`` and ``ranker mine`` open BM25 and dense indexes the same way: :func:`open_searcher`
dispatches on that record and, for dense indexes, loads the recorded model with
:func:`ranker.models.load_biencoder`.
"""

from __future__ import annotations

import argparse
import logging
from functools import cache
from pathlib import Path
from typing import Any

from ranker.cli.parser import whole_number
from ranker.precision import (
    DTYPE_CHOICES,
    DTYPE_HELP,
    FLOAT32,
    Precision,
    apply_precision,
    recorded_precision,
    resolve_precision,
)
from retrievers.errors import InputError

logger = logging.getLogger(__name__)


def add_dense_index_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``ranker index --retriever dense``."""
    group = parser.add_argument_group("dense indexes (--retriever dense)")
    group.add_argument(
        "--model", help="encoder: a ranker or sentence-transformers folder, or a transformers model"
    )
    group.add_argument(
        "--pooling", default=None, help="pooling mode (default: the model's own, else mean for encoders)"
    )
    group.add_argument(
        "--attention",
        choices=["causal", "bidirectional"],
        default=None,
        help="decoder attention (default: the model's own; causal for a plain "
        "decoder); recorded in the index",
    )
    group.add_argument(
        "--faiss",
        choices=["flat", "hnsw", "ivfpq"],
        default="flat",
        help="FAISS index: flat (exact), hnsw or ivfpq (default: flat)",
    )
    group.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="keep raw vectors (dot product) instead of L2-normalizing (cosine)",
    )
    group.add_argument(
        "--embeddings",
        metavar="DIR",
        help="index vectors computed earlier instead of encoding: a `ranker encode` folder or "
        "another dense index (its model, pooling and attention are used; --model, if given, "
        "must match); DATASET is then optional and, if given, must be the encoded corpus",
    )
    group.add_argument(
        "--states",
        metavar="DIR",
        help="embed the documents from a `ranker cache-states` folder instead of running the "
        "backbone (a model whose backbone is that cache's, e.g. one trained with backbone: "
        "{freeze: all}); checked against the cache's fingerprint",
    )
    group.add_argument("--batch-size", type=whole_number(1), default=64, help="encoding batch size")
    add_max_length_arg(group, "documents")
    add_dtype_arg(group, "auto", "; recorded in the index, so queries are encoded the same way")
    group.add_argument(
        "--shard-size", type=whole_number(1), default=4096, help="documents per resumable encoding shard"
    )
    group.add_argument("--hnsw-m", type=int, default=32, help="HNSW neighbours per node")
    group.add_argument("--ef-search", type=int, default=128, help="HNSW search beam width")
    group.add_argument("--nlist", type=int, default=0, help="IVF lists (0: 4 * sqrt(n))")
    group.add_argument("--pq-m", type=int, default=0, help="PQ sub-quantizers (0: automatic)")
    group.add_argument("--nprobe", type=int, default=16, help="IVF lists probed per query")


MODEL_LIMIT = "512, or the model's own limit if smaller (128 for a model with 128 positions)"


def add_max_length_arg(parser: Any, what: str, default: str = MODEL_LIMIT) -> None:
    """``--max-length``: the token budget of dense encoding."""
    parser.add_argument(
        "--max-length",
        type=_positive_length,
        default=None,
        metavar="N",
        help=f"tokens per text when encoding {what}; more than the model's positions is "
        f"capped at them (default: {default})",
    )


def add_dtype_arg(parser: Any, default: str | None, note: str = "") -> None:
    """``--dtype``: the encoding precision (:mod:`ranker.precision`)."""
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default=default, help=DTYPE_HELP + note)


def _positive_length(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {value}")
    return value


class _Batched:
    """Fixes the batch size of a bi-encoder's encode calls; ``precision``: the one in effect."""

    def __init__(self, model: Any, batch_size: int, precision: Precision = FLOAT32):
        self.model, self.batch_size, self.precision = model, batch_size, precision

    def encode(self, texts):
        return self.model.encode(texts, batch_size=self.batch_size)

    def encode_queries(self, texts):
        return self.model.encode_queries(texts, batch_size=self.batch_size)

    def encode_corpus(self, texts):
        return self.model.encode_corpus(texts, batch_size=self.batch_size)


@cache
def load_encoder(
    model: str,
    pooling: str | None,
    batch_size: int = 64,
    attention: str | None = None,
    max_length: int | None = None,
    precision: Precision = FLOAT32,
) -> _Batched:
    """Load (once per process) a bi-encoder through :func:`ranker.models.load_biencoder`;
    ``max_length`` (capped at the model's positions) overrides the model's token budget and
    ``precision`` sets how it computes (``auto``'s OpenVINO choice may fall back to PyTorch:
    the result's ``precision`` is the one in effect)."""
    from ranker.models import load_biencoder

    options = {"attention": attention} if attention else {}
    try:
        loaded = load_biencoder(model, pooling, **options)
    except (OSError, ValueError) as err:
        raise InputError(f"could not load model {model!r}: {err}") from None
    if max_length is not None:
        for tower in (loaded.query_encoder, loaded.doc_encoder):
            tower.max_length = max_length
    if precision != FLOAT32:
        precision = apply_precision(loaded, precision)
    return _Batched(loaded, batch_size, precision)


def build_dense(args: argparse.Namespace, dataset: Any, index_dir: Path) -> Path:
    """Build a dense index from parsed ``ranker index`` arguments."""
    from retrievers.dense import build_dense_index
    from retrievers.faiss_index import FaissConfig

    if not args.model:
        raise InputError("--retriever dense needs --model")
    config = FaissConfig(
        kind=args.faiss,
        hnsw_m=args.hnsw_m,
        ef_search=args.ef_search,
        nlist=args.nlist,
        pq_m=args.pq_m,
        nprobe=args.nprobe,
    )
    attention = getattr(args, "attention", None)
    max_length = getattr(args, "max_length", None)
    states = getattr(args, "states", None)
    if states:
        encoder = _cached_encoder(args, dataset, states, attention)
        max_length = encoder.model.doc_encoder.max_length
        # queries are encoded live as the cache's states were computed
        cached = encoder.model.doc_encoder.backbone.cache.dtype
        precision = FLOAT32 if cached == "float32" else Precision(cached, "autocast")
    else:
        precision = resolve_precision(getattr(args, "dtype", "auto"))
        encoder = load_encoder(args.model, args.pooling, args.batch_size, attention, max_length, precision)
        precision = encoder.precision
    options: dict[str, Any] = {"attention": attention} if attention else {}
    if max_length is not None:
        options["max_length"] = max_length
    options.update(precision.record())
    return build_dense_index(
        dataset,
        index_dir,
        encoder,
        model=args.model,
        pooling=args.pooling,
        encoder_options=options or None,
        faiss_config=config,
        normalize=args.normalize,
        shard_size=args.shard_size,
    )


def _cached_encoder(args: argparse.Namespace, dataset: Any, states: str, attention: str | None) -> _Batched:
    """The model with its backbone served from a states cache (checked: weights, tokenizer,
    max length, corpus)."""
    from ranker.encoders.cached import freeze_backbone
    from ranker.encoders.states import StatesCache, describe_mismatch, texts_fingerprint
    from ranker.models import load_biencoder

    cache = StatesCache(states)
    corpus = texts_fingerprint((d.id, d.contents) for d in dataset.docs())
    if cache.fingerprint.get("corpus") != corpus:
        raise InputError(describe_mismatch(cache.directory, {"corpus": corpus}, cache.fingerprint))
    options = {"attention": attention} if attention else {}
    model = load_biencoder(args.model, args.pooling, **options)
    if args.max_length is not None and args.max_length != cache.max_length:
        raise InputError(f"--max-length {args.max_length} differs from the states cache's {cache.max_length}")
    for tower in (model.query_encoder, model.doc_encoder):
        tower.max_length = cache.max_length
    return _Batched(freeze_backbone(model, "all", states), args.batch_size)


def _same_model(given: str, recorded: str) -> bool:
    if given == recorded:
        return True
    a, b = Path(given), Path(recorded)
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def _stored_vectors(folder: Path) -> tuple[dict[str, Any], list[str], Any]:
    """``(record, docids, vectors)`` of a ``ranker encode`` folder or a dense index; the
    record has ``model``, ``pooling``, ``encoder_options`` and ``dataset``."""
    from ranker.encoders.corpus import CONFIG_NAME, read_embeddings
    from retrievers.dense import read_index_vectors
    from retrievers.index_meta import META_FILE

    if (folder / META_FILE).is_file():
        meta, docids, vectors = read_index_vectors(folder)
        return meta, docids, vectors
    if (folder / CONFIG_NAME).is_file():
        import json

        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        docids, vectors = read_embeddings(folder)
        pooling = config.get("pooling")
        attention = config.get("attention")
        if config.get("limit"):
            logger.warning("%s holds only the first %d documents (--limit)", folder, config["limit"])
        options = {"attention": attention} if attention else {}
        options.update(recorded_precision(config, folder).record())
        record = {
            "model": config["model"],
            "pooling": pooling.get("mode") if isinstance(pooling, dict) else pooling,
            "encoder_options": options,
            "dataset": config.get("dataset"),
        }
        return record, docids, vectors
    raise InputError(
        f"not an encoding ({CONFIG_NAME} from `ranker encode`) nor a dense index ({META_FILE})", folder
    )


def _same_corpus(dataset: Any, recorded: dict[str, Any] | None) -> bool:
    if not recorded:
        return True
    mine = dataset.describe()
    if mine.get("fingerprint") and recorded.get("fingerprint"):
        return mine["fingerprint"] == recorded["fingerprint"]
    return mine == recorded


def build_dense_from_embeddings(args: argparse.Namespace, dataset: Any | None, index_dir: Path) -> Path:
    """``ranker index --retriever dense --embeddings DIR``: index stored vectors, no encoding.

    Raises:
        InputError: the folder holds no vectors, or ``--model`` / ``--pooling`` /
            ``--attention`` / DATASET differ from what computed them (naming both).
    """
    from retrievers.dense import build_dense_index_from_vectors
    from retrievers.faiss_index import FaissConfig

    folder = Path(args.embeddings)
    if not folder.is_dir():
        raise InputError(
            "--embeddings folder not found (expected `ranker encode` output or a dense index)", folder
        )
    record, docids, vectors = _stored_vectors(folder)
    model, pooling = record["model"], record.get("pooling")
    options = record.get("encoder_options") or {}
    if args.model and not _same_model(args.model, model):
        raise InputError(
            f"--model {args.model!r} differs from {model!r}, which computed these embeddings", folder
        )
    if args.pooling and args.pooling != pooling:
        recorded = repr(pooling) if pooling else "the model's default"
        raise InputError(
            f"--pooling {args.pooling!r} differs from {recorded}, which computed these embeddings", folder
        )
    attention, recorded_attention = getattr(args, "attention", None), options.get("attention")
    if attention and attention != recorded_attention:
        recorded = repr(recorded_attention) if recorded_attention else "the model's default"
        raise InputError(
            f"--attention {attention!r} differs from {recorded}, which computed these embeddings", folder
        )
    if dataset is not None and not _same_corpus(dataset, record.get("dataset")):
        raise InputError(f"these embeddings were computed from another corpus than {dataset.name!r}", folder)
    config = FaissConfig(
        kind=args.faiss,
        hnsw_m=args.hnsw_m,
        ef_search=args.ef_search,
        nlist=args.nlist,
        pq_m=args.pq_m,
        nprobe=args.nprobe,
    )
    logger.info(
        "indexing %d stored vectors from %s (model %s, pooling %s)", len(docids), folder, model, pooling
    )
    return build_dense_index_from_vectors(
        vectors,
        docids,
        index_dir,
        model=model,
        pooling=pooling,
        encoder_options=options or None,
        faiss_config=config,
        normalize=args.normalize,
        dataset=record.get("dataset"),
        source=str(folder.resolve()),
    )


def open_searcher(
    index_dir: str | Path,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    threads: int | None = None,
    gpu: bool | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    dtype: str | None = None,
) -> tuple[str, Any]:
    """Open any index folder for search; returns ``(retriever name, searcher)``.

    Dense queries are encoded with ``max_length`` tokens, else the index's recorded
    ``--max-length``, else the model's own budget; in the precision ``dtype`` names (a
    ``--dtype`` value), else the one the index records, so queries and documents match."""
    from retrievers.index_meta import read_meta

    meta = read_meta(index_dir)
    kind = meta["retriever"]
    if kind == "dense":
        from retrievers.dense import DenseSearcher

        options = meta.get("encoder_options") or {}
        length = max_length or options.get("max_length")
        precision = recorded_precision(options, index_dir) if dtype is None else resolve_precision(dtype)
        encoder = load_encoder(
            meta["model"], meta.get("pooling"), batch_size, options.get("attention"), length, precision
        )
        return kind, DenseSearcher(index_dir, encoder, gpu=gpu)
    if kind == "bm25":
        from retrievers.bm25 import BM25Searcher

        return kind, BM25Searcher(index_dir, k1=k1, b=b, threads=threads)
    raise InputError(f"unknown retriever {kind!r} in the index metadata", index_dir)


def open_searchers(index_dirs: list[str], **kw: Any) -> dict[str, Any]:
    """Open several indexes, labelled by retriever (``name:folder`` when a name repeats)."""
    opened = [open_searcher(d, **kw) for d in index_dirs]
    names = [name for name, _ in opened]
    labels = [
        name if names.count(name) == 1 else f"{name}:{Path(d).name}"
        for (name, _), d in zip(opened, index_dirs, strict=True)
    ]
    if len(set(labels)) != len(labels):
        raise InputError("the same index is given twice")
    return {label: searcher for label, (_, searcher) in zip(labels, opened, strict=True)}
