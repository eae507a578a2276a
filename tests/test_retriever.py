"""Retriever modes, RRF, diversity, neighbour expansion, calibrated relevance and the reranker slot."""

import pytest

from rag.ingest.pipeline import ingest
from rag.answer.policy import RefusalPolicy
from rag.config import ConfigError, RagConfig
from rag.retrieve.retriever import Retriever, diversify, rrf, sentence_ranking
from rag.stores.base import Scope
from rag.stores.factory import open_store


@pytest.fixture
def store(tmp_path, cfg, fake_embedder):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("De NAVO-missie in Irak wordt uitgebreid. Trainers gaan naar Bagdad. "
                             "Het mandaat blijft gelijk.", encoding="utf-8")
    (d / "b.txt").write_text("Duitsland zegt 600 miljoen euro toe voor granaten.", encoding="utf-8")
    (d / "c.txt").write_text("De missie in Irak neemt adviestaken over van de coalitie.", encoding="utf-8")
    ingest([d], cfg.with_overrides(chunk_chars=60, chunk_overlap_sentences=0), fake_embedder, progress=False)
    return open_store(cfg, fake_embedder.id, fake_embedder.dim)


def test_rrf_hand_computed():
    fused = rrf([["a", "b", "c"], ["c", "a"]], [1.0, 1.0], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_modes_find_the_number(store, cfg, fake_embedder, mode):
    hits = Retriever(cfg, store, fake_embedder).search("600 miljoen granaten", k=2, retriever=mode)
    assert hits[0].chunk.doc == "b.txt"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    RefusalPolicy(cfg).annotate("600 miljoen granaten", hits)
    assert 0.0 <= hits[0].relevance <= 1.0


def test_unknown_retriever_is_a_clear_error(store, cfg, fake_embedder):
    with pytest.raises(ConfigError, match="'magic' is not one of"):
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
    raw = store.chunks.document_text(hits[0].chunk.doc_id)
    assert raw[hits[0].chunk.start:hits[0].chunk.end].startswith("De NAVO-missie")


def test_calibrated_relevance_is_monotonic():
    rel = RefusalPolicy(RagConfig()).relevance
    assert rel(0.90, 1.0) > rel(0.85, 0.5) > rel(0.75, 0.0)
    assert 0.0 <= rel(None, 0.0) <= 1.0
    assert rel(0.82, 0.0, "en") > rel(0.82, 0.0, "nl")
    # hand-computed: logistic((0.81-0.81)/0.02)=0.5 -> 0.6*0.5 + 0.4*0.5
    assert rel(0.81, 0.5, "nl") == pytest.approx(0.5)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_filter_is_applied_inside_retrieval(store, cfg, fake_embedder, mode):
    docs = {d.name: d.doc_id for d in store.chunks.documents()}
    only_c = {docs["c.txt"]}
    hits = Retriever(cfg, store, fake_embedder).search("missie Irak granaten", k=3, retriever=mode, doc_ids=only_c)
    assert hits and {h.chunk.doc for h in hits} == {"c.txt"}
    two = {docs["a.txt"], docs["c.txt"]}
    hits = Retriever(cfg, store, fake_embedder).search("600 miljoen granaten", k=2, retriever="dense", doc_ids=two)
    assert len(hits) == 2 and "b.txt" not in {h.chunk.doc for h in hits}  # still k passages, none from b


def test_sentence_ranking_orders_chunks_by_their_best_sentence(store, fake_embedder):
    qvec = fake_embedder.embed_queries(["Trainers gaan naar Bagdad."])[0]
    ranked = sentence_ranking(store, qvec, 10, None)
    assert len(ranked) == len(set(ranked))  # one entry per chunk, however many of its sentences match
    assert "Trainers gaan naar Bagdad." in store.chunks.chunk(ranked[0]).text
    scope = Scope(store.chunks, [store.chunks.find_document("b.txt").doc_id])
    only_b = store.chunks.chunk_ids([store.chunks.find_document("b.txt").doc_id])
    filtered = sentence_ranking(store, qvec, 10, scope)
    assert filtered and set(filtered) <= set(only_b)


def test_sentence_list_joins_the_fusion_only_when_weighted(store, cfg, fake_embedder):
    off = Retriever(cfg.with_overrides(sentence_weight=0.0), store, fake_embedder).search("Trainers Bagdad", k=3,
                                                                                         retriever="hybrid")
    on = Retriever(cfg.with_overrides(sentence_weight=1.0), store, fake_embedder).search("Trainers Bagdad", k=3,
                                                                                        retriever="hybrid")
    assert "Bagdad" in on[0].chunk.text
    assert on[0].score > off[0].score  # a third list adds its 1/(rrf_k + rank) share


def test_scope_looks_sentence_ids_up_once_and_only_when_asked(store):
    calls = []
    real = store.chunks.chunk

    class Counting:
        def chunk_ids(self, doc_ids):
            return store.chunks.chunk_ids(doc_ids)

        def chunk(self, cid):
            calls.append(cid)
            return real(cid)

    doc = store.chunks.find_document("a.txt").doc_id
    scope = Scope(Counting(), [doc])
    assert calls == [] and scope.chunk_ids == store.chunks.chunk_ids([doc])
    first = scope.sentence_ids
    n = len(calls)
    assert first == scope.sentence_ids and len(calls) == n == len(scope.chunk_ids)
    assert first and all(s.rpartition("#")[0] in scope.chunk_ids for s in first)
