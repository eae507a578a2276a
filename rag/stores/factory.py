"""One factory for stores, keyed by the config field ``vector_store`` (``RAG_VECTOR_STORE``).

A backend registers a function ``(cfg, embedder_id, dim) -> Store``. Tests and plug-ins add their
own with ``register``; an unknown name is one clear line listing the known ones.
"""

from __future__ import annotations

from typing import Callable

from ..config import ConfigError, RagConfig
from .base import Store

Opener = Callable[[RagConfig, str, int], Store]
_BACKENDS: dict[str, Opener] = {}


def register(name: str, opener: Opener) -> None:
    _BACKENDS[name] = opener


def backends() -> list[str]:
    return sorted(_BACKENDS)


def open_store(cfg: RagConfig, embedder_id: str, dim: int) -> Store:
    opener = _BACKENDS.get(cfg.vector_store)
    if opener is None:
        raise ConfigError(f"vector_store (RAG_VECTOR_STORE): '{cfg.vector_store}' is not one of "
                          f"{', '.join(backends())}")
    return opener(cfg, embedder_id, dim)


def _open_faiss(cfg: RagConfig, embedder_id: str, dim: int) -> Store:
    from .faiss_index import FaissParams
    from .local import LocalStore

    return LocalStore.open(cfg.index_dir, embedder_id, dim, FaissParams.from_config(cfg), cfg.write_lock_timeout)


register("faiss", _open_faiss)


def _open_milvus(cfg: RagConfig, embedder_id: str, dim: int) -> Store:
    from .milvus import MilvusStore

    return MilvusStore.open(cfg.index_dir, cfg.milvus_uri, embedder_id, dim, cfg.write_lock_timeout)


register("milvus", _open_milvus)
