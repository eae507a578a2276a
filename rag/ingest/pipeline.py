"""Ingestion pipeline: files -> load -> clean/chunk -> embed -> store writer (one atomic commit)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import RagConfig
from ..stores.base import StoreWriter
from ..types import Chunk, Document
from .chunker import ChunkerConfig, chunk_document, sentence_context
from .loaders import LoadError, expand_paths, file_sha256, load


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    chunks: int = 0
    passages: int = 0  # texts embedded: chunks and their sentences
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def passages_per_s(self) -> float:
        return self.passages / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "skipped": self.skipped,
                "errors": [{"file": f, "reason": r} for f, r in self.errors], "chunks": self.chunks,
                "seconds": round(self.seconds, 3), "embed_seconds": round(self.embed_seconds, 3),
                "passages_per_s": round(self.passages_per_s, 2)}


def embed_by_length(embedder, texts: list[str], progress: bool = False, group: int = 256) -> np.ndarray:
    """Embed ``texts`` in groups of similar length (longest first: little padding within a batch, and
    the slowest part first so the rate shown only improves), with a progress bar showing passages/s
    and MB/min; the vectors come back in input order."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: np.ndarray | None = None
    bar = None
    if progress and texts:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), unit="passage", desc="embedding", dynamic_ncols=True)
    t0, done_bytes = time.perf_counter(), 0
    try:
        for k in range(0, len(order), group):
            idx = order[k : k + group]
            vecs = np.asarray(embedder.embed_passages([texts[i] for i in idx]), dtype=np.float32)
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
            if bar is not None:
                done_bytes += sum(len(texts[i].encode("utf-8")) for i in idx)
                minutes = max(time.perf_counter() - t0, 1e-9) / 60
                bar.set_postfix_str(f"{done_bytes / 1e6 / minutes:.2f} MB/min", refresh=False)
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
    return out if out is not None else np.zeros((0, int(getattr(embedder, "dim", 0))), dtype=np.float32)


def texts_to_embed(chunks: list[Chunk]) -> tuple[list[str], list[str]]:
    """What gets embedded for ``chunks``: each chunk's passage text, and each sentence's context in the
    order the store writer expects (chunk 0's sentences, then chunk 1's, ...)."""
    return ([c.embed_text() for c in chunks],
            [sentence_context(c, i)[0] for c in chunks for i in range(len(c.sentences))])


def load_chunks(p: Path, cfg: RagConfig, ccfg: ChunkerConfig) -> tuple[Document, list[Chunk]]:
    """Load one file within the configured limits and chunk it; raises for a file with nothing to index."""
    doc = load(p, max_bytes=cfg.max_file_mb * 1024 * 1024, max_chars=cfg.max_document_chars)
    chunks = chunk_document(doc, ccfg)
    if not chunks:
        raise LoadError(p, "no text to index after clean-up")
    return doc, chunks


def file_problem(e: Exception) -> tuple[str, str]:
    """(reason for the ingest report, status for the per-file callback) for an error from ``load_chunks``."""
    if isinstance(e, LoadError):
        return e.reason, f"error: {e.reason}"
    if isinstance(e, OSError):
        return f"cannot read the file ({e.strerror or e})", f"error: {e}"
    return f"cannot load the file ({type(e).__name__}: {e})", f"error: {type(e).__name__}: {e}"


def ingest(
    paths: list[str | Path],
    cfg: RagConfig,
    embedder,
    writer: StoreWriter | None = None,
    progress: bool = True,
    on_file: Callable[[str, str], None] | None = None,
    force: bool = False,
) -> IngestReport:
    """Add or update files in the index. Bad files are reported, never fatal; nothing already
    indexed is lost, and the index changes only by one atomic commit at the end."""
    t0 = time.perf_counter()
    report = IngestReport()
    if writer is None:
        from ..stores.factory import open_store

        writer = open_store(cfg, embedder.id, embedder.dim).writer()
    ccfg = ChunkerConfig(max_chars=cfg.chunk_chars, overlap_sentences=cfg.chunk_overlap_sentences)
    files = expand_paths(paths)
    pending = []  # (shown name, document, chunks) for one batched embedding pass
    for p in files:
        shown = str(p)
        try:
            if p.exists() and p.is_file() and not force:
                if writer.unchanged(str(p.resolve()), file_sha256(p)):
                    report.skipped.append(shown)
                    on_file and on_file(shown, "unchanged")
                    continue
            doc, chunks = load_chunks(p, cfg, ccfg)
        except Exception as e:  # a bad or hostile file: one line for this file, the batch goes on
            reason, status = file_problem(e)
            report.errors.append((shown, reason))
            on_file and on_file(shown, status)
            continue
        pending.append((shown, doc, chunks))
    if pending:
        chunk_texts, sentence_texts = texts_to_embed([c for _, _, chunks in pending for c in chunks])
        texts, n_chunks = chunk_texts + sentence_texts, len(chunk_texts)
        report.passages = len(texts)
        te = time.perf_counter()
        allvecs = embed_by_length(embedder, texts, progress=progress)
        vecs, svecs = allvecs[:n_chunks], allvecs[n_chunks:]
        spos = 0
        report.embed_seconds = time.perf_counter() - te
        pos = 0
        for shown, doc, chunks in pending:
            existed = writer.has_document(doc.path)
            ns = sum(len(c.sentences) for c in chunks)
            writer.upsert(doc, chunks, vecs[pos : pos + len(chunks)], svecs[spos : spos + ns])
            spos += ns
            pos += len(chunks)
            report.chunks += len(chunks)
            (report.updated if existed else report.added).append(shown)
            on_file and on_file(shown, "updated" if existed else "added")
    if pending:
        writer.commit()
    report.seconds = time.perf_counter() - t0
    return report


def remove(names: list[str], writer: StoreWriter) -> tuple[list[str], list[str]]:
    """Remove documents by path, file name or doc id; returns (removed paths, not found)."""
    removed, missing = [], []
    for n in names:
        info = writer.find_document(n)
        if info and writer.remove(info.path):
            removed.append(info.path)
        else:
            missing.append(n)
    if removed:
        writer.commit()
    return removed, missing
