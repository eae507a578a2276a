"""Ingestion pipeline: files -> load -> clean/chunk -> embed -> index store (saved atomically)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .chunker import ChunkerConfig, chunk_document
from .config import RagConfig
from .loaders import LoadError, expand_paths, file_sha256, load
from .store import IndexStore


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def passages_per_s(self) -> float:
        return self.chunks / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "skipped": self.skipped,
                "errors": [{"file": f, "reason": r} for f, r in self.errors], "chunks": self.chunks,
                "seconds": round(self.seconds, 3), "embed_seconds": round(self.embed_seconds, 3),
                "passages_per_s": round(self.passages_per_s, 2)}


def passage_text(title: str, text: str) -> str:
    """What gets embedded: the title gives the chunk its context."""
    return f"{title}\n{text}" if title and title not in text else text


def open_store(cfg: RagConfig, embedder) -> IndexStore:
    return IndexStore.open(cfg.index_dir, embedder_id=embedder.id, dim=embedder.dim)


def ingest(
    paths: list[str | Path],
    cfg: RagConfig,
    embedder,
    store: IndexStore | None = None,
    progress: bool = True,
    on_file: Callable[[str, str], None] | None = None,
    force: bool = False,
) -> IngestReport:
    """Add or update files in the index. Bad files are reported, never fatal; nothing already
    indexed is lost, and the index on disk changes only by one atomic save at the end."""
    t0 = time.perf_counter()
    report = IngestReport()
    store = store or open_store(cfg, embedder)
    ccfg = ChunkerConfig(max_chars=cfg.chunk_chars, overlap_sentences=cfg.chunk_overlap_sentences)
    files = expand_paths(paths)
    pending = []  # (shown name, document, chunks) for one batched embedding pass
    for p in files:
        shown = str(p)
        try:
            if p.exists() and p.is_file() and not force:
                if store.unchanged(str(p.resolve()), file_sha256(p)):
                    report.skipped.append(shown)
                    on_file and on_file(shown, "unchanged")
                    continue
            doc = load(p)
            chunks = chunk_document(doc, ccfg)
            if not chunks:
                raise LoadError(p, "no text to index after clean-up")
        except LoadError as e:
            report.errors.append((shown, e.reason))
            on_file and on_file(shown, f"error: {e.reason}")
            continue
        except OSError as e:
            report.errors.append((shown, f"cannot read the file ({e.strerror or e})"))
            on_file and on_file(shown, f"error: {e}")
            continue
        pending.append((shown, doc, chunks))
    if pending:
        texts = [passage_text(c.title, c.text) for _, _, chunks in pending for c in chunks]
        te = time.perf_counter()
        vecs = embedder.embed_passages(texts, progress=progress)
        report.embed_seconds = time.perf_counter() - te
        pos = 0
        for shown, doc, chunks in pending:
            existed = doc.path in store.docs
            store.upsert(doc, chunks, vecs[pos : pos + len(chunks)])
            pos += len(chunks)
            report.chunks += len(chunks)
            (report.updated if existed else report.added).append(shown)
            on_file and on_file(shown, "updated" if existed else "added")
    if pending or not store.exists:
        store.save()
    report.seconds = time.perf_counter() - t0
    return report


def remove(names: list[str], cfg: RagConfig, store: IndexStore) -> tuple[list[str], list[str]]:
    """Remove documents by path, file name or doc id; returns (removed, not_found)."""
    removed, missing = [], []
    for n in names:
        path = store.find_doc_path(n)
        if path and store.remove(path):
            removed.append(path)
        else:
            missing.append(n)
    if removed:
        store.save()
    return removed, missing
