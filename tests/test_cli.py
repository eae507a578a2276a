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
    assert r.exit_code == 0, r.output
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
