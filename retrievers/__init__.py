"""retrievers: Lucene BM25 (Pyserini) and FAISS dense retrieval, TREC runs, hard-negative mining."""

__version__ = "0.1.0"

from retrievers.errors import DatasetUnavailableError, InputError
from retrievers.io.dataset import Dataset, Document, load_dataset

__all__ = ["Dataset", "DatasetUnavailableError", "Document", "InputError", "load_dataset"]
