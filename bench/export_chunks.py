"""Step 1 of the peer comparison (runs in the project venv): export the indexed chunks and this
project's own retrieval results on the question set, so peers index exactly the same chunks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.dataset import load_set  # noqa: E402
from rag import Assistant  # noqa: E402
from rag.config import RagConfig  # noqa: E402
from rag.stores.base import document_chunks  # noqa: E402
from rag.modelprep.prepare import embedder_path  # noqa: E402


def main(set_path: str, out: str) -> None:
    cfg = RagConfig.from_env()
    a = Assistant(cfg)
    chunks = [{"id": c.chunk_id, "doc": c.doc, "text": c.text, "embed_text": c.embed_text()}
              for d in a.documents() for c in document_chunks(a.store.chunks, d.doc_id)]
    items = [i for i in load_set(set_path) if i.answerable and not i.follows]
    questions = [{"id": i.id, "question": i.question, "evidence": i.evidence, "paraphrase": i.paraphrase}
                 for i in items]
    ours = {}
    a.search("opwarmen")
    for mode in ("bm25", "dense", "hybrid"):
        runs = []
        for q in questions:
            t = time.perf_counter()
            hits = a.search(q["question"], k=10, retriever=mode)
            runs.append({"id": q["id"], "ranked": [h.chunk.chunk_id for h in hits], "seconds": time.perf_counter() - t})
        ours[f"ragnl-{mode}"] = runs
    Path(out).write_text(json.dumps({"embedder": str(embedder_path(cfg)), "chunks": chunks, "questions": questions,
                                     "runs": ours}, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
