"""Bi-encoder for dense retrieval: query and document towers (shared or separate)."""

from __future__ import annotations

import copy
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ranker.encoders.backbone import Backbone
from ranker.encoders.encoder import Encoder
from ranker.encoders.io import load_tower, save_tower, tower_config
from ranker.models.card import bi_encoder_card, write_card
from ranker.models.interaction import BilinearInteraction, dot_scores
from ranker.models.kind import CONFIG_NAME
from ranker.pooling import build_pooler
from retrievers.errors import InputError
from retrievers.io.atomic import atomic_directory

logger = logging.getLogger(__name__)


class DocumentMemo:
    """Document embeddings kept by text across calls, least recently used first out (at most
    ``limit`` documents: a bounded memory whatever the corpus)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def embed(self, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Embeddings (N, dim) of ``texts``; only those not kept are encoded (by ``encode``)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, encode(missing), strict=True))
        rows = []
        for text in texts:
            self._vectors.move_to_end(text)
            rows.append(self._vectors[text])
        while len(self._vectors) > self.limit:
            self._vectors.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


class BiEncoder(nn.Module):
    """Dual encoder (Karpukhin et al., "Dense Passage Retrieval", EMNLP 2020): a query tower
    and a document tower, scored by dot product (cosine when normalized) over ``temperature``.

    Build one with :meth:`from_pretrained`; save with :meth:`save`, reload with :meth:`load`.
    A saved shared-tower bi-encoder is also a sentence-transformers folder.

    Args:
        query_encoder: The query tower.
        doc_encoder: The document tower; None shares the query tower.
        temperature: Divides similarities in :meth:`similarity` (for contrastive losses).
        interaction: Optional low-rank bilinear head scoring (query, document) embedding
            pairs instead of their inner product (:mod:`ranker.models.interaction`); such a
            model reranks a run (:meth:`score`) rather than searching an index.
    """

    def __init__(
        self,
        query_encoder: Encoder,
        doc_encoder: Encoder | None = None,
        temperature: float = 1.0,
        interaction: BilinearInteraction | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.query_encoder = query_encoder
        self.shared = doc_encoder is None or doc_encoder is query_encoder
        self.doc_encoder: Encoder = query_encoder if doc_encoder is None else doc_encoder
        self.temperature = float(temperature)
        self.interaction = interaction

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int | None = None,
        query_prefix: str = "",
        doc_prefix: str = "",
        attention: str | None = None,
        *,
        shared: bool = True,
        temperature: float = 1.0,
        dtype: torch.dtype | None = None,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        trust_remote_code: bool = False,
        **pooler_kwargs: Any,
    ) -> BiEncoder:
        """A new bi-encoder on a transformers backbone (hub id or local folder), in eval mode
        (call ``.train()`` to train it).

        Args:
            name_or_path: The backbone.
            pooling: A registered pooler name (see ``ranker.pooling.POOLERS``).
            normalize: L2-normalize embeddings.
            max_length: Token budget per text (default 512, capped at the model's positions).
            query_prefix, doc_prefix: Instruction prefixes (e.g. ``"query: "``, ``"passage: "``).
            attention: Decoder attention, ``"causal"`` (default) or ``"bidirectional"``.
            shared: One tower for both sides (False: two independent copies).
            temperature: Similarity temperature.
            dtype: Autocast dtype for forward passes (bf16/fp16).
            lora: peft ``LoraConfig`` arguments to train a LoRA adapter instead of all weights.
            gradient_checkpointing: Recompute activations in backward.
            trust_remote_code: Allow the model's own code (off by default).
            **pooler_kwargs: Options of the pooler (e.g. ``layers=[-2, -1]``, ``num_latents=8``).
        """
        backbone = Backbone.from_pretrained(
            name_or_path,
            attention=attention,
            lora=lora,
            gradient_checkpointing=gradient_checkpointing,
            trust_remote_code=trust_remote_code,
        )
        pooler = build_pooler(
            pooling,
            hidden_size=backbone.hidden_size,
            num_layers=backbone.num_layers,
            num_heads=backbone.num_heads,
            **pooler_kwargs,
        )
        query = Encoder(
            backbone,
            pooler,
            max_length=max_length,
            prefix=query_prefix,
            normalize=normalize,
            dtype=dtype,
        )
        doc = None
        if not shared or doc_prefix != query_prefix:
            tower = query if shared else copy.deepcopy(query)
            doc = Encoder(
                tower.backbone,
                tower.pooler,
                max_length=max_length,
                prefix=doc_prefix,
                normalize=normalize,
                dtype=dtype,
            )
        model = cls(query, doc, temperature=temperature)
        model.shared = shared
        return model.eval()

    # -- training API -------------------------------------------------------------------------
    def tokenize_queries(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Padded tensors for a batch of queries (query prefix applied)."""
        return self.query_encoder.tokenize(texts)

    def tokenize_docs(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Padded tensors for a batch of documents (document prefix applied)."""
        return self.doc_encoder.tokenize(texts)

    def embed_queries(self, features: dict[str, Tensor]) -> Tensor:
        """Query embeddings (B, dim), differentiable."""
        return self.query_encoder(features)

    def embed_docs(self, features: dict[str, Tensor]) -> Tensor:
        """Document embeddings (B, dim), differentiable."""
        return self.doc_encoder(features)

    def similarity(self, queries: Tensor, docs: Tensor) -> Tensor:
        """Scores ``queries @ docs.T / temperature`` (Q, D), or the interaction head's."""
        if self.interaction is not None:
            return self.interaction(queries, docs) / self.temperature
        return queries @ docs.transpose(0, 1) / self.temperature

    @torch.no_grad()
    def score(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        batch_size: int = 64,
        doc_memo: DocumentMemo | None = None,
    ) -> np.ndarray:
        """Scores of row-aligned (query, document) pairs, for reranking (``ranker rerank``):
        the interaction head's when there is one, else the inner product of the embeddings.
        ``doc_memo`` keeps document embeddings across calls (a judge scoring the candidates
        of many queries over one corpus encodes each document once)."""
        if len(queries) != len(docs):
            raise ValueError(f"score: {len(queries)} queries but {len(docs)} documents")
        unique = {text: i for i, text in enumerate(dict.fromkeys(queries))}
        q = torch.from_numpy(self.encode_queries(list(unique), batch_size=batch_size))
        if doc_memo is None:
            d = torch.from_numpy(self.encode_corpus(list(docs), batch_size=batch_size))
        else:
            d = torch.from_numpy(
                doc_memo.embed(list(docs), lambda t: self.encode_corpus(t, batch_size=batch_size))
            )
        rows = q[[unique[t] for t in queries]] if queries else q[:0]
        out = []
        for start in range(0, len(docs), batch_size):
            qa, da = rows[start : start + batch_size], d[start : start + batch_size]
            if self.interaction is not None:
                device = self.interaction.linear0.weight.device
                out.append(self.interaction.pairwise(qa.to(device), da.to(device)).float().cpu())
            else:
                out.append(dot_scores(qa, da))
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    # -- inference API ------------------------------------------------------------------------
    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Float32 query embeddings (N, dim), in input order."""
        return self.query_encoder.encode(
            texts, batch_size=batch_size, show_progress=show_progress, desc="queries"
        )

    def encode_corpus(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Float32 document embeddings (N, dim), in input order."""
        return self.doc_encoder.encode(
            texts, batch_size=batch_size, show_progress=show_progress, desc="documents"
        )

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Document-side embeddings: the ``encode(texts) -> np.ndarray`` protocol of
        ``retrievers``. For query-side encoding pass :meth:`for_queries` instead."""
        return self.encode_corpus(texts, batch_size=batch_size, show_progress=show_progress)

    def for_queries(self) -> _SideView:
        """An object whose ``encode`` embeds queries (for retrievers taking one encoder)."""
        return _SideView(self.encode_queries)

    def for_docs(self) -> _SideView:
        """An object whose ``encode`` embeds documents."""
        return _SideView(self.encode_corpus)

    def set_autocast(self, dtype: str | torch.dtype | None) -> None:
        """Run both towers' forward passes under autocast to ``dtype`` (``"bfloat16"``);
        ``None`` or ``"float32"``: plain float32."""
        if isinstance(dtype, str):
            dtype = None if dtype == "float32" else getattr(torch, dtype)
        for tower in (self.query_encoder, self.doc_encoder):
            tower.dtype = dtype

    def add_adapter(self) -> None:
        """A trainable linear map (identity at first) on each tower's pooled vector; towers
        that share their backbone share it too."""
        adapter = self.query_encoder.add_adapter()
        if self.doc_encoder is not self.query_encoder:
            if self.shared:
                self.doc_encoder.adapter = adapter
            else:
                self.doc_encoder.add_adapter()

    @property
    def dim(self) -> int:
        """Embedding width."""
        return self.query_encoder.output_dim

    # -- persistence ----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The JSON config saved beside the weights."""
        config = {
            "type": "biencoder",
            "shared": self.shared,
            "temperature": self.temperature,
            "query": tower_config(self.query_encoder),
            "doc": tower_config(self.doc_encoder),
        }
        if self.interaction is not None:
            config["interaction"] = self.interaction.get_config()
        return config

    def save(self, directory: str | Path) -> None:
        """Write the model atomically to a new (or empty) folder: safetensors + JSON configs.

        A shared-tower model is a sentence-transformers folder at the top level; separate
        towers go to ``query/`` and ``doc/`` (each one such a folder).
        """
        with atomic_directory(directory) as tmp:
            if self.shared:
                save_tower(self.query_encoder, tmp)
                prompts = {"query": self.query_encoder.prefix, "document": self.doc_encoder.prefix}
                st_config = {
                    "prompts": {k: v for k, v in prompts.items() if v},
                    "default_prompt_name": None,
                    "similarity_fn_name": "cosine" if self.query_encoder.normalize else "dot",
                }
                (tmp / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2))
            else:
                for side, encoder in (("query", self.query_encoder), ("doc", self.doc_encoder)):
                    (tmp / side).mkdir()
                    save_tower(encoder, tmp / side)
            if self.interaction is not None:
                self.interaction.save(tmp)
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2) + "\n")
            write_card(tmp, bi_encoder_card(self.config(), tmp, self.query_encoder.pooler.mode))
        logger.info("saved bi-encoder to %s", directory)

    @classmethod
    def load(cls, directory: str | Path, **backbone_kwargs: Any) -> BiEncoder:
        """Load a folder written by :meth:`save`."""
        from ranker.encoders.folders import read_json_file

        directory = Path(directory)
        path = directory / CONFIG_NAME
        if not directory.is_dir():
            raise InputError("model folder not found", directory)
        config = read_json_file(path, "ranker bi-encoder")
        if not isinstance(config, dict) or config.get("type") != "biencoder":
            kind = config.get("type") if isinstance(config, dict) else None
            raise InputError(f"type is {kind!r}, expected 'biencoder'", path)
        if config["shared"]:
            query = load_tower(directory, config["query"], **backbone_kwargs)
            doc = None
            if config["doc"]["prefix"] != config["query"]["prefix"]:
                doc = Encoder(
                    query.backbone,
                    query.pooler,
                    max_length=config["doc"]["max_length"],
                    prefix=config["doc"]["prefix"],
                    normalize=config["doc"]["normalize"],
                    adapter=query.adapter,
                )
        else:
            query = load_tower(directory / "query", config["query"], **backbone_kwargs)
            doc = load_tower(directory / "doc", config["doc"], **backbone_kwargs)
        interaction = None
        if config.get("interaction"):
            interaction = BilinearInteraction.load(directory, config["interaction"])
        model = cls(query, doc, temperature=config["temperature"], interaction=interaction)
        model.shared = config["shared"]
        return model.eval()


class _SideView:
    """Adapter exposing one side of a bi-encoder as ``encode(texts) -> np.ndarray``."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self._fn(texts, batch_size=batch_size, show_progress=show_progress)
