"""Any model ``ranker`` loads, as a judge: a named pair scorer for relabelling and audits.

``retrievers`` code never loads models; it takes a :class:`retrievers.mining.promote.Judge`
(a name and ``score(queries, docs) -> np.ndarray``). This builds one from a model folder or
hub id: cross-encoders (saved by ranker, or a transformers sequence-classification model)
score the pair jointly; bi-encoders (saved by ranker, sentence-transformers folders, plain
transformers backbones) score it by their similarity (see :meth:`BiEncoder.score`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranker.models.biencoder import DocumentMemo
from retrievers.errors import InputError, first_line
from retrievers.mining.promote import Judge

CROSS_KINDS = ("crossencoder", "sequence-classification")
BI_KINDS = ("biencoder", "sentence-transformers", "transformers")


def load_cross_encoder(model: str) -> Any:
    """A :class:`~ranker.models.CrossEncoder` from a ranker folder or a transformers model.

    Raises:
        InputError: one line naming the model, when it is no cross-encoder or fails to load.
    """
    from ranker.models import CrossEncoder
    from ranker.models.kind import require_kind

    kind = require_kind(
        model,
        ("crossencoder", "sequence-classification", "sentence-transformers", "transformers", "gguf", "hub"),
        "a cross-encoder or a transformers model to score pairs with",
    )
    try:
        if kind == "crossencoder":
            return CrossEncoder.load(model)
        return CrossEncoder.from_pretrained(model)
    except (OSError, ValueError) as err:
        raise InputError(f"could not load cross-encoder {model!r}: {err}") from None


def _hub_is_cross_encoder(model: str) -> bool:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=False)
    except OSError as err:
        first = first_line(err)
        raise InputError(f"cannot load the judge: {first}", model) from None
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or [])


def load_judge(model: str | Path, batch_size: int = 64, name: str | None = None) -> Judge:
    """A :class:`Judge` scoring (query, document) pairs with ``model``.

    Args:
        model: A cross-encoder or bi-encoder folder (any kind ``ranker`` loads) or hub id.
        batch_size: Pairs scored at a time.
        name: The name recorded with its verdicts (default: ``model`` as given).

    Raises:
        InputError: one line naming the model, when it cannot be loaded as either.
    """
    from ranker.models.kind import model_kind
    from ranker.models.loading import load_biencoder

    text = str(model)
    kind = model_kind(text)
    if kind == "gguf":
        raise InputError("a GGUF file cannot judge pairs; expected a cross-encoder or bi-encoder", model)
    cross = kind in CROSS_KINDS or (kind == "hub" and _hub_is_cross_encoder(text))
    scorer: Any = load_cross_encoder(text) if cross else load_biencoder(text)
    scorer.eval()
    # a bi-encoder judge sees the same documents under many queries: embed each once
    memo = None if cross else DocumentMemo()

    def score(queries, docs):
        if memo is None:
            return scorer.score(list(queries), list(docs), batch_size=batch_size)
        return scorer.score(list(queries), list(docs), batch_size=batch_size, doc_memo=memo)

    return Judge(name or text, score)
