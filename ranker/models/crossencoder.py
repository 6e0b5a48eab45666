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

from ranker.encoders.backbone import Backbone, autocast, classifies_sequences
from ranker.models.card import cross_encoder_card, write_card
from ranker.models.kind import CONFIG_NAME
from ranker.pooling import build_pooler, pooler_from_config
from ranker.pooling.base import Pooler
from retrievers.errors import InputError
from retrievers.io.atomic import atomic_directory
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)

HEAD_NAME = "head.safetensors"
SEQUENCE_CLASSIFICATION = "sequence-classification"  # ranker_config.json "head" values
RANKER_HEAD = "pooler-linear"
# sentence-transformers applies a sigmoid to one-logit models unless the config names another
IDENTITY = "torch.nn.modules.linear.Identity"


class CrossEncoder(nn.Module):
    """A transformer reading the (query, document) pair, one relevance score out (Nogueira &
    Cho, "Passage Re-ranking with BERT", 2019).

    Two kinds of head:

    * the architecture's standard one-logit ``*ForSequenceClassification`` head (BERT: its
      pooler, dense + tanh on CLS, then dropout and a linear layer) -- the default for
      encoders. Saved folders are plain transformers sequence-classification models that
      ``AutoModelForSequenceClassification`` and ``sentence_transformers.CrossEncoder`` load
      with the scores ranker gives;
    * a ranker pooler and a linear head on the base model (``head.safetensors``), for
      decoders (last-token pooling, as RankLLaMA, Ma et al., SIGIR 2024) and for any explicit
      ``pooling``. Only ranker loads these heads.

    Args:
        backbone: Transformer and tokenizer (a sequence-classification model when ``pooler``
            is None).
        pooler: A registered pooler sized for the backbone, or None for the standard head.
        max_length: Token budget for the pair (the query is kept whole when possible).
        dtype: Autocast dtype (bf16/fp16) for forward passes.
    """

    def __init__(
        self,
        backbone: Backbone,
        pooler: Pooler | None = None,
        max_length: int = 512,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooler = pooler
        self.head: nn.Linear | None = None
        if pooler is None:
            if not backbone.classifier:
                raise ValueError("a cross-encoder without a pooler needs a sequence-classification backbone")
            labels = backbone.model.config.num_labels
            if labels != 1:
                raise ValueError(f"the sequence-classification model has {labels} labels; expected 1")
        else:
            self.head = nn.Linear(pooler.output_dim, 1)
        self.max_length = backbone.fit_max_length(max_length)
        self.dtype = dtype

    @property
    def standard(self) -> bool:
        """Whether scores come from the transformers sequence-classification head."""
        return self.pooler is None

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
        """A cross-encoder on a transformers backbone, in eval mode (call ``.train()`` to train
        it). Without ``pooling``, an encoder gets its standard sequence-classification head (a
        fresh one, or the checkpoint's own when it is already such a model, e.g. a
        sentence-transformers cross-encoder); a decoder gets last-token pooling and a linear
        head. An explicit ``pooling`` always means a ranker pooler and linear head."""
        from transformers import AutoConfig

        standard = False
        if pooling is None and not pooler_kwargs and not str(name_or_path).endswith(".gguf"):
            from ranker.encoders.folders import check_model_folder

            check_model_folder(name_or_path, trust_remote_code)
            config = AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
            standard = classifies_sequences(config)
            trained = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
            if trained and not standard:  # its head would be dropped for a random one
                raise ValueError(
                    f"{name_or_path}: {config.architectures[0]} heads are not supported; "
                    "start from the base model instead"
                )
        backbone = Backbone.from_pretrained(
            name_or_path,
            attention=attention,
            lora=lora,
            gradient_checkpointing=gradient_checkpointing,
            trust_remote_code=trust_remote_code,
            sequence_classification=standard,
        )
        if standard:
            return cls(backbone, None, max_length=max_length, dtype=dtype).eval()
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
            if self.pooler is None or self.head is None:
                return self.backbone.classify(features).squeeze(-1).float()
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
                disable=bars_disabled(show_progress),
                desc="score",
                unit="batch",
            ):
                rows = order[start : start + batch_size]
                features = self.tokenize([queries[i] for i in rows], [docs[i] for i in rows])
                out[rows] = self(features).cpu().numpy()
        finally:
            self.train(was_training)
        return out

    def config(self) -> dict[str, Any]:
        """The ranker side of a saved folder (``ranker_config.json``)."""
        config: dict[str, Any] = {
            "type": "crossencoder",
            "head": SEQUENCE_CLASSIFICATION if self.standard else RANKER_HEAD,
            "max_length": self.max_length,
            "attention": self.backbone.attention,
            "append_eos": self.backbone.append_eos,
        }
        if self.pooler is not None:
            config["pooler"] = self.pooler.get_config()
        return config

    def save(self, directory: str | Path) -> None:
        """Write the model atomically to a new (or empty) folder.

        Standard head: a transformers sequence-classification folder (``config.json`` naming
        e.g. ``BertForSequenceClassification``, one label, ``model.safetensors`` with the
        head), whose tokenizer truncates at ``max_length`` and whose config tells
        sentence-transformers to return raw logits, as :meth:`score` does. Ranker head: the
        base model plus ``head.safetensors`` (pooler and linear head).
        """
        tokenizer = self.backbone.tokenizer
        with atomic_directory(directory) as tmp:
            model = self.backbone.merged_model()
            if self.standard:
                model.config.sentence_transformers = {"activation_fn": IDENTITY}
            model.save_pretrained(tmp, safe_serialization=True)
            saved_length = tokenizer.model_max_length
            tokenizer.model_max_length = self.max_length
            try:
                tokenizer.save_pretrained(tmp)
            finally:
                tokenizer.model_max_length = saved_length
            if self.pooler is not None and self.head is not None:
                state = {f"pooler.{k}": v for k, v in self.pooler.state_dict().items()}
                state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
                save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / HEAD_NAME))
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2) + "\n")
            write_card(tmp, cross_encoder_card(self.config(), type(model).__name__))
        logger.info("saved cross-encoder to %s", directory)

    @classmethod
    def load(cls, directory: str | Path, **backbone_kwargs: Any) -> CrossEncoder:
        """Load a folder written by :meth:`save` (folders saved before the standard head, with
        ``head.safetensors`` and no ``head`` key, load as ranker heads)."""
        from ranker.encoders.folders import check_safetensors, read_json_file

        directory = Path(directory)
        if not directory.is_dir():
            raise InputError("model folder not found", directory)
        config = read_json_file(directory / CONFIG_NAME, "cross-encoder")
        if not isinstance(config, dict) or config.get("type") != "crossencoder":
            kind = config.get("type") if isinstance(config, dict) else None
            raise InputError(f"type is {kind!r}, expected 'crossencoder'", directory / CONFIG_NAME)
        standard = config.get("head", RANKER_HEAD) == SEQUENCE_CLASSIFICATION
        if not standard:
            check_safetensors(directory / HEAD_NAME)
        backbone = Backbone.from_pretrained(
            directory,
            attention=config["attention"],
            append_eos=config["append_eos"],
            sequence_classification=standard,
            **backbone_kwargs,
        )
        if standard:
            return cls(backbone, None, max_length=config["max_length"]).eval()
        pooler = pooler_from_config(config["pooler"])
        model = cls(backbone, pooler, max_length=config["max_length"])
        state = load_file(str(directory / HEAD_NAME))
        pooler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("pooler.")})
        assert model.head is not None
        model.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        return model.eval()
