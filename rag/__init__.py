"""ragnl: grounded, cited question answering over Dutch documents, fully offline."""

from .config import RagConfig
from .types import Answer, Chunk, Citation, Document, Hit

__all__ = ["RagConfig", "Answer", "Chunk", "Citation", "Document", "Hit"]
__version__ = "0.1.0"
