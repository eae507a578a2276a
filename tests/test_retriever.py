"""Retriever modes, RRF, diversity, neighbour expansion, calibrated relevance and the reranker slot."""

import pytest

from rag.ingest import ingest
from rag.retriever import Retriever, calibrated_relevance, diversify, rrf
from rag.store import IndexStore


@pytest.fixture
def store(tmp_path, cfg, fake_embedder):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("De NAVO-missie in Irak wordt uitgebreid. Trainers gaan naar Bagdad. "
                             "Het mandaat blijft gelijk.", encoding="utf-8")
    (d / "b.txt").write_text("Duitsland zegt 600 miljoen euro toe voor granaten.", encoding="utf-8")
    (d / "c.txt").write_text("De missie in Irak neemt adviestaken over van de coalitie.", encoding="utf-8")
    ingest([d], cfg.with_overrides(chunk_chars=60, chunk_overlap_sentences=0), fake_embedder, progress=False)
    return IndexStore.open(cfg.index_dir, fake_embedder.id, fake_embedder.dim)


def test_rrf_hand_computed():
    fused = rrf([[1, 2, 3], [3, 1]], [1.0, 1.0], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_modes_find_the_number(store, cfg, fake_embedder, mode):
    hits = Retriever(cfg, store, fake_embedder).search("600 miljoen granaten", k=2, retriever=mode)
    assert hits[0].chunk.doc == "b.txt"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert 0.0 <= hits[0].relevance <= 1.0


def test_unknown_retriever_is_a_clear_error(store, cfg, fake_embedder):
    with pytest.raises(ValueError, match="unknown retriever"):
        Retriever(cfg, store, fake_embedder).search("x", retriever="magic")


def test_reranker_slot_reorders(store, cfg, fake_embedder):
    class ReverseAlphabet:
        def score(self, query, texts):
            return [-ord(t[0]) for t in texts]  # prefers texts starting early in the alphabet... reversed

    hits = Retriever(cfg, store, fake_embedder, reranker=ReverseAlphabet()).search("missie Irak", k=3)
    firsts = [h.chunk.text[0] for h in hits]
    assert firsts == sorted(firsts)


def test_diversify_round_robins_documents(store, cfg, fake_embedder):
    hits = Retriever(cfg, store, fake_embedder).search("missie Irak", k=6, retriever="bm25")
    div = diversify(hits, 2)
    assert len({h.chunk.doc for h in div}) == 2


def test_neighbour_expansion_merges_adjacent_chunks(store, cfg, fake_embedder):
    c = cfg.with_overrides(neighbours=1)
    hits = Retriever(c, store, fake_embedder).search("Trainers Bagdad", k=1, retriever="bm25")
    text = hits[0].chunk.text
    assert "Trainers gaan naar Bagdad." in text and "uitgebreid" in text and "mandaat" in text
    raw = store.texts[hits[0].chunk.doc_id]
    assert raw[hits[0].chunk.start:hits[0].chunk.end].startswith("De NAVO-missie")


def test_calibrated_relevance_is_monotonic():
    assert calibrated_relevance(0.90, 1.0) > calibrated_relevance(0.85, 0.5) > calibrated_relevance(0.75, 0.0)
    assert 0.0 <= calibrated_relevance(None, 0.0) <= 1.0
    assert calibrated_relevance(0.82, 0.0, "en") > calibrated_relevance(0.82, 0.0, "nl")
