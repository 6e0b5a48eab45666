"""One tower: a backbone plus a pooler, with fast length-sorted batch encoding."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ranker.encoders.backbone import Backbone, autocast
from ranker.pooling import Pooler
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)


class Encoder(nn.Module):
    """Text -> vector: tokenize (with an optional instruction prefix), run the backbone, pool.

    Args:
        backbone: The transformer and its tokenizer.
        pooler: Any registered pooler sized for this backbone.
        max_length: Token budget per text (prefix and EOS included); capped at the model's
            positions, default 512 or that limit if smaller.
        prefix: Prepended to every text (e.g. ``"query: "``).
        normalize: L2-normalize the pooled vectors.
        dtype: Autocast dtype for the forward pass (``torch.bfloat16`` / ``torch.float16``).
        adapter: Optional linear map on the pooled vector (before normalization); saved as
            sentence-transformers' ``Dense`` module.
    """

    def __init__(
        self,
        backbone: Backbone,
        pooler: Pooler,
        max_length: int | None = None,
        prefix: str = "",
        normalize: bool = False,
        dtype: torch.dtype | None = None,
        adapter: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        if pooler.hidden_size != backbone.hidden_size or pooler.num_layers != backbone.num_layers:
            raise ValueError(
                f"pooler sized for hidden_size={pooler.hidden_size}, num_layers="
                f"{pooler.num_layers}; backbone has {backbone.hidden_size}, "
                f"{backbone.num_layers}"
            )
        self.backbone = backbone
        self.pooler = pooler
        self.max_length = max_length  # the setter resolves None
        self.prefix = prefix
        self.normalize = normalize
        self.dtype = dtype
        if adapter is not None and adapter.in_features != pooler.output_dim:
            raise ValueError(
                f"adapter takes {adapter.in_features} inputs; the pooler gives {pooler.output_dim}"
            )
        self.adapter = adapter

    @property
    def output_dim(self) -> int:
        """Width of the embeddings (the adapter's output when there is one)."""
        return self.adapter.out_features if self.adapter is not None else self.pooler.output_dim

    def add_adapter(self, dim: int | None = None) -> nn.Linear:
        """Put a trainable linear map on the pooled vector, initialised to the identity (so
        training starts from the untrained model's embeddings)."""
        width = self.pooler.output_dim
        adapter = nn.Linear(width, dim or width, bias=True)
        with torch.no_grad():
            adapter.weight.copy_(torch.eye(dim or width, width))
            adapter.bias.zero_()
        self.adapter = adapter.to(next(self.pooler.parameters(), adapter.weight).device)
        return self.adapter

    @property
    def max_length(self) -> int:
        """Token budget per text; setting it caps it at the model's positions (None: 512 or
        the model's limit if smaller)."""
        return self._max_length

    @max_length.setter
    def max_length(self, value: int | None) -> None:
        if value is not None and value < 2:
            raise ValueError(f"max_length must be at least 2, got {value}")
        self._max_length = self.backbone.fit_max_length(value)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Padded ``input_ids`` / ``attention_mask`` tensors (on CPU) for a batch of texts."""
        return self.backbone.tokenize(self._with_prefix(texts), self.max_length)

    def _with_prefix(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, got one string")
        return [self.prefix + t for t in texts] if self.prefix else list(texts)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """Embeddings (B, dim) for tokenized features, with gradients when enabled."""
        device = self.device
        features = {k: v.to(device) for k, v in features.items() if isinstance(v, Tensor)}
        with autocast(device, self.dtype):
            hidden = self.backbone(features, all_layers=self.pooler.needs_all_layers)
            if self.dtype is None and hidden[-1].dtype != torch.float32:
                # low-precision weights (``--dtype bfloat16``): pool in float32
                hidden = tuple(h.float() for h in hidden)
            pooled = self.pooler(hidden, features["attention_mask"])
        pooled = pooled.float() if self.dtype is not None else pooled
        if self.adapter is not None:
            pooled = self.adapter(pooled.to(self.adapter.weight.dtype))
        return F.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        show_progress: bool = False,
        chunk_size: int = 8192,
        desc: str = "encode",
    ) -> np.ndarray:
        """Embed texts for inference: float32 array (N, dim) in input order.

        Texts are tokenized a chunk at a time without padding (one call to the fast
        tokenizer), sorted by token count so each batch pads only to its own longest text,
        and run in ``torch.inference_mode``. On an accelerator, inputs are copied from pinned
        memory without blocking and the vectors stay on the device until the chunk is done,
        so the host prepares the next batch while the device computes.
        """
        texts = self._with_prefix(texts)
        out = np.zeros((len(texts), self.output_dim), dtype=np.float32)
        device = self.device
        pin = device.type == "cuda"
        was_training = self.training
        self.eval()
        try:
            with tqdm(total=len(texts), disable=bars_disabled(show_progress), desc=desc, unit="text") as bar:
                for start in range(0, len(texts), chunk_size):
                    chunk = texts[start : start + chunk_size]
                    ids = self.backbone.tokenize(chunk, self.max_length, pad=False)["input_ids"]
                    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
                    pending = []
                    for b in range(0, len(order), batch_size):
                        rows = order[b : b + batch_size]
                        features = self.backbone.pad([ids[i] for i in rows])
                        if pin:
                            features = {
                                k: v.pin_memory().to(device, non_blocking=True) for k, v in features.items()
                            }
                        pending.append(self(features).float())
                        bar.update(len(rows))
                    vectors = torch.cat(pending).cpu().numpy()
                    out[np.asarray(order) + start] = vectors
        finally:
            self.train(was_training)
        return out
