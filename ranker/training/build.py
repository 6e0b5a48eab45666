"""Build the models a :class:`~ranker.training.config.TrainConfig` asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ranker.training.config import TrainConfig
from ranker.training.selection import FeatureSelector


def _is_saved(path: str, kind: str) -> bool:
    config = Path(path) / "ranker_config.json"
    return config.is_file() and f'"{kind}"' in config.read_text(encoding="utf-8")


def build_relevance(config: TrainConfig) -> nn.Module:
    """The relevance model R: a cross-encoder or a bi-encoder, new or from a saved folder."""
    from ranker.models import CrossEncoder, load_biencoder

    if config.model_type == "cross":
        if _is_saved(config.model, "crossencoder"):
            return CrossEncoder.load(config.model)
        return CrossEncoder.from_pretrained(
            config.model,
            pooling=config.pooling or None,
            max_length=config.max_length,
            gradient_checkpointing=config.gradient_checkpointing,
        )
    kwargs: dict[str, Any] = {"normalize": config.normalize, "max_length": config.max_length}
    if config.gradient_checkpointing:
        kwargs["gradient_checkpointing"] = True
    if _is_saved(config.model, "biencoder"):
        return load_biencoder(config.model)
    return load_biencoder(config.model, pooling=config.pooling or None, **kwargs)


def build_selection(config: TrainConfig, retrievers: list[str]) -> nn.Module | None:
    """CET's selection model S (None without CET)."""
    if config.selection == "none":
        return None
    if config.selection == "features":
        return FeatureSelector(retrievers)
    from ranker.models import CrossEncoder

    source = config.selection_model or config.model
    if _is_saved(source, "crossencoder"):
        return CrossEncoder.load(source)
    return CrossEncoder.from_pretrained(
        source, max_length=config.max_length, gradient_checkpointing=config.gradient_checkpointing
    )
