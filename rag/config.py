"""One config object shared by the CLI, the UI and the eval runner.

Values come from defaults, then environment variables (``RAG_*``), then explicit overrides.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAG_CACHE", Path.home() / ".cache" / "ragnl")).expanduser()


@dataclass(frozen=True)
class RagConfig:
    # storage
    index_dir: str = str(PROJECT_ROOT / "index")
    cache_dir: str = str(default_cache_dir())
    # models: a known name ("e5-small", "qwen-1.5b", "qwen-0.5b") or a local path
    embedder: str = "e5-small"
    generator: str = "qwen-1.5b"
    embed_batch_size: int = 16
    embed_bf16: bool = True
    # chunking
    chunk_chars: int = 600
    chunk_overlap_sentences: int = 1
    # retrieval
    retriever: str = "hybrid"  # bm25 | dense | hybrid
    top_k: int = 5
    candidates: int = 30
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    diversify: bool = False
    neighbours: int = 0
    reranker: str = ""  # optional path to a local cross-encoder folder
    # answering
    mode: str = "generate"  # generate | extractive
    prompt_sentences: int = 5
    prompt_chars: int = 700
    prompt_margin: float = 0.08
    extractive_sentences: int = 2
    n_threads: int = 2
    n_ctx: int = 2048
    max_tokens: int = 120
    temperature: float = 0.0
    # refusal and citation support (tuned on eval/sets/dev.jsonl)
    refuse_below: float = 0.3
    support_threshold: float = 0.45
    require_question_terms: bool = True

    def with_overrides(self, **kw: Any) -> "RagConfig":
        kw = {k: v for k, v in kw.items() if v is not None}
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RagConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_env(cls, **overrides: Any) -> "RagConfig":
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get("RAG_" + f.name.upper())
            if raw is None:
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        if "index_dir" not in values and os.environ.get("RAG_INDEX"):
            values["index_dir"] = os.environ["RAG_INDEX"]
        if "cache_dir" not in values:
            values["cache_dir"] = str(default_cache_dir())
        return cls(**values).with_overrides(**overrides)
