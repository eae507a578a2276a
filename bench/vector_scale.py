"""Vector search at scale: query latency (p50/p95, one query at a time), recall@10 against exact
numpy search, and build/insert time, for FAISS (Flat; HNSW as rag/stores/faiss_index.py builds it;
IVF when that module offers one) and for milvus-lite's default index (AUTOINDEX), on synthetic
normalised 384-d vectors with cluster structure (a Gaussian mixture, so nearest neighbours are
meaningful and approximate indexes can miss them).

    .venv/bin/python bench/vector_scale.py                      # 10k, 100k, 1M
    .venv/bin/python bench/vector_scale.py --sizes 10000,100000 --queries 100
    -> bench/results/vector_scale.{json,md} and vector_scale.svg (latency vs size)

milvus-lite runs up to ``--lite-max`` vectors (default 100k): it inserts ~7k rows/s through its
gRPC front and builds one HNSW per 100k-row segment in a background thread, so 1M rows take
longer than this benchmark's budget on a 2-core machine; the JSON says so instead of a number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag.stores.faiss_index as fi  # noqa: E402

DIM = 384
K = 10
CLUSTERS = 1000
SPREAD = 0.75  # noise norm relative to the unit cluster centre: a point's cosine to its centre ~0.8
OUT = ROOT / "bench" / "results"


# ---------------------------------------------------------------- data

def mixture(n: int, rng: np.random.Generator, centers: np.ndarray, block: int = 100_000) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        noise = rng.standard_normal((m, DIM), dtype=np.float32) * np.float32(SPREAD / np.sqrt(DIM))
        x = centers[rng.integers(0, len(centers), m)] + noise
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top(x: np.ndarray, q: np.ndarray, k: int = K, block: int = 200_000) -> np.ndarray:
    """Ids of the exact top-k inner products (numpy, in blocks to bound memory)."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for s in range(0, len(x), block):
        sc = q @ x[s:s + block].T
        top = np.argpartition(-sc, min(k, sc.shape[1] - 1), axis=1)[:, :k]
        best_s = np.hstack([best_s, np.take_along_axis(sc, top, 1)])
        best_i = np.hstack([best_i, top + s])
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K]) & set(t.tolist())) / K for f, t in zip(found, truth)]))


QUERY_THREADS = 1


def threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(n)


def timed_queries(search, queries: np.ndarray, warm: int = 5) -> tuple[list[list[int]], list[float]]:
    """Latency of one query at a time (FAISS/OpenMP at ``QUERY_THREADS``; builds use every core)."""
    threads(QUERY_THREADS)
    for q in queries[:warm]:
        search(q)
    found, lat = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        lat.append(time.perf_counter() - t)
    threads(os.cpu_count() or 1)
    return found, lat


def row(method: str, n: int, build_s: float, found, lat, truth, **extra) -> dict:
    ms = np.array(lat) * 1000
    return {"method": method, "n": n, "build_s": round(build_s, 2), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3), "recall_at_10": round(recall(found, truth), 4),
            "queries": len(lat), **extra}


# ---------------------------------------------------------------- methods

def build_kind(x: np.ndarray, kind: str):
    """The structure the default store builds for a segment of this ``kind`` (its M, efSearch, nlist,
    nprobe defaults). The store searches it for 2k candidates and re-scores them exactly; this
    benchmark times the structure alone (k=10)."""
    import inspect

    if "kind" in inspect.signature(fi.build_faiss).parameters:
        return fi.build_faiss(x, DIM, kind)
    old = fi.FLAT_LIMIT  # older faiss_index: HNSW at and above FLAT_LIMIT vectors
    fi.FLAT_LIMIT = 0
    try:
        return fi.build_faiss(x, DIM)
    finally:
        fi.FLAT_LIMIT = old


def bench_faiss(x: np.ndarray, q: np.ndarray, truth: np.ndarray, hnsw_max: int, flat_queries: int) -> list[dict]:
    import faiss

    out = []
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    build = time.perf_counter() - t

    def s_flat(v):
        return flat.search(v.reshape(1, -1), K)[1][0].tolist()

    found, lat = timed_queries(s_flat, q[:flat_queries])
    out.append(row("faiss Flat", len(x), build, found, lat, truth[:flat_queries]))
    del flat
    if len(x) > hnsw_max:
        out.append({"method": "faiss HNSW", "n": len(x), "skipped": f"not run above --hnsw-max {hnsw_max:,} (the "
                    f"store uses IVF from faiss_ivf_min vectors; an HNSW build of this size takes tens of minutes "
                    f"on 2 shared cores)"})
        return out + bench_ivf(x, q, truth)
    t = time.perf_counter()
    hnsw = build_kind(x, "hnsw")
    build = time.perf_counter() - t

    def s_hnsw(v):
        return hnsw.search(v.reshape(1, -1), K)[1][0].tolist()

    found, lat = timed_queries(s_hnsw, q)
    out.append(row("faiss HNSW", len(x), build, found, lat, truth, params=f"M={hnsw.hnsw.nb_neighbors(1)}, "
                   f"efSearch={hnsw.hnsw.efSearch}, efConstruction={hnsw.hnsw.efConstruction}"))
    del hnsw
    return out + bench_ivf(x, q, truth)


def bench_ivf(x: np.ndarray, q: np.ndarray, truth: np.ndarray) -> list[dict]:
    out = []
    if "ivf" in getattr(fi, "KINDS", ()):  # offered by rag/stores/faiss_index.py since the segment store
        t = time.perf_counter()
        ivf = build_kind(x, "ivf")
        build = time.perf_counter() - t
        found, lat = timed_queries(lambda v: ivf.search(v.reshape(1, -1), K)[1][0].tolist(), q)
        out.append(row("faiss IVF", len(x), build, found, lat, truth,
                       params=f"nlist={ivf.nlist}, nprobe={ivf.nprobe}"))
        del ivf
    return out


def bench_lite(x: np.ndarray, q: np.ndarray, truth: np.ndarray, folder: Path, batch: int = 5000) -> dict:
    from pymilvus import DataType, MilvusClient

    uri = str(folder / f"scale-{len(x)}.db")
    shutil.rmtree(uri, ignore_errors=True)
    c = MilvusClient(uri)
    s = c.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ip = c.prepare_index_params()
    ip.add_index("vec", index_type="AUTOINDEX", metric_type="IP")
    c.create_collection("v", schema=s, index_params=ip)
    t = time.perf_counter()
    for st in range(0, len(x), batch):
        c.insert("v", [{"id": i, "vec": x[i]} for i in range(st, min(len(x), st + batch))])
    insert_s = time.perf_counter() - t
    c.flush("v")
    waited = wait_for_lite_index(uri, "v")
    build_s = time.perf_counter() - t

    def search(v):
        return [h["id"] for h in c.search("v", [v.tolist()], anns_field="vec", limit=K,
                                          search_params={"metric_type": "IP"})[0]]

    found, lat = timed_queries(search, q)
    r = row("milvus-lite AUTOINDEX", len(x), build_s, found, lat, truth, insert_s=round(insert_s, 2),
            insert_rows_per_s=round(len(x) / insert_s), index_wait=waited, params="AUTOINDEX = FAISS HNSW M=16, efConstruction=200, "
            "ef=64; one index per segment of <= 100k rows")
    c.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)
    shutil.rmtree(uri, ignore_errors=True)
    return r


def wait_for_lite_index(uri: str, collection: str) -> str:
    """Block until milvus-lite's background compaction and index build are done. Its describe_index
    reports every row as indexed at once, so this drains the collection's background worker (a
    private hook of milvus-lite 3.2; without it the first queries would time brute-force search)."""
    try:
        from milvus_lite.server_manager import server_manager_instance

        db = server_manager_instance._servers[os.path.abspath(uri)][1]
        coll = db.get_collection(collection)
        coll._wait_for_bg()
        coll._wait_for_bg()  # a compaction may schedule one more build
        return "drained the background index build"
    except (ImportError, AttributeError, KeyError, TypeError) as e:
        return f"could not wait for the index build ({type(e).__name__}); latency may include unindexed segments"


def lite_skip_reason(rows: list[dict], n: int, lite_max: int) -> str:
    """Why a size was not run on milvus-lite, with what the largest measured run extrapolates to."""
    done = [r for r in rows if r["method"].startswith("milvus-lite") and "skipped" not in r]
    why = f"not run above --lite-max {lite_max:,}"
    if not done:
        return why
    r = max(done, key=lambda r: r["n"])
    f = n / r["n"]
    return (f"{why}: from {r['n']:,} rows, insert ~{r['insert_s'] * f / 60:.0f} min, background index build "
            f"~{(r['build_s'] - r['insert_s']) * f / 60:.0f} min, ~{r['p50_ms'] * f / 1000:.1f} s per query "
            f"(its search walks every row of every segment in Python)")


# ---------------------------------------------------------------- output

def svg(rows: list[dict], path: Path) -> None:
    """Latency p50 vs collection size, log-log, one line per method (hand-written SVG)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    pts = [r for r in rows if "p50_ms" in r]
    xs = sorted({r["n"] for r in pts})
    ys = [r["p50_ms"] for r in pts] + [r["p95_ms"] for r in pts]
    if not xs or not ys:
        return
    W, H, L, B, T, R = 640, 400, 70, 50, 30, 190
    lx0, lx1 = np.log10(min(xs)) - 0.15, np.log10(max(xs)) + 0.15
    ly0, ly1 = np.floor(np.log10(min(ys))), np.ceil(np.log10(max(ys)))
    ly1 = max(ly1, ly0 + 1)

    def px(n):
        return L + (np.log10(n) - lx0) / (lx1 - lx0) * (W - L - R)

    def py(ms):
        return H - B - (np.log10(ms) - ly0) / (ly1 - ly0) * (H - B - T)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
          f'<rect width="{W}" height="{H}" fill="white"/>',
          f'<text x="{L}" y="18" font-size="14">Query latency (one query, k=10, {DIM}-d) vs collection size</text>']
    for e in range(int(ly0), int(ly1) + 1):
        y = py(10.0 ** e)
        el.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        el.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{10.0 ** e:g} ms</text>')
    for n in xs:
        x = px(n)
        el.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#eee"/>')
        el.append(f'<text x="{x:.1f}" y="{H - B + 16}" text-anchor="middle">{n:,}</text>')
    el.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">vectors (log scale)</text>')
    for i, m in enumerate(methods):
        col = colours[i % len(colours)]
        mr = sorted((r for r in pts if r["method"] == m), key=lambda r: r["n"])
        for key, dash in (("p50_ms", ""), ("p95_ms", ' stroke-dasharray="4 3"')):
            line = " ".join(f"{px(r['n']):.1f},{py(r[key]):.1f}" for r in mr)
            el.append(f'<polyline points="{line}" fill="none" stroke="{col}" stroke-width="2"{dash}/>')
        for r in mr:
            el.append(f'<circle cx="{px(r["n"]):.1f}" cy="{py(r["p50_ms"]):.1f}" r="3" fill="{col}"/>')
        y = T + 20 + 20 * i
        el.append(f'<line x1="{W - R + 12}" y1="{y}" x2="{W - R + 36}" y2="{y}" stroke="{col}" stroke-width="2"/>')
        el.append(f'<text x="{W - R + 42}" y="{y + 4}">{m}</text>')
    y = T + 20 + 20 * len(methods)
    el.append(f'<text x="{W - R + 12}" y="{y + 4}" fill="#555">solid p50, dashed p95</text>')
    el.append("</svg>")
    path.write_text("\n".join(el) + "\n", encoding="utf-8")


def markdown(res: dict) -> str:
    lines = ["# Vector search at scale", "",
             f"Synthetic {DIM}-d normalised vectors, Gaussian mixture of {CLUSTERS} clusters (cosine to the centre "
             f"~0.8); {res['queries']} queries from the same mixture, one at a time, k={K}; recall@10 against "
             f"exact numpy search. Machine: {res['machine']['cpus']} CPUs, {res['threads']} FAISS thread(s) per query (builds on all); load average before/after "
             f"{res['loadavg_before']} / {res['loadavg_after']}. Total {res['seconds']:.0f} s.", "",
             "| vectors | method | p50 ms | p95 ms | recall@10 | build s | insert s |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['n']:,} | {r['method']} | – | – | – | – | – |")
        else:
            q = f" ({r['queries']} queries)" if r.get("queries", res["queries"]) != res["queries"] else ""
            lines.append(f"| {r['n']:,} | {r['method']}{q} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                         f"{r['recall_at_10']:.3f} | {r['build_s']:.1f} | {r.get('insert_s', '')} |")
    skipped = [r for r in res["rows"] if "skipped" in r]
    if skipped:
        lines += [""] + [f"- {r['method']} at {r['n']:,}: {r['skipped']}" for r in skipped]
    for run in res.get("runs", []):
        rows = ", ".join(f"{m} at {n:,}" for m, n in run.get("rows", [])) or "the other rows"
        lines.append(f"- run of {rows}: {run['seconds']:.0f} s, load average before/after {run['loadavg_before']} / "
                     f"{run['loadavg_after']}")
    lines += ["", "Build s: FAISS index construction; milvus-lite from the first insert until its background "
              "index build finished (insert s is the insert part).", "",
              "![latency vs size](vector_scale.svg)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--lite-max", type=int, default=100_000, help="largest size run on milvus-lite")
    ap.add_argument("--hnsw-max", type=int, default=250_000,
                    help="largest size run on FAISS HNSW (default: the store's faiss_ivf_min, above which it uses IVF)")
    ap.add_argument("--flat-queries-large", type=int, default=50,
                    help="queries timed on exact FAISS Flat above 100k vectors (each scans every vector)")
    ap.add_argument("--threads", type=int, default=1,
                    help="FAISS/OpenMP threads while querying (milvus-lite runs FAISS in this process too); one "
                         "query at a time on a shared 2-core machine is steadier and faster single-threaded; "
                         "index builds use every core")
    ap.add_argument("--methods", default="faiss,milvus-lite", help="which engines to run (comma-separated)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of an earlier vector_scale.json in --out, replacing those run now")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    methods = {m.strip() for m in args.methods.split(",") if m.strip()}
    import faiss
    import pymilvus

    global QUERY_THREADS
    QUERY_THREADS = args.threads
    threads(os.cpu_count() or 1)

    sizes = [int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    res = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__,
                       "pymilvus": pymilvus.__version__,
                       "milvus_lite": __import__("importlib.metadata").metadata.version("milvus-lite")},
           "threads": args.threads, "dim": DIM, "k": K, "clusters": CLUSTERS, "spread": SPREAD, "queries": args.queries,
           "loadavg_before": [round(v, 2) for v in os.getloadavg()], "rows": []}
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    queries = mixture(args.queries, np.random.default_rng(1), centers)
    tmp = Path(tempfile.mkdtemp(prefix="vector-scale-"))
    try:
        for n in sizes:
            x = mixture(n, np.random.default_rng(2), centers)
            truth = exact_top(x, queries)
            flat_q = args.queries if n <= 100_000 else min(args.queries, args.flat_queries_large)
            for r in (bench_faiss(x, queries, truth, args.hnsw_max, flat_q) if "faiss" in methods else []):
                res["rows"].append(r)
                print(json.dumps(r), flush=True)
            if "milvus-lite" not in methods:
                pass
            elif n <= args.lite_max:
                r = bench_lite(x, queries, truth, tmp)
            else:
                r = {"method": "milvus-lite AUTOINDEX", "n": n, "skipped": lite_skip_reason(res["rows"], n, args.lite_max)}
            if "milvus-lite" in methods:
                r["queries"] = len(queries)
                res["rows"].append(r)
                print(json.dumps(r), flush=True)
            del x
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge and (out / "vector_scale.json").exists():
        old = json.loads((out / "vector_scale.json").read_text(encoding="utf-8"))
        new_keys = {(r["method"], r["n"]) for r in res["rows"]}
        kept = [r for r in old.get("rows", []) if (r["method"], r["n"]) not in new_keys]
        for r in kept:
            r.setdefault("queries", old["queries"])
        res["queries"] = old["queries"]
        res["rows"] = sorted(kept + res["rows"], key=lambda r: (r["n"], r["method"]))
        res["runs"] = old.get("runs", [{k: old.get(k) for k in ("seconds", "loadavg_before", "loadavg_after")}])
        res["runs"].append({"seconds": res["seconds"], "loadavg_before": res["loadavg_before"],
                            "loadavg_after": res["loadavg_after"], "rows": sorted(new_keys)})
    (out / "vector_scale.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    (out / "vector_scale.md").write_text(markdown(res), encoding="utf-8")
    svg(res["rows"], out / "vector_scale.svg")
    print(markdown(res))


if __name__ == "__main__":
    main()
