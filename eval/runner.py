"""`rag eval`: run a question set through the same public API the CLI and UI use, and score it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag.assistant import Assistant
from rag.config import RagConfig
from rag.types import Answer

from . import metrics as M
from .dataset import EvalItem, conversation_order, load_set


@dataclass
class ItemResult:
    item: EvalItem
    retrieved: list[dict] = field(default_factory=list)
    retrieval: dict[str, float] = field(default_factory=dict)
    answer: dict | None = None
    verdict: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        it = self.item
        return {"id": it.id, "type": it.type, "question": it.question, "paraphrase": it.paraphrase,
                "follows": it.follows, "reference": it.answer, "retrieval": self.retrieval,
                "retrieved": self.retrieved, "answer": self.answer, "verdict": self.verdict}


def _file_texts(store) -> dict[str, str]:
    """Raw text per document file name (the offsets of citations point into these)."""
    out = {}
    for info in store.docs.values():
        out[info["name"]] = store.texts.get(info["doc_id"], "")
    return out


def evaluate_item(item: EvalItem, ans: Answer | None, hits, judge, files: dict[str, str], k: int) -> ItemResult:
    res = ItemResult(item)
    res.retrieved = [{"rank": h.rank, "doc": h.chunk.doc, "chunk_id": h.chunk.chunk_id, "score": round(h.score, 5),
                      "relevance": h.relevance, "text": h.chunk.text} for h in hits]
    if item.answerable and item.evidence:
        res.retrieval = M.retrieval_scores([h.chunk.text for h in hits], item.evidence)
        docs = [h.chunk.doc for h in hits]
        res.retrieval["sources@5"] = M.all_sources_retrieved(docs, item.sources, 5)
        res.retrieval["sources@10"] = M.all_sources_retrieved(docs, item.sources, 10)
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


def aggregate(results: list[ItemResult]) -> dict[str, float]:
    m: dict[str, float] = {"items": float(len(results))}
    ret = [r.retrieval for r in results if r.retrieval]
    for key in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10"):
        if ret:
            m[f"retrieval.{key}"] = M.mean([r[key] for r in ret])
    multi = [r.retrieval for r in results if r.retrieval and r.item.type == "multi_doc"]
    if multi:
        m["retrieval.multi_doc.all_sources@5"] = M.mean([r["sources@5"] for r in multi])
        m["retrieval.multi_doc.all_sources@10"] = M.mean([r["sources@10"] for r in multi])
    answered = [r for r in results if r.verdict]
    if not answered:
        return m
    ans = [r for r in answered if r.item.answerable]
    una = [r for r in answered if not r.item.answerable]
    if ans:
        m["answer.correct"] = M.mean([r.verdict["correct"] for r in ans])
        m["refusal.false_rate"] = M.mean([r.verdict["false_refusal"] for r in ans])
    if una:
        m["refusal.accuracy"] = M.mean([r.verdict["refusal_ok"] for r in una])
    cits = [r.verdict["citation"] for r in answered if "citation" in r.verdict]
    n_sent = sum(c["sentences"] for c in cits)
    n_cit = sum(c["citations"] for c in cits)
    m["citation.recall"] = sum(c["supported"] for c in cits) / n_sent if n_sent else 0.0
    m["citation.precision"] = sum(c["precise"] for c in cits) / n_cit if n_cit else 0.0
    ev = [r.verdict["evidence_precision"] for r in answered if "evidence_precision" in r.verdict]
    if ev:
        m["citation.evidence_precision"] = M.mean(ev)
    lat = [r.answer["timings"] for r in answered if r.answer]
    total = M.percentiles([t.get("total_s", 0.0) for t in lat])
    m["latency.p50_s"], m["latency.p95_s"] = total["p50"], total["p95"]
    stages = sorted({k for t in lat for k in t if k.endswith("_s") and k != "total_s"})
    for st in stages:
        p = M.percentiles([t[st] for t in lat if st in t])
        name = st[:-2]
        m[f"latency.{name}.p50_s"], m[f"latency.{name}.p95_s"] = p["p50"], p["p95"]
    return m


def breakdowns(results: list[ItemResult]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[ItemResult]] = {}
    for r in results:
        groups.setdefault(f"type:{r.item.type}", []).append(r)
        if r.item.paraphrase:
            groups.setdefault("paraphrase", []).append(r)
        if r.item.follows:
            groups.setdefault("follow_up", []).append(r)
    return {g: {k: v for k, v in aggregate(rs).items() if not k.startswith("latency.") or k == "latency.p50_s"}
            for g, rs in sorted(groups.items())}


def run(set_path: str | Path, cfg: RagConfig, out_dir: str | Path, mode: str | None = None,
        retrieval_only: bool = False, k: int | None = None, judge=None, assistant: Assistant | None = None,
        progress: bool = True) -> dict:
    """Run every item (follow-ups right after their parent, with its history); Ctrl-C keeps what finished."""
    items = conversation_order(load_set(set_path))
    assistant = assistant or Assistant(cfg)
    if judge is None:
        from .judge import LexicalE5Judge

        judge = LexicalE5Judge(assistant.embedder)
    mode = mode or cfg.mode
    files = _file_texts(assistant.store)
    k = k or cfg.top_k
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
            query = it.question
            if history:
                from rag.rewrite import standalone

                query, _ = standalone(it.question, history)
            hits = assistant.retriever.search(query, k=max(10, k))
            ans = None
            if not retrieval_only:
                ans = assistant.ask(it.question, history=history or None, mode=mode, k=k)
                histories[it.id] = history + [
                    {"role": "user", "content": it.question, "standalone": ans.standalone_question},
                    {"role": "assistant", "content": ans.text}]
            results.append(evaluate_item(it, ans, hits, judge, files, k))
            if bar:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar:
            bar.close()
    metrics = aggregate(results)
    out = {
        "set": str(set_path), "mode": "retrieval-only" if retrieval_only else mode, "k": k,
        "judge": getattr(judge, "name", type(judge).__name__), "config": cfg.to_dict(),
        "generator": cfg.generator if mode == "generate" and not retrieval_only else None,
        "interrupted": interrupted, "seconds": round(time.perf_counter() - t0, 2),
        "metrics": metrics, "breakdown": breakdowns(results),
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
