"""The Milvus store (embedded milvus-lite in a tmp folder): ingest and answer, incremental writes,
reopening from disk, filtered retrieval, atomic commits, the same answers as the FAISS store, and
one-line errors."""

import fcntl
import json
import os
import shutil

import numpy as np
import pytest

from rag import Assistant
from rag.config import RagConfig
from rag.ingest.pipeline import ingest, remove
from rag.retrieve.retriever import Retriever
from rag.stores import milvus as mv
from rag.stores.base import ChunkStore, EmbedderMismatchError, KeywordIndex, Store, StoreError, VectorIndex
from rag.stores.factory import open_store
from tests.conftest import SEEDS, chunks_of, write_file
from tests.fakes import FakeEmbedder, ScriptedGenerator


@pytest.fixture
def mcfg(cfg):
    c = cfg.with_overrides(vector_store="milvus")
    yield c
    mv.disconnect(mv.resolve_uri(c.milvus_uri, c.index_dir))


def _open(cfg, emb):
    return open_store(cfg, emb.id, emb.dim)


def _rows(store, collection, filt):
    return store.client.query(collection, filter=filt, output_fields=["pk"])


def test_ingest_and_ask_scripted_and_extractive(mcfg, fake_embedder, docs, tmp_path):
    c = mcfg.with_overrides(refuse_below=0.0, prompt_margin=1.0)
    a = Assistant(c, embedder=fake_embedder, generator=ScriptedGenerator(["De NAVO bestaat 75 jaar [1]."]))
    rep = a.ingest([docs])
    assert len(rep.added) == 2 and not rep.errors
    assert (tmp_path / "index" / "milvus.db").exists() and (tmp_path / "index" / mv.META_FILE).exists()
    s = a.store
    assert isinstance(s, Store) and isinstance(s.vectors, VectorIndex) and isinstance(s.sentences, VectorIndex)
    assert isinstance(s.keywords, KeywordIndex) and isinstance(s.chunks, ChunkStore)
    info = a.info()
    assert (info["backend"], info["documents"], info["chunks"], info["sentences"]) == ("milvus", 2, 2, 3)
    assert info["version"] == "gen-1" and info["milvus_uri"] == str(tmp_path / "index" / "milvus.db")
    ans = a.ask("Hoe lang bestaat de NAVO?")
    assert not ans.refused and ans.text == "De NAVO bestaat 75 jaar [1]." and ans.citations[0].doc == "navo.txt"
    cit = ans.citations[0]
    assert a.document_text(cit.doc_id)[cit.start:cit.end] == cit.quote == "De NAVO bestaat 75 jaar."
    ext = a.ask("Waar werd het jubileum gevierd?", mode="extractive")
    assert not ext.refused and "Washington" in ext.text and ext.citations[0].doc == "navo.txt"
    e = ext.citations[0]
    assert a.document_text(e.doc_id)[e.start:e.end] == e.quote
    hit = a.search("missie in Irak", k=1)[0]
    assert hit.chunk.doc == "irak.txt" and hit.bm25 > 0 and 0 < hit.dense <= 1.0001


def test_incremental_update_remove_and_reopen_from_disk(mcfg, fake_embedder, docs):
    ingest([docs], mcfg, fake_embedder, progress=False)
    calls = fake_embedder.calls
    rep = ingest([docs], mcfg, fake_embedder, progress=False)
    assert len(rep.skipped) == 2 and fake_embedder.calls == calls  # nothing re-embedded or rewritten
    assert _open(mcfg, fake_embedder).version == "gen-1"
    write_file(docs, "navo.txt", "De NAVO telt 32 lidstaten. Zweden trad toe.")
    rep = ingest([docs], mcfg, fake_embedder, progress=False)
    assert rep.updated == [str(docs / "navo.txt")] and len(rep.skipped) == 1
    store = _open(mcfg, fake_embedder)
    texts = " ".join(c.text for c in chunks_of(store))
    assert "32 lidstaten" in texts and "75 jaar" not in texts
    navo = store.chunks.find_document("navo.txt")
    # the replaced rows are gone from Milvus, the new ones carry the new generation
    coll = store.vectors.collection
    assert [r["pk"] for r in _rows(store, coll, f'doc_id == "{navo.doc_id}"')] == [f"{navo.doc_id}-0000@2"]
    assert store.keywords.top("jubileum Washington", 5) == []
    assert [c for c, _ in store.keywords.top("Zweden", 5)] == [f"{navo.doc_id}-0000"]

    removed, missing = remove(["navo.txt", "bestaat-niet.txt"], store.writer())
    assert removed == [str((docs / "navo.txt").resolve())] and missing == ["bestaat-niet.txt"]
    # reopen from disk: a fresh milvus-lite server must load the collections before searching
    mv.disconnect(mv.resolve_uri(mcfg.milvus_uri, mcfg.index_dir))
    store = _open(mcfg, fake_embedder)
    assert store.exists and store.version == "gen-3"
    assert [c.doc for c in chunks_of(store)] == ["irak.txt"] and len(store.vectors) == 1
    irak = chunks_of(store)[0].chunk_id
    assert [cid for cid, _ in store.keywords.top("Irak", 5)] == [irak]
    assert [cid for cid, _ in store.vectors.search(fake_embedder.embed_queries(["Irak"])[0], 5)] == [irak]
    assert store.keywords.has_term("Irak") and store.keywords.has_term("NAVO-missie")
    assert not store.keywords.has_term("Washington") and not store.keywords.has_term("Zweden")
    assert _rows(store, coll, f'doc_id == "{navo.doc_id}"') == []
    v = store.vectors.get([irak])
    assert v.shape == (1, fake_embedder.dim) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    with pytest.raises(KeyError):
        store.sentences.get([f"{navo.doc_id}-0000#0"])


def test_filtered_retrieval_inside_both_searches(mcfg, fake_embedder, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(6):  # every document mentions the query words; only two are allowed
        write_file(d, f"d{i}.txt", f"De begroting van gemeente {i} steeg. De begroting werd besproken in de raad {i}.")
    ingest([d], mcfg, fake_embedder, progress=False)
    store = _open(mcfg, fake_embedder)
    wanted = [store.chunks.find_document(f"d{i}.txt").doc_id for i in (2, 5)]
    allowed = store.chunks.chunk_ids(wanted)
    assert allowed == {f"{w}-0000" for w in wanted}
    q = fake_embedder.embed_queries(["begroting van de gemeente"])[0]
    assert {c for c, _ in store.vectors.search(q, 5, allowed)} == allowed
    assert {c for c, _ in store.keywords.top("begroting", 5, allowed)} == allowed
    assert store.keywords.top("begroting", 5, set()) == [] and store.vectors.search(q, 5, set()) == []
    sids = {f"{c}#1" for c in allowed}
    assert {s for s, _ in store.sentences.search(q, 5, sids)} == sids
    hits = Retriever(mcfg, store, fake_embedder).search("begroting gemeente", k=5, doc_ids=wanted)
    assert sorted(h.chunk.doc_id for h in hits) == sorted(wanted)
    # exact scores: the stored vectors' inner products with the query
    for cid, score in store.vectors.search(q, 5, allowed):
        assert score == pytest.approx(float(store.vectors.get([cid])[0] @ q), abs=1e-5)


def test_same_answers_and_citations_as_faiss(cfg, mcfg, tmp_path):
    """Dense retrieval is the same search on both backends: identical answers and citations. BM25
    differs (Milvus analyses with its own tokenizer and Snowball version, IDF form and score scale),
    so hybrid answers agree on most questions, not all (over the 62 dev items: 57 of 62)."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    items = [json.loads(line) for line in open(SEEDS.parent / "eval" / "sets" / "dev.jsonl", encoding="utf-8")][:30]
    out = {}
    for name, c in (("faiss", cfg.with_overrides(index_dir=str(tmp_path / "f"))), ("milvus", mcfg)):
        a = Assistant(c.with_overrides(mode="extractive", refuse_below=0.0), embedder=FakeEmbedder(), generator=None)
        a.ingest([seeds])
        for mode in ("dense", "hybrid"):
            a.cfg = a.cfg.with_overrides(retriever=mode)
            a.reload()
            out[name, mode] = [(ans.refused, ans.text, [(x.doc, x.start, x.end) for x in ans.citations])
                               for it in items for ans in [a.ask(it["question"])]]
        out[name, "bm25"] = [[h.chunk.doc for h in a.search(it["question"], k=1, retriever="bm25")] for it in items]
    assert out["milvus", "dense"] == out["faiss", "dense"]
    assert sum(not r for r, *_ in out["milvus", "dense"]) >= 25  # answered, so citations were compared
    same = sum(f == m for f, m in zip(out["faiss", "hybrid"], out["milvus", "hybrid"]))
    assert same >= 0.8 * len(items)
    assert sum(f == m for f, m in zip(out["faiss", "bm25"], out["milvus", "bm25"])) >= 0.8 * len(items)


def test_an_open_view_never_sees_uncommitted_or_newer_rows(mcfg, fake_embedder, docs):
    ingest([docs], mcfg, fake_embedder, progress=False)
    old = _open(mcfg, fake_embedder)
    w = old.writer()
    extra = write_file(docs, "zweden.txt", "Zweden trad toe tot de NAVO.")
    from rag.ingest.loaders import load
    from rag.ingest.chunker import ChunkerConfig, chunk_document

    doc = load(extra)
    chunks = chunk_document(doc, ChunkerConfig())
    w.upsert(doc, chunks, fake_embedder.embed_passages([c.text for c in chunks]))
    assert old.keywords.top("Zweden", 5) == []  # nothing is written before commit
    w.commit()
    assert old.keywords.top("Zweden", 5) == [] and old.chunks.find_document("zweden.txt") is None
    q = fake_embedder.embed_queries(["Zweden"])[0]
    assert all(c in {x.chunk_id for x in chunks_of(old)} for c, _ in old.vectors.search(q, 10))
    new = _open(mcfg, fake_embedder)
    assert [c for c, _ in new.keywords.top("Zweden", 5)] == [chunks[0].chunk_id]


def test_failed_commit_keeps_previous_state_and_next_commit_cleans_up(mcfg, fake_embedder, docs, monkeypatch):
    ingest([docs], mcfg, fake_embedder, progress=False)
    write_file(docs, "navo.txt", "De NAVO telt 32 lidstaten.")

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mv, "content_terms", boom)  # rows are inserted, the switch fails midway
    with pytest.raises(OSError):
        ingest([docs], mcfg, fake_embedder, progress=False)
    monkeypatch.undo()
    store = _open(mcfg, fake_embedder)
    assert store.version == "gen-1" and "75 jaar" in " ".join(c.text for c in chunks_of(store))
    assert len(_rows(store, store.vectors.collection, "gen > 1")) == 1  # the orphan is there...
    assert [c for c, _ in store.keywords.top("lidstaten", 5)] == []  # ...but never visible
    ingest([docs], mcfg, fake_embedder, progress=False)
    store = _open(mcfg, fake_embedder)
    assert store.version == "gen-2"
    assert sorted(r["pk"][-2:] for r in _rows(store, store.vectors.collection, "gen >= 0")) == ["@1", "@2"]


def test_crash_after_the_switch_hides_replaced_rows_until_collected(mcfg, fake_embedder, docs, monkeypatch):
    ingest([docs], mcfg, fake_embedder, progress=False)
    write_file(docs, "navo.txt", "De NAVO telt 32 lidstaten sinds het jubileum.")
    calls = []
    real = mv.MilvusWriter._collect

    def skip_second(client, db, names):  # the clean-up after the switch never runs
        calls.append(1)
        if len(calls) == 1:
            real(client, db, names)

    monkeypatch.setattr(mv.MilvusWriter, "_collect", staticmethod(skip_second))
    ingest([docs], mcfg, fake_embedder, progress=False)
    monkeypatch.undo()
    store = _open(mcfg, fake_embedder)
    navo = store.chunks.find_document("navo.txt")
    assert len(_rows(store, store.vectors.collection, f'doc_id == "{navo.doc_id}"')) == 2  # old + new
    found = store.keywords.top("jubileum", 5)
    assert found == [(f"{navo.doc_id}-0000", found[0][1])] and len(found) == 1  # the old row is filtered out
    remove(["irak.txt"], store.writer())  # the next commit collects the leftovers
    store = _open(mcfg, fake_embedder)
    assert [r["pk"] for r in _rows(store, store.vectors.collection, "gen >= 0")] == [f"{navo.doc_id}-0000@2"]


def test_other_embedder_is_refused_and_uri_from_env(mcfg, fake_embedder, docs, monkeypatch, tmp_path):
    ingest([docs], mcfg, fake_embedder, progress=False)
    with pytest.raises(EmbedderMismatchError, match="fake-embedder"):
        open_store(mcfg, "another-model", fake_embedder.dim)
    monkeypatch.setenv("RAG_VECTOR_STORE", "milvus")
    monkeypatch.setenv("RAG_MILVUS_URI", str(tmp_path / "elders" / "m.db"))
    c = RagConfig.from_env(index_dir=str(tmp_path / "i2"))
    assert c.milvus_uri == str(tmp_path / "elders" / "m.db")
    try:
        ingest([docs], c, fake_embedder, progress=False)
        assert (tmp_path / "elders" / "m.db").exists() and _open(c, fake_embedder).info()["documents"] == 2
    finally:
        mv.disconnect(str(tmp_path / "elders" / "m.db"))


def test_one_line_errors_missing_package_unreachable_server_and_busy_file(cfg, fake_embedder, docs, monkeypatch,
                                                                         tmp_path):
    with pytest.raises(StoreError, match=r"^cannot reach Milvus at http://127\.0\.0\.1:9 \(milvus_uri / "
                                         r"RAG_MILVUS_URI\): [^\n]+$"):
        open_store(cfg.with_overrides(vector_store="milvus", milvus_uri="http://127.0.0.1:9"),
                   fake_embedder.id, fake_embedder.dim)
    busy = tmp_path / "busy.db"
    busy.mkdir()
    fd = os.open(busy / "LOCK", os.O_CREAT | os.O_RDWR)  # what milvus-lite locks while a process uses the file
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(StoreError, match=r"^milvus-lite database .*busy\.db is in use by another process"):
            ingest([docs], cfg.with_overrides(vector_store="milvus", milvus_uri=str(busy)), fake_embedder,
                   progress=False)
    finally:
        os.close(fd)
    monkeypatch.setitem(__import__("sys").modules, "pymilvus", None)
    with pytest.raises(StoreError, match=r"^vector_store 'milvus' needs the packages pymilvus and milvus-lite"):
        ingest([docs], cfg.with_overrides(vector_store="milvus"), fake_embedder, progress=False)


def test_a_second_writer_waits_for_the_lock_then_fails_with_one_line(mcfg, fake_embedder, docs):
    from rag.stores.lock import WriterLock, WriterLockTimeout

    ingest([docs], mcfg, fake_embedder, progress=False)
    write_file(docs, "navo.txt", "De NAVO telt 32 lidstaten.")
    with WriterLock(mcfg.index_dir):  # another writer is committing
        with pytest.raises(WriterLockTimeout, match="is still being written by pid"):
            ingest([docs], mcfg.with_overrides(write_lock_timeout=0.2), fake_embedder, progress=False)
    store = _open(mcfg, fake_embedder)
    assert store.version == "gen-1" and "75 jaar" in " ".join(c.text for c in chunks_of(store))
    ingest([docs], mcfg, fake_embedder, progress=False)
    assert "32 lidstaten" in " ".join(c.text for c in chunks_of(_open(mcfg, fake_embedder)))



def test_set_meta_rewrites_the_document_with_its_stored_vectors(mcfg, fake_embedder, docs):
    ingest([docs], mcfg, fake_embedder, progress=False)
    store = _open(mcfg, fake_embedder)
    info = store.chunks.find_document("navo.txt")
    before = store.vectors.get([f"{info.doc_id}-0000"])
    calls = fake_embedder.calls
    w = store.writer()
    assert w.set_meta(info.path, title="Zilveren jubileum", date="2024-04-04")
    assert not w.set_meta("/nope.txt", title="x")
    w.commit()
    assert fake_embedder.calls == calls  # nothing re-embedded
    new = _open(mcfg, fake_embedder)
    got = new.chunks.find_document("navo.txt")
    assert (got.title, got.date, got.added) == ("Zilveren jubileum", "2024-04-04", info.added)
    assert {c.title for c in chunks_of(new) if c.doc_id == info.doc_id} == {"Zilveren jubileum"}
    np.testing.assert_allclose(new.vectors.get([f"{info.doc_id}-0000"]), before, atol=1e-6)
    assert new.keywords.has_term("zilveren")
    assert [c for c, _ in new.keywords.top("zilveren jubileum", 5)][0].startswith(info.doc_id)
    assert new.chunks.document_text(info.doc_id) == (docs / "navo.txt").read_text(encoding="utf-8")
