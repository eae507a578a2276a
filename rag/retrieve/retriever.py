"""Retrieval: BM25, dense or hybrid with reciprocal-rank fusion, through the store seam.

Extras: optional per-document diversity, neighbour-chunk expansion and a reranker slot for any
local cross-encoder folder. Hits carry raw scores; the refusal policy turns them into a 0..1
relevance (``rag.answer.policy``).
"""

from __future__ import annotations

from typing import Collection, Protocol, Sequence

import numpy as np

from ..config import RETRIEVERS, ConfigError, RagConfig
from ..stores.base import Scope, Store
from ..types import Chunk, Hit


class Reranker(Protocol):
    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """Reranks with a local sentence-transformers CrossEncoder folder (none ships today)."""

    def __init__(self, path: str):
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(path, device="cpu", local_files_only=True)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(s) for s in self.model.predict([(query, t) for t in texts])]


def rrf(rankings: list[list[str]], weights: list[float], k: int = 60) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        for r, cid in enumerate(ranking):
            fused[cid] = fused.get(cid, 0.0) + w / (k + r + 1)
    return fused


class Retriever:
    def __init__(self, cfg: RagConfig, store: Store, embedder=None, reranker: Reranker | None = None):
        self.cfg = cfg
        self.store = store
        self.embedder = embedder
        if reranker is None and cfg.reranker:
            reranker = CrossEncoderReranker(cfg.reranker)
        self.reranker = reranker

    def search(self, query: str, k: int | None = None, retriever: str | None = None,
               qvec: np.ndarray | None = None, doc_ids: Collection[str] | None = None,
               scope: Scope | None = None) -> list[Hit]:
        """Best chunks for ``query``; with ``doc_ids`` (or their ``scope``, when the caller has made
        it) only chunks of those documents (filtered inside every search, so a filtered question
        still gets ``k`` passages when they exist)."""
        k = k or self.cfg.top_k
        mode = retriever or self.cfg.retriever
        if mode not in RETRIEVERS:
            raise ConfigError(f"retriever (RAG_RETRIEVER): '{mode}' is not one of {', '.join(RETRIEVERS)}")
        store = self.store
        if len(store.vectors) == 0:
            return []
        cand = max(self.cfg.candidates, k)
        if scope is None and doc_ids is not None:
            scope = Scope(store.chunks, doc_ids)
        allowed = scope.chunk_ids if scope is not None else None
        dense: dict[str, float] = {}
        bm25: dict[str, float] = {}
        rankings, weights = [], []
        if mode in ("dense", "hybrid"):
            if qvec is None:
                qvec = self.embedder.embed_queries([query])[0]
            found = store.vectors.search(qvec, cand, allowed)
            dense = dict(found)
            rankings.append([c for c, _ in found])
            weights.append(self.cfg.dense_weight)
            if self.cfg.sentence_weight > 0 and len(store.sentences):
                rankings.append(sentence_ranking(store, qvec, cand, scope))
                weights.append(self.cfg.sentence_weight)
        if mode in ("bm25", "hybrid"):
            found = store.keywords.top(query, cand, allowed)
            bm25 = dict(found)
            rankings.append([c for c, _ in found])
            weights.append(self.cfg.bm25_weight)
        if mode == "dense":
            fused = dense
        elif mode == "bm25":
            fused = bm25
        else:
            fused = rrf(rankings, weights, self.cfg.rrf_k)
        # RRF ties are common (rank r in one list only); dense then BM25 scores break them, then the id, so every
        # backend orders the same way
        order = sorted(fused, key=lambda c: (-fused[c], -dense.get(c, -2.0), -bm25.get(c, 0.0), c))
        # load only the chunks that can still be returned (each is a store read): the reranker's pool, a
        # deeper list for per-document diversity, else the k best
        keep = max(k * 3, 10) if self.reranker is not None else (k * 4 if self.cfg.diversify else k)
        order = order[:keep]
        if qvec is not None and mode == "hybrid":
            # dense cosines for BM25-only candidates, so every hit can be calibrated
            missing = [c for c in order if c not in dense]
            if missing:
                for c, s in zip(missing, store.vectors.get(missing) @ qvec):
                    dense[c] = float(s)
        hits = []
        for c in order:
            chunk = store.chunks.chunk(c)
            if chunk is not None:
                hits.append(Hit(chunk=chunk, score=fused[c], dense=dense.get(c), bm25=bm25.get(c, 0.0 if bm25 else None)))
        if self.reranker is not None and hits:
            pool = hits[: max(k * 3, 10)]
            for h, s in zip(pool, self.reranker.score(query, [h.chunk.text for h in pool])):
                h.score = float(s)
            hits = sorted(pool, key=lambda h: -h.score)
        if self.cfg.diversify:
            hits = diversify(hits, k)
        hits = hits[:k]
        if self.cfg.neighbours > 0:
            hits = [self._expand(h) for h in hits]
        for r, h in enumerate(hits, 1):
            h.rank = r
        return hits

    def _expand(self, h: Hit) -> Hit:
        """Merge a hit with its neighbouring chunks of the same document."""
        group = self.store.chunks.neighbours(h.chunk, self.cfg.neighbours)
        if len(group) > 1:
            h.chunk = merge_chunks(group)
        return h


def sentence_ranking(store: Store, qvec: np.ndarray, n: int, scope: Scope | None = None) -> list[str]:
    """Chunks ordered by their best-matching sentence (the stored per-sentence vectors, ids
    ``chunk_id#i``): a chunk whose one sentence answers the question ranks high even when the rest
    of the chunk is about something else."""
    out: list[str] = []
    for sid, _ in store.sentences.search(qvec, n * 3, scope.sentence_ids if scope is not None else None):
        cid = sid.rpartition("#")[0]
        if cid not in out:
            out.append(cid)
            if len(out) >= n:
                break
    return out


def merge_chunks(group: list[Chunk]) -> Chunk:
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
