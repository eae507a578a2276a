"""The default ``VectorIndex``: FAISS over normalised vectors (inner product = cosine).

Exact search (``IndexFlatIP``) below ``FLAT_LIMIT`` vectors, HNSW above. Vectors and their chunk
ids are kept beside the FAISS structure so ids, not positions, cross the boundary and stored
vectors can be read back by id. The FAISS structure is rebuilt lazily after changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Collection, Iterable, Sequence

import numpy as np

from .base import StoreError

FLAT_LIMIT = 50_000  # exact search below this many vectors, HNSW above


def build_faiss(vectors: np.ndarray, dim: int):
    import faiss

    if len(vectors) >= FLAT_LIMIT:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class FaissIndex:
    kind = "faiss"

    def __init__(self, dim: int, ids: list[str] | None = None, vectors: np.ndarray | None = None, index=None):
        self.dim = int(dim)
        self._ids: list[str] = list(ids or [])
        self._vecs = vectors if vectors is not None else np.zeros((0, self.dim), dtype=np.float32)
        self._pos = {c: i for i, c in enumerate(self._ids)}
        self._index = index

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def structure(self) -> str:
        return type(self._faiss()).__name__

    def _faiss(self):
        if self._index is None:
            self._index = build_faiss(self._vecs, self.dim)
        return self._index

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        if len(ids) != len(vectors):
            raise ValueError("one vector per id expected")
        if len(ids) and vectors.shape[1] != self.dim:
            raise StoreError(f"vector dimension {vectors.shape[1]} does not match the index ({self.dim})")
        self.delete(ids)
        self._ids.extend(ids)
        self._vecs = np.vstack([self._vecs, np.asarray(vectors, dtype=np.float32)])
        self._pos = {c: i for i, c in enumerate(self._ids)}
        self._index = None

    def delete(self, ids: Iterable[str]) -> None:
        drop = {self._pos[c] for c in ids if c in self._pos}
        if not drop:
            return
        keep = [i for i in range(len(self._ids)) if i not in drop]
        self._ids = [self._ids[i] for i in keep]
        self._vecs = self._vecs[keep]
        self._pos = {c: i for i, c in enumerate(self._ids)}
        self._index = None

    def search(self, qvec: np.ndarray, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        if not self._ids:
            return []
        if allowed is not None:  # exact search over the allowed rows only
            pos = np.array(sorted(self._pos[c] for c in allowed if c in self._pos), dtype=np.int64)
            if not len(pos):
                return []
            s = self._vecs[pos] @ np.asarray(qvec, dtype=np.float32).reshape(-1)
            order = np.argsort(-s)[:k]
            return [(self._ids[int(pos[i])], float(s[i])) for i in order]
        k = min(k, len(self._ids))
        scores, pos = self._faiss().search(np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32), k)
        return [(self._ids[int(i)], float(s)) for i, s in zip(pos[0], scores[0]) if i >= 0]

    def get(self, ids: Sequence[str]) -> np.ndarray:
        return self._vecs[[self._pos[c] for c in ids]] if ids else np.zeros((0, self.dim), np.float32)

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ids.json").write_text(json.dumps(self._ids), encoding="utf-8")
        np.save(folder / "vectors.npy", self._vecs.astype(np.float32))
        faiss.write_index(self._faiss(), str(folder / "faiss.index"))

    @classmethod
    def load(cls, folder: Path, dim: int) -> "FaissIndex":
        import faiss

        ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        vecs = np.load(folder / "vectors.npy")
        index = faiss.read_index(str(folder / "faiss.index"))
        if len(ids) != len(vecs) or index.ntotal != len(ids):
            raise StoreError(f"vector index in {folder} is inconsistent (ids/vectors differ)")
        return cls(dim, ids, vecs, index)
