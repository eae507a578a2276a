"""The public answering API used by the CLI, the UI and the eval runner.

    a = Assistant(RagConfig.from_env())
    answer = a.ask("Wat keurden de ministers goed voor VN-vredeshandhaving?")
    for part in a.ask_stream(question, history):   # str tokens, then the final Answer
        ...

Flow: follow-up rewrite -> hybrid retrieval -> best sentences -> refusal gate -> generator
(or extractive) -> citation binding and verification -> answer-type check.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import numpy as np

from . import citations as cit
from . import refusal
from .config import RagConfig
from .ingest import open_store
from .models import ModelMissingError
from .prompt import REFUSAL, Source, build_messages, looks_like_instruction
from .retriever import Retriever, calibrated_relevance, term_coverage
from .rewrite import standalone
from .store import IndexStore
from .textutil import language
from .types import Answer, Hit

_ANAPHOR_START = re.compile(r"^(?:Hij|Zij|Ze|Dit|Deze|Dat|Daarom|Daarbij|Die|He|She|They|This|It)\b")


class Assistant:
    def __init__(self, cfg: RagConfig, store: IndexStore | None = None, embedder=None, generator=None,
                 reranker=None):
        self.cfg = cfg
        if embedder is None:
            from .embedder import get_embedder

            embedder = get_embedder(cfg)
        self.embedder = embedder
        self.store = store if store is not None else open_store(cfg, embedder)
        self.retriever = Retriever(cfg, self.store, embedder, reranker=reranker)
        self._generator = generator
        self.generator_error = ""
        self._lexicon_key: int | None = None
        self._lexicon: tuple[str, set[str]] = ("", set())

    # ---------- models ----------
    def generator(self):
        """The configured generator, or None (then answers fall back to extractive mode)."""
        if self._generator is None and not self.generator_error:
            try:
                from .generator import get_generator

                self._generator = get_generator(self.cfg)
            except ModelMissingError as e:
                self.generator_error = str(e)
        return self._generator

    def reload_store(self) -> None:
        self.store = open_store(self.cfg, self.embedder)
        self.retriever.store = self.store

    # ---------- public API ----------
    def ask(self, question: str, history: list[dict] | None = None, mode: str | None = None,
            k: int | None = None) -> Answer:
        final = None
        for part in self.ask_stream(question, history, mode, k):
            if isinstance(part, Answer):
                final = part
        assert final is not None
        return final

    def ask_stream(self, question: str, history: list[dict] | None = None, mode: str | None = None,
                   k: int | None = None) -> Iterator[str | Answer]:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        mode = mode or self.cfg.mode
        question = (question or "").strip()
        lang = language(question)
        query, previous = standalone(question, history)
        ans = Answer(question=question, text="", mode=mode, language=lang, standalone_question=query)
        if not question:
            ans.text, ans.refused, ans.refusal_reason = REFUSAL[lang], True, "empty question"
            yield ans
            return

        t = time.perf_counter()
        qvec = self.embedder.embed_queries([query])[0]
        timings["embed_s"] = time.perf_counter() - t
        t = time.perf_counter()
        hits = self.retriever.search(query, k=k or self.cfg.top_k, qvec=qvec)
        timings["retrieve_s"] = time.perf_counter() - t
        t = time.perf_counter()
        sources, svecs = self.select_sources(query, hits, qvec)
        timings["select_s"] = time.perf_counter() - t
        ans.passages = hits

        reason = self.gate(query if previous else question, hits, sources)
        if reason:
            self._refuse(ans, reason)
            ans.timings = self._finish(timings, t0)
            yield ans
            return

        gen = self.generator() if mode == "generate" else None
        if mode == "generate" and gen is None:
            mode = ans.mode = "extractive"  # automatic fallback: no generator available
        if mode == "extractive":
            t = time.perf_counter()
            b = cit.extractive(sources, self.cfg.extractive_sentences)
            ans.text, ans.citations, ans.raw_answer = b.text, b.citations, b.text
            timings["answer_s"] = time.perf_counter() - t
            ans.timings = self._finish(timings, t0)
            yield ans
            return

        shown = self.prompt_sources(sources)
        messages = build_messages(question, shown, lang, previous)
        t = time.perf_counter()
        parts: list[str] = []
        for delta in gen.generate(messages, max_tokens=self.cfg.max_tokens, stream=True):
            if not parts:
                timings["first_token_s"] = time.perf_counter() - t0
            parts.append(delta)
            yield delta
        raw = "".join(parts).strip()
        timings["generate_s"] = time.perf_counter() - t
        ans.raw_answer = raw
        t = time.perf_counter()
        self._bind(ans, raw, shown, svecs[: len(shown)], question)
        timings["cite_s"] = time.perf_counter() - t
        ans.timings = self._finish(timings, t0)
        yield ans

    # ---------- stages ----------
    def select_sources(self, query: str, hits: list[Hit], qvec: np.ndarray) -> tuple[list[Source], np.ndarray]:
        """Score every sentence of the retrieved chunks; return them best first, numbered."""
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
                if _ANAPHOR_START.match(text) and i > 0:  # "Hij vroeg..." needs who "hij" is
                    prev = c.sentences[i - 1]
                    text, start = prev.text + " " + text, prev.start
                cands.append((h, text, start, s.end))
        if not cands:
            return [], np.zeros((0, 1), dtype=np.float32)
        vecs = self.embedder.embed_passages([x[1] for x in cands])
        cos = vecs @ qvec
        scored = []
        for (h, text, start, end), cs, v in zip(cands, cos, vecs):
            cov = term_coverage(query, text)
            score = float(cs) + 0.1 * cov
            scored.append((score, h, text, start, end, v, float(cs), cov))
        scored.sort(key=lambda x: -x[0])
        sources, out_vecs = [], []
        for n, (score, h, text, start, end, v, cs, cov) in enumerate(scored, 1):
            c = h.chunk
            sources.append(Source(n=n, text=text, doc=c.doc, doc_id=c.doc_id, chunk_id=c.chunk_id, title=c.title,
                                  date=c.date, start=start, end=end, score=score, cos=cs, coverage=cov))
            out_vecs.append(v)
        return sources, np.stack(out_vecs)

    def prompt_sources(self, sources: list[Source]) -> list[Source]:
        """The few best sentences, within a character budget: prompt length is the latency."""
        shown: list[Source] = []
        used = 0
        best = sources[0].score if sources else 0.0
        for s in sources[: self.cfg.prompt_sentences]:
            if shown and (used + len(s.text) > self.cfg.prompt_chars or s.score < best - self.cfg.prompt_margin):
                break
            shown.append(s)
            used += len(s.text)
        return shown

    def gate(self, question: str, hits: list[Hit], sources: list[Source]) -> str:
        """Reason to refuse before generating, or ''."""
        if not hits or not sources:
            return "nothing retrieved"
        lang = language(question)
        rel = max(calibrated_relevance(s.cos, s.coverage, lang) for s in sources[: self.cfg.prompt_sentences])
        if rel < self.cfg.refuse_below:
            return f"low relevance ({rel:.2f} < {self.cfg.refuse_below})"
        if self.cfg.require_question_terms:
            corpus_low, prefixes = self._corpus_lexicon()
            retrieved = " ".join(f"{h.chunk.date} {h.chunk.title} {h.chunk.text}" for h in hits).lower()
            missing = refusal.missing_key_terms(question, corpus_low, prefixes, retrieved)
            if missing:
                return "not in the sources: " + ", ".join(missing)
        return ""

    def _corpus_lexicon(self) -> tuple[str, set[str]]:
        """Lower-cased corpus text and word prefixes, cached per loaded index."""
        key = id(self.store)
        if self._lexicon_key != key:
            low = "\n".join(self.store.texts.values()).lower()
            self._lexicon = (low, refusal.prefixes_of(low))
            self._lexicon_key = key
        return self._lexicon

    def _bind(self, ans: Answer, raw: str, shown: list[Source], svecs: np.ndarray, question: str) -> None:
        b = cit.bind(raw, shown, svecs, self.embedder.embed_queries, self.cfg.support_threshold,
                     question=question, lang=ans.language)
        # a refusal phrase is final unless genuinely supported content comes before it
        if refusal.is_model_refusal(raw) and (not b.supported or refusal.is_model_refusal(raw.split(".")[0])):
            self._refuse(ans, "the model found no answer in the sources")
            return
        ans.unsupported = b.unsupported
        if not b.supported:
            self._refuse(ans, "no sentence of the answer is supported by the sources")
            return
        kind = refusal.expected_answer_type(question)
        if not refusal.answer_has_type(cit.strip_markers(b.text), kind):
            self._refuse(ans, f"the answer does not state the {kind} asked for")
            return
        ans.text, ans.citations = b.text, b.citations

    def _refuse(self, ans: Answer, reason: str) -> None:
        ans.refused = True
        ans.refusal_reason = reason
        ans.text = REFUSAL[ans.language]
        ans.citations = []

    @staticmethod
    def _finish(timings: dict[str, float], t0: float) -> dict[str, float]:
        timings["total_s"] = time.perf_counter() - t0
        return timings
