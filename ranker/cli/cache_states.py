"""``ranker cache-states``: a frozen backbone's token states for a corpus and its queries."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ranker.cli.parser import whole_number
    from ranker.cli.retrieval import add_max_length_arg

    parser = subparsers.add_parser(
        "cache-states",
        help="cache a frozen backbone's token states (train poolers/adapters without it)",
        description="Run a backbone once over every document of DATASET and the queries of "
        "the chosen splits, and keep the chosen hidden layers' token states (plus token ids "
        "and lengths) in memory-mapped shards under OUT. Training with backbone: {freeze: "
        "all, states: OUT} and `ranker index --states OUT` read them instead of running the "
        "backbone. Rerun the same command to resume; under torchrun each process caches its "
        "own shard. The size on disk is printed before any work starts.",
    )
    parser.add_argument("dataset", help="BEIR / MS MARCO folder, irds:<id>, or a dataset name")
    parser.add_argument("--model", required=True, help="transformers model, ST folder or saved bi-encoder")
    parser.add_argument(
        "--layers",
        default="all",
        help="hidden states to keep: 'all' (embedding output + every layer) or indices like "
        "'-1' or '0,3,6' (negative counts from the last)",
    )
    add_max_length_arg(parser, "texts", "the model's own, else its positions or 512")
    parser.add_argument(
        "--split", action="append", default=None, help="query split(s) to cache (default: all)"
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="storage (and forward autocast) dtype",
    )
    parser.add_argument(
        "--attention", choices=["causal", "bidirectional"], default=None, help="decoder attention"
    )
    parser.add_argument("--query-prefix", default=None, help="prefix of queries (default: the model's)")
    parser.add_argument("--doc-prefix", default=None, help="prefix of documents (default: the model's)")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or one to resume)")
    parser.add_argument("--batch-size", type=whole_number(1), default=32, help="texts per forward pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_layers(text: str, num_layers: int) -> list[int]:
    """``'all'`` or comma-separated indices (negative from the end) -> sorted hidden-state indices."""
    from retrievers.errors import InputError

    total = num_layers + 1
    if text.strip() == "all":
        return list(range(total))
    try:
        chosen = [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"--layers {text!r}: expected 'all' or comma-separated integers") from None
    bad = [i for i in chosen if not -total <= i < total]
    if bad:
        raise InputError(f"--layers {text!r}: {bad} out of range for {total} hidden states")
    return sorted({i % total for i in chosen})


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ranker.encoders.corpus import distributed_rank
    from ranker.encoders.states import (
        StateWriter,
        check_or_write_config,
        estimate_bytes,
        human_bytes,
        texts_fingerprint,
        tokenizer_fingerprint,
        weights_fingerprint,
    )
    from ranker.models import load_biencoder
    from retrievers.errors import InputError
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(args.dataset)
    splits = args.split or dataset.splits()
    for split in splits:
        if split not in dataset.splits():
            raise InputError(f"unknown split {split!r}; the dataset has {', '.join(dataset.splits())}")
    overrides = {"attention": args.attention} if args.attention else {}
    if args.max_length is not None:
        overrides["max_length"] = args.max_length
    model = load_biencoder(args.model, **overrides).eval()
    backbone = model.query_encoder.backbone
    max_length = backbone.fit_max_length(args.max_length or model.doc_encoder.max_length)
    layers = parse_layers(args.layers, backbone.num_layers)
    query_prefix = model.query_encoder.prefix if args.query_prefix is None else args.query_prefix
    doc_prefix = model.doc_encoder.prefix if args.doc_prefix is None else args.doc_prefix
    corpus = [(d.id, d.contents) for d in dataset.docs()]
    parts = {"corpus": [(i, doc_prefix + t) for i, t in corpus]}
    fingerprint = {
        "weights": weights_fingerprint(backbone.base_model, max(layers)),
        "tokenizer": tokenizer_fingerprint(backbone.tokenizer),
        "attention": backbone.attention,
        "append_eos": backbone.append_eos,
        "max_length": max_length,
        "dtype": args.dtype,
        "layers": layers,
        "corpus": texts_fingerprint(corpus),
    }
    for split in splits:
        queries = sorted(dataset.queries(split).items())
        parts[f"queries-{split}"] = [(i, query_prefix + t) for i, t in queries]
        fingerprint[f"queries-{split}"] = texts_fingerprint(queries)
    rank, world = distributed_rank()
    config = {
        "model": str(args.model),
        "dataset": dataset.describe(),
        "layers": layers,
        "hidden_size": backbone.hidden_size,
        "num_layers": backbone.num_layers,
        "max_length": max_length,
        "dtype": args.dtype,
        "query_prefix": query_prefix,
        "doc_prefix": doc_prefix,
        "parts": list(parts),
        "world_size": world,
        "fingerprint": fingerprint,
    }
    out = Path(args.out)

    def tokenize(texts: list[str]) -> list[list[int]]:
        return backbone.tokenize(texts, max_length, pad=False)["input_ids"]

    sample = [t for _, t in parts["corpus"][:: max(1, len(corpus) // 500)]]
    mean_tokens = sum(map(len, tokenize(sample))) / max(len(sample), 1)
    texts = sum(len(items) for items in parts.values())
    estimate = estimate_bytes(int(mean_tokens * texts), backbone.hidden_size, len(layers), args.dtype)
    logger.info(
        "caching %d texts (%d documents, %d queries) x %d layers at ~%.0f tokens each: about %s on disk",
        texts,
        len(corpus),
        texts - len(corpus),
        len(layers),
        mean_tokens,
        human_bytes(estimate),
    )
    check_or_write_config(out, config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    writer = StateWriter(
        forward=lambda features: backbone({k: v.to(device) for k, v in features.items()}, all_layers=True),
        tokenize=tokenize,
        pad=backbone.pad,
        layers=layers,
        hidden=backbone.hidden_size,
        dtype=args.dtype,
        batch_size=args.batch_size,
        device=str(device),
    )
    with torch.no_grad():
        for name, items in parts.items():
            writer.write(out / name, items, rank, world, show_progress=not args.no_progress)
    logger.info("rank %d/%d: states cached in %s", rank, world, out)
    return 0
