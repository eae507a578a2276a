"""Deciding "not answerable" outside the model.

Small generators under-refuse, and on near-miss questions the retrieval score is as high as for
answerable ones, so three independent checks are used: (1) a calibrated relevance threshold,
(2) the question's specific terms (names, numbers, years) must occur in the retrieved text,
(3) the answer must contain the kind of thing the question asks for (a number for "hoeveel",
a date for "wanneer", a name for "wie"). The model's own refusal is detected loosely as well.
"""

from __future__ import annotations

import re

from .textutil import STOPWORDS, content_terms, stem, words

REFUSAL_PATTERNS = re.compile(
    r"niet in de bronnen|staat (?:er )?niet (?:in|vermeld)|bronnen (?:vermelden|zeggen|noemen) (?:dat |dit |het )?niet|"
    r"geen informatie|niet vermeld|niet genoemd|kan (?:ik )?(?:dat|dit|het|deze vraag) niet|"
    r"is niet bekend|niet te vinden|"
    r"sources do not|sources don't|not (?:mentioned|stated|specified|provided|in the sources)|"
    r"no information|cannot (?:find|answer|determine)|can't (?:find|answer)|does not (?:say|mention|specify)",
    re.I,
)

# English names of things the Dutch corpus writes differently (for the key-term check).
ALIASES = {
    "nato": ["navo"], "un": ["vn"], "eu": ["eu", "europese unie"], "ukraine": ["oekraïne"], "russia": ["rusland"],
    "netherlands": ["nederland"], "dutch": ["nederland"], "germany": ["duitsland"], "france": ["frankrijk"],
    "sweden": ["zweden"], "turkey": ["turkije"], "iraq": ["irak"], "georgia": ["georgië"],
    "australia": ["australië"], "korea": ["korea"], "britain": ["brit"], "british": ["brit"],
    "american": ["amerika"], "us": ["vs", "verenigde staten"], "usa": ["vs", "verenigde staten"],
    "united": ["verenigde"], "states": ["staten"], "hungary": ["hongarije"], "romania": ["roemenië"],
    "slovakia": ["slowakije"], "syria": ["syrië"], "brussels": ["brussel"], "the hague": ["den haag"],
    "moscow": ["moskou"], "kyiv": ["kiev"], "kiev": ["kiev"], "north": ["noord"], "macedonia": ["macedonië"],
    "finnish": ["finland"], "swedish": ["zweden"], "german": ["duitsland", "duits"], "french": ["frankrijk", "frans"],
    "covid": ["covid"], "secretary": ["secretaris"], "general": ["generaal"], "april": ["april"],
    "february": ["februari"], "march": ["maart"], "july": ["juli"], "june": ["juni"], "may": ["mei"],
}

NUMBER_WORDS = {
    "een", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen", "tien", "elf", "twaalf", "twintig",
    "dertig", "honderd", "duizend", "miljoen", "miljard", "dertigste", "eerste", "tweede", "derde",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twenty", "thirty", "hundred",
    "thousand", "million", "billion", "first", "second", "third", "thirtieth",
}
MONTHS = {"januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
          "november", "december", "january", "february", "march", "may", "june", "july", "august", "october",
          "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag", "monday", "tuesday",
          "wednesday", "thursday", "friday", "saturday", "sunday", "jaar", "year", "dag", "day", "week"}
QUESTION_WORDS = {"wat", "wie", "welke", "welk", "waar", "wanneer", "hoeveel", "hoe", "waarom", "what", "who",
                  "which", "where", "when", "how", "why", "en", "and", "in", "op", "volgens", "noem", "geef"}


def is_model_refusal(text: str) -> bool:
    return bool(REFUSAL_PATTERNS.search(text or ""))


_ADJECTIVE = re.compile(r"(?:ische|isch|sche|aanse|iaanse|ese|se|an|ian|ish)$")


def key_terms(question: str) -> tuple[list[str], list[str]]:
    """(names, numbers) the question hinges on, lower-cased. Capitalised adjectives
    ("Europese", "Amerikaanse") are skipped: documents often name the place differently."""
    names, numbers = [], []
    tokens = re.findall(r"[^\W_]+(?:[-'’][^\W_]+)*", question)
    for i, tok in enumerate(tokens):
        low = tok.lower()
        if low in STOPWORDS or low in QUESTION_WORDS:
            continue
        if any(ch.isdigit() for ch in tok):
            numbers.append(low)
        elif tok[0].isupper() and i > 0 and len(tok) > 2 and not _ADJECTIVE.search(low):
            names.append(low)
    return names, numbers


def _found(term: str, low: str, prefixes: set[str]) -> bool:
    if term in low:
        return True
    parts = [p for p in re.split(r"[-'’]", term) if len(p) >= 4]
    if any(p in low for p in parts):
        return True
    if len(term) >= 5 and term[:5] in prefixes:
        return True
    return any(a in low for a in ALIASES.get(term, []))


def missing_key_terms(question: str, corpus_low: str, corpus_prefixes: set[str], retrieved_low: str) -> list[str]:
    """Names the whole corpus never mentions, and numbers the retrieved text never mentions."""
    names, numbers = key_terms(question)
    missing = [n for n in names if not _found(n, corpus_low, corpus_prefixes)]
    missing += [n for n in numbers if n not in retrieved_low]
    return missing


def prefixes_of(text_low: str) -> set[str]:
    return {w[:5] for w in words(text_low) if len(w) >= 5}


def expected_answer_type(question: str) -> str | None:
    q = question.lower()
    if re.search(r"\bhoeveel\b|\bhow (?:many|much)\b|\bwelk bedrag\b|\bwelk aantal\b", q):
        return "number"
    if re.search(r"\bwanneer\b|\bwhen\b|\bop welke datum\b|\bin welk jaar\b|\bwhat date\b|\bwhich year\b|\bwhat year\b", q):
        return "date"
    if re.search(r"^\s*(?:en\s+)?(?:wie|who)\b", q):
        return "person"
    return None


def answer_has_type(answer: str, kind: str | None) -> bool:
    if kind is None:
        return True
    ws = words(answer)
    if kind == "number":
        return any(any(c.isdigit() for c in w) for w in ws) or any(w in NUMBER_WORDS for w in ws)
    if kind == "date":
        return any(any(c.isdigit() for c in w) for w in ws) or any(w in MONTHS for w in ws)
    if kind == "person":
        toks = re.findall(r"[^\W_]+", answer)
        return any(t[0].isupper() and t.lower() not in STOPWORDS for t in toks)
    return True
