"""Export a local sentence-transformers folder (BERT-like encoder + mean pooling + L2 normalisation)
to one ONNX graph, once at set-up, for the fast embedding backends (``rag/stores/onnx_embedder.py``).

The graph takes ``input_ids`` and ``attention_mask`` (int64, batch x tokens, both axes dynamic) and
returns ``embedding`` (float32, batch x dim): masked mean pooling and L2 normalisation are part of
the graph, so a backend only tokenises, pads per batch and runs it. Tokenisation uses the folder's
``tokenizer.json`` through ``tokenizers`` (copied next to the graph together with the E5 prompts).

- ``model.onnx``: fp32 weights, run by OpenVINO (bfloat16 on CPUs with AVX-512 BF16 / AMX);
- ``model-int8.onnx``: ONNX Runtime dynamic int8 quantisation of it (int8 weights per channel,
  activations quantised per batch), made only for the ``onnx-int8`` backend.
Files are written to a temporary folder and renamed into place, so an interrupted export never
leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
META_FILE = "ragnl_onnx.json"


class ExportError(RuntimeError):
    """The folder cannot be exported; the message names the file and the problem."""


def _st_settings(st_dir: Path) -> dict:
    """Prompts, max tokens and pooling of a sentence-transformers folder; refuses what the graph cannot do."""
    pool_cfg = st_dir / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        pool = json.loads(pool_cfg.read_text())
        modes = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            raise ExportError(f"{pool_cfg}: only mean pooling can be exported, found {modes or 'none'}")
    modules = json.loads((st_dir / "modules.json").read_text()) if (st_dir / "modules.json").exists() else []
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    max_len = 512
    sbc = st_dir / "sentence_bert_config.json"
    if sbc.exists():
        max_len = int(json.loads(sbc.read_text()).get("max_seq_length") or max_len)
    prompts = {}
    cst = st_dir / "config_sentence_transformers.json"
    if cst.exists():
        prompts = json.loads(cst.read_text()).get("prompts") or {}
    if not (st_dir / "tokenizer.json").exists():
        raise ExportError(f"{st_dir / 'tokenizer.json'}: missing (a fast tokenizer file is needed)")
    return {"max_seq_length": max_len, "normalize": normalize, "prompts": prompts}


def export_onnx(st_dir: str | Path, out_dir: str | Path, log=print) -> Path:
    """Export ``st_dir`` into ``out_dir`` (``model.onnx`` + tokenizer + ``ragnl_onnx.json``)."""
    import torch
    from transformers import AutoModel

    st_dir, out_dir = Path(st_dir), Path(out_dir)
    settings = _st_settings(st_dir)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:
        pass
    model = AutoModel.from_pretrained(str(st_dir), attn_implementation="eager", local_files_only=True).eval()
    normalize = settings["normalize"]

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            h = self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, p=2.0, dim=1) if normalize else v

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        ids = torch.tensor([[0, 100, 200, 300, 2], [0, 400, 2, 1, 1]], dtype=torch.long)
        mask = (ids != 1).long()
        axes = {0: "batch", 1: "tokens"}
        import warnings

        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(Encoder(model), (ids, mask), str(tmp / FP32_FILE),
                              input_names=["input_ids", "attention_mask"],
                              output_names=["embedding"], opset_version=17, dynamo=False,
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}})
        shutil.copy2(st_dir / "tokenizer.json", tmp / "tokenizer.json")
        meta = {"source": str(st_dir.resolve()), "dim": int(model.config.hidden_size),
                "heads": int(model.config.num_attention_heads), **settings}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"exported {st_dir.name} to {out_dir / FP32_FILE}")
    return out_dir


def quantize_int8(onnx_dir: str | Path, log=print) -> Path:
    """ONNX Runtime dynamic int8 quantisation of ``model.onnx`` (signed int8 weights, per channel:
    the VNNI u8 x s8 kernels; QUInt8 weights were slower and agreed less with fp32 here)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    onnx_dir = Path(onnx_dir)
    meta = json.loads((onnx_dir / META_FILE).read_text())
    src, dest = onnx_dir / FP32_FILE, onnx_dir / INT8_FILE
    fused, partial = onnx_dir / "fused.onnx.partial", onnx_dir / (INT8_FILE + ".partial")
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint per call
    try:
        # fuse attention / layer norm / gelu first (BERT pattern), then quantise the fused graph
        opt = optimizer.optimize_model(str(src), model_type="bert", num_heads=meta["heads"],
                                       hidden_size=meta["dim"], opt_level=1)
        opt.save_model_to_file(str(fused))
        quantize_dynamic(str(fused), str(partial), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": 1})  # 1 = FLOAT, for outputs shape inference misses
        os.replace(partial, dest)
    finally:
        fused.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    log(f"quantized {dest}")
    return dest
