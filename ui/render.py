"""HTML for answers and their sources. Every piece of document text and every file name is
escaped here, so HTML or script inside a document stays inert in the browser."""

from __future__ import annotations

import html
import re
from typing import Callable

from rag.types import Answer

CONTEXT_CHARS = 280
_MARK = re.compile(r"\[(\d+)\]")

# Refusal reasons by code (rag/answer/policy.py, rag/answer/question.py ``Decision.code``) in the
# interface's languages; placeholders are the decision's params. An unknown code shows the English reason.
REASONS: dict[str, dict[str, str]] = {
    "question_not_text": {"nl": "de vraag moet tekst zijn", "en": "the question must be text"},
    "empty_question": {"nl": "de vraag is leeg", "en": "the question is empty"},
    "question_too_long": {"nl": "de vraag is te lang ({chars} > {limit} tekens); maak haar korter",
                          "en": "the question is too long ({chars} > {limit} characters); shorten it"},
    "no_words": {"nl": "de vraag bevat geen woorden", "en": "the question has no words"},
    "unsupported_script": {"nl": "vragen in {script} schrift worden niet ondersteund; stel je vraag in het "
                                 "Nederlands of het Engels",
                           "en": "questions in {script} script are not supported; ask in Dutch or English"},
    "instruction_only": {"nl": "de vraag geeft de assistent alleen opdrachten; stel een vraag over de documenten",
                         "en": "the question only gives the assistant instructions; ask about the documents"},
    "nothing_retrieved": {"nl": "niets gevonden in de documenten", "en": "nothing found in the documents"},
    "low_relevance": {"nl": "lage relevantie ({relevance} < {threshold})",
                      "en": "low relevance ({relevance} < {threshold})"},
    "not_in_sources": {"nl": "niet in de bronnen: {terms}", "en": "not in the sources: {terms}"},
    "points_at_no_source": {"nl": "het model wijst geen bron aan (P(geen) {p_none})",
                            "en": "the model points at no source (P(none) {p_none})"},
    "probably_unanswerable": {"nl": "de bronnen beantwoorden dit waarschijnlijk niet (P {p} < {threshold})",
                              "en": "the sources probably do not answer this (P {p} < {threshold})"},
    "unsure_source": {"nl": "het model weet niet zeker welke bron antwoordt ({p} < {threshold})",
                      "en": "the model is unsure which source answers ({p} < {threshold})"},
    "model_refused": {"nl": "het model vond geen antwoord in de bronnen",
                      "en": "the model found no answer in the sources"},
    "unsupported": {"nl": "geen enkele zin van het antwoord wordt door de bronnen gesteund",
                    "en": "no sentence of the answer is supported by the sources"},
    "missing_answer_type": {"nl": "het antwoord noemt niet {kind} waarnaar gevraagd werd",
                            "en": "the answer does not state the {kind} asked for"},
}
# codes about the question itself (not about the sources): shown instead of "not in the sources"
INTAKE = {"question_not_text", "empty_question", "question_too_long", "no_words", "unsupported_script",
          "instruction_only"}
_KINDS = {"nl": {"number": "het getal", "date": "de datum", "person": "de persoon"}}


def _ui_lang(ans: Answer) -> str:
    """The interface is Dutch; an answer to an English question speaks English (as its text does)."""
    return "en" if ans.language == "en" else "nl"


def _param(value, lang: str, key: str) -> str:
    if isinstance(value, float):
        text = f"{value:.2f}" if key in ("relevance", "p", "p_none") else f"{value:g}"
        return text.replace(".", ",") if lang == "nl" else text
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}".replace(",", "." if lang == "nl" else ",")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if key == "kind":
        return _KINDS.get(lang, {}).get(str(value), str(value))
    return str(value)


def refusal_reason(ans: Answer, lang: str | None = None) -> str:
    """Why ``ans`` was refused, worded in ``lang`` (default: the interface language for this answer);
    plain text, escape before use in HTML."""
    lang = lang or _ui_lang(ans)
    template = REASONS.get(ans.refusal_code, {}).get(lang)
    if template is None:
        return ans.refusal_reason or ""
    try:
        return template.format(**{k: _param(v, lang, k) for k, v in (ans.refusal_params or {}).items()})
    except (KeyError, IndexError, ValueError):  # params that do not fit the template: the plain reason
        return ans.refusal_reason or ""


_MD_SPECIAL = set("\\`*_{}[]()#+!|~$<>&\"'=:")


def md_text(text: str) -> str:
    """``text`` safe inside Markdown (gr.Markdown, the chat): HTML-escaped and every character Markdown,
    LaTeX or autolinks could act on written as a numeric entity, so "![x](http://…)" or "<img …>" in a file
    name or a document shows as typed (no image fetched, no link, no markup)."""
    return "".join(f"&#{ord(ch)};" if ch in _MD_SPECIAL else ch for ch in str(text))


def answer_html(ans: Answer) -> str:
    """The chat message: escaped text with clickable [n] markers; refusals look different. The chat renders
    Markdown, so the text is escaped for Markdown too (``md_text``)."""
    parts = _MARK.split(ans.text)  # text, marker number, text, …
    body = "".join(md_text(x) if i % 2 == 0 else f'<a class="rag-cite" href="#rag-src-{x}">[{x}]</a>'
                   for i, x in enumerate(parts))
    if ans.refused:
        en = _ui_lang(ans) == "en"
        if ans.refusal_code in INTAKE:  # a problem with the question, not an answer missing from the sources
            reason = refusal_reason(ans)
            return (f'<div class="rag-refusal">⚠️ <b>{"Question not processed" if en else "Vraag niet verwerkt"}'
                    f"</b> — {md_text(reason[:1].upper() + reason[1:])}.</div>")
        return (f'<div class="rag-refusal">⚠️ <b>{"Not in the sources" if en else "Niet gevonden"}'
                f"</b> — {md_text(ans.text)}</div>")
    note = ' <span class="rag-mode">(extractief)</span>' if ans.mode == "extractive" else ""
    return f'<div class="rag-answer">{body}{note}</div>'


def _highlight(raw: str, start: int, end: int, lo: int, hi: int) -> str:
    e = html.escape
    return (e(raw[lo:start]) + f'<mark class="rag-hl">{e(raw[start:end])}</mark>' + e(raw[end:hi]))


def sources_html(ans: Answer | None, document_text: Callable[[str], str] | None = None) -> str:
    """One card per citation: title, date, file, the supporting span highlighted in its context,
    and the whole document (highlighted) behind a toggle."""
    if ans is None:
        return '<div class="rag-sources-empty">Bronnen verschijnen hier na een antwoord.</div>'
    e = html.escape
    if ans.refused or not ans.citations:
        en = _ui_lang(ans) == "en"
        rel = "relevance" if en else "relevantie"
        items = "".join(f"<li>{e(h.chunk.doc)} ({rel} {_param(h.relevance, _ui_lang(ans), 'relevance')}) — "
                        f"{e(h.chunk.text[:160])}…</li>" for h in ans.passages[:3])
        reason = e(refusal_reason(ans))
        head = "No source supports an answer" if en else "Geen bron ondersteunt een antwoord"
        if ans.refusal_code in INTAKE:
            head = "The question was not processed" if en else "De vraag is niet verwerkt"
        return (f'<div class="rag-sources-empty">{head}' + (f" ({reason})." if reason else ".")
                + (f"<div>{'Nearest passages (not used)' if en else 'Dichtstbijzijnde passages (niet gebruikt)'}:"
                   f"<ul>{items}</ul></div>" if items else "")
                + "</div>")
    cards = []
    for c in ans.citations:
        raw = document_text(c.doc_id) if document_text else ""
        if raw and 0 <= c.start < c.end <= len(raw):
            lo, hi = max(0, c.start - CONTEXT_CHARS), min(len(raw), c.end + CONTEXT_CHARS)
            ctx = ("…" if lo > 0 else "") + _highlight(raw, c.start, c.end, lo, hi) + ("…" if hi < len(raw) else "")
            full = _highlight(raw, c.start, c.end, 0, len(raw))
        else:
            ctx = f'<mark class="rag-hl">{e(c.quote)}</mark>'
            full = ctx
        meta = " · ".join(e(x) for x in (c.date, c.doc) if x)
        cards.append(
            f'<div class="rag-source" id="rag-src-{c.n}" data-n="{c.n}">'
            f'<div class="rag-source-head"><span class="rag-num">[{c.n}]</span> <b>{e(c.title or c.doc)}</b>'
            f'<div class="rag-meta">{meta} · tekens {c.start}–{c.end}</div></div>'
            f'<div class="rag-context">{ctx}</div>'
            f'<details class="rag-full"><summary>Toon het hele document</summary>'
            f'<div class="rag-fulltext">{full}</div></details></div>')
    return '<div class="rag-sources">' + "".join(cards) + "</div>"


CSS = """
.rag-refusal{background:#fff7ed;border-left:4px solid #f97316;padding:6px 10px;border-radius:4px}
.rag-answer a.rag-cite{color:#1d4ed8;font-weight:600;text-decoration:none;cursor:pointer}
.rag-mode{color:#6b7280;font-size:0.85em}
.rag-source{border:1px solid #e5e7eb;border-radius:6px;padding:8px 10px;margin-bottom:8px}
.rag-source.rag-active{border-color:#2563eb;box-shadow:0 0 0 2px #bfdbfe}
.rag-meta{color:#6b7280;font-size:0.85em}
.rag-context{margin-top:6px;white-space:pre-wrap;font-size:0.92em}
.rag-fulltext{white-space:pre-wrap;font-size:0.85em;max-height:320px;overflow:auto;border-top:1px dashed #ddd;margin-top:4px}
mark.rag-hl{background:#fde68a;padding:0 2px}
.rag-sources-empty{color:#6b7280}
"""

# Clicking [n] in the chat opens and highlights source card n (markers live in the chat's DOM,
# cards in the sources panel). Delegated, so it works for messages added later.
JS = """
() => {
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a.rag-cite');
    if (!a) return;
    ev.preventDefault();
    const n = (a.getAttribute('href') || '').replace('#rag-src-', '');
    const card = document.getElementById('rag-src-' + n);
    if (!card) return;
    document.querySelectorAll('.rag-source.rag-active').forEach(c => c.classList.remove('rag-active'));
    card.classList.add('rag-active');
    card.scrollIntoView({behavior: 'smooth', block: 'center'});
  }, true);
}
"""
