"""On-disk index: FAISS vectors + chunk metadata + raw document texts + BM25 + a manifest.

Layout of an index folder::

    CURRENT            name of the live version folder (replaced atomically)
    v-<stamp>/         manifest.json, chunks.jsonl, vectors.npy, faiss.index, texts.json, bm25/

A save writes a complete new version folder and then atomically swaps ``CURRENT`` with
``os.replace``; a crash at any moment leaves the previous version intact and readable.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .bm25 import BM25Index
from .types import Chunk, Document

FORMAT_VERSION = 1
FLAT_LIMIT = 50_000  # exact search below this many chunks, HNSW above


class IndexError_(RuntimeError):
    """The index cannot be used as asked (wrong embedder, corrupt files...)."""


class EmbedderMismatchError(IndexError_):
    pass


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _build_faiss(vectors: np.ndarray, dim: int):
    import faiss

    if len(vectors) >= FLAT_LIMIT:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class IndexStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest: dict = {"format_version": FORMAT_VERSION, "embedder": None, "dim": None, "docs": {}}
        self.chunks: list[Chunk] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.texts: dict[str, str] = {}
        self.bm25 = BM25Index()
        self._faiss = None
        self._by_id: dict[str, int] = {}

    # ---------- loading ----------
    @property
    def exists(self) -> bool:
        return (self.root / "CURRENT").exists()

    def _current_dir(self) -> Path | None:
        cur = self.root / "CURRENT"
        if not cur.exists():
            return None
        d = self.root / cur.read_text(encoding="utf-8").strip()
        if not (d / "manifest.json").exists():
            raise IndexError_(f"index at {self.root} is damaged: {d.name}/manifest.json is missing")
        return d

    @classmethod
    def open(cls, root: str | Path, embedder_id: str | None = None, dim: int | None = None) -> "IndexStore":
        """Open (or start) an index; refuse one built with a different embedder."""
        store = cls(root)
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
        if store.manifest.get("embedder") is None:
            store.manifest["embedder"], store.manifest["dim"] = embedder_id, dim
        return store

    def _load(self, d: Path) -> None:
        import faiss

        try:
            self.manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
            if self.manifest.get("format_version") != FORMAT_VERSION:
                raise IndexError_(f"index at {self.root} has format {self.manifest.get('format_version')}, "
                                  f"this version reads {FORMAT_VERSION}; re-ingest into a new folder")
            with open(d / "chunks.jsonl", encoding="utf-8") as f:
                self.chunks = [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]
            self.vectors = np.load(d / "vectors.npy")
            self.texts = json.loads((d / "texts.json").read_text(encoding="utf-8"))
            self._faiss = faiss.read_index(str(d / "faiss.index"))
            self.bm25 = BM25Index.load(d / "bm25")
        except IndexError_:
            raise
        except Exception as e:
            raise IndexError_(f"index at {self.root} cannot be read ({type(e).__name__}: {e})") from e
        if len(self.chunks) != len(self.vectors) or self._faiss.ntotal != len(self.chunks):
            raise IndexError_(f"index at {self.root} is inconsistent (chunks/vectors differ); re-ingest")
        self._by_id = {c.chunk_id: i for i, c in enumerate(self.chunks)}

    # ---------- queries ----------
    @property
    def docs(self) -> dict[str, dict]:
        return self.manifest["docs"]

    def doc_by_id(self, doc_id: str) -> dict | None:
        for path, info in self.docs.items():
            if info["doc_id"] == doc_id:
                return {"path": path, **info}
        return None

    def chunk(self, chunk_id: str) -> Chunk | None:
        i = self._by_id.get(chunk_id)
        return None if i is None else self.chunks[i]

    def neighbours(self, chunk: Chunk, n: int = 1) -> list[Chunk]:
        out = []
        for off in range(-n, n + 1):
            c = self.chunk(f"{chunk.doc_id}-{chunk.ordinal + off:04d}")
            if c is not None:
                out.append(c)
        return out

    def unchanged(self, path: str, sha256: str) -> bool:
        info = self.docs.get(path)
        return bool(info and info.get("sha256") == sha256)

    def dense_search(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self._faiss is None or not self.chunks:
            return []
        k = min(k, len(self.chunks))
        scores, ids = self._faiss.search(np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    # ---------- updates (in memory until save) ----------
    def _reindex(self) -> None:
        self._by_id = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._faiss = _build_faiss(self.vectors, int(self.manifest.get("dim") or 1))
        self.bm25 = BM25Index.build([f"{c.title}\n{c.text}" for c in self.chunks])

    def _drop(self, doc_id: str) -> None:
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id != doc_id]
        self.chunks = [self.chunks[i] for i in keep]
        self.vectors = self.vectors[keep] if len(self.vectors) else self.vectors
        self.texts.pop(doc_id, None)

    def upsert(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray) -> None:
        if vectors.shape[0] != len(chunks):
            raise ValueError("one vector per chunk expected")
        if self.manifest.get("dim") is None:
            self.manifest["dim"] = int(vectors.shape[1])
        if self.vectors.size == 0:
            self.vectors = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        self._drop(doc.doc_id)
        self.chunks.extend(chunks)
        self.vectors = np.vstack([self.vectors, vectors.astype(np.float32)])
        self.texts[doc.doc_id] = doc.text
        self.docs[doc.path] = {"doc_id": doc.doc_id, "name": doc.name, "sha256": doc.sha256,
                               "title": doc.title, "date": doc.date, "n_chunks": len(chunks),
                               "chars": len(doc.text), "added": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def find_doc_path(self, name_or_path: str) -> str | None:
        p = str(Path(name_or_path).expanduser().resolve())
        if p in self.docs:
            return p
        matches = [k for k, v in self.docs.items() if v["name"] == name_or_path or v["doc_id"] == name_or_path]
        return matches[0] if len(matches) == 1 else None

    def remove(self, path: str) -> bool:
        info = self.docs.pop(path, None)
        if info is None:
            return False
        self._drop(info["doc_id"])
        return True

    # ---------- saving ----------
    def save(self) -> Path:
        """Write a complete new version and switch to it atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._reindex()
        name = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        tmp = self.root / f".tmp-{name}"
        tmp.mkdir()
        try:
            import faiss

            self.manifest["format_version"] = FORMAT_VERSION
            self.manifest["n_chunks"] = len(self.chunks)
            self.manifest["faiss"] = type(self._faiss).__name__ if self._faiss is not None else None
            self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for c in self.chunks:
                    f.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
            np.save(tmp / "vectors.npy", self.vectors.astype(np.float32))
            (tmp / "texts.json").write_text(json.dumps(self.texts, ensure_ascii=False), encoding="utf-8")
            faiss.write_index(self._faiss, str(tmp / "faiss.index"))
            (tmp / "bm25").mkdir()
            self.bm25.save(tmp / "bm25")
            # manifest last: a version folder without one is never made current
            (tmp / "manifest.json").write_text(json.dumps(self.manifest, ensure_ascii=False, indent=1),
                                               encoding="utf-8")
            os.replace(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _atomic_write_text(self.root / "CURRENT", name + "\n")
        self._gc(keep=name)
        return self.root / name

    def _gc(self, keep: str) -> None:
        for d in self.root.iterdir():
            if d.is_dir() and d.name != keep and (d.name.startswith("v-") or d.name.startswith(".tmp-")):
                shutil.rmtree(d, ignore_errors=True)
