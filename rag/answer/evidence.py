"""Stage 1 — select evidence: every sentence of the retrieved chunks, scored against the question.

Input: the standalone query, its vector and the retrieved hits. Output: ``Evidence``, the
sentences best first, numbered ``[n]`` as ``Citation`` objects (spans into the raw document text)
with their vectors, and the short list that fits the prompt budget. Sentences that address the
assistant (prompt injection) are never selected; a sentence opening with a pronoun carries the
sentence before it, so "Hij vroeg…" keeps who "hij" is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..config import RagConfig
from ..text import term_coverage
from ..types import Citation, Hit
from .prompt import looks_like_instruction

_ANAPHOR_START = re.compile(r"^(?:Hij|Zij|Ze|Dit|Deze|Dat|Daarom|Daarbij|Die|He|She|They|This|It)\b")


@dataclass
class Evidence:
    sources: list[Citation]  # every candidate sentence, best first, n = 1..
    vectors: np.ndarray  # one row per source

    def shown(self, cfg: RagConfig) -> list[Citation]:
        """The few best sentences within the prompt budget: prompt length is the latency."""
        out: list[Citation] = []
        used = 0
        best = self.sources[0].score if self.sources else 0.0
        for s in self.sources[: cfg.prompt_sentences]:
            if out and (used + len(s.quote) > cfg.prompt_chars or s.score < best - cfg.prompt_margin):
                break
            out.append(s)
            used += len(s.quote)
        return out


def select(query: str, qvec: np.ndarray, hits: list[Hit], embedder) -> Evidence:
    seen = set()
    cands = []
    for h in hits:
        c = h.chunk
        for i, s in enumerate(c.sentences):
            key = (c.doc_id, s.start)
            if key in seen:
                continue
            seen.add(key)
            text, start = s.text, s.start
            if looks_like_instruction(text):
                continue
            if _ANAPHOR_START.match(text) and i > 0:
                prev = c.sentences[i - 1]
                text, start = prev.text + " " + text, prev.start
            cands.append((h, text, start, s.end))
    if not cands:
        return Evidence([], np.zeros((0, 1), dtype=np.float32))
    vecs = embedder.embed_passages([x[1] for x in cands])
    cos = vecs @ qvec
    scored = []
    for (h, text, start, end), cs, v in zip(cands, cos, vecs):
        cov = term_coverage(query, text)
        scored.append((float(cs) + 0.1 * cov, h.chunk, text, start, end, v, float(cs), cov))
    scored.sort(key=lambda x: -x[0])
    sources = [Citation(n=n, quote=text, doc=c.doc, doc_id=c.doc_id, chunk_id=c.chunk_id, title=c.title, date=c.date,
                        start=start, end=end, score=score, cos=cs, coverage=cov)
               for n, (score, c, text, start, end, _, cs, cov) in enumerate(scored, 1)]
    return Evidence(sources, np.stack([x[5] for x in scored]))
