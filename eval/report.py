"""Markdown and self-contained HTML reports (inline SVG plots, no external assets).

Questions, answers, quotes, file names, ids and types come from data sets and documents: every one of
them is escaped (``_h`` for HTML, ``_md`` for Markdown table cells), so a hostile item stays text."""

from __future__ import annotations

import html
from typing import Sequence


def _h(value) -> str:
    """Any value as escaped HTML text (numbers and None included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _md(value, limit: int | None = None) -> str:
    """Any value as one Markdown table cell: one line, HTML escaped, pipes and backticks neutral."""
    text = " ".join(("" if value is None else str(value)).split())
    text = text[:limit] if limit else text
    return html.escape(text, quote=False).replace("|", "&#124;").replace("`", "&#96;")


def registered(summary: dict, headline_only: bool = False) -> list[str]:
    """Metric names in registry order (as recorded in results.json) that this run has values for."""
    m = summary["metrics"]
    return [r["name"] for r in summary.get("registry", []) if r["name"] in m and (r["headline"] or not headline_only)]


def headline(summary: dict) -> list[str]:
    """One line per headline metric, with per-split values when the set has splits."""
    splits = summary.get("splits") or {}
    lines = []
    for key in registered(summary, headline_only=True):
        star = " *" if key == summary.get("primary") else ""
        per = "".join(f"  {s} {v[key]:.3f}" for s, v in splits.items() if key in v)
        lines.append(f"{key:32s} {summary['metrics'][key]:.3f}{per}{star}")
    return lines


def _fmt(v, key: str = "") -> str:
    if key == "items":
        return str(int(v))
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _verdict(r: dict) -> str:
    v = r.get("verdict") or {}
    if "correct" in v:
        return "correct" if v["correct"] else ("refused" if v.get("refused") else "wrong")
    if "refusal_ok" in v:
        return "refused (ok)" if v["refusal_ok"] else "answered (should refuse)"
    return "hit@5" if (r.get("retrieval") or {}).get("hit@5") else ("miss" if r.get("retrieval") else "-")


def render_markdown(summary: dict, rows: list[dict]) -> str:
    m = summary["metrics"]
    out = [f"# Evaluation: {_md(summary['set'])}", "",
           f"mode **{_md(summary['mode'])}**, k={_md(summary['k'])}, generator {_md(summary.get('generator') or '-')}, "
           f"judge {_md(summary['judge'])}, {int(m.get('items', 0))} items in {_md(summary['seconds'])} s"
           + (" (interrupted)" if summary.get("interrupted") else ""), "",
           f"primary metric: **{_md(summary.get('primary', ''))}**", ""]
    splits = summary.get("splits") or {}
    out += ["| metric | all | " + " | ".join(_md(s) for s in splits) + " |", "|---|---:|" + "---:|" * len(splits)]
    out += [f"| {k} | {_fmt(m[k])} | " + " | ".join(_fmt(v[k]) if k in v else "-" for v in splits.values()) + " |"
            for k in registered(summary)]
    out += ["", "## Breakdown", ""]
    cols = [k for k in registered(summary, headline_only=True) if not k.startswith("latency.")] + ["items"]
    out += ["| group | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for g, gm in summary["breakdown"].items():
        out.append(f"| {_md(g)} | " + " | ".join(_fmt(gm[c], c) if c in gm else "-" for c in cols) + " |")
    out += ["", "## Items", "", "| id | type | verdict | question | answer |", "|---|---|---|---|---|"]
    for r in rows:
        a = (r.get("answer") or {}).get("answer", "")
        out.append(f"| {_md(r['id'])} | {_md(r['type'])} | {_md(_verdict(r))} | {_md(r['question'])} | {_md(a, 160)} |")
    return "\n".join(out) + "\n"


def _bars(title: str, labels: Sequence[str], values: Sequence[float], vmax: float = 1.0) -> str:
    w, bar_h, gap, left = 560, 18, 6, 150
    h = 30 + len(labels) * (bar_h + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_h(title)}">',
             f'<text x="0" y="16" font-weight="bold" font-size="13">{_h(title)}</text>']
    for i, (lab, val) in enumerate(zip(labels, values)):
        y = 26 + i * (bar_h + gap)
        bw = 0 if vmax <= 0 else max(0.0, min(1.0, val / vmax)) * (w - left - 60)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{_h(lab)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="#3b82f6"/>')
        parts.append(f'<text x="{left + bw + 4:.1f}" y="{y + 13}" font-size="12">{val:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(title: str, values: Sequence[float], bins: int = 12) -> str:
    if not values:
        return ""
    lo, hi = 0.0, max(values) or 1.0
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    w, h, left, bottom = 560, 200, 30, 30
    bw = (w - left) / bins
    cmax = max(counts) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 20}" role="img" aria-label="{_h(title)}">',
             f'<text x="0" y="14" font-weight="bold" font-size="13">{_h(title)}</text>']
    for i, c in enumerate(counts):
        bh = (h - bottom - 20) * c / cmax
        x = left + i * bw
        parts.append(f'<rect x="{x:.1f}" y="{h - bottom - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="#10b981"/>')
        if c:
            parts.append(f'<text x="{x + 2:.1f}" y="{h - bottom - bh - 2:.1f}" font-size="10">{c}</text>')
        if i % 2 == 0:
            parts.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" font-size="10">{lo + i * width:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(summary: dict, rows: list[dict]) -> str:
    m = summary["metrics"]
    bd = summary["breakdown"]
    types = [g for g in bd if g.startswith("type:")]
    charts = []
    ans_types = [g for g in types if "answer.correct" in bd[g]]
    if ans_types:
        charts.append(_bars("answer correct by type", [g[5:] for g in ans_types],
                            [bd[g]["answer.correct"] for g in ans_types]))
    ret_types = [g for g in types if "retrieval.hit@5" in bd[g]]
    if ret_types:
        charts.append(_bars("retrieval hit@5 by type", [g[5:] for g in ret_types],
                            [bd[g]["retrieval.hit@5"] for g in ret_types]))
    lat = [r["answer"]["timings"].get("total_s", 0.0) for r in rows if r.get("answer")]
    charts.append(_histogram("latency per question (total)", lat))
    e = _h
    splits = summary.get("splits") or {}
    metric_rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(m[k]))}</td>"
                          + "".join(f"<td>{e(_fmt(v[k])) if k in v else '-'}</td>" for v in splits.values()) + "</tr>"
                          for k in registered(summary))
    split_heads = "".join(f"<th>{e(s)}</th>" for s in splits)
    item_rows = []
    for r in rows:
        a = r.get("answer") or {}
        cits = "".join(f"<li>[{e(c.get('n'))}] {e(c.get('doc'))} {e(c.get('start'))}-{e(c.get('end'))}: "
                       f"“{e(c.get('quote'))}”</li>" for c in a.get("citations", []))
        item_rows.append(
            f"<tr><td>{e(r['id'])}</td><td>{e(r['type'])}</td><td>{e(_verdict(r))}</td><td>{e(r['question'])}</td>"
            f"<td>{e(a.get('answer', ''))}<ul>{cits}</ul></td></tr>")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;vertical-align:top;font-size:13px}}ul{{margin:0;padding-left:1.2em}}</style>
</head><body><h1>Evaluation: {e(summary['set'])}</h1>
<p>mode <b>{e(summary['mode'])}</b>, k={e(summary['k'])}, generator {e(summary.get('generator') or '-')},
judge <code>{e(summary['judge'])}</code>, {int(m.get('items', 0))} items in {e(summary['seconds'])} s
{'(interrupted)' if summary.get('interrupted') else ''}</p>
<p>primary metric: <b>{e(summary.get('primary', ''))}</b></p>
<table><tr><th>metric</th><th>all</th>{split_heads}</tr>{metric_rows}</table>
{''.join(f'<div>{c}</div>' for c in charts)}
<h2>Items</h2><table><tr><th>id</th><th>type</th><th>verdict</th><th>question</th><th>answer</th></tr>
{''.join(item_rows)}</table></body></html>
"""
