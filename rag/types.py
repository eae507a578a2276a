"""Plain dataclasses that flow between the stages: documents, chunks, hits, citations, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    """One loaded file. ``text`` is the raw extracted text that all offsets point into."""

    doc_id: str
    path: str
    name: str
    text: str
    title: str = ""
    date: str = ""
    sha256: str = ""


@dataclass
class Sentence:
    """A sentence of a document; ``start``/``end`` are offsets into the document's raw text."""

    text: str
    start: int
    end: int


@dataclass
class Chunk:
    """A retrievable unit: cleaned text plus offsets back into the raw document text."""

    chunk_id: str
    doc_id: str
    doc: str  # file name
    path: str
    title: str
    date: str
    start: int
    end: int
    text: str
    ordinal: int = 0
    sentences: list[Sentence] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        d = dict(d)
        d["sentences"] = [Sentence(**s) for s in d.get("sentences", [])]
        return cls(**d)


@dataclass
class Hit:
    """A retrieved chunk with its scores. ``score`` is the fused ranking score; ``relevance``
    is a calibrated 0..1 estimate that refusal and the UI use."""

    chunk: Chunk
    score: float
    rank: int = 0
    dense: float | None = None
    bm25: float | None = None
    relevance: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "rank": self.rank,
            "doc": c.doc,
            "doc_id": c.doc_id,
            "chunk_id": c.chunk_id,
            "title": c.title,
            "date": c.date,
            "score": round(float(self.score), 6),
            "relevance": round(float(self.relevance), 4),
            "dense": None if self.dense is None else round(float(self.dense), 6),
            "bm25": None if self.bm25 is None else round(float(self.bm25), 6),
            "start": c.start,
            "end": c.end,
            "text": c.text,
        }


@dataclass
class DocInfo:
    """What the index knows about one document (the text itself is fetched by ``doc_id``)."""

    path: str
    doc_id: str
    name: str
    title: str = ""
    date: str = ""
    sha256: str = ""
    n_chunks: int = 0
    chars: int = 0
    added: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """A located sentence (or clause) of a document used as evidence.

    The answer stages number the evidence they show the model ``[n]``; when an answer sentence rests
    on one, it is cited under a new ``n`` (order of appearance). ``start``/``end`` point into the
    document's raw text, and ``quote`` is the cleaned text of that span. ``cos`` (embedder cosine to
    the question) and ``coverage`` (share of question terms present) are the signals it was ranked by.
    """

    n: int
    quote: str
    doc: str
    doc_id: str
    chunk_id: str
    title: str = ""
    date: str = ""
    start: int = 0
    end: int = 0
    score: float = 0.0
    cos: float = 0.0
    coverage: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("score", "cos", "coverage"):
            d[k] = round(float(d[k]), 4)
        return d


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    passages: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    mode: str = "generate"
    language: str = "nl"
    standalone_question: str = ""
    unsupported: list[str] = field(default_factory=list)
    raw_answer: str = ""
    refusal_reason: str = ""
    signals: dict[str, float] = field(default_factory=dict)  # model confidence the policy decided on

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.text,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "mode": self.mode,
            "language": self.language,
            "citations": [c.to_dict() for c in self.citations],
            "unsupported": self.unsupported,
            "raw_answer": self.raw_answer,
            "signals": self.signals,
            "passages": [h.to_dict() for h in self.passages],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class Token:
    """A streamed piece of the answer as the model writes it (before citations are bound)."""

    text: str


@dataclass(frozen=True)
class Final:
    """The last stream event: the finished, verified answer."""

    answer: Answer


StreamEvent = Token | Final
