"""Document/date filters (one resolution function, applied inside retrieval), `rag meta` and short titles."""

import json

import pytest
from typer.testing import CliRunner

from cli import main as cli
from rag.ingest.loaders import load, short_title
from rag.types import DocInfo, Filter, FilterError, check_date

DOCS = [DocInfo(path="/d/a.txt", doc_id="a1", name="a.txt", date="2020-04"),
        DocInfo(path="/d/b.pdf", doc_id="b2", name="b.pdf", date="2021"),
        DocInfo(path="/d/sub/c.txt", doc_id="c3", name="c.txt", date="2021-06-15"),
        DocInfo(path="/d/n[1].txt", doc_id="n4", name="n[1].txt", date="")]


@pytest.mark.parametrize("flt, ids", [
    (Filter(), None),
    (Filter(docs=("*.txt",)), ["a1", "c3", "n4"]),
    (Filter(docs=("n[1].txt",)), ["n4"]),  # an exact name with glob characters
    (Filter(docs=("/d/sub/*",)), ["c3"]),  # a glob over the full path
    (Filter(docs=("B.PDF", "a1")), ["a1", "b2"]),  # case-insensitive name; a doc id
    (Filter(since="2020-04-15"), ["a1", "b2", "c3"]),  # 2020-04 overlaps; no date never matches
    (Filter(until="2020"), ["a1"]),
    (Filter(since="2021-06", until="2021-06"), ["b2", "c3"]),  # the year 2021 contains June
    (Filter(since="2021-07"), ["b2"]),
    (Filter(docs=("*.txt",), since="2021"), ["c3"]),
])
def test_filter_resolves_to_doc_ids(flt, ids):
    assert flt.resolve(DOCS) == ids


@pytest.mark.parametrize("make, message", [
    (lambda: Filter(docs=("x.doc",)).resolve(DOCS), "no document matches 'x.doc' (4 documents in the index)"),
    (lambda: Filter(docs=("a.txt", "zz*")).resolve(DOCS), "no document matches 'zz*'"),
    (lambda: Filter(until="2019").resolve(DOCS), "no document matches the filter (until 2019)"),
    (lambda: Filter(docs=("b.pdf",), since="2022-01-01").resolve(DOCS), "documents b.pdf; since 2022-01-01"),
    (lambda: Filter(since="2021-02-30"), "since: '2021-02-30' is not a date; expected YYYY, YYYY-MM or YYYY-MM-DD"),
    (lambda: Filter(until="21-01"), "until: '21-01' is not a date"),
    (lambda: Filter(since="2022", until="2021-12"), "since 2022 is after until 2021-12"),
])
def test_bad_or_empty_filters_say_why(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value)
    assert isinstance(e.value, FilterError) or "not a date" in str(e.value)


def test_check_date():
    assert [check_date(x) for x in ("2024", "2024-02", "2024-02-29", " ", "")] == ["2024", "2024-02", "2024-02-29",
                                                                                    "", ""]
    for bad in ("2023-02-29", "2024-13", "2024-1", "april 2024", "20240101"):
        with pytest.raises(ValueError):
            check_date(bad)


# ---------- inside retrieval, through the Assistant and the CLI ----------
BIG = " ".join(f"Zin {i} over de begroting van de gemeente Utrecht en haar financiën." for i in range(12))
CORPUS = {
    "utrecht.txt": " date 2021-03 Begroting Utrecht\n\n" + BIG,
    "navo.txt": " date 2024-04 NAVO-top\n\nDe NAVO-top in Washington besprak de begroting van de NAVO en de "
                "steun aan Oekraïne.",
}


@pytest.fixture
def runner(monkeypatch, fake_embedder):
    import rag.stores.embedder

    monkeypatch.setattr(rag.stores.embedder, "get_embedder", lambda cfg: fake_embedder)
    return CliRunner()


@pytest.fixture
def index(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CHUNK_CHARS", "120")  # utrecht.txt becomes several chunks
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in CORPUS.items():
        (d / name).write_text(text, encoding="utf-8")
    idx = str(tmp_path / "idx")
    r = runner.invoke(cli.app, ["ingest", str(d), "--index", idx])
    assert r.exit_code == 0, r.output
    return idx


def _search(runner, index, *args):
    r = runner.invoke(cli.app, ["search", "NAVO-top Washington begroting", "--index", index, "--json", *args])
    assert r.exit_code == 0, r.output
    return [h["doc"] for h in json.loads(r.output)]


def test_filtered_search_still_gets_k_passages(runner, index):
    assert _search(runner, index, "-k", "3")[0] == "navo.txt"
    assert _search(runner, index, "-k", "3", "--doc", "utrecht.txt") == ["utrecht.txt"] * 3
    assert _search(runner, index, "-k", "3", "--until", "2022") == ["utrecht.txt"] * 3
    assert _search(runner, index, "-k", "3", "--doc", "*.txt", "--since", "2024-04-10") == ["navo.txt"]


def test_filtered_answer_cites_only_the_chosen_documents(runner, index):
    r = runner.invoke(cli.app, ["ask", "Wat besprak de NAVO-top over de begroting?", "--index", index, "--json",
                                "--mode", "extractive", "--doc", "utrecht*"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {p["doc"] for p in d["passages"]} == {"utrecht.txt"}
    assert {c["doc"] for c in d["citations"]} <= {"utrecht.txt"}


@pytest.mark.parametrize("args, message", [
    (["--doc", "brief.pdf"], "error: filter: no document matches 'brief.pdf' (2 documents in the index)"),
    (["--since", "2030"], "error: filter: no document matches the filter (since 2030)"),
    (["--until", "2024-00"], "error: filter: until: '2024-00' is not a date"),
])
def test_filter_errors_are_one_line(runner, index, args, message):
    for cmd in ("search", "ask"):
        r = runner.invoke(cli.app, [cmd, "begroting", "--index", index, *args])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output


def test_assistant_search_takes_doc_ids(index, fake_embedder):
    from rag import Assistant
    from rag.config import RagConfig

    a = Assistant(RagConfig.from_env(index_dir=index), embedder=fake_embedder)
    ids = Filter(docs=("utrecht.txt",)).resolve(a.documents())
    hits = a.search("NAVO-top Washington", k=4, doc_ids=ids)
    assert len(hits) == 4 and {h.chunk.doc for h in hits} == {"utrecht.txt"}
    assert [h.rank for h in hits] == [1, 2, 3, 4]


# ---------- rag meta ----------
def test_meta_edits_title_and_date(runner, index):
    r = runner.invoke(cli.app, ["meta", "navo.txt", "--title", "Top in Washington", "--date", "2024-07-10",
                                "--index", index])
    assert r.exit_code == 0, r.output
    assert "navo.txt: title 'Top in Washington', date '2024-07-10'" in r.output
    info = json.loads(runner.invoke(cli.app, ["info", "--index", index, "--json"]).output)
    navo = next(d for d in info["docs"] if d["name"] == "navo.txt")
    assert navo["title"] == "Top in Washington" and navo["date"] == "2024-07-10"
    r = runner.invoke(cli.app, ["search", "NAVO-top", "--index", index, "--json", "-k", "1"])
    hit = json.loads(r.output)[0]
    assert hit["doc"] == "navo.txt" and hit["title"] == "Top in Washington" and hit["date"] == "2024-07-10"
    # the new date counts in filters; the other document is untouched
    assert _search(runner, index, "--since", "2024-07") == ["navo.txt"]
    assert runner.invoke(cli.app, ["search", "x", "--index", index, "--since", "2024-04-01", "--until",
                                   "2024-04-30"]).exit_code == 1
    r = runner.invoke(cli.app, ["meta", "utrecht.txt", "--index", index])
    assert r.exit_code == 0 and "utrecht.txt: title 'Begroting Utrecht', date '2021-03'" in r.output
    r = runner.invoke(cli.app, ["meta", "navo.txt", "--date", "", "--index", index])
    assert "date '-'" in r.output


@pytest.mark.parametrize("args, message", [
    (["onbekend.txt", "--title", "X"], "error: onbekend.txt: not in the index"),
    (["navo.txt", "--date", "10-07-2024"], "error: --date: '10-07-2024' is not a date; expected YYYY, YYYY-MM or "
                                           "YYYY-MM-DD"),
    (["navo.txt", "--title", "  "], "error: --title: give a non-empty title"),
])
def test_meta_errors_are_one_line(runner, index, args, message):
    r = runner.invoke(cli.app, ["meta", *args, "--index", index])
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


# ---------- short titles ----------
def test_short_title_is_the_first_sentence_cut_at_a_word():
    assert short_title("De NAVO bestaat 75 jaar. Dat werd gevierd.") == "De NAVO bestaat 75 jaar."
    long = ("De ministers van Defensie van de NAVO-landen spraken op 15 april 2020 via een videoverbinding over "
            "de gevolgen van de coronacrisis. Tweede zin.")
    assert short_title(long) == "De ministers van Defensie van de NAVO-landen spraken op 15 april 2020 via een…"
    assert len(short_title(long)) <= 80
    assert short_title("x" * 100) == "x" * 79 + "…"  # no space: cut hard


def test_document_titles(tmp_path):
    body = ("De ministers van Defensie van de NAVO-landen spraken op 15 april 2020 via een videoverbinding over "
            "de gevolgen van de coronacrisis voor de missies. Daarna volgde een persconferentie.\n\nTweede alinea.")
    (tmp_path / "lang.txt").write_text(body, encoding="utf-8")
    assert load(tmp_path / "lang.txt").title == ("De ministers van Defensie van de NAVO-landen spraken op 15 april "
                                                 "2020 via een…")
    (tmp_path / "kort.txt").write_text("Korte eerste zin. En dan veel meer tekst in dezelfde alinea die doorgaat.",
                                       encoding="utf-8")
    assert load(tmp_path / "kort.txt").title == "Korte eerste zin."
    (tmp_path / "kop.txt").write_text("Verslag van de NAVO-top\n\nDe top duurde twee dagen.", encoding="utf-8")
    assert load(tmp_path / "kop.txt").title == "Verslag van de NAVO-top"
    (tmp_path / "k.md").write_text("# Kop\nDe NAVO bestaat 75 jaar.", encoding="utf-8")
    assert load(tmp_path / "k.md").title == "Kop"
