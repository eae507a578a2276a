"""FAISS structures for the default store's vector segments, chosen by size, plus a recall check.

Vectors are normalised, so inner product = cosine. A segment (see ``segments``) keeps its raw
vectors in a ``.npy`` file; this module adds an approximate structure on top when the segment is
large enough, and always re-scores the approximate candidates exactly from the raw vectors, so
scores from different segments (and structures) compare.

``faiss_index`` in the config picks the structure: ``auto`` chooses by the segment's size (exact
below ``faiss_hnsw_min``, HNSW below ``faiss_ivf_min``, IVF-Flat below ``faiss_ivfpq_min``,
IVF-PQ above); ``flat`` / ``hnsw`` / ``ivf`` / ``ivfpq`` force one for every segment of at least
``ANN_MIN`` vectors (smaller ones are always searched exactly). Trained structures are written
with the segment and read back as they are (no re-training, no re-building).
``recall_at_k`` measures an approximate structure against exact search (``bench/store_writes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("flat", "hnsw", "ivf", "ivfpq")
ANN_MIN = 1000  # below this many vectors a segment is searched exactly whatever the setting
REFINE = 2  # approximate candidates fetched per wanted result, then re-scored exactly
FLAT_LIMIT = 50_000  # default of faiss_hnsw_min (kept for scripts that build a store-like HNSW directly)


@dataclass(frozen=True)
class FaissParams:
    kind: str = "auto"
    hnsw_min: int = FLAT_LIMIT
    ivf_min: int = 250_000
    ivfpq_min: int = 2_000_000
    hnsw_m: int = 32
    ef_search: int = 128
    nprobe: int = 32

    @classmethod
    def from_config(cls, cfg: Any) -> "FaissParams":
        return cls(kind=cfg.faiss_index, hnsw_min=cfg.faiss_hnsw_min, ivf_min=cfg.faiss_ivf_min,
                   ivfpq_min=cfg.faiss_ivfpq_min, ef_search=cfg.faiss_ef_search, nprobe=cfg.faiss_nprobe)


def choose_kind(n: int, p: FaissParams) -> str:
    if n < ANN_MIN:
        return "flat"
    if p.kind != "auto":
        return p.kind
    if n < p.hnsw_min:
        return "flat"
    if n < p.ivf_min:
        return "hnsw"
    return "ivf" if n < p.ivfpq_min else "ivfpq"


def _nlist(n: int) -> int:
    return int(max(1, min(4 * np.sqrt(n), n // 39)))


def _pq_m(dim: int) -> int:
    """Sub-quantisers for IVF-PQ: the divisor of ``dim`` nearest to dim/8 from below (8 dims each)."""
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


def build_faiss(vectors: np.ndarray, dim: int, kind: str = "auto", params: FaissParams | None = None):
    """A FAISS index over ``vectors`` (rows = positions) of ``kind`` (``auto``: by size)."""
    import faiss

    p = params or FaissParams(hnsw_min=FLAT_LIMIT)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    kind = choose_kind(len(x), p) if kind == "auto" else kind
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, p.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = p.ef_search
    elif kind in ("ivf", "ivfpq"):
        nlist = _nlist(len(x))
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            # 8-bit codes (256 centroids per sub-quantiser) want ~39 * 256 training points; fewer bits below that
            nbits = int(min(8, max(1, np.log2(len(x) / 39))))
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, _pq_m(dim), nbits, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        sample = x if len(x) <= 64 * nlist else x[np.random.default_rng(0).choice(len(x), 64 * nlist, replace=False)]
        index.train(sample)
        index.nprobe = p.nprobe
    else:
        raise ValueError(f"faiss_index: '{kind}' is not one of auto, {', '.join(KINDS)}")
    if len(x):
        index.add(x)
    return index


def build_ivf(vectors: np.ndarray, dim: int):
    return build_faiss(vectors, dim, "ivf")


def structure(index) -> str:
    return "flat" if index is None else type(index).__name__


def ann_top(index, vectors: np.ndarray, qvec: np.ndarray, k: int, params: FaissParams) -> tuple[np.ndarray, np.ndarray]:
    """Rows and exact scores of (about) the ``k`` best rows: ``REFINE * k`` approximate candidates
    from ``index`` re-scored against the raw ``vectors``; best first."""
    import faiss

    n = len(vectors)
    kk = int(min(n, REFINE * k))
    if kk <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    q = np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32)
    if isinstance(index, faiss.IndexHNSW):
        sp = faiss.SearchParametersHNSW(efSearch=max(params.ef_search, kk))
    elif isinstance(index, faiss.IndexIVF):
        sp = faiss.SearchParametersIVF(nprobe=params.nprobe)
    else:
        sp = None
    _, pos = index.search(q, kk, params=sp) if sp is not None else index.search(q, kk)
    rows = np.unique(pos[0][pos[0] >= 0])  # sorted: reads the raw vectors in file order
    scores = np.asarray(vectors[rows], dtype=np.float32) @ q[0]
    order = np.argsort(-scores)[:k]
    return rows[order], scores[order]


def exact_top(vectors: np.ndarray, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best rows by brute force; best first."""
    if not len(vectors) or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    s = np.asarray(vectors, dtype=np.float32) @ np.asarray(qvec, dtype=np.float32).reshape(-1)
    k = min(k, len(s))
    part = np.argpartition(-s, k - 1)[:k]
    order = part[np.argsort(-s[part], kind="stable")]
    return order.astype(np.int64), s[order]


def recall_at_k(index, vectors: np.ndarray, queries: np.ndarray, k: int = 10,
                params: FaissParams | None = None) -> float:
    """Share of the exact top-``k`` rows that the store's search over ``index`` finds, averaged over
    ``queries`` (1.0 for exact search)."""
    p = params or FaissParams()
    found = 0
    for q in np.asarray(queries, dtype=np.float32):
        truth = set(exact_top(vectors, q, k)[0].tolist())
        got = ann_top(index, vectors, q, k, p)[0] if index is not None else exact_top(vectors, q, k)[0]
        found += len(truth & set(got.tolist()))
    return found / (k * len(queries)) if len(queries) else 1.0
