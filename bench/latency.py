"""Latency benchmark on this machine: ingest throughput, search latency, and answer latency
(first token and full answer) for the 1.5B and 0.5B generators and the extractive mode.

    .venv/bin/python bench/latency.py [--n 12]      -> bench/results/latency.{json,md}
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

from eval.dataset import load_set  # noqa: E402
from rag import Assistant  # noqa: E402
from rag.config import RagConfig  # noqa: E402
from rag.stores.embedder import get_embedder  # noqa: E402
from rag.stores.base import document_chunks  # noqa: E402


def p50(xs):
    return round(statistics.median(xs), 3) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="questions per mode")
    args = ap.parse_args()
    cfg = RagConfig.from_env()
    t = time.perf_counter()
    emb = get_embedder(cfg)
    emb.embed_queries(["opwarmen"])
    load_s = time.perf_counter() - t
    a = Assistant(cfg, embedder=emb)
    texts = [c.embed_text() for d in a.documents() for c in document_chunks(a.store.chunks, d.doc_id)]
    t = time.perf_counter()
    emb.embed_passages(texts)
    embed_s = time.perf_counter() - t
    qs = [i.question for i in load_set(ROOT / "eval/sets/dev.jsonl") if i.answerable and not i.follows][: args.n]
    search = []
    for q in qs:
        t = time.perf_counter()
        a.search(q)
        search.append(time.perf_counter() - t)
    out = {"machine": {"cpus": __import__("os").cpu_count()}, "embedder_load_s": round(load_s, 2),
           "ingest": {"chunks": len(texts), "embed_s": round(embed_s, 2), "passages_per_s": round(len(texts) / embed_s, 1)},
           "search_p50_s": p50(search), "answers": {}}
    for label, gen, mode in [("extractive", None, "extractive"), ("qwen-0.5b", "qwen-0.5b", "generate"),
                             ("qwen-1.5b", "qwen-1.5b", "generate")]:
        c = cfg.with_overrides(generator=gen or cfg.generator)
        asst = Assistant(c, store=a.store, embedder=emb)
        t = time.perf_counter()
        if mode == "generate":
            asst.generator().generate([{"role": "user", "content": "hallo"}], max_tokens=1)  # load once
        gen_load = time.perf_counter() - t
        asst.ask(qs[0], mode=mode)  # warm the prompt cache
        first, total, refused = [], [], 0
        for q in qs:
            ans = asst.ask(q, mode=mode)
            total.append(ans.timings["total_s"])
            if "first_token_s" in ans.timings:
                first.append(ans.timings["first_token_s"])
            refused += ans.refused
        out["answers"][label] = {"load_s": round(gen_load, 2), "first_token_p50_s": p50(first),
                                 "total_p50_s": p50(total), "total_max_s": round(max(total), 3),
                                 "questions": len(qs), "refused": refused}
        print(label, out["answers"][label], flush=True)
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "latency.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    lines = ["# Latency on this machine", "",
             f"- ingest: {out['ingest']['chunks']} chunks embedded in {out['ingest']['embed_s']} s "
             f"({out['ingest']['passages_per_s']} passages/s); embedder load {out['embedder_load_s']} s",
             f"- search (hybrid, incl. query embedding) p50: {out['search_p50_s']} s", "",
             "| mode | first token p50 (s) | full answer p50 (s) | max (s) | refused | model load (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, v in out["answers"].items():
        lines.append(f"| {k} | {v['first_token_p50_s'] or '-'} | {v['total_p50_s']} | {v['total_max_s']} | "
                     f"{v['refused']}/{v['questions']} | {v['load_s']} |")
    (res / "latency.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
