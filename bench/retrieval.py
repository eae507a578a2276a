"""Compare bm25 / dense / hybrid retrieval on a question set (same corpus, same e5 embedder).

    .venv/bin/python bench/retrieval.py [--set eval/sets/dev.jsonl]  -> bench/results/retrieval.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval import metrics as M  # noqa: E402
from eval.dataset import load_set  # noqa: E402
from rag import Assistant  # noqa: E402
from rag.config import RagConfig  # noqa: E402
from rag.config import RETRIEVERS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default=str(ROOT / "eval/sets/dev.jsonl"))
    args = ap.parse_args()
    cfg = RagConfig.from_env()
    a = Assistant(cfg)
    items = [i for i in load_set(args.set) if i.answerable and not i.follows]
    a.search("opwarmen")
    table = {}
    for mode in RETRIEVERS:
        rows, lat = [], []
        for it in items:
            t = time.perf_counter()
            hits = a.search(it.question, k=10, retriever=mode)
            lat.append(time.perf_counter() - t)
            rows.append((it, M.retrieval_scores([h.chunk.text for h in hits], it.evidence)))
        def agg(sel):
            return {k: round(statistics.mean(r[k] for _, r in sel), 3) for k in ("hit@1", "hit@5", "mrr@10", "ndcg@10")} if sel else {}
        table[mode] = {"all": agg(rows), "paraphrase": agg([r for r in rows if r[0].paraphrase]),
                       "plain": agg([r for r in rows if not r[0].paraphrase]),
                       "query_p50_ms": round(1000 * statistics.median(lat), 1), "items": len(rows)}
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "retrieval.json").write_text(json.dumps(table, indent=1), encoding="utf-8")
    lines = [f"# Retrieval on {Path(args.set).name} ({len(items)} answerable first-turn questions)", "",
             "| retriever | MRR@10 | hit@1 | hit@5 | nDCG@10 | MRR@10 plain | MRR@10 paraphrase | query p50 (ms) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, t in table.items():
        lines.append(f"| {mode} | {t['all']['mrr@10']} | {t['all']['hit@1']} | {t['all']['hit@5']} | {t['all']['ndcg@10']} "
                     f"| {t['plain']['mrr@10']} | {t['paraphrase']['mrr@10']} | {t['query_p50_ms']} |")
    (res / "retrieval.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
