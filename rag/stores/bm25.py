"""The default ``KeywordIndex``: BM25 over chunks with Dutch stemming and stop words (bm25s +
PyStemmer), keyed by chunk id. Rebuilt from the chunk texts when a snapshot is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Collection, Sequence

import numpy as np

from ..text import content_terms, stem, words


class BM25Index:
    def __init__(self, retriever=None, ids: Sequence[str] = (), vocab: set[str] | None = None):
        self._r = retriever
        self._ids = list(ids)
        self._vocab = vocab or set()
        self._prefixes = {t[:5] for t in self._vocab if len(t) >= 5}

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> "BM25Index":
        import bm25s

        if not texts:
            return cls()
        tokens = [content_terms(t) or ["_empty_"] for t in texts]
        r = bm25s.BM25(k1=1.2, b=0.75)
        r.index(tokens, show_progress=False)
        return cls(r, ids, {t for doc in tokens for t in doc})

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk (in id order) for ``query``; zeros when no term is known."""
        if self._r is None:
            return np.zeros(0, dtype=np.float32)
        q = [t for t in content_terms(query) if t in self._vocab]
        if not q:
            return np.zeros(len(self._ids), dtype=np.float32)
        return np.asarray(self._r.get_scores(q), dtype=np.float32)

    def top(self, query: str, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        s = self.scores(query)
        if not len(s):
            return []
        if allowed is not None:
            mask = np.array([c in allowed for c in self._ids], dtype=bool)
            s = np.where(mask, s, 0.0)
        order = np.argsort(-s)[:k]
        return [(self._ids[int(i)], float(s[i])) for i in order if s[i] > 0]

    def has_term(self, word: str) -> bool:
        for w in words(word):
            parts = [w] + [p for p in w.replace("’", "'").replace("'", "-").split("-") if len(p) >= 4]
            for p in parts:
                s = stem(p)
                if s in self._vocab or (len(p) >= 5 and p[:5] in self._prefixes):
                    return True
        return False

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "ids.json").write_text(json.dumps(self._ids), encoding="utf-8")
        if self._r is not None:
            self._r.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        import bm25s

        if not (path / "params.index.json").exists():
            return cls()
        r = bm25s.BM25.load(str(path), show_progress=False)
        ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
        return cls(r, ids, set(r.vocab_dict.keys()))
