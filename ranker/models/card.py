"""A README.md in every saved model folder: what the folder is and how each library loads it.

``ranker_config.json`` answers the question for ranker (see :mod:`ranker.models.kind`); the
card answers it for a person, or for a hub page, with the loading code of transformers and
sentence-transformers that reproduces ranker's scores or embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CARD_NAME = "README.md"

_CROSS_STANDARD = """\
# Cross-encoder reranker (saved by ranker)

A standard `{architecture}` with one logit: the relevance score of a (query, document)
pair, read together (query first). Pairs are truncated to {max_length} tokens. Scores are
raw logits (higher is more relevant); every loader below gives the same numbers.

```bash
ranker rerank DATASET --split test --run RUN.trec --model THIS_FOLDER --out RERANKED.trec
```

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("THIS_FOLDER").eval()
tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")
features = tokenizer(queries, docs, padding=True, truncation=True, return_tensors="pt")
scores = model(**features).logits.squeeze(-1)

from sentence_transformers import CrossEncoder
scores = CrossEncoder("THIS_FOLDER").predict(list(zip(queries, docs)))  # raw logits (config.json)
```
"""

_CROSS_RANKER = """\
# Cross-encoder reranker (saved by ranker, ranker head)

A `{architecture}` backbone with a ranker pooler (`{pooling}`) and a linear scoring head in
`head.safetensors`. Only ranker loads the head: `AutoModelForSequenceClassification` or
`sentence_transformers.CrossEncoder` on this folder would put a *random* head on the backbone.
Pairs are truncated to {max_length} tokens.

```bash
ranker rerank DATASET --split test --run RUN.trec --model THIS_FOLDER --out RERANKED.trec
```

```python
from ranker.models import CrossEncoder
scores = CrossEncoder.load("THIS_FOLDER").score(queries, docs)
```
"""

_BI = """\
# Bi-encoder (saved by ranker)

A dense retriever: {towers}, `{pooling}` pooling, {similarity} similarity, texts truncated to
{max_length} tokens.{prompts} Each tower is a sentence-transformers folder.

```bash
ranker index DATASET --retriever dense --model THIS_FOLDER --index INDEX
```

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{st_path}"{trust})
```
"""


def cross_encoder_card(config: dict[str, Any], architecture: str) -> str:
    """The card of a cross-encoder folder from its ``ranker_config.json``."""
    if config.get("head") == "sequence-classification":
        return _CROSS_STANDARD.format(architecture=architecture, max_length=config["max_length"])
    pooling = config.get("pooler", {}).get("mode", "?")
    return _CROSS_RANKER.format(architecture=architecture, pooling=pooling, max_length=config["max_length"])


def bi_encoder_card(config: dict[str, Any], folder: Path, pooling: str) -> str:
    """The card of a bi-encoder folder from its ``ranker_config.json`` (written into ``folder``)."""
    query, doc = config["query"], config["doc"]
    shared = config["shared"]
    prompts = ""
    if query.get("prefix") or doc.get("prefix"):
        prompts = f" Prompts: query {query['prefix']!r}, document {doc['prefix']!r}."
    tower = folder if shared else folder / "query"
    return _BI.format(
        towers="one tower for queries and documents" if shared else "separate `query/` and `doc/` towers",
        pooling=pooling,
        similarity="cosine" if query.get("normalize") else "dot-product",
        max_length=query["max_length"],
        prompts=prompts,
        st_path="THIS_FOLDER" if shared else "THIS_FOLDER/query",
        trust=", trust_remote_code=True" if (tower / "ranker_pooling.py").is_file() else "",
    )


def write_card(folder: Path, text: str) -> None:
    """Write the card into ``folder`` (a temporary folder of an atomic save)."""
    (folder / CARD_NAME).write_text(text, encoding="utf-8")
