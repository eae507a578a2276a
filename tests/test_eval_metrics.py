"""Eval metrics on small hand-computed examples, dataset validation, the dev set's evidence."""

import json
import math

import pytest

from eval import metrics as M
from eval.dataset import DatasetError, conversation_order, load_set
from eval.judge import LexicalJudge
from tests.conftest import ROOT, SEEDS


def test_evidence_match_contains_or_long_shared_run():
    chunk = "De ministers stemden in met een uitbreiding van de NAVO-missie in Irak (NMI), binnen het mandaat."
    assert M.evidence_match(chunk, "uitbreiding van de NAVO-missie in Irak")
    assert M.evidence_match(chunk.upper(), "uitbreiding  van de\nNAVO-missie in Irak")  # case and whitespace
    # shares a run of >= 40 chars though the evidence continues beyond the chunk
    assert M.evidence_match(chunk, "een uitbreiding van de NAVO-missie in Irak (NMI), binnen het mandaat. En meer tekst")
    assert not M.evidence_match(chunk, "Ministers stemden in met het verkennen van mogelijk additionele NAVO-inzet")


def test_retrieval_scores_hand_computed():
    ev = ["alpha beta gamma delta", "epsilon zeta eta theta"]
    chunks = ["nothing here", "x alpha beta gamma delta y", "still nothing", "epsilon zeta eta theta!", "alpha beta gamma delta"]
    s = M.retrieval_scores(chunks, ev)
    assert s["hit@1"] == 0.0 and s["hit@3"] == 1.0 and s["hit@5"] == 1.0
    assert s["mrr@10"] == pytest.approx(0.5)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # ranks 2 and 4 bring new evidence; rank 5 repeats
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert s["ndcg@10"] == pytest.approx(dcg / idcg)


def test_all_sources_retrieved():
    assert M.all_sources_retrieved(["a", "b", "c"], ["a", "c"], 3) == 1.0
    assert M.all_sources_retrieved(["a", "b", "c"], ["a", "c"], 2) == 0.0


def test_correctness_groups_and_alternatives():
    must = [["28"], ["32", "tweeëndertig"]]
    assert M.is_correct("28 van de 32 landen [1].", False, must)
    assert not M.is_correct("28 landen [1].", False, must)
    assert not M.is_correct("28 van de 32", True, must)  # a refusal is never correct
    assert not M.is_correct("Het is 2 [1].", False, [["1"]])  # citation markers don't count


def test_refusal_ok_rejects_invented_facts():
    assert M.refusal_ok("Dat staat niet in de bronnen.", True)
    assert not M.refusal_ok("Dat staat niet in de bronnen, maar waarschijnlijk 12 april.", True)
    assert not M.refusal_ok("Het zijn 12 drones.", False)


def test_alce_citation_recall_and_precision():
    judge = LexicalJudge(0.6)
    quotes = {1: "Bronnen meldden dat 28 van de 32 landen Rutte steunen.",
              2: "Roemenië heeft president Iohannis als kandidaat.",
              3: "Het weer in Brussel was goed."}
    text = "28 van de 32 landen steunen Rutte [1][3]. Iohannis is kandidaat van Roemenië [2]. Japan wint [3]."
    s = M.citation_scores(text, quotes, judge)
    # 3 sentences; the first two are supported by their citations
    assert s["sentences"] == 3 and s["supported"] == 2
    # citations: [1] precise, [3] irrelevant (union without it still supports), [2] precise, [3] unsupported sentence
    assert s["citations"] == 4 and s["precise"] == 2


def test_citation_to_unknown_number_counts_as_imprecise():
    s = M.citation_scores("28 landen steunen Rutte [9].", {1: "28 landen steunen Rutte."}, LexicalJudge())
    assert s == {"sentences": 1, "supported": 0, "citations": 1, "precise": 0}


def test_evidence_spans_and_overlap():
    text = "abc def abc"
    assert M.evidence_spans(text, ["abc"]) == [(0, 3), (8, 11)]
    assert M.spans_overlap((2, 5), (0, 3)) and not M.spans_overlap((3, 5), (0, 3))


def test_registry_aggregates_hand_computed():
    from eval import registry as R

    assert R.p50([1.0, 2.0, 3.0, 4.0]) == pytest.approx(2.5) and R.p95([1.0, 2.0, 3.0, 4.0]) == pytest.approx(3.85)
    assert R.ratio([(1, 2), (3, 4)]) == pytest.approx(4 / 6)
    items = [R.Scored("number", "tune", True, retrieval={"hit@1": 1.0, "mrr@10": 1.0},
                      verdict={"correct": True, "false_refusal": False,
                               "citation": {"sentences": 2, "supported": 1, "citations": 2, "precise": 2}},
                      timings={"total_s": 2.0}),
             R.Scored("fact", "test", True, retrieval={"hit@1": 0.0, "mrr@10": 0.5},
                      verdict={"correct": False, "false_refusal": True}, timings={"total_s": 4.0}),
             R.Scored("unanswerable", "test", False, verdict={"refusal_ok": True}, timings={"total_s": 1.0})]
    m = R.compute(R.metrics((1, 10)), items)
    assert m["items"] == 3 and m["retrieval.hit@1"] == 0.5 and m["retrieval.mrr@10"] == 0.75
    assert m["answer.correct"] == 0.5 and m["refusal.false_rate"] == 0.5 and m["refusal.accuracy"] == 1.0
    assert m["citation.recall"] == 0.5 and m["citation.precision"] == 1.0 and m["latency.p50_s"] == 2.0
    assert "retrieval.hit@5" not in m  # only the registered cut-offs


def test_every_metric_is_registered_once():
    from eval import registry as R

    names = [m.name for m in R.metrics((1, 3, 5, 10, 20))]
    assert len(names) == len(set(names)) and "retrieval.mrr@20" in names and R.PRIMARY in names


def test_dataset_validation(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"id": "a", "question": "q?", "type": "fact", "must_include": ["x", ["y", "z"]]}\n'
                 '{"id": "b", "question": "q2?", "follows": "a"}\n', encoding="utf-8")
    items = load_set(f)
    assert items[0].must_include == [["x"], ["y", "z"]]
    assert [i.id for i in conversation_order(items)] == ["a", "b"]
    f.write_text('{"id": "a", "question": "q?", "type": "weird"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="unknown type"):
        load_set(f)
    f.write_text('{"id": "a", "question": ""}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="question"):
        load_set(f)
    f.write_text('not json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=":1: not valid JSON"):
        load_set(f)


def test_dev_set_is_well_formed_and_evidence_occurs_in_sources():
    items = load_set(ROOT / "eval" / "sets" / "dev.jsonl")
    assert len(items) >= 40
    types = {i.type for i in items}
    assert types == {"fact", "number", "date", "person", "list", "multi_doc", "english", "unanswerable"}
    assert sum(i.type == "unanswerable" for i in items) >= 8
    assert sum(i.type == "english" for i in items) >= 5
    assert sum(1 for i in items if i.follows) >= 4
    answerable = [i for i in items if i.answerable]
    assert sum(i.paraphrase for i in answerable) * 2 >= len(answerable)
    for it in answerable:
        assert it.sources and it.evidence and it.must_include, it.id
        texts = [(SEEDS / s).read_text(encoding="utf-8") for s in it.sources]
        for ev in it.evidence:
            assert any(ev in t for t in texts), (it.id, ev)
    for it in items:
        if not it.answerable:
            assert it.must_include == [] and it.evidence == []


def test_runner_end_to_end_with_fakes(tmp_path, cfg, fake_embedder):
    """The whole runner on a tiny set with fake models: files written, metrics present, compare works."""
    from eval.runner import compare, run
    from rag import Assistant
    from rag.ingest.pipeline import ingest
    from tests.fakes import ScriptedGenerator

    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("Bronnen meldden dat 28 van de 32 landen Rutte steunen.", encoding="utf-8")
    ingest([d], cfg, fake_embedder, progress=False)
    qs = tmp_path / "set.jsonl"
    rows = [
        {"id": "q1", "question": "Hoeveel landen steunen Rutte?", "must_include": [["28"]], "sources": ["a.txt"],
         "evidence": ["28 van de 32 landen Rutte steunen"], "type": "number"},
        {"id": "q2", "question": "Hoeveel drones levert Japan?", "must_include": [], "sources": [], "evidence": [],
         "type": "unanswerable"},
    ]
    qs.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    c = cfg.with_overrides(refuse_below=0.0)
    gen = ScriptedGenerator(["28 van de 32 landen steunen Rutte [1].", "Dat staat niet in de bronnen."])
    a = Assistant(c, embedder=fake_embedder, generator=gen)
    out = run(qs, a, tmp_path / "run", mode="generate", judge=LexicalJudge(), progress=False)
    m = out["metrics"]
    assert m["answer.correct"] == 1.0 and m["refusal.accuracy"] == 1.0 and m["refusal.false_rate"] == 0.0
    assert m["retrieval.hit@1"] == 1.0 and m["citation.recall"] == 1.0 and m["citation.precision"] == 1.0
    assert m["citation.evidence_precision"] == 1.0 and "latency.p50_s" in m
    for f in ("results.json", "items.jsonl", "report.md", "report.html"):
        assert (tmp_path / "run" / f).exists()
    assert "<svg" in (tmp_path / "run" / "report.html").read_text()
    gen2 = ScriptedGenerator(["Rutte wint.", "Dat staat niet in de bronnen."])
    run(qs, Assistant(c, embedder=fake_embedder, generator=gen2), tmp_path / "run2", mode="generate",
        judge=LexicalJudge(), progress=False)
    diff = compare(tmp_path / "run", tmp_path / "run2")
    assert "answer.correct" in diff and "`q1` True -> False" in diff
