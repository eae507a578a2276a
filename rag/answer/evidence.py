"""Stage 1 — select evidence: sentences scored against the question, from the retrieved chunks
and from the whole corpus.

Input: the standalone query, its vector, the retrieved hits and the store. Candidates are every
sentence of the retrieved chunks plus the ``corpus_sentences`` nearest sentences corpus-wide (the
store keeps one vector per sentence, made at ingest, so nothing is embedded at question time).
Output: ``Evidence``, the sentences best first, numbered ``[n]`` as ``Citation`` objects (spans
into the raw document text) with their vectors, and the short list that fits the prompt budget.
Sentences that address the assistant (prompt injection) are never selected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import RagConfig
from ..ingest.chunker import sentence_context
from ..stores.base import Scope, Store
from ..text import term_coverage, words
from ..types import Chunk, Citation, Hit
from .prompt import looks_like_instruction


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


def score(cos: float, coverage: float, coverage_weight: float) -> float:
    """A sentence's evidence score: cosine to the question + ``coverage_weight`` x the share of the
    question's content terms it contains."""
    return cos + coverage_weight * coverage


def best_for_parts(ev: Evidence, parts: list[str], part_vecs: np.ndarray, coverage_weight: float = 0.05) -> list[int]:
    """For a question that asks several things (``parts``, with their query vectors): the index in
    ``ev.sources`` of the best sentence for each part, scored like the whole question's ranking; a
    sentence that is best for two parts is named once."""
    out: list[int] = []
    if not ev.sources:
        return out
    for part, pv in zip(parts, part_vecs):
        cos = ev.vectors @ pv
        scores = [score(float(c), term_coverage(part, s.quote), coverage_weight) for c, s in zip(cos, ev.sources)]
        best = int(np.argmax(scores))
        if best not in out:
            out.append(best)
    return out


def _candidates(hits: list[Hit], store: Store, qvec: np.ndarray, corpus_sentences: int,
                scope: Scope | None) -> list[tuple[Chunk, int]]:
    out: list[tuple[Chunk, int]] = [(h.chunk, i) for h in hits for i in range(len(h.chunk.sentences))]
    if corpus_sentences > 0 and len(store.sentences):
        allowed = scope.sentence_ids if scope is not None else None
        for sid, _ in store.sentences.search(qvec, corpus_sentences, allowed):
            chunk_id, _, i = sid.rpartition("#")
            c = store.chunks.chunk(chunk_id)
            if c is not None and int(i) < len(c.sentences):
                out.append((c, int(i)))
    return out


def select(query: str, qvec: np.ndarray, hits: list[Hit], store: Store, embedder, corpus_sentences: int = 0,
           scope: Scope | None = None, coverage_weight: float = 0.05, min_words: int = 0,
           structure: bool = True) -> Evidence:
    """Sentences scored by cosine to the question + ``coverage_weight`` x the share of the question's
    content terms they contain, best first. A fragment of fewer than ``min_words`` words (a heading, a
    dateline, a name on its own, a run of list items the cleaner joined) is no evidence by itself: it
    comes along with a neighbouring sentence (``with_structure``). Text made of fragments only is taken
    as it is."""
    seen: set[tuple[str, int]] = set()
    cands = []  # (chunk, sentence id, text, start, end)
    for c, i in _candidates(hits, store, qvec, corpus_sentences, scope):
        s = c.sentences[i]
        if (c.doc_id, s.start) in seen:  # overlapping chunks share sentences
            continue
        seen.add((c.doc_id, s.start))
        if looks_like_instruction(s.text) or len(words(s.text)) < min_words:
            continue
        text, start, end = with_structure(c, i, min_words, structure)
        cands.append((c, f"{c.chunk_id}#{i}", text, start, end))
    if not cands:
        if min_words > 0 and hits:
            return select(query, qvec, hits, store, embedder, corpus_sentences, scope, coverage_weight, 0, structure)
        return Evidence([], np.zeros((0, 1), dtype=np.float32))
    vecs = _vectors(store, embedder, cands)
    cos = vecs @ qvec
    scored = []
    for (c, _, text, start, end), cs, v in zip(cands, cos, vecs):
        cov = term_coverage(query, text)
        scored.append((score(float(cs), cov, coverage_weight), c, text, start, end, v, float(cs), cov))
    scored.sort(key=lambda x: -x[0])
    sources = [Citation(n=n, quote=text, doc=c.doc, doc_id=c.doc_id, chunk_id=c.chunk_id, title=c.title, date=c.date,
                        start=start, end=end, score=sc, cos=cs, coverage=cov)
               for n, (sc, c, text, start, end, _, cs, cov) in enumerate(scored, 1)]
    return Evidence(sources, np.stack([x[5] for x in scored]))


INTRODUCED_CHARS = 300  # at most this much introduced text joins a sentence ending in ':' (a cap, not tuned)


def introduces(sentence: str) -> bool:
    """Ends in a colon: what follows belongs to it ("... op de volgende manier:" + a command)."""
    return sentence.rstrip().endswith(":")


def with_structure(chunk: Chunk, i: int, min_words: int, structure: bool = True) -> tuple[str, int, int]:
    """Sentence ``i`` of ``chunk`` as evidence, (text, raw start, raw end), with what belongs to it:
    the sentence before it when it opens with a pronoun (``sentence_context``); the fragment after it
    (fewer than ``min_words`` words: "... de volgende commando's:" + "dmesg lspci"). With ``structure``
    (documentation layout) also: the next unit of at most ``INTRODUCED_CHARS``, whatever its length,
    when the sentence introduces it (ends in ':': a command, a list item), and the fragment before it
    that names it (a definition-list term, a heading: "os-prober" + "Zoekt naar reeds aanwezige
    besturingssystemen…") unless that fragment belongs to an introducing sentence before it. The span
    runs from the first to the last character taken."""
    sents = chunk.sentences
    text, start, end = sentence_context(chunk, i)
    nxt = sents[i + 1] if i + 1 < len(sents) else None
    if nxt is not None:
        if len(words(nxt.text)) < min_words or (
                structure and introduces(sents[i].text) and len(nxt.text) <= INTRODUCED_CHARS):
            text, end = text + " " + nxt.text, nxt.end
    if structure and i > 0 and start == sents[i].start:
        prev = sents[i - 1]
        if len(words(prev.text)) < min_words and not (i > 1 and introduces(sents[i - 2].text)):
            text, start = prev.text + " " + text, prev.start
    return text, start, end


def _vectors(store: Store, embedder, cands: list) -> np.ndarray:
    """Stored sentence vectors; sentences indexed without them are embedded now."""
    ids = [x[1] for x in cands]
    try:
        return np.asarray(store.sentences.get(ids), dtype=np.float32)  # one batch: the usual case
    except KeyError:
        pass  # some documents were indexed without sentence vectors: find which
    have = [i for i, sid in enumerate(ids) if _has(store, sid)]
    dim = getattr(embedder, "dim", None) or (store.sentences.dim if len(store.sentences) else 1)
    out = np.zeros((len(ids), dim), dtype=np.float32)
    if have:
        out[have] = store.sentences.get([ids[i] for i in have])
    missing = [i for i in range(len(ids)) if i not in set(have)]
    if missing:
        out[missing] = embedder.embed_passages([cands[i][2] for i in missing])
    return out


def _has(store: Store, sid: str) -> bool:
    try:
        return len(store.sentences.get([sid])) == 1
    except (KeyError, IndexError):
        return False
