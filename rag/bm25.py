"""BM25 over chunks with Dutch stemming and stop words (bm25s + PyStemmer).

Rebuilt from the chunk texts whenever the index is saved, and stored beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .textutil import content_terms


class BM25Index:
    def __init__(self, retriever=None, vocab: set[str] | None = None):
        self._r = retriever
        self._vocab = vocab or set()

    @classmethod
    def build(cls, texts: Sequence[str]) -> "BM25Index":
        import bm25s

        if not texts:
            return cls(None, set())
        tokens = [content_terms(t) or ["_empty_"] for t in texts]
        r = bm25s.BM25(k1=1.2, b=0.75)
        r.index(tokens, show_progress=False)
        vocab = {t for doc in tokens for t in doc}
        return cls(r, vocab)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no query term is known)."""
        if self._r is None:
            return np.zeros(0, dtype=np.float32)
        q = [t for t in content_terms(query) if t in self._vocab]
        if not q:
            return np.zeros(self._r.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._r.get_scores(q), dtype=np.float32)

    def save(self, path: Path) -> None:
        if self._r is not None:
            self._r.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        import bm25s

        if not (path / "params.index.json").exists():
            return cls(None, set())
        r = bm25s.BM25.load(str(path), show_progress=False)
        return cls(r, set(r.vocab_dict.keys()))
