"""The store seam: what retrieval, answering and the front ends need from an index.

A ``Store`` is a read-only view of one complete snapshot, made of three parts:
- ``vectors`` (``VectorIndex``): nearest chunk ids for a query vector, and stored vectors by id;
- ``sentences`` (``VectorIndex``): the same for every sentence of every chunk (ids ``chunk_id#i``),
  so evidence sentences are found corpus-wide without embedding them at question time;
- ``keywords`` (``KeywordIndex``): BM25 scores for a query, and whether a word occurs anywhere;
- ``chunks`` (``ChunkStore``): chunks by id, their neighbours, document texts and the document list.
Chunk ids (never list positions) cross every boundary. Changes go through ``Store.writer()``: the
writer builds the next snapshot aside and ``commit()`` switches to it atomically, so readers of the
old view never see a half-written state. Backends are chosen by ``vector_store`` in the config via
``rag.stores.factory.open_store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..types import Chunk, DocInfo, Document


class StoreError(RuntimeError):
    """The index cannot be used as asked (wrong embedder, damaged or unknown format…)."""


class EmbedderMismatchError(StoreError):
    pass


@runtime_checkable
class VectorIndex(Protocol):
    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def search(self, qvec: np.ndarray, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest chunk ids with their inner-product scores, best first; with ``allowed``,
        only among those chunk ids (a filter applied inside the search: still up to ``k`` results)."""
        ...

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``ids`` (rows in the same order)."""
        ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class KeywordIndex(Protocol):
    def top(self, query: str, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        """Chunk ids with a positive BM25 score for ``query``, best first, at most ``k``; with
        ``allowed``, only among those chunk ids."""
        ...

    def has_term(self, word: str) -> bool:
        """Whether ``word`` (or a word sharing its stem or first five letters) occurs in any chunk."""
        ...


@runtime_checkable
class ChunkStore(Protocol):
    def chunk(self, chunk_id: str) -> Chunk | None: ...

    def neighbours(self, chunk: Chunk, n: int = 1) -> list[Chunk]: ...

    def document_text(self, doc_id: str) -> str: ...

    def chunk_ids(self, doc_ids: Collection[str]) -> set[str]:
        """Ids of every chunk of these documents (for filtered retrieval)."""
        ...

    def documents(self) -> list[DocInfo]: ...

    def find_document(self, name_or_path: str) -> DocInfo | None:
        """A document by absolute path, file name or doc id (None when absent or ambiguous)."""
        ...

    def __len__(self) -> int: ...


@runtime_checkable
class StoreWriter(Protocol):
    def unchanged(self, path: str, sha256: str) -> bool: ...

    def has_document(self, path: str) -> bool: ...

    def find_document(self, name_or_path: str) -> DocInfo | None: ...

    def upsert(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray,
               sentence_vectors: np.ndarray | None = None) -> None:
        """Add or replace ``doc``: one vector per chunk, and optionally one per chunk sentence
        (rows in order: chunk 0's sentences, chunk 1's, …; ids ``f"{chunk_id}#{i}"``)."""
        ...

    def remove(self, path: str) -> bool: ...

    def set_meta(self, path: str, title: str | None = None, date: str | None = None) -> bool:
        """Set the title and/or date (None = keep) of the document at ``path`` and of its chunks;
        False when it is not in the index. Visible after ``commit``."""
        ...

    def commit(self) -> None:
        """Make every change visible at once (or none, if it fails)."""
        ...

    def close(self) -> None:
        """Drop uncommitted changes and release what the writer holds (its lock)."""
        ...


@runtime_checkable
class Store(Protocol):
    backend: str
    vectors: VectorIndex
    sentences: VectorIndex  # one vector per chunk sentence, id f"{chunk_id}#{i}"
    keywords: KeywordIndex
    chunks: ChunkStore

    @property
    def exists(self) -> bool: ...

    def info(self) -> dict:
        """Summary for ``rag info``: embedder, dim, documents, chunks, backend details, updated."""
        ...

    def writer(self) -> StoreWriter: ...


def document_chunks(chunks: ChunkStore, doc_id: str) -> list[Chunk]:
    """Every chunk of one document in order (chunk ids are ``f"{doc_id}-{ordinal:04d}"``)."""
    out: list[Chunk] = []
    while (c := chunks.chunk(f"{doc_id}-{len(out):04d}")) is not None:
        out.append(c)
    return out


class Scope:
    """What a filtered question may use: the chunk ids of the chosen documents, and (looked up only
    when a sentence search needs them, then kept) their sentence-vector ids. Made once per question
    and shared by retrieval and evidence selection."""

    def __init__(self, chunks: ChunkStore, doc_ids: Collection[str]):
        self._chunks = chunks
        self.chunk_ids: set[str] = chunks.chunk_ids(doc_ids)
        self._sentence_ids: set[str] | None = None

    @property
    def sentence_ids(self) -> set[str]:
        if self._sentence_ids is None:
            self._sentence_ids = sentence_ids(self._chunks, self.chunk_ids)
        return self._sentence_ids


def sentence_ids(chunks: ChunkStore, chunk_ids: Collection[str]) -> set[str]:
    """Sentence-vector ids (``f"{chunk_id}#{i}"``) of these chunks, for filtered sentence search."""
    out: set[str] = set()
    for cid in chunk_ids:
        c = chunks.chunk(cid)
        if c is not None:
            out.update(f"{cid}#{i}" for i in range(len(c.sentences)))
    return out
