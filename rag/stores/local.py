"""The default store: one SQLite database (WAL) plus append-only vector segment files.

Layout of an index folder::

    store.sqlite (+ -wal, -shm)   documents, texts, chunks, BM25 inverted index, segment list, live vector rows
    segments/<name>.npy|.faiss    immutable vector segments (see ``segments``)
    .writer.lock                  one writer at a time (see ``lock``)

Writes cost in proportion to what changes: adding a file inserts its rows and writes one small
segment; removing one deletes its rows (the segment rows become dead and are compacted later).
Every change of a writer is one SQLite transaction, committed only after the new segment files
are on disk, so a crash (even ``kill -9``) at any moment leaves the previous or the new complete
state; files of an unfinished commit are deleted by the next writer.

A ``LocalStore`` is a read-only view of one snapshot: it holds a read transaction open (WAL lets
writers commit beside it) and opens the segments of that snapshot, so it answers from one
consistent state until it is reopened (``Assistant.reload``). Readers never wait for a writer; a
writer waits for another writer (``write_lock_timeout``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Collection, Iterator

import numpy as np

from ..types import Chunk, DocInfo, Document
from . import bm25, segments
from .base import EmbedderMismatchError, StoreError
from .faiss_index import FaissParams
from .lock import WriterLock
from .segments import CHUNKS, SENTENCES, SegmentVectors

FORMAT_VERSION = 4
DB_NAME = "store.sqlite"
SEGMENT_DIR = "segments"
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS docs(doc_id TEXT PRIMARY KEY, path TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
    sha256 TEXT, title TEXT, date TEXT, n_chunks INTEGER, chars INTEGER, added TEXT);
CREATE INDEX IF NOT EXISTS docs_name ON docs(name);
CREATE TABLE IF NOT EXISTS texts(doc_id TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(crow INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL, n_sent INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
""" + bm25.SCHEMA + segments.SCHEMA

_DOC_COLS = "path, doc_id, name, title, date, sha256, n_chunks, chars, added"


def _old_format(root: Path) -> StoreError:
    return StoreError(f"index at {root} was written by an older version of ragnl (snapshot folders); this version "
                      f"keeps the index in {DB_NAME}: re-ingest into a new --index folder (or delete this one)")


def _find_document(rows, name_or_path: str) -> DocInfo | None:
    """A document by absolute path, file name or doc id (None when absent or ambiguous)."""
    p = str(Path(name_or_path).expanduser().resolve())
    got = rows(f"SELECT {_DOC_COLS} FROM docs WHERE path = ?", (p,))
    if not got:
        got = rows(f"SELECT {_DOC_COLS} FROM docs WHERE name = ? OR doc_id = ? LIMIT 2", (name_or_path, name_or_path))
    return DocInfo(*got[0]) if len(got) == 1 else None


class _Snapshot:
    """One read transaction on the database, shared by the parts of a view (thread-safe)."""

    def __init__(self, db: Path | None):
        self._lock = threading.Lock()
        self.con = None
        if db is not None:
            self.con = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None, timeout=30)
            self.con.execute("BEGIN")
            self.con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the snapshot starts here

    def rows(self, sql: str, params: tuple = ()) -> list:
        if self.con is None:
            return []
        with self._lock:
            return self.con.execute(sql, params).fetchall()

    def close(self) -> None:
        con, self.con = self.con, None
        if con is not None:
            try:
                con.close()
            except sqlite3.Error:
                pass


class SqlChunks:
    """Chunks, document texts and the document list of one snapshot (the ``ChunkStore`` seam)."""

    def __init__(self, rows):
        self._rows = rows

    def __len__(self) -> int:
        got = self._rows("SELECT COUNT(*) FROM chunks")
        return int(got[0][0]) if got else 0

    def __iter__(self) -> Iterator[Chunk]:
        for (data,) in self._rows("SELECT data FROM chunks ORDER BY doc_id, ordinal"):
            yield Chunk.from_dict(json.loads(data))

    def chunk(self, chunk_id: str) -> Chunk | None:
        got = self._rows("SELECT data FROM chunks WHERE chunk_id = ?", (chunk_id,))
        return Chunk.from_dict(json.loads(got[0][0])) if got else None

    def neighbours(self, chunk: Chunk, n: int = 1) -> list[Chunk]:
        got = self._rows("SELECT data FROM chunks WHERE doc_id = ? AND ordinal BETWEEN ? AND ? ORDER BY ordinal",
                         (chunk.doc_id, chunk.ordinal - n, chunk.ordinal + n))
        return [Chunk.from_dict(json.loads(d)) for (d,) in got]

    def document_text(self, doc_id: str) -> str:
        got = self._rows("SELECT text FROM texts WHERE doc_id = ?", (doc_id,))
        return got[0][0] if got else ""

    def chunk_ids(self, doc_ids: Collection[str]) -> set[str]:
        got = self._rows("SELECT chunk_id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?))",
                         (json.dumps(list(doc_ids)),))
        return {c for (c,) in got}

    def documents(self) -> list[DocInfo]:
        return [DocInfo(*r) for r in self._rows(f"SELECT {_DOC_COLS} FROM docs ORDER BY rowid")]

    def find_document(self, name_or_path: str) -> DocInfo | None:
        return _find_document(self._rows, name_or_path)


class LocalStore:
    """A read-only view of one snapshot: ``vectors`` and ``sentences`` (segments), ``keywords``
    (BM25 in SQLite) and ``chunks``."""

    backend = "faiss"

    def __init__(self, root: str | Path, embedder_id: str | None, dim: int | None,
                 params: FaissParams | None = None, lock_timeout: float = 600.0, name: str = "faiss"):
        self.root = Path(root)
        self.backend = name
        self.params = params or FaissParams()
        self.lock_timeout = lock_timeout
        self.embedder_id, self.dim = embedder_id, dim
        self.meta: dict[str, str] = {}
        self._snap = _Snapshot(None)
        self._bind([])

    def _bind(self, segs: list) -> None:
        dim = int(self.meta.get("dim") or self.dim or 1)
        rows = self._snap.rows
        self.chunks = SqlChunks(rows)
        self.keywords = bm25.SqlBM25(rows)
        self.vectors = SegmentVectors(rows, CHUNKS, dim, [s[1:] for s in segs if s[0] == CHUNKS], self.params)
        self.sentences = SegmentVectors(rows, SENTENCES, dim, [s[1:] for s in segs if s[0] == SENTENCES], self.params)

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    # ---------- opening ----------
    @classmethod
    def open(cls, root: str | Path, embedder_id: str | None, dim: int | None, params: FaissParams | None = None,
             lock_timeout: float = 600.0, name: str = "faiss") -> "LocalStore":
        """Open the current snapshot (or an empty view); refuse one built with another embedder."""
        store = cls(root, embedder_id, dim, params, lock_timeout, name)
        if (store.root / "CURRENT").exists():
            raise _old_format(store.root)
        if store.db.exists():
            store._load()
        emb = store.meta.get("embedder")
        if embedder_id and emb and emb != embedder_id:
            raise EmbedderMismatchError(
                f"index at {store.root} was built with embedder '{emb}', not '{embedder_id}'; "
                f"use a matching --embedder or a new --index folder (or re-ingest into an empty one)")
        if dim and store.meta.get("dim") and int(store.meta["dim"]) != dim:
            raise EmbedderMismatchError(f"index at {store.root} has dimension {store.meta['dim']}, the embedder gives {dim}")
        return store

    def _load(self) -> None:
        for _ in range(20):  # a segment dropped by a newer commit: start again from a newer snapshot
            snap = _Snapshot(self.db)
            try:
                if not snap.rows("SELECT 1 FROM sqlite_master WHERE name = 'meta'"):
                    snap.close()
                    return  # created, never committed to
                meta = dict(snap.rows("SELECT key, value FROM meta"))
                if meta.get("format_version") not in (None, str(FORMAT_VERSION)):
                    raise StoreError(f"index at {self.root} has format {meta['format_version']}, this version reads "
                                     f"{FORMAT_VERSION}; re-ingest into a new folder")
                folder = self.root / SEGMENT_DIR
                segs = [(kind, s, n_rows, n_live, segments.load_segment(folder, name))
                        for s, kind, name, n_rows, n_live in snap.rows(
                            "SELECT seg, kind, name, n_rows, n_live FROM segments ORDER BY seg")]
            except FileNotFoundError:
                snap.close()
                continue
            except StoreError:
                snap.close()
                raise
            except (sqlite3.Error, ValueError, RuntimeError) as e:
                snap.close()
                raise StoreError(f"index at {self.root} cannot be read ({type(e).__name__}: {e})") from e
            self._snap, self.meta = snap, meta
            self._bind(segs)
            return
        raise StoreError(f"index at {self.root} changed too often while opening; try again")

    def close(self) -> None:
        self._snap.close()

    @property
    def exists(self) -> bool:
        return "format_version" in self.meta

    @property
    def version(self) -> str | None:
        g = self.meta.get("generation")
        return f"gen-{g}" if g else None

    def info(self) -> dict:
        m = self.meta
        structure = getattr(self.vectors, "structure", type(self.vectors).__name__)
        return {"index": str(self.root.resolve()), "backend": self.backend, "vector_index": structure,
                "embedder": m.get("embedder"), "dim": int(m["dim"]) if m.get("dim") else None,
                "documents": len(self.chunks.documents()), "chunks": len(self.chunks), "updated": m.get("updated"),
                "version": self.version}

    def writer(self) -> "LocalWriter":
        return LocalWriter(self.root, self.meta.get("embedder") or self.embedder_id,
                           int(self.meta.get("dim") or 0) or self.dim, self.params, self.lock_timeout)


class LocalWriter:
    """Changes under the index's writer lock, in one SQLite transaction per ``commit``.

    The lock is taken when the writer is made (so what it reads stays true until it commits) and
    given back by ``commit`` or ``close`` (also on garbage collection); writing again after a commit
    takes it again."""

    def __init__(self, root: Path, embedder_id: str | None, dim: int | None, params: FaissParams,
                 lock_timeout: float = 600.0):
        self.root, self.params = Path(root), params
        self.embedder_id, self.dim = embedder_id, dim
        self.segdir = self.root / SEGMENT_DIR
        self.con: sqlite3.Connection | None = None
        self.lock = WriterLock(self.root, lock_timeout).acquire()
        try:
            if (self.root / "CURRENT").exists():
                raise _old_format(self.root)
            self.con = sqlite3.connect(str(self.root / DB_NAME), check_same_thread=False, isolation_level=None,
                                       timeout=60)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=FULL")
            self.con.executescript("BEGIN;" + SCHEMA + "COMMIT;")
            fmt = self._meta("format_version")
            if fmt not in (None, str(FORMAT_VERSION)):
                raise StoreError(f"index at {self.root} has format {fmt}, this version writes {FORMAT_VERSION}; "
                                 f"re-ingest into a new folder")
            emb = self._meta("embedder")
            if embedder_id and emb and emb != embedder_id:
                raise EmbedderMismatchError(f"index at {self.root} was built with embedder '{emb}', not '{embedder_id}'")
            self._collect_garbage()
        except BaseException:
            self.close()
            raise
        self._pending: dict[int, dict[str, np.ndarray]] = {CHUNKS: {}, SENTENCES: {}}
        self._in_txn = False

    # ---------- helpers ----------
    def _meta(self, key: str) -> str | None:
        got = self.con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return got[0] if got else None

    def _set_meta(self, key: str, value) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def _rows(self, sql: str, params: tuple = ()) -> list:
        return self.con.execute(sql, params).fetchall()

    def _collect_garbage(self) -> None:
        """Delete segment files no committed state refers to (left by a crash or a finished merge)."""
        if not self.segdir.exists():
            return
        live = {n for (n,) in self._rows("SELECT name FROM segments")}
        for p in self.segdir.iterdir():
            if p.suffix in (".npy", ".faiss") and p.stem not in live:
                p.unlink(missing_ok=True)

    def _begin(self) -> None:
        if self.con is None:
            raise StoreError("this writer is closed; open a new one with store.writer()")
        if not self._in_txn:
            self.lock.acquire()
            self.con.execute("BEGIN IMMEDIATE")
            self._in_txn = True

    # ---------- reading ----------
    def unchanged(self, path: str, sha256: str) -> bool:
        got = self._rows("SELECT sha256 FROM docs WHERE path = ?", (path,))
        return bool(got and got[0][0] == sha256)

    def has_document(self, path: str) -> bool:
        return bool(self._rows("SELECT 1 FROM docs WHERE path = ?", (path,)))

    def find_document(self, name_or_path: str) -> DocInfo | None:
        return _find_document(self._rows, name_or_path)

    # ---------- changing ----------
    def upsert(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray,
               sentence_vectors: np.ndarray | None = None) -> None:
        if vectors.shape[0] != len(chunks):
            raise ValueError("one vector per chunk expected")
        sids = [f"{c.chunk_id}#{i}" for c in chunks for i in range(len(c.sentences))]
        if sentence_vectors is not None and sentence_vectors.shape[0] != len(sids):
            raise ValueError("one vector per chunk sentence expected")
        self._begin()
        dim = self._meta("dim")
        if dim is None and len(chunks):
            self._set_meta("dim", int(vectors.shape[1]))
        elif len(chunks) and int(dim) != vectors.shape[1]:
            raise StoreError(f"vector dimension {vectors.shape[1]} does not match the index ({dim})")
        self._drop(doc.path, doc.doc_id)
        self.con.execute("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (doc.doc_id, doc.path, doc.name, doc.sha256, doc.title, doc.date, len(chunks), len(doc.text),
                          time.strftime("%Y-%m-%dT%H:%M:%S")))
        self.con.execute("INSERT INTO texts VALUES (?, ?)", (doc.doc_id, doc.text))
        terms = []
        for c in chunks:
            (crow,) = self.con.execute(
                "INSERT INTO chunks(chunk_id, doc_id, ordinal, n_sent, data) VALUES (?, ?, ?, ?, ?) RETURNING crow",
                (c.chunk_id, c.doc_id, c.ordinal, len(c.sentences), json.dumps(c.to_dict(), ensure_ascii=False))
            ).fetchone()
            terms.append((crow, bm25.chunk_terms(c)))
        bm25.sql_add(self.con, terms)
        vecs = np.asarray(vectors, dtype=np.float32)
        self._pending[CHUNKS].update({c.chunk_id: vecs[i] for i, c in enumerate(chunks)})
        if sentence_vectors is not None:
            svecs = np.asarray(sentence_vectors, dtype=np.float32)
            self._pending[SENTENCES].update({s: svecs[i] for i, s in enumerate(sids)})

    def _drop(self, path: str, doc_id: str | None = None) -> bool:
        """Delete a document (by path, and any rows under ``doc_id``) with its chunks, terms and vectors."""
        ids = {d for (d,) in self._rows("SELECT doc_id FROM docs WHERE path = ?", (path,))}
        if doc_id:
            ids.add(doc_id)
        found = False
        for d in ids:
            rows = self._rows("SELECT crow, chunk_id, n_sent FROM chunks WHERE doc_id = ?", (d,))
            bm25.sql_remove(self.con, [crow for crow, _, _ in rows])
            cids = [c for _, c, _ in rows]
            sids = [f"{c}#{i}" for _, c, n in rows for i in range(n)]
            segments.delete_ids(self.con, CHUNKS, cids)
            segments.delete_ids(self.con, SENTENCES, sids)
            for kind, gone in ((CHUNKS, cids), (SENTENCES, sids)):
                for i in gone:
                    self._pending[kind].pop(i, None)
            self.con.execute("DELETE FROM chunks WHERE doc_id = ?", (d,))
            self.con.execute("DELETE FROM texts WHERE doc_id = ?", (d,))
            found |= self.con.execute("DELETE FROM docs WHERE doc_id = ?", (d,)).rowcount > 0
        return found

    def remove(self, path: str) -> bool:
        if not self.has_document(path):
            return False
        self._begin()
        return self._drop(path)

    def set_meta(self, path: str, title: str | None = None, date: str | None = None) -> bool:
        """Set a document's title and/or date (its row and its chunks); False when not indexed.
        Vectors stay as embedded (with the old title); BM25 re-indexes its chunks with the new title."""
        got = self._rows("SELECT doc_id FROM docs WHERE path = ?", (path,))
        if not got:
            return False
        new = {k: v for k, v in (("title", title), ("date", date)) if v is not None}
        if not new:
            return True
        self._begin()
        doc_id = got[0][0]
        for k, v in new.items():
            self.con.execute(f"UPDATE docs SET {k} = ? WHERE doc_id = ?", (v, doc_id))
        rows = self._rows("SELECT crow, data FROM chunks WHERE doc_id = ?", (doc_id,))
        bm25.sql_remove(self.con, [crow for crow, _ in rows])
        terms = []
        for crow, data in rows:
            d = json.loads(data)
            d.update(new)
            self.con.execute("UPDATE chunks SET data = ? WHERE crow = ?", (json.dumps(d, ensure_ascii=False), crow))
            terms.append((crow, bm25.chunk_terms(Chunk.from_dict(d))))
        bm25.sql_add(self.con, terms)
        return True

    def commit(self) -> None:
        """Write the new vectors as segments, then commit every change in one transaction; then merge
        or compact segments where due (each merge atomic on its own) and give the lock back."""
        if self.con is None:
            raise StoreError("this writer is closed; open a new one with store.writer()")
        written: list[str] = []
        try:
            if self._in_txn:
                for kind in (CHUNKS, SENTENCES):
                    pending = self._pending[kind]
                    if pending:
                        written.append(segments.append(self.con, self.segdir, kind, list(pending),
                                                       np.stack(list(pending.values())), self.params))
                self._set_meta("format_version", FORMAT_VERSION)
                if self.embedder_id and self._meta("embedder") is None:
                    self._set_meta("embedder", self.embedder_id)
                self._set_meta("updated", time.strftime("%Y-%m-%dT%H:%M:%S"))
                self._set_meta("generation", int(self._meta("generation") or 0) + 1)
                self.con.execute("COMMIT")
                self._in_txn = False
                self._pending = {CHUNKS: {}, SENTENCES: {}}
                self._maintain()
        except BaseException:
            if self._in_txn:
                self._rollback()
                segments.remove_files(self.segdir, written)
            self.lock.release()
            raise
        self.lock.release()

    def _maintain(self) -> None:
        """Merge/compact segments; a failure here leaves the committed state as it is (the next
        commit tries again), so it is logged, not raised."""
        try:
            segments.maintain(self.con, self.segdir, self.params, lambda old: segments.remove_files(self.segdir, old))
        except Exception as e:  # noqa: BLE001
            log.warning("index at %s: merging vector segments failed (%s: %s); the next commit tries again",
                        self.root, type(e).__name__, e)

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._in_txn = False
        self._pending = {CHUNKS: {}, SENTENCES: {}}

    def close(self) -> None:
        """Drop uncommitted changes and give the lock back."""
        if self.con is not None:
            if getattr(self, "_in_txn", False):
                self._rollback()
            self.con.close()
            self.con = None
        self.lock.release()

    def __enter__(self) -> "LocalWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
