"""The pooler contract, the registry, and masking helpers every pooler shares.

A pooler turns a backbone's hidden states into one vector per text. It receives the hidden
states of the layers it asked for (``hidden_states[0]`` is the embedding output, ``[-1]`` the
last layer) and the attention mask, and must:

* ignore padding completely (the same text gives the same vector whatever padding it gets,
  on the left or on the right);
* return finite vectors for rows that are all padding;
* never modify its inputs in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

POOLERS: dict[str, type[Pooler]] = {}


def register_pooler(cls: type[Pooler]) -> type[Pooler]:
    """Class decorator: add a pooler to :data:`POOLERS` under its ``mode`` name."""
    if cls.mode in POOLERS:
        raise ValueError(f"pooler {cls.mode!r} registered twice")
    POOLERS[cls.mode] = cls
    return cls


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean over real tokens; all-padding rows give zeros. ``states`` (B, T, H), ``mask`` (B, T)."""
    keep = mask.bool().unsqueeze(-1)
    total = torch.where(keep, states, torch.zeros((), dtype=states.dtype, device=states.device)).sum(1)
    count = keep.sum(1).clamp(min=1).to(states.dtype)
    return total / count


def first_token_index(mask: Tensor) -> Tensor:
    """Index of the first real token in each row (the CLS token, whatever the padding side)."""
    return mask.int().argmax(dim=1)


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last real token in each row: right for left *and* right padding."""
    length = mask.shape[1]
    return (length - 1) - mask.int().flip(dims=[1]).argmax(dim=1)


def gather_tokens(states: Tensor, index: Tensor) -> Tensor:
    """``states[b, index[b]]`` for each row ``b``."""
    return states[torch.arange(states.shape[0], device=states.device), index.to(states.device)]


class Pooler(nn.Module):
    """Base class: layer selection, config round-trip, and the forward contract.

    Subclasses set ``mode`` (the registry name) and ``config_keys`` (extra constructor
    arguments saved in the config), and implement :meth:`pool` (one layer's states) or, for
    multi-layer poolers (``multi_layer = True``), :meth:`pool_layers` (a list of layers).

    Args:
        hidden_size: Width of the backbone's hidden states.
        num_layers: Number of transformer layers in the backbone (hidden states are
            ``num_layers + 1`` including the embedding output).
        num_heads: Attention heads of the backbone (used to size some poolers).
        layers: Which hidden states feed the pooler (indices into the ``num_layers + 1`` hidden
            states, negative allowed). Single-layer poolers average the chosen layers
            token-wise before pooling (``[-1]``, the default, is the last layer; ``[-2, -1]``
            the "avg_top2" of SimCSE); multi-layer poolers attend over the chosen layers.
    """

    mode: ClassVar[str] = ""
    config_keys: ClassVar[tuple[str, ...]] = ()
    multi_layer: ClassVar[bool] = False
    #: For multi-layer poolers, the first hidden state used by default (0: embedding output).
    default_first_layer: ClassVar[int] = 1

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if hidden_size < 1 or num_layers < 1 or num_heads < 1:
            raise ValueError(
                f"pooler {self.mode!r}: hidden_size, num_layers and num_heads must be "
                f"positive, got {hidden_size}, {num_layers}, {num_heads}"
            )
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        total = self.num_layers + 1
        if layers is not None:
            layers = [int(i) for i in layers]
            if not layers:
                raise ValueError(f"pooler {self.mode!r}: layers must not be empty")
            bad = [i for i in layers if not -total <= i < total]
            if bad:
                raise ValueError(
                    f"pooler {self.mode!r}: layers {bad} out of range for "
                    f"{total} hidden states (embedding output + {num_layers} layers)"
                )
        self.layers: list[int] | None = layers

    # -- what the backbone must provide ---------------------------------------------------
    @property
    def needs_all_layers(self) -> bool:
        """Whether the backbone must return every layer's hidden states (not just the last)."""
        return self.multi_layer or (
            self.layers is not None and self.layers != [-1] and self.layers != [self.num_layers]
        )

    @property
    def selected_layers(self) -> list[int]:
        """The hidden-state indices this pooler reads (non-negative)."""
        total = self.num_layers + 1
        if self.layers is None:
            return list(range(self.default_first_layer, total)) if self.multi_layer else [total - 1]
        return [i % total for i in self.layers]

    @property
    def output_dim(self) -> int:
        """Width of the pooled vector."""
        return self.hidden_size

    # -- config round-trip -----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`pooler_from_config` rebuilds an identical pooler from it."""
        config = {
            "mode": self.mode,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "layers": self.layers,
        }
        config.update({key: getattr(self, key) for key in self.config_keys})
        return config

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.get_config().items() if k != "mode")

    # -- forward -----------------------------------------------------------------------------
    def forward(self, hidden_states: Sequence[Tensor], attention_mask: Tensor) -> Tensor:
        """Pool hidden states into one vector per row.

        Args:
            hidden_states: All ``num_layers + 1`` hidden states (B, T, H), or only the last one
                when :attr:`needs_all_layers` is false.
            attention_mask: (B, T), 1 for real tokens, 0 for padding.

        Returns:
            (B, output_dim) tensor.
        """
        if isinstance(hidden_states, Tensor):
            hidden_states = (hidden_states,)
        if self.needs_all_layers and len(hidden_states) != self.num_layers + 1:
            raise ValueError(
                f"pooler {self.mode!r} needs all {self.num_layers + 1} hidden states, "
                f"got {len(hidden_states)}"
            )
        # Only the layers read are touched (a cached backbone loads them on access).
        wanted = self.selected_layers if self.needs_all_layers else [-1]
        param = next(self.parameters(), None)
        chosen = [hidden_states[i] for i in wanted]
        if param is not None and chosen[-1].dtype != param.dtype:
            # A trainable pooler computes in its own dtype (e.g. float32 over a bf16 backbone).
            chosen = [h.to(param.dtype) for h in chosen]
        if self.multi_layer:
            return self.pool_layers(chosen, attention_mask)
        states = chosen[0] if len(chosen) == 1 else torch.stack(chosen).mean(0)
        return self.pool(states, attention_mask)

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        """Pool one layer's states (B, T, H) into (B, output_dim)."""
        raise NotImplementedError

    def pool_layers(self, states: list[Tensor], attention_mask: Tensor) -> Tensor:
        """Pool several layers' states into (B, output_dim) (multi-layer poolers)."""
        raise NotImplementedError


def build_pooler(
    mode: str, *, hidden_size: int, num_layers: int, num_heads: int = 1, **kwargs: Any
) -> Pooler:
    """Create a registered pooler by name.

    Raises:
        ValueError: ``mode`` is not registered (the message lists the registered names).
        TypeError: an option that this pooler does not take.
    """
    if mode not in POOLERS:
        raise ValueError(f"unknown pooling {mode!r}; choose one of {', '.join(sorted(POOLERS))}")
    cls = POOLERS[mode]
    allowed = set(cls.config_keys) | {"layers"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"pooling {mode!r} takes no option(s) {unknown}; it takes {sorted(allowed)}")
    return cls(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, **kwargs)


def pooler_from_config(config: dict[str, Any]) -> Pooler:
    """Rebuild a pooler from :meth:`Pooler.get_config` output."""
    config = dict(config)
    mode = config.pop("mode", None)
    if mode is None:
        raise ValueError("pooler config has no 'mode'")
    return build_pooler(mode, **config)
