"""Ingest on a local Ray instance gives the same index and the same report as the single-process ingest."""

import shutil

import numpy as np
import pytest

from tests.conftest import ROOT, SEEDS, chunks_of

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray  # starts a local Ray instance (~20-45 s)


def fake_embedder_factory(cfg):
    """What each Ray actor runs to build its embedder (the real default reads the model from the config)."""
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture(scope="module")
def local_ray():
    from rag.config import RagConfig
    from rag.ingest.ray_pipeline import init_ray

    # the workers import this test package from the checkout
    started = init_ray(RagConfig.from_env(), runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    for f in SEEDS.iterdir():
        shutil.copy(f, d / f.name)
    (d / "kapot.pdf").write_bytes(b"%PDF-1.4 broken")
    (d / "leeg.txt").write_text("")
    (d / "zz_spaties.md").write_text("   \n\n  ")
    return [d, tmp_path / "bestaat_niet.txt"]


def _store(cfg):
    from rag.stores.factory import open_store

    return open_store(cfg, "fake-embedder", 64)


def _summary(rep):
    d = rep.to_dict()
    return {k: d[k] for k in ("added", "updated", "skipped", "errors", "chunks")} | {"passages": rep.passages}


def test_ray_ingest_equals_ingest(local_ray, corpus, tmp_path):
    from rag.config import RagConfig
    from rag.ingest.pipeline import ingest
    from rag.ingest.ray_pipeline import ingest_ray
    from tests.fakes import FakeEmbedder

    cfg_a = RagConfig.from_env(index_dir=str(tmp_path / "a"))
    cfg_b = cfg_a.with_overrides(index_dir=str(tmp_path / "b"), ray_actors=2, embed_batch_size=3)
    seen_plain, seen = [], []
    plain = ingest(corpus, cfg_a, FakeEmbedder(), progress=False, on_file=lambda f, s: seen_plain.append((f, s)))
    dist = ingest_ray(corpus, cfg_b, embedder_factory=fake_embedder_factory, on_file=lambda f, s: seen.append((f, s)))

    assert _summary(dist) == _summary(plain)
    assert len(plain.added) == len(list(SEEDS.iterdir())) and dist.chunks > 20
    reasons = dict(dist.errors)
    assert sorted(n.rsplit("/", 1)[-1] for n in reasons) == ["bestaat_niet.txt", "kapot.pdf", "leeg.txt",
                                                             "zz_spaties.md"]
    assert sorted(seen) == sorted(seen_plain)  # the same per-file lines
    assert sum(s.startswith("error") for _, s in seen) == 4 and sum(s == "added" for _, s in seen) == len(plain.added)

    a, b = _store(cfg_a), _store(cfg_b)
    assert [(d.doc_id, d.path, d.title, d.n_chunks) for d in a.chunks.documents()] == \
        [(d.doc_id, d.path, d.title, d.n_chunks) for d in b.chunks.documents()]
    ca, cb = chunks_of(a), chunks_of(b)
    assert [(c.chunk_id, c.text, c.start, c.end) for c in ca] == [(c.chunk_id, c.text, c.start, c.end) for c in cb]
    ids = [c.chunk_id for c in ca]
    assert np.allclose(a.vectors.get(ids), b.vectors.get(ids), atol=1e-5)
    sids = [f"{c.chunk_id}#{i}" for c in ca for i in range(len(c.sentences))]
    assert len(b.sentences) == len(sids)
    assert np.allclose(a.sentences.get(sids), b.sentences.get(sids), atol=1e-5)

    # a second run finds every file unchanged and writes nothing, like the plain ingest
    again = ingest_ray(corpus, cfg_b, embedder_factory=fake_embedder_factory)
    assert sorted(again.skipped) == sorted(plain.added) and not again.added and len(again.errors) == 4


def test_ray_ingest_only_bad_files_keeps_the_index(local_ray, tmp_path):
    from rag.config import RagConfig
    from rag.ingest.ray_pipeline import ingest_ray

    cfg = RagConfig.from_env(index_dir=str(tmp_path / "i"))
    good = tmp_path / "a.txt"
    good.write_text("De NAVO bestaat 75 jaar en viert dat in Washington.", encoding="utf-8")
    assert ingest_ray([good], cfg, embedder_factory=fake_embedder_factory).added == [str(good)]
    bad = tmp_path / "kapot.pdf"
    bad.write_bytes(b"%PDF-1.4 broken")
    rep = ingest_ray([bad], cfg, embedder_factory=fake_embedder_factory)
    assert rep.errors and rep.errors[0][0] == str(bad) and not rep.added
    assert [d.name for d in _store(cfg).chunks.documents()] == ["a.txt"]
