"""Follow-up questions -> standalone questions for retrieval, without an LM call (no latency).

"En wat zei hij daarover?" depends on the conversation; retrieval gets the previous standalone
question plus the new one, so both retrievers see the missing names and topics.
"""

from __future__ import annotations

import re
from typing import Callable

from ..text import content_terms, words

ANAPHORA = {
    "hij", "zij", "ze", "hem", "haar", "hun", "hen", "daar", "daarover", "daarvan", "daarbij", "daarin",
    "daarna", "erover", "ervan", "erbij", "deze", "dit", "diezelfde", "dezelfde",
    "he", "she", "they", "him", "her", "them", "it", "that", "this", "there", "those", "these", "its", "his",
}
STARTERS = ("en ", "maar ", "ook ", "and ", "but ", "what about", "en wat", "wat nog", "waarom", "why")


def follow_up_kind(question: str) -> str:
    """"strong" (opens like a continuation, or too short to stand alone), "weak" (a pronoun that may
    point back, in an otherwise complete question) or "" (stands alone)."""
    q = question.strip().lower()
    ws = words(q)
    if not ws:
        return ""
    if q.startswith(STARTERS) or len(ws) <= 3:
        return "strong"
    return "weak" if any(w in ANAPHORA for w in ws) else ""


def is_follow_up(question: str) -> bool:
    return bool(follow_up_kind(question))


def standalone(question: str, history: list[dict] | None,
               context_helps: Callable[[str, str], bool] | None = None) -> tuple[str, str]:
    """Return (query for retrieval, previous question it follows or ""). A weak follow-up keeps
    the previous question only when ``context_helps(question, joint_query)`` says so (without a
    judge it does), so an independent question after earlier turns does not inherit their topic."""
    if not history:
        return question, ""
    prev = ""
    for turn in reversed(history):
        if turn.get("role") == "user":
            prev = turn.get("standalone") or turn.get("content", "")
            break
    kind = follow_up_kind(question)
    if not prev or not kind:
        return question, ""
    joint = f"{prev} {question}"
    if kind == "weak" and context_helps is not None and not context_helps(question, joint):
        return question, ""
    return joint, prev


# interrogatives of Dutch and English (the languages questions are checked for), a closed class of the language
_QWORD = (r"(?:wat|wie|welke|welk|waar|waarom|wanneer|hoeveel|hoe|what|who|whom|which|where|when|why|how)")
_AND_QUESTION = re.compile(rf"^(?P<a>.+?)(?:\s*,\s*|\s+)(?:en|and)\s+(?P<b>{_QWORD}\b.+)$", re.I | re.S)
_BOTH = re.compile(r"^(?P<pre>.*?)\b(?:zowel|both)\s+(?P<a>.+?)\s+(?:als|and)\s+(?P<b>[^,;?!.]+)(?P<post>.*)$",
                   re.I | re.S)


def question_parts(question: str) -> list[str]:
    """The sub-questions of a question that asks two things ("Hoeveel X in 2020, en hoeveel in 2024?",
    "Wie was zowel in 2020 als in 2024 ...?"), each to be answered from its own best source; [] for a
    question that asks one thing. A short second part borrows the first part's words ("hoeveel in
    2024?" is asked as "hoeveel in 2024? Hoeveel X in 2020"), as a follow-up borrows the previous question."""
    q = question.strip()
    m = _AND_QUESTION.match(q)
    if m and len(words(m.group("a"))) >= 3:
        a, b = m.group("a").rstrip(" ,;"), m.group("b")
        a = a if a.endswith("?") else a + "?"
        return [a, b if len(set(content_terms(b))) >= 3 else f"{b} {a}"]
    m = _BOTH.match(q)
    if m:
        pre, post = m.group("pre"), m.group("post")
        return [f"{pre}{m.group('a')}{post}".strip(), f"{pre}{m.group('b')}{post}".strip()]
    return []
