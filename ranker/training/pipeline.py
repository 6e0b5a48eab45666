"""``train_from_config``: dataset + negatives + models + evaluator -> a trained model on disk."""

from __future__ import annotations

import logging
import random

import torch

from ranker.evaluation.metrics import canonical_metric
from ranker.training.build import build_relevance, build_selection
from ranker.training.config import TrainConfig
from ranker.training.data import BatchMaker, load_texts, load_training_examples
from ranker.training.distributed import setup, teardown
from ranker.training.evaluate import evaluate_model
from ranker.training.resume import check_resume, record_config
from ranker.training.selection import FeatureEncoder
from ranker.training.trainer import Trainer, TrainResult
from retrievers.errors import InputError
from retrievers.io.dataset import load_dataset
from retrievers.io.trec import read_run

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python and torch (numpy is never used for randomness here)."""
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def make_evaluator(config: TrainConfig, dataset):
    """A ``callable(model) -> (scores, run)`` on ``config.eval_split``, or None."""
    if not config.eval_split:
        return None
    if config.model_type == "cross" and not config.eval_run:
        raise InputError(
            f"eval_split is {config.eval_split!r} but eval_run is empty: a cross-encoder is "
            "evaluated by reranking a run; set eval_run (or leave eval_split empty)"
        )
    canonical_metric(config.eval_metric)  # an unknown metric fails now, not at the first evaluation
    queries, qrels = dataset.queries(config.eval_split), dataset.qrels(config.eval_split)
    if config.interaction and not config.eval_run:
        raise InputError(
            f"eval_split is {config.eval_split!r} but eval_run is empty: a bi-encoder with an "
            "interaction head is evaluated by reranking a run; set eval_run"
        )
    reranks = config.model_type == "cross" or bool(config.interaction)  # an interaction head reranks
    run = read_run(config.eval_run) if reranks else None
    wanted = {d for q in run for d in list(run[q])} if run is not None else None
    texts = {doc.id: doc.contents for doc in dataset.docs() if wanted is None or doc.id in wanted}
    metrics = sorted({config.eval_metric, "ndcg@10", "recall@100"})

    def evaluator(model):
        return evaluate_model(
            model,
            config.model_type,
            queries,
            qrels,
            texts,
            metrics,
            run=run,
            depth=config.eval_depth,
            batch_size=config.eval_batch_size,
        )

    return evaluator


def make_batches(config: TrainConfig, dataset) -> tuple[BatchMaker, FeatureEncoder]:
    """The config's deterministic micro-batches over its negatives file (texts read from
    ``dataset``), and the encoder of the selection features (what a feature S is built on)."""
    # a feature S sees the pool's systems unless the config names others
    default = "pool" if config.selection == "features" else "all"
    examples, encoder = load_training_examples(config.negatives, config.selection_evidence or default)
    wanted = {d for e in examples for d in (*e.positives, *e.negatives)}
    texts = load_texts(dataset.docs(), wanted, examples)
    batches = BatchMaker(
        examples,
        texts,
        config.n_negatives,
        config.batch_size,
        config.seed,
        encoder.missing(),
        config.negative_depth,
    )
    return batches, encoder


def train_from_config(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train as ``config`` says; under torchrun, every process calls this."""
    ctx = setup(config.device)
    try:
        if resume:
            check_resume(config)  # before any data is read: a refusal is immediate
        seed_everything(config.seed)
        dataset = load_dataset(config.dataset)
        batches, features = make_batches(config, dataset)
        if config.selection == "features" and not features.evidence:
            logger.warning(
                "%s has no retriever evidence for positives (mined by an older version): the "
                "feature selection model sees every positive as one constant vector and can "
                "tell the classes apart by it alone; mine again to give positives their ranks "
                "and scores",
                config.negatives,
            )
        relevance = build_relevance(config)
        selection = build_selection(config, features)
        evaluator = make_evaluator(config, dataset) if ctx.main else None
        trainer = Trainer(config, ctx, batches, relevance, selection, evaluator)
        if resume and ctx.main:
            record_config(config)
        return trainer.train(resume=resume)
    finally:
        teardown(ctx)
