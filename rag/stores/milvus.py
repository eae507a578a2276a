"""A ``Store`` on Milvus: chunk and sentence vectors, and BM25 full-text search, in Milvus collections.

``milvus_uri`` (``RAG_MILVUS_URI``) picks the database: a local file path runs embedded milvus-lite
(the default, ``<index>/milvus.db``), ``http://host:19530`` a Milvus server or cluster. Layout::

    <index>/milvus-store.sqlite   documents, their texts, chunks (with offsets into the original
                                  text) and the BM25 vocabulary for ``has_term``; the committed
                                  generation ``gen`` (one SQLite transaction switches it)
    Milvus ragnl_<uid>_chunks     pk "chunk_id@gen", chunk_id, doc_id, gen, text (analysed: standard
                                  tokenizer, lowercase, the project's stop words, Dutch stemmer ->
                                  BM25 function -> sparse), vec (AUTOINDEX, inner product)
    Milvus ragnl_<uid>_sentences  pk "chunk_id#i@gen", sid, doc_id, gen, vec

Every row carries the generation of the commit that wrote it. ``commit`` (under the index's writer
lock, ``rag.stores.lock``, taken only while committing: changes are whole documents, so embedding
never holds other writers up, and two writers of one document end with the later one's) deletes rows left by a crashed commit (``gen`` above the committed one), inserts the new
rows under ``gen = G + 1``, then switches in one SQLite transaction (documents, chunks, texts,
vocabulary and ``gen``), and only then deletes the replaced rows from Milvus. A view opened at
generation G searches with ``gen <= G`` and keeps only rows of the document versions it knows, so
it never sees uncommitted rows or a mix of two versions of a document. What Milvus cannot give is
a frozen copy: once a later commit has deleted the rows of documents it replaced or removed, an
older view (until ``reload``) no longer finds those documents; every other document keeps
answering. A milvus-lite file serves one process at a time (a second one gets a clear error).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterable, Iterator, Sequence

import numpy as np

from ..text import STOPWORDS, content_terms
from ..types import Chunk, DocInfo, Document
from .base import EmbedderMismatchError, StoreError, document_chunks
from .bm25 import has_term
from .lock import WriterLock

FORMAT_VERSION = 1
META_FILE = "milvus-store.sqlite"
LITE_FILE = "milvus.db"
TEXT_MAX_BYTES = 60_000  # Milvus VARCHAR holds at most 65,535 bytes; only the BM25 input is cut
BM25_K1, BM25_B = 1.2, 0.75  # as the default store's bm25s
INSERT_BATCH = 512
CACHE_VECTORS = 50_000  # stored vectors a view keeps after reading them (~75 MB at 384 dimensions)
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", {"type": "stop", "stop_words": sorted(STOPWORDS)},
                       {"type": "stemmer", "language": "dutch"}]}
_DOC_FIELDS = ("doc_id", "name", "sha256", "title", "date", "n_chunks", "chars", "added")

_CLIENTS: dict[str, object] = {}
_CLIENTS_LOCK = threading.Lock()


# ---------------------------------------------------------------- connection

def resolve_uri(uri: str, index_dir: str | Path) -> str:
    """The Milvus URI for an index: ``uri`` as given (server), or an absolute milvus-lite file path."""
    if not uri:
        return str((Path(index_dir).expanduser() / LITE_FILE).resolve())
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


def is_lite(uri: str) -> bool:
    return "://" not in uri


def connect(uri: str):
    """One ``MilvusClient`` per URI and process; a clear ``StoreError`` when it cannot be had."""
    with _CLIENTS_LOCK:
        if uri in _CLIENTS:
            return _CLIENTS[uri]
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise StoreError("vector_store 'milvus' needs the packages pymilvus and milvus-lite "
                             "(pip install 'pymilvus>=3.0.2,<4' 'milvus-lite>=3.2.2,<4')") from None
        lite_log = logging.getLogger("milvus_lite")
        level = lite_log.level
        try:
            if is_lite(uri):
                try:
                    import milvus_lite  # noqa: F401
                except ImportError:
                    raise StoreError(f"milvus_uri (RAG_MILVUS_URI) '{uri}' is a local file, which needs the "
                                     f"package milvus-lite (pip install 'milvus-lite>=3.2.2,<4')") from None
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                lite_log.setLevel(logging.CRITICAL)  # its own traceback would hide our one-line reason
            client = MilvusClient(uri=uri, timeout=10)
        except StoreError:
            raise
        except Exception as e:
            if is_lite(uri) and _locked_elsewhere(uri):
                raise StoreError(f"milvus-lite database {uri} is in use by another process (a milvus-lite file "
                                 f"serves one process at a time; use a Milvus server URI to share an index)") from None
            reason = getattr(e, "message", None) or str(e) or type(e).__name__
            raise StoreError(f"cannot reach Milvus at {uri} (milvus_uri / RAG_MILVUS_URI): {reason}") from None
        finally:
            lite_log.setLevel(level)
        _CLIENTS[uri] = client
        return client


def disconnect(uri: str) -> None:
    """Close this process's client for ``uri`` (and stop its embedded milvus-lite server), so the
    file can be opened by another process; the next open connects again."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.pop(uri, None)
    if client is not None:
        client.close()
    if is_lite(uri):
        try:
            from milvus_lite.server_manager import server_manager_instance
        except ImportError:
            return
        server_manager_instance.release_server(uri)


def _locked_elsewhere(path: str) -> bool:
    try:
        from milvus_lite.exceptions import DataDirLockedError
        from milvus_lite.db import MilvusLite

        MilvusLite(path).close()
        return False
    except DataDirLockedError:
        return True
    except Exception:
        return False


def _quote(values: Iterable[str]) -> str:
    return "[" + ",".join(json.dumps(v) for v in values) + "]"


def _doc_of_chunk(chunk_id: str) -> str:
    return chunk_id.rpartition("-")[0]


def _doc_of_sentence(sid: str) -> str:
    return _doc_of_chunk(sid.rpartition("#")[0])


# ---------------------------------------------------------------- snapshot (SQLite sidecar)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (path TEXT PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, gen INTEGER NOT NULL,
    name TEXT, sha256 TEXT, title TEXT, date TEXT, n_chunks INTEGER, chars INTEGER, added TEXT,
    n_sentences INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS texts (doc_id TEXT NOT NULL, gen INTEGER NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (doc_id, gen)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (chunk_id TEXT NOT NULL, gen INTEGER NOT NULL, doc_id TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (chunk_id, gen)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id, gen);
CREATE TABLE IF NOT EXISTS terms (term TEXT NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (term, doc_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terms_doc ON terms (doc_id);
CREATE TABLE IF NOT EXISTS garbage (doc_id TEXT PRIMARY KEY, below INTEGER NOT NULL);
"""


class _Db:
    """The sidecar SQLite file; one connection shared by a view's threads."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(_SCHEMA)
            self._con = con
        return self._con

    def rows(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self.con.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction, or (``write=False``) one consistent read that never blocks a writer."""
        with self._lock:
            con = self.con
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def meta(self) -> dict[str, str]:
        return dict(self.rows("SELECT key, value FROM meta"))


def _info(path: str, row: Sequence) -> DocInfo:
    return DocInfo(path=path, **dict(zip(_DOC_FIELDS, row)))


class _Snapshot:
    """What one view knows: the committed generation and each document's version (read at once)."""

    def __init__(self, db: _Db | None):
        rows: list = []
        self.meta: dict[str, str] = {}
        if db is not None:
            with db.transaction(write=False) as con:  # one consistent read of meta + docs
                self.meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
                rows = con.execute(f"SELECT path, gen, n_sentences, {', '.join(_DOC_FIELDS)} FROM docs").fetchall()
        self.gen = int(self.meta.get("gen", 0))
        self.docs: dict[str, DocInfo] = {r[0]: _info(r[0], r[3:]) for r in rows}
        self.doc_gen: dict[str, int] = {r[3]: int(r[1]) for r in rows}
        self.n_chunks = sum(d.n_chunks for d in self.docs.values())
        self.n_sentences = sum(int(r[2]) for r in rows)

    def current(self, doc_id: str, gen: int) -> bool:
        return self.doc_gen.get(doc_id) == gen


# ---------------------------------------------------------------- read views

class MilvusChunks:
    """The ``ChunkStore`` of one snapshot, read lazily from the sidecar by (id, generation)."""

    def __init__(self, db: _Db, snap: _Snapshot):
        self._db, self._snap = db, snap

    def __len__(self) -> int:
        return self._snap.n_chunks

    def chunk(self, chunk_id: str) -> Chunk | None:
        gen = self._snap.doc_gen.get(_doc_of_chunk(chunk_id))
        if gen is None:
            return None
        rows = self._db.rows("SELECT data FROM chunks WHERE chunk_id = ? AND gen = ?", (chunk_id, gen))
        return Chunk.from_dict(json.loads(rows[0][0])) if rows else None

    def neighbours(self, chunk: Chunk, n: int = 1) -> list[Chunk]:
        out = []
        for off in range(-n, n + 1):
            c = self.chunk(f"{chunk.doc_id}-{chunk.ordinal + off:04d}")
            if c is not None:
                out.append(c)
        return out

    def document_text(self, doc_id: str) -> str:
        gen = self._snap.doc_gen.get(doc_id)
        rows = self._db.rows("SELECT text FROM texts WHERE doc_id = ? AND gen = ?", (doc_id, gen)) if gen else []
        return rows[0][0] if rows else ""

    def chunk_ids(self, doc_ids: Collection[str]) -> set[str]:
        out: set[str] = set()
        for d in set(doc_ids):
            gen = self._snap.doc_gen.get(d)
            if gen is not None:
                out.update(r[0] for r in self._db.rows("SELECT chunk_id FROM chunks WHERE doc_id = ? AND gen = ?",
                                                        (d, gen)))
        return out

    def documents(self) -> list[DocInfo]:
        return list(self._snap.docs.values())

    def find_document(self, name_or_path: str) -> DocInfo | None:
        return _find(self._snap.docs, name_or_path)


def _find(docs: dict[str, DocInfo], name_or_path: str) -> DocInfo | None:
    p = str(Path(name_or_path).expanduser().resolve())
    if p in docs:
        return docs[p]
    matches = [d for d in docs.values() if name_or_path in (d.name, d.doc_id)]
    return matches[0] if len(matches) == 1 else None


class MilvusVectors:
    """A ``VectorIndex`` view over one collection at one snapshot (read-only: change it through the
    store's writer, which writes whole document versions)."""

    def __init__(self, client, collection: str | None, id_field: str, snap: _Snapshot, dim: int, size: int,
                 doc_of=_doc_of_chunk):
        self._c, self.collection, self._id, self._snap = client, collection, id_field, snap
        self.dim, self._size, self._doc_of = int(dim), size, doc_of
        self._cache: dict[str, np.ndarray] = {}  # pk (id@gen) -> vector; rows never change under a pk

    def __len__(self) -> int:
        return self._size

    structure = "AUTOINDEX"

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        raise StoreError("a Milvus store view is read-only; change it through store.writer()")

    def delete(self, ids: Iterable[str]) -> None:
        raise StoreError("a Milvus store view is read-only; change it through store.writer()")

    def save(self, folder: Path) -> None:
        """Nothing to write: Milvus persists the rows; the view is defined by the sidecar's generation."""

    def search(self, qvec: np.ndarray, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        if not self._size or self.collection is None or k <= 0:
            return []
        if allowed is not None:
            allowed = [a for a in allowed if self._doc_of(a) in self._snap.doc_gen]
            if not allowed:
                return []
        q = np.asarray(qvec, dtype=np.float32).reshape(-1).tolist()
        want = min(k, self._size if allowed is None else len(allowed))
        filt = f"gen <= {self._snap.gen}" + (f" and {self._id} in {_quote(allowed)}" if allowed is not None else "")

        def run(limit: int):
            return self._c.search(self.collection, [q], anns_field="vec", limit=limit, filter=filt,
                                  output_fields=[self._id, "doc_id", "gen"],
                                  search_params={"metric_type": "IP", "params": {"ef": max(64, limit)}})[0]

        out = _current_hits(run, k, want, self._snap, self._id, lambda d: float(d))
        if len(out) < want and allowed is not None:
            # a graph index can miss rows under a tight filter: exact scores over the allowed rows
            found = self._fetch(allowed)
            if found:
                ids = list(found)
                s = np.stack([found[i] for i in ids]) @ np.asarray(q, dtype=np.float32)
                out = [(ids[i], float(s[i])) for i in np.argsort(-s)[:k]]
        return out

    def _fetch(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of those ``ids`` this snapshot holds (by id)."""
        pks = {}
        for i in ids:
            gen = self._snap.doc_gen.get(self._doc_of(i))
            if gen is not None:
                pks[i] = f"{i}@{gen}"
        missing = [p for p in dict.fromkeys(pks.values()) if p not in self._cache]
        if missing and self.collection is not None:
            if len(self._cache) + len(missing) > CACHE_VECTORS:
                self._cache.clear()
            for start in range(0, len(missing), 1000):
                for row in self._c.get(self.collection, ids=missing[start:start + 1000], output_fields=["vec"]):
                    self._cache[row["pk"]] = np.asarray(row["vec"], dtype=np.float32)
        return {i: self._cache[p] for i, p in pks.items() if p in self._cache}

    def get(self, ids: Sequence[str]) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        found = self._fetch(ids)
        for i in ids:
            if i not in found:
                raise KeyError(i)
        return np.stack([found[i] for i in ids])


def _current_hits(run, k: int, want: int, snap: _Snapshot, id_field: str, score) -> list[tuple[str, float]]:
    """Search, keeping rows of the document versions this snapshot knows; asks for more rows while
    replaced rows (kept only until a commit's clean-up) pushed current ones out of the first ``k``."""
    limit = k
    while True:
        hits = run(limit)
        out = [(h["entity"][id_field], score(h["distance"])) for h in hits
               if snap.current(h["entity"]["doc_id"], int(h["entity"]["gen"]))]
        if len(out) >= min(k, want) or len(hits) < limit or limit >= 16_384:
            return out[:k]
        limit *= 4


class MilvusKeywords:
    """The ``KeywordIndex``: Milvus full-text BM25 for ``top``; the vocabulary in the sidecar for
    ``has_term`` (the project's own stems and five-letter prefixes, as the default store)."""

    def __init__(self, client, collection: str | None, snap: _Snapshot, db: _Db):
        self._c, self.collection, self._snap, self._db = client, collection, snap, db

    def top(self, query: str, k: int, allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        if self.collection is None or not self._snap.n_chunks or not query.strip() or k <= 0:
            return []
        if allowed is not None:
            allowed = [a for a in allowed if _doc_of_chunk(a) in self._snap.doc_gen]
            if not allowed:
                return []
        filt = f"gen <= {self._snap.gen}" + (f" and chunk_id in {_quote(allowed)}" if allowed is not None else "")

        def run(limit: int):
            return self._c.search(self.collection, [query], anns_field="sparse", limit=limit, filter=filt,
                                  output_fields=["chunk_id", "doc_id", "gen"],
                                  search_params={"metric_type": "BM25"})[0]

        # milvus-lite reports BM25 as a negated distance, a server as the score: the score is its size
        out = _current_hits(run, k, k, self._snap, "chunk_id", lambda d: abs(float(d)))
        return [(c, s) for c, s in out if s > 0]

    def has_term(self, word: str) -> bool:
        return has_term(
            word,
            lambda st: bool(self._db.rows("SELECT 1 FROM terms WHERE term = ? LIMIT 1", (st,))),
            lambda p: bool(self._db.rows("SELECT 1 FROM terms WHERE term >= ? AND term < ? LIMIT 1",
                                         (p, p + "\U0010ffff"))))


# ---------------------------------------------------------------- the store

class MilvusStore:
    backend = "milvus"

    def __init__(self, root: str | Path, uri: str, embedder_id: str | None, dim: int | None,
                 lock_timeout: float = 600.0):
        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout
        self.uri = resolve_uri(uri, self.root)
        self._embedder_id, self._dim = embedder_id, dim
        self._db = _Db(self.root / META_FILE)
        self._client = None
        if not is_lite(self.uri):
            self.client  # a server that cannot be reached is one clear line now, not at the first question
        self._open_view()

    @classmethod
    def open(cls, root: str | Path, uri: str, embedder_id: str | None, dim: int | None,
             lock_timeout: float = 600.0) -> "MilvusStore":
        store = cls(root, uri, embedder_id, dim, lock_timeout)
        m = store.snap.meta
        if m:
            if m.get("format_version") != str(FORMAT_VERSION):
                raise StoreError(f"index at {store.root} has Milvus store format {m.get('format_version')}, this "
                                 f"version reads {FORMAT_VERSION}; re-ingest into a new folder")
            if embedder_id and m.get("embedder") and m["embedder"] != embedder_id:
                raise EmbedderMismatchError(
                    f"index at {store.root} was built with embedder '{m['embedder']}', not '{embedder_id}'; "
                    f"use a matching --embedder or a new --index folder (or re-ingest into an empty one)")
            if dim and m.get("dim") and int(m["dim"]) != dim:
                raise EmbedderMismatchError(f"index at {store.root} has dimension {m['dim']}, the embedder gives {dim}")
        return store

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.uri)
        return self._client

    def _open_view(self) -> None:
        if not (self.root / META_FILE).exists():  # no index yet: empty views, nothing created on disk
            self.snap = _Snapshot(None)
            names = (None, None)
        else:
            self.snap = _Snapshot(self._db)
            names = self._collections(self.snap.meta) if self.snap.gen else (None, None)
            if names[0] is not None:
                for n in names:
                    _ensure_loaded(self.client, n)
        dim = int(self.snap.meta.get("dim") or self._dim or 1)
        client = self._client if names[0] is None else self.client
        self.vectors = MilvusVectors(client, names[0], "chunk_id", self.snap, dim, self.snap.n_chunks)
        self.sentences = MilvusVectors(client, names[1], "sid", self.snap, dim, self.snap.n_sentences,
                                       doc_of=_doc_of_sentence)
        self.keywords = MilvusKeywords(client, names[0], self.snap, self._db)
        self.chunks = MilvusChunks(self._db, self.snap)

    @staticmethod
    def _collections(meta: dict) -> tuple[str, str]:
        return f"ragnl_{meta['uid']}_chunks", f"ragnl_{meta['uid']}_sentences"

    @property
    def exists(self) -> bool:
        return (self.root / META_FILE).exists() and int(self._db.meta().get("gen", 0)) > 0

    @property
    def version(self) -> str | None:
        return f"gen-{self.snap.gen}" if self.snap.gen else None

    def info(self) -> dict:
        m = self.snap.meta
        return {"index": str(self.root.resolve()), "backend": self.backend,
                "vector_index": f"{self.vectors.structure} ({'milvus-lite' if is_lite(self.uri) else 'server'})",
                "milvus_uri": self.uri, "embedder": m.get("embedder", self._embedder_id),
                "dim": int(m["dim"]) if m.get("dim") else self._dim, "documents": len(self.snap.docs),
                "chunks": self.snap.n_chunks, "sentences": self.snap.n_sentences, "updated": m.get("updated"),
                "version": self.version}

    def writer(self) -> "MilvusWriter":
        return MilvusWriter(MilvusStore.open(self.root, self.uri, self.snap.meta.get("embedder") or self._embedder_id,
                                             int(self.snap.meta["dim"]) if self.snap.meta.get("dim") else self._dim,
                                             self.lock_timeout))


def _ensure_loaded(client, name: str) -> None:
    """A reopened database serves a collection only after ``load_collection``."""
    if not client.has_collection(name):
        raise StoreError(f"Milvus collection {name} is missing at {getattr(client, '_uri', '')}; the index "
                         f"sidecar and the Milvus database do not belong together (re-ingest into a new folder)")
    state = client.get_load_state(name).get("state")
    if "NotLoad" in str(state):
        client.load_collection(name)


def _create_collections(client, chunks: str, sentences: str, dim: int) -> None:
    from pymilvus import DataType, Function, FunctionType

    if not client.has_collection(chunks):
        s = client.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=512)
        s.add_field("chunk_id", DataType.VARCHAR, max_length=256)
        s.add_field("doc_id", DataType.VARCHAR, max_length=256)
        s.add_field("gen", DataType.INT64)
        s.add_field("text", DataType.VARCHAR, max_length=65_535, enable_analyzer=True, analyzer_params=ANALYZER)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                output_field_names=["sparse"]))
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="AUTOINDEX", metric_type="IP")
        ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                     params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
        client.create_collection(chunks, schema=s, consistency_level="Strong")
        client.create_index(chunks, ip, sync=False)  # empty: built at once (sync polls in 0.5 s steps)
    if not client.has_collection(sentences):
        s = client.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=512)
        s.add_field("sid", DataType.VARCHAR, max_length=256)
        s.add_field("doc_id", DataType.VARCHAR, max_length=256)
        s.add_field("gen", DataType.INT64)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="AUTOINDEX", metric_type="IP")
        client.create_collection(sentences, schema=s, consistency_level="Strong")
        client.create_index(sentences, ip, sync=False)
    for n in (chunks, sentences):
        _ensure_loaded(client, n)


def _bm25_text(c: Chunk) -> str:
    t = c.keyword_text()
    b = t.encode("utf-8")
    return t if len(b) <= TEXT_MAX_BYTES else b[:TEXT_MAX_BYTES].decode("utf-8", "ignore")


# ---------------------------------------------------------------- the writer

class MilvusWriter:
    """Collects whole-document changes; ``commit`` writes them as the next generation."""

    def __init__(self, store: MilvusStore):
        self.s = store
        self._docs: dict[str, DocInfo] = dict(store.snap.docs)
        self._pending: dict[str, tuple] = {}  # path -> ("upsert", doc, chunks, vecs, svecs) | ("remove", doc_id)

    def unchanged(self, path: str, sha256: str) -> bool:
        d = self._docs.get(path)
        return bool(d and d.sha256 == sha256)

    def has_document(self, path: str) -> bool:
        return path in self._docs

    def find_document(self, name_or_path: str) -> DocInfo | None:
        return _find(self._docs, name_or_path)

    def upsert(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray,
               sentence_vectors: np.ndarray | None = None) -> None:
        if vectors.shape[0] != len(chunks):
            raise ValueError("one vector per chunk expected")
        n_sent = sum(len(c.sentences) for c in chunks)
        if sentence_vectors is not None and sentence_vectors.shape[0] != n_sent:
            raise ValueError("one vector per chunk sentence expected")
        dim = self.s.snap.meta.get("dim") or self.s._dim
        if dim and vectors.shape[1] != int(dim):
            raise StoreError(f"vector dimension {vectors.shape[1]} does not match the index ({dim})")
        self._pending[doc.path] = ("upsert", doc, chunks, np.asarray(vectors, np.float32),
                                   None if sentence_vectors is None else np.asarray(sentence_vectors, np.float32))
        self._docs[doc.path] = DocInfo(path=doc.path, doc_id=doc.doc_id, name=doc.name, sha256=doc.sha256,
                                       title=doc.title, date=doc.date, n_chunks=len(chunks), chars=len(doc.text),
                                       added=time.strftime("%Y-%m-%dT%H:%M:%S"))

    def set_meta(self, path: str, title: str | None = None, date: str | None = None) -> bool:
        """Set a document's title and/or date; False when not indexed. The document is written again
        as the next generation with its stored vectors (nothing is re-embedded), so Milvus's BM25 text,
        which carries the title, changes with it."""
        d = self._docs.get(path)
        if d is None:
            return False
        new = {k: v for k, v in (("title", title), ("date", date)) if v is not None}
        if not new:
            return True
        op = self._pending.get(path)
        if op is not None and op[0] == "upsert":  # changed earlier in this writer: edit the pending version
            doc, chunks, vecs, svecs = op[1], op[2], op[3], op[4]
        else:
            store = self.s
            doc = Document(doc_id=d.doc_id, path=path, name=d.name, text=store.chunks.document_text(d.doc_id),
                           title=d.title, date=d.date, sha256=d.sha256)
            chunks = document_chunks(store.chunks, d.doc_id)
            vecs = store.vectors.get([c.chunk_id for c in chunks])
            sids = [f"{c.chunk_id}#{i}" for c in chunks for i in range(len(c.sentences))]
            try:
                svecs = store.sentences.get(sids) if sids else None
            except KeyError:  # indexed without sentence vectors
                svecs = None
        doc = dataclasses.replace(doc, **new)
        chunks = [dataclasses.replace(c, **new) for c in chunks]
        added = d.added
        self.upsert(doc, chunks, vecs, svecs)
        self._docs[path] = dataclasses.replace(self._docs[path], added=added)
        return True

    def remove(self, path: str) -> bool:
        d = self._docs.pop(path, None)
        if d is None:
            return False
        if path in self._pending and path not in self.s.snap.docs:
            del self._pending[path]  # added and removed within this writer: nothing to do
        else:
            self._pending[path] = ("remove", d.doc_id)
        return True

    def commit(self) -> None:
        if not self._pending:
            return
        s = self.s
        with WriterLock(s.root, s.lock_timeout):
            db = s._db
            meta = db.meta()
            gen = int(meta.get("gen", 0))
            new = gen + 1
            first = next((p for p in self._pending.values() if p[0] == "upsert"), None)
            if not meta:
                if first is None:
                    return
                meta = {"format_version": str(FORMAT_VERSION), "uid": uuid.uuid4().hex[:12],
                        "embedder": s._embedder_id or "", "dim": str(first[3].shape[1]), "gen": "0"}
                with db.transaction() as con:
                    con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            chunks_c, sents_c = MilvusStore._collections(meta)
            client = s.client
            _create_collections(client, chunks_c, sents_c, int(meta["dim"]))
            # rows of a commit that never switched, and replaced rows a crash left behind
            for name in (chunks_c, sents_c):
                client.delete(name, filter=f"gen > {gen}")
            self._collect(client, db, (chunks_c, sents_c))
            changed = {}
            for path, op in self._pending.items():
                if op[0] == "upsert":
                    self._insert(client, chunks_c, sents_c, new, op[1], op[2], op[3], op[4])
                changed[op[1].doc_id if op[0] == "upsert" else op[1]] = path
            # the switch: one SQLite transaction
            now = time.strftime("%Y-%m-%dT%H:%M:%S")
            with db.transaction() as con:
                for doc_id, path in changed.items():
                    old = con.execute("SELECT gen FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
                    if old is not None:
                        con.execute("INSERT OR REPLACE INTO garbage VALUES (?, ?)", (doc_id, new))
                    con.execute("DELETE FROM docs WHERE doc_id = ? OR path = ?", (doc_id, path))
                    con.execute("DELETE FROM texts WHERE doc_id = ?", (doc_id,))
                    con.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
                    con.execute("DELETE FROM terms WHERE doc_id = ?", (doc_id,))
                    op = self._pending[path]
                    if op[0] != "upsert":
                        continue
                    _, doc, chunks, _, svecs = op
                    d = self._docs[path]
                    con.execute(f"INSERT INTO docs (path, gen, n_sentences, {', '.join(_DOC_FIELDS)}) "
                                f"VALUES ({', '.join('?' * (3 + len(_DOC_FIELDS)))})",
                                (path, new, 0 if svecs is None else len(svecs),
                                 *(getattr(d, f) for f in _DOC_FIELDS)))
                    con.execute("INSERT INTO texts VALUES (?, ?, ?)", (doc_id, new, doc.text))
                    con.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)",
                                    [(c.chunk_id, new, doc_id, json.dumps(c.to_dict(), ensure_ascii=False))
                                     for c in chunks])
                    vocab = {t for c in chunks for t in content_terms(f"{c.title}\n{c.text}")}
                    con.executemany("INSERT INTO terms VALUES (?, ?)", [(t, doc_id) for t in vocab])
                con.execute("INSERT OR REPLACE INTO meta VALUES ('gen', ?)", (str(new),))
                con.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (now,))
            self._pending.clear()
            self._collect(client, db, (chunks_c, sents_c))
        s._open_view()
        self._docs = dict(s.snap.docs)

    @staticmethod
    def _collect(client, db: _Db, names: tuple[str, str]) -> None:
        """Delete rows of replaced or removed document versions (those below the switching generation)."""
        rows = db.rows("SELECT doc_id, below FROM garbage")
        if not rows:
            return
        by_gen: dict[int, list[str]] = {}
        for doc_id, below in rows:
            by_gen.setdefault(int(below), []).append(doc_id)
        for below, doc_ids in by_gen.items():
            for start in range(0, len(doc_ids), 500):
                part = doc_ids[start:start + 500]
                for name in names:
                    client.delete(name, filter=f"gen < {below} and doc_id in {_quote(part)}")
                with db.transaction() as con:
                    con.executemany("DELETE FROM garbage WHERE doc_id = ? AND below = ?", [(d, below) for d in part])

    @staticmethod
    def _insert(client, chunks_c: str, sents_c: str, gen: int, doc: Document, chunks: list[Chunk],
                vecs: np.ndarray, svecs: np.ndarray | None) -> None:
        rows = [{"pk": f"{c.chunk_id}@{gen}", "chunk_id": c.chunk_id, "doc_id": doc.doc_id, "gen": gen,
                 "text": _bm25_text(c), "vec": v.tolist()} for c, v in zip(chunks, vecs)]
        for start in range(0, len(rows), INSERT_BATCH):
            client.insert(chunks_c, rows[start:start + INSERT_BATCH])
        if svecs is None or not len(svecs):
            return
        sids = [f"{c.chunk_id}#{i}" for c in chunks for i in range(len(c.sentences))]
        rows = [{"pk": f"{sid}@{gen}", "sid": sid, "doc_id": doc.doc_id, "gen": gen, "vec": v.tolist()}
                for sid, v in zip(sids, svecs)]
        for start in range(0, len(rows), INSERT_BATCH):
            client.insert(sents_c, rows[start:start + INSERT_BATCH])

    def close(self) -> None:
        """Nothing to release: the writer lock is held only inside ``commit``; pending changes are dropped."""
