"""The store seam: round trip, incremental writes, atomic snapshots, embedder checks, config, and
a fake vector index swapped in through the factory answering end to end."""

import json

import numpy as np
import pytest

from rag.config import ConfigError, RagConfig
from rag.ingest.pipeline import ingest, remove
from rag.retrieve.retriever import Retriever
from rag.stores import factory
from rag.stores.base import ChunkStore, EmbedderMismatchError, KeywordIndex, Store, VectorIndex
from rag.stores.factory import open_store
from tests.conftest import chunks_of


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
    _write(docs, "navo.txt", "De NAVO telt 32 lidstaten. Zweden trad toe.")
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
    _write(docs, "navo.txt", "De NAVO telt 32 lidstaten.")
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


def test_crash_during_save_keeps_previous_index(cfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    n_before = len(_open(cfg, fake_embedder).chunks)
    extra = tmp_path / "extra.txt"
    extra.write_text("Finland en Zweden zijn toegetreden.", encoding="utf-8")

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    import rag.stores.faiss_index as fi

    monkeypatch.setattr(fi.np, "save", boom)
    with pytest.raises(OSError):
        ingest([extra], cfg, fake_embedder, progress=False)
    monkeypatch.undo()
    after = _open(cfg, fake_embedder)
    assert len(after.chunks) == n_before and after.chunks.find_document(str(extra)) is None
    leftovers = [p.name for p in (tmp_path / "index").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    ingest([extra], cfg, fake_embedder, progress=False)  # the next commit works and cleans old snapshots
    assert len([p for p in (tmp_path / "index").iterdir() if p.name.startswith("v-")]) == 1


def test_crash_before_pointer_switch_keeps_previous(cfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], cfg, fake_embedder, progress=False)
    import rag.stores.local as local

    def boom(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "atomic_write_text", boom)
    extra = tmp_path / "extra.txt"
    extra.write_text("Finland en Zweden zijn toegetreden.", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        ingest([extra], cfg, fake_embedder, progress=False)
    monkeypatch.undo()
    assert len(_open(cfg, fake_embedder).chunks.documents()) == 2


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


def test_hnsw_chosen_for_large_corpora(monkeypatch):
    import rag.stores.faiss_index as fi

    monkeypatch.setattr(fi, "FLAT_LIMIT", 10)
    vecs = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    assert type(fi.build_faiss(vecs, 8)).__name__ == "IndexHNSWFlat"
    assert type(fi.build_faiss(vecs[:5], 8)).__name__ == "IndexFlatIP"


class BruteForceIndex:
    """A fake VectorIndex: numpy brute force, saved as .npy; counts searches."""

    searches = 0

    def __init__(self, dim, ids=None, vecs=None):
        self.dim, self.ids = dim, list(ids or [])
        self.vecs = vecs if vecs is not None else np.zeros((0, dim), np.float32)

    def __len__(self):
        return len(self.ids)

    def add(self, ids, vectors):
        self.delete(ids)
        self.ids += list(ids)
        self.vecs = np.vstack([self.vecs, vectors])

    def delete(self, ids):
        keep = [i for i, c in enumerate(self.ids) if c not in set(ids)]
        self.ids, self.vecs = [self.ids[i] for i in keep], self.vecs[keep]

    def search(self, qvec, k, allowed=None):
        BruteForceIndex.searches += 1
        s = self.vecs @ qvec
        return [(self.ids[i], float(s[i])) for i in np.argsort(-s) if allowed is None or self.ids[i] in allowed][:k]

    def get(self, ids):
        return self.vecs[[self.ids.index(c) for c in ids]]

    def save(self, folder):
        folder.mkdir(parents=True)
        np.save(folder / "v.npy", self.vecs)
        (folder / "ids.json").write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, folder, dim):
        return cls(dim, json.loads((folder / "ids.json").read_text()), np.load(folder / "v.npy"))


def test_fake_vector_store_through_the_factory_answers_end_to_end(cfg, fake_embedder, docs, monkeypatch):
    from rag import Assistant
    from rag.stores.local import LocalStore
    from tests.fakes import ScriptedGenerator

    monkeypatch.setattr(factory, "_BACKENDS", dict(factory._BACKENDS))
    factory.register("brute", lambda c, e, d: LocalStore.open(c.index_dir, e, d, BruteForceIndex, BruteForceIndex.load,
                                                              name="brute"))
    c = cfg.with_overrides(vector_store="brute", refuse_below=0.0, prompt_margin=1.0)
    a = Assistant(c, embedder=fake_embedder, generator=ScriptedGenerator(["De NAVO bestaat 75 jaar [1]."]))
    rep = a.ingest([docs])
    assert len(rep.added) == 2 and a.info()["backend"] == "brute"
    assert isinstance(a.store.vectors, BruteForceIndex)
    BruteForceIndex.searches = 0
    ans = a.ask("Hoe lang bestaat de NAVO?")
    assert BruteForceIndex.searches == 1
    assert not ans.refused and ans.text == "De NAVO bestaat 75 jaar [1]." and ans.citations[0].doc == "navo.txt"
    cit = ans.citations[0]
    assert a.document_text(cit.doc_id)[cit.start:cit.end] == cit.quote
    assert "navo.txt" in [h.chunk.doc for h in ans.passages]
