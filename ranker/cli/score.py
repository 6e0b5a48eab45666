"""``ranker score NEGATIVES --dataset DATASET --model M --out SCORES``: a teacher's scores of every
(query, positive) and (query, negative) of a negatives file, for distillation and guide masking."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ranker.cli.parser import whole_number
    from ranker.cli.retrieval import add_max_length_arg

    parser = subparsers.add_parser(
        "score",
        help="a teacher's scores of every pair of a negatives file (for distillation)",
        description="Score every (query, positive) and (query, negative) of NEGATIVES (written by "
        "`ranker mine`) with a teacher: a cross-encoder (saved by ranker, or a transformers "
        "sequence-classification folder) or any bi-encoder ranker loads (inner product of its "
        "embeddings). SCORES records the teacher and the sha256 of NEGATIVES, so `ranker train` "
        "refuses scores of another file or teacher. Lines go to SCORES.partial as they are "
        "scored; rerun the same command to resume; SCORES appears only when complete.",
    )
    parser.add_argument("negatives", help="negatives JSONL written by `ranker mine`")
    parser.add_argument(
        "--dataset", required=True, help="dataset whose corpus holds the documents (required)"
    )
    parser.add_argument(
        "--model", required=True, help="the teacher: a cross-encoder or a bi-encoder (required)"
    )
    parser.add_argument(
        "--name", default=None, help="the teacher's name recorded in SCORES (default: --model as given)"
    )
    parser.add_argument("--out", required=True, help="the scores file (JSONL) to write")
    parser.add_argument("--batch-size", type=whole_number(1), default=64, help="pairs per forward pass")
    add_max_length_arg(
        parser, "a document (bi-encoder) or a query+document pair (cross-encoder)", "the model's own"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ranker.training.data import load_texts
    from ranker.training.distributed import pick_device
    from ranker.training.teacher import (
        FORMAT,
        check_resumable,
        file_sha256,
        load_teacher,
        score_negatives,
        teacher_side,
    )
    from retrievers.errors import InputError
    from retrievers.io.dataset import load_dataset
    from retrievers.mining.negatives import read_negatives

    out = Path(args.out)
    if out.is_dir():
        raise InputError("--out is a directory; expected a file", out)
    records = read_negatives(args.negatives)
    header = {
        "format": FORMAT,
        "teacher": args.name or str(args.model),
        "teacher_path": str(Path(args.model).resolve()) if Path(args.model).exists() else str(args.model),
        "teacher_kind": teacher_side(args.model),
        "teacher_max_length": "" if args.max_length is None else str(args.max_length),
        "negatives": str(args.negatives),
        "negatives_sha256": file_sha256(args.negatives),
    }
    check_resumable(out, header)
    model, side = load_teacher(args.model)
    if args.max_length is not None:
        if side == "cross":
            model.max_length = args.max_length
        else:
            model.doc_encoder.max_length = args.max_length
    model = model.to(pick_device(args.device))
    wanted = {d for r in records for d in (*r.positives, *(n.docid for n in r.negatives))}
    texts = load_texts(load_dataset(args.dataset).docs(), wanted)

    def score(queries: list[str], docs: list[str]):
        return model.score(queries, docs, batch_size=args.batch_size)

    pairs = score_negatives(
        score, records, texts, out, header, chunk_pairs=8 * args.batch_size, progress=not args.no_progress
    )
    logger.info("%s: %d pairs scored by %s (%s)", out, pairs, header["teacher"], side)
    return 0
