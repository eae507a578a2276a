"""Stage 4 — bind and verify: app-side citations for the generated answer.

The model's own markers are only hints: every answer sentence is matched against the numbered
source sentences that were shown (lexical overlap of stemmed content words plus E5 similarity).
Supported sentences get markers the app controls; unsupported ones are dropped. A marker can
never point outside the shown sources, and each citation carries the exact raw-text span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from ..config import Calibration
from ..ingest import sentences as sentsplit
from ..text import STOPWORDS, content_terms, language, term_coverage
from ..types import Citation

MARKER = re.compile(
    r"\s*\[\s*(?:bron|source)?\s*(\d+(?:\s*(?:[,;]|en|and|-|–)\s*\d+)*)\s*\]|\s*\((?:bron|source)\s*(\d+)\)", re.I)


def marker_numbers(text: str) -> list[int]:
    nums = []
    for m in MARKER.finditer(text):
        group = m.group(1) or m.group(2) or ""
        nums.extend(int(n) for n in re.findall(r"\d+", group))
    return nums


def strip_markers(text: str) -> str:
    out = MARKER.sub("", text)
    return re.sub(r"\s+([.,;:!?])", r"\1", out).strip()


def dense_support(cos: float, calib: Calibration, lang: str = "nl") -> float:
    """Embedder cosine -> 0..1 by the embedder's calibration (a linear ramp from its centre);
    an English claim against a Dutch source scores a few points lower, hence per-language centres."""
    center = calib.support_center.get(lang, calib.support_center["nl"])
    return float(np.clip((cos - center) / calib.support_width, 0.0, 1.0))


def new_information(claim: str, question: str) -> str:
    """The claim's words that the question did not already contain ('' for a mere echo)."""
    q = set(content_terms(question))
    return " ".join(t for t in content_terms(claim) if t not in q)


_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def numbers(text: str) -> set[str]:
    """The numbers in a text, thousands separators removed ("10.000" -> "10000")."""
    return {re.sub(r"[.,](?=\d{3}\b)", "", m) for m in _NUM.findall(text)}


_STARTERS = {"bovendien", "daarnaast", "tevens", "verder", "ook", "ja", "nee", "however", "also", "yes", "according",
             "furthermore", "additionally", "antwoord", "answer"}


def unsupported_facts(claim: str, question: str, source_text: str) -> list[str]:
    """Numbers and names the claim adds that the cited text never states. Small models
    reuse numbers from elsewhere ("10.000 militairen"); such a sentence is not supported."""
    src_low, q_low = source_text.lower(), question.lower()
    missing = sorted(numbers(claim) - numbers(question) - numbers(source_text))
    if language(claim) != language(source_text):
        return missing  # names are spelled differently across languages ("Germany" / "Duitsland")
    for i, tok in enumerate(_NAME.findall(claim)):
        low = tok.lower()
        if not tok[0].isupper() or low in STOPWORDS or low in _STARTERS or low in q_low:
            continue
        if low in src_low or (len(low) >= 5 and low[:5] in src_low):
            continue
        missing.append(tok)
    return missing


@dataclass
class BoundSentence:
    text: str
    sources: list[int] = field(default_factory=list)  # indices into the shown sources
    score: float = 0.0


@dataclass
class Binding:
    text: str
    citations: list[Citation]
    supported: list[BoundSentence]
    unsupported: list[str]


def _answer_sentences(raw: str) -> list[tuple[str, list[int]]]:
    out = []
    for s in sentsplit.split(raw.replace("\n", " ")):
        hints = marker_numbers(s)
        text = strip_markers(s)
        if len(re.sub(r"[\W_]+", "", text)) < 2:
            continue
        out.append((text, hints))
    return out


def bind(
    raw_answer: str,
    sources: Sequence[Citation],
    source_vecs: np.ndarray | None,
    embed_claims: Callable[[list[str]], np.ndarray] | None,
    threshold: float = 0.45,
    question: str = "",
    lang: str = "nl",
    calib: Calibration | None = None,
) -> Binding:
    """Attach app-controlled citations to each supported sentence of ``raw_answer``."""
    claims = _answer_sentences(raw_answer)
    if not claims or not sources:
        return Binding("", [], [], [c for c, _ in claims])
    cos = None
    if embed_claims is not None and source_vecs is not None and len(source_vecs):
        cvecs = embed_claims([c for c, _ in claims])
        cos = cvecs @ source_vecs.T
    supported: list[BoundSentence] = []
    unsupported: list[str] = []
    for ci, (claim, hints) in enumerate(claims):
        # an echo of the question adds nothing; judge the claim on what it adds
        added = new_information(claim, question) if question else claim
        if question and not added:
            unsupported.append(claim)
            continue
        scores = []
        for si, src in enumerate(sources):
            lex = term_coverage(added, src.quote)
            dense = dense_support(float(cos[ci, si]), calib, lang) if cos is not None and calib else 0.0
            s = max(lex, dense, 0.5 * lex + 0.5 * dense + 0.1)
            if src.n in hints:
                s += 0.05  # the model's marker is a hint, never a verdict
            scores.append(s)
        order = sorted(range(len(sources)), key=lambda i: -scores[i])
        best = order[0]
        chosen = [i for i in order[:2] if scores[i] >= threshold and scores[i] >= scores[best] - 0.1]
        if not chosen and len(order) > 1:
            # a sentence that combines two sources: check the union
            union = sources[order[0]].quote + " " + sources[order[1]].quote
            if term_coverage(added, union) >= max(threshold, 0.6):
                chosen = order[:2]
        if chosen:
            cited = " ".join(sources[i].quote for i in chosen)
            if unsupported_facts(claim, question, cited):
                # the fact may sit in another shown source: cite that one too, or reject the claim
                extra = [i for i in order if i not in chosen and not unsupported_facts(
                    claim, question, cited + " " + sources[i].quote)]
                chosen = chosen + extra[:1] if extra else []
        if chosen:
            supported.append(BoundSentence(claim, chosen, scores[best]))
        else:
            unsupported.append(claim)
    return _render(supported, unsupported, sources)


def _render(supported: list[BoundSentence], unsupported: list[str], sources: Sequence[Citation]) -> Binding:
    numbering: dict[int, int] = {}
    citations: list[Citation] = []
    parts = []
    for bs in supported:
        marks = []
        for si in bs.sources:
            if si not in numbering:
                numbering[si] = len(numbering) + 1
                citations.append(replace(sources[si], n=numbering[si], score=round(bs.score, 4)))
            marks.append(f"[{numbering[si]}]")
        text = re.sub(r"\s*[,;:]$", "", bs.text)  # a cited clause ends at the marker, not at a comma
        m = re.search(r"[.!?…]+[\"'”’»)]*$", text)
        if m:
            text = text[: m.start()] + " " + "".join(marks) + text[m.start():]
        else:
            text = text + " " + "".join(marks)
        parts.append(text)
    return Binding(" ".join(parts), citations, supported, unsupported)


def compose(parts: Sequence[tuple[str, int, bool]], sources: Sequence[Citation]) -> Binding:
    """An answer made of parts that each rest on one source: ``(text, source index, copied)`` where
    text is the model's verified copy of the answer words or the source sentence itself."""
    bound = []
    for text, i, _ in parts:
        text = text[:1].upper() + text[1:]
        if not re.search(r"[.!?…][\"'”’»)]*$", text):
            text += "."
        bound.append(BoundSentence(text, [i], sources[i].score))
    return _render(bound, [], sources)


QUOTE_LEAD = {"en": "The sources say (in Dutch):"}


def pick_quotes(sources: Sequence[Citation], n: int, min_ratio: float = 0.97, doc_ratio: float = 1.0,
                next_ratio: float = 1.0, window: int = 10, first: Sequence[int] = ()) -> list[int]:
    """Indices of the sentences an extractive answer quotes: the best, then those of the first ``n``
    scoring at least ``min_ratio`` of it. When they all come from one document, the best sentence of
    another document among the first ``window`` takes the last place if it scores at least
    ``doc_ratio`` of the best (questions about several documents; 1.0 = off). The sentence that
    continues the best one in its document follows it when it scores at least ``next_ratio`` of the
    best (``with_next``). ``first``: sentences quoted in any case, in this order, before the others
    (the best sentence for each part of a question that asks several things)."""
    if not sources:
        return []
    best = sources[0].score
    picked = list(dict.fromkeys(first))
    keep = max(n, len(picked))
    picked += [i for i, s in enumerate(sources[:n]) if (i == 0 or s.score >= best * min_ratio) and i not in picked]
    picked = picked[:keep]
    docs = {sources[i].doc_id for i in picked}
    if len(docs) == 1 and doc_ratio < 1.0:
        alt = next((i for i, s in enumerate(sources[:window]) if s.doc_id not in docs and s.score >= best * doc_ratio),
                   None)
        if alt is not None:
            if len(picked) >= n and len(picked) > 1:
                picked[-1] = alt
            elif len(picked) < n:
                picked.append(alt)
    return with_next(sources, picked, next_ratio)


def with_next(sources: Sequence[Citation], picked: list[int], ratio: float, gap: int = 3) -> list[int]:
    """``picked`` plus, right after the first pick, the sentence that continues it in the document
    (starts within ``gap`` characters of its end) when that one scores at least ``ratio`` of the
    best: answers often run on into the next sentence ("... systemd als standaard. sysvinit en
    OpenRC worden ook ondersteund."). 1.0 = off."""
    if not picked or ratio >= 1.0:
        return picked
    first, best = sources[picked[0]], sources[0].score
    nxt = next((i for i, s in enumerate(sources) if s.doc_id == first.doc_id and 0 <= s.start - first.end <= gap),
               None)
    if nxt is None or nxt in picked or sources[nxt].score < best * ratio:
        return picked
    return [picked[0], nxt] + picked[1:]


def extractive(sources: Sequence[Citation], picked: Sequence[int], lang: str = "nl") -> Binding:
    """An answer made of the ``picked`` source sentences themselves (``pick_quotes``), each citing
    itself; a question in another language than the sources gets a lead-in in its own language."""
    if not sources or not picked:
        return Binding("", [], [], [])
    bound = [BoundSentence(sources[i].quote, [i], sources[i].score) for i in picked]
    b = _render(bound, [], sources)
    if lang in QUOTE_LEAD:
        b.text = f"{QUOTE_LEAD[lang]} {b.text}"
    return b
