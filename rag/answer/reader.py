"""Stage 3 (read strategy) — the small model points and copies; the app decides and cites.

Small models copy spans well but paraphrase badly (dropped negations, echoed questions), so the
model is asked two short things over one prompt (llama.cpp reuses the shared prefix, so the second
call costs only its few new tokens):
1. point: the log-probabilities that the answer is in shown source ``[1]..[n]`` or in none (``[0]``);
2. copy: for each chosen source, the words of that source that answer the question.
A copied answer is kept only when it is verified against its source (an exact copy, or words the
source states with no negation flip, invented number or name, repetition, or bare echo of the
question); otherwise the source sentence itself is the answer. Every answer part cites exactly the
source it came from, so citations are right by construction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..text import content_terms, term_coverage, words
from ..types import Citation
from .binding import new_information, numbers, unsupported_facts

NEGATIONS = {"niet", "geen", "nooit", "niets", "noch", "not", "no", "never", "none", "nothing", "neither", "nor"}

POINT_PROMPT = {
    "nl": "Welke bron beantwoordt de vraag? Antwoord met het nummer van de bron, of 0 als geen enkele bron het "
          "antwoord geeft.",
    "en": "Which source answers the question? Answer with the number of the source, or 0 if no source gives the "
          "answer.",
}
POINT_PREFILL = {"nl": "Bron [", "en": "Source ["}
COPY_PREFILL = {"nl": "Bron [{n}]. Antwoord: ", "en": "Source [{n}]. Answer: "}
# the yes/no verification asked on the copy prompt (its last line replaced): one source / several
VERIFY_PROMPT = {
    "nl": ("Geeft bron [1] het antwoord op de vraag? Antwoord met Ja of Nee.",
           "Geven de bronnen het antwoord op de vraag? Antwoord met Ja of Nee."),
    "en": ("Does source [1] answer the question? Answer Yes or No.",
           "Do the sources answer the question? Answer Yes or No."),
}
VERIFY_OPTIONS = {"nl": ["Ja", "Nee"], "en": ["Yes", "No"]}


@dataclass
class Reading:
    """What the model said about the shown sources (indices are 0-based into ``shown``)."""

    probs: list[float]  # P(the answer is in shown source i)
    none: float  # P(no shown source answers)
    chosen: list[int] = field(default_factory=list)
    parts: list[tuple[str, int, bool]] = field(default_factory=list)  # (answer text, source index, copied?)

    @property
    def top(self) -> float:
        return max(self.probs) if self.probs else 0.0


def messages_for(question: str, shown: list[Citation], lang: str, system: str, previous: str = "") -> list[dict]:
    """The prompt over the shown sources, ending in the question which source answers; the copy
    step continues the same prompt with a prefilled answer turn (an explicit copy instruction instead
    was measured worse on both tune splits: correct seeds 0.629 -> 0.613, install-guide 0.482 -> 0.459)."""
    lines = []
    for i, s in enumerate(shown, 1):
        head = f"[{i}]" + (f" ({s.date})" if s.date else "")
        lines.append(f"{head} {s.quote}")
    ctx = (f"Vervolg op de vraag: {previous}\n" if lang == "nl" else f"Follow-up to: {previous}\n") if previous else ""
    label = "Vraag" if lang == "nl" else "Question"
    src = "Bronnen" if lang == "nl" else "Sources"
    user = f"{src}:\n" + "\n".join(lines) + f"\n\n{ctx}{label}: {question}\n{POINT_PROMPT[lang]}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def answers(gen, messages: list[dict], n: int, lang: str) -> float:
    """P(yes) that the ``n`` shown sources answer the question, from one forward pass: ``messages``
    (``messages_for``) with the pointing question replaced by a yes/no question. Asked on the copy
    prompt, llama.cpp reuses the cached prefix, so it costs the few tokens of the new last line."""
    msgs = [dict(m) for m in messages]
    head = msgs[-1]["content"].rsplit("\n", 1)[0]
    msgs[-1]["content"] = f"{head}\n{VERIFY_PROMPT[lang][0 if n == 1 else 1]}"
    lp = gen.option_logprobs(msgs, "", VERIFY_OPTIONS[lang])
    return math.exp(lp[0])


def point(gen, messages: list[dict], n: int, lang: str) -> tuple[list[float], float]:
    """(P(source i) for i in 1..n, P(none)) from one forward pass."""
    options = [str(i) for i in range(0, min(n, 9) + 1)]
    lp = gen.option_logprobs(messages, POINT_PREFILL[lang], options)
    p = [math.exp(x) for x in lp]
    return p[1:] + [0.0] * (n - len(p) + 1), p[0]


def choose(probs: list[float], max_sources: int, ratio: float, rank_penalty: float = 0.0) -> list[int]:
    """Sources by the model's pointing combined with the evidence ranking (``log p - rank_penalty *
    position``), keeping those whose combined weight is at least ``ratio`` of the best, best first."""
    if not probs:
        return []
    w = [math.log(max(p, 1e-9)) - rank_penalty * i for i, p in enumerate(probs)]
    order = sorted(range(len(probs)), key=lambda i: -w[i])
    best = w[order[0]]
    return [i for i in order[:max_sources] if math.exp(w[i] - best) >= ratio]


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w%€$.,-]+", " ", s.lower()).split()).strip(" .,")


def clean_copy(text: str) -> str:
    """First line of the model's answer without markers, quotes or a trailing source mention."""
    text = (text or "").strip().split("\n")[0]
    text = re.sub(r"\s*\[\d+\]", "", text)
    return text.strip().strip("\"'“”‘’«»").strip()


def degenerate(text: str) -> bool:
    """Repeats itself: a word trigram occurring three times, or one word making up half the answer."""
    ws = words(text)
    if len(ws) >= 6:
        grams = [tuple(ws[i:i + 3]) for i in range(len(ws) - 2)]
        if max(grams.count(g) for g in set(grams)) >= 3:
            return True
        if max(ws.count(w) for w in set(ws)) * 2 > len(ws) and len(set(ws)) > 1:
            return True
    return False


def negation_flip(answer: str, source: str) -> bool:
    """The answer negates what the source states positively, or drops the source's negation
    while repeating the words around it."""
    a, s = set(words(answer)), words(source)
    a_neg, s_neg = bool(a & NEGATIONS), bool(set(s) & NEGATIONS)
    if a_neg and not s_neg:
        return True
    if s_neg and not a_neg:
        # the source's negation governs the copied words when they sit within 4 words of it
        pos = [i for i, w in enumerate(s) if w in NEGATIONS]
        near = {w for i in pos for w in s[max(0, i - 4): i + 5]} - NEGATIONS
        return len(set(content_terms(" ".join(near))) & set(content_terms(answer))) >= 2
    return False


def bare_number(text: str) -> bool:
    """Only numbers (and punctuation): "2022", "4", "0, 1, 5"."""
    return bool(numbers(text)) and not re.search(r"[^\W\d_]", text)


def verify(answer: str, source: str, question: str, asks_number: bool = True, said: str = "") -> bool:
    """Is ``answer`` a faithful copy of what ``source`` says in reply to ``question``? A bare number
    answers only a question that asks for a number or a date (``asks_number``); a follow-up is not
    answered by words the previous answer (``said``) already gave ("Wat benadrukte hij?" -> "Austin")."""
    if not answer or len(answer) > 400 or degenerate(answer):
        return False
    if said and _norm(answer) and _norm(answer) in _norm(said):
        return False
    if bare_number(answer) and not asks_number:
        return False
    new_numbers = numbers(answer) - numbers(question)
    if not new_information(answer, question) and not new_numbers and not set(words(answer)) & NEGATIONS:
        return False  # a bare echo of the question (a number the question itself gives is no answer)
    if negation_flip(answer, source) or unsupported_facts(answer, question, source):
        return False
    if _norm(answer) and _norm(answer) in _norm(source):
        return True
    return term_coverage(new_information(answer, question) or answer, source) >= 0.6


def copy(gen, messages: list[dict], shown: list[Citation], idx: int, question: str, lang: str,
         max_tokens: int = 48, asks_number: bool = True, said: str = "") -> tuple[str, bool]:
    """(answer text, True) when the model's copy verifies against source ``idx``; else (quote, False).
    ``said``: what the previous answer of the conversation led with (a follow-up's copy must not just
    repeat it)."""
    raw = gen.complete(messages, COPY_PREFILL[lang].format(n=idx + 1), max_tokens=max_tokens, stop=["\n"])
    text = clean_copy(raw)
    if verify(text, shown[idx].quote, question, asks_number, said):
        return text, True
    return shown[idx].quote, False
