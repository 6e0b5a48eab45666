"""``ranker pooling-table COMPARE.json``: poolers sorted by score, their tests and their costs."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ranker.cli.parser import whole_number

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pooling-table",
        help="runs against a baseline sorted by score, with parameters added and encoding time",
        description="Read the JSON of `ranker compare --baseline B --format json` and write one "
        "table, best run first: score with 95%% CI, paired delta against the baseline with its "
        "CI, effect size and corrected p-value; with --model LABEL=DIR (LABEL as the run is named "
        "in the compare report), also the parameters the model adds outside its backbone and its "
        "encoding time relative to the baseline's, the models taking turns on the same documents.",
    )
    parser.add_argument("compare", help="`ranker compare --baseline B --format json` output")
    parser.add_argument("--metric", default="ndcg@10", help="which metric to rank by (ndcg@10)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="a saved bi-encoder behind a run of the report (repeatable); adds the cost columns",
    )
    parser.add_argument("--dataset", help="corpus whose first --docs documents are timed (with --model)")
    parser.add_argument("--docs", type=int, default=256, help="documents timed per model (256)")
    parser.add_argument("--batch-size", type=whole_number(1), default=32, help="encoding batch size (32)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds; the median counts (3)")
    from ranker.cli.retrieval import add_dtype_arg

    add_dtype_arg(parser, "float32", " of the timed encoding (here float32 by default)")
    parser.add_argument("--title", default="", help="plot title")
    parser.add_argument("--plot", metavar="FILE", help="forest plot: runs sorted by score, CIs, significance")
    parser.add_argument("--json", metavar="FILE", help="also write rows and costs as JSON")
    parser.add_argument("--out", help="write the table here instead of stdout")
    parser.set_defaults(func=run)


def _models(pairs: list[str]) -> dict[str, str]:
    from retrievers.errors import InputError

    out = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise InputError(f"--model expects LABEL=DIR, got {pair!r}")
        if label in out:
            raise InputError(f"--model {label!r} is given twice")
        out[label] = path
    return out


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import itertools

    from ranker.evaluation.forest import forest_plot, markdown, read_rows
    from retrievers.errors import InputError
    from retrievers.io.atomic import atomic_write

    baseline, rows, report = read_rows(args.compare, args.metric)
    models = _models(args.model)
    unknown = sorted(set(models) - {r.run for r in rows})
    if unknown:
        raise InputError(
            f"--model {unknown[0]!r} names no run of the report (runs: {', '.join(r.run for r in rows)})",
            args.compare,
        )
    costs = {}
    if models:
        if not args.dataset:
            raise InputError("--model needs --dataset (the documents to time)")
        if args.docs < 1 or args.repeats < 1:
            raise InputError("--docs and --repeats must be at least 1")
        from ranker.models.cost import encoding_costs
        from retrievers.io.dataset import load_dataset

        texts = [d.contents for d in itertools.islice(load_dataset(args.dataset).docs(), args.docs)]
        costs = encoding_costs(models, texts, args.batch_size, args.repeats, args.dtype)
    table = markdown(baseline, rows, args.metric, costs, report)
    if args.plot:
        forest_plot(baseline, rows, args.metric, args.plot, args.title)
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(
                {
                    "baseline": baseline,
                    "metric": args.metric,
                    "rows": [dataclasses.asdict(r) for r in rows],
                    "costs": {k: dataclasses.asdict(v) for k, v in costs.items()},
                },
                f,
                indent=1,
            )
    if args.out:
        with atomic_write(args.out) as f:
            f.write(table)
    else:
        sys.stdout.write(table)
    return 0
