"""Distributed ingest on Ray Data, for corpora beyond one machine: the same load -> chunk -> embed ->
store-writer path as ``rag.ingest.pipeline.ingest``, with loading/chunking and embedding spread over a
Ray cluster (or a local Ray instance).

    driver: expand paths, skip unchanged files (the writer knows their hashes)
      -> ray.data.from_items(one row per file)
      -> map_batches(load_and_chunk)            tasks: one row per text to embed (the file's chunk
                                                texts, then its sentence contexts), or one error row
      -> map_batches(EmbedActor, concurrency=ray_actors)   each actor builds the embedder once from
                                                the config (``embedder_factory``) and embeds batches
      -> streamed back in file order -> writer.upsert per file -> writer.commit() once

Bad files are reported exactly as the single-process ingest reports them, and nothing already indexed
changes until the one commit at the end. ``cfg.ray_address`` "" starts a local Ray instance with
``cfg.n_threads`` CPUs; otherwise it connects to that cluster, whose workers need this package, the
models (``rag models --prepare``) and the files at the same paths.
"""

from __future__ import annotations

import logging
import pickle
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import RagConfig
from ..stores.base import EmbedderMismatchError, StoreWriter
from .chunker import ChunkerConfig
from .loaders import expand_paths, file_sha256
from .pipeline import IngestReport, file_problem, load_chunks, texts_to_embed

EmbedderFactory = Callable[[RagConfig], Any]
FILES_PER_TASK = 4  # files loaded and chunked per Ray task


def default_embedder_factory(cfg: RagConfig):
    from ..stores.embedder import get_embedder

    return get_embedder(cfg)


def init_ray(cfg: RagConfig, runtime_env: dict | None = None) -> bool:
    """Connect to ``cfg.ray_address`` (or start a local instance); True when this call started Ray
    (the caller then shuts it down). An already initialised Ray is reused as it is."""
    import ray

    if ray.is_initialized():
        return False
    kw: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    if runtime_env:
        kw["runtime_env"] = runtime_env
    if cfg.ray_address:
        ray.init(address=cfg.ray_address, **kw)
        return True
    # a local instance listens on loopback only; its raylet occasionally misses Ray's fixed 30 s start-up
    # window on a busy machine, so a timed-out start is tried once more
    local = dict(num_cpus=max(1, cfg.n_threads), _node_ip_address="127.0.0.1", **kw)
    try:
        ray.init(**local)
    except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception for this
        if "timed out during startup" not in str(e):
            raise
        ray.shutdown()
        ray.init(**local)
    return True


def load_and_chunk(batch: dict[str, np.ndarray], cfg: RagConfig) -> dict[str, list]:
    """Ray task: file rows -> one row per text to embed (the first carries the pickled document and
    chunks), or one row with the reason the file cannot be indexed (worded as ``pipeline.ingest`` words
    it: ``error`` for the report, ``status`` for the per-file callback)."""
    ccfg = ChunkerConfig(max_chars=cfg.chunk_chars, overlap_sentences=cfg.chunk_overlap_sentences)
    out: dict[str, list] = {"file": [], "pos": [], "text": [], "payload": [], "error": [], "status": []}

    def row(i, pos, text="", payload=b"", error="", status=""):
        for k, v in zip(out, (int(i), pos, text, payload, error, status)):
            out[k].append(v)

    for i, path in zip(batch["file"], batch["path"]):
        try:
            doc, chunks = load_chunks(Path(str(path)), cfg, ccfg)
        except Exception as e:  # a bad or hostile file: one row for this file, the batch goes on
            reason, status = file_problem(e)
            row(i, -1, error=reason, status=status)
            continue
        payload = pickle.dumps((doc, chunks, len(chunks)), protocol=pickle.HIGHEST_PROTOCOL)
        for pos, text in enumerate(sum(texts_to_embed(chunks), [])):
            row(i, pos, text, payload if pos == 0 else b"")
    return out


class EmbedActor:
    """Ray actor: builds the embedder once from the config, then embeds batches of text rows."""

    def __init__(self, cfg: RagConfig, embedder_factory: EmbedderFactory):
        self.embedder = embedder_factory(cfg)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pos = np.asarray(batch["pos"])
        todo = np.flatnonzero(pos >= 0)
        t = time.perf_counter()
        vecs = self.embedder.embed_passages([str(batch["text"][j]) for j in todo]) if len(todo) else None
        seconds = time.perf_counter() - t
        dim = self.embedder.dim
        out = np.zeros((len(pos), dim), dtype=np.float32)
        if vecs is not None:
            out[todo] = vecs
        batch = dict(batch)
        batch.pop("text")
        batch["vector"] = out
        batch["embed_s"] = np.where(np.arange(len(pos)) == 0, seconds, 0.0)
        batch["embedder"] = np.array([f"{self.embedder.id}|{dim}"] * len(pos), dtype=object)
        return batch


def ingest_ray(
    paths: list[str | Path],
    cfg: RagConfig,
    writer: StoreWriter | None = None,
    embedder_factory: EmbedderFactory | None = None,
    progress: bool = False,
    on_file: Callable[[str, str], None] | None = None,
    force: bool = False,
    runtime_env: dict | None = None,
) -> IngestReport:
    """``rag.ingest.pipeline.ingest`` on Ray Data: same report, same store contents, one commit.
    ``embedder_factory(cfg)`` builds the embedder inside each actor (and once on the driver, for its
    id and dimension, when no ``writer`` is given)."""
    t0 = time.perf_counter()
    factory = embedder_factory or default_embedder_factory
    report = IngestReport()
    expected = None
    if writer is None:
        from ..stores.factory import open_store

        emb = factory(cfg)  # the real embedder loads its model lazily: only id and dim are read here
        expected = f"{emb.id}|{emb.dim}"
        writer = open_store(cfg, emb.id, emb.dim).writer()
    files = expand_paths(paths)
    todo: list[tuple[int, str]] = []  # (position in files, shown name)
    for n, p in enumerate(files):
        shown = str(p)
        try:
            if p.exists() and p.is_file() and not force and writer.unchanged(str(p.resolve()), file_sha256(p)):
                report.skipped.append(shown)
                on_file and on_file(shown, "unchanged")
                continue
        except OSError as e:
            report.errors.append((shown, f"cannot read the file ({e.strerror or e})"))
            on_file and on_file(shown, f"error: {e}")
            continue
        todo.append((n, shown))
    if todo:
        _run(todo, files, cfg, factory, writer, report, expected, progress, on_file, runtime_env)
        if report.added or report.updated:
            writer.commit()
    report.seconds = time.perf_counter() - t0
    return report


def _run(todo, files, cfg, factory, writer, report, expected, progress, on_file, runtime_env) -> None:
    import ray
    import ray.data

    started = init_ray(cfg, runtime_env)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # files come back in the order they were named
        # progress bars on a terminal; otherwise no periodic progress log lines from Ray Data
        ctx.enable_progress_bars = progress and sys.stderr.isatty()
        if not ctx.enable_progress_bars:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        ds = ray.data.from_items([{"file": n, "path": str(files[n])} for n, _ in todo])
        ds = ds.map_batches(load_and_chunk, fn_kwargs={"cfg": cfg}, batch_size=FILES_PER_TASK,
                            batch_format="numpy")
        ds = ds.map_batches(EmbedActor, fn_constructor_kwargs={"cfg": cfg, "embedder_factory": factory},
                            concurrency=cfg.ray_actors, batch_size=max(1, cfg.embed_batch_size) * 4,
                            batch_format="numpy")
        shown = dict(todo)
        current: dict[str, Any] | None = None  # the file whose vectors are arriving

        def finish(cur: dict[str, Any]) -> None:
            doc, chunks, n_chunks = cur["doc"]
            vecs = np.stack(cur["vecs"]).astype(np.float32, copy=False)
            existed = writer.has_document(doc.path)
            writer.upsert(doc, chunks, vecs[:n_chunks], vecs[n_chunks:])
            report.chunks += n_chunks
            report.passages += len(vecs)
            (report.updated if existed else report.added).append(cur["shown"])
            on_file and on_file(cur["shown"], "updated" if existed else "added")

        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            report.embed_seconds += float(np.sum(batch["embed_s"]))
            for j in range(len(batch["file"])):
                n, pos = int(batch["file"][j]), int(batch["pos"][j])
                got = str(batch["embedder"][j])
                if expected is None:
                    expected = got
                elif got != expected:
                    raise EmbedderMismatchError(f"a Ray embedder actor built '{got}' but the index expects "
                                                f"'{expected}' (same embedder config on every node?)")
                if pos < 0:
                    report.errors.append((shown[n], str(batch["error"][j])))
                    on_file and on_file(shown[n], str(batch["status"][j]))
                    continue
                if pos == 0:
                    if current is not None:
                        finish(current)
                    current = {"shown": shown[n], "doc": pickle.loads(batch["payload"][j]), "vecs": []}
                current["vecs"].append(batch["vector"][j])
        if current is not None:
            finish(current)
    finally:
        if started:
            ray.shutdown()
