"""Invariants of the seed-corpus question set eval/sets/seeds.jsonl.

Plain json and the standard library only: no project imports, no models. The set holds the 62 dev
items (split "tune", unchanged apart from the split) and hand-written new items ("s" ids), mostly in
split "test"; every evidence string must occur verbatim in one of the item's source files in seeds/.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SET = ROOT / "eval" / "sets" / "seeds.jsonl"
DEV = ROOT / "eval" / "sets" / "dev.jsonl"
SEEDS = ROOT / "seeds"
TYPES = {"fact", "number", "date", "person", "list", "multi_doc", "english", "unanswerable"}
SPLITS = ("tune", "test")
KEYS = ["id", "question", "answer", "must_include", "sources", "evidence", "type", "paraphrase", "split"]
OPTIONAL = {"follows", "lang", "note"}


def _load(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def rows():
    return _load(SET)


@pytest.fixture(scope="module")
def dev():
    return _load(DEV)


@pytest.fixture(scope="module")
def seed_texts():
    return {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}


def _english(r):
    return r["type"] == "english" or r.get("lang") == "en"


def _ofs(rows, typ):
    return [r for r in rows if r["type"] == typ]


def _in(rows, split):
    return [r for r in rows if r["split"] == split]


def test_every_line_is_json_with_keys_in_order(rows):
    assert rows
    for r in rows:
        assert list(r)[: len(KEYS)] == KEYS, r.get("id")
        assert set(list(r)[len(KEYS):]) <= OPTIONAL, r["id"]
        assert isinstance(r["question"], str) and r["question"].strip(), r["id"]
        assert isinstance(r["paraphrase"], bool), r["id"]


def test_ids_unique(rows):
    dup = [i for i, n in Counter(r["id"] for r in rows).items() if n > 1]
    assert not dup


def test_split_and_type_values(rows):
    for r in rows:
        assert r["split"] in SPLITS, r["id"]
        assert r["type"] in TYPES, r["id"]
        if "lang" in r:
            assert r["lang"] in ("nl", "en"), r["id"]


def test_dev_items_kept_unchanged_in_tune(rows, dev):
    by_id = {r["id"]: r for r in rows}
    for d in dev:
        r = by_id.get(d["id"])
        assert r is not None, d["id"]
        assert r["split"] == "tune", d["id"]
        assert {k: v for k, v in r.items() if k != "split"} == d, d["id"]


def test_test_split_only_new_items(rows, dev):
    dev_ids = {d["id"] for d in dev}
    new = [r for r in rows if r["id"] not in dev_ids]
    assert len(new) >= 95
    assert len(rows) >= 157
    assert all(r["id"].startswith("s") for r in new)
    assert not [r["id"] for r in _in(rows, "test") if r["id"] in dev_ids]
    assert 10 <= sum(r["split"] == "tune" for r in new) <= 16
    n_tune, n_test = len(_in(rows, "tune")), len(_in(rows, "test"))
    assert 0.4 <= n_tune / len(rows) <= 0.6, (n_tune, n_test)


def test_follows_valid_and_same_split(rows):
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        if "follows" in r:
            assert r["follows"] in by_id, r["id"]
            assert r["follows"] != r["id"], r["id"]
            assert by_id[r["follows"]]["split"] == r["split"], r["id"]


def test_independent_questions_follow_their_pair(rows):
    notes = [(i, r) for i, r in enumerate(rows) if "note" in r and r["note"].startswith("independent after ")]
    assert notes
    for i, r in notes:
        assert "follows" not in r, r["id"]
        prev = r["note"].removeprefix("independent after ")
        assert i > 0 and rows[i - 1]["id"] == prev, r["id"]
        assert "follows" in rows[i - 1], r["id"]  # asked right after a follow-up turn


def test_must_include_and_reference_answers(rows):
    for r in rows:
        assert all(isinstance(g, list) and g for g in r["must_include"]), r["id"]
        assert all(alt == alt.lower() and alt for g in r["must_include"] for alt in g), r["id"]
        if r["type"] == "unanswerable":
            assert r["must_include"] == [] and r["sources"] == [] and r["evidence"] == [], r["id"]
        else:
            assert r["must_include"] and r["sources"] and r["evidence"], r["id"]
            a = r["answer"].lower()
            assert all(any(alt in a for alt in g) for g in r["must_include"]), r["id"]


def test_evidence_verbatim_in_sources(rows, seed_texts):
    for r in rows:
        for s in r["sources"]:
            assert s in seed_texts, (r["id"], s)
        for e in r["evidence"]:
            assert e.strip(), r["id"]
            assert any(e in seed_texts[s] for s in r["sources"]), (r["id"], e)


def test_multi_doc_items_cite_two_files(rows, seed_texts):
    for r in _ofs(rows, "multi_doc"):
        assert len(set(r["sources"])) >= 2, r["id"]
        cited = {s for s in r["sources"] for e in r["evidence"] if e in seed_texts[s]}
        assert cited == set(r["sources"]), r["id"]


def test_minimum_counts(rows, dev):
    dev_ids = {d["id"] for d in dev}
    test = _in(rows, "test")
    assert len(_ofs(rows, "unanswerable")) >= 25
    assert len(_ofs(test, "unanswerable")) >= 13
    assert sum("follows" in r for r in rows) >= 10
    assert sum("follows" in r for r in test) >= 6
    assert sum(_english(r) for r in rows) >= 15
    assert len(_ofs(rows, "multi_doc")) >= 15
    lists = _ofs(rows, "list")
    assert len(lists) >= 10
    assert sum(len(r["must_include"]) >= 2 for r in lists) >= 8
    new = [r for r in rows if r["id"] not in dev_ids]
    assert sum(r["paraphrase"] for r in new) * 2 >= len(new)


def test_each_split_is_a_usable_set(rows):
    for split in SPLITS:
        part = _in(rows, split)
        assert {r["type"] for r in part} == TYPES, split
        assert len(_ofs(part, "unanswerable")) >= 10, split
        assert len(_ofs(part, "multi_doc")) >= 5, split
        assert len(_ofs(part, "list")) >= 5, split
        assert sum(_english(r) for r in part) >= 6, split
        assert sum("follows" in r for r in part) >= 4, split
        assert any("follows" in r and r["type"] != "unanswerable" for r in part), split
