"""Fast passage embedding from the ONNX export of the embedder (``rag/modelprep/onnx_export.py``).

Two runtimes behind one class, chosen by ``embed_backend``:
- ``openvino``: OpenVINO runs the fp32 graph; on CPUs with AVX-512 BF16 / AMX it computes in bfloat16
  (``embed_bf16``), elsewhere in fp32. Compiled graphs are cached next to the export, so later loads
  are quick.
- ``onnx-int8``: ONNX Runtime runs the dynamically quantised int8 graph (VNNI int8 matmuls).
Texts are tokenised with ``tokenizers`` (the model's ``tokenizer.json``), sorted by token length and
padded per batch only to the longest text in that batch; vectors come back in input order, mean
pooled over the attention mask and L2-normalised inside the graph. E5 prompts ("query: ",
"passage: ") come from the sentence-transformers folder the export was made from.
"""

from __future__ import annotations

import json
import threading
from typing import Sequence

import numpy as np

from ..config import RagConfig
from ..modelprep.prepare import embedder_id, onnx_model_file, require_onnx_embedder


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first (so padding is small and the
    largest batch, the memory peak, comes first). Stable: equal lengths keep their input order."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def pad_batch(token_ids: Sequence[Sequence[int]], pad_id: int, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays padded to the longest sequence in the batch, rounded
    up to a multiple of ``multiple``."""
    width = max((len(t) for t in token_ids), default=0)
    width = -(-width // max(1, multiple)) * max(1, multiple)
    ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, t in enumerate(token_ids):
        ids[row, : len(t)] = t
        mask[row, : len(t)] = 1
    return ids, mask


def _openvino_bf16_ok(core) -> bool:
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False


class OnnxEmbedder:
    """Embedder protocol (``rag/stores/embedder.py``) over the ONNX export, OpenVINO or ONNX Runtime."""

    def __init__(self, cfg: RagConfig):
        from tokenizers import Tokenizer

        self.dir = require_onnx_embedder(cfg)
        self.model_file = self.dir / onnx_model_file(cfg)
        self.backend = cfg.embed_backend
        self.id = embedder_id(cfg)
        meta = json.loads((self.dir / "ragnl_onnx.json").read_text())
        self.dim = int(meta["dim"])
        prompts = meta.get("prompts") or {}
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = prompts.get("document") or prompts.get("passage") or ""
        self.batch_size = cfg.embed_batch_size
        self.n_threads = max(1, cfg.n_threads)
        self.want_bf16 = cfg.embed_bf16
        self.precision = ""  # set when compiled: "bf16", "f32" or "int8"
        self.tokenizer = Tokenizer.from_file(str(self.dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(meta.get("max_seq_length", 512)))
        pad = self.tokenizer.token_to_id("<pad>")
        self.pad_id = int(pad) if pad is not None else 0  # masked out, so any id works
        # OpenVINO: widths rounded up to 32 tokens ran ~10% faster (fewer distinct shapes, whole AMX tiles;
        # bench probe on 64 installation-guide passages, 2 shared cores); ONNX Runtime: exact widths
        self.pad_multiple = 32 if self.backend == "openvino" else 1
        self._run = None

    def _compile(self):
        if self.backend == "openvino":
            import openvino as ov

            core = ov.Core()
            core.set_property({"CACHE_DIR": str(self.dir / "openvino-cache")})
            self.precision = "bf16" if self.want_bf16 and _openvino_bf16_ok(core) else "f32"
            # one 2-thread stream (LATENCY). One stream per core with batches in flight ingested ~6% faster
            # (54-59 vs 50-55 passages/s, quiet machine) but a query between retrieval steps took 12 instead of
            # 4-5 ms (hybrid search p50 at 11.8k chunks 25 vs 16 ms): questions matter more
            compiled = core.compile_model(str(self.model_file), "CPU", {
                "INFERENCE_NUM_THREADS": self.n_threads, "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": self.precision})
            request = compiled.create_infer_request()
            lock = threading.Lock()  # one infer request: concurrent questions (UI, API) take turns

            def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
                with lock:
                    return np.array(request.infer({"input_ids": ids, "attention_mask": mask})[0], dtype=np.float32)
        else:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = self.n_threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the 2 cores are shared
            session = ort.InferenceSession(str(self.model_file), so, providers=["CPUExecutionProvider"])
            self.precision = "int8"

            def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
                return np.asarray(session.run(None, {"input_ids": ids, "attention_mask": mask})[0], dtype=np.float32)
        return run

    def warm_up(self) -> None:
        if self._run is None:
            self._run = self._compile()
        self._encode(["warm-up"], "")

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if self._run is None:
            self._run = self._compile()
        encs = self.tokenizer.encode_batch([prompt + t for t in texts])
        ids = [e.ids for e in encs]
        for idx in length_batches([len(t) for t in ids], self.batch_size):
            out[idx] = self._run(*pad_batch([ids[i] for i in idx], self.pad_id, self.pad_multiple))
        return out

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(list(texts), self.passage_prompt)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), self.query_prompt)
