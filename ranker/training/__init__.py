"""Training: losses, CET, data, trainer, checkpoints, distributed."""

from ranker.training.cet import cet_weights
from ranker.training.config import TrainConfig, load_config
from ranker.training.losses import InfoNCE, ListwiseCE, PairwiseCE, Scores, make_loss

__all__ = [
    "InfoNCE",
    "ListwiseCE",
    "PairwiseCE",
    "Scores",
    "TrainConfig",
    "cet_weights",
    "load_config",
    "make_loss",
]
