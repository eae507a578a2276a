"""Ingest embedding benchmark: speed, agreement and retrieval quality of the embedding backends.

    .venv/bin/python bench/ingest.py [--part speed|agree|mrr|all] [--backends torch,openvino,onnx-int8]
        -> bench/results/ingest.{json,md}   (each part merges into the JSON; the Markdown is rebuilt)

- speed: passages/s for 150-200-word Dutch passages (cut from the Dutch installation guide when
  ~/.cache/ragnl/corpora/install-guide-nl exists, else from seeds/), embedded the way ingest does it
  (``embed_by_length``). Two corpus sizes in one run: rate = (n2 - n1) / (t2 - t1), so model loading and
  warm-up cancel. The 2 cores are shared, so the load average is recorded and a contention-free estimate
  is given too: passages per CPU-second of this process x the cores it may use.
- agree: cosine of each backend's vectors to torch fp32 on Dutch passages and queries (dev-set
  questions, then passage openings as extra queries).
- mrr: seeds/ ingested into a fresh index per backend (``rag ingest``), then
  ``rag eval --set eval/sets/dev.jsonl --retrieval-only`` with RAG_EMBED_BACKEND set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import RagConfig  # noqa: E402
from rag.ingest.loaders import load  # noqa: E402
from rag.ingest.pipeline import embed_by_length  # noqa: E402
from rag.stores.embedder import get_embedder  # noqa: E402

OUT = ROOT / "bench" / "results"
BACKENDS = ["torch", "openvino", "onnx-int8"]


def corpus_words(cfg: RagConfig, source: str = "auto") -> tuple[list[str], str]:
    """Words of the Dutch installation guide (technical: ~1.8 tokens a word) when present and asked for,
    else of seeds/ (news prose: ~1.4 tokens a word)."""
    guide = Path(cfg.cache_dir) / "corpora" / "install-guide-nl"
    files = sorted(guide.glob("*.html")) if guide.is_dir() and source != "seeds" else []
    source = "Dutch installation guide (~/.cache/ragnl/corpora/install-guide-nl)"
    if not files:
        files, source = sorted((ROOT / "seeds").glob("*.txt")), "seeds/"
    words: list[str] = []
    for f in files:
        words += load(f).text.split()
    return words, source


def passages(words: list[str], n: int, seed: int = 0) -> list[str]:
    """``n`` passages of 150-200 words, consecutive windows (wrapping round a small corpus)."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while len(out) < n:
        k = int(rng.integers(150, 201))
        out.append(" ".join(words[(i + j) % len(words)] for j in range(k)))
        i += k
    return out


def embedder_for(cfg: RagConfig, backend: str, fp32: bool = False):
    return get_embedder(cfg.with_overrides(embed_backend=backend, embed_bf16=not fp32))


def precision(emb, backend: str) -> str:
    if backend == "torch":
        return "bf16 autocast" if getattr(emb, "bf16", False) else "fp32"
    return getattr(emb, "precision", "")


def part_speed(cfg: RagConfig, backends: list[str], n1: int, n2: int, source: str) -> dict:
    words, source = corpus_words(cfg, source)
    texts = passages(words, n2, seed=1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    res = {"source": source, "n1": n1, "n2": n2, "words_mean": round(float(np.mean([len(t.split()) for t in texts])), 1),
           "cores": cores, "backends": {}}
    for b in backends:
        t = time.perf_counter()
        emb = embedder_for(cfg, b)
        emb.embed_queries(["opwarmen"])
        load_s = time.perf_counter() - t
        tok = getattr(emb, "tokenizer", None)
        if tok is not None and "tokens_mean" not in res:
            res["tokens_mean"] = round(float(np.mean([len(e.ids) for e in tok.encode_batch(
                ["passage: " + x for x in texts])])), 1)
        load_before = os.getloadavg()
        runs = {}
        for n in (n1, n2):
            w, c = time.perf_counter(), time.process_time()
            embed_by_length(emb, texts[:n])
            runs[n] = (time.perf_counter() - w, time.process_time() - c)
        dw, dc = runs[n2][0] - runs[n1][0], runs[n2][1] - runs[n1][1]
        row = {"precision": precision(emb, b), "load_s": round(load_s, 2),
               "passages_per_s": round((n2 - n1) / dw, 2) if dw > 0 else None,
               "passages_per_s_uncontended_est": round((n2 - n1) / (dc / cores), 2) if dc > 0 else None,
               "seconds": {str(n): round(runs[n][0], 2) for n in runs},
               "cpu_seconds": {str(n): round(runs[n][1], 2) for n in runs},
               "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
        res["backends"][b] = row
        print(b, row, flush=True)
    return res


def part_agree(cfg: RagConfig, backends: list[str], n: int) -> dict:
    from eval.dataset import load_set

    words, source = corpus_words(cfg)
    ps = passages(words, n, seed=2)
    qs = [it.question for it in load_set(ROOT / "eval" / "sets" / "dev.jsonl")][:n]
    qs += [" ".join(p.split()[:12]) for p in ps[: n - len(qs)]]
    ref = embedder_for(cfg, "torch", fp32=True)
    rp, rq = embed_by_length(ref, ps), ref.embed_queries(qs)
    res = {"source": source, "passages": len(ps), "queries": len(qs), "reference": "torch fp32", "backends": {}}
    for b in backends:
        emb = embedder_for(cfg, b)
        cp = (embed_by_length(emb, ps) * rp).sum(1)
        cq = (emb.embed_queries(qs) * rq).sum(1)
        res["backends"][b] = {"precision": precision(emb, b),
                              "passage_cos_min": round(float(cp.min()), 5), "passage_cos_mean": round(float(cp.mean()), 5),
                              "query_cos_min": round(float(cq.min()), 5), "query_cos_mean": round(float(cq.mean()), 5),
                              "same_id_as_torch": emb.id == ref.id}
        print(b, res["backends"][b], flush=True)
    res["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return res


def part_mrr(backends: list[str]) -> dict:
    rag = str(ROOT / ".venv" / "bin" / "rag")
    res = {"set": "eval/sets/dev.jsonl", "backends": {}}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for b in backends:
            env = {**os.environ, "RAG_EMBED_BACKEND": b, "HF_HUB_OFFLINE": "1"}
            index, out = Path(tmp) / f"index-{b}", Path(tmp) / f"eval-{b}"
            t = time.perf_counter()
            subprocess.run([rag, "ingest", str(ROOT / "seeds"), "--index", str(index)], env=env, check=True,
                           cwd=ROOT, stdout=subprocess.DEVNULL)
            ingest_s = time.perf_counter() - t
            subprocess.run([rag, "eval", "--set", "eval/sets/dev.jsonl", "--retrieval-only", "--index", str(index),
                            "--out", str(out)], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            summary = json.loads((out / "results.json").read_text())
            metrics = summary.get("metrics", summary)
            row = {k: metrics[k] for k in metrics if k.startswith("retrieval.")}
            row["ingest_seeds_s"] = round(ingest_s, 1)
            res["backends"][b] = row
            print(b, row, flush=True)
    res["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return res


def markdown(r: dict) -> str:
    lines = ["# Ingest embedding backends", "",
             "Produced by `bench/ingest.py`; the 2 cores are shared with other work, so each row carries the load "
             "average, and \"uncontended est.\" = passages per CPU-second of the process x cores. The wall rate "
             "comes from two corpus sizes ((n2 - n1) / (t2 - t1)) and is noisy when other work comes and goes "
             "between the two runs (a wall rate above the CPU-time bound means the first run was slowed).", ""]
    for s in (r[k] for k in ("speed", "speed_seeds") if k in r):
        lines += [f"## Speed: {s['n1']} vs {s['n2']} passages of 150-200 words (mean {s['words_mean']} words, "
                  f"{s.get('tokens_mean', '?')} tokens) from {s['source']}", "",
                  "| backend | precision | passages/s (wall) | uncontended est. | load s | loadavg (1 min) before / after |",
                  "|---|---|---|---|---|---|"]
        for b, x in s["backends"].items():
            lines.append(f"| {b} | {x['precision']} | {x['passages_per_s']} | {x['passages_per_s_uncontended_est']} | "
                         f"{x['load_s']} | {x['loadavg_before'][0]} / {x['loadavg_after'][0]} |")
        lines.append("")
    a = r.get("agree")
    if a:
        lines += [f"## Agreement with {a['reference']}: {a['passages']} passages, {a['queries']} queries "
                  f"(loadavg {a['loadavg'][0]})", "",
                  "| backend | precision | passage cos min / mean | query cos min / mean | same embedder id |",
                  "|---|---|---|---|---|"]
        for b, x in a["backends"].items():
            lines.append(f"| {b} | {x['precision']} | {x['passage_cos_min']} / {x['passage_cos_mean']} | "
                         f"{x['query_cos_min']} / {x['query_cos_mean']} | {x['same_id_as_torch']} |")
        lines.append("")
    m = r.get("mrr")
    if m:
        lines += [f"## Retrieval on {m['set']} (seeds/ ingested per backend, hybrid retriever)", "",
                  "| backend | MRR@10 | hit@1 | hit@5 | nDCG@10 | ingest seeds/ (s) |", "|---|---|---|---|---|---|"]
        for b, x in m["backends"].items():
            f = {k: round(x[k], 4) if isinstance(x.get(k), float) else x.get(k) for k in x}
            lines.append(f"| {b} | {f.get('retrieval.mrr@10')} | {f.get('retrieval.hit@1')} | {f.get('retrieval.hit@5')} "
                         f"| {f.get('retrieval.ndcg@10')} | {x['ingest_seeds_s']} |")
        lines.append("")
    if r.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=["speed", "agree", "mrr", "all", "md"],
                    help="md: only rewrite ingest.md from ingest.json")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--n1", type=int, default=24)
    ap.add_argument("--n2", type=int, default=264)  # enough batches for both streams; 72 was noisy
    ap.add_argument("--n-agree", type=int, default=200)
    ap.add_argument("--source", default="auto", choices=["auto", "seeds"],
                    help="speed passages: auto = installation guide if present, else seeds/")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    cfg = RagConfig.from_env()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ingest.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.part in ("speed", "all"):
        key = "speed" if args.source == "auto" else f"speed_{args.source}"
        results[key] = part_speed(cfg, backends, args.n1, args.n2, args.source)
    if args.part in ("agree", "all"):
        results["agree"] = part_agree(cfg, backends, args.n_agree)
    if args.part in ("mrr", "all"):
        results["mrr"] = part_mrr(backends)
    if args.part != "md":
        results["machine"] = {"cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M")}
        path.write_text(json.dumps(results, indent=1))
    (OUT / "ingest.md").write_text(markdown(results))
    print(f"wrote {path} and {OUT / 'ingest.md'}")


if __name__ == "__main__":
    main()
