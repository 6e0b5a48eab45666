"""Build the models a :class:`~ranker.training.config.TrainConfig` asks for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import nn

from ranker.encoders.cached import freeze_backbone
from ranker.models.kind import model_kind
from ranker.training.config import TrainConfig
from ranker.training.data import Example
from ranker.training.distill import Distillation
from ranker.training.distributed import Context
from ranker.training.guide import Guide
from ranker.training.selection import FeatureEncoder, FeatureSelector
from ranker.training.teacher import TeacherScores, load_teacher, read_teacher_scores
from retrievers.errors import InputError


def _check_attention(model: nn.Module, config: TrainConfig, source: str) -> nn.Module:
    """A saved model keeps the attention it was trained with; asking for another is an error."""
    from ranker.encoders.backbone import Backbone

    backbones = [m for m in model.modules() if isinstance(m, Backbone)]
    saved = {b.attention or "bidirectional" for b in backbones}
    if config.attention and saved and saved != {config.attention}:
        raise InputError(
            f"config key 'attention' = {config.attention!r}, but the saved model {source} uses "
            f"{', '.join(sorted(saved))} attention; leave 'attention' empty to keep it"
        )
    return model


def _with_lora(model: nn.Module, config: TrainConfig) -> nn.Module:
    """A saved model (loaded without an adapter) gets the config's LoRA adapter."""
    from ranker.encoders.backbone import Backbone

    if config.lora is not None:
        for backbone in {id(m): m for m in model.modules() if isinstance(m, Backbone)}.values():
            backbone.add_lora(**config.lora.peft_kwargs())
    return model


@contextmanager
def _pooler_options_errors(options: dict[str, Any] | None) -> Iterator[None]:
    """A pooler refusing ``pooling_options`` is a config error (one line, exit 2)."""
    try:
        yield
    except (TypeError, ValueError) as err:
        if not options:
            raise
        raise InputError(f"config key 'pooling_options' = {options!r}: {err}") from None


def _cross(
    source: str,
    config: TrainConfig,
    pooling: str | None,
    lora: bool = False,
    options: dict[str, Any] | None = None,
) -> nn.Module:
    from ranker.models import CrossEncoder

    if model_kind(source) == "crossencoder":
        model = _check_attention(CrossEncoder.load(source), config, source)
        return _with_lora(model, config) if lora else model
    with _pooler_options_errors(options):
        return CrossEncoder.from_pretrained(
            source,
            pooling=pooling,
            max_length=config.max_length,
            attention=config.attention or None,
            gradient_checkpointing=config.gradient_checkpointing,
            lora=config.lora.peft_kwargs() if lora and config.lora is not None else None,
            **(options or {}),
        )


def build_relevance(config: TrainConfig) -> nn.Module:
    """The relevance model R: a cross-encoder or a bi-encoder, new or from a saved folder,
    with the config's LoRA adapter if it has one (CET's S is always trained in full)."""
    if config.model_type == "cross":
        return _cross(config.model, config, config.pooling or None, lora=True, options=config.pooling_options)
    model: Any = _with_interaction(_bi(config), config)
    if config.adapter and model.query_encoder.adapter is None:
        model.add_adapter()
    return freeze_backbone(model, config.backbone.frozen, config.backbone.states)


def _with_interaction(model: Any, config: TrainConfig) -> nn.Module:
    """Attach the bilinear interaction head the config asks for (a saved one is kept)."""
    from ranker.models.interaction import make_interaction

    saved = getattr(model, "interaction", None)
    if saved is not None:
        if config.interaction and config.interaction != saved.fusion:
            raise InputError(
                f"config key 'interaction' = {config.interaction!r}, but the saved model "
                f"{config.model} has a {saved.fusion!r} head; leave 'interaction' empty to keep it"
            )
        return model
    if not config.interaction:
        if config.interaction_options:
            raise InputError("config key 'interaction_options' is set without 'interaction'")
        return model
    try:
        model.interaction = make_interaction(config.interaction, model.dim, config.interaction_options)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"config key 'interaction_options' = {config.interaction_options!r}: {err}"
        ) from None
    return model


def _bi(config: TrainConfig) -> nn.Module:
    from ranker.models import load_biencoder

    kind = model_kind(config.model)
    if kind == "crossencoder":
        raise InputError(
            f"config key 'model' = {config.model!r} is a saved cross-encoder, but model_type is 'bi'"
        )
    if kind == "biencoder":
        if config.pooling_options:
            raise InputError(
                f"config key 'pooling_options' is set, but the saved model {config.model} keeps "
                "its own pooler; leave 'pooling_options' empty"
            )
        return _with_lora(_check_attention(load_biencoder(config.model), config, config.model), config)
    kwargs: dict[str, Any] = {
        "normalize": config.normalize,
        "max_length": config.max_length,
        **config.pooling_options,
    }
    if config.gradient_checkpointing:
        kwargs["gradient_checkpointing"] = True
    if config.attention:
        kwargs["attention"] = config.attention
    if config.lora is not None:
        kwargs["lora"] = config.lora.peft_kwargs()
    with _pooler_options_errors(config.pooling_options):
        return load_biencoder(config.model, pooling=config.pooling or None, **kwargs)


def build_selection(config: TrainConfig, retrievers: list[str] | FeatureEncoder) -> nn.Module | None:
    """CET's selection model S (None without CET); a feature S is built on ``retrievers``
    (retriever names, or the negatives file's :class:`FeatureEncoder`)."""
    if config.selection == "none":
        return None
    if config.selection == "features":
        return FeatureSelector(retrievers)
    if config.selection == "text" and selection_states(config):
        return cached_selection(config)
    return _cross(config.selection_model or config.model, config, None)


def selection_states(config: TrainConfig) -> str:
    """The states cache of a text S: ``selection_states``, or R's cache when R reads one and S
    starts from R's own backbone (no ``selection_model``): a cross-encoder S would run a live
    backbone on every pair, the cost the cache exists to avoid."""
    if config.selection_states:
        return config.selection_states
    return config.backbone.states if not config.selection_model else ""


def cached_selection(config: TrainConfig) -> nn.Module:
    """CET's text S on a frozen backbone whose states come from ``selection_states``: mean
    pooling plus a trainable adapter (identity at first), scoring pairs by ``scale * q . d``."""
    from ranker.models import load_biencoder

    source = config.selection_model or config.model
    if model_kind(source) == "crossencoder":
        raise InputError(
            f"config key 'selection_states' needs a backbone or bi-encoder for S; {source} is a cross-encoder"
        )
    model: Any = load_biencoder(source, max_length=config.max_length, normalize=True)
    if model.query_encoder.adapter is None:
        model.add_adapter()
    return freeze_backbone(model, "all", selection_states(config))


def build_distillation(
    config: TrainConfig, examples: Sequence[Example]
) -> tuple[Distillation | None, TeacherScores | None]:
    """The config's distillation term and the teacher scores it reads, checked against the
    negatives file (same file, the asked-for teacher, a score for every pair); (None, None)
    without ``distill``."""
    settings = config.distill
    if settings is None:
        return None, None
    teacher = read_teacher_scores(settings.scores)
    teacher.check(config.negatives, settings.teacher)
    teacher.require((e.qid, d) for e in examples for d in (*e.positives, *e.negatives))
    term = Distillation(
        settings.loss,
        settings.weight,
        settings.alone,
        settings.teacher_temperature,
        settings.student_temperature,
    )
    return term, teacher


def build_guide(config: TrainConfig, ctx: Context) -> Guide | None:
    """The config's guide (a model scored per batch, or a scores file), or None."""
    settings = config.guide
    if settings is None:
        return None
    if ctx.distributed and config.model_type == "bi":
        raise InputError("config key 'guide': guide masking of in-batch negatives runs on one process")
    shared = config.model_type == "bi"
    if settings.scores:
        scores = read_teacher_scores(settings.scores)
        scores.check(config.negatives)
        return Guide(None, "", scores, ctx.device, shared)
    model, side = load_teacher(settings.model)
    return Guide(model, side, None, ctx.device, shared)
