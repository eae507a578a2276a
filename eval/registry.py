"""The metric registry: every metric the runner reports is one ``Metric`` registered here, once.

A metric reads one scored item (``Scored``: the item's retrieval scores, verdict and timings) and
returns a value, a ``(numerator, denominator)`` pair for micro-averaged ratios, or ``None`` where it
does not apply; ``aggregate`` turns the values of a set of items into one number. The runner, the
Markdown/HTML reports and the CLI print whatever is registered, in registry order; ``PRIMARY`` names
the one number a run is judged by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

Value = float | tuple[float, float] | None


@dataclass
class Scored:
    """Plain data one item contributes: all metrics are computed from these fields."""

    type: str
    split: str
    answerable: bool
    paraphrase: bool = False
    follow_up: bool = False
    lang: str = "nl"
    retrieval: dict[str, float] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def ratio(values: Sequence[tuple[float, float]]) -> float:
    den = sum(d for _, d in values)
    return sum(n for n, _ in values) / den if den else 0.0


def p50(values: Sequence[float]) -> float:
    return float(np.percentile(values, 50)) if len(values) else 0.0


def p95(values: Sequence[float]) -> float:
    return float(np.percentile(values, 95)) if len(values) else 0.0


@dataclass(frozen=True)
class Metric:
    name: str
    value: Callable[[Scored], Value]
    aggregate: Callable[[Sequence[Any]], float] = mean
    description: str = ""
    higher_is_better: bool = True
    headline: bool = False  # printed by the CLI and at the top of reports
    group: str = ""  # "retrieval", "answer", "refusal", "citation", "latency"

    def compute(self, items: Sequence[Scored]) -> float | None:
        vals = [v for v in (self.value(s) for s in items) if v is not None]
        return self.aggregate(vals) if vals else None


PRIMARY = "answer.correct"
PRIMARY_RETRIEVAL_ONLY = "retrieval.mrr@10"


def _retrieval(key: str) -> Callable[[Scored], Value]:
    return lambda s: s.retrieval.get(key) if s.retrieval else None


def _verdict(key: str, answerable: bool | None = None) -> Callable[[Scored], Value]:
    def get(s: Scored) -> Value:
        if answerable is not None and s.answerable != answerable:
            return None
        v = s.verdict.get(key)
        return None if v is None else float(v)

    return get


def _cit(num: str, den: str) -> Callable[[Scored], Value]:
    def get(s: Scored) -> Value:
        c = s.verdict.get("citation")
        return None if not c else (float(c[num]), float(c[den]))

    return get


def _timing(stage: str) -> Callable[[Scored], Value]:
    return lambda s: s.timings.get(stage) if s.timings else None


def _multi(key: str) -> Callable[[Scored], Value]:
    return lambda s: s.retrieval.get(key) if s.retrieval and s.type == "multi_doc" else None


def metrics(ks: Sequence[int] = (1, 3, 5, 10)) -> list[Metric]:
    """The registry for one run; ``ks`` are the retrieval cut-offs (the deepest is the MRR/nDCG depth)."""
    depth = max(ks)
    out = [Metric(f"retrieval.hit@{k}", _retrieval(f"hit@{k}"), group="retrieval", headline=k in (1, 5),
                  description=f"gold evidence among the first {k} passages") for k in ks]
    out += [
        Metric(f"retrieval.mrr@{depth}", _retrieval(f"mrr@{depth}"), group="retrieval", headline=True,
               description="reciprocal rank of the first passage holding gold evidence"),
        Metric(f"retrieval.ndcg@{depth}", _retrieval(f"ndcg@{depth}"), group="retrieval", headline=True,
               description="nDCG, one gain per evidence string"),
        Metric(f"retrieval.multi_doc.all_sources@{depth}", _multi(f"sources@{depth}"), group="retrieval",
               description="multi-document items with every source file retrieved"),
        Metric("answer.correct", _verdict("correct", True), group="answer", headline=True,
               description="answerable items answered with every must_include group"),
        Metric("refusal.accuracy", _verdict("refusal_ok", False), group="refusal", headline=True,
               description="unanswerable items declined without inventing a fact"),
        Metric("refusal.false_rate", _verdict("false_refusal", True), group="refusal", headline=True,
               higher_is_better=False, description="answerable items wrongly declined"),
        Metric("citation.precision", _cit("precise", "citations"), ratio, group="citation", headline=True,
               description="ALCE: citations that are needed or sufficient"),
        Metric("citation.recall", _cit("supported", "sentences"), ratio, group="citation", headline=True,
               description="ALCE: answer sentences supported by their citations"),
        Metric("citation.evidence_precision", _verdict("evidence_precision"), group="citation", headline=True,
               description="citations whose span overlaps the gold evidence"),
        Metric("latency.p50_s", _timing("total_s"), p50, group="latency", headline=True, higher_is_better=False),
        Metric("latency.p95_s", _timing("total_s"), p95, group="latency", headline=True, higher_is_better=False),
    ]
    for stage in ("first_token", "embed", "retrieve", "select", "generate", "cite", "answer"):
        out.append(Metric(f"latency.{stage}.p50_s", _timing(f"{stage}_s"), p50, group="latency",
                          higher_is_better=False, headline=stage == "first_token"))
        out.append(Metric(f"latency.{stage}.p95_s", _timing(f"{stage}_s"), p95, group="latency",
                          higher_is_better=False))
    names = [m.name for m in out]
    assert len(names) == len(set(names)), "a metric is registered twice"
    return out


def compute(registry: Sequence[Metric], items: Sequence[Scored]) -> dict[str, float]:
    """``{"items": n, name: value…}`` for every registered metric that applies to ``items``."""
    out: dict[str, float] = {"items": float(len(items))}
    for m in registry:
        v = m.compute(items)
        if v is not None:
            out[m.name] = v
    return out
