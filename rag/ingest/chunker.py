"""Sentence-aware chunking with raw-text offsets.

Chunks are packed from whole sentences up to ``max_chars`` and overlap by whole sentences, so
a fact is never cut in half and every chunk maps back to an exact span of the source file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import sentences
from .clean import CleanText, clean, is_paged
from ..types import Chunk, Document, Sentence


@dataclass(frozen=True)
class ChunkerConfig:
    max_chars: int = 600
    overlap_sentences: int = 1


def _split_long(text: str, a: int, b: int, max_chars: int) -> list[tuple[int, int]]:
    """Split an over-long sentence at word boundaries."""
    parts = []
    while b - a > max_chars:
        cut = text.rfind(" ", a, a + max_chars)
        if cut <= a:
            cut = a + max_chars
        parts.append((a, cut))
        a = cut
        while a < b and text[a] == " ":
            a += 1
    parts.append((a, b))
    return parts


_ANAPHOR_START = re.compile(r"^(?:Hij|Zij|Ze|Dit|Deze|Dat|Daarom|Daarbij|Die|He|She|They|This|It)\b")


def sentence_context(chunk: Chunk, i: int) -> tuple[str, int, int]:
    """Sentence ``i`` of ``chunk`` as evidence: (text, raw start, raw end). A sentence that opens
    with a pronoun ("Hij vroeg…") carries the one before it, so it still says who "hij" is."""
    s = chunk.sentences[i]
    if i > 0 and _ANAPHOR_START.match(s.text):
        prev = chunk.sentences[i - 1]
        return prev.text + " " + s.text, prev.start, s.end
    return s.text, s.start, s.end


CLAUSE_CHARS = 240  # long officialese sentences are cited (and prompted) clause by clause


def _split_clauses(text: str, a: int, b: int, max_len: int = CLAUSE_CHARS, min_len: int = 50) -> list[tuple[int, int]]:
    """Split an over-long sentence after ', ', '; ' or ': ' so each unit stays short; keeps offsets."""
    if b - a <= max_len:
        return [(a, b)]
    cuts = [m.end() for m in re.finditer(r"[,;:] (?=\S)", text[a:b])]
    parts, start = [], a
    while b - start > max_len:
        ok = [a + c for c in cuts if min_len <= a + c - start <= max_len and b - (a + c) >= min_len]
        if not ok:
            break
        cut = ok[-1]
        parts.append((start, cut - 1))  # drop the space after the punctuation
        start = cut
    parts.append((start, b))
    return parts


def sentence_spans(ct: CleanText, max_chars: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for a, b in sentences.split_spans(ct.text):
        for ca, cb in _split_clauses(ct.text, a, b):
            spans.extend(_split_long(ct.text, ca, cb, max_chars))
    return spans


def section_at(headings: list[tuple[int, int, str]], offset: int, title: str = "") -> str:
    """The headings that ``offset`` sits under, outermost first ("Partitioneren › Versleutelde volumes"):
    of the headings before it (or starting there), the last of each level, a higher level closing the
    deeper ones. A heading equal to the document title is left out."""
    path: dict[int, str] = {}
    for at, level, text in headings:
        if at > offset:
            break
        path = {lv: t for lv, t in path.items() if lv < level}
        path[level] = text
    return " › ".join(t for _, t in sorted(path.items()) if t.strip() != title.strip())


def chunk_document(doc: Document, cfg: ChunkerConfig = ChunkerConfig()) -> list[Chunk]:
    ct = clean(doc.text, paged=is_paged(doc.path))
    spans = sentence_spans(ct, cfg.max_chars)
    groups: list[list[tuple[int, int]]] = []
    i = 0
    while i < len(spans):
        j = i
        size = 0
        while j < len(spans) and (j == i or size + (spans[j][1] - spans[j][0]) + 1 <= cfg.max_chars):
            size += spans[j][1] - spans[j][0] + 1
            j += 1
        groups.append(spans[i:j])
        if j >= len(spans):
            break
        i = max(i + 1, j - cfg.overlap_sentences)
    chunks = []
    for n, group in enumerate(groups):
        a, b = group[0][0], group[-1][1]
        ra, rb = ct.raw_span(a, b)
        sents = []
        for sa, sb in group:
            r0, r1 = ct.raw_span(sa, sb)
            sents.append(Sentence(text=ct.text[sa:sb], start=r0, end=r1))
        chunks.append(
            Chunk(
                chunk_id=f"{doc.doc_id}-{n:04d}",
                doc_id=doc.doc_id,
                doc=doc.name,
                path=doc.path,
                title=doc.title or ct.title,
                date=doc.date or ct.date,
                start=ra,
                end=rb,
                text=ct.text[a:b],
                ordinal=n,
                sentences=sents,
                section=section_at(doc.headings, ra, doc.title or ct.title),
            )
        )
    return chunks
