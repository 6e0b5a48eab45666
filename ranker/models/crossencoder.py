"""Cross-encoder reranker: query and document read together, one relevance score out."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ranker.encoders.backbone import Backbone, autocast
from ranker.pooling import build_pooler, pooler_from_config
from ranker.pooling.base import Pooler
from retrievers.io.atomic import atomic_directory

logger = logging.getLogger(__name__)

CONFIG_NAME = "ranker_config.json"
HEAD_NAME = "head.safetensors"


class CrossEncoder(nn.Module):
    """Backbone over the (query, document) pair, a pooler, and a linear scoring head
    (Nogueira & Cho, "Passage Re-ranking with BERT", 2019). Encoders pool the CLS token by
    default; decoders the last token (the appended EOS), as in RankLLaMA (Ma et al., SIGIR 2024).

    Args:
        backbone: Transformer and tokenizer.
        pooler: Any registered pooler sized for the backbone.
        max_length: Token budget for the pair (the query is kept whole when possible).
        dtype: Autocast dtype (bf16/fp16) for forward passes.
    """

    def __init__(
        self,
        backbone: Backbone,
        pooler: Pooler,
        max_length: int = 512,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooler = pooler
        self.head = nn.Linear(pooler.output_dim, 1)
        self.max_length = int(max_length)
        self.dtype = dtype

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        pooling: str | None = None,
        max_length: int = 512,
        attention: str | None = None,
        *,
        dtype: torch.dtype | None = None,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        trust_remote_code: bool = False,
        **pooler_kwargs: Any,
    ) -> CrossEncoder:
        """A new cross-encoder (fresh scoring head) on a transformers backbone, in eval mode
        (call ``.train()`` to train it)."""
        backbone = Backbone.from_pretrained(
            name_or_path,
            attention=attention,
            lora=lora,
            gradient_checkpointing=gradient_checkpointing,
            trust_remote_code=trust_remote_code,
        )
        pooling = pooling or ("last" if backbone.is_decoder else "cls")
        pooler = build_pooler(
            pooling,
            hidden_size=backbone.hidden_size,
            num_layers=backbone.num_layers,
            num_heads=backbone.num_heads,
            **pooler_kwargs,
        )
        return cls(backbone, pooler, max_length=max_length, dtype=dtype).eval()

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def tokenize(self, queries: Sequence[str], docs: Sequence[str]) -> dict[str, Tensor]:
        """Padded pair features. Encoders use the tokenizer's pair template; decoders read
        ``"query: Q\\ndocument: D"`` followed by EOS. Documents are truncated first."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        tok = self.backbone.tokenizer
        if not self.backbone.is_decoder:
            return dict(
                tok(
                    list(queries),
                    list(docs),
                    truncation="longest_first",
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
            )
        q_ids = tok([f"query: {q}\ndocument: " for q in queries], add_special_tokens=True)["input_ids"]
        d_ids = tok(list(docs), add_special_tokens=False)["input_ids"]
        eos = tok.eos_token_id
        rows = []
        for q, d in zip(q_ids, d_ids, strict=True):
            q = q[: self.max_length // 2] if len(q) + len(d) + 1 > self.max_length else q
            room = max(self.max_length - 1 - len(q), 0)
            rows.append([*q, *d[:room], eos])
        return self.backbone.pad(rows)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """Relevance scores, shape (B,)."""
        device = self.device
        features = {k: v.to(device) for k, v in features.items() if isinstance(v, Tensor)}
        with autocast(device, self.dtype):
            hidden = self.backbone(features, all_layers=self.pooler.needs_all_layers)
            pooled = self.pooler(hidden, features["attention_mask"])
            scores = self.head(pooled.to(self.head.weight.dtype)).squeeze(-1)
        return scores.float()

    @torch.inference_mode()
    def score(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Scores (N,) for aligned (query, document) pairs, batched by length."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        out = np.zeros(len(queries), dtype=np.float32)
        order = sorted(range(len(queries)), key=lambda i: -(len(queries[i]) + len(docs[i])))
        was_training = self.training
        self.eval()
        try:
            for start in tqdm(
                range(0, len(order), batch_size),
                disable=not show_progress,
                desc="score",
                unit="batch",
            ):
                rows = order[start : start + batch_size]
                features = self.tokenize([queries[i] for i in rows], [docs[i] for i in rows])
                out[rows] = self(features).cpu().numpy()
        finally:
            self.train(was_training)
        return out

    def save(self, directory: str | Path) -> None:
        """Write backbone (safetensors), tokenizer, pooler + head weights and a JSON config."""
        with atomic_directory(directory) as tmp:
            self.backbone.merged_model().save_pretrained(tmp, safe_serialization=True)
            self.backbone.tokenizer.save_pretrained(tmp)
            state = {f"pooler.{k}": v for k, v in self.pooler.state_dict().items()}
            state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
            save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / HEAD_NAME))
            config = {
                "type": "crossencoder",
                "max_length": self.max_length,
                "attention": self.backbone.attention,
                "append_eos": self.backbone.append_eos,
                "pooler": self.pooler.get_config(),
            }
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, **backbone_kwargs: Any) -> CrossEncoder:
        """Load a folder written by :meth:`save`."""
        directory = Path(directory)
        config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        if config.get("type") != "crossencoder":
            raise ValueError(f"{directory / CONFIG_NAME}: expected type 'crossencoder'")
        backbone = Backbone.from_pretrained(
            directory,
            attention=config["attention"],
            append_eos=config["append_eos"],
            **backbone_kwargs,
        )
        model = cls(backbone, pooler_from_config(config["pooler"]), max_length=config["max_length"])
        state = load_file(str(directory / HEAD_NAME))
        model.pooler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("pooler.")})
        model.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        return model.eval()
