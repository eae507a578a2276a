"""The second-domain corpus (Debian installation guide, Dutch) and its question set.

The marked test fetches the corpus (apt-get download + dpkg-deb -x, or the cached copy) and checks
every evidence string of eval/sets/install-guide.jsonl against the loader's text of its sources.
The unmarked tests cover the fetch script without network: registry, cache location, idempotence,
errors, and the unpack/copy path with a locally built .deb and a stand-in apt-get.
"""

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from eval import corpora
from eval.dataset import TYPES, load_set
from tests.conftest import ROOT

SET = ROOT / "eval" / "sets" / "install-guide.jsonl"
SPLITS = {"tune", "test"}


def _rows():
    return [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_install_guide_set_is_well_formed():
    rows = _rows()
    assert len(rows) >= 100
    load_set(SET)  # the project's own validation (ids unique, follows known, types known)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        assert list(r)[:9] == ["id", "question", "answer", "must_include", "sources", "evidence", "type",
                               "paraphrase", "split"], r["id"]
        assert r["split"] in SPLITS, r["id"]
        assert r["type"] in TYPES, r["id"]
        assert all(alt == alt.lower() for g in r["must_include"] for alt in g), r["id"]
        if r["type"] == "unanswerable":
            assert not r["must_include"] and not r["sources"] and not r["evidence"], r["id"]
        else:
            assert r["must_include"] and r["sources"] and r["evidence"], r["id"]
            a = r["answer"].lower()  # the reference answer passes its own check
            assert all(any(alt in a for alt in g) for g in r["must_include"]), r["id"]
        if "follows" in r:
            assert r["follows"] in by_id and by_id[r["follows"]]["split"] == r["split"], r["id"]
    for split in SPLITS:
        assert {r["type"] for r in rows if r["split"] == split} == {r["type"] for r in rows}
    assert sum(r["type"] == "unanswerable" for r in rows) >= 15
    assert sum(r["type"] == "list" for r in rows) >= 8
    assert sum(r["type"] == "multi_doc" for r in rows) >= 8
    assert sum("follows" in r for r in rows) >= 6
    assert sum(r["paraphrase"] for r in rows) * 2 >= len(rows)


@pytest.mark.model
def test_install_guide_evidence_in_loaded_text():
    from rag.ingest.loaders import load

    try:
        folder = corpora.fetch("install-guide-nl")
    except corpora.CorpusError as e:
        pytest.fail(f"corpus install-guide-nl not available: {e}")
    texts: dict[str, str] = {}
    rows = _rows()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    missing = []
    for r in rows:
        assert r["split"] in SPLITS, r["id"]
        for name in r["sources"]:
            assert (folder / name).is_file(), f"{r['id']}: source {name} not in {folder}"
            if name not in texts:
                texts[name] = load(folder / name).text
        for ev in r["evidence"]:
            if not any(ev in texts[name] for name in r["sources"]):
                missing.append(f"{r['id']}: {ev!r}")
    assert not missing, "evidence not found verbatim in its sources:\n" + "\n".join(missing)


# ---------------------------------------------------------------- fetch script, no network


def test_registry_entries():
    assert corpora.REGISTRY["install-guide-nl"][0] == "installation-guide-amd64"
    assert "libreoffice-help-nl" in corpora.REGISTRY
    for name, entry in corpora.REGISTRY.items():
        package, inner, pattern = entry
        assert package and not inner.startswith("/") and pattern, name


def test_default_dest_respects_rag_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_CACHE", str(tmp_path))
    assert corpora.default_dest("install-guide-nl") == tmp_path / "corpora" / "install-guide-nl"
    monkeypatch.delenv("RAG_CACHE")
    assert corpora.default_dest("x") == Path.home() / ".cache" / "ragnl" / "corpora" / "x"


def test_prefilled_dest_is_returned_without_download(monkeypatch, tmp_path):
    dest = tmp_path / "guide"
    dest.mkdir()
    (dest / "index.html").write_text("<p>al aanwezig</p>", encoding="utf-8")

    def no_download(*a, **k):
        raise AssertionError("must not download when the folder is filled")

    monkeypatch.setattr(corpora.subprocess, "run", no_download)
    monkeypatch.setattr(corpora.shutil, "which", lambda tool: None)
    assert corpora.fetch("install-guide-nl", dest) == dest
    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "corpora" / "install-guide-nl"
    cached.mkdir(parents=True)
    (cached / "a.html").write_text("x", encoding="utf-8")
    assert corpora.fetch("install-guide-nl") == cached
    assert sorted(p.name for p in dest.iterdir()) == ["index.html"]


def test_errors_are_one_line_and_exit_1(monkeypatch, tmp_path, capsys):
    assert corpora.main(["no-such-corpus"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown corpus") and err.count("\n") == 1
    monkeypatch.setattr(corpora.shutil, "which", lambda tool: None)
    assert corpora.main(["install-guide-nl", "--dest", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "apt-get" in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(corpora.CorpusError):
        corpora.fetch("no-such-corpus", tmp_path / "x")


def test_glob_matching():
    assert corpora._matches("a.html", "*.html") and corpora._matches("a.html.gz", "*.html")
    assert not corpora._matches("sub/a.html", "*.html")
    assert corpora._matches("sub/deeper/a.html", "**/*.html") and corpora._matches("a.html", "**/*.html")
    assert not corpora._matches("a.png", "**/*.html")
    assert corpora._flat_name("text/swriter/a.html") == "text__swriter__a.html"
    assert corpora._flat_name("b.html.gz") == "b.html"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build a test package")
def test_fetch_unpacks_a_local_package(monkeypatch, tmp_path, capsys):
    # a tiny .deb with pages (one gzip-compressed, one in a sub-folder that a plain glob skips)
    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: ragnl-fake-doc\nVersion: 1.2-3\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n", encoding="utf-8")
    pages = root / "usr" / "share" / "doc" / "fake" / "nl"
    (pages / "sub").mkdir(parents=True)
    (pages / "a.html").write_text("<p>Alpha</p>", encoding="utf-8")
    with gzip.open(pages / "b.html.gz", "wb") as f:
        f.write(b"<p>Beta</p>")
    (pages / "sub" / "c.html").write_text("<p>Gamma</p>", encoding="utf-8")
    (pages / "logo.png").write_bytes(b"\x89PNG")
    deb = tmp_path / "ragnl-fake-doc_1.2-3_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True, capture_output=True)

    # a stand-in apt-get that "downloads" the package into the working folder, once
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    fake = bindir / "apt-get"
    fake.write_text(f"#!/bin/sh\necho x >> '{calls}'\n[ \"$1\" = download ] && [ \"$2\" = ragnl-fake-doc ] "
                    f"&& cp '{deb}' . && exit 0\necho 'E: Unable to locate package '$2 >&2\nexit 100\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(corpora.REGISTRY, "fake-nl", ("ragnl-fake-doc", "usr/share/doc/fake/nl", "*.html"))
    monkeypatch.setitem(corpora.REGISTRY, "fake-deep", ("ragnl-fake-doc", "usr/share/doc/fake/nl", "**/*.html"))
    monkeypatch.setitem(corpora.REGISTRY, "missing", ("ragnl-no-such-package", "x", "*.html"))

    dest = tmp_path / "out"
    assert corpora.fetch("fake-nl", dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == [".corpus.json", "a.html", "b.html"]
    assert (dest / "b.html").read_text(encoding="utf-8") == "<p>Beta</p>"
    meta = json.loads((dest / ".corpus.json").read_text(encoding="utf-8"))
    assert meta["version"] == "1.2-3" and meta["pages"] == 2
    assert corpora.fetch("fake-nl", dest) == dest  # idempotent: no second download
    assert len(calls.read_text().splitlines()) == 1

    deep = corpora.fetch("fake-deep", tmp_path / "deep")
    assert sorted(p.name for p in deep.iterdir() if not p.name.startswith(".")) == ["a.html", "b.html", "sub__c.html"]

    # unknown package -> one line on stderr, exit 1, nothing left behind
    assert corpora.main(["missing", "--dest", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unable to locate package" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
