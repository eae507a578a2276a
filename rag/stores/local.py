"""The default store: files on disk, one complete folder per snapshot.

Layout of an index folder::

    CURRENT            name of the live snapshot folder (replaced atomically)
    v-<stamp>/         manifest.json, chunks.jsonl, texts.json, vectors/ (VectorIndex), bm25/

``LocalStore`` is a read-only view of one snapshot. ``writer()`` loads its own copy, collects
changes and ``commit()`` writes a complete new folder, then swaps ``CURRENT`` with ``os.replace``:
a crash at any moment leaves the previous snapshot intact and readable, and open views keep
answering from the snapshot they loaded until they are reopened.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable, Collection

import numpy as np

from ..files import atomic_write_text
from ..types import Chunk, DocInfo, Document
from .base import EmbedderMismatchError, StoreError, VectorIndex
from .bm25 import BM25Index

FORMAT_VERSION = 3

VectorFactory = Callable[[int], VectorIndex]
VectorLoader = Callable[[Path, int], VectorIndex]


class FileChunkStore:
    """Chunks, document texts and the document list of one snapshot (the ``ChunkStore`` seam)."""

    def __init__(self, chunks: list[Chunk] | None = None, texts: dict[str, str] | None = None,
                 docs: dict[str, dict] | None = None):
        self._chunks: dict[str, Chunk] = {c.chunk_id: c for c in (chunks or [])}
        self._texts = texts if texts is not None else {}
        self._docs = docs if docs is not None else {}  # path -> DocInfo fields (without path); the manifest's

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self):
        return iter(self._chunks.values())

    def chunk(self, chunk_id: str) -> Chunk | None:
        return self._chunks.get(chunk_id)

    def neighbours(self, chunk: Chunk, n: int = 1) -> list[Chunk]:
        out = []
        for off in range(-n, n + 1):
            c = self._chunks.get(f"{chunk.doc_id}-{chunk.ordinal + off:04d}")
            if c is not None:
                out.append(c)
        return out

    def document_text(self, doc_id: str) -> str:
        return self._texts.get(doc_id, "")

    def chunk_ids(self, doc_ids: Collection[str]) -> set[str]:
        wanted = set(doc_ids)
        return {cid for cid, c in self._chunks.items() if c.doc_id in wanted}

    def documents(self) -> list[DocInfo]:
        return [DocInfo(path=p, **v) for p, v in self._docs.items()]

    def find_document(self, name_or_path: str) -> DocInfo | None:
        p = str(Path(name_or_path).expanduser().resolve())
        if p in self._docs:
            return DocInfo(path=p, **self._docs[p])
        matches = [k for k, v in self._docs.items() if name_or_path in (v["name"], v["doc_id"])]
        return DocInfo(path=matches[0], **self._docs[matches[0]]) if len(matches) == 1 else None

    # ---- changes (used by the writer only) ----
    def _upsert(self, doc: Document, chunks: list[Chunk]) -> list[Chunk]:
        old = self._drop_doc(doc.doc_id)
        self._chunks.update({c.chunk_id: c for c in chunks})
        self._texts[doc.doc_id] = doc.text
        self._docs[doc.path] = {"doc_id": doc.doc_id, "name": doc.name, "sha256": doc.sha256, "title": doc.title,
                                "date": doc.date, "n_chunks": len(chunks), "chars": len(doc.text),
                                "added": time.strftime("%Y-%m-%dT%H:%M:%S")}
        return old

    def _drop_doc(self, doc_id: str) -> list[Chunk]:
        old = [c for c in self._chunks.values() if c.doc_id == doc_id]
        for c in old:
            del self._chunks[c.chunk_id]
        self._texts.pop(doc_id, None)
        return old


class LocalStore:
    """A loaded snapshot: ``vectors`` + ``keywords`` (BM25) + ``chunks`` (files)."""

    backend = "local"

    def __init__(self, root: str | Path, embedder_id: str | None, dim: int | None,
                 new_vectors: VectorFactory, load_vectors: VectorLoader, name: str = "faiss"):
        self.root = Path(root)
        self.backend = name
        self._new_vectors, self._load_vectors = new_vectors, load_vectors
        self.manifest: dict = {"format_version": FORMAT_VERSION, "embedder": embedder_id, "dim": dim, "docs": {}}
        self.chunks = FileChunkStore(docs=self.manifest["docs"])
        self.vectors: VectorIndex = new_vectors(int(dim or 1))
        self.sentences: VectorIndex = new_vectors(int(dim or 1))
        self.keywords = BM25Index()
        self.version: str | None = None

    # ---------- opening ----------
    @classmethod
    def open(cls, root: str | Path, embedder_id: str | None, dim: int | None,
             new_vectors: VectorFactory, load_vectors: VectorLoader, name: str = "faiss") -> "LocalStore":
        """Open the current snapshot (or an empty view); refuse one built with another embedder."""
        store = cls(root, embedder_id, dim, new_vectors, load_vectors, name)
        d = store._current_dir()
        if d is not None:
            store._load(d)
            emb = store.manifest.get("embedder")
            if embedder_id and emb and emb != embedder_id:
                raise EmbedderMismatchError(
                    f"index at {store.root} was built with embedder '{emb}', not '{embedder_id}'; "
                    f"use a matching --embedder or a new --index folder (or re-ingest into an empty one)")
            if dim and store.manifest.get("dim") and store.manifest["dim"] != dim:
                raise EmbedderMismatchError(
                    f"index at {store.root} has dimension {store.manifest['dim']}, the embedder gives {dim}")
        return store

    @property
    def exists(self) -> bool:
        return (self.root / "CURRENT").exists()

    def _current_dir(self) -> Path | None:
        cur = self.root / "CURRENT"
        if not cur.exists():
            return None
        d = self.root / cur.read_text(encoding="utf-8").strip()
        if not (d / "manifest.json").exists():
            raise StoreError(f"index at {self.root} is damaged: {d.name}/manifest.json is missing")
        return d

    def _load(self, d: Path) -> None:
        try:
            manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("format_version") != FORMAT_VERSION:
                raise StoreError(f"index at {self.root} has format {manifest.get('format_version')}, this version "
                                 f"reads {FORMAT_VERSION}; re-ingest into a new folder")
            with open(d / "chunks.jsonl", encoding="utf-8") as f:
                chunks = [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]
            texts = json.loads((d / "texts.json").read_text(encoding="utf-8"))
            vectors = self._load_vectors(d / "vectors", int(manifest["dim"] or 1))
            sentences = self._load_vectors(d / "sentences", int(manifest["dim"] or 1))
            keywords = BM25Index.load(d / "bm25")
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"index at {self.root} cannot be read ({type(e).__name__}: {e})") from e
        if len(chunks) != len(vectors):
            raise StoreError(f"index at {self.root} is inconsistent (chunks/vectors differ); re-ingest")
        self.manifest = manifest
        self.chunks = FileChunkStore(chunks, texts, manifest["docs"])
        self.vectors, self.sentences, self.keywords, self.version = vectors, sentences, keywords, d.name

    def info(self) -> dict:
        m = self.manifest
        structure = getattr(self.vectors, "structure", type(self.vectors).__name__)
        return {"index": str(self.root.resolve()), "backend": self.backend, "vector_index": structure,
                "embedder": m.get("embedder"), "dim": m.get("dim"), "documents": len(m.get("docs", {})),
                "chunks": len(self.chunks), "updated": m.get("updated"), "version": self.version}

    def writer(self) -> "LocalWriter":
        fresh = LocalStore.open(self.root, self.manifest.get("embedder"), self.manifest.get("dim"),
                                self._new_vectors, self._load_vectors, self.backend)
        return LocalWriter(fresh)


class LocalWriter:
    """Collects changes on a private copy of the snapshot; ``commit`` writes the next snapshot."""

    def __init__(self, store: LocalStore):
        self.s = store
        self.changed = False

    def unchanged(self, path: str, sha256: str) -> bool:
        info = self.s.manifest["docs"].get(path)
        return bool(info and info.get("sha256") == sha256)

    def has_document(self, path: str) -> bool:
        return path in self.s.manifest["docs"]

    def find_document(self, name_or_path: str) -> DocInfo | None:
        return self.s.chunks.find_document(name_or_path)

    def upsert(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray,
               sentence_vectors: np.ndarray | None = None) -> None:
        if vectors.shape[0] != len(chunks):
            raise ValueError("one vector per chunk expected")
        sids = [f"{c.chunk_id}#{i}" for c in chunks for i in range(len(c.sentences))]
        if sentence_vectors is not None and sentence_vectors.shape[0] != len(sids):
            raise ValueError("one vector per chunk sentence expected")
        m = self.s.manifest
        if m.get("dim") is None:
            m["dim"] = int(vectors.shape[1])
            self.s.vectors = self.s._new_vectors(m["dim"])
            self.s.sentences = self.s._new_vectors(m["dim"])
        old = self.s.chunks._upsert(doc, chunks)
        self._delete_vectors(old)
        self.s.vectors.add([c.chunk_id for c in chunks], vectors.astype(np.float32))
        if sentence_vectors is not None:
            self.s.sentences.add(sids, sentence_vectors.astype(np.float32))
        self.changed = True

    def _delete_vectors(self, chunks: list[Chunk]) -> None:
        self.s.vectors.delete([c.chunk_id for c in chunks])
        self.s.sentences.delete([f"{c.chunk_id}#{i}" for c in chunks for i in range(len(c.sentences))])

    def remove(self, path: str) -> bool:
        info = self.s.manifest["docs"].pop(path, None)
        if info is None:
            return False
        self._delete_vectors(self.s.chunks._drop_doc(info["doc_id"]))
        self.changed = True
        return True

    def commit(self) -> None:
        """Write a complete new snapshot folder and switch ``CURRENT`` to it atomically."""
        s = self.s
        s.root.mkdir(parents=True, exist_ok=True)
        chunks = sorted(s.chunks, key=lambda c: (c.doc_id, c.ordinal))
        s.keywords = BM25Index.build([c.chunk_id for c in chunks], [f"{c.title}\n{c.text}" for c in chunks])
        name = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        tmp = s.root / f".tmp-{name}"
        tmp.mkdir()
        try:
            m = s.manifest
            m["format_version"] = FORMAT_VERSION
            m["n_chunks"] = len(chunks)
            m["vector_index"] = getattr(s.vectors, "structure", type(s.vectors).__name__)
            m["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for c in chunks:
                    f.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
            (tmp / "texts.json").write_text(json.dumps(s.chunks._texts, ensure_ascii=False), encoding="utf-8")
            s.vectors.save(tmp / "vectors")
            s.sentences.save(tmp / "sentences")
            s.keywords.save(tmp / "bm25")
            # manifest last: a snapshot folder without one is never made current
            (tmp / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, s.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(s.root / "CURRENT", name + "\n")
        s.version = name
        self.changed = False
        _gc(s.root, keep=name)

    def set_meta(self, path: str, title: str | None = None, date: str | None = None) -> bool:
        """Set a document's title and/or date (its manifest entry and its chunks); False when not indexed.
        Vectors stay as embedded (with the old title); BM25 is rebuilt with the new title on commit."""
        info = self.s.manifest["docs"].get(path)
        if info is None:
            return False
        new = {k: v for k, v in (("title", title), ("date", date)) if v is not None}
        info.update(new)
        for c in self.s.chunks:
            if c.doc_id == info["doc_id"]:
                for k, v in new.items():
                    setattr(c, k, v)
        self.changed = True
        return True


def _gc(root: Path, keep: str) -> None:
    for d in root.iterdir():
        if d.is_dir() and d.name != keep and (d.name.startswith("v-") or d.name.startswith(".tmp-")):
            shutil.rmtree(d, ignore_errors=True)
