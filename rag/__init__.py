"""ragnl: grounded, cited question answering over Dutch documents, fully offline.

The public API is ``Assistant`` (see ``rag.assistant``) configured by ``RagConfig``. Stages:
``ingest`` (load, clean, sentences, chunks) -> ``stores`` (embedder, vector/keyword/chunk stores
behind protocols) -> ``retrieve`` (hybrid search, follow-ups) -> ``answer`` (evidence, refusal
policy, generation, citation binding). ``modelprep`` prepares the offline models.
"""

from .config import ConfigError, RagConfig
from .types import Answer, Chunk, Citation, DocInfo, Document, Final, Hit, StreamEvent, Token

__all__ = ["Assistant", "RagConfig", "ConfigError", "Answer", "Chunk", "Citation", "DocInfo", "Document", "Final",
           "Hit", "StreamEvent", "Token"]
__version__ = "0.2.0"


def __getattr__(name: str):
    if name == "Assistant":  # imported lazily: it pulls in numpy and the store backends
        from .assistant import Assistant

        return Assistant
    raise AttributeError(name)
