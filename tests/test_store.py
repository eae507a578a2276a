import json

import numpy as np
import pytest

from rag.config import RagConfig
from rag.ingest import ingest, remove
from rag.retriever import Retriever
from rag.store import EmbedderMismatchError, IndexStore


def _write(d, name, text):
    p = d / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    _write(d, "navo.txt", "De NAVO bestaat 75 jaar. Het jubileum werd gevierd in Washington.")
    _write(d, "irak.txt", "Ministers stemden in met een uitbreiding van de NAVO-missie in Irak.")
    return d


def test_round_trip_and_search(cfg, fake_embedder, docs):
    rep = ingest([docs], cfg, fake_embedder, progress=False)
    assert sorted(rep.added) == sorted(str(p) for p in docs.iterdir()) and not rep.errors
    store = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    assert len(store.docs) == 2 and len(store.chunks) == 2
    assert store.vectors.shape == (2, fake_embedder.dim)
    hits = Retriever(cfg, store, fake_embedder).search("missie in Irak", k=2)
    assert hits[0].chunk.doc == "irak.txt"
    c = hits[0].chunk
    assert store.texts[c.doc_id][c.start : c.end] == c.text
    # chunks survive a JSON round trip
    from rag.types import Chunk

    assert Chunk.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_incremental_update_and_remove(cfg, fake_embedder, docs):
    ingest([docs], cfg, fake_embedder, progress=False)
    calls = fake_embedder.calls
    rep = ingest([docs], cfg, fake_embedder, progress=False)
    assert len(rep.skipped) == 2 and fake_embedder.calls == calls  # nothing re-embedded
    _write(docs, "navo.txt", "De NAVO telt 32 lidstaten. Zweden trad toe.")
    rep = ingest([docs], cfg, fake_embedder, progress=False)
    assert rep.updated == [str(docs / "navo.txt")] and len(rep.skipped) == 1
    store = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    texts = " ".join(c.text for c in store.chunks)
    assert "32 lidstaten" in texts and "75 jaar" not in texts
    removed, missing = remove(["navo.txt", "bestaat-niet.txt"], cfg, store)
    assert removed == [str((docs / "navo.txt").resolve())] and missing == ["bestaat-niet.txt"]
    store = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    assert [c.doc for c in store.chunks] == ["irak.txt"]
    assert len(store.bm25.scores("Irak")) == 1


def test_bad_file_is_reported_and_keeps_existing_data(cfg, fake_embedder, docs, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    bad = tmp_path / "kapot.pdf"
    bad.write_bytes(b"%PDF-1.4 broken")
    rep = ingest([bad], cfg, fake_embedder, progress=False)
    assert rep.errors and rep.errors[0][0] == str(bad) and "PDF" in rep.errors[0][1]
    store = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    assert len(store.docs) == 2


def test_crash_during_save_keeps_previous_index(cfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    before = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    n_before = len(before.chunks)
    extra = tmp_path / "extra.txt"
    extra.write_text("Finland en Zweden zijn toegetreden.", encoding="utf-8")

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    import rag.store as store_mod

    monkeypatch.setattr(store_mod.np, "save", boom)
    with pytest.raises(OSError):
        ingest([extra], cfg, fake_embedder, progress=False)
    monkeypatch.undo()
    after = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    assert len(after.chunks) == n_before and str(extra.resolve()) not in after.docs
    leftovers = [p.name for p in (tmp_path / "index").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    # and the next save works and cleans old versions
    ingest([extra], cfg, fake_embedder, progress=False)
    versions = [p for p in (tmp_path / "index").iterdir() if p.name.startswith("v-")]
    assert len(versions) == 1


def test_crash_before_pointer_switch_keeps_previous(cfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    import rag.store as store_mod

    def boom(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "_atomic_write_text", boom)
    extra = tmp_path / "extra.txt"
    extra.write_text("Finland en Zweden zijn toegetreden.", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        ingest([extra], cfg, fake_embedder, progress=False)
    monkeypatch.undo()
    after = IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)
    assert len(after.docs) == 2


def test_other_embedder_is_refused(cfg, fake_embedder, docs):
    ingest([docs], cfg, fake_embedder, progress=False)
    with pytest.raises(EmbedderMismatchError, match="fake-embedder"):
        IndexStore.open(cfg.index_dir, "another-model", fake_embedder.dim)


def test_config_round_trip_and_env(monkeypatch):
    c = RagConfig(top_k=7, retriever="bm25")
    assert RagConfig.from_dict(c.to_dict()) == c
    monkeypatch.setenv("RAG_TOP_K", "9")
    monkeypatch.setenv("RAG_INDEX", "/tmp/x")
    monkeypatch.setenv("RAG_DIVERSIFY", "true")
    e = RagConfig.from_env()
    assert e.top_k == 9 and e.index_dir == "/tmp/x" and e.diversify is True


def test_hnsw_chosen_for_large_corpora(monkeypatch):
    import rag.store as store_mod

    monkeypatch.setattr(store_mod, "FLAT_LIMIT", 10)
    vecs = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    assert type(store_mod._build_faiss(vecs, 8)).__name__ == "IndexHNSWFlat"
    assert type(store_mod._build_faiss(vecs[:5], 8)).__name__ == "IndexFlatIP"
