"""Write costs of the default store at scale (no embedding: synthetic texts and vectors).

Builds an index of ``--chunks`` chunks (default 100k; ``--per-file`` chunks per file, two
sentences per chunk, each with its own vector) through the store writer in bulk commits of
``--batch`` chunks, recording each commit's time against the index size; then, at full size,
times adding one file and removing one file (open a writer, write, commit: what ``rag ingest`` of
one changed file costs on top of embedding it), commits of 1/10/100 files, query latency, and
recall@10 of each FAISS structure against exact search on the chunk vectors.

    .venv/bin/python bench/store_writes.py                 # 100k chunks
    .venv/bin/python bench/store_writes.py --chunks 20000  # quicker
    -> bench/results/store_writes.{json,md}

Vectors are 384-d (e5-small) with cluster structure (one centre per file around 1000 topics),
texts are Zipf-distributed pseudo-words (~85 per chunk, ~650 characters). Load average is recorded
at start and end: the machine is shared, so compare numbers only at similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.stores import segments  # noqa: E402
from rag.stores.faiss_index import FaissParams, ann_top, build_faiss, exact_top, recall_at_k  # noqa: E402
from rag.stores.local import LocalStore  # noqa: E402
from rag.types import Chunk, Document, Sentence  # noqa: E402

OUT = ROOT / "bench" / "results"
DIM = 384
TOPICS = 1000
LETTERS = np.array(list("abcdefghijklmnoprstuvwz"))


class Corpus:
    """Deterministic synthetic files: texts with offsets, chunk and sentence vectors."""

    def __init__(self, per_file: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.per_file = per_file
        self.vocab = ["".join(self.rng.choice(LETTERS, size=self.rng.integers(4, 11))) for _ in range(20000)]
        p = 1 / np.arange(1, 20001) ** 1.05
        self.p = p / p.sum()
        t = self.rng.normal(size=(TOPICS, DIM)).astype(np.float32)
        self.topics = t / np.linalg.norm(t, axis=1, keepdims=True)

    def _unit(self, x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    def file(self, n: int) -> tuple[Document, list[Chunk], np.ndarray, np.ndarray]:
        rng = self.rng
        words = rng.choice(len(self.vocab), size=(self.per_file, 2, 42), p=self.p)
        sents = [[" ".join(self.vocab[i] for i in half).capitalize() + "." for half in chunk] for chunk in words]
        text = " ".join(s for pair in sents for s in pair)
        doc_id = f"f{n:07d}"
        doc = Document(doc_id=doc_id, path=f"/bench/{doc_id}.txt", name=f"{doc_id}.txt", text=text,
                       title=f"Verslag {n}", sha256=str(n))
        chunks, pos = [], 0
        for o, pair in enumerate(sents):
            ss = []
            for s in pair:
                ss.append(Sentence(s, pos, pos + len(s)))
                pos += len(s) + 1
            chunks.append(Chunk(chunk_id=f"{doc_id}-{o:04d}", doc_id=doc_id, doc=doc.name, path=doc.path,
                                title=doc.title, date="", start=ss[0].start, end=ss[-1].end,
                                text=text[ss[0].start:ss[-1].end], ordinal=o, sentences=ss))
        centre = self.topics[rng.integers(TOPICS)]
        noise = rng.normal(size=(self.per_file, DIM)).astype(np.float32) * (0.75 / np.sqrt(DIM))
        vecs = self._unit(centre + noise)
        svecs = self._unit(np.repeat(vecs, 2, axis=0) + rng.normal(size=(2 * self.per_file, DIM)).astype(np.float32)
                           * (0.5 / np.sqrt(DIM)))
        return doc, chunks, vecs, svecs


def timed_write(root: Path, params: FaissParams, files: list, remove: list[str] = ()) -> dict:
    """Open a writer on the current index, upsert ``files`` / remove paths, commit; seconds per step."""
    t0 = time.perf_counter()
    w = LocalStore.open(root, "bench", DIM, params).writer()
    t1 = time.perf_counter()
    for doc, chunks, vecs, svecs in files:
        w.upsert(doc, chunks, vecs, svecs)
    for path in remove:
        assert w.remove(path)
    t2 = time.perf_counter()
    w.commit()
    t3 = time.perf_counter()
    return {"open_s": t1 - t0, "write_s": t2 - t1, "commit_s": t3 - t2, "total_s": t3 - t0}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--per-file", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10_000, help="chunks per bulk commit while building")
    ap.add_argument("--repeats", type=int, default=12, help="single-file adds and removes at full size")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--dir", default="", help="work folder (default: a temporary one, deleted)")
    ap.add_argument("--reuse", action="store_true", help="keep the index already in --dir (skip the bulk build; "
                    "the previous run's bulk-commit rows are kept in the results)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    params = FaissParams()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="store_writes-"))
    root = work / "index"
    reuse = args.reuse and (root / "store.sqlite").exists()
    if not reuse:
        shutil.rmtree(root, ignore_errors=True)
    corpus = Corpus(args.per_file)
    n_files = args.chunks // args.per_file
    per_batch = max(1, args.batch // args.per_file)
    t_start = time.perf_counter()

    build, build_s, build_load = [], 0.0, None
    if reuse:
        old = json.loads((OUT / "store_writes.json").read_text(encoding="utf-8"))
        build, build_s = old["bulk_commits"], old["index"]["build_s"]
        build_load = old["machine"].get("build_loadavg") or [old["machine"]["loadavg_start"], old["machine"]["loadavg_end"]]
    for start in range(0, 0 if reuse else n_files, per_batch):
        files = [corpus.file(n) for n in range(start, min(n_files, start + per_batch))]
        before = start * args.per_file
        r = timed_write(root, params, files)
        store = LocalStore.open(root, "bench", DIM, params)
        build.append({"chunks_before": before, "chunks_added": sum(len(f[1]) for f in files), **r,
                      "segments": store.vectors.structure, "sentence_segments": store.sentences.structure})
        print(f"bulk commit at {before:>7} chunks: +{build[-1]['chunks_added']} in {r['total_s']:.2f} s "
              f"(commit {r['commit_s']:.2f} s) -> {store.vectors.structure}", flush=True)
        store.close()
    build_s = build_s or time.perf_counter() - t_start

    store = LocalStore.open(root, "bench", DIM, params)
    present = [d.path for d in store.chunks.documents()]
    store.close()
    fresh = int(time.time()) % 1_000_000 + 2_000_000 if reuse else n_files  # new file numbers
    adds, removes = [], []
    for i in range(args.repeats):  # one new file, then one old file removed
        adds.append(timed_write(root, params, [corpus.file(fresh + i)]))
        removes.append(timed_write(root, params, [], remove=[present[i * 7]]))
    print(f"add one file: median {statistics.median(a['total_s'] for a in adds):.3f} s, "
          f"max {max(a['total_s'] for a in adds):.3f} s; remove one file: median "
          f"{statistics.median(r['total_s'] for r in removes):.3f} s", flush=True)
    sizes = {}
    base = fresh + args.repeats
    for k in (1, 10, 100):
        sizes[k] = timed_write(root, params, [corpus.file(base + j) for j in range(k)])
        base += k
        print(f"commit of {k} files at full size: {sizes[k]['total_s']:.3f} s", flush=True)

    store = LocalStore.open(root, "bench", DIM, params)
    n_chunks, n_sents = len(store.vectors), len(store.sentences)
    rng = np.random.default_rng(1)
    some = store.vectors.get([f"f{n:07d}-0003" for n in rng.integers(0, n_files // 2, args.queries)])
    queries = corpus._unit(some + rng.normal(size=some.shape).astype(np.float32) * (0.5 / np.sqrt(DIM)))
    lat: dict[str, list[float]] = {"vectors": [], "sentences": [], "keywords": []}
    words = [" ".join(corpus.vocab[i] for i in rng.integers(0, 3000, 4)) for _ in range(args.queries)]
    for q, text in zip(queries, words):
        for name, fn in (("vectors", lambda: store.vectors.search(q, 30)),
                         ("sentences", lambda: store.sentences.search(q, 30)),
                         ("keywords", lambda: store.keywords.top(text, 30))):
            t = time.perf_counter()
            fn()
            lat[name].append(time.perf_counter() - t)
    latency = {k: {"p50_ms": round(1000 * statistics.median(v), 2),
                   "p95_ms": round(1000 * float(np.percentile(v, 95)), 2)} for k, v in lat.items()}
    print("query latency:", latency, flush=True)

    # recall@10 of each structure on the largest chunk segment's vectors (the store's own HNSW when built)
    big = max(store.vectors._segs, key=lambda s: s[1])[3]
    x = np.asarray(big.vectors)
    recall = {}
    for kind in ("flat", "hnsw", "ivf", "ivfpq"):
        t = time.perf_counter()
        if kind == "hnsw" and big.ann is not None and type(big.ann).__name__ == "IndexHNSWFlat":
            index, built = big.ann, "store's segment"
        else:
            index, built = (None if kind == "flat" else build_faiss(x, DIM, kind, params)), "built here"
        build_time = time.perf_counter() - t
        r = recall_at_k(index, x, queries, 10, params)
        t = time.perf_counter()
        for q in queries:  # what one segment search costs: candidates + exact re-scoring (exact: brute force)
            ann_top(index, x, q, 10, params) if index is not None else exact_top(x, q, 10)
        per_query = (time.perf_counter() - t) / len(queries)
        recall[kind] = {"vectors": len(x), "recall_at_10": round(r, 4), "build_s": round(build_time, 2),
                        "source": built, "search_ms": round(1000 * per_query, 2)}
        print(f"recall@10 {kind}: {r:.4f} (build {build_time:.1f} s)", flush=True)

    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_start": [round(x, 2) for x in load0],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                    "build_loadavg": build_load or [[round(x, 2) for x in load0], [round(x, 2) for x in os.getloadavg()]]},
        "reused_index": reuse,
        "params": {"chunks": args.chunks, "per_file": args.per_file, "sentences_per_chunk": 2, "dim": DIM,
                   "batch": args.batch, "repeats": args.repeats, "queries": args.queries,
                   "faiss": params.__dict__, "merge_factor": segments.MERGE_FACTOR,
                   "dead_ratio": segments.DEAD_RATIO},
        "index": {"chunks": n_chunks, "sentences": n_sents, "documents": len(store.chunks.documents()),
                  "disk_mb": round(du(root) / 1e6, 1), "vector_index": store.vectors.structure,
                  "sentence_index": store.sentences.structure, "build_s": round(build_s, 1)},
        "bulk_commits": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in b.items()} for b in build],
        "add_one_file": {"median_s": round(statistics.median(a["total_s"] for a in adds), 3),
                         "max_s": round(max(a["total_s"] for a in adds), 3),
                         "runs": [{k: round(v, 3) for k, v in a.items()} for a in adds]},
        "remove_one_file": {"median_s": round(statistics.median(r["total_s"] for r in removes), 3),
                            "max_s": round(max(r["total_s"] for r in removes), 3),
                            "runs": [{k: round(v, 3) for k, v in r.items()} for r in removes]},
        "commit_files_at_full_size": {str(k): {kk: round(vv, 3) for kk, vv in v.items()} for k, v in sizes.items()},
        "query_latency": latency,
        "recall_at_10": recall,
    }
    store.close()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "store_writes.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (OUT / "store_writes.md").write_text(markdown(result), encoding="utf-8")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    print(f"-> {OUT / 'store_writes.json'}, {OUT / 'store_writes.md'}")


def markdown(r: dict) -> str:
    m, ix = r["machine"], r["index"]
    lines = [
        "# Default store: write costs at scale", "",
        f"Synthetic corpus: {ix['documents']} files, {ix['chunks']} chunks, {ix['sentences']} sentence vectors "
        f"({r['params']['dim']}-d), {ix['disk_mb']} MB on disk; built in {ix['build_s']} s in bulk commits of "
        f"{r['params']['batch']} chunks. No embedding is timed (add it: ~the file's passages / embedder rate).", "",
        f"Machine: {m['cpus']} CPUs ({m['platform']}), load average {m['loadavg_start'][0]} at start, "
        f"{m['loadavg_end'][0]} at end (shared machine); the bulk build ran at load "
        f"{m['build_loadavg'][0][0]}-{m['build_loadavg'][1][0]}" + (" in an earlier run (index reused)" if r["reused_index"] else "")
        + ".", "",
        "## One file at full size (open writer + write + commit)", "",
        "| operation | median s | max s |", "|---|---|---|",
        f"| add one file ({r['params']['per_file']} chunks, {2 * r['params']['per_file']} sentences) | "
        f"{r['add_one_file']['median_s']} | {r['add_one_file']['max_s']} |",
        f"| remove one file | {r['remove_one_file']['median_s']} | {r['remove_one_file']['max_s']} |", "",
        "| files in one commit at full size | total s | commit s |", "|---|---|---|",
    ]
    lines += [f"| {k} | {v['total_s']} | {v['commit_s']} |" for k, v in r["commit_files_at_full_size"].items()]
    lines += ["", "## Bulk commits vs index size", "",
              "| chunks before | chunks added | write s | commit s | chunk segments after |", "|---|---|---|---|---|"]
    lines += [f"| {b['chunks_before']} | {b['chunks_added']} | {b['write_s']} | {b['commit_s']} | {b['segments']} |"
              for b in r["bulk_commits"]]
    lines += ["", "## Search at full size", "", "| part | p50 ms | p95 ms |", "|---|---|---|"]
    lines += [f"| {k} | {v['p50_ms']} | {v['p95_ms']} |" for k, v in r["query_latency"].items()]
    lines += ["", "## recall@10 against exact search (chunk vectors, candidates re-scored exactly)", "",
              "The HNSW row is the store's own segment, built by the merge in the last bulk commit.", "",
              "| structure | vectors | recall@10 | build s | search ms |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['vectors']} | {v['recall_at_10']} | {v['build_s']} ({v['source']}) | "
              f"{v['search_ms']} |" for k, v in r["recall_at_10"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
