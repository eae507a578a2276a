"""Retrieval: BM25, dense (FAISS) or hybrid with reciprocal-rank fusion.

Extras: optional per-document diversity, neighbour-chunk expansion, a reranker slot for any
local cross-encoder folder, and a calibrated 0..1 ``relevance`` per hit.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np

from .config import RagConfig
from .store import IndexStore
from .textutil import content_terms, language
from .types import Chunk, Hit

RETRIEVERS = ("bm25", "dense", "hybrid")


class Reranker(Protocol):
    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """Reranks with a local sentence-transformers CrossEncoder folder (none ships today)."""

    def __init__(self, path: str):
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(path, device="cpu", local_files_only=True)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(s) for s in self.model.predict([(query, t) for t in texts])]


def term_coverage(query: str, text: str) -> float:
    """Share of the query's content terms that occur in ``text`` (stemmed)."""
    q = set(content_terms(query))
    if not q:
        return 0.0
    return len(q & set(content_terms(text))) / len(q)


def calibrated_relevance(dense: float | None, coverage: float, lang: str = "nl") -> float:
    """Map raw evidence to 0..1. E5 cosines sit in a narrow band (~0.75 unrelated, ~0.88
    on-topic), so a logistic spreads them; lexical coverage covers names and numbers. English
    questions over Dutch text get lower cosines and little word overlap, hence their own curve."""
    if lang == "en":
        d = 0.0 if dense is None else 1.0 / (1.0 + math.exp(-(dense - 0.78) / 0.02))
        return round(0.8 * d + 0.2 * coverage, 4)
    d = 0.0 if dense is None else 1.0 / (1.0 + math.exp(-(dense - 0.81) / 0.02))
    return round(0.6 * d + 0.4 * coverage, 4)


def rrf(rankings: list[list[int]], weights: list[float], k: int = 60) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for r, idx in enumerate(ranking):
            fused[idx] = fused.get(idx, 0.0) + w / (k + r + 1)
    return fused


class Retriever:
    def __init__(self, cfg: RagConfig, store: IndexStore, embedder=None, reranker: Reranker | None = None):
        self.cfg = cfg
        self.store = store
        self.embedder = embedder
        if reranker is None and cfg.reranker:
            reranker = CrossEncoderReranker(cfg.reranker)
        self.reranker = reranker

    def query_vector(self, query: str) -> np.ndarray:
        return self.embedder.embed_queries([query])[0]

    def search(self, query: str, k: int | None = None, retriever: str | None = None,
               qvec: np.ndarray | None = None) -> list[Hit]:
        k = k or self.cfg.top_k
        mode = retriever or self.cfg.retriever
        if mode not in RETRIEVERS:
            raise ValueError(f"unknown retriever '{mode}' (choose from {', '.join(RETRIEVERS)})")
        n = len(self.store.chunks)
        if n == 0:
            return []
        cand = max(self.cfg.candidates, k)
        dense_scores: dict[int, float] = {}
        bm25_all = None
        rankings, weights = [], []
        if mode in ("dense", "hybrid"):
            if qvec is None:
                qvec = self.query_vector(query)
            dense = self.store.dense_search(qvec, cand)
            dense_scores = dict(dense)
            rankings.append([i for i, _ in dense])
            weights.append(self.cfg.dense_weight)
        if mode in ("bm25", "hybrid"):
            bm25_all = self.store.bm25.scores(query)
            if len(bm25_all):
                order = np.argsort(-bm25_all)[:cand]
                rankings.append([int(i) for i in order if bm25_all[i] > 0])
                weights.append(self.cfg.bm25_weight)
        if mode == "dense":
            fused = dense_scores
        elif mode == "bm25":
            fused = {i: float(bm25_all[i]) for i in rankings[-1]} if rankings else {}
        else:
            fused = rrf(rankings, weights, self.cfg.rrf_k)
        order = sorted(fused, key=lambda i: -fused[i])
        if qvec is not None and mode == "hybrid":
            # fill dense cosines for BM25-only candidates so every hit can be calibrated
            missing = [i for i in order if i not in dense_scores]
            if missing:
                vecs = self.store.vectors[missing]
                for i, s in zip(missing, vecs @ qvec):
                    dense_scores[i] = float(s)
        hits = [
            Hit(chunk=self.store.chunks[i], score=fused[i], dense=dense_scores.get(i),
                bm25=None if bm25_all is None or not len(bm25_all) else float(bm25_all[i]))
            for i in order
        ]
        if self.reranker is not None and hits:
            pool = hits[: max(k * 3, 10)]
            scores = self.reranker.score(query, [h.chunk.text for h in pool])
            for h, s in zip(pool, scores):
                h.score = float(s)
            hits = sorted(pool, key=lambda h: -h.score)
        if self.cfg.diversify:
            hits = diversify(hits, k)
        hits = hits[:k]
        if self.cfg.neighbours > 0:
            hits = self._expand(hits)
        for r, h in enumerate(hits, 1):
            h.rank = r
            h.relevance = calibrated_relevance(h.dense, term_coverage(query, h.chunk.title + " " + h.chunk.text),
                                               language(query))
        return hits

    def _expand(self, hits: list[Hit]) -> list[Hit]:
        """Merge each hit with its neighbouring chunks of the same document."""
        out = []
        for h in hits:
            group = self.store.neighbours(h.chunk, self.cfg.neighbours)
            if len(group) > 1:
                h.chunk = merge_chunks(group, self.store.texts.get(h.chunk.doc_id, ""))
            out.append(h)
        return out


def merge_chunks(group: list[Chunk], raw: str) -> Chunk:
    first, last = group[0], group[-1]
    seen, sents = set(), []
    for c in group:
        for s in c.sentences:
            if (s.start, s.end) not in seen:
                seen.add((s.start, s.end))
                sents.append(s)
    text = " ".join(s.text for s in sents)
    return Chunk(chunk_id=first.chunk_id, doc_id=first.doc_id, doc=first.doc, path=first.path, title=first.title,
                 date=first.date, start=first.start, end=last.end, text=text, ordinal=first.ordinal,
                 sentences=sents)


def diversify(hits: list[Hit], k: int) -> list[Hit]:
    """Round-robin over documents so multi-source questions see more than one file."""
    by_doc: dict[str, list[Hit]] = {}
    for h in hits:
        by_doc.setdefault(h.chunk.doc_id, []).append(h)
    out: list[Hit] = []
    while len(out) < min(k, len(hits)):
        for doc_hits in list(by_doc.values()):
            if doc_hits and len(out) < k:
                out.append(doc_hits.pop(0))
    return out
