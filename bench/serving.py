"""Serving benchmark: resident memory and first-question latency of a long-running assistant.

Each variant runs in a fresh process that starts the way ``rag serve`` does (an ``Assistant`` on an
existing index, the chat/API app built around it, ``warm_up()``), then asks the first N questions of
eval/sets/dev.jsonl (follow-ups with their history) and records the process's resident memory
(/proc/self/status: VmRSS, split into anonymous and file-backed pages) after start and after every
question, and the latency of the first question next to the median of the later ones.

    .venv/bin/python bench/serving.py [--variants qwen-1.5b,qwen-0.5b,extractive] [--n 20] [--cold]
        -> bench/results/serving.{json,md}

``--cold`` adds a run per variant without ``warm_up()`` (what the first question costs unwarmed).
The seeds are ingested into a scratch index first (a separate process, so ingest memory is not
counted). Loaded machines distort latency: the JSON records os.getloadavg() before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
VARIANTS = {"qwen-1.5b": ("qwen-1.5b", "generate"), "qwen-0.5b": ("qwen-0.5b", "generate"),
            "extractive": (None, "extractive")}


def rss() -> dict[str, float]:
    """Resident memory of this process in MB (total, anonymous, file-backed pages)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(val.split()[0]) / 1024, 1)
    return out


def child(variant: str, index: str, n: int, warm: bool, ui: bool) -> dict:
    """One serving process: start like `rag serve`, warm up, ask n questions."""
    from eval.dataset import conversation_order, load_set
    from rag import Assistant
    from rag.config import RagConfig

    gen, mode = VARIANTS[variant]
    t0 = time.perf_counter()
    cfg = RagConfig.from_env(index_dir=index, generator=gen, mode=mode)
    a = Assistant(cfg)
    rec: dict = {"variant": variant, "warm_up": warm, "rss_open": rss()}
    if ui:
        try:
            from ui.app import create_app

            create_app(a)  # the app `rag serve` runs (not listening): its imports and objects count
            rec["ui"] = "built"
        except Exception as e:  # the UI is not what this measures; keep the numbers without it
            rec["ui"] = f"not built ({type(e).__name__}: {e})"
        rec["rss_ui"] = rss()
    if warm:
        t = time.perf_counter()
        a.warm_up()
        rec["warm_up_s"] = round(time.perf_counter() - t, 3)
    rec["start_s"] = round(time.perf_counter() - t0, 3)
    rec["rss_start"] = rss()
    items = conversation_order(load_set(ROOT / "eval" / "sets" / "dev.jsonl"))[:n]
    asked: dict[str, tuple[str, str]] = {}
    lat, rss_q, answers = [], [], []
    for it in items:
        history = []
        if it.follows and it.follows in asked:
            q0, a0 = asked[it.follows]
            history = [{"role": "user", "content": q0}, {"role": "assistant", "content": a0}]
        t = time.perf_counter()
        ans = a.ask(it.question, history=history)
        lat.append(round(time.perf_counter() - t, 3))
        asked[it.id] = (it.question, ans.text)
        rss_q.append(rss()["VmRSS"])
        answers.append({"id": it.id, "refused": ans.refused, "mode": ans.mode, "s": lat[-1]})
    rec.update(latency_s=lat, rss_after_question_mb=rss_q, answers=answers, rss_end=rss(),
               first_s=lat[0], later_median_s=round(statistics.median(lat[1:]), 3) if len(lat) > 1 else None)
    t = time.perf_counter()  # the first question once more: its cost on a process that is long warm
    a.ask(items[0].question)
    rec["first_again_s"] = round(time.perf_counter() - t, 3)
    return rec


def run_variant(variant: str, index: str, n: int, warm: bool, ui: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--index", index, "--n", str(n)]
    cmd += [] if warm else ["--no-warm"]
    cmd += [] if ui else ["--no-ui"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        return {"variant": variant, "warm_up": warm, "error": p.stderr.strip().splitlines()[-1:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _s(x) -> str:
    return "–" if x is None else f"{x:.2f} s"


def markdown(out: dict) -> str:
    rows = ["| variant | warm-up | RSS after start (anon/file) | RSS after last question | peak RSS | first question "
            "| same question again at the end | later median | warm-up time |", "|---|---|---|---|---|---|---|---|---|"]
    for r in out["runs"]:
        if "error" in r:
            rows.append(f"| {r['variant']} | {'yes' if r['warm_up'] else 'no'} | error: {r['error']} | | | | | | |")
            continue
        s, e = r["rss_start"], r["rss_end"]
        rows.append(f"| {r['variant']} | {'yes' if r['warm_up'] else 'no'} | {s['VmRSS'] / 1024:.2f} GB "
                    f"({s['RssAnon'] / 1024:.2f}/{s['RssFile'] / 1024:.2f}) | {e['VmRSS'] / 1024:.2f} GB | "
                    f"{e['VmHWM'] / 1024:.2f} GB | {r['first_s']:.2f} s | {_s(r.get('first_again_s'))} | "
                    f"{r['later_median_s']:.2f} s | "
                    f"{r.get('warm_up_s', 0):.1f} s |")
    return "\n".join([
        "# Serving: memory and first-question latency",
        "",
        f"{out['questions']} questions of eval/sets/dev.jsonl per variant, each variant in a fresh process started "
        "like `rag serve` (Assistant + app, then `warm_up()`), default config otherwise. RSS from "
        "/proc/self/status (anon = heap/tensors, file = mapped model files). "
        f"{out['cpus']} CPUs; load average before {out['loadavg_before']}, after {out['loadavg_after']}.",
        "",
        *rows,
        "",
        "Memory after every question (MB): " + "; ".join(
            f"{r['variant']}{'' if r['warm_up'] else ' (cold)'}: "
            + ", ".join(str(int(x)) for x in r["rss_after_question_mb"]) for r in out["runs"] if "error" not in r),
        "",
    ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="qwen-1.5b,qwen-0.5b,extractive")
    ap.add_argument("--n", type=int, default=20, help="questions per variant")
    ap.add_argument("--cold", action="store_true", help="also run each variant without warm_up()")
    ap.add_argument("--index", default=None, help="an existing index (default: the seeds in a scratch index)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-warm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-ui", action="store_true", help="do not build the chat/API app in the serving process")
    ap.add_argument("--out", default=str(RESULTS / "serving"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.index, args.n, not args.no_warm, not args.no_ui)))
        return
    index = args.index
    if index is None:  # the seeds in a scratch index, re-made when an older version wrote it
        index = str(Path(tempfile.gettempdir()) / "ragnl-bench-serving-index")
        cmd = [sys.executable, "-m", "cli.main", "ingest", "seeds", "--index", index, "--json"]
        if subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode != 0:
            shutil.rmtree(index, ignore_errors=True)
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    out = {"cpus": os.cpu_count(), "questions": args.n, "index": index,
           "loadavg_before": [round(x, 2) for x in os.getloadavg()], "runs": []}
    for v in args.variants.split(","):
        for warm in ([True, False] if args.cold else [True]):
            r = run_variant(v, index, args.n, warm, not args.no_ui)
            out["runs"].append(r)
            print(json.dumps({k: r.get(k) for k in ("variant", "warm_up", "rss_start", "rss_end", "first_s",
                                                     "later_median_s", "first_again_s", "warm_up_s", "error")}),
                  flush=True)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=1))
    Path(args.out + ".md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
