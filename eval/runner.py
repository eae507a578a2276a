"""`rag eval`: run a question set through the same public API the CLI and UI use, and score it with the
registered metrics (``eval.registry``), overall and per split."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag import Answer, Assistant

from . import metrics as M
from . import registry as R
from .dataset import EvalItem, conversation_order, load_set


@dataclass
class ItemResult:
    item: EvalItem
    retrieved: list[dict] = field(default_factory=list)
    retrieval: dict[str, float] = field(default_factory=dict)
    answer: dict | None = None
    verdict: dict = field(default_factory=dict)

    def scored(self) -> R.Scored:
        it = self.item
        return R.Scored(type=it.type, split=it.split, answerable=it.answerable, paraphrase=it.paraphrase,
                        follow_up=bool(it.follows), lang=it.lang, retrieval=self.retrieval, verdict=self.verdict,
                        timings=(self.answer or {}).get("timings", {}))

    def to_dict(self) -> dict:
        it = self.item
        return {"id": it.id, "type": it.type, "split": it.split, "question": it.question,
                "paraphrase": it.paraphrase, "follows": it.follows, "reference": it.answer,
                "retrieval": self.retrieval, "retrieved": self.retrieved, "answer": self.answer,
                "verdict": self.verdict}


def evaluate_item(item: EvalItem, ans: Answer | None, hits, judge, files: dict[str, str],
                  ks=(1, 3, 5, 10)) -> ItemResult:
    res = ItemResult(item)
    res.retrieved = [{"rank": h.rank, "doc": h.chunk.doc, "chunk_id": h.chunk.chunk_id, "score": round(h.score, 5),
                      "relevance": h.relevance, "text": h.chunk.text} for h in hits]
    if item.answerable and item.evidence:
        res.retrieval = M.retrieval_scores([h.chunk.text for h in hits], item.evidence, ks)
        docs = [h.chunk.doc for h in hits]
        res.retrieval[f"sources@{max(ks)}"] = M.all_sources_retrieved(docs, item.sources, max(ks))
    if ans is None:
        return res
    res.answer = ans.to_dict()
    res.answer.pop("passages", None)
    v: dict = {"refused": ans.refused}
    if item.answerable:
        v["correct"] = M.is_correct(ans.text, ans.refused, item.must_include)
        v["false_refusal"] = ans.refused
    else:
        v["refusal_ok"] = M.refusal_ok(ans.text, ans.refused)
    if not ans.refused and ans.citations:
        quotes = {c.n: c.quote for c in ans.citations}
        v["citation"] = M.citation_scores(ans.text, quotes, judge)
        if item.evidence:
            ok = 0
            for c in ans.citations:
                spans = M.evidence_spans(files.get(c.doc, ""), item.evidence) if c.doc in item.sources else []
                ok += any(M.spans_overlap((c.start, c.end), s) for s in spans)
            v["evidence_precision"] = ok / len(ans.citations)
    elif not ans.refused:
        v["citation"] = M.citation_scores(ans.text, {}, judge)
    res.verdict = v
    return res


def aggregate(results: list[ItemResult], registry: list[R.Metric] | None = None) -> dict[str, float]:
    return R.compute(registry or R.metrics(), [r.scored() for r in results])


def breakdowns(results: list[ItemResult], registry: list[R.Metric] | None = None) -> dict[str, dict[str, float]]:
    registry = [m for m in (registry or R.metrics()) if m.group != "latency" or m.name == "latency.p50_s"]
    groups: dict[str, list[ItemResult]] = {}
    for r in results:
        groups.setdefault(f"type:{r.item.type}", []).append(r)
        if r.item.split:
            groups.setdefault(f"split:{r.item.split}", []).append(r)
        if r.item.paraphrase:
            groups.setdefault("paraphrase", []).append(r)
        if r.item.follows:
            groups.setdefault("follow_up", []).append(r)
        if r.item.lang == "en":
            groups.setdefault("lang:en", []).append(r)
    return {g: aggregate(rs, registry) for g, rs in sorted(groups.items())}


SECRETS = {"api_key", "ui_auth"}


def _public(d: dict) -> dict:
    """The config as written into reports: secrets replaced by a mark."""
    return {k: (_public(v) if isinstance(v, dict) else ("***" if k in SECRETS and v else v)) for k, v in d.items()}


def _file_texts(assistant: Assistant) -> dict[str, str]:
    """Raw text per document file name (the offsets of citations point into these)."""
    return {d.name: assistant.document_text(d.doc_id) for d in assistant.documents()}


def run(set_path: str | Path, assistant: Assistant, out_dir: str | Path, mode: str | None = None,
        retrieval_only: bool = False, k: int | None = None, ks=(1, 3, 5, 10), split: str | None = None,
        judge=None, progress: bool = True) -> dict:
    """Run every item (follow-ups right after their parent, with its history) through the public API;
    retrieval is scored on the passages the answer call itself retrieved. Ctrl-C keeps what finished."""
    items = conversation_order(load_set(set_path))
    if split:
        items = [it for it in items if it.split == split]
    cfg = assistant.cfg
    if judge is None:
        from .judge import LexicalE5Judge

        judge = LexicalE5Judge(assistant.embedder)
    mode = mode or cfg.mode
    files = _file_texts(assistant)
    k = k or cfg.top_k
    ks = tuple(sorted(set(ks)))
    depth = max(ks)
    registry = R.metrics(ks)
    results: list[ItemResult] = []
    histories: dict[str, list[dict]] = {}
    interrupted = False
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=f"eval {mode if not retrieval_only else 'retrieval'}", unit="q")
    try:
        for it in items:
            history = histories.get(it.follows, []) if it.follows else []
            ans = None
            if retrieval_only:
                hits = assistant.search(it.question, k=depth, history=history or None)
                histories[it.id] = history + [{"role": "user", "content": it.question}]
            else:
                ans = assistant.ask(it.question, history=history or None, mode=mode, k=k, depth=depth)
                hits = ans.passages
                histories[it.id] = history + [
                    {"role": "user", "content": it.question, "standalone": ans.standalone_question},
                    {"role": "assistant", "content": ans.text}]
            results.append(evaluate_item(it, ans, hits, judge, files, ks))
            if bar:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar:
            bar.close()
    splits = sorted({r.item.split for r in results if r.item.split})
    out = {
        "set": str(set_path), "mode": "retrieval-only" if retrieval_only else mode, "k": k, "ks": list(ks),
        "split": split or "all",
        "primary": R.PRIMARY_RETRIEVAL_ONLY if retrieval_only else R.PRIMARY,
        "judge": getattr(judge, "name", type(judge).__name__), "config": _public(cfg.to_dict()),
        "generator": cfg.generator if mode == "generate" and not retrieval_only else None,
        "interrupted": interrupted, "seconds": round(time.perf_counter() - t0, 2),
        "metrics": aggregate(results, registry),
        "splits": {s: aggregate([r for r in results if r.item.split == s], registry) for s in splits},
        "breakdown": breakdowns(results, registry),
        "registry": [{"name": m.name, "group": m.group, "headline": m.headline,
                      "higher_is_better": m.higher_is_better, "description": m.description} for m in registry],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write(out, results, Path(out_dir))
    return out


def write(summary: dict, results: list[ItemResult], out: Path) -> None:
    from .report import render_html, render_markdown

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    rows = [r.to_dict() for r in results]
    with open(out / "items.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(render_markdown(summary, rows), encoding="utf-8")
    (out / "report.html").write_text(render_html(summary, rows), encoding="utf-8")


def compare(dir_a: str | Path, dir_b: str | Path) -> str:
    """Metric deltas and items whose verdict changed, as Markdown."""
    a = json.loads((Path(dir_a) / "results.json").read_text(encoding="utf-8"))
    b = json.loads((Path(dir_b) / "results.json").read_text(encoding="utf-8"))
    lines = [f"# {dir_a} -> {dir_b}", "", "| metric | A | B | delta |", "|---|---:|---:|---:|"]
    for key in sorted(set(a["metrics"]) | set(b["metrics"])):
        va, vb = a["metrics"].get(key), b["metrics"].get(key)
        if va is None or vb is None:
            lines.append(f"| {key} | {va if va is not None else '-'} | {vb if vb is not None else '-'} | |")
        else:
            lines.append(f"| {key} | {va:.3f} | {vb:.3f} | {vb - va:+.3f} |")

    def verdicts(d):
        out = {}
        for line in (Path(d) / "items.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            v = r.get("verdict") or {}
            out[r["id"]] = (v.get("correct", v.get("refusal_ok")), r["question"])
        return out

    va, vb = verdicts(dir_a), verdicts(dir_b)
    changed = [(i, va[i][0], vb[i][0], vb[i][1]) for i in va if i in vb and va[i][0] != vb[i][0]]
    lines += ["", f"## Items that changed verdict ({len(changed)})", ""]
    for i, x, y, q in changed:
        lines.append(f"- `{i}` {x} -> {y}: {q}")
    return "\n".join(lines) + "\n"
