"""The store seam: round trip, incremental writes, atomic snapshots, embedder checks, config, and
a fake vector index swapped in through the factory answering end to end."""

import json
from pathlib import Path

import numpy as np
import pytest

from rag.config import ConfigError, RagConfig
from rag.ingest.pipeline import ingest, remove
from rag.retrieve.retriever import Retriever
from rag.stores import factory
from rag.stores.base import ChunkStore, EmbedderMismatchError, KeywordIndex, Store, StoreError, VectorIndex
from rag.stores.factory import open_store
from tests.conftest import chunks_of, write_file


def _open(cfg, emb):
    return open_store(cfg, emb.id, emb.dim)


def test_round_trip_and_search(cfg, fake_embedder, docs):
    rep = ingest([docs], cfg, fake_embedder, progress=False)
    assert sorted(rep.added) == sorted(str(p) for p in docs.iterdir()) and not rep.errors
    store = _open(cfg, fake_embedder)
    assert isinstance(store, Store) and isinstance(store.vectors, VectorIndex)
    assert isinstance(store.keywords, KeywordIndex) and isinstance(store.chunks, ChunkStore)
    assert len(store.chunks.documents()) == 2 and len(store.chunks) == 2 and len(store.vectors) == 2
    hits = Retriever(cfg, store, fake_embedder).search("missie in Irak", k=2)
    assert hits[0].chunk.doc == "irak.txt"
    c = hits[0].chunk
    assert store.chunks.document_text(c.doc_id)[c.start : c.end] == c.text
    assert store.vectors.get([c.chunk_id]).shape == (1, fake_embedder.dim)
    from rag.types import Chunk

    assert Chunk.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_incremental_update_and_remove(cfg, fake_embedder, docs):
    ingest([docs], cfg, fake_embedder, progress=False)
    calls = fake_embedder.calls
    rep = ingest([docs], cfg, fake_embedder, progress=False)
    assert len(rep.skipped) == 2 and fake_embedder.calls == calls  # nothing re-embedded
    write_file(docs, "navo.txt", "De NAVO telt 32 lidstaten. Zweden trad toe.")
    rep = ingest([docs], cfg, fake_embedder, progress=False)
    assert rep.updated == [str(docs / "navo.txt")] and len(rep.skipped) == 1
    store = _open(cfg, fake_embedder)
    texts = " ".join(c.text for c in chunks_of(store))
    assert "32 lidstaten" in texts and "75 jaar" not in texts
    removed, missing = remove(["navo.txt", "bestaat-niet.txt"], store.writer())
    assert removed == [str((docs / "navo.txt").resolve())] and missing == ["bestaat-niet.txt"]
    store = _open(cfg, fake_embedder)
    assert [c.doc for c in chunks_of(store)] == ["irak.txt"]
    assert [cid for cid, _ in store.keywords.top("Irak", 5)] == [chunks_of(store)[0].chunk_id]
    assert store.keywords.has_term("Irak") and store.keywords.has_term("NAVO-missie")
    assert not store.keywords.has_term("Washington")


def test_open_view_keeps_its_snapshot_while_a_writer_commits(cfg, fake_embedder, docs):
    ingest([docs], cfg, fake_embedder, progress=False)
    view = _open(cfg, fake_embedder)
    before = {c.chunk_id: c.text for c in chunks_of(view)}
    write_file(docs, "navo.txt", "De NAVO telt 32 lidstaten.")
    ingest([docs], cfg, fake_embedder, progress=False)
    assert {c.chunk_id: c.text for c in chunks_of(view)} == before  # the old view is untouched
    assert "32 lidstaten" in " ".join(c.text for c in chunks_of(_open(cfg, fake_embedder)))


def test_bad_file_is_reported_and_keeps_existing_data(cfg, fake_embedder, docs, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    bad = tmp_path / "kapot.pdf"
    bad.write_bytes(b"%PDF-1.4 broken")
    rep = ingest([bad], cfg, fake_embedder, progress=False)
    assert rep.errors and rep.errors[0][0] == str(bad) and "PDF" in rep.errors[0][1]
    assert len(_open(cfg, fake_embedder).chunks.documents()) == 2


def _segment_files(cfg):
    return sorted(p.name for p in (Path(cfg.index_dir) / "segments").iterdir())


def test_crash_during_save_keeps_previous_index(cfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    n_before = len(_open(cfg, fake_embedder).chunks)
    files_before = _segment_files(cfg)
    extra = tmp_path / "extra.txt"
    extra.write_text("Finland en Zweden zijn toegetreden.", encoding="utf-8")
    import rag.stores.segments as seg

    real_save = seg.np.save

    def boom(path, *a, **k):  # the chunk segment is written, the sentence segment fails
        if Path(path).name.startswith("s-"):
            raise OSError("disk full (simulated)")
        real_save(path, *a, **k)

    monkeypatch.setattr(seg.np, "save", boom)
    with pytest.raises(OSError):
        ingest([extra], cfg, fake_embedder, progress=False)
    monkeypatch.undo()
    after = _open(cfg, fake_embedder)
    assert len(after.chunks) == n_before and after.chunks.find_document(str(extra)) is None
    assert _segment_files(cfg) == files_before  # the failed commit's files are gone
    ingest([extra], cfg, fake_embedder, progress=False)  # the next commit works (the lock was given back)
    assert _open(cfg, fake_embedder).chunks.find_document(str(extra)) is not None


def test_interrupt_before_the_transaction_commits_keeps_previous(cfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    import rag.stores.local as local

    def boom(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(local.LocalWriter, "_maintain", boom)  # runs right after COMMIT
    real_set = local.LocalWriter._set_meta

    def interrupt_at_generation(self, key, value):
        if key == "generation":
            raise KeyboardInterrupt  # the last statement before COMMIT
        real_set(self, key, value)

    monkeypatch.setattr(local.LocalWriter, "_set_meta", interrupt_at_generation)
    extra = tmp_path / "extra.txt"
    extra.write_text("Finland en Zweden zijn toegetreden.", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        ingest([extra], cfg, fake_embedder, progress=False)
    monkeypatch.undo()
    store = _open(cfg, fake_embedder)
    assert len(store.chunks.documents()) == 2 and store.version == "gen-1"
    assert len(store.vectors) == len(store.chunks) == 2


def test_old_snapshot_format_is_one_clear_error(cfg, fake_embedder):
    root = Path(cfg.index_dir)
    (root / "v-20250101-000000-abcdef").mkdir(parents=True)
    (root / "CURRENT").write_text("v-20250101-000000-abcdef\n")
    with pytest.raises(StoreError, match="older version.*re-ingest"):
        _open(cfg, fake_embedder)


def test_set_meta_changes_title_date_and_keywords(cfg, fake_embedder, docs):
    ingest([docs], cfg, fake_embedder, progress=False)
    store = _open(cfg, fake_embedder)
    w = store.writer()
    path = str((docs / "navo.txt").resolve())
    assert w.set_meta(path, title="Zilveren jubileum", date="2024-04-04") and not w.set_meta("/nope.txt", title="x")
    w.commit()
    new = _open(cfg, fake_embedder)
    info = new.chunks.find_document("navo.txt")
    assert (info.title, info.date) == ("Zilveren jubileum", "2024-04-04")
    assert {c.title for c in chunks_of(new) if c.doc_id == info.doc_id} == {"Zilveren jubileum"}
    assert new.keywords.has_term("zilveren") and not store.keywords.has_term("zilveren")  # old view: its snapshot
    assert new.keywords.top("zilveren", 5)[0][0].startswith(info.doc_id)


def test_other_embedder_is_refused(cfg, fake_embedder, docs):
    ingest([docs], cfg, fake_embedder, progress=False)
    with pytest.raises(EmbedderMismatchError, match="fake-embedder"):
        open_store(cfg, "another-model", fake_embedder.dim)


def test_config_round_trip_env_and_validation(monkeypatch):
    c = RagConfig().with_overrides(top_k=7, retriever="bm25")
    assert c.retrieval.top_k == 7 and c.top_k == 7
    assert RagConfig.from_dict(c.to_dict()) == c
    monkeypatch.setenv("RAG_TOP_K", "9")
    monkeypatch.setenv("RAG_INDEX", "/tmp/x")
    monkeypatch.setenv("RAG_DIVERSIFY", "true")
    monkeypatch.setenv("RAG_MAX_UPLOAD_MB", "3")
    e = RagConfig.from_env()
    assert e.top_k == 9 and e.index_dir == "/tmp/x" and e.diversify is True and e.serving.max_upload_mb == 3
    with pytest.raises(ConfigError, match=r"mode \(RAG_MODE\): 'magic' is not one of generate, extractive"):
        RagConfig().with_overrides(mode="magic")
    with pytest.raises(ConfigError, match="top_k"):
        RagConfig().with_overrides(top_k=0)
    monkeypatch.setenv("RAG_TOP_K", "many")
    with pytest.raises(ConfigError, match="RAG_TOP_K"):
        RagConfig.from_env()
    with pytest.raises(ConfigError, match="no calibration for embedder"):
        RagConfig().with_overrides(embedder="/some/other/model")
    assert RagConfig().with_overrides(embedder="/x", calibration="e5-small").calib.relevance_scale == 0.02


def test_unknown_vector_store_is_one_clear_error(cfg, fake_embedder):
    with pytest.raises(ConfigError, match="vector_store .*'nope' is not one of .*faiss"):
        open_store(cfg.with_overrides(vector_store="nope"), fake_embedder.id, fake_embedder.dim)


def test_faiss_kind_by_size_and_override():
    from rag.stores.faiss_index import ANN_MIN, FaissParams, choose_kind

    p = FaissParams(hnsw_min=5_000, ivf_min=20_000, ivfpq_min=80_000)
    assert [choose_kind(n, p) for n in (10, 4_999, 5_000, 19_999, 20_000, 80_000)] == \
        ["flat", "flat", "hnsw", "hnsw", "ivf", "ivfpq"]
    forced = FaissParams(kind="ivf")
    assert choose_kind(ANN_MIN - 1, forced) == "flat" and choose_kind(ANN_MIN, forced) == "ivf"
    with pytest.raises(ConfigError, match="faiss_index .*'annoy' is not one of auto, flat, hnsw, ivf, ivfpq"):
        RagConfig().with_overrides(faiss_index="annoy")


class CountingVectors:
    """A VectorIndex wrapper that counts searches (a backend's own vector index, swapped in)."""

    searches = 0

    def __init__(self, inner):
        self.inner, self.dim = inner, inner.dim

    def __len__(self):
        return len(self.inner)

    def add(self, ids, vectors):
        self.inner.add(ids, vectors)

    def delete(self, ids):
        self.inner.delete(ids)

    def search(self, qvec, k, allowed=None):
        CountingVectors.searches += 1
        return self.inner.search(qvec, k, allowed)

    def get(self, ids):
        return self.inner.get(ids)

    def save(self, folder):
        self.inner.save(folder)


def test_a_backend_registered_through_the_factory_answers_end_to_end(cfg, fake_embedder, docs, monkeypatch):
    from rag import Assistant
    from rag.stores.local import LocalStore
    from tests.fakes import ScriptedGenerator

    def opener(c, e, d):
        store = LocalStore.open(c.index_dir, e, d, name="counting")
        store.vectors = CountingVectors(store.vectors)
        return store

    monkeypatch.setattr(factory, "_BACKENDS", dict(factory._BACKENDS))
    factory.register("counting", opener)
    c = cfg.with_overrides(vector_store="counting", refuse_below=0.0, prompt_margin=1.0)
    a = Assistant(c, embedder=fake_embedder, generator=ScriptedGenerator(["De NAVO bestaat 75 jaar [1]."]))
    rep = a.ingest([docs])
    assert len(rep.added) == 2 and a.info()["backend"] == "counting"
    assert isinstance(a.store.vectors, CountingVectors) and isinstance(a.store.vectors, VectorIndex)
    CountingVectors.searches = 0
    ans = a.ask("Hoe lang bestaat de NAVO?")
    assert CountingVectors.searches == 1
    assert not ans.refused and ans.text == "De NAVO bestaat 75 jaar [1]." and ans.citations[0].doc == "navo.txt"
    cit = ans.citations[0]
    assert a.document_text(cit.doc_id)[cit.start:cit.end] == cit.quote
    assert "navo.txt" in [h.chunk.doc for h in ans.passages]
