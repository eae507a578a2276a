"""The one public API: everything the CLI, the UI, the OpenAI-style API and the eval runner need.

    from rag import Assistant, RagConfig
    a = Assistant(RagConfig.from_env())
    a.ingest(["seeds/"])                       # add or update files (atomic snapshot switch)
    answer = a.ask("Wat keurden de ministers goed voor VN-vredeshandhaving?")
    for event in a.ask_stream(question, history):   # Token(...)…, then Final(answer)
        ...

Answering runs typed stages, each in its own module:
  follow-up rewrite (retrieve.rewrite) -> retrieve (retrieve.retriever) -> select evidence
  (answer.evidence) -> policy before generation (answer.policy) -> generate (answer.generate) or
  quote (extractive) -> bind and verify citations (answer.binding) -> policy after generation.
A question is answered from one store snapshot from start to end, even while an ingest switches
the assistant to a newer one.
"""

from __future__ import annotations

import threading
from contextlib import closing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator

from .answer import binding, evidence, reader
from .answer.policy import Decision, RefusalPolicy, with_unmentioned
from .answer.question import check_question
from .answer.prompt import REFUSAL, SYSTEM_PROMPT, build_messages
from .config import MODES, ConfigError, RagConfig
from .modelprep.prepare import ModelMissingError
from .retrieve.retriever import Reranker, Retriever
from .retrieve.rewrite import question_parts, standalone
from .stores.base import Scope, Store, StoreError
from .stores.factory import open_store
from .text import language
from .types import Answer, DocInfo, Final, Hit, StreamEvent, Token


@dataclass(frozen=True)
class _View:
    """One store snapshot and the retriever over it; swapped as a whole."""

    store: Store
    retriever: Retriever
    metadata: str = ""  # every document's date and title: names and numbers a question may refer to


class Assistant:
    def __init__(self, cfg: RagConfig, store: Store | None = None, embedder=None, generator=None,
                 reranker: Reranker | None = None):
        self.cfg = cfg
        if embedder is None:
            from .stores.embedder import get_embedder

            embedder = get_embedder(cfg)
        self.embedder = embedder
        self.policy = RefusalPolicy(cfg)
        self._reranker = reranker
        self._view = self._make_view(store if store is not None else open_store(cfg, embedder.id, embedder.dim))
        self._generator = generator
        self.generator_error = ""
        self._write_lock = threading.Lock()

    def _make_view(self, store: Store) -> _View:
        metadata = " ".join(f"{d.date} {d.title}" for d in store.chunks.documents()) if store.exists else ""
        return _View(store, Retriever(self.cfg, store, self.embedder, reranker=self._reranker), metadata)

    @property
    def store(self) -> Store:
        return self._view.store

    def reload(self) -> None:
        """Switch to the newest committed snapshot (e.g. after another process ingested)."""
        self._view = self._make_view(open_store(self.cfg, self.embedder.id, self.embedder.dim))

    # ---------- models ----------
    def generator(self):
        """The configured generator, or None (then answers fall back to extractive mode)."""
        if self._generator is None and not self.generator_error:
            try:
                from .answer.generate import get_generator

                self._generator = get_generator(self.cfg)
            except ModelMissingError as e:
                self.generator_error = str(e)
        return self._generator

    def with_generator(self, generator) -> "Assistant":
        """This assistant (same store view and embedder) answering with ``generator``."""
        self._generator, self.generator_error = generator, ""
        return self

    def warm_up(self) -> dict[str, float]:
        """Make the first question as fast as the later ones: touch every model, index, cache and lazy
        import that answering needs, then hand the memory freed on the way back to the system.

        1. the embedder: a question and a few passages of typical length (the model loads, the CPU
           kernels for those shapes are built);
        2. the generator (generate mode): loaded, and the fixed system prompt evaluated into
           llama.cpp's prefix cache;
        3. one whole answer to a question made from a sentence of the corpus (BM25 and its stemmer,
           the vector indexes, evidence selection, the policy, the chat template, pointing and
           copying); the answer is thrown away.
        Returns the seconds each step took. Warming is an optimisation: callers may ignore errors."""
        import ctypes
        import gc

        steps: dict[str, float] = {}
        question = "Wat besloot de regering over de begroting voor volgend jaar?"
        passages = [SYSTEM_PROMPT]
        docs = self.documents()
        if docs:  # real text: typical lengths, and a question the corpus can answer
            ids = sorted(self.store.chunks.chunk_ids({docs[0].doc_id}))[:4]
            chunks = [c for c in (self.store.chunks.chunk(i) for i in ids) if c is not None]
            passages = [c.embed_text() for c in chunks] or passages
            sents = [s.text for c in chunks for s in c.sentences if len(s.text.split()) >= 6]
            if sents:
                question = " ".join(sents[0].split()[:20]).rstrip(".!?") + "?"
        t = time.perf_counter()
        self.embedder.embed_queries([question])
        self.embedder.embed_passages(passages)
        steps["embedder_s"] = time.perf_counter() - t
        gen = self.generator() if self.cfg.mode == "generate" else None
        if gen is not None:
            t = time.perf_counter()
            gen.generate([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "Bronnen:"}],
                         max_tokens=1)
            steps["generator_s"] = time.perf_counter() - t
        t = time.perf_counter()
        self.ask(question)
        steps["answer_s"] = time.perf_counter() - t
        gc.collect()
        try:  # glibc keeps freed heap pages (loading, first answers) resident until trimmed
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        return steps

    # ---------- documents ----------
    def documents(self) -> list[DocInfo]:
        return self.store.chunks.documents()

    def document_text(self, doc_id: str) -> str:
        return self.store.chunks.document_text(doc_id)

    def info(self) -> dict:
        return self.store.info()

    def ingest(self, paths: list[str | Path], progress: bool = False,
               on_file: Callable[[str, str], None] | None = None, force: bool = False):
        """Add or update files; the assistant switches to the new snapshot when it is committed."""
        from .ingest.pipeline import ingest

        with self._write_lock, closing(self.store.writer()) as writer:
            report = ingest(paths, self.cfg, self.embedder, writer, progress=progress, on_file=on_file, force=force)
            self.reload()
        return report

    def remove(self, names: list[str]) -> tuple[list[str], list[str]]:
        """Remove documents by path, file name or doc id; returns (removed paths, not found)."""
        from .ingest.pipeline import remove

        with self._write_lock, closing(self.store.writer()) as writer:
            out = remove(names, writer)
            self.reload()
        return out

    def set_meta(self, name: str, title: str | None = None, date: str | None = None) -> DocInfo | None:
        """Edit a document's title and/or date (by path, file name or doc id); None when not indexed."""
        with self._write_lock, closing(self.store.writer()) as writer:
            info = writer.find_document(name)
            if info is None:
                return None
            if title is not None or date is not None:
                if not hasattr(writer, "set_meta"):
                    raise StoreError(f"the '{self.store.backend}' store cannot edit document metadata")
                writer.set_meta(info.path, title=title, date=date)
                writer.commit()
                self.reload()
        return self.store.chunks.find_document(info.path)

    # ---------- retrieval ----------
    def search(self, query: str, k: int | None = None, retriever: str | None = None,
               history: list[dict] | None = None, doc_ids: Collection[str] | None = None) -> list[Hit]:
        """The best passages with calibrated relevance; a follow-up is resolved against ``history``.
        ``doc_ids`` (e.g. ``Filter.resolve(self.documents())``) restricts retrieval to those documents."""
        query, _ = standalone(query, history)
        hits = self._view.retriever.search(query, k=k or self.cfg.top_k, retriever=retriever, doc_ids=doc_ids)
        return self.policy.annotate(query, hits)

    # ---------- answering ----------
    def ask(self, question: str, history: list[dict] | None = None, mode: str | None = None,
            k: int | None = None, depth: int | None = None, doc_ids: Collection[str] | None = None) -> Answer:
        final = None
        for event in self.ask_stream(question, history, mode, k, depth, doc_ids):
            if isinstance(event, Final):
                final = event.answer
        assert final is not None
        return final

    def ask_stream(self, question: str, history: list[dict] | None = None, mode: str | None = None,
                   k: int | None = None, depth: int | None = None,
                   doc_ids: Collection[str] | None = None) -> Iterator[StreamEvent]:
        """Stream ``Token`` events while the model writes, then one ``Final`` with the verified answer.
        ``k`` passages feed the answer; ``depth`` (>= k) passages are retrieved and returned in
        ``Answer.passages`` (the eval runner scores retrieval on them)."""
        mode = mode or self.cfg.mode
        if mode not in MODES:
            raise ConfigError(f"mode (RAG_MODE): '{mode}' is not one of {', '.join(MODES)}")
        k = k or self.cfg.top_k
        view = self._view  # one snapshot for the whole question
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        question, rejected = check_question(question, self.cfg)  # cleaned; or why it cannot be answered
        lang = language(question)
        scope = Scope(view.store.chunks, doc_ids) if doc_ids is not None else None  # once per question
        allowed = scope.chunk_ids if scope is not None else None
        query, previous = standalone(question, history, lambda q, j: self._context_helps(view, q, j, allowed))
        ans = Answer(question=question, text="", mode=mode, language=lang, standalone_question=query)
        if rejected is not None:
            yield Final(self._refused(ans, rejected, timings, t0))
            return

        t = time.perf_counter()
        qvec = self.embedder.embed_queries([query])[0]
        timings["embed_s"] = time.perf_counter() - t
        t = time.perf_counter()
        hits = view.retriever.search(query, k=max(k, depth or 0), qvec=qvec, scope=scope)
        self.policy.annotate(query, hits)
        ans.passages = hits
        hits = hits[:k]
        parts = question_parts(query) if self.cfg.question_parts and not previous else []
        part_vecs = self.embedder.embed_queries(parts) if parts else None
        candidates = hits + self._part_hits(view, parts, part_vecs, k, scope, hits)
        timings["retrieve_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ev = evidence.select(query, qvec, candidates, view.store, self.embedder, self.cfg.corpus_sentences, scope,
                             coverage_weight=self.cfg.evidence_coverage_weight,
                             min_words=self.cfg.evidence_min_words, structure=self.cfg.evidence_structure)
        first = evidence.best_for_parts(ev, parts, part_vecs, self.cfg.evidence_coverage_weight) if parts else []
        timings["select_s"] = time.perf_counter() - t

        asked = query if previous else question
        decision = self.policy.before(asked, hits, ev.sources, view.store.keywords, view.metadata)
        if decision.refuse:
            yield Final(self._refused(ans, decision, timings, t0))
            return
        if not self.cfg.require_question_terms:  # with the gate on, an answer got here because none is missing
            ans.unmentioned = self.policy.unmentioned(asked, hits, view.store.keywords, view.metadata)

        said = _previous_answer(history) if previous else ""
        gen = self.generator() if mode == "generate" else None
        if gen is None:
            ans.mode = "extractive"  # chosen, or the automatic fallback when no generator is installed
            t = time.perf_counter()
            b = binding.extractive(ev.sources, self._pick(ev.sources, self.cfg.extractive_sentences, first), lang)
            ans.text, ans.citations, ans.raw_answer = b.text, b.citations, b.text
            timings["answer_s"] = time.perf_counter() - t
            decision = self.policy.after_quoting(question, [c.quote for c in b.citations])
            if decision.refuse:
                yield Final(self._refused(ans, decision, timings, t0))
                return
            yield Final(self._done(ans, timings, t0))
            return

        shown = ev.shown(self.cfg)
        # copy and read need a generator that continues a prefilled answer (llama.cpp does); others write freely
        if self.cfg.strategy == "copy" and hasattr(gen, "complete"):
            yield from self._copy(ans, gen, question, ev.sources, first, lang, previous, timings, t0, said)
        elif self.cfg.strategy == "read" and hasattr(gen, "option_logprobs"):
            yield from self._read(ans, gen, question, shown, lang, previous, timings, t0, said)
        else:
            yield from self._free(ans, gen, question, shown, ev, lang, previous, timings, t0)

    def _free(self, ans: Answer, gen, question: str, shown: list, ev, lang: str, previous: str,
              timings: dict[str, float], t0: float) -> Iterator[StreamEvent]:
        """Free generation: the model writes the answer; the app binds and verifies citations."""
        messages = build_messages(question, shown, lang, previous)
        t = time.perf_counter()
        parts: list[str] = []
        for delta in gen.generate(messages, max_tokens=self.cfg.max_tokens, stream=True):
            if not parts:
                timings["first_token_s"] = time.perf_counter() - t0
            parts.append(delta)
            yield Token(delta)
        raw = "".join(parts).strip()
        timings["generate_s"] = time.perf_counter() - t
        ans.raw_answer = raw
        t = time.perf_counter()
        b = binding.bind(raw, shown, ev.vectors[: len(shown)], self.embedder.embed_queries,
                         self.cfg.support_threshold, question=question, lang=lang, calib=self.cfg.calib)
        decision = self.policy.after(question, raw, b)
        timings["cite_s"] = time.perf_counter() - t
        ans.unsupported = b.unsupported
        if decision.refuse:
            yield Final(self._refused(ans, decision, timings, t0))
            return
        ans.text, ans.citations = b.text, b.citations
        yield Final(self._done(ans, timings, t0))

    def _read(self, ans: Answer, gen, question: str, shown: list, lang: str, previous: str,
              timings: dict[str, float], t0: float, said: str = "") -> Iterator[StreamEvent]:
        """Read strategy: the model points at the answering source(s) and copies the answer words;
        the policy decides from the pointing confidence; each part cites the source it came from."""
        shown = shown[:9]
        messages = reader.messages_for(question, shown, lang, SYSTEM_PROMPT, previous)
        t = time.perf_counter()
        probs, none = reader.point(gen, messages, len(shown), lang)
        timings["point_s"] = time.perf_counter() - t
        signals = self.policy.reading_signals(question, shown, probs, none)
        ans.signals = {k: round(v, 4) for k, v in signals.items()}
        decision = self.policy.after_pointing(signals)
        if decision.refuse:
            yield Final(self._refused(ans, decision, timings, t0))
            return
        t = time.perf_counter()
        chosen = reader.choose(probs, self.cfg.read_max_sources, self.cfg.read_ratio, self.cfg.read_rank_penalty)
        parts = self._copy_parts(gen, messages, shown, chosen, question, lang, said)
        timings["copy_s"] = time.perf_counter() - t
        yield from self._finish(ans, question, parts, shown, timings, t0)

    def _copy(self, ans: Answer, gen, question: str, sources: list, first: list[int], lang: str, previous: str,
              timings: dict[str, float], t0: float, said: str = "") -> Iterator[StreamEvent]:
        """Copy strategy: no pointing call. The sentences an extractive answer would quote are chosen
        by the evidence ranking; the model sees only the best one and copies its answer words
        (verified, else the sentence itself), the others are quoted. The prompt holds one sentence,
        so it is short: prompt length is the latency. A question that asks several things (``first``
        names a sentence per part) is answered by quoting them: one sentence answers only one part, and
        the model, shown the whole question, would echo the other part as if answered."""
        shown = [sources[i] for i in self._pick(sources, self.cfg.read_max_sources, first)]
        t = time.perf_counter()
        if len(first) > 1:
            parts = [(s.quote, i, False) for i, s in enumerate(shown)]
        else:
            messages = reader.messages_for(question, shown[:1], lang, SYSTEM_PROMPT, previous)
            parts = self._copy_parts(gen, messages, shown, list(range(len(shown))), question, lang, said)
        timings["copy_s"] = time.perf_counter() - t
        n = min(self.cfg.verify_sources, len(shown))
        if n and hasattr(gen, "option_logprobs"):
            t = time.perf_counter()
            # for n = 1 the copy prompt itself, whose prefix llama.cpp still holds
            messages = reader.messages_for(question, shown[:n], lang, SYSTEM_PROMPT, previous)
            signals = self.policy.verification_signals(reader.answers(gen, messages, n, lang))
            ans.signals = {k: round(v, 4) for k, v in signals.items()}
            timings["verify_s"] = time.perf_counter() - t
            decision = self.policy.after_verification(signals)
            if decision.refuse:
                yield Final(self._refused(ans, decision, timings, t0))
                return
        yield from self._finish(ans, question, parts, shown, timings, t0)

    def _pick(self, sources: list, n: int, first: list[int]) -> list[int]:
        """The sentences an answer quotes (extractive answers, and the copy strategy's sources)."""
        return binding.pick_quotes(sources, n, self.cfg.quote_min_ratio, doc_ratio=self.cfg.quote_other_document,
                                   next_ratio=self.cfg.quote_next_sentence, first=first)

    def _part_hits(self, view: _View, parts: list[str], part_vecs, k: int, scope, hits: list[Hit]) -> list[Hit]:
        """Passages retrieved for each part of a question that asks several things, beyond ``hits``:
        the second part's answer is often in a document the whole question does not rank high."""
        if not parts:
            return []
        seen = {h.chunk.chunk_id for h in hits}
        out: list[Hit] = []
        for part, vec in zip(parts, part_vecs):
            for h in view.retriever.search(part, k=k, qvec=vec, scope=scope):
                if h.chunk.chunk_id not in seen:
                    seen.add(h.chunk.chunk_id)
                    out.append(h)
        return out

    def _copy_parts(self, gen, messages: list[dict], shown: list, chosen: list[int], question: str,
                    lang: str, said: str = "") -> list[tuple[str, int, bool]]:
        """The best chosen source's answer words are copied by the model; further sources (lists,
        several documents) are quoted whole: one short generation keeps the latency down. A copy
        that lacks the number, date or person asked for, where its source states one, is replaced
        by the source sentence."""
        asks_number = self.policy.expected_type(question) in ("number", "date")
        parts: list[tuple[str, int, bool]] = []
        for rank, i in enumerate(chosen):
            text, copied = (reader.copy(gen, messages, shown, i, question, lang, asks_number=asks_number, said=said)
                            if rank == 0 else (shown[i].quote, False))
            if not self.policy.states_asked_type(question, text) and self.policy.states_asked_type(question,
                                                                                                 shown[i].quote):
                text, copied = shown[i].quote, False
            if all(text != p[0] for p in parts):
                parts.append((text, i, copied))
            if copied and self.cfg.copy_with_quote and all(shown[i].quote != p[0] for p in parts):
                parts.append((shown[i].quote, i, False))  # the copied words, then the sentence that states them
        return parts

    def _finish(self, ans: Answer, question: str, parts: list[tuple[str, int, bool]], shown: list,
                timings: dict[str, float], t0: float) -> Iterator[StreamEvent]:
        b = binding.compose(parts, shown)
        ans.raw_answer = " | ".join(p[0] for p in parts)
        timings["first_token_s"] = time.perf_counter() - t0
        yield Token(b.text)
        decision = self.policy.after(question, b.text, b)
        if decision.refuse:
            yield Final(self._refused(ans, decision, timings, t0))
            return
        ans.text, ans.citations = b.text, b.citations
        yield Final(self._done(ans, timings, t0))

    def _context_helps(self, view: _View, question: str, joint: str, allowed=None) -> bool:
        """Does the previous question make this one find better passages (a higher best cosine)?"""
        vecs = self.embedder.embed_queries([question, joint])
        alone, together = view.store.vectors.search(vecs[0], 1, allowed), view.store.vectors.search(vecs[1], 1, allowed)
        if not alone or not together:
            return True
        return together[0][1] > alone[0][1] + self.cfg.follow_up_margin

    @staticmethod
    def _done(ans: Answer, timings: dict[str, float], t0: float) -> Answer:
        if not ans.refused:
            ans.text = with_unmentioned(ans.text, [_as_asked(t, ans.question) for t in ans.unmentioned], ans.language)
        timings["total_s"] = time.perf_counter() - t0
        ans.timings = timings
        return ans

    def _refused(self, ans: Answer, decision: Decision, timings: dict[str, float], t0: float) -> Answer:
        ans.refused, ans.refusal_reason = True, decision.reason
        ans.refusal_code, ans.refusal_params = decision.code, decision.params
        ans.text, ans.citations = REFUSAL[ans.language], []
        return self._done(ans, timings, t0)


def _as_asked(term: str, question: str) -> str:
    """``term`` (lower-cased) as the question spells it."""
    i = question.lower().find(term)
    return question[i : i + len(term)] if i >= 0 else term


def _previous_answer(history: list[dict] | None) -> str:
    """What the conversation's last answer led with: its text up to the first citation marker (the copied
    answer words, or the first quote)."""
    for turn in reversed(history or []):
        if turn.get("role") == "assistant":
            return binding.MARKER.split(turn.get("content") or "", maxsplit=1)[0].strip()
    return ""
