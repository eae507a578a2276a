"""HTML for answers and their sources. Every piece of document text and every file name is
escaped here, so HTML or script inside a document stays inert in the browser."""

from __future__ import annotations

import html
import re
from typing import Callable

from rag.types import Answer

CONTEXT_CHARS = 280
_MARK = re.compile(r"\[(\d+)\]")


def answer_html(ans: Answer) -> str:
    """The chat message: escaped text with clickable [n] markers; refusals look different."""
    body = html.escape(ans.text)
    if ans.refused:
        return (f'<div class="rag-refusal">⚠️ <b>{"Not in the sources" if ans.language == "en" else "Niet gevonden"}'
                f"</b> — {body}</div>")
    body = _MARK.sub(lambda m: f'<a class="rag-cite" href="#rag-src-{m.group(1)}">[{m.group(1)}]</a>', body)
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
        items = "".join(f"<li>{e(h.chunk.doc)} (relevantie {h.relevance:.2f}) — {e(h.chunk.text[:160])}…</li>"
                        for h in ans.passages[:3])
        reason = e(ans.refusal_reason or "")
        return (f'<div class="rag-sources-empty">Geen bron ondersteunt een antwoord ({reason}).'
                + (f"<div>Dichtstbijzijnde passages (niet gebruikt):<ul>{items}</ul></div>" if items else "")
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
