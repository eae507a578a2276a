"""Step 2 (runs in the separate peers venv): index the same chunks with the same e5 folder in
txtai (hybrid) and Haystack 2 (BM25 + embedding retrievers joined by RRF), then score all runs
with this project's metric code and write bench/results/peers.{json,md}."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval import metrics as M  # noqa: E402  (pure Python + numpy)


def txtai_runs(data):
    from txtai import Embeddings

    emb = Embeddings(path=data["embedder"], method="sentence-transformers", content=True, hybrid=True,
                     instructions={"query": "query: ", "data": "passage: "}, backend="faiss")
    emb.index([(c["id"], c["embed_text"], None) for c in data["chunks"]])
    emb.search("opwarmen", 1)
    runs = []
    for q in data["questions"]:
        t = time.perf_counter()
        res = emb.search(q["question"], 10)
        runs.append({"id": q["id"], "ranked": [r["id"] for r in res], "seconds": time.perf_counter() - t})
    return runs


def haystack_runs(data):
    from haystack import Document, Pipeline
    try:  # Haystack 3 moved these into the sentence-transformers-haystack integration
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder)
    except ImportError:  # Haystack 2.x
        from haystack.components.embedders import SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    de = SentenceTransformersDocumentEmbedder(model=data["embedder"], prefix="passage: ", progress_bar=False)
    de.warm_up()
    docs = de.run([Document(id=c["id"], content=c["embed_text"]) for c in data["chunks"]])["documents"]
    store.write_documents(docs)
    p = Pipeline()
    p.add_component("text_embedder", SentenceTransformersTextEmbedder(model=data["embedder"], prefix="query: ",
                                                                      progress_bar=False))
    p.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=10))
    p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=10))
    p.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=10))
    p.connect("text_embedder.embedding", "dense.query_embedding")
    p.connect("bm25", "joiner")
    p.connect("dense", "joiner")
    p.run({"text_embedder": {"text": "opwarmen"}, "bm25": {"query": "opwarmen"}})
    runs = []
    for q in data["questions"]:
        t = time.perf_counter()
        out = p.run({"text_embedder": {"text": q["question"]}, "bm25": {"query": q["question"]}})
        runs.append({"id": q["id"], "ranked": [d.id for d in out["joiner"]["documents"]],
                     "seconds": time.perf_counter() - t})
    return runs


def score(data, runs):
    text = {c["id"]: c["text"] for c in data["chunks"]}
    qs = {q["id"]: q for q in data["questions"]}
    rows = [(qs[r["id"]], M.retrieval_scores([text[i] for i in r["ranked"]], qs[r["id"]]["evidence"])) for r in runs]

    def agg(sel, key):
        return round(statistics.mean(s[key] for _, s in sel), 3) if sel else None

    para = [x for x in rows if x[0]["paraphrase"]]
    return {"mrr@10": agg(rows, "mrr@10"), "hit@5": agg(rows, "hit@5"), "hit@1": agg(rows, "hit@1"),
            "mrr@10_paraphrase": agg(para, "mrr@10"),
            "query_p50_ms": round(1000 * statistics.median(r["seconds"] for r in runs), 1), "questions": len(rows)}


def main(data_path: str) -> None:
    data = json.loads(Path(data_path).read_text(encoding="utf-8"))
    runs = dict(data["runs"])
    runs["txtai-hybrid"] = txtai_runs(data)
    runs["haystack-hybrid-rrf"] = haystack_runs(data)
    table = {name: score(data, r) for name, r in runs.items()}
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("txtai", "haystack-ai", "sentence-transformers-haystack",
                                           "sentence-transformers", "torch")}
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "peers.json").write_text(json.dumps({"versions": versions, "results": table}, indent=1), encoding="utf-8")
    lines = [f"# Retrieval vs peers ({table['ragnl-hybrid']['questions']} answerable dev questions, same chunks, "
             "same e5-small folder)", "", "| retriever | MRR@10 | hit@1 | hit@5 | MRR@10 paraphrase | query p50 (ms) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, t in table.items():
        lines.append(f"| {name} | {t['mrr@10']} | {t['hit@1']} | {t['hit@5']} | {t['mrr@10_paraphrase']} | {t['query_p50_ms']} |")
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    (res / "peers.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
