"""The refusal policy: every "answer or say the sources don't hold it" decision, in one place.

Small generators under-refuse, and on near-miss questions the retrieval score is as high as for
answerable ones, so the policy combines independent checks:
- before generation (``before``): nothing retrieved; calibrated relevance below ``refuse_below``;
  with ``require_question_terms``, names or numbers of the question that no indexed chunk mentions
  (otherwise the answer names them before it quotes: ``unmentioned``, ``with_unmentioned``);
- after generation (``after``): the model's own refusal; no answer sentence supported by the
  shown sources; the answer lacks the kind of thing asked for (a number for "hoeveel", a date for
  "wanneer", a name for "wie").
It also owns the calibration that turns raw scores into the 0..1 ``relevance`` shown in the UI.
Decisions are ``Decision`` values (refuse or not, and why), never exceptions or strings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..config import RagConfig
from ..stores.base import KeywordIndex
from ..text import DATE_WORDS, NUMBER_WORDS, STOPWORDS, language, term_coverage, words
from ..types import Citation, Hit
from .binding import Binding, strip_markers

REFUSAL_PATTERNS = re.compile(
    r"niet in de bronnen|staat (?:er )?niet (?:in|vermeld)|bronnen (?:vermelden|zeggen|noemen) (?:dat |dit |het )?niet|"
    r"geen informatie|niet vermeld|niet genoemd|kan (?:ik )?(?:dat|dit|het|deze vraag) niet|"
    r"is niet bekend|niet te vinden|"
    r"sources do not|sources don't|not (?:mentioned|stated|specified|provided|in the sources)|"
    r"no information|cannot (?:find|answer|determine)|can't (?:find|answer)|does not (?:say|mention|specify)",
    re.I,
)
QUESTION_WORDS = {"wat", "wie", "welke", "welk", "waar", "wanneer", "hoeveel", "hoe", "waarom", "what", "who",
                  "which", "where", "when", "how", "why", "en", "and", "in", "op", "volgens", "noem", "geef"}
_DATE_NUMBER = re.compile(r"(?<!\d)[12]\d{3}(?!\d)|\b\d{1,2}[-/.]\d{1,2}\b")
_ADJECTIVE = re.compile(r"(?:ische|isch|sche|aanse|iaanse|ese|se|an|ian|ish)$")


@dataclass(frozen=True)
class Decision:
    """``reason`` is an English sentence (CLI, logs); ``code`` + ``params`` say the same in a stable,
    machine-readable form that front ends word in their own language (ui/render.py)."""

    refuse: bool
    reason: str = ""
    code: str = ""
    params: dict = field(default_factory=dict)

    @classmethod
    def answer(cls) -> "Decision":
        return cls(False)

    @classmethod
    def refusal(cls, reason: str, code: str = "", **params) -> "Decision":
        return cls(True, reason, code, params)


def is_model_refusal(text: str) -> bool:
    return bool(REFUSAL_PATTERNS.search(text or ""))


def key_terms(question: str) -> tuple[list[str], list[str]]:
    """(names, numbers) the question hinges on, lower-cased. Capitalised adjectives
    ("Europese", "Amerikaanse") are skipped: documents often name the place differently."""
    names, numbers = [], []
    tokens = re.findall(r"[^\W_]+(?:[-'’][^\W_]+)*", question)
    for i, tok in enumerate(tokens):
        tok = re.sub(r"['’]s$", "", tok)  # possessive: "NATO's" -> "NATO"
        low = tok.lower()
        if low in STOPWORDS or low in QUESTION_WORDS:
            continue
        if any(ch.isdigit() for ch in tok):
            numbers.append(low)
        elif tok[0].isupper() and i > 0 and len(tok) > 2 and not _ADJECTIVE.search(low):
            names.append(low)
    return names, numbers


def missing_key_terms(question: str, keywords: KeywordIndex, lang: str = "nl", metadata: str = "") -> list[str]:
    """Names and numbers the question hinges on that no indexed chunk mentions (asked of the keyword
    index, not by scanning the corpus) and that the retrieved documents' titles and dates (``metadata``)
    do not contain. Names are checked only for questions in the corpus language (Dutch): other
    languages name places and organisations differently. A number is its digits ("75th" -> "75")."""
    names, numbers = key_terms(question)
    meta = metadata.lower()
    missing = [n for n in names if not keywords.has_term(n) and n not in meta] if lang == "nl" else []
    for n in numbers:
        digits = re.sub(r"\D+", " ", n).split()
        if digits and not all(keywords.has_term(d) or d in meta for d in digits):
            missing.append(n)
    return missing


# the lead-in of an answer whose sources do not mention some of the question's names or numbers
UNMENTIONED = {"nl": "De bronnen noemen {terms} niet; wel dit:", "en": "The sources do not mention {terms}; they do say:"}


def with_unmentioned(text: str, terms: list[str], lang: str = "nl") -> str:
    """``text`` led by the names and numbers of the question that no source mentions, so a reader sees
    at once that the quotes may not be about what was asked ("De bronnen noemen Macron niet; wel dit: …")."""
    if not terms or not text:
        return text
    names = ", ".join(f"‘{t}’" for t in terms)
    return f"{UNMENTIONED.get(lang, UNMENTIONED['nl']).format(terms=names)} {text}"


def expected_answer_type(question: str) -> str | None:
    q = question.lower()
    if re.search(r"\bhoeveel\b|\bhow (?:many|much)\b|\bwelk bedrag\b|\bwelk aantal\b", q):
        return "number"
    if re.search(r"\bwanneer\b|\bwhen\b|\bop welke datum\b|\bin welk jaar\b|\bwhat date\b|\bwhich year\b|\bwhat year\b", q):
        return "date"
    if re.search(r"^\s*(?:en\s+)?(?:wie|who)\b", q):
        return "person"
    return None


def answer_has_type(answer: str, kind: str | None, question: str = "") -> bool:
    """Does ``answer`` state a number, date or person (``kind``) that the question itself does not
    already give? ("Wie volgt Rutte op?" is not answered by a sentence whose only name is Rutte.)"""
    if kind is None:
        return True
    given = set(words(question))
    ws = [w for w in words(answer) if w not in given]
    if kind == "number":
        return any(any(c.isdigit() for c in w) for w in ws) or any(w in NUMBER_WORDS for w in ws)
    if kind == "date":  # a year, a numeric day-month, or a month, weekday or calendar word (not any digit)
        return (any(m.group(0) not in question for m in _DATE_NUMBER.finditer(answer))
                or any(w in DATE_WORDS for w in ws))
    if kind == "person":
        toks = re.findall(r"[^\W_]+", answer)
        return any(t[0].isupper() and t.lower() not in STOPWORDS and t.lower() not in given for t in toks)
    return True


class RefusalPolicy:
    def __init__(self, cfg: RagConfig):
        self.cfg = cfg
        self.calib = cfg.calib

    # ---- calibration ----
    def relevance(self, dense: float | None, coverage: float, lang: str = "nl") -> float:
        """Raw evidence -> 0..1. Embedder cosines sit in a narrow band, so a logistic around the
        embedder's calibrated centre spreads them; lexical coverage covers names and numbers.
        English questions over Dutch text score lower cosines and little overlap: own centre and mix."""
        c = self.calib
        center = c.relevance_center.get(lang, c.relevance_center["nl"])
        w = c.relevance_dense_weight.get(lang, c.relevance_dense_weight["nl"])
        d = 0.0 if dense is None else 1.0 / (1.0 + math.exp(-(dense - center) / c.relevance_scale))
        return round(w * d + (1 - w) * coverage, 4)

    def annotate(self, query: str, hits: list[Hit]) -> list[Hit]:
        """Set each hit's calibrated ``relevance`` (shown in the UI and API)."""
        lang = language(query)
        for h in hits:
            h.relevance = self.relevance(h.dense, term_coverage(query, h.chunk.title + " " + h.chunk.text), lang)
        return hits

    # ---- decisions ----
    def before(self, question: str, hits: list[Hit], sources: list[Citation], keywords: KeywordIndex,
               metadata: str = "") -> Decision:
        """Refuse before spending a generation on it? ``metadata``: dates and titles of the indexed
        documents ("the 2024 article" names a document by its date)."""
        if not hits or not sources:
            return Decision.refusal("nothing retrieved", code="nothing_retrieved")
        lang = language(question)
        rel = max(self.relevance(s.cos, s.coverage, lang) for s in sources[: self.cfg.prompt_sentences])
        if rel < self.cfg.refuse_below:
            return Decision.refusal(f"low relevance ({rel:.2f} < {self.cfg.refuse_below})", code="low_relevance",
                                    relevance=rel, threshold=self.cfg.refuse_below)
        if self.cfg.require_question_terms:
            missing = self.unmentioned(question, hits, keywords, metadata)
            if missing:
                return Decision.refusal("not in the sources: " + ", ".join(missing), code="not_in_sources",
                                        terms=missing)
        return Decision.answer()

    @staticmethod
    def unmentioned(question: str, hits: list[Hit], keywords: KeywordIndex, metadata: str = "") -> list[str]:
        """The question's names and numbers that no indexed chunk, nor the retrieved or indexed documents'
        titles and dates, mention (lower-cased). With ``require_question_terms`` they are a refusal;
        otherwise the answer says so before it quotes (``with_unmentioned``)."""
        metadata = " ".join(f"{h.chunk.date} {h.chunk.title}" for h in hits) + " " + metadata
        return missing_key_terms(question, keywords, language(question), metadata)

    def reading_signals(self, question: str, shown: list[Citation], probs: list[float], none: float) -> dict[str, float]:
        """Plain numbers the answer/refuse decision rests on once the model has pointed."""
        lang = language(question)
        order = sorted(range(len(probs)), key=lambda i: -probs[i])
        top = order[0] if order else 0
        chosen = shown[top] if shown else None
        kind = expected_answer_type(question)
        return {
            "relevance": max((self.relevance(s.cos, s.coverage, lang) for s in shown), default=0.0),
            "coverage": max((s.coverage for s in shown), default=0.0),
            "point_top": probs[top] if probs else 0.0,
            "point_margin": (probs[order[0]] - probs[order[1]]) if len(order) > 1 else (probs[top] if probs else 0.0),
            "point_none": none,
            "chosen_coverage": chosen.coverage if chosen else 0.0,
            "chosen_relevance": self.relevance(chosen.cos, chosen.coverage, lang) if chosen else 0.0,
            "type_ok": float(chosen is not None and answer_has_type(chosen.quote, kind, question)),
        }

    def answerable(self, signals: dict[str, float]) -> float | None:
        """P(answerable) from the fitted model for this generator, or None when there is none."""
        m = self.cfg.answerability
        if m is None:
            return None
        z = m.bias + sum(w * signals.get(f, 0.0) for f, w in m.weights.items())
        return 1.0 / (1.0 + math.exp(-z))

    def _probably_unanswerable(self, signals: dict[str, float]) -> Decision:
        p = self.answerable(signals)
        if p is not None and p < self.cfg.answerability.threshold:
            return Decision.refusal(f"the sources probably do not answer this (P {p:.2f} < "
                                    f"{self.cfg.answerability.threshold})", code="probably_unanswerable",
                                    p=round(p, 4), threshold=self.cfg.answerability.threshold)
        return Decision.answer()

    def after_pointing(self, signals: dict[str, float]) -> Decision:
        """Refuse when the model points at no source, or the signals say the sources do not answer?"""
        top, none = signals["point_top"], signals["point_none"]
        if none >= top:
            return Decision.refusal(f"the model points at no source (P(none) {none:.2f})", code="points_at_no_source",
                                    p_none=none)
        decision = self._probably_unanswerable(signals)
        if decision.refuse:
            return decision
        if top < self.cfg.point_min:
            return Decision.refusal(f"the model is unsure which source answers ({top:.2f} < {self.cfg.point_min})",
                                    code="unsure_source", p=top, threshold=self.cfg.point_min)
        return Decision.answer()

    @staticmethod
    def verification_signals(p_yes: float) -> dict[str, float]:
        """The copy strategy's signal: the model's P(yes) that the quoted source answers the question
        (``reader.answers``), and its log-odds (the fitted model is linear in it)."""
        p = min(max(p_yes, 1e-6), 1 - 1e-6)
        return {"verify_yes": p_yes, "verify_logit": math.log(p / (1 - p))}

    def after_verification(self, signals: dict[str, float]) -> Decision:
        """Refuse a copy answer when the fitted model says its source probably does not answer?"""
        return self._probably_unanswerable(signals)

    @staticmethod
    def expected_type(question: str) -> str | None:
        return expected_answer_type(question)

    @staticmethod
    def states_asked_type(question: str, text: str) -> bool:
        return answer_has_type(strip_markers(text), expected_answer_type(question), question)

    def after_quoting(self, question: str, quotes: list[str]) -> Decision:
        """Keep an extractive answer? Not when the question asks for a number, date or person and no
        quoted sentence states one."""
        kind = expected_answer_type(question)
        if quotes and not answer_has_type(" ".join(quotes), kind, question):
            return Decision.refusal(f"no source sentence states the {kind} asked for", code="missing_answer_type",
                                    kind=kind)
        return Decision.answer()

    def after(self, question: str, raw: str, binding: Binding) -> Decision:
        """Keep the generated, bound answer?"""
        # a refusal phrase is final unless genuinely supported content comes before it
        if is_model_refusal(raw) and (not binding.supported or is_model_refusal(raw.split(".")[0])):
            return Decision.refusal("the model found no answer in the sources", code="model_refused")
        if not binding.supported:
            return Decision.refusal("no sentence of the answer is supported by the sources", code="unsupported")
        kind = expected_answer_type(question)
        if not answer_has_type(strip_markers(binding.text), kind, question):
            return Decision.refusal(f"the answer does not state the {kind} asked for", code="missing_answer_type",
                                    kind=kind)
        return Decision.answer()
