"""A backbone stand-in that serves cached token states to the existing poolers and models.

:class:`CachedBackbone` wraps a real :class:`~ranker.encoders.backbone.Backbone` (kept for
saving: a model trained on the cache saves as a normal ranker folder) and answers
``tokenize`` / ``pad`` / ``forward`` from a :class:`~ranker.encoders.states.StatesCache`
instead of running the transformer. Two ways to freeze:

* ``freeze="all"``: every hidden state comes from the cache; only what sits on top (pooler,
  adapter, interaction head) trains.
* ``freeze={"bottom": K}`` (BERT-family encoders): hidden state ``K`` comes from the cache and
  the layers above it run live (and train) on top of it, exactly as in the full model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ranker.encoders.backbone import Backbone
from ranker.encoders.states import LAYER_PARAM, StatesCache, tokenizer_fingerprint, weights_fingerprint
from retrievers.errors import InputError


class _Located(list):
    """Token ids of one cached text, carrying where its states live (``where``)."""

    where: tuple[int, int]


class LayerStates(Sequence[Tensor]):
    """All ``num_layers + 1`` hidden states of a batch, read from the cache on first access
    (a mean pooler over the last layer never touches the other layers' files)."""

    def __init__(self, size: int, load: Any) -> None:
        self._size, self._load = size, load
        self._done: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        index = index % self._size
        if index not in self._done:
            self._done[index] = self._load(index)
        return self._done[index]


def trainable_above(name: str, bottom: int, num_layers: int) -> bool:
    """Whether backbone parameter ``name`` trains when the bottom ``bottom`` layers (and the
    embeddings) are frozen: only numbered layers at or above ``bottom`` do."""
    if bottom >= num_layers:
        return False
    match = LAYER_PARAM.search(name)
    return match is not None and int(match.group(1)) >= bottom


def _encoder_layers(model: Any) -> nn.ModuleList:
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(
            f"freeze: {{bottom: K}} needs a BERT-family encoder (model.encoder.layer); "
            f"{type(model).__name__} has none: use freeze: all"
        )
    return layers


class CachedBackbone(nn.Module):
    """Backbone stand-in reading hidden states from a states cache.

    Args:
        backbone: The real backbone (its weights must match the cache's fingerprint).
        cache: The states cache.
        freeze: ``"all"`` or ``{"bottom": K}``.
    """

    def __init__(self, backbone: Backbone, cache: StatesCache, freeze: str | dict[str, int] = "all") -> None:
        super().__init__()
        self.inner = backbone
        self.cache = cache
        if freeze == "all":
            self.bottom = backbone.num_layers
        elif isinstance(freeze, dict) and set(freeze) == {"bottom"}:
            self.bottom = int(freeze["bottom"])
            if not 0 <= self.bottom <= backbone.num_layers:
                raise InputError(f"freeze.bottom = {self.bottom}: expected 0..{backbone.num_layers}")
            if self.bottom < backbone.num_layers:
                _encoder_layers(backbone.base_model)
                if self.bottom not in cache.layers:
                    raise InputError(
                        f"freeze.bottom = {self.bottom} needs hidden state {self.bottom} in the cache "
                        f"(cached: {cache.layers})",
                        cache.directory,
                    )
        else:
            raise InputError(f"freeze = {freeze!r}: expected 'all' or {{bottom: K}}")
        cache.check(self.expected_fingerprint(backbone, cache))
        base = backbone.base_model
        for name, param in base.named_parameters():
            param.requires_grad_(trainable_above(name, self.bottom, backbone.num_layers))

    # -- what the cache must match --------------------------------------------------------------
    @staticmethod
    def expected_fingerprint(backbone: Backbone, cache: StatesCache) -> dict[str, Any]:
        """This backbone's side of the cache fingerprint."""
        return {
            "weights": weights_fingerprint(backbone.base_model, max(cache.layers)),
            "tokenizer": tokenizer_fingerprint(backbone.tokenizer),
            "attention": backbone.attention,
            "append_eos": backbone.append_eos,
        }

    # -- the Backbone interface, delegated ------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    @property
    def model(self) -> Any:
        return self.inner.model

    @property
    def base_model(self) -> Any:
        return self.inner.base_model

    @property
    def hidden_size(self) -> int:
        return self.inner.hidden_size

    @property
    def num_layers(self) -> int:
        return self.inner.num_layers

    @property
    def num_heads(self) -> int:
        return self.inner.num_heads

    @property
    def is_decoder(self) -> bool:
        return self.inner.is_decoder

    @property
    def classifier(self) -> bool:
        return self.inner.classifier

    @property
    def attention(self) -> str | None:
        return self.inner.attention

    @property
    def append_eos(self) -> bool:
        return self.inner.append_eos

    @property
    def max_positions(self) -> int | None:
        return self.inner.max_positions

    def fit_max_length(self, requested: int | None, default: int = 512) -> int:
        length = self.inner.fit_max_length(requested, default)
        if length != self.cache.max_length:
            raise InputError(
                f"max_length {length} differs from the states cache's {self.cache.max_length} "
                "(states depend on the truncation); use the cache's max_length",
                self.cache.directory,
            )
        return length

    def merged_model(self) -> Any:
        return self.inner.merged_model()

    # -- tokenization: lookups ------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], max_length: int, *, pad: bool = True) -> dict[str, Any]:
        """Find each text in the cache; padded features carry ``state_rows`` (B, 2)."""
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of texts, not one string")
        if max_length != self.cache.max_length:
            self.fit_max_length(max_length)
        where = self.cache.locate(texts)
        rows: list[list[int]] = []
        for ids, place in zip(self.cache.token_ids(where), where, strict=True):
            row = _Located(ids)
            row.where = place
            rows.append(row)
        if not pad:
            return {"input_ids": rows}
        return self.pad(rows)

    def pad(self, ids: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """Padded ``input_ids`` / ``attention_mask`` as the real backbone pads, plus the rows'
        cache locations."""
        features = self.inner.pad(ids)
        places = [getattr(row, "where", None) for row in ids]
        if any(p is None for p in places):
            raise TypeError("CachedBackbone.pad takes rows from CachedBackbone.tokenize")
        features["state_rows"] = torch.tensor(places, dtype=torch.long).reshape(len(ids), 2)
        return features

    # -- forward --------------------------------------------------------------------------------
    def forward(self, features: dict[str, Tensor], all_layers: bool = False) -> Sequence[Tensor]:
        """Hidden states from the cache (and, above ``bottom``, from the live top layers)."""
        if "state_rows" not in features:
            raise TypeError("features without state_rows: tokenize with the cached backbone")
        where = [tuple(r) for r in features["state_rows"].tolist()]
        mask = features["attention_mask"]
        length, device = mask.shape[1], mask.device
        left = self.inner.tokenizer.padding_side == "left"
        total = self.num_layers + 1

        def cached(layer: int) -> Tensor:
            return self.cache.gather(layer, where, length, left).to(device)

        if self.bottom < self.num_layers:
            states = self._live_top(cached(self.bottom), mask)

            def load(layer: int) -> Tensor:
                return states[layer - self.bottom] if layer >= self.bottom else cached(layer)

        else:
            load = cached
        if not all_layers:
            return (load(total - 1),)
        return LayerStates(total, load)

    def _live_top(self, hidden: Tensor, mask: Tensor) -> list[Tensor]:
        """Run the encoder layers above ``bottom`` on the cached state (BERT family)."""
        base = self.inner.base_model
        layers = _encoder_layers(base)
        dtype = hidden.dtype if not torch.is_autocast_enabled(hidden.device.type) else torch.float32
        extended = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        out = [hidden]
        for layer in layers[self.bottom :]:
            result = layer(hidden, attention_mask=extended)
            hidden = result[0] if isinstance(result, tuple) else result
            out.append(hidden)
        return out


def freeze_backbone(model: Any, freeze: str | dict[str, int], states: str = "") -> Any:
    """Freeze a bi-encoder's backbone (``"all"`` or ``{"bottom": K}``), and with ``states``
    serve its frozen part from a ``ranker cache-states`` folder (one
    :class:`~ranker.encoders.cached.CachedBackbone` per distinct backbone)."""
    if freeze == "none":
        return model
    cache = StatesCache(states) if states else None
    wrapped: dict[int, Any] = {}
    for tower in {id(t): t for t in (model.query_encoder, model.doc_encoder)}.values():
        backbone = tower.backbone
        if id(backbone) not in wrapped:
            wrapped[id(backbone)] = cached_or_frozen(backbone, freeze, cache)
        tower.backbone = wrapped[id(backbone)]
    return model


def cached_or_frozen(
    backbone: Backbone, freeze: str | dict[str, int], cache: StatesCache | str | None
) -> Backbone | CachedBackbone:
    """``backbone`` served from ``cache`` (a folder or an open cache), or frozen in place."""
    if isinstance(cache, StatesCache) or cache:
        return CachedBackbone(
            backbone, cache if isinstance(cache, StatesCache) else StatesCache(cache), freeze
        )
    _freeze_live(backbone, freeze)
    return backbone


def _freeze_live(backbone: Any, freeze: str | dict[str, int]) -> None:
    """Freeze a live backbone: all of it, or its embeddings and bottom K layers."""
    bottom = backbone.num_layers if freeze == "all" else int(freeze["bottom"])  # type: ignore[index]
    for name, param in backbone.base_model.named_parameters():
        param.requires_grad_(trainable_above(name, bottom, backbone.num_layers))
    if freeze == "all":  # a frozen backbone is a fixed function: no dropout, as in the cache
        _stay_in_eval(backbone)


def _stay_in_eval(module: nn.Module) -> None:
    """Keep ``module`` in eval mode whatever ``train()`` its parent model is put in."""

    def train(mode: bool = True) -> nn.Module:
        return nn.Module.train(module, False)

    module.train = train  # type: ignore[method-assign]
    module.eval()
