"""How spread out a bi-encoder's document embeddings are: the mean and standard deviation of
the cosine between different documents. A model whose embeddings all point one way (mean
cosine near 1, tiny spread) gives InfoNCE logits that barely differ, so its loss sits at
chance (ln of the candidates per query) and training hardly moves it.

    PYTHONPATH=. python benchmarks/embedding_spread.py MODEL_DIR [MODEL_DIR ...] \
        --corpus ../shared/data/scifact --docs 64 [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys

logger = logging.getLogger(__name__)


def spread(model_dir: str, texts: list[str], dtype: str) -> dict[str, float]:
    """Mean and standard deviation of the cosine over all pairs of different texts."""
    import numpy as np

    from ranker.models import load_biencoder

    model = load_biencoder(model_dir)
    model.set_autocast(dtype)
    vectors = model.encode_corpus(texts, batch_size=32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors.T
    pairs = cosine[~np.eye(len(cosine), dtype=bool)]
    return {"mean_cosine": float(pairs.mean()), "std_cosine": float(pairs.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="saved bi-encoder folders")
    parser.add_argument("--corpus", default="../shared/data/scifact", help="BEIR folder")
    parser.add_argument("--docs", type=int, default=64, help="first N documents (64)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from retrievers.io.dataset import load_dataset

    texts = [d.contents for d in itertools.islice(load_dataset(args.corpus).docs(), args.docs)]
    result = {m: spread(m, texts, args.dtype) for m in args.models}
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
