"""Mid-size benchmark on a real Dutch corpus: the Dutch LibreOffice help (~2,560 HTML pages).

Fetches the corpus with ``eval/corpora.py`` (``apt-get download libreoffice-help-nl`` + ``dpkg-deb -x``,
nothing installed), ingests it into a scratch index through the normal loaders and pipeline, and measures:
- ingest: wall time, chunks, texts embedded (chunks and their sentences), texts/s, MB of source per minute;
- retrieval at that size: p50/p95 latency of ``Assistant.search`` (hybrid, the default) and of the dense
  and BM25 retrievers alone, over known-item queries (the first 12 words of a random chunk; hit@10 = the
  chunk itself comes back in the top 10);
- answering: p50 of extractive ``Assistant.ask`` over the same queries.

    .venv/bin/python bench/corpus_scale.py [--queries 200] [--index DIR] [--copies N]
        -> bench/results/corpus_scale.{json,md} (with --copies N > 1: corpus_scale_xN.{json,md})

``--copies N`` ingests N copies of the corpus (hard-linked folders next to it) for a ~N times larger index.
Each retriever is timed on a freshly opened snapshot, so no cache that an earlier retriever filled helps it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.corpora import fetch  # noqa: E402
from rag import Assistant  # noqa: E402
from rag.config import RagConfig  # noqa: E402

OUT = ROOT / "bench" / "results"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def known_item_queries(a: Assistant, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(query, chunk id) pairs: the first 12 words of chunks that have at least 12 words."""
    ids = sorted(a.store.chunks.chunk_ids({d.doc_id for d in a.documents()}))
    rng = random.Random(seed)
    rng.shuffle(ids)
    out = []
    for cid in ids:
        words = a.store.chunks.chunk(cid).text.split()
        if len(words) >= 12:
            out.append((" ".join(words[:12]), cid))
        if len(out) >= n:
            break
    return out


def timed_search(a: Assistant, queries: list[tuple[str, str]], retriever: str) -> dict:
    lat, hits = [], 0
    for q, cid in queries:
        t = time.perf_counter()
        found = a.search(q, k=10, retriever=retriever)
        lat.append((time.perf_counter() - t) * 1000)
        hits += any(h.chunk.chunk_id == cid for h in found)
    return {"p50_ms": round(statistics.median(lat), 2), "p95_ms": round(pct(lat, 0.95), 2),
            "hit_at_10": round(hits / len(queries), 3)}


def copy_of(src: Path, i: int) -> Path:
    """A hard-linked copy of the corpus folder (made once, next to it): same files, other paths."""
    dst = src.with_name(f"{src.name}-copy{i}")
    if not dst.exists():
        tmp = dst.with_name(dst.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, copy_function=os.link)
        tmp.rename(dst)
    return dst


def markdown(r: dict) -> str:
    i = r["ingest"]
    copies = f" ({r['copies']} copies)" if r.get("copies", 1) > 1 else ""
    lines = [f"# Mid-size corpus: the Dutch LibreOffice help{copies}", "",
             f"Source: {r['source']} ({i['files']:,} HTML files, {i['source_mb']} MB). Scratch index, default "
             f"configuration ({r['embed_backend']} embedder, {r['vector_store']} store). Machine: {r['cpus']} CPUs, "
             f"load average before/after {r['loadavg_before']} / {r['loadavg_after']}.", "",
             "## Ingest", "",
             "| files | chunks | texts embedded | errors | wall s | embed s | texts/s (embedding) | source MB/min |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {i['files']:,} | {i['chunks']:,} | {i['passages']:,} | {i['errors']} | {i['seconds']} | "
             f"{i['embed_seconds']} | {i['passages_per_s']} | {i['mb_per_min']} |", "",
             f"## Retrieval at {i['chunks']:,} chunks ({r['queries']} known-item queries, one at a time)", "",
             "| retriever | p50 ms | p95 ms | hit@10 |", "|---|---:|---:|---:|"]
    for name, x in r["search"].items():
        lines.append(f"| {name} | {x['p50_ms']} | {x['p95_ms']} | {x['hit_at_10']} |")
    lines += ["", f"Extractive answer (retrieval + evidence + quote) p50 {r['ask_extractive_p50_ms']} ms, "
              f"p95 {r['ask_extractive_p95_ms']} ms.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--index", default="", help="reuse this index folder (default: a scratch index, removed after)")
    ap.add_argument("--copies", type=int, default=1, help="ingest this many copies of the corpus")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    src = fetch("libreoffice-help-nl")
    sources = [src] + [copy_of(src, i) for i in range(2, args.copies + 1)]
    files = sorted(p for s in sources for p in s.rglob("*.html"))
    tmp = Path(tempfile.mkdtemp(prefix="corpus-scale-"))
    index = Path(args.index) if args.index else tmp / "index"
    res: dict = {"source": "libreoffice-help-nl (eval/corpora.py)", "cpus": os.cpu_count(),
                 "loadavg_before": [round(v, 2) for v in os.getloadavg()], "queries": args.queries,
                 "copies": args.copies}
    try:
        cfg = RagConfig.from_env(index_dir=str(index))
        res.update(embed_backend=cfg.embed_backend, vector_store=cfg.vector_store)
        a = Assistant(cfg)
        a.warm_up()
        t = time.perf_counter()
        rep = a.ingest(sources)
        wall = time.perf_counter() - t
        mb = sum(p.stat().st_size for p in files) / 1e6
        res["ingest"] = {"files": len(files), "source_mb": round(mb, 1), "chunks": len(a.store.vectors),
                         "passages": rep.passages, "errors": len(rep.errors), "seconds": round(wall, 1),
                         "embed_seconds": round(rep.embed_seconds, 1), "passages_per_s": round(rep.passages_per_s, 1),
                         "mb_per_min": round(mb / (wall / 60), 2)}
        print(json.dumps(res["ingest"]), flush=True)
        queries = known_item_queries(a, args.queries)
        res["queries"] = len(queries)
        res["search"] = {}
        for name in ("hybrid", "dense", "bm25"):
            a.reload()
            res["search"][name] = timed_search(a, queries, name)
        print(json.dumps(res["search"]), flush=True)
        lat = []
        a.reload()
        for q, _ in queries:
            t = time.perf_counter()
            a.ask(q, mode="extractive")
            lat.append((time.perf_counter() - t) * 1000)
        res["ask_extractive_p50_ms"] = round(statistics.median(lat), 1)
        res["ask_extractive_p95_ms"] = round(pct(lat, 0.95), 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "corpus_scale" + (f"_x{args.copies}" if args.copies > 1 else "")
    (out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown(res), encoding="utf-8")
    print(markdown(res))


if __name__ == "__main__":
    main()
