"""Poolers: one registry of interchangeable ways to turn hidden states into a vector."""

from ranker.pooling import (  # noqa: F401  (register the poolers)
    bilinear,
    gem,
    latent,
    layerwise,
    ponet,
    pyramid,
    simple,
)
from ranker.pooling.base import (
    POOLERS,
    Pooler,
    build_pooler,
    first_token_index,
    last_token_index,
    masked_mean,
    pooler_from_config,
    register_pooler,
)

__all__ = [
    "POOLERS",
    "Pooler",
    "build_pooler",
    "first_token_index",
    "last_token_index",
    "masked_mean",
    "pooler_from_config",
    "register_pooler",
]
