"""Hard-negative mining: candidates -> filters -> sampler -> writer, and the negatives format."""

from retrievers.mining.negatives import (
    EXPORT_FORMATS,
    MinedQuery,
    Negative,
    export_negatives,
    iter_negatives,
    read_negatives,
)
from retrievers.mining.pipeline import MiningConfig, mine, positives_from_qrels
from retrievers.mining.promote import Judge

__all__ = [
    "EXPORT_FORMATS",
    "Judge",
    "MinedQuery",
    "MiningConfig",
    "Negative",
    "export_negatives",
    "iter_negatives",
    "mine",
    "positives_from_qrels",
    "read_negatives",
]
