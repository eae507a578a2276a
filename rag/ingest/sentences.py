"""Sentence splitting for Dutch (and English) text that returns character spans.

Rule based on purpose: no model is available offline, and Dutch abbreviations
(o.a., bijv., d.w.z., nr., art., mr., drs.) are the main trap for naive splitters.
"""

from __future__ import annotations

import re

ABBREVIATIONS = {
    # Dutch
    "o.a", "bijv", "bv", "d.w.z", "nr", "nrs", "art", "mr", "drs", "dr", "ir", "ing", "prof", "jl", "j.l",
    "a.s", "blz", "e.d", "enz", "m.b.t", "t.a.v", "i.v.m", "m.n", "o.m", "z.g", "zgn", "ca", "resp",
    "incl", "excl", "min", "mln", "mld", "mrd", "vgl", "zie", "w.o", "e.a", "i.p.v", "t.o.v", "n.a.v",
    "m.i", "p", "pag", "dhr", "mevr", "mw", "st", "jr", "sr", "dec", "jan", "feb", "aug", "sept", "okt",
    "nov", "kol", "hfst", "par", "lid", "afd", "c.q", "a.i", "vs", "etc", "al", "e.g", "i.e", "mt",
    # English
    "mr", "mrs", "ms", "no", "fig", "approx", "inc", "ltd", "co",
}

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_NEXT_START = re.compile(r"\s+[\"'“‘«(\[]*[A-ZÀ-Ý0-9]")


def _is_abbreviation(text: str, dot_pos: int) -> bool:
    """True when the period at ``dot_pos`` ends an abbreviation or an initial."""
    j = dot_pos
    while j > 0 and not text[j - 1].isspace() and text[j - 1] not in "(\"'“‘":
        j -= 1
    token = text[j:dot_pos].lower()
    if not token:
        return False
    if token in ABBREVIATIONS:
        return True
    if len(token) == 1 and token.isalpha():  # initials: "J. Stoltenberg", "A.Th.B."
        return True
    if re.fullmatch(r"(?:[a-z]{1,3}\.)+[a-z]{1,3}", token):  # dotted forms like a.th.b
        return True
    return False


def split_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into sentence spans (half-open, whitespace-trimmed)."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    # paragraphs first: a blank line always ends a sentence
    for para in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", text[start:end]):
        p0, p1 = start + para.start(), start + para.end()
        cur = p0
        for m in _BOUNDARY.finditer(text, p0, p1):
            punct_end = m.end()
            nxt = _NEXT_START.match(text, punct_end)
            if not nxt or nxt.start() >= p1:
                continue
            if text[m.start()] == "." and m.end() - m.start() == 1 and _is_abbreviation(text, m.start()):
                continue
            spans.append((cur, punct_end))
            cur = punct_end
        spans.append((cur, p1))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def split(text: str) -> list[str]:
    return [text[a:b] for a, b in split_spans(text)]
