import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def fake_embedder():
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture
def cfg(tmp_path):
    from rag.config import RagConfig

    return RagConfig.from_env(index_dir=str(tmp_path / "index"))


@pytest.fixture(scope="session")
def real_cfg(tmp_path_factory):
    from rag.config import RagConfig

    return RagConfig.from_env(index_dir=str(tmp_path_factory.mktemp("real") / "index"))


@pytest.fixture(scope="session")
def real_embedder(real_cfg):
    from rag.stores.embedder import get_embedder
    from rag.modelprep.prepare import ModelMissingError

    try:
        return get_embedder(real_cfg)
    except ModelMissingError as e:
        pytest.fail(f"real embedder missing: {e}")


@pytest.fixture(scope="session")
def seeded_store(real_cfg, real_embedder, tmp_path_factory):
    """The bundled seeds ingested once with the real embedder."""
    from rag.ingest.pipeline import ingest
    from rag.stores.factory import open_store

    seeds = tmp_path_factory.mktemp("seeds")
    for f in SEEDS.iterdir():
        shutil.copy(f, seeds / f.name)
    ingest([seeds], real_cfg, real_embedder, progress=False)
    return open_store(real_cfg, real_embedder.id, real_embedder.dim)


def chunks_of(store):
    """Every chunk of a store, via the chunk-store seam."""
    return [c for d in store.chunks.documents() for c in _doc_chunks(store, d)]


def _doc_chunks(store, d):
    out, n = [], 0
    while (c := store.chunks.chunk(f"{d.doc_id}-{n:04d}")) is not None:
        out.append(c)
        n += 1
    return out


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
