"""Metrics: retrieval (hit@k, MRR@10, nDCG@10), answers, refusals, citations (ALCE), latency.

Each function takes plain data and returns numbers, so every metric is unit-tested on small
hand-computed examples.
"""

from __future__ import annotations

import math
import re
from difflib import SequenceMatcher
from typing import Callable, Sequence

import numpy as np

from rag.answer.binding import marker_numbers, strip_markers
from rag.text import MONTHS

Judge = Callable[[str, str], bool]  # (claim, evidence) -> supported?

_INVENTED = re.compile(r"\d|\b(?:" + "|".join(sorted(MONTHS)) + r")\b", re.I)


def norm(s: str) -> str:
    return " ".join(s.lower().split())


def evidence_match(chunk_text: str, evidence: str) -> bool:
    """Contains the evidence, or shares a contiguous run of >= min(40, len//2) characters with it."""
    c, e = norm(chunk_text), norm(evidence)
    if not e:
        return False
    if e in c:
        return True
    need = min(40, len(e) // 2)
    m = SequenceMatcher(None, c, e, autojunk=False).find_longest_match(0, len(c), 0, len(e))
    return m.size >= need


def relevant_flags(chunk_texts: Sequence[str], evidence: Sequence[str]) -> list[tuple[bool, bool]]:
    """Per retrieved chunk: (matches any evidence, matches an evidence string not credited before)."""
    credited: set[int] = set()
    out = []
    for text in chunk_texts:
        matched = [j for j, ev in enumerate(evidence) if evidence_match(text, ev)]
        new = [j for j in matched if j not in credited]
        if new:
            credited.add(new[0])
        out.append((bool(matched), bool(new)))
    return out


def retrieval_scores(chunk_texts: Sequence[str], evidence: Sequence[str], ks=(1, 3, 5, 10)) -> dict[str, float]:
    """hit@k for each k, and MRR and nDCG at the deepest k (one gain per evidence string)."""
    depth = max(ks)
    flags = relevant_flags(chunk_texts[:depth], evidence)
    rel = [r for r, _ in flags]
    out = {f"hit@{k}": float(any(rel[:k])) for k in ks}
    first = next((i for i, r in enumerate(rel) if r), None)
    out[f"mrr@{depth}"] = 0.0 if first is None else 1.0 / (first + 1)
    dcg = sum((1.0 if g else 0.0) / math.log2(i + 2) for i, (_, g) in enumerate(flags))
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(evidence), depth)))
    out[f"ndcg@{depth}"] = dcg / idcg if idcg else 0.0
    return out


def all_sources_retrieved(retrieved_docs: Sequence[str], sources: Sequence[str], k: int) -> float:
    return float(set(sources) <= set(retrieved_docs[:k]))


def is_correct(answer_text: str, refused: bool, must_include: Sequence[Sequence[str]]) -> bool:
    if refused:
        return False
    a = strip_markers(answer_text).lower()
    return all(any(alt in a for alt in group) for group in must_include)


def refusal_ok(answer_text: str, refused: bool) -> bool:
    """Declined, and invented no date, name or number along the way."""
    if not refused:
        return False
    return not _INVENTED.search(answer_text)


def split_cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Answer sentences with the citation numbers each carries."""
    from rag.ingest.sentences import split

    out = []
    for s in split(text):
        nums = marker_numbers(s)
        claim = strip_markers(s).strip()
        if claim:
            out.append((claim, nums))
    return out


def citation_scores(text: str, quotes: dict[int, str], judge: Judge) -> dict[str, float | int]:
    """ALCE citation recall (sentences supported by their citations) and precision (citations that
    are needed or sufficient), counted over one answer."""
    sents = split_cited_sentences(text)
    n_sent = len(sents)
    supported = n_cit = precise = 0
    for claim, nums in sents:
        cited = [quotes[n] for n in nums if n in quotes]
        if not cited:
            n_cit += len(nums)
            continue
        union_ok = judge(claim, " ".join(cited))
        supported += union_ok
        for i, q in enumerate(cited):
            n_cit += 1
            if not union_ok:
                continue
            alone = judge(claim, q)
            rest = [c for j, c in enumerate(cited) if j != i]
            needed = not rest or not judge(claim, " ".join(rest))
            precise += alone or needed
        n_cit += len(nums) - len(cited)  # markers pointing nowhere count as wrong
    return {"sentences": n_sent, "supported": supported, "citations": n_cit, "precise": precise}


def spans_overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evidence_spans(file_text: str, evidence: Sequence[str]) -> list[tuple[int, int]]:
    spans = []
    for ev in evidence:
        start = file_text.find(ev)
        while start >= 0:
            spans.append((start, start + len(ev)))
            start = file_text.find(ev, start + 1)
    return spans
