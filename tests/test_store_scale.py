"""The default store's scaling parts, with small numbers: BM25 in SQLite scores exactly as bm25s,
vector segments stay exact through many adds/removes (merges, compaction, tombstones), a write
touches only what changes, and trained FAISS structures are saved and read back, not rebuilt.
(Timings at 100k chunks are in bench/store_writes.py, not here.)"""

import zlib

import numpy as np
import pytest

from rag.stores import segments
from rag.stores.faiss_index import ANN_MIN, FaissParams, build_faiss, recall_at_k
from rag.stores.local import LocalStore
from rag.types import Chunk, Document, Sentence

DIM = 16
WORDS = ("minister kabinet begroting vredesmissie navo irak zweden finland verdrag stemming parlement "
         "oorlog akkoord defensie uitgaven gemeente water dijk hoogwater provincie").split()


def make_doc(name: str, n_chunks: int, rng, root: str = "/docs") -> Document:
    parts = [" ".join(rng.choice(WORDS, size=6)) + "." for _ in range(2 * n_chunks)]
    text = " ".join(parts)
    return Document(doc_id=f"d{zlib.crc32(name.encode()):010d}", path=f"{root}/{name}", name=name, text=text,
                    title=name.split(".")[0], sha256=str(rng.integers(1 << 30)))


def chunks_for(doc: Document) -> list[Chunk]:
    """Two sentences per chunk, offsets into ``doc.text``."""
    sents, pos = [], 0
    for s in doc.text.split(". "):
        s = s if s.endswith(".") else s + "."
        start = doc.text.index(s, pos)
        sents.append(Sentence(s, start, start + len(s)))
        pos = start + len(s)
    out = []
    for i in range(0, len(sents), 2):
        ss = sents[i:i + 2]
        out.append(Chunk(chunk_id=f"{doc.doc_id}-{i // 2:04d}", doc_id=doc.doc_id, doc=doc.name, path=doc.path,
                         title=doc.title, date="", start=ss[0].start, end=ss[-1].end,
                         text=doc.text[ss[0].start:ss[-1].end], ordinal=i // 2, sentences=ss))
    return out


def unit(rng, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def open_store(root, params=None) -> LocalStore:
    return LocalStore.open(root, "fake", DIM, params)


def test_sql_bm25_scores_equal_bm25s(tmp_path):
    import bm25s

    from rag.stores.bm25 import BM25Index, chunk_terms

    rng = np.random.default_rng(1)
    w = open_store(tmp_path).writer()
    for n in range(12):
        d = make_doc(f"doc{n}.txt", 3, rng)
        cs = chunks_for(d)
        w.upsert(d, cs, unit(rng, len(cs)))
    w.commit()
    store = open_store(tmp_path)
    chunks = list(store.chunks)
    ids, texts = [c.chunk_id for c in chunks], [c.keyword_text() for c in chunks]
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index([chunk_terms(c) for c in chunks], show_progress=False)
    mem = BM25Index.build(ids, texts)
    for query in ("navo irak", "begroting begroting defensie", "hoogwater in de provincie", "doc3 kabinet"):
        from rag.text import content_terms

        q = [t for t in content_terms(query) if t in ref.vocab_dict]
        want = dict(zip(ids, ref.get_scores(q)))
        got = dict(store.keywords.top(query, len(ids)))
        assert got and set(got) == {c for c, s in want.items() if s > 0}
        assert all(abs(got[c] - want[c]) < 1e-4 * max(1.0, want[c]) for c in got)
        mem_scores = dict(mem.top(query, len(ids)))
        assert set(mem_scores) == set(got) and all(abs(mem_scores[c] - got[c]) < 1e-9 for c in got)
    allowed = set(ids[:4])
    assert {c for c, _ in store.keywords.top("navo minister kabinet", 50, allowed)} <= allowed


def test_sql_bm25_posting_cache_is_bounded_and_changes_no_score(tmp_path, monkeypatch):
    from rag.stores import bm25

    rng = np.random.default_rng(3)
    w = open_store(tmp_path).writer()
    for n in range(10):
        d = make_doc(f"doc{n}.txt", 3, rng)
        w.upsert(d, chunks_for(d), unit(rng, 3))
    w.commit()
    queries = ["navo irak", "begroting defensie uitgaven", "navo irak", "hoogwater provincie water dijk", "navo"]
    want = [open_store(tmp_path).keywords.top(q, 30) for q in queries]  # each on a fresh snapshot: nothing cached
    monkeypatch.setattr(bm25, "CACHE_POSTINGS", 1000)  # room for every list: a repeated query reads no postings
    kw = open_store(tmp_path).keywords
    reads = []
    rows = kw._rows
    kw._rows = lambda sql, params=(): (reads.append(sql), rows(sql, params))[1]
    assert [kw.top(q, 30) for q in queries] == want
    n = sum("bm25_postings" in r for r in reads)
    assert n == 3  # one read per query with a term not seen before; the repeated "navo irak" and "navo" read none
    assert [kw.top(q, 30) for q in queries] == want and sum("bm25_postings" in r for r in reads) == n
    monkeypatch.setattr(bm25, "CACHE_POSTINGS", 12)  # too small for most lists: bounded, scores unchanged
    kw = open_store(tmp_path).keywords
    for _ in range(3):
        for q, w_ in zip(queries, want):
            assert kw.top(q, 30) == w_
            assert kw._cached == sum(len(e[1]) for e in kw._cache.values()) <= 12


def _brute(live: dict[str, np.ndarray], q: np.ndarray, k: int) -> list[str]:
    ids = sorted(live)
    s = np.stack([live[i] for i in ids]) @ q
    return [ids[i] for i in np.argsort(-s, kind="stable")[:k]]


def test_segments_stay_exact_through_adds_updates_removes_merges(tmp_path):
    rng = np.random.default_rng(2)
    live: dict[str, np.ndarray] = {}
    slive: dict[str, np.ndarray] = {}
    docs: dict[str, Document] = {}
    queries = unit(rng, 5)
    for step in range(60):
        w = open_store(tmp_path).writer()
        name = f"f{rng.integers(25)}.txt"  # repeats: updates of the same path
        if step % 7 == 6 and docs:  # now and then a removal
            victim = sorted(docs)[int(rng.integers(len(docs)))]
            assert w.remove(docs[victim].path)
            for c in [c for c in live if c.startswith(docs[victim].doc_id)]:
                del live[c]
            for s in [s for s in slive if s.startswith(docs[victim].doc_id)]:
                del slive[s]
            del docs[victim]
        else:
            d = make_doc(name, int(rng.integers(1, 6)), rng)
            cs = chunks_for(d)
            v, sv = unit(rng, len(cs)), unit(rng, sum(len(c.sentences) for c in cs))
            w.upsert(d, cs, v, sv)
            for c in [c for c in live if c.startswith(d.doc_id)]:
                del live[c]
            for s in [s for s in slive if s.startswith(d.doc_id)]:
                del slive[s]
            live.update({c.chunk_id: v[i] for i, c in enumerate(cs)})
            sids = [f"{c.chunk_id}#{i}" for c in cs for i in range(len(c.sentences))]
            slive.update({s: sv[i] for i, s in enumerate(sids)})
            docs[name] = d
        w.commit()
        store = open_store(tmp_path)
        assert len(store.vectors) == len(live) == len(store.chunks) and len(store.sentences) == len(slive)
        for q in queries:
            assert [c for c, _ in store.vectors.search(q, 5)] == _brute(live, q, 5)
            assert [c for c, _ in store.sentences.search(q, 7)] == _brute(slive, q, 7)
        some = sorted(live)[:3]
        assert np.allclose(store.vectors.get(some), np.stack([live[c] for c in some]))
        allowed = set(sorted(live)[::2])
        assert [c for c, _ in store.vectors.search(queries[0], 4, allowed)] == \
            _brute({c: live[c] for c in allowed}, queries[0], 4)
    segs = store._snap.rows("SELECT kind, n_rows, n_live FROM segments")
    tiers: dict[tuple[int, int], int] = {}
    for kind, rows, n_live in segs:
        assert n_live >= (1 - segments.DEAD_RATIO) * rows  # compaction keeps dead rows bounded
        tiers[kind, segments._tier(n_live)] = tiers.get((kind, segments._tier(n_live)), 0) + 1
    assert max(tiers.values()) < segments.MERGE_FACTOR  # merging keeps the segment count bounded
    on_disk = {p.stem for p in (tmp_path / "segments").iterdir()}
    assert on_disk == {n for (n,) in store._snap.rows("SELECT name FROM segments")}  # no leftovers


def test_a_write_touches_only_what_changes(tmp_path):
    rng = np.random.default_rng(3)
    w = open_store(tmp_path).writer()
    for n in range(300):  # one big first commit: 300 docs, 900 chunks
        d = make_doc(f"big{n}.txt", 3, rng)
        cs = chunks_for(d)
        w.upsert(d, cs, unit(rng, len(cs)), unit(rng, 2 * len(cs)))
    w.commit()
    seg_dir = tmp_path / "segments"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in seg_dir.iterdir()}
    w = open_store(tmp_path).writer()
    d = make_doc("new.txt", 2, rng)
    w.upsert(d, chunks_for(d), unit(rng, 2), unit(rng, 4))
    w.commit()
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in seg_dir.iterdir()}
    assert all(after[n] == before[n] for n in before)  # the big segments are not rewritten
    added = [seg_dir / n for n in set(after) - set(before)]
    assert len(added) == 2 and sum(p.stat().st_size for p in added) < 1000  # 2 + 4 rows of 16 floats
    w = open_store(tmp_path).writer()
    assert w.remove(d.path) and w.remove("/docs/big7.txt")
    w.commit()
    assert all(after[n] == (p.stat().st_ino, p.stat().st_mtime_ns)
               for n in before if (p := seg_dir / n).exists())
    store = open_store(tmp_path)
    assert len(store.chunks.documents()) == 299 and len(store.vectors) == 897 and len(store.sentences) == 1794


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq"])
def test_trained_structure_is_saved_and_read_back_without_rebuilding(tmp_path, monkeypatch, kind):
    rng = np.random.default_rng(4)
    params = FaissParams(kind=kind, nprobe=8)
    centres = unit(rng, 30)
    vecs = centres[rng.integers(0, 30, ANN_MIN + 200)] + 0.3 * unit(rng, ANN_MIN + 200)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    w = open_store(tmp_path, params).writer()
    pos = 0
    for n in range(120):  # 1200 chunk vectors in one commit: one segment of the forced kind
        d = make_doc(f"x{n}.txt", 10, rng)
        cs = chunks_for(d)
        w.upsert(d, cs, vecs[pos:pos + len(cs)])
        pos += len(cs)
    w.commit()
    import faiss

    import rag.stores.segments as seg

    def no_build(*a, **k):
        raise AssertionError("rebuilt on load")

    monkeypatch.setattr(seg, "build_faiss", no_build)
    monkeypatch.setattr(seg, "_open_segments", seg.weakref.WeakValueDictionary())  # read from disk again
    store = open_store(tmp_path, params)
    want = {"hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat", "ivfpq": "IndexIVFPQ"}[kind]
    assert want in store.info()["vector_index"]
    (_, _, _, segment), = store.vectors._segs
    assert isinstance(segment.ann, faiss.Index) and segment.ann.is_trained and segment.ann.ntotal == pos
    ids = [c.chunk_id for c in store.chunks]
    got = store.vectors.search(vecs[7], 3)
    assert got[0][1] == pytest.approx(1.0, abs=1e-5) and np.allclose(store.vectors.get([got[0][0]])[0], vecs[7])
    assert len(ids) == pos


def test_recall_at_k_measures_an_approximate_index():
    rng = np.random.default_rng(5)
    x = unit(rng, 3000)
    q = unit(rng, 20)
    assert recall_at_k(None, x, q, 10) == 1.0  # exact search
    crippled = build_faiss(x, DIM, "ivf", FaissParams(nprobe=1))
    r = recall_at_k(crippled, x, q, 10, FaissParams(nprobe=1))
    assert 0.0 < r < 0.9  # one of ~200 lists visited: many true neighbours are missed
    assert recall_at_k(crippled, x, q, 10, FaissParams(nprobe=10_000)) == pytest.approx(1.0)
