"""Retrieval and reranking models built from encoders and poolers."""

from ranker.models.biencoder import BiEncoder
from ranker.models.crossencoder import CrossEncoder
from ranker.models.loading import load_biencoder

__all__ = ["BiEncoder", "CrossEncoder", "load_biencoder"]
