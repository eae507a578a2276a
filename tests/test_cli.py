"""CLI behaviour with the fake embedder: clear errors, JSON output, --index."""

import json

import pytest
from typer.testing import CliRunner

from cli import main as cli


@pytest.fixture
def runner(monkeypatch, fake_embedder):
    import rag.stores.embedder

    monkeypatch.setattr(rag.stores.embedder, "get_embedder", lambda cfg: fake_embedder)
    return CliRunner()


def test_ingest_search_info_remove(runner, tmp_path):
    idx = tmp_path / "idx"
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("De NAVO bestaat 75 jaar en viert dat in Washington.", encoding="utf-8")
    (d / "kapot.pdf").write_bytes(b"%PDF-1.4 broken")
    r = runner.invoke(cli.app, ["ingest", str(d), "--index", str(idx)])
    assert r.exit_code == 2, r.output  # partial: a.txt indexed, kapot.pdf failed
    assert "1 added" in r.output and "kapot.pdf" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli.app, ["search", "Washington jubileum", "--index", str(idx), "--json", "-k", "2"])
    data = json.loads(r.output)
    assert data[0]["doc"] == "a.txt"
    assert {"doc", "chunk_id", "score", "start", "end", "text"} <= set(data[0])
    r = runner.invoke(cli.app, ["info", "--index", str(idx), "--json"])
    assert json.loads(r.output)["documents"] == 1
    r = runner.invoke(cli.app, ["remove", "a.txt", "--index", str(idx)])
    assert r.exit_code == 0 and "removed" in r.output


def test_missing_index_is_one_clear_line(runner, tmp_path):
    r = runner.invoke(cli.app, ["search", "iets", "--index", str(tmp_path / "none")])
    assert r.exit_code == 1
    assert "no index at" in r.output and "Traceback" not in r.output


def test_exit_codes_all_good_partial_nothing(runner, tmp_path):
    """0 = every file indexed or unchanged, 2 = some failed (the rest indexed), 1 = nothing indexed."""
    idx = str(tmp_path / "i")
    good, bad = tmp_path / "goed.txt", tmp_path / "kapot.docx"
    good.write_text("De NAVO bestaat 75 jaar.", encoding="utf-8")
    bad.write_bytes(b"PK\x03\x04 nonsense")
    assert runner.invoke(cli.app, ["ingest", str(good), "--index", idx]).exit_code == 0
    assert runner.invoke(cli.app, ["ingest", str(good), "--index", idx]).exit_code == 0  # unchanged is fine
    r = runner.invoke(cli.app, ["ingest", str(good), str(bad), "--index", idx])
    assert r.exit_code == 2 and "kapot.docx" in r.output and "not a readable DOCX" in r.output
    r = runner.invoke(cli.app, ["ingest", str(bad), "--index", idx])
    assert r.exit_code == 1 and "kapot.docx" in r.output
    empty = tmp_path / "leegmap"
    empty.mkdir()
    r = runner.invoke(cli.app, ["ingest", str(empty), "--index", idx])
    assert r.exit_code == 1 and "no supported files found" in r.output
    r = runner.invoke(cli.app, ["info", "--index", idx, "--json"])
    assert [d["name"] for d in json.loads(r.output)["docs"]] == ["goed.txt"]  # bad batches lost nothing


def test_file_names_with_line_breaks_stay_on_one_line(runner, tmp_path):
    f = tmp_path / "twee\nregels.txt"
    f.write_text("", encoding="utf-8")
    r = runner.invoke(cli.app, ["ingest", str(f), "--index", str(tmp_path / "i")])
    assert r.exit_code == 1
    line = [x for x in r.output.splitlines() if "regels.txt" in x]
    assert len(line) == 1 and "twee\\nregels.txt" in line[0] and "empty" in line[0]


def test_serve_binds_localhost_by_default(runner, tmp_path, monkeypatch):
    import inspect

    import ui.app

    for fn in (ui.app.launch, ui.app.create_app):
        assert inspect.signature(fn).parameters["host"].default == "127.0.0.1"
    seen = {}
    monkeypatch.setattr(ui.app, "launch", lambda assistant, host, port: seen.update(host=host, port=port))
    r = runner.invoke(cli.app, ["serve", "--index", str(tmp_path / "i")])
    assert r.exit_code == 0, r.output
    assert seen == {"host": "127.0.0.1", "port": 7860} and "http://127.0.0.1:7860" in r.output


def test_only_bad_files_exit_nonzero(runner, tmp_path):
    bad = tmp_path / "leeg.txt"
    bad.write_text("")
    r = runner.invoke(cli.app, ["ingest", str(bad), "--index", str(tmp_path / "i")])
    assert r.exit_code == 1 and "leeg.txt" in r.output and "empty" in r.output


def test_missing_model_gives_a_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "nocache"))
    r = CliRunner().invoke(cli.app, ["search", "x", "--index", str(tmp_path / "i")])
    assert r.exit_code == 1
    assert "not prepared" in r.output and "rag models --prepare" in r.output
