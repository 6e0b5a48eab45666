"""``ranker encode``: embed a corpus with a bi-encoder into a memory-mapped array plus ids."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ranker.cli.retrieval import MODEL_LIMIT, add_dtype_arg, add_max_length_arg

    parser = subparsers.add_parser(
        "encode",
        help="embed a corpus with a bi-encoder (resumable, shards under torchrun)",
        description="Encode every document (title + text) of DATASET with a bi-encoder into "
        "OUT/shard-*.f32 (float32, memory-mappable) and OUT/shard-*.ids.txt. Rerun "
        "the same command to resume an interrupted encoding. Under torchrun each "
        "process encodes its own contiguous shard; ranker.encoders.read_embeddings "
        "reads all shards back as one array.",
    )
    parser.add_argument("dataset", help="BEIR / MS MARCO folder, irds:<id>, or a dataset name")
    parser.add_argument(
        "--model",
        required=True,
        help="saved ranker bi-encoder, sentence-transformers folder, or any "
        "transformers model (hub id or folder)",
    )
    parser.add_argument(
        "--pooling",
        default=None,
        help="pooler name (default: the model's own, else mean for encoders and last-token for decoders)",
    )
    parser.add_argument(
        "--attention",
        choices=["causal", "bidirectional"],
        default=None,
        help="decoder attention (default: the model's own; causal for a plain decoder)",
    )
    parser.add_argument("--out", required=True, help="output folder (new, empty, or one to resume)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (64)")
    add_max_length_arg(parser, "documents", "the model's own (a saved model's setting), else " + MODEL_LIMIT)
    parser.add_argument("--doc-prefix", default=None, help="instruction prefix for documents")
    add_dtype_arg(parser, "auto", " (on a GPU: bfloat16 where it supports bf16); recorded in OUT")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument(
        "--block-size", type=int, default=8192, help="documents between progress records (8192)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _device(requested: str | None):
    import os

    import torch

    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def run(args: argparse.Namespace) -> int:
    import itertools

    from ranker.encoders.corpus import distributed_rank, encode_to_directory
    from ranker.models import load_biencoder
    from ranker.precision import apply_precision, resolve_precision
    from retrievers.errors import InputError
    from retrievers.io.dataset import load_dataset

    for name in ("batch_size", "block_size", "limit", "max_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
    dataset = load_dataset(args.dataset)
    overrides = {}
    if args.max_length is not None:
        overrides["max_length"] = args.max_length
    if args.doc_prefix is not None:
        overrides["doc_prefix"] = args.doc_prefix
    if args.attention is not None:
        overrides["attention"] = args.attention
    model = load_biencoder(args.model, pooling=args.pooling, **overrides)
    encoder = model.doc_encoder
    if args.max_length is not None:
        encoder.max_length = args.max_length
    if args.doc_prefix is not None:
        encoder.prefix = args.doc_prefix
    device = _device(args.device)
    precision = resolve_precision(args.dtype, device)
    precision = apply_precision(model.to(device), precision)
    rank, world = distributed_rank()

    def docs():
        stream = ((d.id, d.contents) for d in dataset.docs())
        return itertools.islice(stream, args.limit) if args.limit else stream

    settings = {
        "model": str(args.model),
        "pooling": encoder.pooler.get_config(),
        "max_length": encoder.max_length,
        "doc_prefix": encoder.prefix,
        "normalize": encoder.normalize,
        "attention": encoder.backbone.attention,
        **precision.record(),
        "limit": args.limit,
        "dataset": dataset.describe(),
    }
    encode_to_directory(
        lambda texts: encoder.encode(texts, batch_size=args.batch_size),
        docs,
        args.out,
        dim=encoder.output_dim,
        settings=settings,
        rank=rank,
        world_size=world,
        block_size=args.block_size,
        show_progress=not args.no_progress,
    )
    logger.info("rank %d/%d: encoded shard into %s", rank, world, args.out)
    return 0
