"""Dutch text clean-up that keeps a map from every cleaned character back to the raw text.

Why a map: citations must highlight the exact span in the original file, while retrieval and
the language model want tidy text (hyphenation joined, page furniture removed, whitespace
normalised).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

META_LINE = re.compile(r"\A[ \t]*date[ \t]+(\d{4}-\d{2}(?:-\d{2})?)[ \t]+([^\n]*)\n?")
# Line furniture of Dutch parliamentary papers (Kamerstukken) and typical PDF footers.
FURNITURE = [
    re.compile(r"^\s*kst-\d+-\d+(?:-\d+)?\s*$", re.I),
    re.compile(r"^\s*ISSN\s+\d{4}\s*-\s*\d{3}[\dxX]\s*$", re.I),
    re.compile(r"^.*Tweede Kamer, vergaderjaar \d{4}[–-]\d{4}, [\d ]+, nr\. \d+\s*\d*\s*$"),
    re.compile(r"^.*Eerste Kamer, vergaderjaar \d{4}[–-]\d{4}.*nr\. \d+\s*\d*\s*$"),
    re.compile(r"^\s*(?:pagina|page)\s+\d+\s+(?:van|of)\s+\d+\s*$", re.I),
]
ARTEFACTS = re.compile(r"\[bookmark: [^\]\n]*\]|\[footnoteRef:\d+\]")
# "gemeen-\nschappelijke": lowercase letter, hyphen, line break, lowercase letter.
HYPHEN_BREAK = re.compile(r"(?<=[a-zà-ÿ])-[ \t]*\r?\n[ \t]*(?=[a-zà-ÿ])")
# "NAVO-\nlanden": a real compound hyphen at a line end; keep the hyphen, drop the break.
COMPOUND_BREAK = re.compile(r"(?<=[A-ZÀ-Ý0-9]-)[ \t]*\r?\n[ \t]*(?=[a-zà-ÿ])")


@dataclass
class CleanText:
    """Cleaned text; ``offsets[i]`` is the raw index of cleaned char ``i`` (one extra entry at
    the end maps the end of the text)."""

    text: str
    offsets: list[int]
    title: str = ""
    date: str = ""

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a cleaned half-open span to the raw half-open span covering it."""
        if end <= start:
            pos = self.offsets[min(start, len(self.offsets) - 1)]
            return pos, pos
        return self.offsets[start], self.offsets[end - 1] + 1


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((pos, pos + len(line)))
        pos += len(line)
    return spans


def _repeated_lines(text: str, spans: list[tuple[int, int]]) -> set[str]:
    """Short lines that recur on 3+ separate occasions look like running headers/footers."""
    counts = Counter(
        re.sub(r"\d+", "#", text[a:b].strip()) for a, b in spans if 0 < len(text[a:b].strip()) <= 80
    )
    return {line for line, n in counts.items() if n >= 3 and not line.endswith((".", ":", "?", "!"))}


# formats whose text has no pages, so no running headers or footers: a short line that recurs there is content
# (a table's "ja" and number cells, a code line), not page furniture
UNPAGED = (".html", ".htm", ".md", ".markdown", ".docx")


def is_paged(path: str) -> bool:
    """May the text of this file have pages (PDF, plain text that may come from one)?"""
    return not path.lower().endswith(UNPAGED)


def clean(raw: str, paged: bool = True) -> CleanText:
    """Clean raw document text into prose, keeping a char map back to ``raw``. Short lines that recur
    (running headers and footers, page numbers) are dropped only from ``paged`` text (PDF, plain text
    that may come from one)."""
    drop = bytearray(len(raw))
    title = date = ""
    m = META_LINE.match(raw)
    if m:
        date, title = m.group(1), m.group(2).strip()
        drop[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    spans = _line_spans(raw)
    repeated = _repeated_lines(raw, spans) if paged else set()
    for a, b in spans:
        line = raw[a:b]
        if any(p.match(line.rstrip("\r\n")) for p in FURNITURE) or (
            repeated and re.sub(r"\d+", "#", line.strip()) in repeated
        ):
            drop[a:b] = b"\x01" * (b - a)
    for rx in (ARTEFACTS, HYPHEN_BREAK, COMPOUND_BREAK):
        for mm in rx.finditer(raw):
            drop[mm.start() : mm.end()] = b"\x01" * (mm.end() - mm.start())

    out: list[str] = []
    offsets: list[int] = []
    pending_ws: int | None = None  # raw index of first whitespace char in the current run
    newlines = 0
    for i, ch in enumerate(raw):
        if drop[i]:
            if ch == "\n" and pending_ws is not None:
                newlines += 1
            continue
        if ch.isspace():
            if pending_ws is None:
                pending_ws, newlines = i, 0
            if ch == "\n":
                newlines += 1
            continue
        if pending_ws is not None:
            if out:
                # a blank line is a paragraph break, unless it cuts a sentence (PDF page break)
                mid_sentence = out[-1] not in ".!?:;\"”’»)" and ch.islower()
                sep = "\n\n" if newlines >= 2 and not mid_sentence else " "
                out.append(sep)
                offsets.extend([pending_ws] * len(sep))
            pending_ws = None
        out.append(ch)
        offsets.append(i)
    text = "".join(out)
    offsets.append(offsets[-1] + 1 if offsets else 0)
    return CleanText(text=text, offsets=offsets, title=title, date=date)


def normalize_space(s: str) -> str:
    return " ".join(s.split())
