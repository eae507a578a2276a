"""Follow-up questions -> standalone questions for retrieval, without an LM call (no latency).

"En wat zei hij daarover?" depends on the conversation; retrieval gets the previous standalone
question plus the new one, so both retrievers see the missing names and topics.
"""

from __future__ import annotations

from ..text import words

ANAPHORA = {
    "hij", "zij", "ze", "hem", "haar", "hun", "hen", "daar", "daarover", "daarvan", "daarbij", "daarin",
    "daarna", "erover", "ervan", "erbij", "deze", "dit", "diezelfde", "dezelfde",
    "he", "she", "they", "him", "her", "them", "it", "that", "this", "there", "those", "these", "its", "his",
}
STARTERS = ("en ", "maar ", "ook ", "and ", "but ", "what about", "en wat", "wat nog", "waarom", "why")


def is_follow_up(question: str) -> bool:
    q = question.strip().lower()
    ws = words(q)
    if not ws:
        return False
    if q.startswith(STARTERS) or len(ws) <= 3:
        return True
    return any(w in ANAPHORA for w in ws)


def standalone(question: str, history: list[dict] | None) -> tuple[str, str]:
    """Return (query for retrieval, previous question it follows or "")."""
    if not history:
        return question, ""
    prev = ""
    for turn in reversed(history):
        if turn.get("role") == "user":
            prev = turn.get("standalone") or turn.get("content", "")
            break
    if not prev or not is_follow_up(question):
        return question, ""
    return f"{prev} {question}", prev
