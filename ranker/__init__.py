"""ranker: neural rankers trained on incomplete labels (encoders, poolers, CET, evaluation)."""

__version__ = "0.1.0"
