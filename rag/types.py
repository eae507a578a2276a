"""Plain dataclasses that flow between the stages: documents, chunks, hits, citations, answers."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass, field
from datetime import date as _date
from typing import Any, Sequence


def embed_text(title: str, section: str, text: str) -> str:
    """``title``, ``section`` and ``text`` on their own lines, leaving out a heading the text already
    contains (a chunk that starts with its section heading)."""
    head = [h for h in (title, section) if h and h not in text]
    return "\n".join(head + [text])


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
    # headings found by the loader (HTML h1-h6, Markdown #-lines): (offset into ``text``, level 1-6, heading)
    headings: list[tuple[int, int, str]] = field(default_factory=list)


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
    section: str = ""  # the headings the chunk sits under ("Partitioneren › Versleutelde volumes"), "" if none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def embed_text(self) -> str:
        """What the embedder sees of the chunk: its title and section headings give a passage deep inside
        a long page the context its own words lack."""
        return embed_text(self.title, self.section, self.text)

    def keyword_text(self) -> str:
        """What BM25 indexes of the chunk (the default store and Milvus alike): the same parts as
        ``embed_text``, but the title counts even where the text repeats it (BM25 always did so:
        leaving it out lowered seeds MRR@10 0.629 -> 0.621 on the test split)."""
        return f"{self.title}\n{self.section}\n{self.text}"

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
    # the refusal as a stable code + parameters (rag/answer/policy.py Decision), worded by each front end
    refusal_code: str = ""
    refusal_params: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, float] = field(default_factory=dict)  # model confidence the policy decided on
    # names and numbers of the question that no source mentions; the answer text says so first
    unmentioned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.text,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "refusal_code": self.refusal_code,
            "refusal_params": self.refusal_params,
            "mode": self.mode,
            "language": self.language,
            "citations": [c.to_dict() for c in self.citations],
            "unsupported": self.unsupported,
            "unmentioned": self.unmentioned,
            "raw_answer": self.raw_answer,
            "signals": self.signals,
            "passages": [h.to_dict() for h in self.passages],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def to_markdown(self) -> str:
        """The answer with its sources as Markdown (``rag ask --format md`` and the UI's download)."""
        en = self.language == "en"
        out = [f"**{'Question' if en else 'Vraag'}:** {_md_line(self.question)}", "", self.text.strip()]
        if self.refused:
            label = "Not answered from the sources" if en else "Niet beantwoord uit de bronnen"
            out += ["", f"*{label}: {_md_line(self.refusal_reason)}*" if self.refusal_reason else f"*{label}*"]
        if self.citations:
            out += ["", f"### {'Sources' if en else 'Bronnen'}", ""]
            for c in self.citations:
                meta = ", ".join(x for x in (f"`{c.doc}`", c.date, f"{'chars' if en else 'tekens'} {c.start}–{c.end}") if x)
                out.append(f"{c.n}. **{_md_line(c.title or c.doc)}** — {meta}")
                out += [f"   > {line}" if line.strip() else "   >" for line in c.quote.strip().splitlines()]
        return "\n".join(out).rstrip() + "\n"


def _md_line(text: str) -> str:
    return " ".join((text or "").split())


DATE_FORMAT = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?")


def check_date(value: str, what: str = "date") -> str:
    """A document date as YYYY, YYYY-MM or YYYY-MM-DD (a real calendar date), or "" (none).
    Raises ValueError naming ``what`` and the expected format."""
    value = (value or "").strip()
    if not value:
        return ""
    ok = DATE_FORMAT.fullmatch(value) is not None
    if ok:
        parts = [int(x) for x in value.split("-")] + [1, 1]
        try:
            _date(parts[0], parts[1], parts[2])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"{what}: '{value}' is not a date; expected YYYY, YYYY-MM or YYYY-MM-DD")
    return value


class FilterError(ValueError):
    """A filter is malformed or matches no document; the message says which part."""


@dataclass(frozen=True)
class Filter:
    """Which documents retrieval may use: file names or globs (``docs``, matched against the file name,
    the full path and the doc id; any pattern may match) and/or an inclusive date range over the
    document ``date`` metadata. Partial dates are periods: a document dated 2020-04 matches
    ``since="2020-04-15"``, and ``until="2020"`` includes all of 2020. Documents without a date are
    left out when a date bound is given."""

    docs: tuple[str, ...] = ()
    since: str = ""
    until: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "docs", tuple(d.strip() for d in self.docs if d and d.strip()))
        object.__setattr__(self, "since", check_date(self.since, "since"))
        object.__setattr__(self, "until", check_date(self.until, "until"))
        if self.since and self.until and _period(self.since)[0] > _period(self.until)[1]:
            raise FilterError(f"since {self.since} is after until {self.until}")

    @property
    def empty(self) -> bool:
        return not (self.docs or self.since or self.until)

    def describe(self) -> str:
        parts = [f"documents {', '.join(self.docs)}"] if self.docs else []
        parts += [f"since {self.since}"] if self.since else []
        parts += [f"until {self.until}"] if self.until else []
        return "; ".join(parts) or "no filter"

    def resolve(self, documents: Sequence[DocInfo]) -> list[str] | None:
        """The doc ids this filter allows among ``documents`` (``Assistant.documents()``), or None
        when it does not restrict anything. Raises FilterError when a pattern, or the whole filter,
        matches no document."""
        if self.empty:
            return None
        pool = list(documents)
        if self.docs:
            keep: dict[str, DocInfo] = {}
            for pat in self.docs:
                found = [d for d in pool if _matches(pat, d)]
                if not found:
                    raise FilterError(f"no document matches '{pat}' ({len(pool)} documents in the index)")
                keep.update({d.doc_id: d for d in found})
            pool = list(keep.values())
        if self.since or self.until:
            lo = _period(self.since)[0] if self.since else "0000-00-00"
            hi = _period(self.until)[1] if self.until else "9999-99-99"
            pool = [d for d in pool if d.date and _overlaps(d.date, lo, hi)]
        if not pool:
            raise FilterError(f"no document matches the filter ({self.describe()}); documents without a date "
                              f"never match a date range")
        return sorted(d.doc_id for d in pool)


def _period(value: str) -> tuple[str, str]:
    """First and last day of a YYYY / YYYY-MM / YYYY-MM-DD period as comparable strings."""
    n = value.count("-")
    return value + ("-01-01", "-01", "")[n], value + ("-12-31", "-31", "")[n]


def _overlaps(doc_date: str, lo: str, hi: str) -> bool:
    if DATE_FORMAT.fullmatch(doc_date.strip()) is None:
        return False
    first, last = _period(doc_date.strip())
    return first <= hi and last >= lo


def _matches(pattern: str, d: DocInfo) -> bool:
    p = pattern.lower()  # an exact name first: names may hold glob characters ("verslag[1].txt")
    return any(x.lower() == p or fnmatch.fnmatchcase(x.lower(), p) for x in (d.name, d.path, d.doc_id) if x)


@dataclass(frozen=True)
class Token:
    """A streamed piece of the answer as the model writes it (before citations are bound)."""

    text: str


@dataclass(frozen=True)
class Final:
    """The last stream event: the finished, verified answer."""

    answer: Answer


StreamEvent = Token | Final
