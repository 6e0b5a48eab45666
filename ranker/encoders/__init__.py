"""Transformer backbones and single-tower encoders."""

from ranker.encoders.backbone import (
    ATTENTION_MODES,
    Backbone,
    autocast,
    is_decoder_config,
    set_attention,
)
from ranker.encoders.corpus import read_embeddings
from ranker.encoders.encoder import Encoder

__all__ = [
    "ATTENTION_MODES",
    "Backbone",
    "Encoder",
    "autocast",
    "is_decoder_config",
    "read_embeddings",
    "set_attention",
]
